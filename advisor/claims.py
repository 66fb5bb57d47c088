"""Check a language model's reply claim by claim: a sentence is kept only when the passage it cites says it."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from advisor.lexical import terms
from advisor.statements import sentences
from advisor.types import MARKER

# Share of a sentence's content words its cited passages must contain: strict on purpose, since a sentence that
# fails is removed and the reply can fall back to the documents' own answer, while one that passes is shown as
# theirs. (Issue 26 asks for the answer model's judgement here once it lands; until then, this lexical check.)
SUPPORT = 0.6

_FIGURE = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?\s*(%|percent\b|k\b|thousand\b|million\b|billion\b|bn\b)?",
    re.IGNORECASE,
)
_NUMBER_WORDS = {
    word: n
    for n, word in enumerate(
        "_ _ two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
    if word != "_"  # "one" is more often a pronoun ("one of the highest") than a count
} | {"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100}
_SCALE = {"k": 1e3, "thousand": 1e3, "million": 1e6, "billion": 1e9, "bn": 1e9}
_NAME = re.compile(r"(?<![\w'’-])[A-Z][\w&'’.-]*[A-Za-z0-9]|(?<![\w'’-])[A-Z](?![\w'’-])")
# Words that point at the sources rather than say anything ("According to the documents, …"): not counted.
_ATTRIBUTION = frozenset(terms("according documents document passage passages sources source states says mentions"))
_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


@dataclass(frozen=True)
class Claim:
    """One sentence or list item of a reply, the passages it cites, and whether they say it (``why`` not)."""

    text: str
    cited: tuple[int, ...]
    why: str = ""

    @property
    def supported(self) -> bool:
        """Whether every figure, name and most of the words in it are in the passages it cites."""
        return not self.why


def claims_of(text: str) -> list[list[str]]:
    """A reply's sentences and list items, line by line; a marker set after a full stop ("… $85,000. [1] Next")
    is moved before it, to the sentence it belongs to."""
    lines: list[list[str]] = []
    for line in text.splitlines():
        line = re.sub(r"([.!?])((?:\s*\[\d+\])+)", lambda m: m.group(2) + m.group(1), line.strip())
        claims = [s.strip() for s in sentences(line) if s.strip()]
        if claims:
            lines.append(claims)
    return lines


def check_claim(claim: str, passages: Sequence[str]) -> Claim:
    """``claim`` judged against the texts of the passages it may cite (``passages[n - 1]`` is passage n)."""
    cited = tuple(dict.fromkeys(int(n) for n in MARKER.findall(claim) if 1 <= int(n) <= len(passages)))
    said = MARKER.sub("", claim)
    if not cited:
        return Claim(claim, (), "cites no passage")
    have, stems = _read("\n".join(passages[n - 1] for n in cited))
    for figure, typed in _figures_typed(said):
        if figure not in have:
            return Claim(claim, cited, f"the figure {typed!r} is not in the passage it cites")
    for name in _names(said):
        # Compared as stems, so "Engineers" written in title case is found in "engineer"; an acronym or a
        # company, place or school the passage never names is not.
        if not set(terms(name)) <= stems:
            return Claim(claim, cited, f"the name {name!r} is not in the passage it cites")
    words = set(terms(said)) - _ATTRIBUTION
    if words:
        found = len(words & stems) / len(words)
        if found < SUPPORT:
            return Claim(claim, cited, f"only {found:.0%} of its words are in the passage it cites")
    return Claim(claim, cited)


def check_reply(text: str, passages: Sequence[str]) -> tuple[str, list[Claim]]:
    """The reply with only its supported claims (lines kept as lines), and every claim with its judgement."""
    judged = [[check_claim(claim, passages) for claim in line] for line in claims_of(text)]
    kept = "\n".join(" ".join(c.text for c in line if c.supported) for line in judged if any(c.supported for c in line))
    return kept, [c for line in judged for c in line]


@functools.lru_cache(maxsize=256)
def _read(source: str) -> tuple[frozenset[tuple[float, bool]], frozenset[str]]:
    """The figures and word stems of the cited passages' text; kept, since every claim of a reply (and every
    finished sentence while one streams) is checked against the same few passages."""
    return frozenset(_figures(source)), frozenset(terms(source))


def _figures_typed(text: str) -> list[tuple[tuple[float, bool], str]]:
    """(value, is a percentage) and the text as typed of every number in ``text``, number words included."""
    found = []
    for match in _FIGURE.finditer(text):
        whole, fraction, unit = match.group(1), match.group(2), (match.group(3) or "").lower()
        value = float(whole.replace(",", "") + (f".{fraction}" if fraction else ""))
        value *= _SCALE.get(unit, 1.0)
        found.append(((round(value, 6), unit in ("%", "percent")), match.group().strip()))
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in _NUMBER_WORDS:
            found.append(((float(_NUMBER_WORDS[word]), False), word))
    return found


def _figures(text: str) -> set[tuple[float, bool]]:
    """Every figure in ``text`` as (value, is a percentage); a percentage also counts as a plain number, since
    a passage's table may head a column with "%" and give bare numbers."""
    values = {figure for figure, _ in _figures_typed(text)}
    return values | {(value, False) for value, _ in values} | {(value, True) for value, _ in values}


def _names(text: str) -> list[str]:
    """Capitalised words not at the start of a sentence or item: the proper names and acronyms a claim uses."""
    body = _ITEM.sub("", text.strip())
    first = re.match(r"\W*[\w'’-]+", body)
    rest = body[first.end() :] if first else body
    # After a colon or a dash a new clause may start with a capital ("Senior: $170,000"); so may a quotation.
    return [m.group() for m in _NAME.finditer(rest) if not re.search(r"[:;—–\"“(]\s*$", rest[: m.start()]) and m.group() != "I"]
