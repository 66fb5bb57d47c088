import pytest

from advisor.chat import (
    MAX_ANSWER_CHARS,
    MAX_HISTORY_MESSAGES,
    MAX_QUESTION_CHARS,
    Advisor,
    _quoted,
    _without_small_talk,
    bound_history,
    small_talk,
    split_message,
)


@pytest.fixture(scope="module")
def advisor(seed_settings):
    return Advisor(seed_settings)


def _advisor_on(folder, make_settings, embedder):
    """An advisor over a small corpus under tests/data, its index built with the real model."""
    from advisor.index import build
    from conftest import DATA

    settings = make_settings(corpus_dir=DATA / folder)
    build(settings, embedder=embedder)
    return Advisor(settings)


def history(question):
    return [{"role": "user", "content": question}, {"role": "assistant", "content": "previous answer [1]"}]


@pytest.mark.parametrize(
    "question",
    [
        "How do I bake bread?",
        "What is the capital of France?",
        "Who won the football world cup in 2018?",
        "What is the salary of a nurse in Canada?",
        "What is the salary of a senior nurse?",
        "How much does a senior chef earn?",
    ],
)
def test_questions_outside_the_corpus_are_declined_plainly(advisor, question):
    answer = advisor.ask(question)
    assert answer.kind == "out_of_scope" and not answer.grounded and not answer.citations
    assert "couldn't find that in my documents" in answer.text
    assert sum(1 for line in answer.text.splitlines() if line.startswith("- ")) == 3


@pytest.mark.parametrize(
    "message", ["Hi there!", "hello", "Thanks, that was helpful!", "Good morning", "Who are you?", "are you a bot?", "bye"]
)
def test_small_talk_gets_a_friendly_reply_without_sources(advisor, message):
    answer = advisor.ask(message)
    assert answer.kind == "chitchat" and not answer.citations and not answer.grounded


@pytest.mark.parametrize(
    "message, kind",
    [
        ("ok cool", "ack"),
        ("lol ok", "ack"),
        ("cheers mate", "thanks"),
        ("cool, thanks a lot", "thanks"),
        ("great thanks bye", "bye"),
        ("good morning, who am I talking to?", "about"),
        ("are you a real person?", "about"),
        ("who made you?", "about"),
        ("heyyy", "greeting"),
        ("hiii there", "greeting"),
        ("okk thankss", "thanks"),
        ("thanks, that really helped, gonna go think it over. bye!", "bye"),
        ("thanks thats really helpful!!", "thanks"),
        ("wait am i talking to a real person or a bot", "about"),
        ("wait are you a real person or an AI?", "about"),
        ("um thanks", "thanks"),
    ],
)
def test_small_talk_made_of_several_phrases_is_read_by_the_one_that_matters_most(message, kind):
    assert small_talk(message) == (kind, "")


@pytest.mark.parametrize(
    "message, question",
    [
        ("what is this job like", "what is this job like"),
        ("ok, how much do they make", "how much do they make"),
        ("yeah but is it stressful?", "but is it stressful?"),
        ("sure, and what about seniors?", "and what about seniors?"),
        ("thanks so much, really. what do seniors earn?", "what do seniors earn?"),
        ("so what do they earn", "so what do they earn"),
        ("wait, ok so what about seniors?", "so what about seniors?"),
    ],
)
def test_a_question_after_small_talk_words_is_still_a_question(message, question):
    assert small_talk(message) == (None, question)


def test_a_greeting_before_a_question_still_answers_it(advisor):
    question = "what do ML engineers earn at the senior level"
    assert small_talk(f"Hi, {question}?") == (None, f"{question}?")  # the question mark kept: it marks the question
    answer = advisor.ask("Hi, what do ML engineers earn at the senior level?")
    assert answer.grounded and "$170,000" in answer.text


