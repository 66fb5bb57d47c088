"""A VectorStore in one FAISS file in the index folder: exact (flat) while small, IVF once large."""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import faiss
import numpy as np

from advisor.errors import REBUILD, IndexCorrupt
from advisor.files import FileEntry, read_checked
from advisor.stores.base import StoreSettings

# Up to ADVISOR_FLAT_MAX passages (default 20,000) the store is exact (flat); above it, IVF. Measured by
# bench/run.py (docs/performance.md): flat grows linearly with the corpus while IVF (nlist 4·√n, nprobe 16) stays
# near a millisecond with recall@10 of 0.99 or better. HNSW is not used: it cannot delete, and incremental
# rebuilds delete the chunks of changed files (its recall was also lower at 100k-1M).
NPROBE = 16
TRAIN_MAX = 100_000  # vectors used to train the IVF centroids
PLACE = "FAISS (a file in the index folder)"


@dataclass(frozen=True)
class FaissRecord:
    """The manifest's record of a FAISS store: which index type its file holds."""

    index: Literal["flat", "ivf"] = "flat"
    kind: ClassVar[str] = "faiss"
    files: ClassVar[tuple[str, ...]] = ("vectors",)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaissRecord:
        """Read ``{"kind": "faiss", "index": "flat" | "ivf"}``; raises ValueError on another index type."""
        index = data.get("index", "flat")
        if index not in ("flat", "ivf"):
            raise ValueError(f"unknown FAISS index type {index!r}")
        return cls(index)

    def to_json(self) -> dict[str, Any]:
        """The manifest's form."""
        return {"kind": self.kind, "index": self.index}

    def label(self, count: int | None = None) -> str:
        """ "FAISS (flat)", or with a count "FAISS (flat, 47 vectors)"."""
        return f"FAISS ({self.index}{'' if count is None else f', {count:,} vectors'})"

    def place(self) -> str:
        """Always the index folder."""
        return PLACE


class FaissStore:
    """A VectorStore in one FAISS file; inner product on unit vectors is cosine similarity.

    Builds change a copy (``for_update``) and write it as a new file, so readers never see a half-made index.
    """

    live = False
    record_type = FaissRecord

    def __init__(self, dim: int, index: faiss.Index | None = None, sources: dict[int, str] | None = None) -> None:
        self.dim = dim
        self.where = "a FAISS index in memory"  # the file's path once read from one, for messages
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

    # --- how settings name it, and opening it (see stores.factory) ----------------------------

    @staticmethod
    def accepts(value: str) -> bool:
        """``ADVISOR_VECTOR_STORE=faiss``."""
        return value == "faiss"

    @staticmethod
    def normalize(value: str) -> str:
        """Nothing to resolve."""
        return value

    @staticmethod
    def check(settings: StoreSettings) -> None:
        """Nothing beyond the common settings."""

    @staticmethod
    def configured_place(settings: StoreSettings) -> str:
        """Always the index folder."""
        return PLACE

    @staticmethod
    def elsewhere(settings: StoreSettings) -> str | None:
        """None: the vectors are in the index folder."""
        return None

    @classmethod
    def create(cls, settings: StoreSettings, dim: int) -> FaissStore:
        """A new, empty flat store (``fitted`` makes it IVF once it is large)."""
        return cls(dim)

    @classmethod
    def open(
        cls, record: FaissRecord, directory: Path, files: dict[str, FileEntry], sources: dict[int, str], settings: StoreSettings
    ) -> FaissStore:
        """Read the vectors file the manifest lists, checked against its size and checksum; IndexCorrupt if it
        is damaged (a file of the right size with other bytes would otherwise load and answer worse, silently)."""
        entry = files["vectors"]
        path = directory / entry.name
        size = path.stat().st_size
        if size != entry.bytes:  # told apart from other damage, and never read
            raise IndexCorrupt(
                f"{path} is {size} bytes but the manifest expects {entry.bytes} (truncated or replaced); {REBUILD}"
            )
        data = read_checked(path, entry)  # read once: checked, then handed to faiss from memory
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise IndexCorrupt(f"{path} is damaged ({str(exc).splitlines()[-1][:160]}); {REBUILD}") from None
        store = cls(index.d, index, sources)
        store.where = str(path)
        return store

    # --- the VectorStore interface ------------------------------------------------------------

    @property
    def kind(self) -> Literal["flat", "ivf"]:
        """ "flat" (exact) or "ivf" (approximate, for large corpora)."""
        return "ivf" if self._ivf is not None else "flat"

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def count(self) -> int:
        """How many vectors are stored."""
        return int(self.index.ntotal)

    def record(self) -> FaissRecord:
        """{"kind": "faiss", "index": "flat" | "ivf"}."""
        return FaissRecord(self.kind)

    def label(self) -> str:
        """ "FAISS (flat, 47 vectors)"."""
        return self.record().label(self.count())

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

    def verify(self, ids: Collection[int], listed_in: str) -> None:
        """The file must hold exactly ``ids``: it was written with the manifest, so anything else is damage."""
        if self.ids() != set(ids):
            raise IndexCorrupt(f"{self.where}, {listed_in} list different passages; {REBUILD}")

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

    # --- what the index stage needs besides ---------------------------------------------------

    def wanted_kind(self, flat_max: int) -> Literal["flat", "ivf"]:
        """The kind this store's size calls for: flat up to ``flat_max`` passages, IVF above."""
        return "ivf" if len(self) > flat_max else "flat"

    def needs_refit(self, flat_max: int) -> bool:
        """Whether the store's size now calls for the other index type."""
        return self.kind != self.wanted_kind(flat_max)

    def fitted(self, flat_max: int) -> FaissStore:
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

    def commit(self, directory: Path, build_id: str) -> tuple[FaissRecord, dict[str, FileEntry]]:
        """Write ``vectors-<build_id>.faiss``; returns the manifest's store record and the file's entry."""
        path = directory / f"vectors-{build_id}.faiss"
        tmp = path.with_name(path.name + ".tmp")
        self.save(tmp)
        os.replace(tmp, path)
        return self.record(), {"vectors": FileEntry.of(path)}

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
