"""Turn an Answer into what the browser shows: safe markdown with clickable [n] and its own sources block."""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import nh3

from advisor.blocks import parse_blocks
from advisor.statements import parse_table
from advisor.types import Answer, Citation

# Everything from a document is untrusted: markdown punctuation is backslash-escaped and HTML escaped, so a
# "![x](http://…)" or "<script>" quoted from the corpus shows as text. Only the structure this module adds
# (list items, bold question headings, tables, [n] links, the sources block) is markup.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+!|~^<>$-])")
_ORDERED_START = re.compile(r"^(\d+)\.(\s)")
# The page's Markdown links bare addresses ("https://…", "www.…", "name@host"), so a document title or passage
# holding one would become a live link. Writing the character that starts the match as an entity shows the same
# text but matches no autolink rule.
_AUTOLINK_START = re.compile(r"(?i)\b(?:https?|ftp|mailto|file|javascript|data):|\bwww\.|@")
_AUTOLINK_ENTITY = {":": "&#58;", ".": "&#46;", "@": "&#64;"}
_MARKER = re.compile(r"\\\[(\d+)\\\]")  # an escaped "[n]"
_HEADING = re.compile(r"^\*\*(.+)\*\*$")  # a question heading the answerer writes for a long message
_LEAD_IN = re.compile(r"^(?P<title>.+?) (?P<markers>(?:\[\d+\])+):$")  # "Average Salary … [1]:" before a list
_ROW = re.compile(r"^(?P<label>[^:]{1,80}): (?P<value>.+)$")  # "Entry Level: $85,000"
SOURCES_CLASS = "answer-sources"  # the block appended to each answer; stripped again from chat history
TABLE_CLASS = "answer-table"  # rows of a table without column names
_SOURCES_START = f'<details class="{SOURCES_CLASS}"'
_CITE_LINK = re.compile(r"\[\\\[(\d+)\\\]\]\(#cite-\d+\)")
ASK = "#ask"  # the link target of a suggested question: the page's script asks it when it is clicked
_ASK_LINK = re.compile(r"^- \[(.+)\]\(#ask\)$", re.M)


def escape(text: str) -> str:
    """``text`` as literal markdown: HTML escaped, markdown punctuation and list starts backslash-escaped, and
    web addresses kept from being linked."""
    escaped = _MARKDOWN_PUNCTUATION.sub(r"\\\1", html.escape(text, quote=False))
    escaped = _AUTOLINK_START.sub(lambda m: m[0][:-1] + _AUTOLINK_ENTITY[m[0][-1]], escaped)
    return _ORDERED_START.sub(r"\1\\.\2", escaped)