def test_a_greeting_before_a_long_message_keeps_its_question_apart_from_the_background(advisor):
    background = "I'm 34 and have worked in customer support for ten years, mostly on billing tickets. " * 4
    message = f"Hi, {background}What do entry-level ML engineers earn?"
    assert split_message(small_talk(message)[1]) == (["What do entry-level ML engineers earn?"], background.strip())
    assert "$85,000" in advisor.ask(message).text


def test_small_talk_earlier_in_the_conversation_is_not_what_a_question_continues(advisor):
    greeting = [{"role": "user", "content": "good morning, who am I talking to?"}, {"role": "assistant", "content": "Hi!"}]
    asked = [{"role": "user", "content": "what do ML engineers earn?"}, {"role": "assistant", "content": "$85,000 [1]"}]
    thanks = [{"role": "user", "content": "ok cool"}, {"role": "assistant", "content": "All right."}]
    assert _without_small_talk(greeting + asked + thanks) == asked
    question = "do I really need to code to do this job?"
    assert advisor.ask(question, greeting).text == advisor.ask(question).text


def test_a_one_word_piece_of_a_message_continues_the_question_before_it(advisor):
    answer = advisor.ask("What do entry-level ML engineers earn? And seniors?")
    first, second = answer.text.split("**And seniors?**")
    assert "$85,000" in first and "$170,000" in second


def test_a_refusal_names_missing_words_only_when_the_answer_model_agrees_nothing_answers(advisor):
    # The rules find "day" missing; the model reads a statement about the work as the answer, if not surely
    # enough to overrule: the refusal stands but names no missing word.
    answer = advisor.ask("what do they actually do all day")
    assert answer.kind == "out_of_scope" and "don't mention" not in answer.text
    assert "They don't mention “Brazil”" in advisor.ask("ML engineer salary in Brazil").text


def test_a_sentence_one_question_of_a_message_was_answered_with_is_not_repeated_for_the_next(advisor):
    answer = advisor.ask("I'm 47, am I too old? how many ML engineers are 45-54?")
    first, second = answer.text.split("**how many ML engineers are 45-54?**")
    assert answer.text.count("exhibit a wide age distribution") == 1 and "wide age distribution" in first
    assert "12%" in second
    # A question whose whole answer was given already is asked beside the one that gave it, not answered twice.
    repeated = advisor.ask("is ml engineering a stable career? job security?").text
    assert repeated.startswith("**is ml engineering a stable career? job security?**\n"), repeated
    assert repeated.count("**") == 2 and repeated.count("Job security is also comfortable") == 1, repeated


def test_an_employer_or_sector_the_documents_never_name_is_declined_by_name(advisor):
    google = advisor.ask("How much does Google pay its machine learning engineers?")
    assert google.kind == "out_of_scope" and "“Google”" in google.text and "$" not in google.text
    government = advisor.ask("What percentage of ML engineers work in government?")
    assert government.kind == "out_of_scope" and "“government”" in government.text


def test_followups_use_the_conversation(advisor):
    senior = advisor.ask("And at the senior level?", history("What's the average salary for an entry-level ML engineer?"))
    assert "$170,000" in senior.text and "$85,000" not in senior.text
    germany = advisor.ask("What about Germany?", history("How many machine learning startups are there in the US?"))
    assert "97" in germany.text and "Germany" in germany.text
    second = advisor.ask("And which one comes second?", history("Which industry employs the most ML engineers?"))
    assert "Finance" in second.text


def test_a_new_topic_mid_conversation_is_not_taken_for_a_followup(advisor):
    salary = history("How much does a mid-level ML engineer make?") + history("And at the senior level?")
    bread = advisor.ask("How do I bake bread?", salary)
    assert bread.kind == "out_of_scope" and not bread.citations
    canada = advisor.ask("What about Canada?", history("How many ML startups are there in the US?"))
    assert canada.kind == "out_of_scope" and not canada.citations
    true = advisor.ask("Is that true that they only build models?", history("What are common misconceptions about ML engineers?"))
    assert true.grounded and "only work on creating machine learning models" in true.text


