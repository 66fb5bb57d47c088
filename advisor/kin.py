"""Find the corpus's own words for a question word it never uses ("hires" -> "employ"), by meaning."""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from advisor.lexical import STOPWORDS
from advisor.spelling import COMMON, english_rank

# Two single words whose embeddings have at least this cosine say nearly the same thing ("everyday" and "daily",
# "undergrad" and "undergraduate"); below it the nearest word is only on the same topic ("remote" and "computer",
# "visa" and "apply"). A round prior, not a value fitted to a question set.
KIN = 0.7
MOST = 2  # corpus words taken for one question word
LOOKUPS = 16  # words of one message looked up at most (a question has a few; a flood of random words, hundreds)
CACHED = 4096  # words whose kin are remembered
# Only a word past the COMMON most frequent English words is looked up: an everyday word ("best", "school",
# "laptop") is near many corpus words in a loose way ("top", "education", "computer"); a rarer one ("hires",
# "undergrad", "everyday") has one meaning the corpus may say in its own words.
_WORD = re.compile(r"[A-Za-z][A-Za-z-]*[A-Za-z]")


class Kin:
    """The corpus's content words, embedded once on first use (about 1 ms a word), to look up by meaning."""

    def __init__(self, texts: Iterable[str], embed: Callable[[list[str]], np.ndarray]) -> None:
        self._texts = list(texts)
        self._embed = embed
        self._cache: OrderedDict[str, tuple[str, ...]] = OrderedDict()  # word -> its kin, oldest first
        self._lock = threading.Lock()

    @functools.cached_property
    def words(self) -> list[str]:
        """The corpus's distinct content words (three letters or more, no stopwords), sorted."""
        found = {w.lower() for text in self._texts for w in _WORD.findall(text)}
        return sorted(w for w in found if len(w) > 2 and w not in STOPWORDS)

    @functools.cached_property
    def _known(self) -> frozenset[str]:
        return frozenset(self.words)

    @functools.cached_property
    def _vectors(self) -> np.ndarray:
        return self._embed(self.words) if self.words else np.zeros((0, 1), dtype=np.float32)

    def warm(self) -> None:
        """Embed the corpus's words now (a served index does this when it loads)."""
        self._vectors  # noqa: B018 - computed once and cached

    def __call__(self, word: str) -> tuple[str, ...]:
        """Up to MOST corpus words meaning nearly what ``word`` means, closest first; none for a corpus word."""
        return self.related([word]).get(word, ())

    def related(self, words: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """``__call__`` for each of ``words`` that has corpus words meaning nearly the same, in one embedding call.

        At most LOOKUPS words of one message are looked up, the rarest in English first, so a message of
        hundreds of unknown words costs what a question does (one batch, a bounded size).
        """
        wanted = list(dict.fromkeys(w.lower() for w in words if self._looked_up(w.lower())))
        wanted = sorted(wanted, key=english_rank, reverse=True)[:LOOKUPS]
        with self._lock:
            missing = [w for w in wanted if w not in self._cache]
        if missing:
            closeness = self._embed(missing) @ self._vectors.T
            found = {}
            for word, row in zip(missing, closeness):
                best = np.argsort(-row)[:MOST]
                found[word] = tuple(self.words[i] for i in best if row[i] >= KIN)
            with self._lock:
                self._cache.update(found)
                while len(self._cache) > CACHED:
                    self._cache.popitem(last=False)
        with self._lock:
            answers = {w: self._cache.get(w, ()) for w in wanted}
        original = {w.lower(): w for w in words}
        return {original[w]: kin for w, kin in answers.items() if kin}

    def _looked_up(self, lower: str) -> bool:
        """Whether a word is one to look up: not the corpus's, not a stopword or an everyday English word."""
        return bool(
            self.words
            and lower not in self._known
            and lower not in STOPWORDS
            and _WORD.fullmatch(lower)
            and english_rank(lower) >= COMMON
        )
