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
