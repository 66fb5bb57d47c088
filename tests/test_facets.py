from advisor.facets import as_the_corpus_names, asked_part, facets, qualifiers, statement_words
from advisor.facets import named as named_in_text


def named(question):
    return [(f.typed, f.kind) for f in facets(question)]


def test_jobs_places_and_years_a_question_names():
    assert named("what do data scientists earn on average") == [("data scientists", "job")]
    assert named("ml engineer salary in canada 2024") == [("ml engineer", "job"), ("canada", "place"), ("2024", "year")]
    assert named("and for product managers?") == [("product managers", "job")]
    assert named("How much does a senior machine learning engineer make in New York?") == [
        ("machine learning engineer", "job"),
        ("New York", "place"),
    ]


def test_the_askers_own_job_is_background_not_the_subject():
    assert named("I'm a nurse, how do I become an ML engineer?") == [("ML engineer", "job")]
    assert named("I work as a data analyst. What skills do I need?") == []


def test_us_the_country_is_not_us_the_pronoun():
    assert named("What do engineers earn in the US?") == [("engineers", "job"), ("US", "place")]
    assert named("can you tell us what engineers earn") == [("engineers", "job")]


def test_a_facet_is_named_by_any_way_of_saying_it_words_adjacent():
    (uk,) = facets("pay in the UK")
    assert uk.named_in(statement_words("United Kingdom: £63,500"))
    assert not uk.named_in(statement_words("United States: $134,000"))
    (job,) = facets("what do ML engineers earn")
    assert job.named_in(statement_words("Average Salary of Machine Learning Engineers"))
    (data_engineer,) = facets("what do data engineers earn")
    assert not data_engineer.named_in(statement_words("Data scientists work with machine learning engineers"))
    (us,) = [f for f in facets("pay in the US") if f.kind == "place"]
    assert us.named_in(statement_words("the US median for analysts is $79,500"))


def test_a_facet_is_known_only_if_the_corpus_uses_its_words():
    (brazil,) = facets("what about in Brazil?")
    assert not brazil.known({"salari", "engin"}) and brazil.known({"brazil"})


def test_employers_and_sectors_a_question_names():
    assert named("how much does google pay its ML engineers") == [("google", "employer"), ("ML engineers", "job")]
    assert named("What do ML engineers do in healthcare or finance?") == [
        ("ML engineers", "job"),
        ("healthcare", "sector"),
        ("finance", "sector"),
    ]
    # A name that is also an everyday word counts only in capitals.
    assert named("ML jobs at Apple") == [("Apple", "employer")]
    assert named("is an apple a day enough for ML engineers") == [("ML engineers", "job")]


def test_background_sentences_are_left_out_of_a_question_not_out_of_a_passage():
    text = "We surveyed people in Germany. What do they earn in Canada?"
    assert [(f.typed, f.kind) for f in named_in_text(text)] == [("Germany", "place"), ("Canada", "place")]
    assert named(text) == [("Canada", "place")]


def test_an_adverb_before_a_job_word_is_not_part_of_the_job():
    assert named("which certification ranks second in how often engineers hold it") == [("engineers", "job")]


def test_a_word_before_a_job_counts_only_where_the_corpus_puts_such_words_before_jobs():
    corpus = ["Data scientists and machine learning engineers earn more than librarians.", "Top paying employers"]
    said = qualifiers(corpus)
    assert ("data",) in said and ("machin", "learn") in said and ("pay",) not in said
    vocabulary = {"data", "scientist", "librarian", "pay", "paid", "employ", "product", "machin", "learn", "engin"}

    def as_said(question):
        return [f.typed for f in as_the_corpus_names(facets(question), said, vocabulary)]

    assert as_said("lowest paid librarians 2003") == ["librarians", "2003"]  # how, not which job
    assert as_said("what do data scientists earn") == ["data scientists"]  # the corpus's own kind of job
    assert as_said("what do ml engineers earn") == ["ml engineers"]  # said another way ("machine learning")
    assert as_said("how much do product managers make") == ["managers"]  # dropped here; the model decides (chat)
    assert as_said("pediatric librarians pay") == ["pediatric librarians"]  # a word the corpus never uses stays


def test_a_phrase_is_never_named_across_a_statement_and_its_heading():
    (job,) = facets("census bureau librarian pay")
    assert job.typed == "bureau librarian"
    assert not job.named_in(statement_words("U.S. Census Bureau", "Librarian"))
    assert job.named_in(statement_words("The Census Bureau librarian answers questions", "Librarian"))


def test_a_job_that_ends_a_sentence_is_named_and_the_sentence_before_says_nothing_of_it():
    text = "Analysts earn less than school librarians. Data scientists earn more."
    assert [f.typed for f in named_in_text(text)] == ["Analysts", "school librarians", "Data scientists"]
    # "librarians." ends a sentence: it is no word before the next job.
    assert qualifiers(["Most work as librarians. Census analysts answer questions."]) == {("census",)}


def test_the_part_of_a_message_that_asks_leaves_out_what_the_asker_tells_about_themselves():
    assert (
        asked_part("I was an army medic. Can ML engineers work in healthcare?").strip() == "Can ML engineers work in healthcare?"
    )
    assert asked_part("what do ML engineers earn?") == "what do ML engineers earn?"


def test_places_are_read_in_one_pass_each_with_every_way_of_saying_it():
    from advisor.facets import places

    found = places("Jobs in New York and the U.S.; pay in the United States; us and US.")
    assert found == {frozenset(f.variants) for f in facets("New York US") if f.kind == "place"}
    assert places("Most of us work here.") == frozenset()  # "us" in lower case is the pronoun
