from advisor.kin import LOOKUPS, Kin
from advisor.query import build_query, synonyms

TEXTS = [
    "Employers hire graduates with an undergraduate degree in statistics.",
    "Daily work includes cleaning data and talking to customers.",
]


def test_a_word_the_corpus_lacks_finds_the_corpus_word_meaning_the_same(embedder):
    kin = Kin(TEXTS, embedder.embed_passages)
    assert "daily" in kin("everyday") and "undergraduate" in kin("undergrad")
    assert kin("daily") == ()  # a corpus word is itself
    assert kin("visa") == ()  # rare, but only on the same topic as "employers": nothing it means


def test_everyday_words_are_not_looked_up(embedder):
    kin = Kin(TEXTS, embedder.embed_passages)
    assert kin("school") == () and kin("best") == ()  # near many words loosely, so near none reliably
    assert Kin([], embedder.embed_passages)("everyday") == ()


def test_the_corpus_words_found_are_searched_for_as_synonyms():
    known = {"daili", "work"}
    table = {"everyday": ("daily",)}

    def kin(words):
        return {w: table[w] for w in words if w in table}

    assert synonyms("my everyday work", known, kin)["everyday"] == {"daili"}
    query = build_query("what is everyday work like", known=known, kin=kin)
    assert query.synonyms["everyday"] == {"daili"} and query.weights["daili"] > 0
    assert synonyms("my everyday work", known) == {}  # without kin, only the lexicon


def test_a_lexicon_phrase_counts_only_where_the_corpus_has_all_its_words():
    # "work from home" is a way of saying "remote", but a corpus with "work" and no "home" says nothing of it.
    assert "remot" not in synonyms("is remote common", {"work"})
    assert synonyms("is remote common", {"work", "home"})["remot"] == {"work", "home"}


def test_a_flood_of_unknown_words_is_looked_up_in_one_bounded_batch(embedder):
    calls = []

    def embed(words):
        calls.append(len(words))
        return embedder.embed_passages(words)

    kin = Kin(TEXTS, embed)
    kin.warm()
    calls.clear()
    flood = [f"zq{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}x" for i in range(500)] + ["everyday"]
    related = kin.related(flood)
    assert calls == [LOOKUPS]  # one call, at most LOOKUPS words, however long the message
    assert kin.related(["everyday", "undergrad"]) == {"everyday": kin("everyday"), "undergrad": kin("undergrad")}
    assert set(related) <= set(flood)
