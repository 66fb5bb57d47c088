"""Read a text's structure: headings, paragraphs, lists, tables and boilerplate lines, with exact offsets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

_MD_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*(?:[•·▪◦‣●○■□➢➤✓✔]|[-*+](?=\s))\s*(?=\S)")
_NUMBERED = re.compile(r"^\s*\(?\d{1,3}[.)]\s+(?=\S)")
_MD_TABLE = re.compile(r"^\s*\|.*\|\s*$")
_BOILERPLATE = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^(photo|image|picture|illustration|graphic)\s+(by|credit|courtesy|source)\b.{0,80}$",
        r"^image\s+of\b.{0,100}$",
        r"^you are (currently )?viewing\b.{0,100}$",
        r"^(share( this)?( article| post| page)?|tweet|pin it|print( this)?|advertisement|skip to (main )?content"
        r"|read more|click here|back to top|table of contents)$",
        r"^!\[[^\]]*\]\([^)]*\)$",  # a markdown image alone on its line
    )
]
# An image file name left behind by a scraper, e.g. "arif-riyanto-G1N9kDHqBrQ-unsplash".
_SLUG = re.compile(r"^[\w.]+(?:[-_][\w.]+){2,}$")
_IMAGE_HOSTS = re.compile(r"(unsplash|pexels|pixabay|shutterstock|getty|\.(jpe?g|png|gif|webp))$", re.IGNORECASE)


@dataclass(frozen=True)
class Block:
    """A structural piece of a document: a heading, paragraph, list, table or boilerplate line."""

    kind: str  # "heading" | "paragraph" | "list" | "table" | "boilerplate"
    start: int  # first non-space character
    end: int  # one past the last non-space character
    heading: str = ""  # clean heading text, for headings
    level: int = 0  # markdown heading level; 0 for a bare-line heading
    marker: str = ""  # "bullet" | "numbered", for lists


@dataclass(frozen=True)
class _Line:
    start: int
    end: int
    kind: str  # "heading" | "bullet" | "numbered" | "table" | "boilerplate" | "text"
    text: str
    indent: int


# A title or heading is kept to this many characters: it is shown in the header, under every answer citing the
# document and in each passage's context line, so a page's 100,000-word <title> must not be repeated whole.
TITLE_CHARS = 200


def clip(text: str, limit: int = TITLE_CHARS) -> str:
    """``text`` on one line, cut after the last whole word that fits in ``limit`` characters (with "…")."""
    words: list[str] = []
    length = 0
    for match in re.finditer(r"\S+", text):  # only the opening is read, however long the text
        word = match.group()
        if length + len(word) + (1 if words else 0) > limit - 1:
            if not words:  # one word longer than the limit
                return word[: limit - 1] + "…"
            return " ".join(words) + "…"
        length += len(word) + (1 if words else 0)
        words.append(word)
    return " ".join(words)


def first_heading(text: str) -> str:
    """The heading that opens ``text`` (after any boilerplate), for a title; "" when text comes first."""
    for block in parse_blocks(text[:8000]):  # the opening is enough, even for a huge file
        if block.kind == "heading":
            return block.heading
        if block.kind != "boilerplate":
            return ""
    return ""


def parse_blocks(text: str) -> list[Block]:
    """Find the headings, paragraphs, lists, tables and boilerplate lines of ``text``, in order."""
    blocks: list[Block] = []
    for run in _runs(_lines(text)):
        blocks.extend(_run_blocks(run))
    return _tidy(blocks, text)


def _lines(text: str) -> Iterator[_Line | None]:
    """Each line's stripped span and kind; None for a blank line."""
    for match in re.finditer(r"[^\n]*(?:\n|$)", text):
        raw = match.group().rstrip("\r\n")
        stripped = raw.strip()
        if not stripped:
            if match.end() > match.start():
                yield None
            continue
        indent = len(raw) - len(raw.lstrip())
        start = match.start() + indent
        yield _Line(start, start + len(stripped), _line_kind(stripped), stripped, indent)


def _line_kind(line: str) -> str:
    if _MD_HEADING.match(line):
        return "heading"
    if _MD_TABLE.match(line):
        return "table"
    if _is_boilerplate(line):
        return "boilerplate"
    if _BULLET.match(line):
        return "bullet"
    if _NUMBERED.match(line):
        return "numbered"
    return "text"


def _is_boilerplate(line: str) -> bool:
    if any(p.match(line) for p in _BOILERPLATE):
        return True
    return bool(_SLUG.match(line) and (re.search(r"\d", line) or _IMAGE_HOSTS.search(line)))