def answer_markdown(
    text: str,
    links: bool = True,
    headers: Mapping[str, tuple[str, str]] | None = None,
    asks: Collection[str] = (),
) -> str:
    """The answer text as markdown: its "- " lines as a list, a titled run of "label: value" rows as a table,
    "**question**" lines bold, every other character literal; ``[n]`` becomes a link to source n.

    ``headers`` maps a "[n]" marker to the column names of the two-column table in source n, if it has one;
    a "- " line that is one of ``asks`` (suggested questions) becomes a link that asks it.
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line and not line.startswith("- ") and out and out[-1].startswith("- "):
            out.append("")  # ends the list: a line right after it would be read as part of its last item
        items = []
        j = i + 1
        while j < len(lines) and lines[j].startswith("- "):
            items.append(lines[j][2:])
            j += 1
        lead = _LEAD_IN.match(line)
        if lead and items:
            out.append(f"**{escape(lead['title'])}** {escape(lead['markers'])}:")
            out.append("")  # a list or table needs a blank line before it under a paragraph
            rows = [_ROW.match(item) for item in items]
            if len(items) >= 2 and all(rows):
                # A table's rows, as the answerer lists them under the table's title: a real table again.
                header = (headers or {}).get(lead["markers"])
                if header:
                    out.append(f"| {escape(header[0])} | {escape(header[1])} |")
                    out.append("| --- | --- |")
                    out.extend(f"| {escape(m['label'])} | {escape(m['value'])} |" for m in rows if m)
                else:  # no column names to head a markdown table with: an HTML table, on one line, of rows only
                    cells = "".join(
                        f"<tr><td>{html.escape(m['label'], quote=False)}</td><td>{html.escape(m['value'], quote=False)}</td></tr>"
                        for m in rows
                        if m
                    )
                    out.append(f'<table class="{TABLE_CLASS}"><tbody>{cells}</tbody></table>')
                out.append("")
                i = j
                continue
            i += 1  # the list items follow as lines of their own
            continue
        heading = _HEADING.match(line)
        if heading:
            out.append(f"**{escape(heading.group(1))}**")
        elif line.startswith("- ") and line[2:] in asks:
            out.append(f"- [{escape(line[2:])}]({ASK})")
        elif line.startswith("- "):
            out.append(f"- {escape(line[2:])}")
        else:
            out.append(escape(line))
        i += 1
    rendered = "\n".join(out)
    if links:
        rendered = _MARKER.sub(lambda m: f"[\\[{m.group(1)}\\]](#cite-{m.group(1)})", rendered)
    return rendered


def sources_list(citations: tuple[Citation, ...]) -> str:
    """Each cited passage as HTML on one line, escaped, its quoted parts highlighted, headed by its section and
    its document's title and file name (two documents may share a title)."""
    items = []
    for citation in citations:
        chunk = citation.chunk
        name = chunk.source.rsplit("/", 1)[-1]
        title = chunk.title
        where = (title if name in title else f"{title} · {name}" if title else name) + (
            f", page {chunk.page}" if chunk.page else ""
        )
        section = chunk.section or chunk.title
        passage = passage_html(chunk.text, citation.quotes)
        items.append(
            f'<div class="src src-{citation.n}"><div class="src-head">[{citation.n}] {html.escape(section)}'
            f'</div><div class="src-file">{html.escape(where)}</div>'
            f'<div class="src-text">{passage}</div></div>'
        )
    return "".join(items)


# The tags sources_list writes: a message's sources block read back (see sources_in) keeps these and nothing else.
_SOURCE_TAGS = {"div", "p", "br", "mark", "strong", "em", "code", "ul", "li", "table", "tr", "th", "td"}


def sources_in(message: str) -> str:
    """The cited passages of a chat message this module wrote, as ``sources_list`` gave them, or "" when it has
    none. The message comes back from the browser (a saved chat, reopened after a restart too), so it is cleaned
    to the tags and classes sources_list writes."""
    at = message.find(_SOURCES_START)
    if at < 0:
        return ""
    block = message[at:]
    start = block.find("</summary>")
    end = block.rfind("</details>")
    if start < 0 or end < start:
        return ""
    return nh3.clean(block[start + len("</summary>") : end], tags=_SOURCE_TAGS, attributes={"*": {"class"}})


def sources_block(citations: tuple[Citation, ...]) -> str:
    """A collapsed "Sources" block for one answer, on one line with no blank line, so markdown leaves it whole."""
    if not citations:
        return ""
    return f"{_SOURCES_START}><summary>Sources ({len(citations)})</summary>" + sources_list(citations) + "</details>"


def message(answer: Answer) -> str:
    """The whole chat message for an answer: its markdown, then its sources block."""
    block = sources_block(answer.citations)
    headers = {f"[{c.n}]": header for c in answer.citations if (header := _table_header(c.chunk.text))}
    body = answer_markdown(answer.text, links=bool(answer.citations), headers=headers, asks=answer.suggestions)
    return f"{body}\n\n{block}" if block else body


def _table_header(passage: str) -> tuple[str, str] | None:
    """The column names of a passage's table, when it has one table of two named columns."""
    tables = [block for block in parse_blocks(passage) if block.kind == "table"]
    if len(tables) != 1:
        return None
    table = parse_table(passage[tables[0].start : tables[0].end], "")
    return (table.columns[0], table.columns[1]) if table and len(table.columns) == 2 else None


