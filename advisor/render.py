"""Turn an Answer into what the browser shows: safe markdown with clickable [n] and its own sources block."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

from advisor.blocks import parse_blocks
from advisor.statements import parse_table
from advisor.types import Answer, Citation

# Everything from a document is untrusted: markdown punctuation is backslash-escaped and HTML escaped, so a
# "![x](http://…)" or "<script>" quoted from the corpus shows as text. Only the structure this module adds
# (list items, bold question headings, tables, [n] links, the sources block) is markup.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+!|~^<>$-])")
_ORDERED_START = re.compile(r"^(\d+)\.(\s)")
_MARKER = re.compile(r"\\\[(\d+)\\\]")  # an escaped "[n]"
_HEADING = re.compile(r"^\*\*(.+)\*\*$")  # a question heading the answerer writes for a long message
_LEAD_IN = re.compile(r"^(?P<title>.+?) (?P<markers>(?:\[\d+\])+):$")  # "Average Salary … [1]:" before a list
_ROW = re.compile(r"^(?P<label>[^:]{1,80}): (?P<value>.+)$")  # "Entry Level: $85,000"
SOURCES_CLASS = "answer-sources"  # the block appended to each answer; stripped again from chat history
TABLE_CLASS = "answer-table"  # rows of a table without column names
_SOURCES_START = f'<details class="{SOURCES_CLASS}"'
_CITE_LINK = re.compile(r"\[\\\[(\d+)\\\]\]\(#cite-\d+\)")


def escape(text: str) -> str:
    """``text`` as literal markdown: HTML escaped, markdown punctuation and list starts backslash-escaped."""
    escaped = _MARKDOWN_PUNCTUATION.sub(r"\\\1", html.escape(text, quote=False))
    return _ORDERED_START.sub(r"\1\\.\2", escaped)


def answer_markdown(text: str, links: bool = True, headers: Mapping[str, tuple[str, str]] | None = None) -> str:
    """The answer text as markdown: its "- " lines as a list, a titled run of "label: value" rows as a table,
    "**question**" lines bold, every other character literal; ``[n]`` becomes a link to source n.

    ``headers`` maps a "[n]" marker to the column names of the two-column table in source n, if it has one.
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
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
        passage = highlight(chunk.text, citation.quotes).replace("\n", "<br>")
        items.append(
            f'<div class="src src-{citation.n}"><div class="src-head">[{citation.n}] {html.escape(section)}'
            f'</div><div class="src-file">{html.escape(where)}</div>'
            f'<div class="src-text">{passage}</div></div>'
        )
    return "".join(items)


def sources_block(citations: tuple[Citation, ...]) -> str:
    """A collapsed "Sources" block for one answer, on one line with no blank line, so markdown leaves it whole."""
    if not citations:
        return ""
    return f"{_SOURCES_START}><summary>Sources ({len(citations)})</summary>" + sources_list(citations) + "</details>"


def message(answer: Answer) -> str:
    """The whole chat message for an answer: its markdown, then its sources block."""
    block = sources_block(answer.citations)
    headers = {f"[{c.n}]": header for c in answer.citations if (header := _table_header(c.chunk.text))}
    body = answer_markdown(answer.text, links=bool(answer.citations), headers=headers)
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
    if at < 0:
        return content
    body = _CITE_LINK.sub(r"[\1]", content[:at].rstrip())
    lines = body.split("\n")
    kept: list[str] = []
    after_table = False
    for i, line in enumerate(lines):
        if not line and (after_table or (kept and kept[-1].endswith("]:"))):
            after_table = False
            continue  # a blank line this module added around a table or list
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


def highlight(text: str, quotes: tuple[str, ...]) -> str:
    """``text`` escaped, with each quote's first occurrence wrapped in <mark>."""
    spans = sorted((start, start + len(q)) for q in quotes if q and (start := text.find(q)) >= 0)
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, position = [], 0
    for start, end in merged:
        out += [html.escape(text[position:start]), "<mark>", html.escape(text[start:end]), "</mark>"]
        position = end
    out.append(html.escape(text[position:]))
    return "".join(out)
