from matplotlib.figure import Figure

from advisor.chart import bar_charts, figure

PAY = "Average Salary of Machine Learning Engineers [1]:\n- Entry Level: $85,000\n- Mid-Level: $120,000\n- Senior Level: $170,000"


def test_a_listed_table_of_amounts_in_one_unit_becomes_a_chart_with_its_own_names_and_values():
    (chart,) = bar_charts(f"Pay rises with experience [1].\n{PAY}\nThat is all [1].")
    assert chart.title == "Average Salary of Machine Learning Engineers" and chart.markers == "[1]"
    assert chart.labels == ("Entry Level", "Mid-Level", "Senior Level")
    assert chart.values == (85_000, 120_000, 170_000) and chart.shown == ("$85,000", "$120,000", "$170,000")
    assert chart.unit == "$"
    shares = bar_charts("Top industries [2]:\n- IT: 25%\n- Finance: 12.5%\n- Health: 9 percent")
    assert shares == []  # "%" and "percent" are written differently: not read as one unit
    (hourly,) = bar_charts("Hourly pay by state [3][4]:\n- Ohio: £12.50 per hour\n- Utah: £14 per hour")
    assert hourly.values == (12.5, 14.0) and hourly.unit == "£ per hour" and hourly.markers == "[3][4]"
    (scaled,) = bar_charts("Market size [1]:\n- 2023: $1.2 million\n- 2030: $3 million")
    assert scaled.values == (1_200_000, 3_000_000)


def test_no_chart_without_two_comparable_numbers():
    assert bar_charts("Entry level pays $85,000 [1].") == []  # one figure, in a sentence
    assert bar_charts("Pay [1]:\n- Entry Level: $85,000") == []  # one row
    assert bar_charts("Pay [1]:\n- Entry: $85,000\n- Senior: 43%") == []  # different units
    assert bar_charts("Pay [1]:\n- Entry: $80,000–$90,000\n- Senior: $170,000") == []  # a range
    assert bar_charts("Skills [1]:\n- Python: essential\n- SQL: useful") == []  # words
    assert bar_charts("Pay:\n- Entry: $1\n- Senior: $2") == []  # cites nothing


def test_the_figure_draws_each_row_with_its_value_as_written_and_cites_the_source():
    (chart,) = bar_charts(PAY.replace("Senior Level", "Senior Level $ (with $ signs)"))
    drawn = figure(chart)
    assert isinstance(drawn, Figure)
    (axes,) = drawn.axes
    assert [label.get_text() for label in axes.get_yticklabels()] == [
        "Entry Level",
        "Mid-Level",
        "Senior Level $\n(with $ signs)",
    ]
    assert [text.get_text() for text in axes.texts] == ["$85,000", "$120,000", "$170,000"]
    assert drawn.get_suptitle() == "Average Salary of Machine\nLearning Engineers [1]"
    assert [round(bar.get_width()) for bar in axes.patches] == [85_000, 120_000, 170_000]
    drawn.canvas.draw()  # "$" pairs are text, not TeX: drawing does not fail