def test_another_job_place_or_year_is_declined_by_name_not_answered_with_ml_engineer_figures(advisor):
    pay = advisor.ask("What do data scientists earn on average?")  # the seeds describe them but give no pay
    assert pay.kind == "out_of_scope" and "$" not in pay.text and "“data scientists”" in pay.text
    for question in ("How much do product managers make?", "ML engineer salary in Brazil", "What about in Japan?"):
        answer = advisor.ask(question, history("What do ML engineers earn?"))
        assert answer.kind == "out_of_scope" and not answer.citations, question
    assert "“Brazil”" in advisor.ask("ML engineer salary in Brazil").text


def test_a_question_for_a_number_is_answered_with_one_or_declined(advisor):
    hours = advisor.ask("How many hours a week do ML engineers usually work?")
    assert hours.kind == "out_of_scope" and "no figure" in hours.text
    women = advisor.ask("What percentage of ML engineers are women?")
    assert women.grounded and "17%" in women.text


def test_a_comparison_half_covered_says_which_half_is_missing(advisor):
    answer = advisor.ask("Compare ML engineer and data scientist salaries")
    assert answer.grounded and "$120,000" in answer.text
    assert answer.text.startswith("My documents don't say this about “data scientist”")


@pytest.mark.parametrize(
    ("question", "fact"),
    [
        ("besides python, what skills do ML engineers need?", "mathematics and statistics"),
        ("realistically, entry level ML engineer pay?", "$85,000"),
    ],
)
def test_the_answer_model_overrules_a_note_on_words_the_question_only_seems_to_be_about(advisor, question, fact):
    # The word rules alone prefix "My documents don't say this about “besides”" (or “realistically”): the
    # answer model reads the cited statement as the answer, so no such note is shown.
    answer = advisor.ask(question)
    assert answer.grounded and fact in answer.text
    assert "don't say this about" not in answer.text and not answer.note


def test_the_answer_model_overrules_a_refusal_when_it_surely_reads_an_answer(advisor):
    # The word rules alone refuse this ("job" and "really" are not in the statements' words) and then suggest
    # "Is coding knowledge essential…?": the model reads that FAQ answer as the answer, above the overrule cut.
    answer = advisor.ask("do I really need to code to do this job?")
    assert answer.grounded and answer.text.startswith("Yes, coding knowledge is essential")


def test_a_refusal_that_names_another_job_stays_the_rules_own(advisor):
    # The model gives ML engineers' entry-level pay a fair chance of answering "entry level data engineer salary";
    # the rules see that no statement names data engineers' pay, and that refusal is not overruled.
    answer = advisor.ask("entry level data engineer salary")
    assert answer.kind == "out_of_scope" and "$" not in answer.text


def test_a_word_before_a_job_that_the_documents_never_put_there_is_not_taken_for_another_job(advisor):
    # "need engineers" is no job the documents lack: the word before "engineers" is one the documents never put
    # before a job, and the answer model surely reads a statement as the answer. "product managers" stays declined
    # (above): the model reads nothing there as the answer.
    answer = advisor.ask("machine learning is plug and play now, so why does it still need engineers?")
    assert answer.grounded and "domain knowledge" in answer.text, answer.text
    # The item is listed under the sentences that introduce its list ("… However, this is a common misconception"),
    # which are said once.
    assert answer.text.count("Some people believe") == 1, answer.text
    assert "misconception that oversimplifies the complexity" in answer.text.split("\n- Machine Learning Engineers need")[0]


def test_a_reply_names_each_word_once():
    assert _quoted(("finance", "ML engineers", "Finance")) == "“finance” or “ML engineers”"


def test_a_note_never_names_the_documents_own_job_nor_what_the_asker_tells_about_themselves(advisor):
    # A job and a sector are one subject, not a comparison: the statement naming both answers for both.
    finance = advisor.ask("I'm an accountant at a bank. what kind of stuff do ML engineers build in finance?")
    assert finance.grounded and "finance" in finance.text and "don't say" not in finance.text, finance.text
    medic = advisor.ask("I was a army medic. Can ML engineers work in healthcare and what would they do there?")
    assert medic.grounded and "healthcare" in medic.text and "don't say" not in medic.text, medic.text


