"""Keep chunk vectors under stable int64 ids in FAISS: exact (flat) while small, IVF once large."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import faiss
import numpy as np

# Up to this many passages the store is exact (flat); above it, IVF. From bench/run.py on 2 cores: flat takes
# 0.8 ms a query at 10k passages, 12 ms at 100k and 132 ms at 1M; IVF (nlist 4·√n, nprobe 16) 0.05-1 ms with
# recall@10 1.0-0.99. HNSW is not used: it cannot delete, and incremental rebuilds delete the chunks of changed
# files (its recall was also lower: 0.905-0.926 at 100k-1M).
FLAT_MAX = 20_000
NPROBE = 16
TRAIN_MAX = 100_000  # vectors used to train the IVF centroids


class FaissStore:
    """Unit vectors keyed by chunk id; inner product on unit vectors is cosine similarity."""

    def __init__(self, dim: int, index: faiss.Index | None = None) -> None:
        self.dim = dim
        # Flat: IndexIDMap2 keeps our ids and supports remove_ids and reconstruct. (IVF keeps ids itself.)
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._ivf = faiss.try_extract_index_ivf(self.index) if not isinstance(self.index, faiss.IndexIDMap2) else None
        if self._ivf is not None:
            self._ivf.nprobe = NPROBE
            if self._ivf.direct_map.type == faiss.DirectMap.NoMap:
                self._ivf.set_direct_map_type(faiss.DirectMap.Hashtable)

    @property
    def kind(self) -> str:
        """"flat" (exact) or "ivf" (approximate, for large corpora)."""
        return "ivf" if self._ivf is not None else "flat"

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> set[int]:
        """All chunk ids held."""
        if self._ivf is None:
            return {int(i) for i in faiss.vector_to_array(self.index.id_map)}
        lists = self._ivf.invlists
        found: set[int] = set()
        for number in range(self._ivf.nlist):
            size = lists.list_size(number)
            if size:
                found.update(int(i) for i in faiss.rev_swig_ptr(lists.get_ids(number), size))
        return found

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

    def wanted_kind(self, flat_max: int = FLAT_MAX) -> str:
        """The kind this store's size calls for: flat up to ``flat_max`` passages, IVF above."""
        return "ivf" if len(self) > flat_max else "flat"

    def fitted(self, flat_max: int = FLAT_MAX) -> FaissStore:
        """This store, or one rebuilt as the kind its size calls for."""
        wanted = self.wanted_kind(flat_max)
        if wanted == self.kind:
            return self
        ids = sorted(self.ids())
        vectors = np.stack([self.vector(i) for i in ids]) if ids else np.zeros((0, self.dim), np.float32)
        store = FaissStore.ivf(self.dim, vectors) if wanted == "ivf" else FaissStore(self.dim)
        store.add(ids, vectors)
        return store

    @classmethod
    def ivf(cls, dim: int, sample: np.ndarray) -> FaissStore:
        """An empty IVF store whose centroids are trained on ``sample`` (4·√n lists, at least 39 points each)."""
        n = len(sample)
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        train = sample if n <= TRAIN_MAX else sample[rng.choice(n, TRAIN_MAX, replace=False)]
        index.train(np.ascontiguousarray(train, dtype=np.float32))
        return cls(dim, index)

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