def plain_text(content: str) -> str:
    """A chat message as the answerer wrote it (for follow-ups): the sources block, links and escapes removed.

    Messages from API clients and from the user are plain already and come back unchanged, apart from
    unescaping what was escaped.
    """
    at = content.find(_SOURCES_START)
    if at < 0 and not _ASK_LINK.search(content):
        return content
    body = _CITE_LINK.sub(r"[\1]", (content if at < 0 else content[:at]).rstrip())
    body = _ASK_LINK.sub(r"- \1", body)
    lines = body.split("\n")
    kept: list[str] = []
    after_table = False
    for i, line in enumerate(lines):
        after_list = bool(kept) and kept[-1].startswith("- ") and i + 1 < len(lines) and not _HEADING.match(lines[i + 1])
        if not line and (after_table or after_list or (kept and kept[-1].endswith("]:"))):
            after_table = False
            continue  # a blank line this module added around a table or list (a question's heading has its own)
        after_table = False
        if line.startswith("| --- ") or (i + 1 < len(lines) and lines[i + 1].startswith("| --- ")):
            continue  # a table's header and rule: the answer listed only its rows
        if line.startswith(f'<table class="{TABLE_CLASS}">'):
            kept.extend("- " + ": ".join(re.findall(r"<td>(.*?)</td>", row)) for row in re.findall(r"<tr>(.*?)</tr>", line))
            after_table = True
            continue
        if line.startswith("| ") and line.endswith(" |"):
            line = "- " + ": ".join(cell.strip() for cell in line[2:-2].split(" | "))
            after_table = i + 1 < len(lines) and not lines[i + 1].startswith("| ")
        kept.append(line)
    text = re.sub(r"\\(.)", r"\1", "\n".join(kept))
    return html.unescape(text.replace("**", ""))


def source_titles(sources: Mapping[str, str]) -> dict[str, str]:
    """The name to show for each source file in a list of documents: its title, with its file name where several
    share one title."""
    counts: dict[str, int] = {}
    for title in sources.values():
        counts[title] = counts.get(title, 0) + 1
    return {
        source: (
            title
            if counts[title] == 1 and title
            else f"{title} · {source.rsplit('/', 1)[-1]}"
            if title
            else source.rsplit("/", 1)[-1]
        )
        for source, title in sources.items()
    }


# A passage's own Markdown, read for display (see passage_html): the block a line is, and emphasis within it.
_BLOCK_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+")
_BLOCK_ITEM = re.compile(r"^\s*(?:[-*+•▪◦·]|\d{1,3}[.)])[ \t]+")
_BLOCK_RULE = re.compile(r"^ {0,3}(?:[-*_][ \t]*){3,}$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_EMPHASIS = re.compile(
    # Each span at most 300 characters: a line of unclosed "**" is then read in linear time.
    r"(?P<strong>\*\*|__)(?=\S)(?P<strong_text>.{1,300}?)(?<=\S)(?P=strong)"
    r"|(?<![\w*])\*(?=[^\s*])(?P<em_text>[^*\n]{1,300}?)(?<=\S)\*(?![\w*])"
    r"|(?<!\w)_(?=[^\s_])(?P<em2_text>[^_\n]{1,300}?)(?<=\S)_(?!\w)"
    r"|`(?P<code_text>[^`\n]{1,300})`"
)


def passage_html(text: str, quotes: tuple[str, ...]) -> str:
    """A passage as safe HTML on one line: its Markdown headings, lists, pipe tables and emphasis shown as such,
    every character of its text escaped, the first occurrence of each quote wrapped in <mark>.

    Only the tags this function writes are markup: a document's "<script>" or "![x](http://…)" stays text.
    """
    marked = _marked(text, quotes)
    blocks: list[str] = []
    lines = _lines(text)
    # Tables written as lines of a label and figures ("Entry Level $85,000"), as plain-text pages have them.
    tables = [b for b in parse_blocks(text) if b.kind == "table" and not text[b.start : b.end].lstrip().startswith("|")]
    i = 0
    while i < len(lines):
        start, end = lines[i]
        line = text[start:end]
        if not line.strip() or _BLOCK_RULE.match(line):
            i += 1
            continue
        block = next((b for b in tables if b.start <= start + len(line) - len(line.lstrip()) < b.end), None)
        shown = _text_table_html(text, marked, block.start, block.end) if block else None
        if block and shown:
            blocks.append(shown)
            while i < len(lines) and lines[i][0] < block.end:
                i += 1
            continue
        if line.lstrip().startswith("|"):
            rows = []
            while i < len(lines) and text[lines[i][0] : lines[i][1]].lstrip().startswith("|"):
                rows.append(lines[i])
                i += 1
            blocks.append(_table_html(text, marked, rows))
            continue
        if _BLOCK_ITEM.match(line):
            items = []
            while i < len(lines) and (item := _BLOCK_ITEM.match(text[lines[i][0] : lines[i][1]])):
                number = item.group(0).strip()
                opening = f'<li class="n">{html.escape(number)} ' if number[0].isdigit() else "<li>"
                items.append(f"{opening}{_inline(text, marked, lines[i][0] + item.end(), lines[i][1])}</li>")
                i += 1
            blocks.append(f'<ul class="src-list">{"".join(items)}</ul>')
            continue
        heading = _BLOCK_HEADING.match(line)
        if heading:
            blocks.append(f'<div class="src-h">{_inline(text, marked, start + heading.end(), end)}</div>')
            i += 1
            continue
        paragraph = []
        while i < len(lines):
            start, end = lines[i]
            line = text[start:end]
            if not line.strip() or line.lstrip().startswith("|") or _BLOCK_ITEM.match(line) or _BLOCK_HEADING.match(line):
                break
            paragraph.append(_inline(text, marked, start, end))
            i += 1
        blocks.append(f"<p>{'<br>'.join(paragraph)}</p>")
    return "".join(blocks)


