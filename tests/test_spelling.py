from advisor.spelling import Speller, english_rank

TEXTS = [
    "Machine learning engineers need skills in Python and statistics.",
    "The average salary of a senior engineer; backend and overfitting are discussed.",
]


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


def test_a_typo_of_an_english_word_the_corpus_lacks_is_read_as_that_word():
    speller = Speller(TEXTS)
    fixed, changes = speller("is a masters degree necesary")
    assert "necessary" in fixed and ("necesary", "necessary") in changes
    assert speller("remotly")[0] == "remotely"
    # Names that are no English word stay as typed, and short words are never "corrected" into English.
    assert speller("pytorch kubernetes mlops")[0] == "pytorch kubernetes mlops"


def test_english_rank_tells_common_from_specific_words():
    assert english_rank("the") < english_rank("necessary") < 3000 < english_rank("nurse")
    assert english_rank("zzzqx") > 10**6


SHORTHAND_TEXTS = [
    "Machine learning engineers earn well. Years of experience matter for machine learning engineers.",
    "A machine learning engineer at entry level; the level and years of a data scientist.",
    "Engineers serve their communities.",
]


def test_shorthand_the_corpus_lacks_is_read_as_the_corpus_words_it_stands_for():
    speller = Speller(SHORTHAND_TEXTS)
    assert speller("mle pay")[0] == "machine learning engineers pay"  # an acronym of a corpus phrase
    assert speller("entry lvl")[0] == "entry level"  # a word without its vowels
    assert speller("5 yrs")[0] == "5 years"
    assert speller("cms pay")[0] == "cms pay"  # no shorthand for a word four times its length ("communities")
    assert speller("senior eng")[0] == "senior engineers"  # a corpus word cut short
    assert speller("wat do they earn")[0] == "what do they earn"  # a function word with a letter dropped
    assert speller("hw much")[0] == "how much"


def test_everyday_short_words_and_acronyms_in_capitals_are_not_shorthand():
    speller = Speller(SHORTHAND_TEXTS)
    assert speller("tax pay job")[0] == "tax pay job"  # common English words, even if the corpus lacks them
    assert speller("is AWS popular")[0] == "is AWS popular"  # not "was": typed in capitals, it is a name
    assert speller("MLE pay")[0] == "machine learning engineers pay"


def test_contractions_and_words_joined_to_digits_are_never_corrected():
    speller = Speller(TEXTS + ["The instructions are long."])
    assert speller("Isn't it hard?")[0] == "Isn't it hard?"  # not "instructions't"
    assert speller("the 2nd biggest, 10k, H1B")[0] == "the 2nd biggest, 10k, H1B"
    assert speller("a senoir engineer's salery")[0] == "a senior engineer's salary"


def test_a_word_longer_than_any_english_word_is_left_alone_at_no_cost():
    import resource

    speller = Speller(["Machine learning engineers need statistics."])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    long_word = "salaryx" * 570  # 3,990 letters: its one-edit candidates alone would be about 0.9 GB
    assert speller(f"what {long_word} pays")[0] == f"what {long_word} pays"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KB: no quadratic candidate set
    assert speller("statistcs")[0] == "statistics"  # ordinary typos are still corrected


def test_a_flood_of_made_up_words_is_checked_only_as_far_as_a_long_question_goes(monkeypatch):
    speller = Speller(["Machine learning engineers need statistics."])
    looked: list[str] = []
    real = Speller.word
    monkeypatch.setattr(Speller, "word", lambda self, w: looked.append(w) or real(self, w))
    flood = " ".join("zq" + "".join("abcdefghij"[int(d)] for d in str(i)) + "xv" for i in range(500))
    assert speller(f"statistcs {flood}")[0].startswith("statistics zqaxv")  # the opening is still corrected
    assert len(looked) == 150
