from advisor.statements import normalized, parse_table, to_number, units_of
from advisor.types import Chunk


def chunk(text, section="Guide › Pay"):
    return Chunk(1, "corpus/a.md", "Guide", section, text, 0, len(text))


def test_units_are_sentences_items_rows_and_faq_answers_each_found_in_the_passage():
    text = (
        "Pay\n\nSalary by level:\n\nLevel Salary\nJunior $60,000\nSenior $90,000\n\nSkills you need:\n\n"
        "- SQL and Python.\n- Communication.\n\nIs a degree needed?\n\nNo. Many people are self-taught. "
        "They learn online."
    )
    units = units_of(chunk(text))
    kinds = [u.kind for u in units]
    assert {"table", "row", "list", "item", "answer", "sentence"} <= set(kinds)
    for unit in units:
        assert all(normalized(p) in normalized(text) for p in unit.parts), unit
    rows = [u for u in units if u.kind == "row"]
    assert [u.text for u in rows] == ["Junior: $60,000", "Senior: $90,000"]
    answer = next(u for u in units if u.kind == "answer")
    assert answer.context == "Is a degree needed?" and "self-taught" in answer.embed
    # "They learn online." leans on the sentence before it and is never a statement alone.
    assert not any(u.kind == "sentence" and u.text == "They learn online." for u in units)


def test_tables_parse_delimited_and_flattened_rows():
    piped = parse_table("Country | Median | Change\nUnited States | $134,000 | +4.5%\nGermany | €69,000 | +3.8%", "Pay")
    assert piped.columns == ("Country", "Median", "Change") and piped.rows[1].label == "Germany"
    assert piped.rows[0].number() == 134000
    ranked = parse_table("Rank Country Number of Startups\n1 United States 452\n2 India 287", "Startups")
    assert ranked.ranked and ranked.rows[1].rank == 2 and ranked.rows[1].label == "India" and ranked.rows[1].number() == 287


def test_numbers_are_read_with_their_scale():
    assert to_number("$96.7 billion") == 96.7e9 and to_number("43.8%") == 43.8 and to_number("none") is None


def test_a_paragraph_opening_with_a_question_is_an_faq_said_in_the_text():
    text = "Can analysts work from home? Often, yes. About 35% of postings were fully remote."
    units = units_of(chunk(text, "Guide › Work"))
    short = next(u for u in units if u.text == "Often, yes.")
    assert short.context == "Can analysts work from home?" and "Can analysts work from home?: Often, yes." in short.embed
    answer = next(u for u in units if u.kind == "answer")
    assert answer.context == "Can analysts work from home?" and "35%" in answer.text


def _rows(body):
    """A flattened table's parse and its rows' values by label."""
    table = parse_table(body, "Overview")
    return table, {r.label: r.values for r in table.rows}


def test_a_field_list_pairs_each_name_with_the_figure_on_the_next_line():
    # A job posting's overview: field names and values on alternate lines, most with no figure.
    body = (
        "Posting open\nSalary range\n$58,200 to $81,400 per year\nGrade\nPS 7 - 9\nLocation\nHarlow County\n"
        "Openings\n2\nShift\nDays"
    )
    table, rows = _rows(body)
    assert rows["Salary range"] == ("$58,200 to $81,400 per year",) and rows["Grade"] == ("PS 7 - 9",)
    assert rows["Openings"] == ("2",)
    assert rows["Location"] == () and "Harlow County" in rows  # two names: which names which is not known
    assert all(r.line in body for r in table.rows)


def test_quick_facts_keep_each_line_a_row_with_its_own_name():
    # A fact sheet's box: a name and a value on each line, some values words ("None"), a year in some names.
    body = (
        "2021 Median Pay $39,850 per year\n$19.16 per hour\nTypical Entry-Level Education High school diploma\n"
        "On-the-job Training None\nNumber of Jobs, 2020 9,300\nEmployment Change, 2020-30 -200"
    )
    table, rows = _rows(body)
    assert table.header == "2021 Median Pay $39,850 per year"  # the lines of words below it are rows, not its header
    assert "Typical Entry-Level Education High school diploma" in rows and "On-the-job Training None" in rows
    assert rows["Number of Jobs, 2020"] == ("9,300",)  # not the value of "On-the-job Training None"; its year is no value
    assert rows["Employment Change, 2020-30"] == ("-200",)


def test_a_header_wrapped_over_lines_names_the_columns_by_its_figures():
    body = (
        "Percentile 10% 25% 50%\n(Median)\n75% 90%\n"
        "Hourly $15.10 $18.40 $22.75 $27.90 $33.60\nYearly $31,400 $38,270 $47,320 $58,030 $69,890"
    )
    table = parse_table(body, "Wages")
    assert table.header == "Percentile 10% 25% 50%\n(Median)\n75% 90%" and [r.label for r in table.rows] == ["Hourly", "Yearly"]
    assert table.columns == ("Percentile", "10%", "25%", "50%", "75%", "90%")
    yearly = units_of(chunk(f"Wages\n\n{body}"))
    assert any(u.kind == "row" and u.text.startswith("Yearly — 10%: $31,400;") and "90%: $69,890" in u.text for u in yearly)
    # A flattened table whose first line is its whole header is read as before.
    plain = parse_table("Level Salary\nJunior $60,000\nSenior $90,000", "Pay")
    assert plain.header == "Level Salary" and plain.columns == () and len(plain.rows) == 2


def test_a_lone_word_is_no_statement_unless_it_answers_a_question():
    cut = units_of(chunk("## Courses\n\nGenetic", section="Program › Courses"))
    assert not [u for u in cut if u.kind == "sentence"]  # a page excerpt cut after its first word
    faq = units_of(chunk("Yes.", section="Guide › Is a degree needed?"))
    assert [u.text for u in faq if u.kind == "sentence"] == ["Yes."]
    assert [u.text for u in units_of(chunk("2023")) if u.kind == "sentence"] == ["2023"]
