"""Find the corpus's own words for a question word it never uses ("hires" -> "employ"), by meaning."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

import numpy as np

from advisor.lexical import STOPWORDS
from advisor.spelling import COMMON, english_rank

# Two single words whose embeddings have at least this cosine say nearly the same thing ("everyday" and "daily",
# "undergrad" and "undergraduate"); below it the nearest word is only on the same topic ("remote" and "computer",
# "visa" and "apply"). A round prior, not a value fitted to a question set.
KIN = 0.7
MOST = 2  # corpus words taken for one question word
# Only a word past the COMMON most frequent English words is looked up: an everyday word ("best", "school",
# "laptop") is near many corpus words in a loose way ("top", "education", "computer"); a rarer one ("hires",
# "undergrad", "everyday") has one meaning the corpus may say in its own words.
_WORD = re.compile(r"[A-Za-z][A-Za-z-]*[A-Za-z]")


class Kin:
    """The corpus's content words, embedded once on first use (about 1 ms a word), to look up by meaning."""

    def __init__(self, texts: Iterable[str], embed: Callable[[list[str]], np.ndarray]) -> None:
        self._texts = list(texts)
        self._embed = embed

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

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one Kin per index, kept as long as the index
    def __call__(self, word: str) -> tuple[str, ...]:
        """Up to MOST corpus words meaning nearly what ``word`` means, closest first; none for a corpus word."""
        lower = word.lower()
        if (
            not self.words
            or lower in self._known
            or lower in STOPWORDS
            or not _WORD.fullmatch(lower)
            or english_rank(lower) < COMMON
        ):
            return ()
        closeness = self._vectors @ self._embed([lower])[0]
        best = np.argsort(-closeness)[:MOST]
        return tuple(self.words[i] for i in best if closeness[i] >= KIN)
