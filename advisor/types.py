"""Small frozen records that the pipeline stages pass to each other."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

# The formats a corpus file can have (load.FORMATS maps file suffixes to these).
DocKind = Literal["txt", "md", "html", "pdf"]


@dataclass(frozen=True)
class Page:
    """A PDF page's span in its document's text (1-based page number)."""

    number: int
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    """One loaded corpus file: its text as the splitter and citations see it."""

    source: str  # display path, e.g. "corpus/guide.txt"
    title: str
    text: str
    sha256: str  # of the file's bytes, so a re-save with the same bytes is no change
    kind: DocKind
    encoding: str | None = None  # how the bytes were decoded, where that was a choice
    pages: tuple[Page, ...] = ()

    def page_at(self, offset: int) -> int | None:
        """Return the PDF page holding character ``offset``, or None for non-paged text."""
        number = None
        for page in self.pages:
            if page.start > offset:
                break
            number = page.number
        return number


@dataclass(frozen=True)
class Chunk:
    """A passage of a document: ``document.text[start:end] == text``."""

    id: int
    source: str
    title: str
    section: str
    text: str
    start: int
    end: int
    page: int | None = None
    context: str = ""  # title and section, prepended when embedding only

    @property
    def embedding_text(self) -> str:
        """The text given to the embedding model: context line, then the passage."""
        return f"{self.context}\n\n{self.text}" if self.context else self.text

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready fields, for the index's chunk file."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], title: str | None = None) -> Chunk:
        """Rebuild a chunk from ``to_json`` output; ``title`` fills in one stored without its title."""
        return cls(**data) if title is None else cls(**data, title=title)


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its score (higher is better) and 1-based rank."""

    chunk: Chunk
    score: float  # the fused score that ranks hits
    rank: int
    dense: float = 0.0  # cosine similarity to the query
    lexical: float = 0.0  # BM25 score


@dataclass(frozen=True)
class Citation:
    """A numbered source of an answer: the cited passage and the quotes taken from it."""

    n: int
    hit: Hit
    quotes: tuple[str, ...]  # exact substrings of hit.chunk.text that the answer used

    @property
    def chunk(self) -> Chunk:
        """The cited passage."""
        return self.hit.chunk


# A citation marker in an answer's text: "[n]" refers to the answer's n-th source (the one pattern every stage uses).
MARKER = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class Answer:
    """What `ask` returns: the text with [n] markers, the sources they refer to, and how it was made."""

    text: str
    citations: tuple[Citation, ...] = ()
    # "answer" | "out_of_scope" | "chitchat" | "empty" | "too_long" | "busy" | "partial" | "error"
    kind: str = "answer"
    hits: tuple[Hit, ...] = ()  # everything retrieved, best first (for evaluation and debugging)
    note: str = ""  # a remark about how the answer was made (an LLM fallback, a hedge on what is not covered)
    suggestions: tuple[str, ...] = ()  # questions the documents answer, listed in the text ("- …" lines) to ask next

    @property
    def grounded(self) -> bool:
        """True when the answer states facts from cited passages."""
        return self.kind == "answer" and bool(self.citations)

    def to_json(self) -> dict[str, Any]:
        """The `ask --jsonl` reply: answer text, grounded flag, numbered sources (`[n]` is sources[n-1])."""
        return {
            "answer": self.text,
            "grounded": self.grounded,
            "sources": [
                {
                    "n": c.n,
                    "source": c.chunk.source,
                    "title": c.chunk.title,
                    "section": c.chunk.section,
                    "text": c.chunk.text,
                    "score": round(c.hit.score, 4),
                }
                for c in self.citations
            ],
        }


@dataclass(frozen=True)
class Skipped:
    """A corpus file that was not indexed, and why."""

    source: str
    reason: str
    sha256: str | None = None  # set when the file was read, so an unchanged file is not retried


def stable_id(key: str) -> int:
    """A 63-bit number from ``key``, the same on every run and machine (fits a signed int64 id)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF
