from advisor.query import (
    HISTORY_WEIGHT,
    OWN_WEIGHT,
    SYNONYM_WEIGHT,
    build_query,
    content_words,
    is_followup,
    lexicon,
    message_text,
    synonyms,
)


def history(*questions):
    turns = []
    for q in questions:
        turns += [{"role": "user", "content": q}, {"role": "assistant", "content": "an answer [1]"}]
    return turns


def test_followups_blend_the_question_that_set_the_topic():
    query = build_query("And at the senior level?", history("What is the entry-level salary?"))
    assert query.followup and query.text == "What is the entry-level salary? And at the senior level?"
    assert query.weights["senior"] == OWN_WEIGHT and query.weights["salari"] == HISTORY_WEIGHT
    chain = build_query("And senior?", history("What is the salary?", "And mid-level?"))
    assert chain.text.startswith("What is the salary?")


def test_followups_are_told_by_grammar_not_by_topic_words():
    assert is_followup("What about Germany?") and is_followup("Is that true?") and is_followup("And seniors?")
    assert is_followup("which of those is cheapest?") and is_followup("what do they build there?")
    assert not is_followup("Which programming languages should an ML engineer know?")
    assert not build_query("Which programming languages should an ML engineer know?", history("What is the salary?")).followup


def test_generic_synonyms_are_added_only_where_the_corpus_uses_them():
    known = {"salari", "entri", "level"}
    found = synonyms("what do juniors make", known)
    assert found["junior"] >= {"entri", "level"} and found["make"] >= {"salari"}
    query = build_query("what do juniors make", known=known)
    assert query.weights["salari"] == SYNONYM_WEIGHT and query.weights["junior"] == OWN_WEIGHT
    assert "wage" not in query.weights  # in the lexicon, but not in this corpus
    assert synonyms("tell us about it", {"unit", "state"}) == {}  # "us" the pronoun is not "US"
    assert synonyms("jobs in the US", {"unit", "state"})["us"] == {"unit", "state"}


def test_the_lexicon_is_a_generic_data_file():
    groups = [phrases for _, phrases in lexicon()]
    assert any("salary" in g and "earn" in g for g in groups)
    words = {p.lower() for g in groups for p in g}
    assert not words & {"tensorflow", "coursera", "zettabytes", "python"}  # nothing from one document


def test_corrections_are_applied_before_everything_else():
    query = build_query("salery?", correct=lambda q: (q.replace("salery", "salary"), (("salery", "salary"),)))
    assert query.question == "salary?" and "salari" in query.own and query.corrected == (("salery", "salary"),)


def test_message_text_reads_strings_and_content_blocks():
    assert message_text("hi") == "hi"
    assert message_text([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]) == "a b"
    assert message_text(None) == ""


def test_the_words_named_as_uncovered_are_said_without_the_full_stop_that_ends_their_sentence():
    words = content_words("I was an army medic. Is U.S. pay high? Ph.D. needed?")
    assert words == ["army", "medic", "U.S.", "pay", "high", "Ph.D.", "needed"]
