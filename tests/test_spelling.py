from advisor.spelling import Speller, english_rank

TEXTS = ["Machine learning engineers need skills in Python and statistics.",
         "The average salary of a senior engineer; backend and overfitting are discussed."]


def test_misspelled_words_are_corrected_to_the_corpus_words():
    speller = Speller(TEXTS)
    assert speller("machne lerning enginer skils")[0] == "machine learning engineer skills"
    assert speller("salery senior")[0] == "salary senior"
    fixed, changes = speller("what is the salery")
    assert changes == (("salery", "salary"),) and fixed == "what is the salary"


def test_known_english_and_short_words_are_left_alone():
    speller = Speller(TEXTS)
    assert speller("backend overfitting")[0] == "backend overfitting"
    assert speller("how do I bake bread")[0] == "how do I bake bread"  # English words, even if the corpus lacks them
    assert speller("ml ai")[0] == "ml ai"


def test_english_rank_tells_common_from_specific_words():
    assert english_rank("the") < english_rank("necessary") < 3000 < english_rank("nurse")
    assert english_rank("zzzqx") > 10**6