def _lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line of ``text``, without its line break."""
    spans, start = [], 0
    for match in re.finditer(r"\n", text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return spans


def _marked(text: str, quotes: tuple[str, ...]) -> list[bool]:
    """For each character of ``text``, whether it is in the first occurrence of a quote."""
    marked = [False] * len(text)
    for quote in quotes:
        start = text.find(quote) if quote else -1
        if start >= 0:
            marked[start : start + len(quote)] = [True] * len(quote)
    return marked


def _inline(text: str, marked: list[bool], start: int, end: int) -> str:
    """``text[start:end]`` as escaped HTML with its emphasis and code spans as tags and its marks kept (a mark is
    closed before a tag and opened again after it, so the tags always nest)."""
    out: list[str] = []
    position = start
    for match in _EMPHASIS.finditer(text, start, end):
        out.append(_escaped(text, marked, position, match.start()))
        name = next(group for group in ("strong_text", "em_text", "em2_text", "code_text") if match.group(group) is not None)
        tag = {"strong_text": "strong", "em_text": "em", "em2_text": "em", "code_text": "code"}[name]
        out.append(f"<{tag}>{_escaped(text, marked, match.start(name), match.end(name))}</{tag}>")
        position = match.end()
    out.append(_escaped(text, marked, position, end))
    return "".join(out)


def _escaped(text: str, marked: list[bool], start: int, end: int) -> str:
    """``text[start:end]`` escaped, its marked runs wrapped in <mark>."""
    out: list[str] = []
    position = start
    while position < end:
        run_end = position
        while run_end < end and marked[run_end] == marked[position]:
            run_end += 1
        piece = html.escape(text[position:run_end])
        out.append(f"<mark>{piece}</mark>" if marked[position] else piece)
        position = run_end
    return "".join(out)


_FIGURE = re.compile(r"[^\w\s]{0,3}\s?\d[\d,.]*\s?(?:%|k|K|bn|billion|million|thousand)?")


def _text_table_html(text: str, marked: list[bool], start: int, end: int) -> str | None:
    """A table of label-and-figures lines as an HTML table: its header line over the rows, each row's label and
    values in cells, a row marked where its line was quoted. None when the lines don't parse as a table."""
    table = parse_table(text[start:end], "")
    if table is None or not all(row.values and all(_FIGURE.fullmatch(v) for v in row.values) for row in table.rows):
        return None  # only lines of a label and figures are shown as a table; other text stays text
    width = 1 + max(len(row.values) for row in table.rows)
    names = _header_cells(table.header, table.columns) if len(table.columns) == width else []
    if names:
        out = ["<tr>" + "".join(f"<th>{html.escape(name)}</th>" for name in names) + "</tr>"]
    else:
        out = [f'<tr><th colspan="{width}">{html.escape(table.header)}</th></tr>']
    position = start
    for row in table.rows:
        at = text.find(row.line, position, end)
        quoted = at >= 0 and any(marked[at : at + len(row.line)])
        position = at + len(row.line) if at >= 0 else position
        label = f"{row.rank}. {row.label}" if row.rank is not None and row.label else row.label
        cells = [html.escape(c) for c in [label, *row.values] + [""] * (width - 1 - len(row.values))]
        out.append("<tr>" + "".join(f"<td><mark>{c}</mark></td>" if quoted and c else f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<table class="src-table">{"".join(out)}</table>'


def _header_cells(header: str, columns: Sequence[str]) -> list[str]:
    """A header's text cut where each column's name begins (a name wrapped over lines keeps its other lines:
    "50% (Median)"); [] when the names are not found in order."""
    starts: list[int] = []
    for name in columns:
        found = re.compile(rf"(?<!\S){re.escape(name)}(?!\S)").search(header, starts[-1] + 1 if starts else 0)
        if found is None:
            return []
        starts.append(found.start())
    return [" ".join(header[a:b].split()) for a, b in zip(starts, [*starts[1:], len(header)])]


def _table_html(text: str, marked: list[bool], rows: list[tuple[int, int]]) -> str:
    """Pipe-table lines as an HTML table: a row followed by a |---| rule is its header."""
    out: list[str] = []
    for k, (start, end) in enumerate(rows):
        line = text[start:end]
        if _TABLE_RULE.match(line):
            continue
        header = k + 1 < len(rows) and bool(_TABLE_RULE.match(text[rows[k + 1][0] : rows[k + 1][1]]))
        cells = []
        for cell in re.finditer(r"[^|]+", line):
            if not cell.group().strip() and (cell.start() == 0 or cell.end() == len(line)):
                continue  # the space outside the outer bars
            inner = re.search(r"\S(?:.*\S)?", cell.group())
            cell_start, cell_end = (start + cell.start() + inner.start(), start + cell.start() + inner.end()) if inner else (0, 0)
            tag = "th" if header else "td"
            cells.append(f"<{tag}>{_inline(text, marked, cell_start, cell_end)}</{tag}>")
        out.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table class="src-table">{"".join(out)}</table>'


def conversation_markdown(history: Sequence[Mapping[str, Any]], title: str = "Career Advisor chat") -> str:
    """A chat as Markdown to keep: each question, each answer as the answerer wrote it, and under each answer its
    numbered sources (section, document title and file, page, and the sentences it quoted). Read from the
    messages themselves, so a saved chat reopened after a restart exports whole."""
    lines = [f"# {title}", ""]
    for message in history:
        content = message.get("content")
        content = content if isinstance(content, str) else ""
        if message.get("role") == "user":
            lines += [f"**You:** {content.strip()}", ""]
            continue
        if not content.strip():  # a chart under an answer: its numbers are in the answer above it
            continue
        lines += [f"**Career Advisor:** {plain_text(content).strip()}", ""]
        sources = _sources_of(content)
        if sources:
            lines.append("Sources:")
            for n, head, where, quoted in sources:
                lines.append(f"{n}. {head} ({where})")
                lines += [f"   > {quote}" for quote in quoted]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _sources_of(message: str) -> list[tuple[str, str, str, list[str]]]:
    """(n, section, document and page, quoted sentences) of each passage in a message's sources block."""
    from bs4 import BeautifulSoup  # here: only an export reads a block back this way

    found = []
    for div in BeautifulSoup(sources_in(message), "html.parser").select("div.src"):
        head = div.select_one(".src-head")
        where = div.select_one(".src-file")
        number = re.match(r"\[(\d+)\]\s*(.*)", head.get_text(" ", strip=True) if head else "")
        if not number:
            continue
        # Marks in one row, item or paragraph are one quote (a row's cells joined as the table shows them).
        groups: dict[int, tuple[str, list[str]]] = {}
        for mark in div.select("mark"):
            holder = mark.find_parent(["tr", "li", "p", "div"])
            joiner = " | " if holder is not None and holder.name == "tr" else " "
            groups.setdefault(id(holder), (joiner, []))[1].append(" ".join(mark.get_text(" ", strip=True).split()))
        quoted = list(dict.fromkeys(joiner.join(parts) for joiner, parts in groups.values()))
        found.append((number.group(1), number.group(2), where.get_text(" ", strip=True) if where else "", quoted))
    return found
