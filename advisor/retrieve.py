"""Find the indexed passages closest in meaning to a query."""

from __future__ import annotations

from advisor.config import Settings
from advisor.embed import Embedder, get_embedder
from advisor.errors import CorpusEmpty
from advisor.index import Index
from advisor.types import Hit


class Retriever:
    """Dense retrieval over a loaded index; the index and model load once and are reused."""

    def __init__(self, index: Index, embedder: Embedder) -> None:
        self.index = index
        self.embedder = embedder

    @classmethod
    def open(cls, settings: Settings) -> Retriever:
        """Load the index in ``settings.index_dir``, checking it was built with ``settings.model``."""
        return cls(Index.load(settings.index_dir, model=settings.model), get_embedder(settings.model))

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The ``k`` passages most similar to ``query``, best first; none for a blank query."""
        if not self.index.chunks:
            raise CorpusEmpty(
                f"no documents are indexed in {self.index.directory} yet; add .txt, .md, .html or .pdf files "
                "to the corpus folder and run `python -m advisor index`"
            )
        if not query.strip():
            return []
        found = self.index.store.search(self.embedder.embed_query(query), k)
        return [Hit(self.index.chunks[i], score, rank) for rank, (i, score) in enumerate(found, start=1)]
