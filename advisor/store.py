"""Keep chunk vectors under stable int64 ids in a FAISS inner-product index."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import faiss
import numpy as np


class FaissStore:
    """Unit vectors keyed by chunk id; inner product on unit vectors is cosine similarity."""

    def __init__(self, dim: int, index: faiss.Index | None = None) -> None:
        self.dim = dim
        # IndexIDMap2 keeps our ids and supports remove_ids and reconstruct.
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> set[int]:
        """All chunk ids held."""
        return {int(i) for i in faiss.vector_to_array(self.index.id_map)}

    def add(self, ids: list[int], vectors: np.ndarray) -> None:
        """Add vectors (n, dim) under ``ids``."""
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: Iterable[int]) -> int:
        """Remove the vectors of ``ids``; returns how many were removed."""
        array = np.fromiter(ids, dtype=np.int64)
        return int(self.index.remove_ids(array)) if len(array) else 0

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest ids to a (1, dim) query with their cosine scores, best first."""
        if len(self) == 0 or k < 1:
            return []
        scores, ids = self.index.search(np.ascontiguousarray(query, dtype=np.float32), min(k, len(self)))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]

    def vector(self, chunk_id: int) -> np.ndarray:
        """The stored vector of one chunk."""
        return self.index.reconstruct(int(chunk_id))

    def copy(self) -> FaissStore:
        """An independent copy, so an incremental build never touches the index being served."""
        return FaissStore(self.dim, faiss.clone_index(self.index))

    def save(self, path: Path) -> None:
        """Write the index to ``path`` and flush it to disk."""
        faiss.write_index(self.index, str(path))
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())

    @classmethod
    def load(cls, path: Path) -> FaissStore:
        """Read an index written by ``save``; raises RuntimeError on a damaged file."""
        index = faiss.read_index(str(path))
        return cls(index.d, index)
