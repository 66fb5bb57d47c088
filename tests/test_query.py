from advisor.query import HISTORY_WEIGHT, MAPPED_WEIGHT, OWN_WEIGHT, build_query, expand, is_followup, message_text


def history(question):
    return [{"role": "user", "content": question}, {"role": "assistant", "content": "an answer [1]"}]


def test_users_words_are_mapped_to_the_corpus_words():
    assert "salary" in expand("how much do juniors get paid") and "entry level" in expand("how much do juniors get paid")
    assert "boot camp" in expand("is a bootcamp enough?")
    assert "misconception" in expand("what are the myths")
    assert expand("tell me about pasta") == ""


def test_own_words_outweigh_mapped_words_and_history():
    query = build_query("And at the senior level?", history("What is the entry-level salary?"))
    assert query.followup
    assert query.text == "What is the entry-level salary? And at the senior level?"
    assert query.weights["senior"] == MAPPED_WEIGHT  # "senior" is translated to "senior level": one concept
    assert query.weights["entri"] == HISTORY_WEIGHT
    assert query.weights["senior"] > query.weights["entri"]


def test_an_unknown_word_is_stood_in_for_by_its_translation_at_full_weight():
    query = build_query("What are the usual myths?", known={"misconcept", "salari"})
    assert query.weights["misconcept"] == OWN_WEIGHT
    assert "myth" in query.mapped
    known = build_query("What are the usual myths?", known={"myth", "misconcept"})
    assert known.weights["misconcept"] == MAPPED_WEIGHT


def test_followups_are_detected_and_chains_walk_back_to_the_topic():
    assert is_followup("What about Germany?") and is_followup("Is that true?") and is_followup("And seniors?")
    assert not is_followup("Which programming languages should an ML engineer know?")
    chain = history("What is the entry-level salary?") + history("And mid-level?")
    query = build_query("And senior?", chain)
    assert query.text.startswith("What is the entry-level salary? And mid-level?")
    standalone = build_query("Which programming languages should an ML engineer know?", history("What is the salary?"))
    assert not standalone.followup and "salari" not in standalone.weights


def test_message_text_accepts_strings_and_gradio_blocks():
    assert message_text("hi") == "hi"
    assert message_text([{"type": "text", "text": "What"}, {"type": "text", "text": "about Germany?"}]) == "What about Germany?"
    assert message_text(None) == ""
