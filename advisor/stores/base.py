"""What every vector store offers: the VectorStore interface, the record a manifest keeps of it, document keys."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from advisor.types import stable_id

if TYPE_CHECKING:
    from advisor.files import FileEntry


class StoreSettings(Protocol):
    """The settings a vector store reads; ``advisor.config.Settings`` has them. Declared here so that the stores
    never import the settings module, which imports them to check the vector-store setting."""

    vector_store: str
    milvus_collection: str
    milvus_token: str


class StoreRecord(Protocol):
    """Where an index's vectors are, as its manifest records it (``"store"``); each store kind has its own."""

    kind: ClassVar[str]  # the manifest's "kind": which store class reads this record
    files: ClassVar[tuple[str, ...]]  # index-folder files this kind keeps beside the chunks (manifest "files" keys)

    def to_json(self) -> dict[str, Any]:
        """The manifest's form, with "kind" first."""
        ...

    def label(self, count: int | None = None) -> str:
        """One line for people: "FAISS (flat)", "Milvus collection c at uri (FLAT, 47 vectors)"."""
        ...

    def place(self) -> str:
        """Where the vectors live, in the words ``configured_place`` uses for a setting, so the two compare."""
        ...


class VectorStore(Protocol):
    """Unit vectors of passages keyed by chunk id and grouped by document, searched by cosine similarity.

    The index stage writes through it and retrieval reads through it; FaissStore and MilvusStore implement it,
    and stores.factory is the one place that chooses between them.
    """

    dim: int
    where: str  # the file or collection, for messages
    live: bool  # True: every reader sees writes at once (a shared database); False: writes go to a private copy

    def count(self) -> int:
        """How many vectors are stored."""
        ...

    def record(self) -> StoreRecord:
        """What the manifest would record of this store as it is now (no secrets)."""
        ...

    def label(self) -> str:
        """One line for people about the loaded store, with its count: "FAISS (flat, 47 vectors)"."""
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

    def verify(self, ids: Collection[int], listed_in: str) -> None:
        """Raise IndexCorrupt unless this store holds the vectors of every one of ``ids`` (as ``listed_in`` lists)."""
        ...

    # What the index stage needs besides, to write a generation and swap it in.

    def for_update(self) -> VectorStore:
        """The store a build writes to: a private copy (FAISS) or the shared store itself (``live``)."""
        ...

    def fitted(self, flat_max: int) -> VectorStore:
        """This store, or one rebuilt with the index type its size calls for."""
        ...

    def needs_refit(self, flat_max: int) -> bool:
        """Whether ``fitted`` would rebuild the store (so a build must write even when no document changed)."""
        ...

    def commit(self, directory: Path, build_id: str) -> tuple[StoreRecord, dict[str, FileEntry]]:
        """Make the writes durable; returns the manifest's store record and the files written (by manifest key)."""
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


class StoreKind(Protocol):
    """A store class as the factory sees it: how a setting names it, and how to make or open one."""

    record_type: ClassVar[type]

    @staticmethod
    def accepts(value: str) -> bool:
        """Whether ``ADVISOR_VECTOR_STORE=value`` names this kind of store."""
        ...

    @staticmethod
    def normalize(value: str) -> str:
        """The setting in the form every process reads the same way (e.g. a relative file made absolute)."""
        ...

    @staticmethod
    def check(settings: StoreSettings) -> None:
        """Raise ConfigError for settings of this kind that no run could use."""
        ...

    @staticmethod
    def configured_place(settings: StoreSettings) -> str:
        """Where ``settings`` put the vectors, comparable with ``StoreRecord.place``."""
        ...

    @staticmethod
    def elsewhere(settings: StoreSettings) -> str | None:
        """Where the vectors are when not in the index folder ("Milvus at …"), for build summaries; else None."""
        ...

    @classmethod
    def create(cls, settings: StoreSettings, dim: int) -> VectorStore:
        """A new, empty store where ``settings`` say."""
        ...

    @classmethod
    def open(
        cls, record: Any, directory: Path, files: dict[str, FileEntry], sources: dict[int, str], settings: StoreSettings
    ) -> VectorStore:
        """The store ``record`` names; ``files`` are the manifest's entries, ``sources`` maps chunk id to document."""
        ...


def doc_key(source: str) -> int:
    """A 63-bit number naming a document, so a store can delete by document without quoting paths in a filter."""
    return stable_id(source)
