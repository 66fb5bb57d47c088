"""Split a document into structure-aware passages that fit the model's window, with exact offsets."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from advisor.blocks import Block, parse_blocks
from advisor.errors import ConfigError
from advisor.types import Chunk, Document, stable_id

# Bump when the splitting rules change: the index then rebuilds in full.
SPLITTER_VERSION = 2  # 2: headings in a section path are cut to blocks.TITLE_CHARS
# Tokens reserved for the "title › section" line prepended at embedding time.
CONTEXT_TOKENS = 48
MAX_DEPTH = 6  # headings kept in a section's path (as many as Markdown has levels)
# A passage is also capped in characters (English runs 4-6 per token): a span longer than this per budget
# token is over budget without tokenizing it, so a 5 MB line costs no 5 MB tokenization.
MAX_CHARS_PER_TOKEN = 12
# A run of this many characters without a space is encoded data (base64, a minified blob), not words: the
# model would read it as one [UNK] token. It is left out of passages.
LONG_RUN = 200


@dataclass(frozen=True)
class _Unit:
    """Blocks that must stay in one chunk if they fit: a list with its lead-in, a table with its caption."""

    start: int
    end: int
    kind: str
    after_break: bool  # boilerplate lies between this unit and the one before


@dataclass(frozen=True)
class _Section:
    heading: Block | None
    path: tuple[str, ...]
    units: tuple[_Unit, ...]


def split_document(doc: Document, tokenizer: Any, *, chunk_tokens: int, chunk_overlap: int, max_tokens: int) -> list[Chunk]:
    """Split ``doc`` into chunks of at most ``chunk_tokens`` model tokens.

    Sections follow headings; a table stays with its title, header and caption, a list with
    its lead-in line, an FAQ question with its answer. Boilerplate (photo credits, "Image of …")
    is left out. ``doc.text[chunk.start:chunk.end] == chunk.text`` holds for every chunk, and
    the context line plus the text fit in ``max_tokens``.
    """
    if chunk_tokens + CONTEXT_TOKENS > max_tokens:
        raise ConfigError(
            f"ADVISOR_CHUNK_TOKENS={chunk_tokens} leaves no room for the {CONTEXT_TOKENS}-token title/section "
            f"context in the model's {max_tokens}-token window; use at most {max_tokens - CONTEXT_TOKENS}"
        )

    max_chars = chunk_tokens * MAX_CHARS_PER_TOKEN

    def count(text: str) -> int:
        return chunk_tokens + 1 if len(text) > max_chars else len(tokenizer.tokenize(text))

    text = doc.text
    chunks: list[Chunk] = []
    seen: set[int] = set()
    for section in _sections(parse_blocks(text), text):
        context = _context(doc.title, section.path, count)
        label = " › ".join(section.path)
        head = section.heading.start if section.heading else None
        for start, end in _pack(text, section.units, head, count, tokenizer, chunk_tokens, chunk_overlap):
            if not text[start:end].strip():
                continue
            chunk = Chunk(
                id=0,
                source=doc.source,
                title=doc.title,
                section=label,
                text=text[start:end],
                start=start,
                end=end,
                page=doc.page_at(start),
                context=context,
            )
            chunk_id = chunk_id_for(chunk)
            while chunk_id in seen:  # a 63-bit hash collision within one document: step to a free id
                chunk_id = (chunk_id + 1) & 0x7FFF_FFFF_FFFF_FFFF
            seen.add(chunk_id)
            chunks.append(replace(chunk, id=chunk_id))
    return chunks


def chunk_id_for(chunk: Chunk) -> int:
    """A stable 63-bit id from a chunk's source, position and embedded text."""
    return stable_id("\x00".join((chunk.source, str(chunk.start), str(chunk.end), chunk.context, chunk.text)))


def _sections(blocks: list[Block], text: str) -> Iterator[_Section]:
    """Group blocks under their headings, building each section's heading path."""
    stack: list[Block] = []  # markdown headings with levels
    heading: Block | None = None
    path: tuple[str, ...] = ()
    pending: list[Block] = []
    previous: Block | None = None
    for block in blocks:
        if block.kind == "heading":
            if heading is not None or pending:
                yield _Section(heading, path, tuple(_units(pending, text)))
            if block.level:
                while stack and stack[-1].level >= block.level:
                    stack.pop()
                stack.append(block)
                path = tuple(h.heading for h in stack)
            elif previous is not None and previous.kind == "heading":
                # A bare heading right under another ("Frequently Asked Questions" then the first
                # question) is read as its subsection.
                path = (path + (block.heading,))[-MAX_DEPTH:]  # a run of such lines must not build one long path
            else:
                path = tuple(h.heading for h in stack) + (block.heading,)
            heading, pending = block, []
        else:
            pending.append(block)
        if block.kind != "boilerplate":
            previous = block
    if heading is not None or pending:
        yield _Section(heading, path, tuple(_units(pending, text)))


