"""Draw the numbers an answer lists from a table (pay by level, shares by industry) as a small bar chart."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from typing import Any

# How the answerer lists a table's rows (see render.answer_markdown): "Title [1]:", then "- label: value" lines.
_LEAD_IN = re.compile(r"^(?P<title>.+?) (?P<markers>(?:\[\d+\])+):$")
_ROW = re.compile(r"^- (?P<label>[^:]{1,80}): (?P<value>.+)$")
# A value as tables write amounts: "$85,000", "£12.50 per hour", "25%", "$1.2 million", "43.8 percent".
_AMOUNT = re.compile(
    r"^(?P<before>US\$|C\$|A\$|[$£€¥₹])?\s?(?P<number>\d{1,3}(?:,\d{3})+|\d+)(?P<decimals>\.\d+)?"
    r"\s?(?P<scale>k|K|thousand|million|m|M|billion|bn)?\b\s?(?P<after>%|percent\b)?(?P<rest>[^\d]{0,30})$"
)
_SCALES = {"k": 1e3, "K": 1e3, "thousand": 1e3, "million": 1e6, "m": 1e6, "M": 1e6, "billion": 1e9, "bn": 1e9}
MAX_BARS = 12  # a longer table is read better as the table itself


@dataclass(frozen=True)
class BarChart:
    """Rows of one table an answer lists, each with a number in the same unit: what the chart draws."""

    title: str  # the table's title, as the answer gives it
    markers: str  # the source it cites: "[1]"
    labels: tuple[str, ...]  # the table's own row names
    values: tuple[float, ...]
    shown: tuple[str, ...]  # each value as the table writes it ("$85,000"), printed beside its bar
    unit: str  # what the values are in, as the table writes it ("$", "%", "£ per hour")


def bar_charts(text: str) -> list[BarChart]:
    """The tables an answer lists whose rows give at least two numbers in one unit, one chart each; a table with
    values in different units, ranges or words gets none (its numbers are not comparable)."""
    charts: list[BarChart] = []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        lead = _LEAD_IN.match(line.strip())
        if not lead:
            continue
        rows = []
        for row_line in lines[i + 1 :]:
            row = _ROW.match(row_line.strip())
            if not row:
                break
            rows.append((row["label"].strip(), row["value"].strip()))
        chart = _chart(lead["title"].strip("* "), lead["markers"], rows)
        if chart:
            charts.append(chart)
    return charts


def _chart(title: str, markers: str, rows: list[tuple[str, str]]) -> BarChart | None:
    if not 2 <= len(rows) <= MAX_BARS:
        return None
    amounts = [_AMOUNT.match(value) for _, value in rows]
    if not all(amounts):
        return None
    units = {_unit(amount) for amount in amounts if amount}
    if len(units) != 1:
        return None
    values = tuple(
        float(a["number"].replace(",", "") + (a["decimals"] or "")) * _SCALES.get(a["scale"] or "", 1.0) for a in amounts if a
    )
    return BarChart(title, markers, tuple(label for label, _ in rows), values, tuple(v for _, v in rows), units.pop())


def _unit(amount: re.Match[str]) -> str:
    """A value's unit: its currency, scale, percent sign and trailing words ("per hour"), which must all agree."""
    rest = " ".join(amount["rest"].split()).strip(" .;,")
    return " ".join(part for part in (amount["before"], amount["scale"], amount["after"], rest) if part)


def figure(chart: BarChart) -> Any:
    """The chart as a matplotlib figure: one horizontal bar per row in the table's order, each labelled with the
    table's row name and its value as written, titled with the table's title and the source it cites. Sized to
    stay readable when a phone shows it about 250 pixels wide (its text then about 11 pixels high)."""
    from matplotlib.figure import Figure  # here: only an answer with a chart pays for matplotlib

    labels = [textwrap.fill(label, 16) for label in chart.labels]
    height = 1.0 + 0.46 * len(labels) + 0.18 * sum(label.count("\n") for label in labels)
    fig = Figure(figsize=(3.3, height), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    positions = range(len(labels))
    bars = ax.barh(positions, chart.values, color="#6366f1", height=0.62)
    ax.set_yticks(list(positions), labels, fontsize=10.5, parse_math=False)  # "$" is money, not TeX
    ax.invert_yaxis()  # the first row on top, as in the table
    ax.bar_label(bars, chart.shown, padding=3, fontsize=10.5, parse_math=False)
    ax.set_xlim(0, max(chart.values) * 1.6 or 1)  # room for the value printed after the longest bar
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="y", length=0)
    # Over the whole figure, from its left edge: over the bars alone, a long title would run off the right.
    fig.suptitle(textwrap.fill(f"{chart.title} {chart.markers}", 30), x=0.02, ha="left", fontsize=11, parse_math=False)
    return fig