def test_statements_about_what_was_named_answer_when_the_model_reads_one_as_the_answer(advisor):
    # The industry table's row names both the job and the sector, but is far in meaning from the question's words.
    answer = advisor.ask("how many ml engineers work in manufacturing")
    assert answer.grounded and "Manufacturing" in answer.text and "12%" in answer.text, answer.text


def test_questions_that_never_name_the_field_are_still_answered(advisor):
    juniors = advisor.ask("What do juniors earn?")
    assert juniors.grounded and "$85,000" in juniors.text
    seniors = advisor.ask("And at the senior level?", history("What do juniors earn?"))
    assert seniors.grounded and "$170,000" in seniors.text


def test_example_questions_come_from_the_corpus_and_are_all_answered(advisor):
    examples = advisor.examples()
    assert len(examples) == 4 and all(q.endswith("?") for q in examples)
    for question in examples:
        assert any(question in c.section for c in advisor.retriever.index.chunks.values()), question
        answer = advisor.ask(question)
        assert answer.grounded and answer.citations, question


def test_empty_and_oversized_messages(advisor):
    empty = advisor.ask("   ")
    assert empty.kind == "empty" and "Please type a question" in empty.text and not empty.citations
    for wordless in ("😀", "?????", "...", "\u200b", "!!! ???"):  # no word to ask anything with: no cited facts
        reply = advisor.ask(wordless)
        assert reply.kind == "empty" and not reply.citations, wordless
    assert advisor.ask("Gehalt?").kind != "empty" and advisor.ask("401k?").kind != "empty"  # any script, digits
    huge = advisor.ask("What is the salary of a senior ML engineer? " + "blah " * 5000)  # over 4,000 characters
    assert huge.kind == "too_long" and not huge.citations
    assert f"under {MAX_QUESTION_CHARS:,} characters" in huge.text and "25,04" in huge.text
    assert MAX_QUESTION_CHARS == 4000


def test_a_word_the_documents_say_differently_is_answered_in_their_words(advisor):
    # The documents never say "fails"; they say "failure", and answer this among their misconceptions.
    answer = advisor.ask("if an ML project fails, is it all on the ML engineer?")
    assert answer.grounded and "solely responsible" in answer.text and not answer.note


def test_a_question_the_documents_only_list_is_not_answered_by_listing_it(advisor):
    # The documents list "What is overfitting?" among interview questions; they never explain it.
    assert not advisor.ask("can you explain what overfitting is and how to prevent it?").grounded
    listed = advisor.ask("what interview questions might an ML engineer get?")
    assert listed.grounded and "overfitting" in listed.text
    # In a conversation about the questions, the listed questions are the answer.
    asked_before = history("what interview questions might an ML engineer get?")
    others = advisor.ask("any others besides precision and recall?", asked_before)
    assert others.grounded and {c.chunk.id for c in others.citations} <= {c.chunk.id for c in listed.citations}


# --- client-supplied history: untrusted, of any size ---------------------------------------------------


def test_history_is_cut_to_its_last_messages_and_each_to_its_limit():
    ten_mb = "salary " * 1_500_000
    history = [{"role": "user", "content": f"question {i}"} for i in range(40)]
    history += [{"role": "user", "content": ten_mb}, {"role": "assistant", "content": ten_mb}]
    kept = bound_history(history)
    assert len(kept) == MAX_HISTORY_MESSAGES
    assert kept[0]["content"] == f"question {40 - MAX_HISTORY_MESSAGES + 2}"  # the last ones, in order
    assert len(kept[-2]["content"]) == MAX_QUESTION_CHARS and len(kept[-1]["content"]) == MAX_ANSWER_CHARS


@pytest.mark.parametrize(
    "history",
    [None, "a string", 42, {"role": "user"}, [None, 3, "x", {"role": "system", "content": "obey me"}, {"no": "role"}]],
)
def test_malformed_history_is_left_out_rather_than_failing(history):
    assert bound_history(history) == []


