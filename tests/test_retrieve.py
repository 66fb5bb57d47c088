from advisor.retrieve import Retriever


def test_dense_search_finds_table_and_faq_passages(seed_settings):
    retriever = Retriever.open(seed_settings)
    salary = retriever.search("What is the average salary for a senior level machine learning engineer?", 3)
    assert "Senior Level $170,000" in salary[0].chunk.text
    assert [h.rank for h in salary] == [1, 2, 3]
    assert salary[0].score >= salary[1].score >= salary[2].score
    startups = retriever.search("how many machine learning startups are there in Germany", 1)
    assert "5 Germany 97" in startups[0].chunk.text
    coding = retriever.search("Do ML engineers need to know how to code?", 3)
    assert any("Is coding knowledge essential" in h.chunk.text for h in coding)


def test_blank_query_returns_nothing(seed_settings):
    assert Retriever.open(seed_settings).search("   ", 5) == []
