"""A VectorStore in a Milvus collection (a Milvus server, or a Milvus Lite file), through pymilvus."""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from advisor.errors import REBUILD, ConfigError, IndexCorrupt, StoreUnavailable
from advisor.stores.base import StoreSettings, doc_key

if TYPE_CHECKING:
    from advisor.files import FileEntry

BATCH = 1_000  # rows per upsert, get or delete call: well under gRPC's 64 MB message limit at 384 floats a row
MAX_TOPK = 16_384  # Milvus refuses a larger search limit
CONNECT_SECONDS = 10.0
T = TypeVar("T")

_clients: dict[tuple[str, str], Any] = {}
_clients_lock = threading.Lock()


def _client(uri: str, token: str) -> Any:
    """One MilvusClient per address, shared by every store in the process (a Lite file allows one opener)."""
    from pymilvus import MilvusClient

    # pymilvus and Milvus Lite log every failure with a traceback; it reaches the user once, as an AdvisorError.
    # (Set after the import: pymilvus sets its logger's level when it loads.)
    for name in ("pymilvus", "milvus_lite"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with _clients_lock:
        client = _clients.get((uri, token))
        if client is None:
            try:
                if not _is_server(uri):
                    Path(uri).parent.mkdir(parents=True, exist_ok=True)
                # Milvus Lite's in-process server refuses pings more often than every 5 minutes ("too_many_pings",
                # logged on every idle reconnect); a server keeps pymilvus's own keepalive.
                lite = {} if _is_server(uri) else {"grpc.keepalive_time_ms": 330_000}
                client = MilvusClient(uri=uri, token=token, timeout=CONNECT_SECONDS, grpc_options=lite)
            except Exception as exc:
                raise StoreUnavailable(_unreachable(uri, exc)) from None
            _clients[(uri, token)] = client
        return client


def _is_server(uri: str) -> bool:
    """Whether ``uri`` is a Milvus server's address (else a Milvus Lite file)."""
    return uri.startswith(("http://", "https://"))


def _reason(exc: BaseException) -> str:
    """The first line of a pymilvus or grpc error, for a one-line message."""
    lines = str(getattr(exc, "message", "") or exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def _unreachable(uri: str, exc: BaseException) -> str:
    reason = _reason(exc)
    if not _is_server(uri):
        if not _locked_elsewhere(Path(uri)):
            damaged = (
                f", or, if the file is damaged, delete {uri} and run `python -m advisor index --full`"
                if Path(uri).exists()
                else ""
            )  # it holds only vectors, which a build puts back
            return f"cannot open the Milvus Lite file {uri} ({reason}); check ADVISOR_VECTOR_STORE{damaged}"
        return (
            f"cannot open the Milvus Lite file {uri} ({reason}); it is in use: Milvus Lite serves one process at "
            "a time, so stop the other one, or run a Milvus server for several (see docs/vector-stores.md)"
        )
    return (
        f"cannot reach Milvus at {display_uri(uri)} ({reason}); start the server, check ADVISOR_VECTOR_STORE "
        "and ADVISOR_MILVUS_TOKEN, or set ADVISOR_VECTOR_STORE=faiss"
    )


def _locked_elsewhere(path: Path) -> bool:
    """Whether another process holds the lock Milvus Lite takes on its data folder."""
    import fcntl

    try:
        with open(path / "LOCK", "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def display_uri(uri: str) -> str:
    """``uri`` without any user:password part, for messages and the manifest."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return uri


def server_uri(vector_store: str) -> str:
    """The address pymilvus connects to for ``ADVISOR_VECTOR_STORE``: http://host:port for a server, else the file."""
    return "http://" + vector_store.removeprefix("milvus://") if vector_store.startswith("milvus://") else vector_store


@dataclass(frozen=True)
class MilvusRecord:
    """The manifest's record of a Milvus store: the server or file (no credentials), collection and index type."""

    uri: str
    collection: str
    index: str = "AUTOINDEX"
    kind: ClassVar[str] = "milvus"
    files: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MilvusRecord:
        """Read ``{"kind": "milvus", "uri", "collection", "index"}``; raises TypeError/KeyError on anything else."""
        record = cls(data["uri"], data["collection"], data.get("index", "AUTOINDEX"))
        if not all(isinstance(value, str) for value in (record.uri, record.collection, record.index)):
            raise TypeError(f"malformed Milvus record {data!r}")
        return record

    def to_json(self) -> dict[str, Any]:
        """The manifest's form."""
        return {"kind": self.kind, "uri": self.uri, "collection": self.collection, "index": self.index}

    def label(self, count: int | None = None) -> str:
        """ "Milvus collection c at uri (FLAT)", or with a count "(FLAT, 47 vectors)"."""
        details = self.index if count is None else f"{self.index}, {count:,} vectors"
        return f"Milvus collection {self.collection} at {self.uri} ({details})"

    def place(self) -> str:
        """The server or file and the collection's name before its per-build suffix."""
        return f"Milvus at {self.uri} collection {self.collection.rsplit('_', 1)[0]}"


class MilvusStore:
    """Vectors in one Milvus collection: id (the chunk id), doc (doc_key of the source), source, vector.

    Writes are seen by every reader at once (``live``), so several app processes can share one collection;
    the index stage orders its writes so readers of the previous manifest keep finding their passages.
    """

    live = True
    record_type = MilvusRecord

    def __init__(self, client: Any, uri: str, collection: str, dim: int, index_type: str) -> None:
        self.client, self.uri, self.collection, self.dim, self.index_type = client, uri, collection, dim, index_type
        self.where = f"Milvus collection {collection}"

    # --- how settings name it, and opening it (see stores.factory) ----------------------------

    @staticmethod
    def accepts(value: str) -> bool:
        """A server (``milvus://host:19530``, ``http(s)://…``) or a Milvus Lite file (``….db``)."""
        return value.startswith(("milvus://", "http://", "https://")) or value.endswith(".db")

    @staticmethod
    def normalize(value: str) -> str:
        """A Milvus Lite file as an absolute path: one file, whichever folder the command runs from."""
        return value if value.startswith(("milvus://", "http://", "https://")) else str(Path(value).expanduser().resolve())

    @staticmethod
    def check(settings: StoreSettings) -> None:
        """A server address must name a host; the collection name must be one Milvus accepts."""
        store = settings.vector_store
        if store.startswith("milvus://") and not store.removeprefix("milvus://").strip("/"):
            raise ConfigError(f"ADVISOR_VECTOR_STORE={store!r} names no host; use e.g. 'milvus://localhost:19530'")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", settings.milvus_collection):
            raise ConfigError(
                f"ADVISOR_MILVUS_COLLECTION={settings.milvus_collection!r} is not a Milvus collection name; "
                "use letters, digits and underscores, starting with a letter (default career_advisor)"
            )

    @staticmethod
    def configured_place(settings: StoreSettings) -> str:
        """ "Milvus at <uri> collection <name>", as ``MilvusRecord.place`` says it."""
        return f"Milvus at {display_uri(server_uri(settings.vector_store))} collection {settings.milvus_collection}"

    @staticmethod
    def elsewhere(settings: StoreSettings) -> str | None:
        """ "Milvus at <uri>"."""
        return f"Milvus at {display_uri(server_uri(settings.vector_store))}"

    @classmethod
    def create(cls, settings: StoreSettings, dim: int) -> MilvusStore:
        """A new empty collection in the store ``settings`` name (see ``create_collection``)."""
        return cls.create_collection(server_uri(settings.vector_store), settings.milvus_token, settings.milvus_collection, dim)

    @classmethod
    def open(
        cls, record: MilvusRecord, directory: Path, files: dict[str, FileEntry], sources: dict[int, str], settings: StoreSettings
    ) -> MilvusStore:
        """The collection ``record`` names, at the address the manifest recorded (with the configured token)."""
        return cls.open_collection(record.uri, settings.milvus_token, record.collection)

    @classmethod
    def create_collection(cls, uri: str, token: str, base: str, dim: int) -> MilvusStore:
        """A new empty collection named ``<base>_<8 hex digits>``, one per full build (see ``release_others``)."""
        from pymilvus import DataType

        client = _client(uri, token)
        name = f"{base}_{secrets.token_hex(4)}"
        # Milvus Lite searches a FLAT index exactly (as FAISS flat does); a server picks its own (HNSW or other).
        index_type = "AUTOINDEX" if _is_server(uri) else "FLAT"
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("doc", DataType.INT64)
        schema.add_field("source", DataType.VARCHAR, max_length=4096)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        params = client.prepare_index_params()
        params.add_index(field_name="vector", index_type=index_type, metric_type="IP")
        # Strong: a replica searching right after another process's build sees all of its writes.
        _call(
            uri,
            "create a collection",
            lambda: client.create_collection(name, schema=schema, index_params=params, consistency_level="Strong"),
        )
        return cls(client, uri, name, dim, index_type)

    @classmethod
    def open_collection(cls, uri: str, token: str, collection: str) -> MilvusStore:
        """The existing collection ``collection``, loaded for search."""
        client = _client(uri, token)
        if not _call(uri, "list collections", lambda: client.has_collection(collection)):
            raise IndexCorrupt(
                f"the Milvus collection {collection} at {display_uri(uri)} that the index names is gone; {REBUILD}"
            )
        info = _call(uri, "describe a collection", lambda: client.describe_collection(collection))
        vector = next((f for f in info["fields"] if f["name"] == "vector"), None)
        if vector is None:
            raise IndexCorrupt(f"the Milvus collection {collection} has no 'vector' field; {REBUILD}")
        _call(uri, "load a collection", lambda: client.load_collection(collection))
        indexes = _call(uri, "list indexes", lambda: client.list_indexes(collection))
        index_type = "AUTOINDEX"
        if indexes:
            described = _call(uri, "describe an index", lambda: client.describe_index(collection, indexes[0])) or {}
            index_type = str(described.get("index_type", index_type))
        return cls(client, uri, collection, int(vector["params"]["dim"]), index_type)

    # --- the VectorStore interface ---------------------------------------------------------

    def count(self) -> int:
        """How many vectors are stored."""
        rows = self._call("count", lambda: self.client.query(self.collection, filter="", output_fields=["count(*)"]))
        return int(rows[0]["count(*)"])

    def record(self) -> MilvusRecord:
        """The uri (without credentials), collection and index type."""
        return MilvusRecord(display_uri(self.uri), self.collection, self.index_type)

    def label(self) -> str:
        """ "Milvus collection c at uri (FLAT, 47 vectors)"."""
        return self.record().label(self.count())

    def add(self, source: str, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Upsert vectors (n, dim) of document ``source`` under ``ids``."""
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        key = doc_key(source)
        vectors = np.asarray(vectors, dtype=np.float32)
        for start in range(0, len(ids), BATCH):
            rows = [
                {"id": int(i), "doc": key, "source": source, "vector": v}
                for i, v in zip(ids[start : start + BATCH], vectors[start : start + BATCH])
            ]
            self._call("upsert", lambda rows=rows: self.client.upsert(self.collection, rows))

    def delete(self, *sources: str, keep: Collection[int] = ()) -> int:
        """Delete the vectors of the documents ``sources`` except those in ``keep``; returns how many went.

        Their ids are found by scanning the ``doc`` field, BATCH documents a scan."""
        keys = sorted({doc_key(source) for source in sources})
        held = [
            i
            for start in range(0, len(keys), BATCH)
            for i in self._scan(f"doc in [{', '.join(map(str, keys[start : start + BATCH]))}]")
        ]
        return self._delete_ids([i for i in held if i not in keep])

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest ids to a (1, dim) query with their cosine scores, best first."""
        if k < 1:
            return []
        vector = np.asarray(query, dtype=np.float32)[0]
        found = self._call(
            "search",
            lambda: self.client.search(
                self.collection, data=[vector], limit=min(k, MAX_TOPK), output_fields=["id"], search_params={"metric_type": "IP"}
            ),
        )
        return [(int(hit["id"]), float(hit["distance"])) for hit in found[0]]

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of ``ids`` (all of which must be held), as rows in the same order."""
        got: dict[int, Any] = {}
        for start in range(0, len(ids), BATCH):
            batch = [int(i) for i in ids[start : start + BATCH]]
            rows = self._call("get", lambda batch=batch: self.client.get(self.collection, ids=batch, output_fields=["vector"]))
            got.update((int(row["id"]), row["vector"]) for row in rows)
        missing = [i for i in ids if int(i) not in got]
        if missing:
            raise IndexCorrupt(
                f"the Milvus collection {self.collection} lacks {len(missing)} passage(s) the index "
                f"lists (id {missing[0]}); {REBUILD}"
            )
        return np.asarray([got[int(i)] for i in ids], dtype=np.float32).reshape(len(ids), self.dim)

    def ids(self) -> set[int]:
        """Every chunk id held (a full scan)."""
        return set(self._scan(""))

    def verify(self, ids: Collection[int], listed_in: str) -> None:
        """A count check (a scan of every id would cost seconds at size): a shared collection may briefly hold
        more than the manifest lists (a build in progress elsewhere), never fewer."""
        if (held := self.count()) < len(ids):
            raise IndexCorrupt(f"{self.where} holds {held} vectors but {listed_in} lists {len(ids)} passages; {REBUILD}")

    # --- what the index stage needs besides -------------------------------------------------

    def for_update(self) -> MilvusStore:
        """The store a build changes: this collection itself (see ``live``)."""
        return self

    def fitted(self, flat_max: int = 0) -> MilvusStore:
        """This store: Milvus manages its own index as the collection grows."""
        return self

    def needs_refit(self, flat_max: int) -> bool:
        """Never: Milvus manages its own index."""
        return False

    def commit(self, directory: Path, build_id: str) -> tuple[MilvusRecord, dict[str, FileEntry]]:
        """Flush the writes (Milvus Lite searches unflushed rows slowly); returns the manifest's store record."""
        self._call("flush", lambda: self.client.flush(self.collection))
        return self.record(), {}

    def retain(self, ids: Collection[int]) -> int:
        """Delete every vector whose id is not in ``ids`` (left by a build that stopped half-way)."""
        if self.count() <= len(ids):  # every id in ``ids`` is held, so nothing else is
            return 0
        return self._delete_ids([i for i in self._scan("") if i not in ids])

    def release_others(self) -> None:
        """Drop this index's other collections (``<base>_<hex>``): earlier full builds, or ones that failed."""
        base = self.collection.rsplit("_", 1)[0]
        pattern = re.compile(re.escape(base) + r"_[0-9a-f]{8}")
        for name in self._call("list collections", self.client.list_collections):
            if pattern.fullmatch(name) and name != self.collection:
                self._call("drop a collection", lambda name=name: self.client.drop_collection(name))

    def drop(self) -> None:
        """Drop this collection (its vectors moved to another store)."""
        self._call("drop a collection", lambda: self.client.drop_collection(self.collection))

    # --- helpers ------------------------------------------------------------------------------

    def _scan(self, expression: str) -> list[int]:
        def scan() -> list[int]:
            iterator = self.client.query_iterator(self.collection, batch_size=10_000, filter=expression, output_fields=["id"])
            found: list[int] = []
            try:
                while batch := iterator.next():
                    found.extend(int(row["id"]) for row in batch)
            finally:
                iterator.close()
            return found

        return self._call("scan", scan)

    def _delete_ids(self, ids: list[int]) -> int:
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            self._call("delete", lambda batch=batch: self.client.delete(self.collection, ids=batch))
        return len(ids)

    def _call(self, what: str, action: Callable[[], T]) -> T:
        return _call(self.uri, what, action, self.collection)


def _call(uri: str, what: str, action: Callable[[], T], collection: str = "") -> T:
    """Run one pymilvus call; any failure becomes a StoreUnavailable that says where and what."""
    try:
        return action()
    except Exception as exc:
        text = str(exc).lower()
        if collection and "collection" in text and ("not found" in text or "not exist" in text):
            raise IndexCorrupt(f"the Milvus collection {collection} at {display_uri(uri)} is gone; {REBUILD}") from None
        place = f"collection {collection} at " if collection else ""
        raise StoreUnavailable(f"Milvus ({place}{display_uri(uri)}) failed to {what}: {_reason(exc)}") from None
