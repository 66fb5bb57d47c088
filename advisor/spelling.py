"""Correct misspelled question words against the corpus's own vocabulary (SymSpell)."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Container, Iterable
from importlib import resources

_WORD = re.compile(r"[A-Za-z]+")  # whole words: "PyTorch" is one word, not "Py" and "Torch"
MIN_LENGTH = 4  # shorter words are too easily "corrected" into another word


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
    from advisor.lexical import terms

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

        counts = Counter(w.lower() for text in texts for w in _WORD.findall(text))
        counts.update(w.lower() for w in extra)
        self.vocabulary = frozenset(counts)
        self._symspell = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
        for word, count in counts.items():
            if len(word) >= MIN_LENGTH - 1:
                self._symspell.create_dictionary_entry(word, count)

    def word(self, word: str) -> str:
        """``word`` corrected, or unchanged when it is known, too short or has no close corpus word."""
        lower = word.lower()
        if len(lower) < MIN_LENGTH or not lower.isalpha() or lower in self.vocabulary or lower in english_words():
            return word
        from symspellpy import Verbosity

        found = self._symspell.lookup(lower, Verbosity.TOP, max_edit_distance=1 if len(lower) <= 5 else 2)
        return found[0].term if found else word

    def __call__(self, text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        """(``text`` with misspelled words corrected, the (typed, corrected) pairs)."""
        changes: list[tuple[str, str]] = []

        def fix(match: re.Match[str]) -> str:
            fixed = self.word(match.group())
            if fixed.lower() != match.group().lower():
                changes.append((match.group(), fixed))
            return fixed

        return re.sub(r"[A-Za-z]+", fix, text), tuple(changes)
