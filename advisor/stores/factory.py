"""The one place that knows which vector stores exist: pick one from a setting, make it, open it from a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.errors import REBUILD, ConfigError, IndexCorrupt
from advisor.stores.base import StoreKind, StoreRecord, StoreSettings, VectorStore
from advisor.stores.faiss import FaissStore
from advisor.stores.milvus import MilvusStore

if TYPE_CHECKING:
    from advisor.files import FileEntry

# In the order a setting is tried against them. (milvus.py imports pymilvus only when a store is made or opened.)
KINDS: tuple[StoreKind, ...] = (FaissStore, MilvusStore)


def kind_for(value: str) -> StoreKind:
    """The store class ``ADVISOR_VECTOR_STORE=value`` names; ConfigError naming the choices otherwise."""
    for kind in KINDS:
        if kind.accepts(value):
            return kind
    raise ConfigError(
        f"ADVISOR_VECTOR_STORE={value!r} is not a vector store; use 'faiss' (default), 'milvus://host:19530' for a "
        "Milvus server, or a Milvus Lite file such as 'index/vectors.db'"
    )


def normalize(value: str) -> str:
    """The vector-store setting as every process should read it (a Milvus Lite file made absolute)."""
    return kind_for(value).normalize(value)


def check(settings: StoreSettings) -> None:
    """Reject vector-store settings no run could use, naming the setting and the fix."""
    kind_for(settings.vector_store).check(settings)


def create_store(settings: StoreSettings, dim: int) -> VectorStore:
    """A new, empty store of the kind ``settings.vector_store`` names."""
    return kind_for(settings.vector_store).create(settings, dim)


def record_from_json(data: Any) -> StoreRecord:
    """A manifest's ``store`` record as its kind's record type (older manifests said just "flat": FAISS)."""
    data = {"kind": "faiss", "index": data} if isinstance(data, str) else data
    kind = next((k for k in KINDS if isinstance(data, dict) and k.record_type.kind == data.get("kind")), None)
    if kind is None:
        raise IndexCorrupt(f"the manifest's store record {data!r} names no known vector store; {REBUILD}")
    try:
        return kind.record_type.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexCorrupt(f"the manifest's store record {data!r} cannot be read ({exc}); {REBUILD}") from None


def open_store(
    record: StoreRecord, directory: Path, files: dict[str, FileEntry], sources: dict[int, str], settings: StoreSettings
) -> VectorStore:
    """The store a manifest's record names (which may not be the configured one: a build may be moving away).

    ``sources`` maps each chunk id to its document. Raises IndexCorrupt for damaged or missing vectors and
    StoreUnavailable for a store that cannot be reached.
    """
    kind = next(k for k in KINDS if k.record_type is type(record))
    return kind.open(record, directory, files, sources, settings)


def store_mismatch(record: StoreRecord, settings: StoreSettings) -> str | None:
    """Why the index's vectors (``record``) are not in the vector store ``settings`` name, or None."""
    built, wanted = record.place(), kind_for(settings.vector_store).configured_place(settings)
    return None if built == wanted else f"the vector store changed from {built} to {wanted}"


def elsewhere(settings: StoreSettings) -> str | None:
    """Where the configured vectors live when not in the index folder ("Milvus at …"), else None."""
    return kind_for(settings.vector_store).elsewhere(settings)
