"""Compose a short answer from retrieved passages, without an LLM; every statement is checked against the passage it cites."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from advisor.lexical import LexicalIndex, terms
from advisor.query import Query
from advisor.split import parse_blocks
from advisor.types import Answer, Citation, Hit

MAX_WORDS = 80  # aim: the answer's prose, list lines included
LEAD_WORDS = 50  # a lead sentence is followed by the next ones of its paragraph up to this length
SECOND_OPINION = 0.85  # another statement joins the lead only when it scores this close to it
MAX_TABLE_ROWS = 10  # a longer table is never shown whole
# A statement's score: how much of the question the text shown with it covers, plus how well retrieval
# ranked its passage (retrieval judges meaning; word coverage only picks the statement within). Statements
# come from the best len(RANK_PRIOR) passages. Set on eval/devset.jsonl: any weight 0.5..1.0 did about as well.
PASSAGE_WEIGHT = 0.7
RANK_PRIOR = (1.0, 0.8, 0.65)
NUMBER_BONUS = 0.15  # a statement with a number, when the question asks for an amount
LENGTH_COST = 0.001  # per word: of two statements that cover a question equally, the shorter wins
SINGLED_OUT = 0.05  # how much more of the question one row or item must cover than the rest to be picked

_EMPHASIS = re.compile(r"\*{1,2}(?=\S)|(?<=\S)\*{1,2}")
_SENTENCE_END = re.compile(r"[.!?]\s+(?=[A-Z0-9\"“'(*])")
# A sentence opening with one of these leans on the sentence before it and never stands alone.
_LEANS_BACK = re.compile(r"^(however|but|they|their|them|it|its|this|these|those|that|such|moreover|furthermore|"
                         r"also|despite|thus|therefore|hence|in addition|as a result|as expected|he|she|his|her)\b",
                         re.IGNORECASE)
_ABBREVIATION = re.compile(r"\b(vs|e\.g|i\.e|etc|Dr|Mr|Ms|St|approx|incl)\.$", re.IGNORECASE)
_ITEM_MARK = re.compile(r"^\s*(?:[•·▪◦‣●○■□➢➤✓✔]|[-*+](?=\s)|\(?\d{1,3}[.)](?=\s))\s*")
_VALUE = re.compile(r"(?:^|\s)((?:[$€£]\s?)?\d[\d,]*(?:\.\d+)?\s?(?:%|billion|million|thousand|bn)?)$")
_RANK = re.compile(r"^(\d{1,3})\s+(?=\S)")
# Words that open a value column's name in a statistics table ("Experience Level | Average Annual Salary").
_COLUMN_STARTS = {"percentage", "average", "number", "median", "share", "estimated", "predicted", "projected",
                  "total", "count", "expected", "mean"}
_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
             "fifth": 5, "5th": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10}
_MOST = re.compile(r"\b(most|top|highest|largest|biggest|majority|leading|lead|leads|popular|greatest|"
                   r"number one|no\.? 1|best[- ]paid|common|commonest)\b", re.IGNORECASE)
# A question asking for an amount wants a statement with a number in it (the expected answer type).
_QUANTITY = re.compile(r"\b(how (many|much|big|large|fast|old)|percent\w*|share|proportion|number of|salar\w*|pay|paid|"
                       r"earn\w*|average|rate|size|worth|cost|figure|statistics?)\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d")
_LEAST = re.compile(r"\b(least|lowest|fewest|smallest|minority|rarest|bottom|last)\b", re.IGNORECASE)
# Stems of words about a position in a list or table ("which one comes second?"): they point into the
# previous answer, never at a new topic.
POSITIONAL = frozenset(terms(" ".join(_ORDINALS) + " top bottom last next previous highest lowest most least largest "
                             "smallest biggest fewest rank ranked ranking place placed position come comes coming"))


@dataclass(frozen=True)
class Statement:
    """One fact an answer may state, built only from strings found in its passage."""

    hit: Hit
    kind: str  # "sentence" | "item" | "list" | "row" | "table"
    parts: tuple[str, ...]  # source strings the display is built from; each must occur in the passage
    quotes: tuple[str, ...]  # exact spans of the passage used, for highlighting
    display: str  # the statement as shown, without its [n] marker
    lines: tuple[str, ...] = ()  # list lines shown under the display line
    score: float = 0.0
    block: int = -1  # which block of the passage it comes from
    position: int = 0  # order within the block
    title: str = ""  # a table row's table title, shown when the row has no named value

    @property
    def words(self) -> int:
        """Length in words, list lines included."""
        return len(self.display.split()) + sum(len(line.split()) for line in self.lines)


def compose(query: Query, hits: Sequence[Hit], lexical: LexicalIndex) -> Answer:
    """A concise answer to ``query`` from ``hits``: the most relevant statement first, each with its [n]."""
    scorer = _Scorer(query, lexical)
    statements = [s for hit, prior in zip(hits, RANK_PRIOR) for s in _statements(hit, scorer, PASSAGE_WEIGHT * prior)]
    statements = [s for s in statements if verify(s)]
    if not statements:
        return Answer("", kind="out_of_scope", hits=tuple(hits))
    chosen = _choose(statements)
    return _render(chosen, hits)


def verify(statement: Statement) -> bool:
    """True when every part of the statement occurs in its passage (emphasis markers and spacing aside)."""
    passage = normalized(statement.hit.chunk.text)
    return all(normalized(part) in passage for part in statement.parts) and all(
        quote in statement.hit.chunk.text for quote in statement.quotes
    )


# --- scoring -------------------------------------------------------------------------------


class _Scorer:
    """How much of the query a piece of text covers, weighting each query term by its rarity."""

    def __init__(self, query: Query, lexical: LexicalIndex) -> None:
        self.query = query
        # In a follow-up the earlier question found the passage; its words count half again in picking
        # the statement, so "And at the senior level?" picks the senior row, not the entry-level one.
        self.weights = {t: w * lexical.idf(t) * (1.0 if t in query.own else 0.5) for t, w in query.weights.items()}
        # Adjacent word pairs of the question ("data engineer") count as phrases too, so "data scientists
        # ... engineers" does not pass for "data engineer".
        words = terms(query.question)
        self.pairs = {(a, b): min(self.weights.get(a, 0.0), self.weights.get(b, 0.0)) for a, b in zip(words, words[1:])}
        self.total = (sum(self.weights.values()) + sum(self.pairs.values())) or 1.0
        own = query.question.lower()
        self.ordinal = next((n for word, n in _ORDINALS.items() if re.search(rf"\b{word}\b", own)), None)
        self.most = bool(_MOST.search(own))
        self.least = bool(_LEAST.search(own))
        self.quantity = bool(_QUANTITY.search(query.text))

    def cover(self, text: str, context: str = "") -> float:
        """Share (0..1) of the query's weighted terms found in ``text``; those found only in the text
        around it (``context``: its heading, table title, lead-in) count half."""
        said_words, around_words = terms(text), terms(context)
        said, around = set(said_words), set(around_words) - set(said_words)
        found = sum(self.weights.get(t, 0.0) for t in said) + 0.5 * sum(self.weights.get(t, 0.0) for t in around)
        said_pairs = set(zip(said_words, said_words[1:]))
        around_pairs = set(zip(around_words, around_words[1:])) - said_pairs
        found += sum(w for p, w in self.pairs.items() if p in said_pairs)
        found += 0.5 * sum(w for p, w in self.pairs.items() if p in around_pairs)
        return found / self.total

    def answer_type(self, text: str) -> float:
        """A bonus for a statement holding a number when the question asks for an amount."""
        return NUMBER_BONUS if self.quantity and _NUMBER.search(text) else 0.0


# --- statements ----------------------------------------------------------------------------


def _statements(hit: Hit, scorer: _Scorer, prior: float) -> Iterator[Statement]:
    """Every statement the passage offers, each scored on the text a reader sees with it."""
    text = hit.chunk.text
    blocks = parse_blocks(text)
    heading = hit.chunk.section.split(" › ")[-1] if hit.chunk.section else ""
    heading_part = heading if heading and normalized(heading) in normalized(text) else ""
    for b, block in enumerate(blocks):
        body = text[block.start:block.end]
        if block.kind == "heading":
            heading = heading_part = block.heading
            continue
        previous = blocks[b - 1] if b else None
        lead_in = text[previous.start:previous.end] if previous is not None and previous.kind == "paragraph" else ""
        if block.kind == "paragraph":
            for i, group in enumerate(_sentence_groups(body)):
                said = " ".join(group)
                score = prior + scorer.cover(said, heading) + scorer.answer_type(said) + (0.02 if i == 0 else 0.0)
                yield Statement(hit, "sentence", tuple(group), tuple(group), _clean(said),
                                score=score - LENGTH_COST * len(said.split()), block=b, position=i)
        elif block.kind == "list":
            yield from _list_statements(hit, body, lead_in or heading_part, heading, scorer, prior, b)
        elif block.kind == "table":
            yield from _table_statements(hit, body, heading_part, scorer, prior, b)


def _singled_out(covers: list[float]) -> list[bool]:
    """Which rows or items the question picks out: each covers clearly more of it than every other."""
    if len(covers) < 2:
        return [False] * len(covers)
    return [c - max(covers[:i] + covers[i + 1:]) > SINGLED_OUT for i, c in enumerate(covers)]


def _list_statements(hit: Hit, body: str, label: str, heading: str, scorer: _Scorer, prior: float,
                     b: int) -> Iterator[Statement]:
    items = [line.strip() for line in body.splitlines() if line.strip()]
    shown = [_ITEM_MARK.sub("", item) for item in items]
    label_line = _first_sentence(label) if label else ""
    head = (label_line,) if label_line else ()
    covers = [scorer.cover(item) for item in shown]
    picked = _singled_out(covers)
    # The whole list answers a question about the list's subject; one item answers a question about itself.
    whole = prior + scorer.cover(f"{label} {' '.join(shown)}", heading) + (-0.1 if any(picked) else 0.1)
    yield Statement(hit, "list", head + tuple(shown), head + tuple(items), _clean(label_line) or _clean(heading),
                    lines=tuple(_clean(s) for s in shown), score=whole - LENGTH_COST * len(" ".join(shown).split()),
                    block=b)
    for i, (item, text) in enumerate(zip(items, shown)):
        score = prior + scorer.cover(text, f"{heading} {label}") + scorer.answer_type(text) + (0.1 if picked[i] else -0.1)
        yield Statement(hit, "item", head + (text,), head + (item,), _clean(label_line), lines=(_clean(text),),
                        score=score - LENGTH_COST * len(text.split()), block=b, position=i)


@dataclass(frozen=True)
class _Row:
    line: str
    rank: str
    label: str
    values: tuple[str, ...]


def _table_statements(hit: Hit, body: str, title: str, scorer: _Scorer, prior: float, b: int) -> Iterator[Statement]:
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if len(lines) < 2:
        return
    header = lines[0]
    columns = _text_columns(header, title)
    rows = _text_rows(lines[1:]) if columns else []
    if not rows:
        rows = [_parse_row(line, ranked=header.lower().startswith("rank ")) for line in lines[1:]]
        columns = _columns(header, rows)
    if columns is None:
        return
    label_column, value_columns = columns
    title_part = (title,) if title else ()
    context = f"{title} {header}"
    covers = [scorer.cover(f"{row.label} {' '.join(row.values)}") for row in rows]
    picked = _singled_out(covers)
    target = _target_row(rows, scorer)
    relevance = min(1.0, 2 * scorer.cover(context))  # a superlative only picks rows of a table on topic
    specific = any(picked) or target is not None
    if len(rows) <= MAX_TABLE_ROWS and len(rows) > 1:
        shown = tuple(_row_line(row, value_columns, with_columns=len(value_columns) > 1) for row in rows)
        head = f"{title} ({value_columns[0]})" if len(value_columns) == 1 and value_columns[0] else title or header
        score = prior + scorer.cover(" ".join(r.line for r in rows), context) + scorer.answer_type(header + body)
        score += -0.15 if specific else 0.1
        yield Statement(hit, "table", title_part + (header,) + tuple(r.line for r in rows),
                        (header, *[r.line for r in rows]), head, lines=shown, score=score, block=b)
    for i, row in enumerate(rows):
        score = prior + scorer.cover(row.line, context) + scorer.answer_type(row.line) + (0.15 * relevance if picked[i] else 0.0)
        score += 0.35 * relevance if i == target else 0.0
        parts = title_part + (row.line,) + tuple(c for c in (label_column, *value_columns) if c)
        yield Statement(hit, "row", parts, (row.line,), _row_sentence(row, value_columns), score=score, block=b,
                        position=i, title=title if not any(value_columns) else "")


def _target_row(rows: list[_Row], scorer: _Scorer) -> int | None:
    """The row an ordinal ("the second") or a superlative ("the most", "the least") in the question points at."""
    if scorer.ordinal:
        return next((i for i, row in enumerate(rows) if row.rank == str(scorer.ordinal)), None)
    if not (scorer.most or scorer.least):
        return None
    if rows[0].rank:
        return 0 if scorer.most else len(rows) - 1
    numbers = [(n, i) for i, row in enumerate(rows) if row.values and (n := _number(row.values[0])) is not None]
    if not numbers:
        return None
    return (max(numbers) if scorer.most else min(numbers))[1]


def _parse_row(line: str, ranked: bool) -> _Row:
    rest, values = line, []
    while match := _VALUE.search(rest):
        before = rest[: match.start(1)].rstrip()
        if ranked and not before:
            break  # a lone leading number is the rank
        values.insert(0, match.group(1).strip())
        rest = before
    rank = ""
    if ranked and (match := _RANK.match(rest)):
        rank, rest = match.group(1), rest[match.end():]
    return _Row(line, rank, rest.strip(), tuple(values))


def _text_columns(header: str, title: str) -> tuple[str, tuple[str, ...]] | None:
    """Column names of a two-column text table from an "X vs. Y" heading whose header reads "X Y"."""
    match = re.match(r"^(.+?)\s+(?:vs\.?|versus)\s+(.+?)\??$", title, flags=re.IGNORECASE)
    if match and f"{match.group(1)} {match.group(2)}" == header:
        return "", (match.group(1), match.group(2))
    return None


def _text_rows(lines: list[str]) -> list[_Row]:
    """Rows of a two-column text table, where each row's second cell starts with the same word as its
    first ("Proficient in R, Python, and SQL Proficient in Python, R, ..."); [] if any row does not."""
    rows = []
    for line in lines:
        first = line.split()[0]
        cut = line.find(f" {first} ", len(first))
        if cut < 0:
            return []
        rows.append(_Row(line, "", "", (line[:cut], line[cut + 1:])))
    return rows


def _columns(header: str, rows: list[_Row]) -> tuple[str, tuple[str, ...]] | None:
    """Split a flattened header into the label column's name and the value columns' names."""
    words = header.split()
    if rows[0].rank:
        words = words[1:]  # "Rank"
    width = max(len(r.values) for r in rows)
    if width == 0:
        return ("", ()) if all(r.rank for r in rows) else None
    starts = [i for i, w in enumerate(words) if i > 0 and w.lower() in _COLUMN_STARTS]
    labelled = any(r.label for r in rows)
    cuts = ([0] if not labelled else []) + starts
    if len(cuts) < width:
        return None
    cuts = cuts[-width:]
    label = " ".join(words[: cuts[0]]) if labelled else ""
    names = tuple(" ".join(words[a:b]) for a, b in zip(cuts, [*cuts[1:], len(words)]))
    return label, names


def _row_sentence(row: _Row, columns: tuple[str, ...]) -> str:
    pairs = "; ".join(f"{c}: {v}" if c else v for c, v in zip(columns, row.values))
    if not row.values:
        return f"{row.label} (rank {row.rank})" if row.rank else row.label
    text = f"{row.label} — {pairs}" if row.label else pairs
    return f"{text} (rank {row.rank})" if row.rank else text


def _row_line(row: _Row, columns: tuple[str, ...], with_columns: bool) -> str:
    if with_columns:
        return _row_sentence(row, columns)
    value = ", ".join(row.values)
    label = f"{row.rank}. {row.label}" if row.rank else row.label
    return f"{label}: {value}" if value else label


def _number(value: str) -> float | None:
    digits = re.sub(r"[^\d.]", "", value)
    try:
        return float(digits)
    except ValueError:
        return None


# --- choosing and rendering ------------------------------------------------------------------


def _choose(statements: list[Statement]) -> list[Statement]:
    """The best statement, then close runners-up that add something, within the word budget."""
    ranked = sorted(statements, key=lambda s: -s.score)
    lead = ranked[0]
    chosen = [lead]
    words = lead.words
    # A sentence rarely stands alone: the next ones of its paragraph explain it ("However, they perform
    # distinct duties. Data engineers focus on acquiring data ..."), as far as a short answer allows.
    if lead.kind == "sentence":
        for follower in sorted((s for s in statements if s.hit is lead.hit and s.block == lead.block
                                and s.kind == "sentence" and s.position > lead.position), key=lambda s: s.position):
            if words + follower.words > LEAD_WORDS:
                break
            chosen.append(follower)
            words += follower.words
    for other in ranked[1:]:
        if len(chosen) >= 3 or other.score < SECOND_OPINION * lead.score:
            break
        if lead.kind in ("list", "table", "row", "item") and other.hit is lead.hit and other.block == lead.block:
            continue  # the same list or table again, in another form
        if any(_overlaps(other, c) for c in chosen) or words + other.words > MAX_WORDS:
            continue
        chosen.append(other)
        words += other.words
    return chosen


def _overlaps(a: Statement, b: Statement) -> bool:
    if a.hit.chunk.id == b.hit.chunk.id and (a.block == b.block and a.kind != "sentence" or a.quotes == b.quotes):
        return True
    return bool(set(a.quotes) & set(b.quotes)) or normalized(a.display) == normalized(b.display)


def _render(chosen: list[Statement], hits: Sequence[Hit]) -> Answer:
    numbers: dict[int, int] = {}
    quotes: dict[int, list[str]] = {}
    pieces: list[str] = []
    for statement in chosen:
        chunk_id = statement.hit.chunk.id
        n = numbers.setdefault(chunk_id, len(numbers) + 1)
        quotes.setdefault(chunk_id, [])
        quotes[chunk_id] += [q for q in statement.quotes if q not in quotes[chunk_id]]
        pieces.append(_with_marker(statement, n))
    citations = []
    for chunk_id, n in numbers.items():
        hit = next(h for h in hits if h.chunk.id == chunk_id)
        citations.append(Citation(n, hit, tuple(quotes[chunk_id])))
    text = "\n".join(pieces) if any("\n" in p for p in pieces) else " ".join(pieces)
    return Answer(text, tuple(citations), kind="answer", hits=tuple(hits))


def _with_marker(statement: Statement, n: int) -> str:
    marker = f"[{n}]"
    if statement.kind in ("list", "table") or (statement.kind == "item" and statement.display):
        head = statement.display.rstrip(":. ")
        lines = "\n".join(f"- {line}" for line in statement.lines)
        return f"{head} {marker}:\n{lines}"
    text = statement.lines[0] if statement.kind == "item" else statement.display
    if statement.kind == "row" and statement.title:
        text = f"{statement.title}: {text}"
    text = text.rstrip()
    if text and text[-1] in ".!?":
        return f"{text[:-1]} {marker}{text[-1]}"
    return f"{text} {marker}."


# --- text helpers ---------------------------------------------------------------------------


def _sentences(paragraph: str) -> list[str]:
    """Exact sentence substrings of a paragraph (no split after "vs.", "e.g." and the like)."""
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(paragraph):
        end = match.start() + 1
        if not _ABBREVIATION.search(paragraph[start:end]):
            sentences.append(paragraph[start:end].strip())
            start = match.end()
    sentences.append(paragraph[start:].strip())
    return [s for s in sentences if s]


def _sentence_groups(paragraph: str) -> list[list[str]]:
    """Sentences, with each one that leans back ("However, they ...") kept with the one before it."""
    groups: list[list[str]] = []
    for sentence in _sentences(paragraph):
        if groups and _LEANS_BACK.match(_clean(sentence)):
            groups[-1].append(sentence)
        else:
            groups.append([sentence])
    return groups


def _first_sentence(text: str) -> str:
    sentences = _sentences(text)
    return sentences[0] if sentences else text


def _clean(text: str) -> str:
    return " ".join(_EMPHASIS.sub("", text).split())


def normalized(text: str) -> str:
    """Text compared loosely: markdown emphasis dropped, spacing collapsed, lower case."""
    return " ".join(_EMPHASIS.sub("", text).split()).lower()

