from advisor.lexical import LexicalIndex, terms


def test_terms_drop_function_words_and_stem():
    assert terms("What are the salaries of Machine Learning Engineers?") == ["salari", "machin", "learn", "engin"]
    assert terms("master’s degree, Ph.D. holders") == ["master", "degre", "phd", "holder"]


def test_bm25_scores_rank_the_text_holding_the_rare_word_first():
    index = LexicalIndex(["salary table entry level", "boot camp education", "interview overfitting question"])
    scores = index.scores({"overfit": 1.0})
    assert scores.argmax() == 2 and scores[0] == scores[1] == 0
    assert index.idf("overfit") > index.idf("unknown-in-every") - 10  # defined for any term
    weighted = index.scores({"salari": 1.0, "boot": 0.2})
    assert weighted.argmax() == 0
