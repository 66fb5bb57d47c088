"""Compose a short answer from retrieved passages without an LLM: statements chosen by meaning, each found in its passage."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from advisor.facets import statement_words
from advisor.lexical import LexicalIndex, terms
from advisor.query import Query
from advisor.statements import Row, Table, Unit, clean, normalized, row_text, to_number, units_of
from advisor.types import Answer, Citation, Hit

MAX_WORDS = 80  # an answer's prose, list lines included
ADVICE_WORDS = 120  # an advice question draws on several sections
LEAD_WORDS = 50  # a lead sentence is followed by the next ones of its paragraph up to this length
PASSAGES = 3  # statements come from the best few passages (and, in a follow-up, those the last answer cited)
# A statement's score mixes how close it is in meaning to the question (its own vector, computed at index
# time), how much of the question's words it and its heading contain (rare words count more), and how well
# retrieval ranked its passage. Meaning leads; words break ties between statements that mean alike.
DENSE, LEXICAL, PASSAGE = 0.5, 0.3, 0.2
NUMBER_BONUS = 0.05  # a statement with a figure, when the question asks for an amount (its expected answer type)
RUNNER_UP = 0.85  # another statement joins the lead only when it scores this close to it
ADVICE_RUNNER_UP = 0.75
MAX_TABLE_ROWS = 12  # a longer table is never shown whole
SINGLED_OUT = 0.1  # how much more of the question one row or item must contain than the rest to be picked

# A question asking for an amount ("how many", "what share", "how much … earn") wants a statement with a number.
_AMOUNT = re.compile(
    r"\b(how (many|much|big|large|old)|what (share|percentage|percent|proportion|number|fraction)|"
    r"percent\w*|%|salar\w*|pay|paid|earn\w*|make|wages?|income|compensation)\b",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"\d")
# A year or span of years ("in 2015", "2014-24", "from 2014 to 2024") dates a figure; it is no amount itself.
_YEARS = re.compile(r"(?<![$€£\d,.])(?:19|20)\d\d(?:\s*[-–]\s*(?:(?:19|20)\d\d|\d\d)\b)?(?!\d|[,.]\d|\s*(?:percent|%))")
# A question for a quantity ("how many hours", "what percentage", "how long") is answered by a figure or not at all.
_QUANTITY = re.compile(
    r"\b(how (many|much|long)|what (share|percentage|percent|proportion|number|fraction)|percent\w*)\b|%", re.IGNORECASE
)

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


def asks_quantity(question: str) -> bool:
    """Whether ``question`` asks for a number ("how many", "how much", "how long", "what percentage")."""
    return bool(_QUANTITY.search(question))


def asks_amount(question: str) -> bool:
    """Whether ``question`` asks for an amount: a quantity, a share, or pay ("what do they earn", "salary")."""
    return bool(_AMOUNT.search(question))


def has_figure(statement: Statement, years: bool = True) -> bool:
    """Whether a statement gives a number (a table row's rank alone does not count; a year counts only when
    ``years``, for "how long": "from 2014 to 2024" says nothing of how many or how much)."""
    unit = statement.unit
    said = re.sub(r"(^|\n|- |— )\d{1,2}\. ", " ", statement.display or "\n".join([unit.text, *unit.lines]))
    return bool(_DIGIT.search(said if years else _YEARS.sub(" ", said)))


@dataclass(frozen=True)
class Statement:
    """A statement considered for an answer, with its passage and its scores."""

    unit: Unit
    hit: Hit
    score: float
    dense: float  # cosine of its vector with the question's
    cover: float  # share of the question's weighted words found in it and its heading
    display: str = ""  # when set, the text shown instead of the unit's (a table question's computed reading)

    @property
    def words(self) -> int:
        """Length in words as shown: list lines included, and the lead-in or table title an item or row is
        said under."""
        unit = self.unit
        said_under = unit.context if unit.kind == "item" else unit.table.title if unit.kind == "row" and unit.table else ""
        return unit.words + len(said_under.split())

    @functools.cached_property
    def stems(self) -> list[str]:
        """The stems of what it says and what it is said under: its lines, lead-in or heading, its passage's
        section and its document's title (what a question's words and named jobs or places are looked for in)."""
        unit, chunk = self.unit, self.hit.chunk
        return statement_words(unit.text, *unit.lines, unit.context, chunk.title, chunk.section)


def rank_statements(
    query: Query,
    hits: Sequence[Hit],
    question_vectors: Sequence[np.ndarray],
    vectors_of: Callable[[Hit, list[Unit]], np.ndarray],
    lexical: LexicalIndex,
) -> list[Statement]:
    """Every statement of the given passages, best first.

    ``question_vectors`` are the question's embeddings (the question alone, and for a follow-up also with the
    conversation); a statement's closeness is the mean of its cosines with them.
    """
    weights = {t: w * lexical.idf(t) for t, w in query.weights.items()}
    # Adjacent words of the question ("data engineer") count as a phrase too, so "data scientists … engineers"
    # does not pass for "data engineer".
    asked = terms(query.question)
    pairs = {(a, b): min(weights.get(a, 0.0), weights.get(b, 0.0)) for a, b in zip(asked, asked[1:])}
    total = (sum(weights.values()) + sum(pairs.values())) or 1.0
    amount = asks_amount(query.question)
    out: list[Statement] = []
    best = max((h.score for h in hits), default=1.0) or 1.0
    for hit in hits:
        units = units_of(hit.chunk)
        if not units:
            continue
        matrix = vectors_of(hit, units)
        dense = np.mean([matrix @ q[0] for q in question_vectors], axis=0)
        heading = f"{hit.chunk.title} {hit.chunk.section}"
        for unit, closeness in zip(units, dense.tolist()):
            said_words = terms(f"{unit.text} {' '.join(unit.lines)}")
            around_words = terms(f"{unit.context} {heading}")
            said, around = set(said_words), set(around_words)
            found = sum(w * (1.0 if t in said else 0.5 if t in around else 0.0) for t, w in weights.items())
            said_pairs, around_pairs = set(zip(said_words, said_words[1:])), set(zip(around_words, around_words[1:]))
            found += sum(w * (1.0 if p in said_pairs else 0.5 if p in around_pairs else 0.0) for p, w in pairs.items())
            cover = found / total
            score = DENSE * closeness + LEXICAL * cover + PASSAGE * hit.score / best
            if amount and _DIGIT.search(unit.text + " ".join(unit.lines)):
                score += NUMBER_BONUS
            out.append(Statement(unit, hit, score, closeness, cover))
    out.sort(key=lambda s: -s.score)
    return out


def compose(ranked: list[Statement], hits: Sequence[Hit], question: str, advice: bool = False) -> tuple[Answer, list[Statement]]:
    """An answer from ranked statements: the best first, then close runners-up that add something; and the
    statements it states."""
    ranked = [s for s in ranked if verify(s)]
    if not ranked:
        return Answer("", kind="out_of_scope", hits=tuple(hits)), []
    chosen = _table_reading(ranked, question) or _lists_whole(
        _choose(_singled_out(ranked), advice), ranked, ADVICE_WORDS if advice else MAX_WORDS
    )
    return _render(chosen, hits), chosen


def _lists_whole(chosen: list[Statement], ranked: list[Statement], budget: int) -> list[Statement]:
    """Items of one list chosen beside the sentence that introduces it, or two or more of them, are shown as the
    list itself (when it fits the word budget): an item read without its lead-in can turn "common
    misconceptions" into claims. (An item alone is always shown under its lead-in.)"""
    out: list[Statement] = []
    for s in chosen:
        if s.unit.kind != "item":
            out.append(s)
            continue
        siblings = [c for c in chosen if c.unit.kind == "item" and c.hit is s.hit and c.unit.block == s.unit.block]
        introduced = any(_introduces(c, s) for c in chosen)
        whole = next((r for r in ranked if r.unit.kind == "list" and r.hit is s.hit and r.unit.block == s.unit.block), None)
        if whole is None or not (introduced or len(siblings) >= 2):
            out.append(s)
        elif whole not in out:
            kept = [c for c in out if not _introduces(c, s)]
            rest = [c for c in chosen[chosen.index(s) + 1 :] if not (c.hit is s.hit and c.unit.block == s.unit.block)]
            out = kept + [whole] if sum(c.words for c in kept + [whole] + rest) <= budget else kept + [s]
    return _lead_ins_first(out)


