from advisor.query import build_query
from advisor.retrieve import Retriever


def test_hybrid_search_finds_tables_faq_and_exact_terms(seed_settings):
    retriever = Retriever.open(seed_settings)
    salary = retriever.search("What is the average salary for a senior level machine learning engineer?", 3)
    assert "Senior Level $170,000" in salary[0].chunk.text
    assert [h.rank for h in salary] == [1, 2, 3] and salary[0].score >= salary[1].score >= salary[2].score
    assert salary[0].dense > 0 and salary[0].lexical > 0
    assert "5 Germany 97" in retriever.search("how many machine learning startups are there in Germany", 1)[0].chunk.text
    # A rare exact term that dense retrieval alone misses is found through BM25.
    assert "What is overfitting?" in retriever.search("what is overfitting", 1)[0].chunk.text


def test_users_words_reach_the_articles_words(seed_settings):
    retriever = Retriever.open(seed_settings)
    assert "Entry Level $85,000" in retriever.search("how much do juniors get paid", 1)[0].chunk.text
    assert "boot camp" in retriever.search("is a bootcamp enough to get hired?", 1)[0].chunk.text
    # "myths" is never used by the corpus: its translation carries the lexical ranking.
    query = build_query("what myths do people believe about ML engineers", known=retriever.lexical.df)
    scores = retriever.lexical.scores(query.weights)
    assert "misconception" in retriever.index.chunks[retriever._ids[int(scores.argmax())]].text


def test_a_followup_query_retrieves_what_the_conversation_is_about(seed_settings):
    retriever = Retriever.open(seed_settings)
    history = [{"role": "user", "content": "How many ML startups are there in the United States?"}]
    hits = retriever.search(build_query("What about Germany?", history, known=retriever.lexical.df), 1)
    assert "5 Germany 97" in hits[0].chunk.text


def test_blank_query_returns_nothing(seed_settings):
    assert Retriever.open(seed_settings).search("   ", 5) == []
