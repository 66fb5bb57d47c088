"""Cut a passage into the statements an answer may quote: sentences, list items, table rows, FAQ answers."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from advisor.blocks import parse_blocks
from advisor.types import MARKER, Chunk

# Bump when the rules below change: statement vectors are then recomputed by a full rebuild.
STATEMENTS_VERSION = 9

_EMPHASIS = re.compile(r"\*{1,2}(?=\S)|(?<=\S)\*{1,2}")
_SENTENCE_END = re.compile(r"[.!?]\s+(?=[A-Z0-9\"“'(*])")
# A sentence opening with one of these leans on the sentence before it and never stands alone (English
# grammar: connectives and pronouns, true of any document).
_LEANS_BACK = re.compile(
    r"^(however|but|they|their|them|it|its|this|these|those|that|such|moreover|furthermore|"
    r"also|despite|thus|therefore|hence|in addition|as a result|as expected|he|she|his|her)\b",
    re.IGNORECASE,
)
# A full stop that ends an abbreviation, not a sentence: a few common ones, dotted initials ("U.S.", "Ph.D.") and
# a single capital (a person's initial: "John F. Kennedy").
_ABBREVIATION = re.compile(
    r"(\b(?i:vs|e\.g|i\.e|etc|approx|incl)\.|\b(?:Dr|Mr|Ms|Mrs|St|Jr|Sr|Prof|Inc|Co)\.|(?:\b[A-Za-z]\.){2,}|(?<![\w.])[A-Z]\.)$"
)
_ITEM_MARK = re.compile(r"^\s*(?:[•·▪◦‣●○■□➢➤✓✔]|[-*+](?=\s)|\(?\d{1,3}[.)](?=\s))\s*")
_VALUE = re.compile(r"(?:^|\s)((?:[+-]|[$€£₹¥]|[A-Z]{1,3}\$)?\s?\d[\d,]*(?:\.\d+)?\s?(?:%|k|K|bn|billion|million|thousand)?)$")
_FIGURE = re.compile(r"(?:[+-]|[$€£₹¥]|[A-Z]{1,3}\$)?\s?\d[\d,]*(?:\.\d+)?\s?(?:%|k|K|bn|billion|million|thousand)?")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_DIGIT = re.compile(r"\d")
_NOTE_MARK = re.compile(r"\(\d{1,2}\)")  # "wage (2)": a footnote's number, no figure
_SEPARATOR_ROW = re.compile(r"^[\s|:+-]+$")


@dataclass(frozen=True)
class Table:
    """A table parsed from a passage: its title, column names and rows of cells."""

    title: str
    header: str  # the header line as written
    columns: tuple[str, ...]  # column names when the cells are delimited ("" each when they are not)
    rows: tuple[Row, ...]
    ranked: bool  # the first column is a rank (1, 2, 3 …)


@dataclass(frozen=True)
class Row:
    """One table row: its line as written, its label cell, its value cells and rank (if any)."""

    line: str
    label: str
    values: tuple[str, ...]
    rank: int | None = None

    def number(self, column: int = 0) -> float | None:
        """The numeric value of value cell ``column`` ("$85,000" -> 85000.0), or None."""
        if column >= len(self.values):
            return None
        return to_number(self.values[column])


@dataclass(frozen=True)
class Unit:
    """A statement an answer can use, built only from strings found in its passage."""

    chunk_id: int
    kind: str  # "sentence" | "answer" (an FAQ answer) | "item" | "list" | "row" | "table"
    text: str  # what a reader is shown, markers and emphasis removed
    parts: tuple[str, ...]  # the passage strings the text is made of; each must occur in the passage
    context: str  # the heading, lead-in or table title it stands under
    embed: str  # the text its vector is computed from (context and text)
    block: int  # which block of the passage it comes from
    position: int = 0  # order within its block
    lines: tuple[str, ...] = ()  # for a list or table: its items or rows, as shown
    table: Table | None = None  # for a row or table: the parsed table
    row: int = -1  # for a row: its index in table.rows

    @property
    def words(self) -> int:
        """Length in words, list lines included."""
        return len(self.text.split()) + sum(len(line.split()) for line in self.lines)


def units_of(chunk: Chunk) -> list[Unit]:
    """Every statement of ``chunk``, in passage order (the same list at build and at answer time)."""
    return list(_units_of(chunk))


@functools.lru_cache(maxsize=2048)  # a passage is parsed once, not once per question that retrieves it
def _units_of(chunk: Chunk) -> tuple[Unit, ...]:
    text = chunk.text
    blocks = parse_blocks(text)
    path = chunk.section.split(" › ") if chunk.section else []
    heading = path[-1] if path else ""
    # The section a statement stands in goes into its vector with the nearest heading: an item of the list under
    # "Common Misconceptions › Machine Learning Engineer Role" is a misconception, not a fact about the role.
    top = path[0] if len(path) > 1 else ""
    units: list[Unit] = []
    for b, block in enumerate(blocks):
        body = text[block.start : block.end]
        if block.kind == "heading":
            heading = block.heading
            continue
        if block.kind == "boilerplate":
            continue
        previous = blocks[b - 1] if b else None
        lead_in = text[previous.start : previous.end] if previous is not None and previous.kind == "paragraph" else ""
        if lead_in and not lead_in.rstrip().endswith(":"):
            # A list right after a paragraph is introduced by the paragraph's last thought ("There are several
            # common misconceptions …"): its items are said under it, never as facts of their own.
            lead_in = " ".join(sentence_groups(lead_in)[-1]) if sentence_groups(lead_in) else ""
        if block.kind == "paragraph":
            if body.rstrip().endswith(":") and b + 1 < len(blocks) and blocks[b + 1].kind in ("list", "table"):
                continue  # a lead-in is said with its list
            units += _paragraph_units(chunk.id, body, heading, b)
        elif block.kind == "list":
            units += _list_units(chunk.id, body, clean(lead_in) if lead_in else "", heading, b)
        elif block.kind == "table":
            units += _table_units(chunk.id, body, heading, b)
    if top:
        units = [u if top.lower() in u.embed.lower() else _with_embed(u, f"{top} › {u.embed}") for u in units]
    return tuple(units)


def _with_embed(unit: Unit, embed: str) -> Unit:
    from dataclasses import replace

    return replace(unit, embed=embed)


def _paragraph_units(chunk_id: int, body: str, heading: str, b: int) -> Iterator[Unit]:
    groups = sentence_groups(body)
    question = heading if heading.endswith("?") else ""
    asked = ""
    if not question and len(groups) > 1 and len(groups[0]) == 1 and groups[0][0].rstrip().endswith("?"):
        # A paragraph that opens with a question ("Can analysts work from home? Often, yes. About 35% …") is an
        # FAQ said in the text: the question is the heading of the sentences after it ("Often, yes" needs it).
        asked = clean(groups[0][0])
    if question and len(groups) > 1:
        # An FAQ answer is one statement too: the question it answers goes into its vector.
        said = clean(body)
        yield Unit(chunk_id, "answer", said, (body,), question, f"{question} {said}", b)
    elif asked and len(groups) > 2:
        rest = [s for group in groups[1:] for s in group]
        said = clean(" ".join(rest))
        yield Unit(chunk_id, "answer", said, tuple(rest), asked, f"{asked} {said}", b)
    for i, group in enumerate(groups):
        said = clean(" ".join(group))
        if len(said.split()) < 2 and not _DIGIT.search(said) and not (question or asked):
            # A lone word ("Genetic" where a page's excerpt was cut, "Pennsylvania" left of a map) says nothing,
            # unless it answers a question ("Yes." under an FAQ heading).
            continue
        context = asked if asked and i else heading
        yield Unit(chunk_id, "sentence", said, tuple(group), context, f"{context}: {said}" if context else said, b, i)


def _list_units(chunk_id: int, body: str, lead_in: str, heading: str, b: int) -> Iterator[Unit]:
    items = [line.strip() for line in body.splitlines() if line.strip()]
    shown = tuple(clean(_ITEM_MARK.sub("", item)) for item in items)
    label = first_sentence(lead_in) if lead_in else ""
    if _LEANS_BACK.match(label):
        label = ""  # "They help in:" says nothing without the sentence before it; the heading does
    context = label or heading
    head = (label,) if label else ()
    yield Unit(
        chunk_id, "list", context, head + tuple(items), heading, f"{heading}. {label} {'; '.join(shown)}".strip(), b, lines=shown
    )
    for i, (item, said) in enumerate(zip(items, shown)):
        yield Unit(
            chunk_id, "item", said, (_ITEM_MARK.sub("", item).strip(),), context, f"{context}: {said}" if context else said, b, i
        )


def _table_units(chunk_id: int, body: str, heading: str, b: int) -> Iterator[Unit]:
    table = parse_table(body, heading)
    if table is None:
        return
    title = table.title
    shown = tuple(row_text(table, i) for i in range(len(table.rows)))
    parts = (table.header,)  # the title is the heading, which a passage may start after
    yield Unit(
        chunk_id,
        "table",
        title or clean(table.header),
        parts + tuple(r.line for r in table.rows),
        heading,
        f"{title}. {clean(table.header)}: {'; '.join(shown)}",
        b,
        lines=shown,
        table=table,
    )
    for i, row in enumerate(table.rows):
        yield Unit(
            chunk_id,
            "row",
            shown[i],
            parts + (row.line,),
            title or clean(table.header),
            f"{title}. {clean(table.header)}: {shown[i]}",
            b,
            i,
            table=table,
            row=i,
        )


def parse_table(body: str, title: str) -> Table | None:
    """Rows and columns of a table block: cells split on "|" where delimited, else each line read as a
    label followed by numbers ("Entry Level $85,000", "2 India 287"); None for fewer than two lines."""
    lines = [line.strip() for line in body.splitlines() if line.strip() and not _SEPARATOR_ROW.match(line.strip())]
    if len(lines) < 2:
        return None
    header, rest = lines[0], lines[1:]
    if all("|" in line for line in lines):
        columns = tuple(_cells(header))
        rows = []
        for line in rest:
            cells = _cells(line)
            label, values = (cells[0], tuple(cells[1:])) if cells else ("", ())
            rows.append(Row(line, label, values))
        ranked = bool(columns) and columns[0].lower() in ("rank", "#", "no.", "position")
        if ranked:
            rows = [Row(r.line, r.values[0] if r.values else "", r.values[1:], _int(r.label)) for r in rows]
            columns = columns[1:]
        return Table(title, header, columns, tuple(rows), ranked)
    ranked = header.lower().startswith(("rank ", "# ", "no. ")) or _numbered(rest)
    rows = [_flat_row(line, ranked) for line in rest]
    if sum(bool(r.values) for r in rows) * 2 < len(rows):
        rows = _fields(rows, body)
    columns: tuple[str, ...] = ()
    labelled = [i for i, r in enumerate(rows) if r.label and r.values and not _FIGURE.fullmatch(r.label)]
    first = labelled[0] if labelled else next((i for i, r in enumerate(rows) if r.values), 0)
    wrapped = "\n".join([header, *(r.line for r in rows[:first])])
    # Only short lines continue a header ("(Median)"); "Typical Entry-Level Education Master's degree" is a row.
    if first and wrapped in body and all(len(r.label.split()) <= 2 for r in rows[:first]):
        # A header wrapped over several lines ("Percentile 10% 25% 50%" / "(Median)" / "75% 90%"): its lines are
        # no rows. When it names as many figures as every row gives, those name the columns.
        header, rows = wrapped, rows[first:]
        named = [clean(f.group()) for f in _FIGURE.finditer(_NOTE_MARK.sub("", wrapped))]
        if all(len(r.values) == len(named) > 1 for r in rows):
            columns = (clean(wrapped.split()[0]), *named)
    return Table(title, header, columns, tuple(rows), ranked)


def _fields(rows: list[Row], body: str) -> list[Row]:
    """Rows of a list of fields, most with no figure: a field's name on one line and its figure on the next
    ("Salary" / "$64,957 to - $122,459 per year") are one row, the name its label. Other lines stay rows of
    their own: which of two lines of words names the other is not known ("Location" / "Harlow County")."""
    paired: list[Row] = []
    for row in rows:
        previous = paired[-1] if paired else None
        if (
            previous is not None
            and not _DIGIT.search(previous.line)
            and "\n" not in previous.line
            and _DIGIT.search(_NOTE_MARK.sub("", row.line))
            # "Number of Jobs, 2014 2,600" names its own figure: it is a row, not the value of the line above.
            and not (row.values and len(row.label.split()) > 1)
            and f"{previous.line}\n{row.line}" in body
        ):
            paired[-1] = Row(f"{previous.line}\n{row.line}", previous.label, (clean(row.line),))
        else:
            paired.append(row)
    return paired


def _cells(line: str) -> list[str]:
    cells = [c.strip() for c in line.strip().split("|")]
    if cells and not cells[0]:
        cells = cells[1:]
    if cells and not cells[-1]:
        cells = cells[:-1]
    return [clean(c) for c in cells]


def _numbered(lines: list[str]) -> bool:
    """Rows that start 1, 2, 3 … in order are ranked."""
    firsts = [line.split()[0] for line in lines]
    return len(firsts) > 1 and firsts == [str(i) for i in range(1, len(firsts) + 1)]


def _flat_row(line: str, ranked: bool) -> Row:
    rest, values = line, []
    while match := _VALUE.search(rest):
        before = rest[: match.start(1)].rstrip()
        if ranked and not before:
            break  # a lone leading number is the rank
        if not before and values:
            break  # a row needs a label when it has several numbers … unless it is all numbers
        if values and before.endswith(",") and re.fullmatch(r"(19|20)\d\d", match.group(1).strip()):
            break  # "Number of Jobs, 2014 2,600": the year dates the label
        values.insert(0, match.group(1).strip())
        rest = before
    rank = None
    if ranked and (match := re.match(r"^(\d{1,3})\s+(?=\S)", rest)):
        rank, rest = int(match.group(1)), rest[match.end() :]
    return Row(line, clean(rest.strip()), tuple(values), rank)


def row_text(table: Table, i: int) -> str:
    """A row as a reader is shown it: "Entry Level: $85,000", "2. India: 287", "United States — Median: $134,000"."""
    row = table.rows[i]
    if not table.columns and _FIGURE.fullmatch(row.label):
        # Figures only, under a header that can't be cut into columns: both as written.
        return f"{clean(table.header)}: {clean(row.line)}"
    label = f"{row.rank}. {row.label}" if row.rank is not None and row.label else row.label
    if not row.values:
        return label or clean(row.line)
    named = [c for c in table.columns[1:]] if table.columns else []
    if len(named) == len(row.values) and len(row.values) > 1:
        values = "; ".join(f"{name}: {value}" for name, value in zip(named, row.values))
        return f"{label} — {values}" if label else values
    values = ", ".join(row.values)
    return f"{label}: {values}" if label else values


def to_number(value: str) -> float | None:
    """The number in a cell ("$85,000" -> 85000, "43.8%" -> 43.8, "$96.7 billion" -> 96.7e9), or None."""
    match = _NUMBER.search(value.replace(" ", ""))
    if not match:
        return None
    try:
        number = float(match.group().replace(",", ""))
    except ValueError:
        return None
    scale = {"k": 1e3, "thousand": 1e3, "million": 1e6, "billion": 1e9, "bn": 1e9}
    for word, factor in scale.items():
        if re.search(rf"\d\s*{word}\b", value, re.IGNORECASE):
            return number * factor
    return number


def _int(value: str) -> int | None:
    return int(value) if value.strip().isdigit() else None


def sentences(paragraph: str) -> list[str]:
    """Exact sentence substrings of a paragraph (no split after "vs.", "e.g." and the like)."""
    found, start = [], 0
    for match in _SENTENCE_END.finditer(paragraph):
        end = match.start() + 1
        if not _ABBREVIATION.search(paragraph[start:end]):
            found.append(paragraph[start:end].strip())
            start = match.end()
    found.append(paragraph[start:].strip())
    return [s for s in found if s]


def sentence_groups(paragraph: str) -> list[list[str]]:
    """Sentences, with each one that leans back ("However, they ...") kept with the one before it."""
    groups: list[list[str]] = []
    for sentence in sentences(paragraph):
        if groups and _LEANS_BACK.match(clean(sentence)):
            groups[-1].append(sentence)
        else:
            groups.append([sentence])
    return groups


def first_sentence(text: str) -> str:
    """The first sentence of ``text``."""
    found = sentences(text)
    return found[0] if found else text


def clean(text: str) -> str:
    """Text as shown: markdown emphasis dropped, spacing collapsed, and a bracketed number ("as shown in [4]")
    said in parentheses, so that a document's own text never reads as one of the answer's citation markers."""
    return " ".join(MARKER.sub(r"(\1)", _EMPHASIS.sub("", text)).split())


def normalized(text: str) -> str:
    """Text compared loosely: markdown emphasis and table-cell bars dropped, spacing collapsed, lower case."""
    return clean(text.replace("|", " ")).lower()