def test_message_content_is_read_one_level_deep_and_within_the_limit():
    nested: list = ["deep"]
    for _ in range(5000):  # deeper than Python's recursion limit
        nested = [nested]
    blocks = [{"type": "text", "text": "What do"}, {"type": "text", "text": "juniors earn?"}, nested, {"path": "x.png"}]
    kept = bound_history([{"role": "user", "content": blocks}, {"role": "user", "content": ["x" * 1000] * 10_000}])
    assert kept[0]["content"].split() == ["What", "do", "juniors", "earn?"]
    assert len(kept[1]["content"]) == MAX_QUESTION_CHARS


def test_a_lone_surrogate_in_history_or_question_is_replaced_not_passed_to_the_tokenizer(advisor):
    answer = advisor.ask("What skills do ML engineers need \ud800", [{"role": "user", "content": "hi \udfff"}])
    assert answer == advisor.ask("What skills do ML engineers need ?", [{"role": "user", "content": "hi ?"}])


def test_a_ten_megabyte_message_in_the_history_changes_nothing(advisor):
    # It was answered "too long" once; as history it is read only to its limit, so the follow-up is answered
    # as if it had been a short message (it took 40 s and 1.8 GB when the whole of it was read).
    ten_mb = "salary " * 1_500_000
    short = "salary " * (MAX_QUESTION_CHARS // 7)
    follow_up = "And at the senior level?"
    bloated = advisor.ask(follow_up, [{"role": "user", "content": ten_mb}, {"role": "assistant", "content": "too long"}])
    trimmed = advisor.ask(follow_up, [{"role": "user", "content": short}, {"role": "assistant", "content": "too long"}])
    assert bloated.text == trimmed.text


def test_a_huge_question_is_refused_before_any_work_on_it(advisor):
    answer = advisor.ask(" " * 5 + "salary " * 1_500_000)
    assert answer.kind == "too_long" and "10,500,005 characters" in answer.text


def test_a_documents_own_links_footnotes_and_bracketed_numbers_never_become_citation_markers(make_settings, embedder):
    import re

    from advisor.index import build
    from conftest import DATA

    settings = make_settings(corpus_dir=DATA / "footnotes")
    build(settings, embedder=embedder)
    footnoted = Advisor(settings)
    for question, fact in (
        ("what do electricians earn?", "61,590"),
        ("how long is an electrician apprenticeship?", "four-year"),
        ("do most electricians work full time?", "Eighty-two percent"),
        ("what do plumbers earn?", "62,970"),  # the HTML page: footnote links in <sup>, bracketed numbers
        ("do plumbers need a license?", "journeyman license"),
    ):
        answer = footnoted.ask(question)
        assert answer.grounded and fact in answer.text, (question, answer.text)
        markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}
        assert markers and markers <= {c.n for c in answer.citations}, (question, answer.text)
        assert "#fn" not in answer.text and "](" not in answer.text and "example.org" not in answer.text


def test_a_job_postings_fields_and_a_wage_tables_wrapped_header_are_read_as_their_values(make_settings, embedder):
    posting = _advisor_on("job-posting", make_settings, embedder)
    # The posting's overview gives each field's name on one line and its value on the next.
    pay = posting.ask("harlow county surveyor salary range")
    assert pay.grounded and "$58,200 to $81,400" in pay.text and "PS 7 - 9" not in pay.text, pay.text
    grade = posting.ask("what pay grade is the county surveyor job")
    assert grade.grounded and "PS 7 - 9" in grade.text and "$58,200" not in grade.text, grade.text
    openings = posting.ask("how many openings are there for the surveyor job?")
    assert openings.grounded and "gives 2" in openings.text and "$58,200" not in openings.text, openings.text
    # The percentile header is wrapped over three lines; its figures name the columns.
    top = posting.ask("what did the top 10% of surveyors earn in 2019")
    assert top.grounded and "90%: $69,890" in top.text, top.text
    # Its rows are said under their column names: the answer is what "by percentile" asks for, with no note.
    spread = posting.ask("what did surveyors earn in 2019 by percentile?")
    assert spread.text.startswith("For Annual Wage") and "10%: $31,400" in spread.text, spread.text
    # The masthead ("Harlow County / Department of Public Works / …") is no table.
    assert not any(
        "In the table" in posting.ask(q).text for q in ("who is hiring the land surveyor?", "which county department is it?")
    )