def _lead_ins_first(chosen: list[Statement]) -> list[Statement]:
    """An item chosen before the sentence that introduces its list: that sentence, with the sentences chosen just
    after it from its paragraph, comes first and the item follows it (said once, not as "lead-in: item" and then
    the lead-in again). Two or more items said under their lead-in need no sentence repeating it."""
    out = list(chosen)
    for item in [s for s in chosen if s.unit.kind == "item"]:
        if item not in out:
            continue
        at = out.index(item)
        lead_in = next((c for c in out[at + 1 :] if _introduces(c, item)), None)
        if lead_in is None:
            continue
        start = out.index(lead_in)
        run = [lead_in]
        for c in out[start + 1 :]:
            if not (c.unit.kind == "sentence" and c.hit is lead_in.hit and c.unit.block == lead_in.unit.block):
                break
            run.append(c)
        out = [c for c in out if c not in run]
        siblings = [c for c in out if c.unit.kind == "item" and c.hit is item.hit and c.unit.block == item.unit.block]
        if len(siblings) < 2:
            out[at:at] = run
    return out


def _introduces(sentence: Statement, item: Statement) -> bool:
    """Whether ``sentence`` is the lead-in of the list ``item`` belongs to."""
    return (
        sentence.unit.kind == "sentence"
        and item.unit.kind == "item"
        and sentence.hit is item.hit
        and bool(item.unit.context)
        and normalized(sentence.unit.text).startswith(normalized(item.unit.context))
    )


