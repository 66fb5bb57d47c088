"""Keep chunk vectors under stable int64 ids: the VectorStore interface, its FAISS implementation, and opening either store."""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import faiss
import numpy as np

from advisor.config import Settings
from advisor.load import hash_file
from advisor.split import stable_id

if TYPE_CHECKING:  # milvus.py imports pymilvus, which only Milvus users should pay for
    from advisor.milvus import MilvusStore

# Up to this many passages the store is exact (flat); above it, IVF. From bench/run.py on 2 cores: flat takes
# 0.8 ms a query at 10k passages, 12 ms at 100k and 132 ms at 1M; IVF (nlist 4·√n, nprobe 16) 0.05-1 ms with
# recall@10 1.0-0.99. HNSW is not used: it cannot delete, and incremental rebuilds delete the chunks of changed
# files (its recall was also lower: 0.905-0.926 at 100k-1M).
FLAT_MAX = 20_000
NPROBE = 16
TRAIN_MAX = 100_000  # vectors used to train the IVF centroids


class VectorStore(Protocol):
    """Unit vectors of passages keyed by chunk id and grouped by document, searched by cosine similarity.

    The index stage writes through it and retrieval reads through it; FaissStore and MilvusStore implement it.
    """

    dim: int
    live: bool  # True: every reader sees writes at once (a shared database); False: writes go to a private copy

    def count(self) -> int:
        """How many vectors are stored."""
        ...

    def describe(self) -> dict[str, Any]:
        """What and where the store is, for status lines and the manifest (no secrets)."""
        ...

    def add(self, source: str, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Store vectors (n, dim) of document ``source`` under ``ids``, replacing any held under the same ids."""
        ...

    def delete(self, *sources: str, keep: Collection[int] = ()) -> int:
        """Delete the vectors of the documents ``sources`` except those in ``keep``; returns how many went.

        Several documents at once cost one pass, not one each (a store may have to search for their ids)."""
        ...

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest ids to a (1, dim) query with their cosine scores, best first."""
        ...

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of ``ids`` (all of which must be held), as rows in the same order."""
        ...

    def ids(self) -> set[int]:
        """Every chunk id held (a full scan: for checks, not for answering)."""
        ...

    # What the index stage needs besides, to write a generation and swap it in.

    def for_update(self) -> VectorStore:
        """The store a build writes to: a private copy (FAISS) or the shared store itself (``live``)."""
        ...

    def fitted(self, flat_max: int) -> VectorStore:
        """This store, or one rebuilt with the index type its size calls for."""
        ...

    def commit(self, directory: Path, build_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Make the writes durable; returns the manifest's store record and the vectors file's entry, if any."""
        ...

    def retain(self, ids: Collection[int]) -> int:
        """Delete every vector whose id is not in ``ids``; returns how many went."""
        ...

    def release_others(self) -> None:
        """Free what earlier generations of this index hold in the store (after the manifest swap)."""
        ...

    def drop(self) -> None:
        """Delete everything this store holds, after its vectors moved to another store."""
        ...


def store_label(info: dict[str, Any]) -> str:
    """One line for people from a manifest's store record or ``describe()``: "FAISS (flat)",
    "Milvus collection c at uri (FLAT, 47 vectors)" (the count when ``info`` has one)."""
    details = ", ".join([str(info.get("index", "flat")), *([f"{info['count']:,} vectors"] if "count" in info else [])])
    if info["kind"] == "faiss":
        return f"FAISS ({details})"
    return f"Milvus collection {info['collection']} at {info['uri']} ({details})"


def describe_store(store: VectorStore) -> str:
    """One line for people about a loaded store, with its count: "FAISS (flat, 47 vectors)"."""
    return store_label(store.describe())


def doc_key(source: str) -> int:
    """A 63-bit number naming a document, so a store can delete by document without quoting paths in a filter."""
    return stable_id(source)


def create_store(settings: Settings, dim: int) -> FaissStore | MilvusStore:
    """A new, empty store of the kind ``settings.vector_store`` names."""
    if settings.vector_store_kind == "faiss":
        return FaissStore(dim)
    from advisor.milvus import MilvusStore

    return MilvusStore.create(settings.milvus_uri, settings.milvus_token, settings.milvus_collection, dim)


def open_store(record: dict[str, Any], vectors_path: Path | None, sources: dict[int, str], settings: Settings,
               ) -> FaissStore | MilvusStore:
    """The store a manifest's ``store`` record names: a FAISS file (``vectors_path``) or a Milvus collection.

    ``sources`` maps each chunk id to its document (FAISS files hold ids only). Raises RuntimeError on a damaged
    FAISS file and advisor.errors.StoreUnavailable / IndexCorrupt for an unreachable or missing collection.
    """
    if record["kind"] == "faiss":
        assert vectors_path is not None
        return FaissStore.load(vectors_path, sources)
    from advisor.milvus import MilvusStore

    return MilvusStore.open(record["uri"], settings.milvus_token, record["collection"])


class FaissStore:
    """A VectorStore in one FAISS file; inner product on unit vectors is cosine similarity.

    Builds change a copy (``for_update``) and write it as a new file, so readers never see a half-made index.
    """

    live = False

    def __init__(self, dim: int, index: faiss.Index | None = None, sources: dict[int, str] | None = None) -> None:
        self.dim = dim
        self.sources: dict[int, str] = dict(sources or {})  # chunk id -> document, for delete-by-document
        self._members: dict[str, set[int]] = {}  # document -> chunk ids, so deleting one document is not a full scan
        for chunk_id, source in self.sources.items():
            self._members.setdefault(source, set()).add(chunk_id)
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

    def count(self) -> int:
        """How many vectors are stored."""
        return int(self.index.ntotal)

    def describe(self) -> dict[str, Any]:
        """{"kind": "faiss", "index": "flat" | "ivf", "count": n, "dim": d}."""
        return {"kind": "faiss", "index": self.kind, "count": self.count(), "dim": self.dim}

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

    def add(self, source: str, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Store vectors (n, dim) of document ``source`` under ``ids``, replacing any held under the same ids."""
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if not len(ids):
            return
        self.remove(i for i in ids if i in self.sources)
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
        self.sources.update((int(i), source) for i in ids)
        self._members.setdefault(source, set()).update(int(i) for i in ids)

    def delete(self, *sources: str, keep: Collection[int] = ()) -> int:
        """Delete the vectors of the documents ``sources`` except those in ``keep``; returns how many went."""
        return self.remove([i for source in sources for i in self._members.get(source, ()) if i not in keep])

    def remove(self, ids: Iterable[int]) -> int:
        """Remove the vectors of ``ids``; returns how many were removed."""
        array = np.fromiter(ids, dtype=np.int64)
        for i in array:
            source = self.sources.pop(int(i), None)
            if source is not None:
                self._members[source].discard(int(i))
        return int(self.index.remove_ids(array)) if len(array) else 0

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest ids to a (1, dim) query with their cosine scores, best first."""
        if len(self) == 0 or k < 1:
            return []
        scores, ids = self.index.search(np.ascontiguousarray(query, dtype=np.float32), min(k, len(self)))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of ``ids`` (all of which must be held), as rows in the same order."""
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.index.reconstruct(int(i)) for i in ids])

    def wanted_kind(self, flat_max: int = FLAT_MAX) -> str:
        """The kind this store's size calls for: flat up to ``flat_max`` passages, IVF above."""
        return "ivf" if len(self) > flat_max else "flat"

    def fitted(self, flat_max: int = FLAT_MAX) -> FaissStore:
        """This store, or one rebuilt as the kind its size calls for."""
        wanted = self.wanted_kind(flat_max)
        if wanted == self.kind:
            return self
        ids = sorted(self.ids())
        vectors = self.vectors(ids)
        index = FaissStore.ivf(self.dim, vectors).index if wanted == "ivf" else FaissStore(self.dim).index
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
        return FaissStore(self.dim, index, self.sources)

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
        return FaissStore(self.dim, faiss.clone_index(self.index), self.sources)

    def for_update(self) -> FaissStore:
        """The store a build may change: a copy, so the index being served stays as it is."""
        return self.copy()

    def commit(self, directory: Path, build_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Write ``vectors-<build_id>.faiss``; returns the manifest's store record and the file's entry."""
        name = f"vectors-{build_id}.faiss"
        tmp = directory / f"{name}.tmp"
        self.save(tmp)
        os.replace(tmp, directory / name)
        sha256, size = hash_file(directory / name)
        entry = {"name": name, "bytes": size, "sha256": sha256}
        return {"kind": "faiss", "index": self.kind}, entry

    def retain(self, ids: Collection[int]) -> int:
        """Remove every vector whose id is not in ``ids``; returns how many went."""
        return self.remove([i for i in self.sources if i not in ids])

    def release_others(self) -> None:
        """Nothing to do: the index stage deletes older vector files itself."""

    def drop(self) -> None:
        """Nothing to do: the file goes with its generation."""

    def save(self, path: Path) -> None:
        """Write the index to ``path`` and flush it to disk."""
        faiss.write_index(self.index, str(path))
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())

    @classmethod
    def load(cls, path: Path, sources: dict[int, str] | None = None) -> FaissStore:
        """Read an index written by ``save``; raises RuntimeError on a damaged file."""
        index = faiss.read_index(str(path))
        return cls(index.d, index, sources)