def _runs(lines: Iterator[_Line | None]) -> Iterator[list[_Line]]:
    """Groups of consecutive non-blank lines."""
    run: list[_Line] = []
    for line in lines:
        if line is None:
            if run:
                yield run
            run = []
        else:
            run.append(line)
    if run:
        yield run


def _run_blocks(run: list[_Line]) -> Iterator[Block]:
    i = 0
    while i < len(run):
        line = run[i]
        if line.kind == "heading":
            match = _MD_HEADING.match(line.text)
            assert match is not None
            yield Block("heading", line.start, line.end, _clean(match.group(2)), level=len(match.group(1)))
            i += 1
        elif line.kind == "boilerplate":
            yield Block("boilerplate", line.start, line.end)
            i += 1
        elif line.kind == "table":
            j = _take(run, i, {"table"})
            yield Block("table", line.start, run[j - 1].end)
            i = j
        elif line.kind in ("bullet", "numbered"):
            # Indented lines under an item continue it (wrapped list items).
            j = i + 1
            while j < len(run) and (run[j].kind == line.kind or (run[j].kind == "text" and run[j].indent > line.indent)):
                j += 1
            yield Block("list", line.start, run[j - 1].end, marker="numbered" if line.kind == "numbered" else "bullet")
            i = j
        else:
            j = _take(run, i, {"text"})
            yield _text_block(run[i:j])
            i = j


def _take(run: list[_Line], i: int, kinds: set[str]) -> int:
    j = i
    while j < len(run) and run[j].kind in kinds:
        j += 1
    return j


def _text_block(lines: list[_Line]) -> Block:
    start, end = lines[0].start, lines[-1].end
    if len(lines) == 1:
        if _looks_like_heading(lines[0].text):
            return Block("heading", start, end, _clean(lines[0].text))
        return Block("paragraph", start, end)
    # Consecutive short lines, none ending a sentence, are a table flattened into text
    # ("Entry Level $85,000"); a hard-wrapped paragraph ends its last line with punctuation.
    if all(len(line.text) <= 160 and line.text[-1] not in ".!?" for line in lines):
        return Block("table", start, end)
    return Block("paragraph", start, end)


def _looks_like_heading(line: str) -> bool:
    """A bare short line that does not end a sentence: "Skills Needed", "What is overfitting?", "Notes:"."""
    if len(line) > 100 or len(line.split()) > 15 or line[-1] in ".,;":
        return False
    return line[0].isupper() or line[0].isdigit() or line[0] in "\"'“‘¿¡*_"


def _clean(heading: str) -> str:
    return clip(re.sub(r"[*_`]+", "", heading[: TITLE_CHARS * 8]))


def _tidy(blocks: list[Block], text: str) -> list[Block]:
    """Apply the rules that need neighbours: table titles, lead-ins, merged lists, repeated headings."""
    out: list[Block] = []
    for i, block in enumerate(blocks):
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        if (
            block.kind == "list"
            and block.marker == "numbered"
            and nxt is not None
            and nxt.kind == "table"
            and "\n" not in text[block.start : block.end]
        ):
            # "2. Average Salary of Machine Learning Engineers" right above a table is its title.
            title = _NUMBERED.sub("", text[block.start : block.end]).strip()
            block = Block("heading", block.start, block.end, _clean(title))
        elif (
            block.kind == "heading"
            and block.level == 0
            and text[block.end - 1] == ":"
            and nxt is not None
            and nxt.kind in ("list", "table")
        ):
            block = Block("paragraph", block.start, block.end)  # "They help in:" introduces what follows
        prev = out[-1] if out else None
        if block.kind == "list" and prev is not None and prev.kind == "list" and prev.marker == block.marker:
            out[-1] = replace(prev, end=block.end)  # list items separated by blank lines are one list
            continue
        out.append(block)
    # A heading repeated with only boilerplate between ("Common Misconceptions" twice) counts once;
    # keep the last copy, the one right above the content.
    tidy: list[Block] = []
    for block in out:
        if block.kind == "heading":
            k = len(tidy) - 1
            while k >= 0 and tidy[k].kind == "boilerplate":
                k -= 1
            if k >= 0 and tidy[k].kind == "heading" and tidy[k].heading.lower() == block.heading.lower():
                del tidy[k]
        tidy.append(block)
    # Trailing headings with no content after them are text, not headings (nothing would be indexed).
    for k in range(len(tidy) - 1, -1, -1):
        if tidy[k].kind == "boilerplate":
            continue
        if tidy[k].kind == "heading":
            tidy[k] = Block("paragraph", tidy[k].start, tidy[k].end)
        break
    return tidy