def _singled_out(ranked: list[Statement]) -> list[Statement]:
    """When the best statement is a whole list or table and the question names one of its rows or items (that
    one contains clearly more of the question's words than any other), the row or item answers instead."""
    lead = ranked[0]
    if lead.unit.kind not in ("list", "table"):
        return ranked
    members = [s for s in ranked if s.hit is lead.hit and s.unit.block == lead.unit.block and s.unit.kind in ("item", "row")]
    if len(members) < 2:
        return ranked
    members.sort(key=lambda s: -s.cover)
    if members[0].cover - members[1].cover < SINGLED_OUT:
        return ranked
    return [members[0]] + [s for s in ranked if s is not members[0]]


def operators(question: str) -> set[str]:
    """Stems of the question's table operators ("most", "fewest", "second", "over"): grammar, not topic."""
    words = [m.group() for pattern in (_MOST, _LEAST, _ABOVE, _BELOW) for m in pattern.finditer(question)]
    words += [w for w in _ORDINALS if re.search(rf"\b{w}\b", question, re.IGNORECASE)]
    return set(terms(" ".join(words)))


def verify(statement: Statement) -> bool:
    """True when every part of the statement occurs in its passage (emphasis markers and spacing aside)."""
    passage = normalized(statement.hit.chunk.text)
    return all(normalized(part) in passage for part in statement.unit.parts)


# --- tables as data ---------------------------------------------------------------------------


