"""Lexical matching: one analyzer (lowercase, stopwords, Snowball stems) shared by BM25 and sentence scoring."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping

import numpy as np

# Function words and the words of asking; none of them says what a question is about.
STOPWORDS = frozenset(
    """
    a about above after again all also am an and any are as at be because been before being below between both
    but by can could did do does doing done down during each either else ever few for from further get gets
    getting give go going got had has have having he her here hers him his how however i if in into is it its
    itself just kind know let like lot lots me more most much must my no nor not now of off on once one only or
    other our out over own please quite rather really same say says she should so some something such tell than
    that the their them then there these they thing things this those through to too under until up us very want
    was way we were what whats when where which while who whom whose why will with would yes yet you your usual
    usually typical typically generally basically actually exactly ever mostly many good true false correct
    right indeed often always never sometimes rarely seldom
    i'm im i've ive i'd i'll can't cant don't dont won't isn't doesn't didn't aren't wasn't you're we're they're
    that's there's what's how's let's lol haha btw pls plz u ur thx
    """.split()
)
_WORD = re.compile(r"[a-z0-9]+(?:['’.][a-z0-9]+)*")


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


_STEM = _stemmer()


def terms(text: str) -> list[str]:
    """The stemmed content words of ``text``, in order (repeats kept)."""
    words = [w.replace("’", "'") for w in _WORD.findall(text.lower())]
    words = [w[:-2] if w.endswith("'s") else w for w in words]  # "master's" -> "master"
    kept = [w.replace(".", "") for w in words if w not in STOPWORDS]
    return [t for t in _STEM.stemWords(kept) if t]


class LexicalIndex:
    """BM25 over a fixed list of texts, built once when an index is loaded."""

    def __init__(self, texts: list[str]) -> None:
        import bm25s

        self.size = len(texts)
        tokens = [terms(t) for t in texts]
        self.df = Counter(t for doc in tokens for t in set(doc))
        self.bm25 = bm25s.BM25()
        if texts:
            self.bm25.index(tokens, show_progress=False)

    def idf(self, term: str) -> float:
        """Inverse document frequency of a stemmed term (0 for a term in every text, higher for rarer)."""
        df = self.df.get(term, 0)
        return math.log(1 + (self.size - df + 0.5) / (df + 0.5))

    def scores(self, weighted_terms: Mapping[str, float]) -> np.ndarray:
        """BM25 score of every text for terms with weights (a follow-up's own words count more)."""
        total = np.zeros(self.size, dtype=np.float32)
        for term, weight in weighted_terms.items():
            if weight > 0 and term in self.df:
                total += weight * self.bm25.get_scores([term])
        return total
