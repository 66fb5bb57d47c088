"""Find the passages most relevant to a query: dense (vector store) and lexical (BM25) rankings fused."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from advisor.config import Settings
from advisor.embed import Embedder, get_embedder
from advisor.errors import CorpusEmpty
from advisor.index import Index
from advisor.kin import Kin
from advisor.lexical import LexicalIndex, terms
from advisor.query import Query, build_query, valid_text
from advisor.spelling import Speller
from advisor.types import Hit

# Candidates are the union of the top POOL passages of each ranking. Their dense and BM25 scores are
# each rescaled to 0..1 over the candidates and mixed; on eval/devset.jsonl this beat reciprocal rank
# fusion (hit@1 0.82 -> 0.89): a passage that is BM25's clear first ("highest-paying" for "well paid")
# is not outvoted by passages that are middling in both. Any weight in 0.4..0.6 did about as well.
DENSE_WEIGHT = 0.55
POOL = 30


class Retriever:
    """Hybrid retrieval over a loaded index; the index, the model and BM25 are built once and reused."""

    def __init__(self, index: Index, embedder: Embedder) -> None:
        self.index = index
        self.embedder = embedder
        self._ids = sorted(index.chunks)
        self._position = {chunk_id: p for p, chunk_id in enumerate(self._ids)}
        texts = [index.chunks[i].embedding_text for i in self._ids]
        self.lexical = LexicalIndex(texts)
        # Misspellings are corrected to the corpus's own words, so the dictionary is rebuilt with each index.
        self.speller = Speller(texts)
        # A question's word the corpus never uses is looked up among the corpus's words by meaning ("hires").
        self.kin = Kin(texts, embedder.embed_passages)
        self._embedded: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, settings: Settings) -> Retriever:
        """Load the index in ``settings.index_dir``, checking it was built with ``settings.model``."""
        return cls(Index.load(settings.index_dir, model=settings.model, settings=settings), get_embedder(settings.model))

    def search(self, query: str | Query, k: int = 5) -> list[Hit]:
        """The ``k`` best passages for ``query``, best first; none for a blank query."""
        if not self.index.chunks:
            raise CorpusEmpty(
                f"no documents are indexed in {self.index.directory} yet; add .txt, .md, .html or .pdf files "
                "to the corpus folder and run `python -m advisor index`"
            )
        # A command-line argument may hold bytes that are no UTF-8 (read as lone surrogates): "?" to the model.
        query = self.query(valid_text(query)) if isinstance(query, str) else query
        if not query.question.strip():
            return []
        vector = self.embed(query.text)
        dense = self._dense(vector)
        all_lexical = self.lexical.scores(query.weights)
        top_lexical = [p for p in np.argsort(-all_lexical)[:POOL] if all_lexical[p] > 0]
        candidates = list(dict.fromkeys([*dense, *(self._ids[p] for p in top_lexical)]))
        only_lexical = [i for i in candidates if i not in dense]
        if only_lexical:  # found by BM25 only: their cosines still count
            dense.update(zip(only_lexical, (self.index.store.vectors(only_lexical) @ vector[0]).tolist()))
        lexical = {i: float(all_lexical[self._position[i]]) for i in candidates}
        scaled_dense, scaled_lexical = _rescale([dense[i] for i in candidates]), _rescale([lexical[i] for i in candidates])
        fused = {i: DENSE_WEIGHT * d + (1 - DENSE_WEIGHT) * b for i, d, b in zip(candidates, scaled_dense, scaled_lexical)}
        best = sorted(candidates, key=lambda i: (-fused[i], -dense[i]))[:k]
        return [
            Hit(self.index.chunks[i], fused[i], rank, dense=dense[i], lexical=lexical[i]) for rank, i in enumerate(best, start=1)
        ]

    def query(self, question: str, history: Sequence[dict[str, Any]] = ()) -> Query:
        """The query for ``question`` (and its history) in this corpus's words: spelling corrected against its
        vocabulary, synonyms and words it lacks mapped to those it uses."""
        return build_query(question, history, known=self.lexical.df, correct=self.speller, kin=self.kin.related)

    def matching(self, text: str, k: int) -> list[int]:
        """The ids of the ``k`` passages whose words best match ``text`` (BM25, every word alike), best first."""
        scores = self.lexical.scores(dict.fromkeys(terms(text), 1.0))
        return [self._ids[p] for p in np.argsort(-scores)[:k] if scores[p] > 0]

    def embed(self, text: str) -> np.ndarray:
        """The query vector of ``text`` (1, dim); the last few are kept, as answering embeds the same text again."""
        vector = self._embedded.get(text)
        if vector is None:
            vector = self.embedder.embed_query(text)
            if len(self._embedded) >= 64:
                self._embedded.pop(next(iter(self._embedded)))
            self._embedded[text] = vector
        return vector

    def _dense(self, vector: np.ndarray) -> dict[int, float]:
        """The POOL nearest passages of this index by cosine.

        A shared store can also hold passages this index does not list (another process's build in progress):
        those are skipped, asking for more until POOL are found or the store has no more.
        """
        want, known = POOL, self.index.chunks
        while True:
            found = self.index.store.search(vector, want)
            dense = {i: s for i, s in found if i in known}
            if len(dense) >= POOL or len(found) < want:  # enough, or the store has no more
                return dict(list(dense.items())[:POOL])
            want *= 4


def _rescale(values: list[float]) -> list[float]:
    """Min-max to 0..1 (all zeros when the values are all equal)."""
    low, high = min(values, default=0.0), max(values, default=0.0)
    return [(v - low) / (high - low) if high > low else 0.0 for v in values]