def _table_reading(ranked: list[Statement], question: str) -> list[Statement] | None:
    """For a question about a table's extremes, order, a range or a comparison: the rows that answer it,
    computed from the parsed table. None when the question is no such question or no table is on topic."""
    lead = ranked[0]
    ordinal = next((n for word, n in _ORDINALS.items() if re.search(rf"\b{word}\b", question, re.IGNORECASE)), None)
    above, below = _ABOVE.search(question), _BELOW.search(question)
    if not (ordinal or _MOST.search(question) or _LEAST.search(question) or above or below):
        return None
    # The table must be about the question: one of its rows or the table itself close to the lead.
    candidates = [s for s in ranked[:12] if s.unit.table is not None and s.score >= RUNNER_UP * lead.score]
    if not candidates:
        return None
    best = candidates[0]
    table = best.unit.table
    assert table is not None
    # Words of the table's own title or header are its name, not the question's operator: "Of the top
    # industries …, which has the smallest share?" asks for the smallest.
    named = f" {' '.join(re.findall(r'[a-z]+', f'{table.title} {table.header}'.lower()))} "
    most = any(f" {m.group().lower()} " not in named for m in _MOST.finditer(question))
    least = any(f" {m.group().lower()} " not in named for m in _LEAST.finditer(question))
    if not (ordinal or most or least or above or below):
        return None
    if len(table.columns) > 2 and all(to_number(c) is not None for c in table.columns[1:]):
        # Columns named by figures (percentiles, years): each row is a series, not one amount to rank, and "the
        # top 10%" names a column, not the largest row.
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
    row_statements = {s.unit.row: s for s in ranked if s.unit.table is table and s.unit.kind == "row"}
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
    """A row as a computed reading, in plain words: an extreme or a place in the order as a sentence naming the
    table ("In Average Salary …, Senior Level is the highest of the three listed, at $170,000."), a comparison or a
    range as the row with a short remark; the row's label and values always as written."""
    what = row_text(table, i)
    row, count = table.rows[i], _number_word(len(table.rows))
    if note in ("higher", "lower") and i == picked[0]:
        return f"{what} (the {note} of the {_number_word(len(picked))} you named)"
    place = {"first": "the highest", "last": "the lowest"}.get(note) or (
        f"{_ORDINAL_WORDS.get(int(note[1:]), note[1:] + 'th')}" if note.startswith("#") else ""
    )
    if place and row.label:
        if table.ranked and row.rank is not None:  # a ranked list: its order is the ranking, not the values
            place = {"the highest": "first", "the lowest": "last"}.get(place, place)
        elif note.startswith("#"):
            place += " highest"
        values = ", ".join(row.values)
        title = clean(table.title).rstrip(":. ")
        sentence = f"{clean(row.label)} is {place} of the {count} listed" + (f", at {values}" if values else "")
        return f"In {title}, {sentence}." if title else f"{sentence}."
    if note and i == picked[0]:
        return f"{what} ({note})"
    return what


_ORDINAL_WORDS = {
    1: "first",
    2: "second",
    3: "third",
    4: "fourth",
    5: "fifth",
    6: "sixth",
    7: "seventh",
    8: "eighth",
    9: "ninth",
    10: "tenth",
}


def _number_word(n: int) -> str:
    """A small count in words, as a sentence says it ("three"); larger ones in digits."""
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
    return words[n] if 0 <= n < len(words) else str(n)


# --- choosing and rendering -------------------------------------------------------------------


def _choose(ranked: list[Statement], advice: bool) -> list[Statement]:
    """The best statement, then close runners-up from elsewhere that add something, within the word budget."""
    lead = ranked[0]
    chosen = [lead]
    words = lead.words
    budget = ADVICE_WORDS if advice else MAX_WORDS
    # A sentence rarely stands alone: the next ones of its paragraph explain it, as far as a short answer allows.
    if lead.unit.kind == "sentence":
        for follower in sorted(
            (
                s
                for s in ranked
                if s.hit is lead.hit
                and s.unit.block == lead.unit.block
                and s.unit.kind == "sentence"
                and s.unit.position > lead.unit.position
            ),
            key=lambda s: s.unit.position,
        ):
            if words + follower.words > LEAD_WORDS or follower.unit.position != chosen[-1].unit.position + 1:
                break
            chosen.append(follower)
            words += follower.words
    bar = (ADVICE_RUNNER_UP if advice else RUNNER_UP) * lead.score
    limit = 4 if advice else 3
    sections = {(lead.hit.chunk.source, lead.hit.chunk.section)}
    for other in ranked[1:]:
        if len([c for c in chosen if c.unit.kind != "sentence" or c is lead]) >= limit or other.score < bar:
            break
        if other.dense < RUNNER_UP * lead.dense:
            continue  # close in words but not in meaning: it would answer another question
        if lead.unit.kind in ("row", "item") and other.hit is lead.hit and other.unit.block == lead.unit.block:
            continue  # the question named one row or item: the others of its table or list are not asked for
        if any(_overlaps(other, c) for c in chosen) or words + other.words > budget:
            continue
        where = (other.hit.chunk.source, other.hit.chunk.section)
        if advice and where in sections:
            continue  # advice draws on several sections
        chosen.append(other)
        sections.add(where)
        words += other.words
    return chosen