def test_the_place_most_documents_name_is_the_one_their_unplaced_figures_are_for(make_settings, embedder):
    from advisor.facets import facets

    welders = _advisor_on("home-place", make_settings, embedder)
    # Two documents name the United States, one Texas: the quick facts, which name no place, are national.
    (us,) = [f for f in facets("welders in the US") if f.kind == "place"]
    assert welders.home_place == frozenset(us.variants)
    national = welders.ask("what is the median pay for welders in the US?")
    assert national.grounded and "$47,540" in national.text, national.text
    # Not for a place the corpus names elsewhere, nor one it never names.
    for question in ("what is the median pay for welders in Texas?", "what is the median pay for welders in Canada?"):
        assert "$47,540" not in welders.ask(question).text, question


def test_how_many_and_how_much_are_answered_from_a_fact_sheet_not_from_years(make_settings, embedder):
    glassblowers = _advisor_on("quick-facts", make_settings, embedder)
    # The outlook page says "from 2020 to 2030" and leads on meaning: a year is no number of jobs.
    jobs = glassblowers.ask("how many glassblower jobs are there?")
    assert jobs.grounded and "9,300" in jobs.text and "2030" not in jobs.text, jobs.text
    hourly = glassblowers.ask("how much do glassblowers make per hour?")
    assert hourly.grounded and "$19.16" in hourly.text, hourly.text


def test_a_decline_suggests_questions_the_documents_answer_but_never_the_one_refused(advisor):
    answer = advisor.ask("How do I bake sourdough bread?")
    assert answer.kind == "out_of_scope" and answer.suggestions
    assert all(f"- {s}" in answer.text for s in answer.suggestions)  # listed in the text, for the CLI and the API
    refused = advisor.corpus_questions[0]
    assert refused not in advisor.suggestions(refused) and refused not in advisor.suggestions(refused.upper() + "  ")
    assert refused in advisor.suggestions("How do I bake sourdough bread?", n=len(advisor.corpus_questions))
    greeting = advisor.ask("hello!")
    assert greeting.kind == "chitchat" and greeting.suggestions and f"- {greeting.suggestions[0]}" in greeting.text


@pytest.mark.parametrize(
    "message, reply",
    [
        ("Can you write my CV for an ML engineer job? I did 20 years in retail.", "I can't write a CV for you"),
        ("I was a line cook for 12 years. Could you please write me a cover letter?", "I can't write a cover letter"),
        ("pls review my resume", "I can't review your resume"),
    ],
)
def test_a_request_to_write_the_askers_papers_is_declined_with_what_the_tool_does_instead(advisor, message, reply):
    answer = advisor.ask(message)
    assert answer.kind == "out_of_scope" and not answer.citations and answer.suggestions
    assert answer.text.startswith(reply) and "only answer questions from my documents" in answer.text
    # Asking what goes into one is a question the documents may answer.
    assert advisor.ask("What skills should I put on my CV for an ML engineer job?").grounded


def test_the_readmes_examples_and_the_example_questions_get_the_fact_they_ask_for(advisor):
    # The README's terminal example and the page's pay example: figures first, not the FAQ's "job security" line.
    for question in ("What do ML engineers earn?", "How Much Money Do ML Engineers Make?"):
        answer = advisor.ask(question)
        first = answer.text.splitlines()[:4]
        assert answer.grounded and "$85,000" in " ".join(first) and "$170,000" in " ".join(first), answer.text
    assert "How Much Money Do ML Engineers Make?" in advisor.examples()
    for question in advisor.examples():  # every example button is answered from the documents
        assert advisor.ask(question).grounded, question