def _units(blocks: list[Block], text: str) -> Iterator[_Unit]:
    """Join a lead-in with its list or table, and a table with the caption paragraph after it."""
    broken = False
    current: _Unit | None = None
    for block in blocks:
        if block.kind == "boilerplate":
            broken = True
            continue
        if (
            current is not None
            and not broken
            and (
                (current.kind == "lead-in" and block.kind in ("list", "table"))
                or (current.kind == "table" and block.kind == "paragraph")
            )
        ):
            kind = block.kind if current.kind == "lead-in" else "table+caption"
            current = _Unit(current.start, block.end, kind, current.after_break)
            continue
        if current is not None:
            yield _finish(current)
        kind = "lead-in" if block.kind == "paragraph" and text[block.end - 1] == ":" else block.kind
        current = _Unit(block.start, block.end, kind, broken)
        broken = False
    if current is not None:
        yield _finish(current)


def _finish(unit: _Unit) -> _Unit:
    return unit if unit.kind != "lead-in" else replace(unit, kind="paragraph")


def _context(title: str, path: tuple[str, ...], count: Callable[[str], int]) -> str:
    parts = [title] + [p for p in path if p.lower() != title.lower()]
    # Cut to what could fit first, so the word-by-word trimming below takes a few steps, not one per word.
    context = " › ".join(p for p in parts if p)[: CONTEXT_TOKENS * MAX_CHARS_PER_TOKEN]
    while context and count(context) > CONTEXT_TOKENS:
        context = context.rsplit(" ", 1)[0] if " " in context else context[: len(context) // 2]
    return context


# --- packing ------------------------------------------------------------------------------


def _pack(
    text: str,
    units: tuple[_Unit, ...],
    head: int | None,
    count: Callable[[str], int],
    tokenizer: Any,
    budget: int,
    overlap: int,
) -> Iterator[tuple[int, int]]:
    """Greedily pack units into spans of at most ``budget`` tokens.

    The first span starts at the section heading (``head``) so the passage shows what it is
    about. A unit too big for any span is split on its own lines, packed the same way; a line
    or paragraph still too big goes to the recursive character splitter.
    """
    span: tuple[int, int] | None = None  # the chunk being filled
    for unit in units:
        if unit.after_break:
            # Boilerplate (a photo credit, say) stands between: start afresh after it.
            if span:
                yield span
            span, head = None, None
        begin = span[0] if span else head if head is not None else unit.start
        if count(text[begin : unit.end]) <= budget:
            span, head = (begin, unit.end), None
            continue
        if span:
            yield span
            span, begin = None, unit.start
            if count(text[begin : unit.end]) <= budget:
                span = (begin, unit.end)
                continue
        if unit.kind == "paragraph":
            yield from _split_text(text, begin, unit.end, tokenizer, budget, overlap)
        else:
            lines = tuple(
                _Unit(m.start() + begin, m.end() + begin, "paragraph", False)
                for m in re.finditer(r"\S(?:[^\n]*\S)?", text[begin : unit.end])
            )
            yield from _pack(text, lines, None, count, tokenizer, budget, overlap)
        head = None
    if span:
        yield span


def _split_text(text: str, start: int, end: int, tokenizer: Any, budget: int, overlap: int) -> Iterator[tuple[int, int]]:
    """Split prose with langchain's recursive splitter, measured in model tokens.

    The splitter's own ``start_index`` is unreliable (it mixes token and character counts), so
    each piece is located in the source by searching forward from the previous one.
    """
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
        tokenizer,
        chunk_size=budget,
        chunk_overlap=overlap,
        separators=["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""],
        keep_separator="end",
    )
    max_chars = budget * MAX_CHARS_PER_TOKEN
    # Split only between long runs without spaces; those runs are left out.
    cuts = [(m.start() + start, m.end() + start) for m in re.finditer(rf"\S{{{LONG_RUN},}}", text[start:end])]
    for part_start, part_end in zip([start] + [e for _, e in cuts], [s for s, _ in cuts] + [end]):
        segment = text[part_start:part_end]
        if not segment.strip():
            continue
        cursor = 0
        for piece in splitter.split_text(segment):
            found = segment.find(piece, cursor)
            if found < 0:
                raise RuntimeError(f"splitter produced text not found in the source at offset {part_start + cursor}")
            yield from _windows(text, part_start + found, part_start + found + len(piece), max_chars)
            cursor = found + 1


def _windows(text: str, start: int, end: int, size: int) -> Iterator[tuple[int, int]]:
    """``text[start:end]`` in pieces of at most ``size`` characters, cut at spaces where possible."""
    while end - start > size:
        cut = text.rfind(" ", start + size // 2, start + size)
        cut = cut if cut > start else start + size
        yield start, cut
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if start < end:
        yield start, end
