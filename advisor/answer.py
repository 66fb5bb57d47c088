"""Compose a short answer from retrieved passages without an LLM: the statements the answer model judges to answer."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from advisor.judge import Calibration
from advisor.lexical import terms
from advisor.train import CANDIDATES, STATEMENT_KINDS
from advisor.statements import Row, Table, Unit, clean, normalized, row_text, to_number, units_of
from advisor.types import Answer, Citation, Hit

MAX_WORDS = 80  # an answer's prose, list lines included
ADVICE_WORDS = 120  # an advice question draws on several sections
PASSAGES = 3  # statements come from the best few passages (and, in a follow-up, those the last answer cited)
MAX_TABLE_ROWS = 12  # a longer table is never shown whole

# Table questions, in English grammar rather than any document's words.
_MOST = re.compile(
    r"\b(most|highest|largest|biggest|greatest|top|leading|majority|best[- ]paid|best[- ]paying|"
    r"most common|more|higher|larger|bigger)\b",
    re.IGNORECASE,
)
_LEAST = re.compile(
    r"\b(least|lowest|fewest|smallest|minority|rarest|bottom|cheapest|less|lower|fewer|smaller|"
    r"worst[- ]paid)\b",
    re.IGNORECASE,
)
_ORDINALS = {
    "second": 2,
    "2nd": 2,
    "third": 3,
    "3rd": 3,
    "fourth": 4,
    "4th": 4,
    "fifth": 5,
    "5th": 5,
    "sixth": 6,
    "6th": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
}
_ABOVE = re.compile(r"\b(over|above|more than|older than|greater than|at least|beyond)\s+\$?(\d[\d,.]*)", re.IGNORECASE)
_BELOW = re.compile(r"\b(under|below|less than|younger than|at most)\s+\$?(\d[\d,.]*)", re.IGNORECASE)
_LABEL_RANGE = re.compile(r"^\D*?(\d[\d,.]*)\s*(?:(\+|and (?:over|above|older))|[-–]\s*(\d[\d,.]*))?\s*\D*$")
_COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}
_PLACE_WORDS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh", 8: "eighth"}


@dataclass(frozen=True)
class Statement:
    """A statement considered for an answer, with its passage and its scores."""

    unit: Unit
    hit: Hit
    score: float  # the answer model's probability that it answers the question (0 for what it did not read)
    dense: float  # cosine of its vector with the question's
    display: str = ""  # when set, the text shown instead of the unit's (a table question's computed reading)

    @property
    def words(self) -> int:
        """Length in words as shown: list lines included, and the lead-in or table title an item or row is
        said under."""
        unit = self.unit
        said_under = unit.context if unit.kind == "item" else unit.table.title if unit.kind == "row" and unit.table else ""
        return unit.words + len(said_under.split())


def candidates(
    hits: Sequence[Hit],
    question_vectors: Sequence[np.ndarray],
    vectors_of: Callable[[Hit, list[Unit]], np.ndarray],
    questions_too: bool = False,
) -> list[Statement]:
    """Every statement of the given passages, closest in meaning to the question first (score 0: not yet judged).

    ``question_vectors`` are the question's embeddings (the question alone, and for a follow-up also with the
    conversation); a statement's closeness is the mean of its cosines with them. A statement that is itself a
    question (an interview question listed, an FAQ heading said in the text) answers nothing unless
    ``questions_too``.
    """
    out: list[Statement] = []
    seen: set[tuple[str, str]] = set()
    for hit in hits:
        units = units_of(hit.chunk)
        if not units:
            continue
        matrix = vectors_of(hit, units)
        dense = np.mean([matrix @ q[0] for q in question_vectors], axis=0)
        for unit, closeness in zip(units, dense.tolist()):
            if not questions_too and unit.text.rstrip().endswith("?"):
                continue
            key = (hit.chunk.source, unit.embed)
            if key in seen:  # overlapping passages repeat a statement: keep it once, from the better passage
                continue
            seen.add(key)
            out.append(Statement(unit, hit, 0.0, closeness))
    out.sort(key=lambda s: -s.dense)
    return out


def judge(statements: list[Statement], probabilities: Callable[[list[Statement]], np.ndarray]) -> list[Statement]:
    """The ``CANDIDATES`` closest statements scored by the answer model, most probable first (the model was
    trained on the same kinds of statement, handed to it the same way)."""
    read = [s for s in statements if s.unit.kind in STATEMENT_KINDS][:CANDIDATES]
    if not read:
        return []
    scored = [replace(s, score=float(p)) for s, p in zip(read, probabilities(read))]
    return sorted(scored, key=lambda s: -s.score)


def compose(
    judged: list[Statement],
    everything: list[Statement],
    hits: Sequence[Hit],
    question: str,
    calibration: Calibration,
    advice: bool = False,
) -> tuple[Answer, list[Statement]]:
    """An answer from judged statements: the most probable first, then others the model rates nearly as
    likely to answer; and the statements it states. ``everything`` holds the whole lists and tables they
    belong to."""
    judged = [s for s in judged if verify(s)]
    if not judged:
        return Answer("", kind="out_of_scope", hits=tuple(hits)), []
    budget = ADVICE_WORDS if advice else MAX_WORDS
    chosen = _table_reading(judged, everything, question, calibration) or _lists_whole(
        _choose(judged, calibration, advice), everything, budget
    )
    return _render(chosen, hits), chosen


def _lists_whole(chosen: list[Statement], everything: list[Statement], budget: int) -> list[Statement]:
    """Two or more items of one list chosen are shown as the list itself (when it fits the word budget), under
    its lead-in: an item read without it can turn "common misconceptions" into claims. (An item alone is always
    shown under its lead-in.)"""
    out: list[Statement] = []
    for s in chosen:
        if s.unit.kind != "item":
            out.append(s)
            continue
        siblings = [c for c in chosen if c.unit.kind == "item" and c.hit is s.hit and c.unit.block == s.unit.block]
        whole = next((r for r in everything if r.unit.kind == "list" and r.hit is s.hit and r.unit.block == s.unit.block), None)
        if whole is None or len(siblings) < 2:
            out.append(s)
        elif whole not in out:
            rest = [c for c in chosen[chosen.index(s) + 1 :] if not (c.hit is s.hit and c.unit.block == s.unit.block)]
            out = out + [whole] if sum(c.words for c in out + [whole] + rest) <= budget else out + [s]
    return out


def verify(statement: Statement) -> bool:
    """True when every part of the statement occurs in its passage (emphasis markers and spacing aside)."""
    passage = normalized(statement.hit.chunk.text)
    return all(normalized(part) in passage for part in statement.unit.parts)


# --- tables as data ---------------------------------------------------------------------------


def _table_reading(
    ranked: list[Statement], everything: list[Statement], question: str, calibration: Calibration
) -> list[Statement] | None:
    """For a question about a table's extremes, order, a range or a comparison: the rows that answer it,
    computed from the parsed table. None when the question is no such question or no table is on topic."""
    lead = ranked[0]
    ordinal = next((n for word, n in _ORDINALS.items() if re.search(rf"\b{word}\b", question, re.IGNORECASE)), None)
    above, below = _ABOVE.search(question), _BELOW.search(question)
    if not (ordinal or _MOST.search(question) or _LEAST.search(question) or above or below):
        return None
    # The table must be about the question: one of its rows or the table itself close to the lead.
    on_topic = [
        s for s in ranked if s.unit.table is not None and s.score >= max(calibration.threshold, calibration.join * lead.score)
    ]
    if not on_topic:
        return None
    best = on_topic[0]
    table = best.unit.table
    assert table is not None
    # Words of the table's own title or header are its name, not the question's operator: "Of the top
    # industries …, which has the smallest share?" asks for the smallest.
    named = f" {' '.join(re.findall(r'[a-z]+', f'{table.title} {table.header}'.lower()))} "
    most = any(f" {m.group().lower()} " not in named for m in _MOST.finditer(question))
    least = any(f" {m.group().lower()} " not in named for m in _LEAST.finditer(question))
    if not (ordinal or most or least or above or below):
        return None
    rows = list(table.rows)
    picked: list[int] = []
    note = ""
    if above or below:
        bound = to_number((above or below).group(2))  # type: ignore[union-attr]
        inclusive = (above or below).group(1).lower() in ("at least", "at most")  # type: ignore[union-attr]
        picked = [i for i, row in enumerate(rows) if _in_range(row, bound, above is not None, inclusive)]
        note = f"{(above or below).group(0)}"  # type: ignore[union-attr]
    else:
        mentioned = _mentioned_rows(rows, question)
        order = _order(table, descending=not (least and not most) or bool(mentioned and most))
        if len(mentioned) >= 2:  # "which pays more, mid-level or senior?"
            numbers = [rows[i].number() for i in mentioned]
            if all(n is not None for n in numbers):
                top = (
                    max(mentioned, key=lambda i: rows[i].number() or 0.0)
                    if not least or most
                    else min(mentioned, key=lambda i: rows[i].number() or 0.0)
                )
                picked = [top] + [i for i in mentioned if i != top]
                note = "higher" if (not least or most) else "lower"
        elif order:
            k = (ordinal or 1) - 1
            if k < len(order):
                picked = [order[k]]
                where = "last" if least and not most else "first"
                note = f"{'#' + str(ordinal) if ordinal else where}"
    if not picked:
        return None
    row_statements = {s.unit.row: s for s in everything if s.unit.table is table and s.unit.kind == "row"}
    chosen = []
    for i in picked[:6]:
        s = row_statements.get(i)
        if s is None:
            continue
        chosen.append(replace(s, display=_reading(table, i, picked, note)))
    return chosen or None


def _order(table: Table, descending: bool) -> list[int]:
    """Row indexes from the first (rank 1, or the largest value) to the last; reversed for ``descending=False``."""
    rows = table.rows
    if table.ranked and all(r.rank is not None for r in rows):
        order = sorted(range(len(rows)), key=lambda i: rows[i].rank or 0)
    else:
        numbered = [i for i, r in enumerate(rows) if r.number() is not None]
        if len(numbered) < 2:
            return []
        order = sorted(numbered, key=lambda i: -(rows[i].number() or 0.0))
    return order if descending else order[::-1]


def _mentioned_rows(rows: list[Row], question: str) -> list[int]:
    """Rows whose label the question names ("mid-level or senior", "the UK or Germany")."""
    asked = set(terms(question))
    found = []
    for i, row in enumerate(rows):
        label = [t for t in terms(row.label) if t not in ("level",)] if row.label else []
        if label and all(t in asked for t in label[:1]) and any(t in asked for t in label):
            found.append(i)
    return found


def _in_range(row: Row, bound: float | None, above: bool, inclusive: bool = False) -> bool:
    """Whether a row labelled with a number or range ("55+", "25-34", "Over 10 years") lies above/below ``bound``;
    for a row labelled with words ("Retail 15%"), whether its value does ("more than 15 percent": strictly,
    unless ``inclusive``, "at least 15")."""
    if bound is None or not row.label:
        return False
    match = _LABEL_RANGE.match(row.label)
    if not match:
        value = row.number()
        if value is None:
            return False
        return (value >= bound if above else value <= bound) if inclusive else (value > bound if above else value < bound)
    low = to_number(match.group(1))
    high = None if match.group(2) else to_number(match.group(3)) if match.group(3) else low
    if low is None:
        return False
    if above:
        return low >= bound  # "55+" and "55-64" are over 55; "45-54" is not
    return (high if high is not None else float("inf")) <= bound


def _reading(table: Table, i: int, picked: list[int], note: str) -> str:
    """A row as a computed reading in plain words: the row as written, then where it stands among the rows."""
    what = row_text(table, i)
    rows = len(table.rows)
    count = _COUNT_WORDS.get(rows, str(rows))
    if note in ("higher", "lower") and i == picked[0]:
        return f"{what}, the {note} of the ones you named"
    if note == "first":
        return f"{what}, the highest of the {count} listed"
    if note == "last":
        return f"{what}, the lowest of the {count} listed"
    if note.startswith("#"):
        place = _PLACE_WORDS.get(int(note[1:]), f"number {note[1:]}")
        return f"{what}, {place} of the {count} listed"
    if note and i == picked[0]:
        return f"{what} ({note})"
    return what


# --- choosing and rendering -------------------------------------------------------------------


def _choose(ranked: list[Statement], calibration: Calibration, advice: bool) -> list[Statement]:
    """The most probable statement, then others the model rates nearly as likely (its learned ``join`` share
    of the best) that say something else, within the word budget."""
    lead = ranked[0]
    chosen = [lead]
    words = lead.words
    budget = ADVICE_WORDS if advice else MAX_WORDS
    bar = max(calibration.threshold, calibration.join * lead.score)
    for other in ranked[1:]:
        if len(chosen) >= (4 if advice else 3) or other.score < bar:
            break
        if any(_overlaps(other, c) for c in chosen) or words + other.words > budget:
            continue
        chosen.append(other)
        words += other.words
    # Said in the order the document says them, so a list reads as a list and a paragraph as a paragraph.
    rest = sorted(chosen[1:], key=lambda s: (s.hit.rank, s.unit.block, s.unit.position))
    return [lead, *rest]


def _overlaps(a: Statement, b: Statement) -> bool:
    """Whether two statements say the same thing (one inside the other, or the same list or table)."""
    if a.hit.chunk.id == b.hit.chunk.id and a.unit.block == b.unit.block:
        if a.unit.kind in ("list", "table", "answer") or b.unit.kind in ("list", "table", "answer"):
            return True
        if a.unit.kind in ("item", "row") and b.unit.kind in ("item", "row"):
            return False
        return a.unit.position == b.unit.position
    ta, tb = normalized(a.unit.text), normalized(b.unit.text)
    return ta in tb or tb in ta


def _render(chosen: list[Statement], hits: Sequence[Hit]) -> Answer:
    numbers: dict[int, int] = {}
    quotes: dict[int, list[str]] = {}
    pieces: list[str] = []
    for i, statement in enumerate(chosen):
        chunk_id = statement.hit.chunk.id
        n = numbers.setdefault(chunk_id, len(numbers) + 1)
        quotes.setdefault(chunk_id, [])
        quotes[chunk_id] += [q for q in _quotes(statement) if q not in quotes[chunk_id]]
        under = _listed_under(chosen[i - 1], statement) if i else ""
        if under:
            # Items of one list, rows of one table, are said under their lead-in or title once:
            # "Lead-in [1]:\n- item\n- item".
            previous = chosen[i - 1]
            if not (i > 1 and _listed_under(chosen[i - 2], previous)):
                pieces[-1] = f"{under} [{n}]:\n- {clean(previous.display or previous.unit.text)}"
            pieces[-1] += f"\n- {clean(statement.display or statement.unit.text)}"
            continue
        pieces.append(with_marker(statement, n))
    citations = []
    for chunk_id, n in numbers.items():
        hit = next(s.hit for s in chosen if s.hit.chunk.id == chunk_id)
        citations.append(Citation(n, hit, tuple(quotes[chunk_id])))
    text = "\n".join(pieces) if any("\n" in p for p in pieces) else " ".join(pieces)
    return Answer(text, tuple(citations), kind="answer", hits=tuple(hits))


def _listed_under(a: Statement, b: Statement) -> str:
    """What ``b`` is listed under together with ``a``: the lead-in of the list both are items of (said as
    written), the title of the table both are rows of; "" when neither."""
    if a.unit.kind == b.unit.kind == "item" and not b.display and a.hit is b.hit and a.unit.block == b.unit.block:
        return a.unit.context.rstrip(":. ")
    table = a.unit.table
    if a.unit.kind == b.unit.kind == "row" and table is not None and table is b.unit.table and a.hit is b.hit:
        return clean(table.title).rstrip(":. ")
    return ""


def _quotes(statement: Statement) -> list[str]:
    """Exact spans of the passage the statement uses, for highlighting."""
    text = statement.hit.chunk.text
    return [p for p in statement.unit.parts if p and p in text]


def with_marker(statement: Statement, n: int) -> str:
    """The statement as shown, with its [n] marker."""
    marker = f"[{n}]"
    unit = statement.unit
    if unit.kind in ("list", "table") and not statement.display:
        shown = unit.lines if unit.kind == "list" or len(unit.lines) <= MAX_TABLE_ROWS else unit.lines[:MAX_TABLE_ROWS]
        head = unit.text.rstrip(":. ")
        return f"{head} {marker}:\n" + "\n".join(f"- {line}" for line in shown)
    text = statement.display or unit.text
    if unit.kind == "item" and unit.context and not statement.display:
        text = f"{unit.context.rstrip(':. ')}: {text}"
    elif unit.kind == "row" and unit.table is not None and unit.table.title:
        text = f"{unit.table.title} — {text}"
    text = clean(text).rstrip()
    if text and text[-1] in ".!?":
        return f"{text[:-1]} {marker}{text[-1]}"
    return f"{text} {marker}."
