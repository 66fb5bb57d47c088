"""Correct misspelled question words against the corpus's own vocabulary (SymSpell)."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Container, Iterable
from importlib import resources

from advisor.lexical import STOPWORDS, terms

_WORD = re.compile(r"[A-Za-z]+")  # whole words: "PyTorch" is one word, not "Py" and "Torch"
# "isn't" and "master's" are one word; letters joined to digits ("2nd", "10k", "H1B") are no word to correct.
_APOSTROPHE = re.compile(r"['’]")
_WORD_WITH_APOSTROPHE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]+(?:['’][A-Za-z]+)?(?![A-Za-z0-9])")
MIN_LENGTH = 4  # shorter words are too easily "corrected" into another word by edit distance
# A shorter word that neither the corpus nor everyday English uses (rank past COMMON) is read as shorthand:
# an acronym of a corpus phrase ("mle"), a typo of a function word ("wat", "hw"), or a corpus word cut short
# ("eng", "exp") or without its vowels ("yrs", "lvl"). Everyday short words ("pay", "tax") are left alone.
COMMON = 3000
# A word the corpus lacks is read as a typo of an English word only when long enough that one edit rarely turns a
# name into another word ("mlops" -> "mops"), and only for words people use (the top of the frequency list).
ENGLISH_TYPO_LENGTH = 6
# Longer "words" are never corrected: no English word is this long, and looking one up costs memory that grows with
# the square of its length (a 4,000-letter word would build about 0.9 GB of one-edit candidates).
MAX_LENGTH = 30
MAX_WORDS = 150  # words of one message checked (a long question with its background is about 100 words)
ENGLISH_TYPO_RANK = 30000
_VOWELS = frozenset("aeiou")


@functools.lru_cache(maxsize=1)
def _english() -> dict[str, int]:
    path = resources.files("symspellpy") / "frequency_dictionary_en_82_765.txt"
    words = (line.split(" ", 1)[0] for line in path.read_text(encoding="utf-8").splitlines() if line)
    return {word: rank for rank, word in enumerate(words)}  # the list is ordered most frequent first


def english_words() -> Container[str]:
    """The English word list bundled with symspellpy: a word in it is spelled right, even if the corpus lacks it."""
    return _english()


def english_rank(word: str) -> int:
    """How common an English word is: 0 for "the", larger for rarer words; very large for a word not in the list.
    Stems work too ("necessari" -> "necessary")."""
    ranks = _english()
    word = word.lower()
    if word in ranks:
        return ranks[word]
    stems = _english_stems()
    return stems.get(word, 10**9)


@functools.lru_cache(maxsize=1)
def _english_stems() -> dict[str, int]:

    stems: dict[str, int] = {}
    for word, rank in _english().items():
        if rank > 20000:
            break
        for stem in terms(word):
            stems.setdefault(stem, rank)
    return stems


class Speller:
    """Corrects a word that is neither in the corpus nor in English to the nearest corpus word.

    Correcting against the English list itself mangles domain words ("backend" -> "backed"), so the dictionary
    holds the corpus's words only; edit distance 1 for words up to 5 letters, 2 above.
    """

    def __init__(self, texts: Iterable[str], extra: Iterable[str] = ()) -> None:
        from symspellpy import SymSpell

        texts_list = list(texts)
        counts = Counter(w.lower() for text in texts_list for w in _WORD.findall(text))
        counts.update(w.lower() for w in extra)
        self.vocabulary = frozenset(counts)
        self._texts = texts_list  # for the acronyms, read only once a word needs them
        # Content words by first letter, most frequent first: where a word cut short is looked for.
        self._by_initial: dict[str, list[str]] = {}
        for word, _ in counts.most_common():
            if len(word) >= MIN_LENGTH and word not in STOPWORDS:
                self._by_initial.setdefault(word[0], []).append(word)
        self._symspell = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
        for word, count in counts.items():
            if len(word) >= MIN_LENGTH - 1:
                self._symspell.create_dictionary_entry(word, count)

    @functools.cached_property
    def _acronyms(self) -> dict[str, str]:
        return _acronyms(self._texts)

    def word(self, word: str) -> str:
        """``word`` corrected, or unchanged when it is known, too short or has no close corpus word."""
        apostrophe = _APOSTROPHE.search(word)
        if apostrophe:
            # "isn't", "I'm": a contraction is a word of its own, never a typo of "isn"; "enginer's" is a
            # possessive, its word corrected.
            base, ending = word[: apostrophe.start()], word[apostrophe.end() :]
            return self.word(base) + apostrophe.group() + ending if ending.lower() == "s" else word
        lower = word.lower()
        if not lower.isalpha() or lower in self.vocabulary or len(lower) > MAX_LENGTH:
            return word
        if word.isupper() and len(word) > 1:
            # "AWS", "MLE": an acronym typed as one, never a typo; two capitals ("UK", "AI") are names people know.
            return self._acronyms.get(lower, word) if len(word) > 2 else word
        if len(lower) < MIN_LENGTH:
            return self._shorthand(lower) or word
        if lower in english_words():
            return word
        from symspellpy import Verbosity

        found = self._symspell.lookup(lower, Verbosity.TOP, max_edit_distance=1 if len(lower) <= 5 else 2)
        if found:
            return found[0].term
        # No corpus word is close: an English word one letter away ("necesary") is what was meant, and naming it
        # lets the corpus's own words for it be found (or the decline name a word the asker recognises).
        return _english_typo(lower) or word if len(lower) >= ENGLISH_TYPO_LENGTH else word

    def _shorthand(self, lower: str) -> str | None:
        """What a short word the corpus lacks stands for, if it reads as shorthand (see COMMON)."""
        if len(lower) < 2 or lower in STOPWORDS or english_rank(lower) < COMMON:
            return None
        if lower in self._acronyms:
            return self._acronyms[lower]
        near = [w for w in STOPWORDS if len(w) > 1 and _one_edit(lower, w)]  # function words one edit away
        # A function word with a letter dropped ("wat", "hw", "wht"), the likeliest typo of a short word.
        dropped = [w for w in near if len(w) == len(lower) + 1]
        if dropped:
            return _likeliest(dropped, lower)
        if len(lower) < 3:
            return None
        candidates = self._by_initial.get(lower[0], [])
        if not _VOWELS & set(lower[1:]):  # "yrs", "lvl": a word without its vowels
            # Shorthand keeps a good part of the word: "mgmt" is "management", but "cms" is no "communities".
            unvoweled = next((w for w in candidates if len(w) <= 3 * len(lower) and _in_order(lower[1:], _skeleton(w[1:]))), None)
            if unvoweled:
                return unvoweled
        cut = next((w for w in candidates if w.startswith(lower)), None)  # "eng", "sal": a word cut short
        if cut:
            return cut
        typos = [w for w in near if len(w) > 2]  # "teh"
        return _likeliest(typos, lower) if typos else None

    def __call__(self, text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        """(``text`` with misspelled words corrected, the (typed, corrected) pairs)."""
        changes: list[tuple[str, str]] = []
        seen = [0]

        def fix(match: re.Match[str]) -> str:
            seen[0] += 1
            if seen[0] > MAX_WORDS:  # bounded work per message: a flood of made-up words is not checked word by word
                return match.group()
            fixed = self.word(match.group())
            if fixed.lower() != match.group().lower():
                changes.append((match.group(), fixed))
            return fixed

        return _WORD_WITH_APOSTROPHE.sub(fix, text), tuple(changes)


def _acronyms(texts: Iterable[str]) -> dict[str, str]:
    """Initials of the corpus's phrases of two to four content words, said at least twice -> the most frequent
    such phrase ("mle" -> "machine learning engineers")."""
    phrases: Counter[str] = Counter()
    for text in texts:
        for run in re.split(r"[^A-Za-z ]+", text):
            words = run.lower().split()
            for n in (2, 3, 4):
                for i in range(len(words) - n + 1):
                    phrase = words[i : i + n]
                    if not any(w in STOPWORDS or len(w) < 2 for w in phrase):
                        phrases[" ".join(phrase)] += 1
    found: dict[str, str] = {}
    for phrase, count in phrases.most_common():
        if count < 2:
            break
        found.setdefault("".join(w[0] for w in phrase.split()), phrase)
    return found


def _english_typo(lower: str) -> str | None:
    """The most frequent of the everyday English words one edit from ``lower`` (Norvig's edits, no index needed)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(lower[:i], lower[i:]) for i in range(len(lower) + 1)]
    edits = {a + b[1:] for a, b in splits if b}
    edits |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    edits |= {a + c + b[1:] for a, b in splits if b for c in letters}
    edits |= {a + c + b for a, b in splits for c in letters}
    ranks = _english()
    near = [(ranks[w], w) for w in edits if ranks.get(w, ENGLISH_TYPO_RANK) < ENGLISH_TYPO_RANK]
    return min(near)[1] if near else None


def _likeliest(words: list[str], typed: str) -> str:
    """Of several words a typo may stand for, the one starting with the same letter (then the last in order)."""
    return max(words, key=lambda w: (w[0] == typed[0], w))


def _one_edit(a: str, b: str) -> bool:
    """Whether ``a`` becomes ``b`` by one inserted, deleted, changed or swapped letter."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
        )
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def _skeleton(word: str) -> str:
    return "".join(c for c in word if c not in _VOWELS)


def _in_order(letters: str, word: str) -> bool:
    """Whether ``letters`` occur in ``word`` in that order."""
    rest = iter(word)
    return all(c in rest for c in letters)