def _overlaps(a: Statement, b: Statement) -> bool:
    """Whether two statements say the same thing (one inside the other, or the same list or table)."""
    ta, tb = normalized(a.unit.text), normalized(b.unit.text)
    if ta == tb:
        return True  # a page that says a sentence twice ("need at least a master's degree …") is quoted once
    if a.hit.chunk.id == b.hit.chunk.id and a.unit.block == b.unit.block:
        if a.unit.kind in ("list", "table", "answer") or b.unit.kind in ("list", "table", "answer"):
            return True
        if a.unit.kind in ("item", "row") and b.unit.kind in ("item", "row"):
            return False
        return a.unit.position == b.unit.position
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
        if i and chosen[i - 1].hit is statement.hit and any(_introduces(c, statement) for c in chosen[:i]):
            # An item right after the sentences that introduce its list is listed under them, not said with its
            # lead-in again (nor as a claim of its own: "Machine Learning is the same as AI" is a misconception).
            pieces[-1] += f"\n- {clean(statement.unit.text)}"
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
        return clean(a.unit.context).rstrip(":. ")
    table = a.unit.table
    if a.unit.kind == b.unit.kind == "row" and table is not None and table is b.unit.table and a.hit is b.hit:
        return clean(table.title).rstrip(":. ")
    return ""


def _row_sentence(table: Table, i: int, shown: str) -> str:
    """A table row said on its own, in plain words naming its table, its cells as written and its figures last:
    "For Entry Level, the table “Average Salary of Machine Learning Engineers” gives $85,000", "In the table
    “World’s Top Industries …”, Manufacturing ranks fifth, at 12%"."""
    title = f"the table “{clean(table.title).rstrip(':. ')}”"
    row = table.rows[i] if 0 <= i < len(table.rows) else None
    written = row_text(table, i) if row is not None else ""
    if row is None or not row.label or not row.values or not shown.startswith(written):
        return f"In {title}: {shown}"  # a row without a label: as shown
    label, remark = clean(row.label), shown[len(written) :]  # a computed remark: " (over 55)"
    if table.ranked and row.rank is not None:
        place = _ORDINAL_WORDS.get(row.rank, f"number {row.rank}")
        return f"In {title}, {label} ranks {place}, at {', '.join(row.values)}{remark}"
    named = table.columns[1:] if table.columns else ()
    if len(row.values) > 1 and len(named) == len(row.values):
        values = "; ".join(f"{name}: {value}" for name, value in zip(named, row.values))
        return f"For {label}, {title} gives {values}{remark}"
    return f"For {label}, {title} gives {', '.join(row.values)}{remark}"


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
        head = clean(unit.text).rstrip(":. ")
        return f"{head} {marker}:\n" + "\n".join(f"- {clean(line)}" for line in shown)
    text = statement.display or unit.text
    if unit.kind == "item" and unit.context and not statement.display:
        text = f"{unit.context.rstrip(':. ')}: {text}"
    elif unit.kind == "row" and unit.table is not None and unit.table.title and not statement.display.startswith("In "):
        # A row alone, as a sentence naming its table (a computed reading, "In …, X is the highest", names it itself).
        text = _row_sentence(unit.table, unit.row, text)
    text = clean(text).rstrip()
    if text and text[-1] in ".!?":
        return f"{text[:-1]} {marker}{text[-1]}"
    return f"{text} {marker}."
