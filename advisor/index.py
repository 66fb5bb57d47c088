"""Build, check and load the index: chunk JSON and a manifest on disk, vectors in a VectorStore (FAISS file or Milvus)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

import numpy as np

from advisor.config import Settings
from advisor.embed import Embedder, get_embedder
from advisor.errors import (AdvisorError, ConfigError, CorpusMissing, IndexBusy, IndexCorrupt, IndexMismatch, IndexMissing,
                            StoreUnavailable)
from advisor.load import LOADER_VERSION, CorpusFile, LoadError, load_document, scan_corpus
from advisor.split import CONTEXT_TOKENS, SPLITTER_VERSION, split_document
from advisor.statements import STATEMENTS_VERSION, units_of
from advisor.store import FaissStore, VectorStore, create_store, open_store, store_label
from advisor.types import Chunk, Skipped

WHOLE = 0.8  # share of a passage's text a statement must be made of to share the passage's vector
FORMAT_VERSION = 2  # 2: statement vectors beside the passage vectors
MANIFEST = "manifest.json"
LOCK = ".build.lock"
REBUILD = "run `python -m advisor index --full` to rebuild it"


@dataclass(frozen=True)
class BuildReport:
    """What a build changed, by corpus path."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    chunks_embedded: int = 0
    chunks_total: int = 0
    documents: int = 0
    full_rebuild: str | None = None  # why everything was re-embedded, when it was
    moved: str | None = None  # why the vectors were copied to another vector store, when they were
    wrote: bool = False  # False when the index already matched the corpus
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The `index --json` line that other tools parse."""
        return {
            "added": list(self.added),
            "changed": list(self.changed),
            "removed": list(self.removed),
            "unchanged": list(self.unchanged),
            "chunks_embedded": self.chunks_embedded,
            "chunks_total": self.chunks_total,
        }


@dataclass(frozen=True)
class IndexStatus:
    """Whether the index on disk matches the corpus and settings, and what differs."""

    fresh: bool
    reason: str
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    built_at: str | None = None
    documents: int = 0
    chunks: int = 0
    build_id: str | None = None  # which build the manifest on disk names
    store: str = ""  # where the vectors are, as the manifest says (store.store_label)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON fields, for `index --status --json` and the UI."""
        return {
            "fresh": self.fresh,
            "reason": self.reason,
            "added": list(self.added),
            "changed": list(self.changed),
            "removed": list(self.removed),
            "built_at": self.built_at,
            "documents": self.documents,
            "chunks": self.chunks,
            "store": self.store,
        }


class StatementVectors:
    """The vectors of every passage's statements (``statements.units_of``), computed when the index is built."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.ids, self.vectors = ids, vectors  # the passage id of each row, rows grouped by passage; float16
        self.spans: dict[int, tuple[int, int]] = {}
        if len(ids):
            starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
            ends = np.r_[starts[1:], len(ids)]
            self.spans = {int(ids[a]): (int(a), int(b)) for a, b in zip(starts, ends)}

    def of(self, chunk_id: int) -> np.ndarray:
        """The statement vectors of one passage, in statement order, as float32 (0 rows if it has none)."""
        a, b = self.spans.get(chunk_id, (0, 0))
        return self.vectors[a:b].astype(np.float32)

    @classmethod
    def build(cls, per_chunk: list[tuple[int, np.ndarray]], dim: int) -> StatementVectors:
        """Stack (passage id, its statement vectors) pairs."""
        ids = np.concatenate([np.full(len(v), i, dtype=np.int64) for i, v in per_chunk]) if per_chunk else \
            np.zeros(0, dtype=np.int64)
        rows = np.concatenate([v for _, v in per_chunk]) if per_chunk else np.zeros((0, dim))
        return cls(ids, rows.astype(np.float16))

    def to_bytes(self) -> bytes:
        """The .npz file's bytes."""
        buffer = io.BytesIO()
        np.savez(buffer, ids=self.ids, vectors=self.vectors)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> StatementVectors:
        """Read ``to_bytes`` output (no pickles)."""
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return cls(npz["ids"], npz["vectors"])


@dataclass
class Index:
    """A loaded index whose files were checked against its manifest."""

    directory: Path
    manifest: dict[str, Any]
    chunks: dict[int, Chunk]
    store: VectorStore = field(repr=False)
    statements: StatementVectors = field(repr=False, default_factory=lambda: StatementVectors.build([], 0))

    @classmethod
    def load(cls, directory: Path, model: str | None = None, settings: Settings | None = None) -> Index:
        """Load and verify the index in ``directory``; with ``model``, insist it was built with that model.

        ``settings`` supplies the Milvus token and, when given, the index must use the vector store they name.
        """
        manifest = read_manifest(directory)
        built_with = manifest["model"]["name"]
        if model is not None and built_with != model:
            raise IndexMismatch(
                f"{directory / MANIFEST} was built with model '{built_with}' but the configured model is "
                f"'{model}'; {REBUILD}, or set ADVISOR_MODEL={built_with}"
            )
        if settings is not None and (changed := store_mismatch(manifest, settings)):
            raise IndexMismatch(f"{directory / MANIFEST}: {changed}; run `python -m advisor index` to rebuild it")
        settings = settings or Settings()
        for _ in range(3):
            try:
                return cls._open(directory, manifest, settings)
            except FileNotFoundError as exc:
                # A build swapped in a new generation (and deleted this one) while it was being read.
                missing = exc.filename
            newer = read_manifest(directory)
            if newer["build_id"] == manifest.get("build_id"):
                break  # no new generation: the file is really gone
            manifest = newer
        raise IndexCorrupt(f"{missing} is missing; {REBUILD}")

    @classmethod
    def _open(cls, directory: Path, manifest: dict[str, Any], settings: Settings) -> Index:
        chunk_path = directory / manifest["files"]["chunks"]["name"]
        data = chunk_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != manifest["files"]["chunks"]["sha256"]:
            raise IndexCorrupt(f"{chunk_path} does not match {directory / MANIFEST} (checksum differs); {REBUILD}")
        try:
            chunks = {c.id: c for c in (Chunk.from_json(item) for item in json.loads(data)["chunks"])}
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexCorrupt(f"{chunk_path} cannot be read ({exc}); {REBUILD}") from None
        sources = {int(i): source for source, doc in manifest["documents"].items() for i in doc["chunk_ids"]}
        if set(chunks) != set(sources):
            raise IndexCorrupt(f"{chunk_path} and {MANIFEST} list different passages; {REBUILD}")
        statement_path = directory / manifest["files"]["statements"]["name"]
        data = statement_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != manifest["files"]["statements"]["sha256"]:
            raise IndexCorrupt(f"{statement_path} does not match {directory / MANIFEST} (checksum differs); {REBUILD}")
        try:
            statements = StatementVectors.from_bytes(data)
        except (ValueError, KeyError, OSError) as exc:
            raise IndexCorrupt(f"{statement_path} cannot be read ({exc}); {REBUILD}") from None
        if not set(statements.spans) <= set(sources):
            raise IndexCorrupt(f"{statement_path} and {MANIFEST} list different passages; {REBUILD}")
        record = store_record(manifest)
        if record["kind"] == "faiss":
            vector_path = directory / manifest["files"]["vectors"]["name"]
            where = str(vector_path)
            size = vector_path.stat().st_size
            if size != manifest["files"]["vectors"]["bytes"]:
                raise IndexCorrupt(
                    f"{vector_path} is {size} bytes but {MANIFEST} expects {manifest['files']['vectors']['bytes']} "
                    f"(truncated or replaced); {REBUILD}"
                )
            try:
                store = open_store(record, vector_path, sources, settings)
            except RuntimeError as exc:
                raise IndexCorrupt(f"{vector_path} is damaged ({str(exc).splitlines()[-1][:160]}); {REBUILD}") from None
        else:
            where = f"Milvus collection {record['collection']}"
            store = open_store(record, None, sources, settings)
        if store.dim != manifest["model"]["dim"]:
            raise IndexCorrupt(f"{where} holds {store.dim}-d vectors, {MANIFEST} says {manifest['model']['dim']}; {REBUILD}")
        if record["kind"] == "faiss" and store.ids() != set(sources):
            raise IndexCorrupt(f"{where}, {chunk_path} and {MANIFEST} list different passages; {REBUILD}")
        # A shared collection may briefly hold more (a build in progress elsewhere), never fewer.
        if record["kind"] != "faiss" and (held := store.count()) < len(sources):
            raise IndexCorrupt(f"{where} holds {held} vectors but {MANIFEST} lists {len(sources)} passages; {REBUILD}")
        return cls(directory, manifest, chunks, store, statements)

    @property
    def built_at(self) -> str:
        """When this index was written (UTC, ISO 8601)."""
        return str(self.manifest["built_at"])

    @property
    def documents(self) -> dict[str, dict[str, Any]]:
        """Indexed documents by corpus path: sha256, title, kind and chunk ids."""
        return dict(self.manifest["documents"])

    def chunks_of(self, source: str) -> list[Chunk]:
        """The chunks of one document, in text order."""
        ids = self.manifest["documents"].get(source, {}).get("chunk_ids", [])
        return [self.chunks[int(i)] for i in ids]


def read_manifest(directory: Path) -> dict[str, Any]:
    """Read and sanity-check ``directory/manifest.json``."""
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise IndexMissing(f"no index in {directory} yet; build it with `python -m advisor index`") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"{path} is not valid JSON ({exc}); {REBUILD}") from None
    if not isinstance(manifest, dict):
        raise IndexCorrupt(f"{path} is not a manifest object; {REBUILD}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexMismatch(
            f"{path} has format version {version!r}; this Career Advisor reads version {FORMAT_VERSION}; {REBUILD}"
        )
    try:
        files, model, docs = manifest["files"], manifest["model"], manifest["documents"]
        record = store_record(manifest)
        fields = (("name", str), ("sha256", str), ("bytes", int))
        expected = [(files[k][f], t) for k in _file_keys(record) for f, t in fields]
        expected += [(record.get(k), str) for k in ("uri", "collection") if record["kind"] == "milvus"]
        expected += [(model["name"], str), (model["dim"], int), (manifest["splitter"], dict), (manifest["built_at"], str),
                     (manifest["build_id"], str), (docs, dict), (manifest.get("skipped", {}), dict)]
        expected += [(value, t) for doc in docs.values() for value, t in ((doc["sha256"], str), (doc["chunk_ids"], list))]
        wrong = [value for value, kind in expected if not isinstance(value, kind)]
    except (KeyError, TypeError, AttributeError) as exc:
        raise IndexCorrupt(f"{path} is missing field {exc}; {REBUILD}") from None
    if wrong:
        raise IndexCorrupt(f"{path} has a malformed field (value {wrong[0]!r}); {REBUILD}")
    return manifest


def store_record(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's vector-store record, {"kind": "faiss" | "milvus", ...} (older manifests said just "flat")."""
    record = manifest.get("store", "flat")
    record = {"kind": "faiss", "index": record} if isinstance(record, str) else record
    if not isinstance(record, dict) or record.get("kind") not in ("faiss", "milvus"):
        raise IndexCorrupt(f"the manifest's store record {record!r} names no known vector store; {REBUILD}")
    return record


def _file_keys(record: dict[str, Any]) -> tuple[str, ...]:
    """The files the manifest lists: chunk JSON and statement vectors always, a vectors file for FAISS."""
    return ("vectors", "chunks", "statements") if record["kind"] == "faiss" else ("chunks", "statements")


def _store_target(settings: Settings) -> tuple[str, str]:
    """(kind, where) of the configured vector store, comparable with a manifest's record."""
    if settings.vector_store_kind == "faiss":
        return "faiss", ""
    from advisor.milvus import display_uri

    return "milvus", f"{display_uri(settings.milvus_uri)} collection {settings.milvus_collection}"


def _describe_target(target: tuple[str, str]) -> str:
    return "FAISS (a file in the index folder)" if target[0] == "faiss" else f"Milvus at {target[1]}"


def store_mismatch(manifest: dict[str, Any], settings: Settings) -> str | None:
    """Why the index's vectors are not in the vector store ``settings`` name, or None."""
    record = store_record(manifest)
    built = ("faiss", "") if record["kind"] == "faiss" else \
        ("milvus", f"{record['uri']} collection {record['collection'].rsplit('_', 1)[0]}")
    wanted = _store_target(settings)
    if built != wanted:
        return f"the vector store changed from {_describe_target(built)} to {_describe_target(wanted)}"
    return None


def splitter_config(settings: Settings) -> dict[str, int]:
    """The splitter settings recorded in the manifest; any change forces a full rebuild."""
    return {
        "version": SPLITTER_VERSION,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap": settings.chunk_overlap,
        "context_tokens": CONTEXT_TOKENS,
        "statements": STATEMENTS_VERSION,
        "loader": LOADER_VERSION,
    }


def settings_mismatch(manifest: dict[str, Any], settings: Settings) -> str | None:
    """Why an index built as ``manifest`` says does not match ``settings``, or None."""
    return _embedding_mismatch(manifest, settings) or store_mismatch(manifest, settings)


def _embedding_mismatch(manifest: dict[str, Any], settings: Settings) -> str | None:
    """Why the index's vectors cannot be reused under ``settings`` (another model or splitter), or None."""
    built_with = manifest["model"]["name"]
    if built_with != settings.model:
        return f"the model changed from '{built_with}' to '{settings.model}'"
    old, new = manifest["splitter"], splitter_config(settings)
    if old != new:
        diffs = ", ".join(f"{k} {old.get(k)} → {new[k]}" for k in new if old.get(k) != new[k])
        return f"the splitter settings changed ({diffs})"
    return None


@dataclass(frozen=True)
class _Plan:
    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: list[str]
    to_load: list[CorpusFile]


def _plan(files: list[CorpusFile], documents: dict[str, Any], skipped: dict[str, Any], everything: bool) -> _Plan:
    added, changed, unchanged, to_load = [], [], [], []
    present = {f.source for f in files}
    for f in files:
        old = documents.get(f.source)
        if old is not None and old["sha256"] == f.sha256:
            unchanged.append(f.source)
            if everything:
                to_load.append(f)
            continue
        # Files skipped last time are retried (a setting such as the size limit may have changed),
        # but one with the same bytes as then is no change to the corpus.
        to_load.append(f)
        if old is not None:
            changed.append(f.source)
        elif skipped.get(f.source, {}).get("sha256") != f.sha256:
            added.append(f.source)
    removed = [source for source in documents if source not in present]
    return _Plan(added, changed, removed, unchanged, to_load)


def build(
    settings: Settings,
    *,
    full: bool = False,
    embedder: Embedder | None = None,
    progress: bool = False,
    wait: float = 0.0,
    log: Callable[[str], None] = lambda message: None,
) -> BuildReport:
    """Bring the index in line with the corpus, embedding only new and changed documents.

    A different model, splitter setting or vector store, a damaged index, or ``full`` re-embeds everything.
    The new index is written beside the old one and swapped in by replacing the manifest, so
    a crash leaves the previous index loadable. ``wait`` is how long to wait for another build.
    With a shared (Milvus) store, vectors of changed documents are added before the swap and the old
    ones deleted after it, so processes still serving the previous manifest keep finding theirs.
    """
    started = time.perf_counter()
    corpus, directory = settings.corpus_dir, settings.index_dir
    if not corpus.is_dir():
        raise CorpusMissing(
            f"corpus folder {corpus} does not exist; create it and add .txt, .md, .html or .pdf files, "
            "or point ADVISOR_CORPUS / --corpus at your documents"
        )
    directory.mkdir(parents=True, exist_ok=True)
    with _build_lock(directory, wait):
        _remove_temp_files(directory)
        manifest, previous, why_full, moving = _previous(directory, settings, full)
        documents = manifest["documents"] if manifest else {}
        old_skipped = manifest.get("skipped", {}) if manifest else {}
        files, skipped = scan_corpus(corpus)
        plan = _plan(files, documents, old_skipped, everything=why_full is not None)
        if why_full and manifest:
            log(f"Rebuilding the whole index: {why_full}.")
        embedder = embedder or get_embedder(settings.model)
        new_docs, new_chunks, failed = _load_and_split(plan.to_load, settings, embedder)
        if previous is not None and why_full is None and new_chunks and embedder.dim != previous.store.dim:
            why_full = f"the model's dimension changed from {previous.store.dim} to {embedder.dim}"
            log(f"Rebuilding the whole index: {why_full}.")
            plan = _plan(files, documents, old_skipped, everything=True)
            new_docs, new_chunks, failed = _load_and_split(plan.to_load, settings, embedder)
        skipped += failed
        skipped_map = {s.source: {"sha256": s.sha256, "reason": s.reason} for s in skipped if s.sha256}
        in_place = previous is not None and why_full is None
        refit = in_place and isinstance(previous.store, FaissStore) \
            and previous.store.kind != previous.store.wanted_kind(settings.flat_max)
        if in_place and not (new_chunks or plan.added or plan.changed or plan.removed or refit or moving) \
                and skipped_map == old_skipped:
            return BuildReport(unchanged=tuple(plan.unchanged), skipped=tuple(skipped), chunks_total=len(previous.chunks),
                               documents=len(documents), seconds=time.perf_counter() - started)

        # Unchanged documents keep their vectors; those of changed, removed and now-unreadable ones go.
        kept = {s: documents[s] for s in plan.unchanged} if in_place else {}
        stale = [s for s in documents if s not in kept] if in_place else []
        if moving:  # to another vector store: copy the unchanged documents' vectors there
            log(f"Moving the vectors: {moving}.")
            store = create_store(settings, previous.store.dim)
            for source, doc in kept.items():
                ids = [int(i) for i in doc["chunk_ids"]]
                store.add(source, ids, previous.store.vectors(ids))
            stale = []  # nothing of the old store is in the new one
        else:
            store = previous.store.for_update() if in_place else create_store(settings, embedder.dim)
        if not store.live:  # a private copy: nobody reads it until the swap
            store.delete(*stale)
        if new_chunks:
            log(f"Embedding {len(new_chunks)} passages from {len(new_docs)} document(s)…")
        # Passages and their statements in one encode call: the model batches them by length either way.
        # A statement that is nearly the whole passage (a passage that is one table or list) shares its vector.
        units = [[(u.embed, sum(map(len, u.parts)) >= WHOLE * len(c.text)) for u in units_of(c)] for c in new_chunks]
        encoded = embedder.embed_passages([c.embedding_text for c in new_chunks]
                                          + [t for us in units for t, whole in us if not whole], progress=progress)
        vectors, unit_vectors = encoded[:len(new_chunks)], encoded[len(new_chunks):]
        per_chunk, encoded_units = [], iter(unit_vectors)  # the statements' own vectors, in order
        for i, (chunk, texts) in enumerate(zip(new_chunks, units)):
            rows = [vectors[i] if whole else next(encoded_units) for _, whole in texts]
            per_chunk.append((chunk.id, np.stack(rows) if rows else unit_vectors[:0]))
        start = 0
        for source, doc in new_docs.items():  # chunks are in document order, so each document is one run
            count = len(doc["chunk_ids"])
            store.add(source, [c.id for c in new_chunks[start:start + count]], vectors[start:start + count])
            start += count
        store = store.fitted(settings.flat_max)  # FAISS: exact while small, IVF once large (see store.FLAT_MAX)
        all_chunks = [previous.chunks[int(i)] for doc in kept.values() for i in doc["chunk_ids"]] if in_place else []
        all_chunks += new_chunks
        all_docs = {**kept, **new_docs}
        fresh = dict(per_chunk)
        statements = StatementVectors.build(
            [(c.id, fresh[c.id] if c.id in fresh else previous.statements.of(c.id)) for c in all_chunks], store.dim)
        _write(directory, settings, embedder, store, all_chunks, all_docs, skipped_map, statements)
        if store.live:
            _tidy(store, stale, all_docs, log)
        if moving and previous.store.live:  # the shared store the vectors came from: its collection goes
            try:
                previous.store.drop()
            except AdvisorError as exc:
                log(f"The vectors were moved, but the old store could not be emptied ({exc}).")
        return BuildReport(
            added=tuple(s for s in new_docs if s not in documents),
            changed=tuple(plan.changed),
            removed=tuple(plan.removed),
            unchanged=tuple(plan.unchanged),
            skipped=tuple(skipped),
            chunks_embedded=len(new_chunks),
            chunks_total=len(all_chunks),
            documents=len(all_docs),
            full_rebuild=why_full,
            moved=moving,
            wrote=True,
            seconds=time.perf_counter() - started,
        )


def index_status(settings: Settings) -> IndexStatus:
    """Compare the index with the corpus and settings without loading the model."""
    if not settings.corpus_dir.is_dir():
        raise CorpusMissing(f"corpus folder {settings.corpus_dir} does not exist; create it or set ADVISOR_CORPUS / --corpus")
    files, _ = scan_corpus(settings.corpus_dir)
    try:
        manifest = read_manifest(settings.index_dir)
    except IndexMissing as exc:
        return IndexStatus(False, str(exc), added=tuple(f.source for f in files))
    except (IndexCorrupt, IndexMismatch) as exc:
        return IndexStatus(False, str(exc))
    plan = _plan(files, manifest["documents"], manifest.get("skipped", {}), everything=False)
    base = dict(built_at=manifest["built_at"], build_id=manifest["build_id"], documents=len(manifest["documents"]),
                chunks=sum(len(d["chunk_ids"]) for d in manifest["documents"].values()),
                store=store_label(store_record(manifest)))
    names = [manifest["files"][k]["name"] for k in _file_keys(store_record(manifest))]
    missing = [name for name in names if not (settings.index_dir / name).is_file()]
    if missing:
        return IndexStatus(False, f"index files missing from {settings.index_dir}: {', '.join(missing)}; {REBUILD}", **base)
    mismatch = settings_mismatch(manifest, settings)
    if mismatch:
        return IndexStatus(False, f"{mismatch}; run `python -m advisor index` to rebuild", **base)
    if plan.added or plan.changed or plan.removed:
        parts = [f"{len(v)} {k}" for k, v in (("added", plan.added), ("changed", plan.changed), ("removed", plan.removed)) if v]
        return IndexStatus(False, f"corpus changed since the last build ({', '.join(parts)}); "
                                  "run `python -m advisor index`",
                           added=tuple(plan.added), changed=tuple(plan.changed), removed=tuple(plan.removed), **base)
    return IndexStatus(True, "index matches the corpus", **base)


def _load_and_split(
    files: list[CorpusFile], settings: Settings, embedder: Embedder
) -> tuple[dict[str, dict[str, Any]], list[Chunk], list[Skipped]]:
    """Load and split each file; a file that fails is reported, never fatal to the build."""
    docs: dict[str, dict[str, Any]] = {}
    chunks: list[Chunk] = []
    failed: list[Skipped] = []
    for file in files:
        try:
            doc = load_document(file, settings.max_file_bytes)
            # The tokenizer (and so the model) loads only once some file has text to split.
            doc_chunks = split_document(
                doc, embedder.tokenizer, chunk_tokens=settings.chunk_tokens,
                chunk_overlap=settings.chunk_overlap, max_tokens=embedder.max_tokens,
            )
        except LoadError as exc:
            failed.append(Skipped(file.source, str(exc), file.sha256))
            continue
        except ConfigError:
            raise  # a bad setting fails every file alike: say so once
        except Exception as exc:  # noqa: BLE001 - one bad file must not abort the build
            failed.append(Skipped(file.source, f"could not be processed ({type(exc).__name__}: {exc})", file.sha256))
            continue
        if not doc_chunks:
            failed.append(Skipped(file.source, "no indexable text (only headings or boilerplate)", doc.sha256))
            continue
        docs[file.source] = {"sha256": doc.sha256, "title": doc.title, "kind": doc.kind, "chunk_ids": [c.id for c in doc_chunks]}
        chunks.extend(doc_chunks)
    return docs, chunks, failed


# --- files --------------------------------------------------------------------------------


@contextmanager
def _build_lock(directory: Path, wait: float) -> Iterator[None]:
    """Hold the index folder's build lock (the OS releases it if the process dies)."""
    from filelock import FileLock, Timeout

    path = directory / LOCK
    lock = FileLock(str(path), timeout=wait)
    try:
        lock.acquire()
    except Timeout:
        raise IndexBusy(f"another index build is running (lock {path} is held); wait for it to finish and try again") from None
    try:
        yield
    finally:
        lock.release()


def _previous(
    directory: Path, settings: Settings, full: bool
) -> tuple[dict[str, Any] | None, Index | None, str | None, str | None]:
    """The last manifest; the index to update (if any); why a full rebuild is needed (if so); and why its
    vectors move to another store (if they do: same model and splitter, so they are copied, not re-embedded)."""
    try:
        manifest = read_manifest(directory)
    except IndexMissing:
        return None, None, None, None
    except (IndexCorrupt, IndexMismatch) as exc:
        return None, None, f"the existing index cannot be used ({exc})", None
    why = "a full rebuild was requested" if full else _embedding_mismatch(manifest, settings)
    if why:
        return manifest, None, why, None
    try:
        # Opened where its manifest says its vectors are, which may not be the configured store.
        return manifest, Index._open(directory, manifest, settings), None, store_mismatch(manifest, settings)
    except (IndexCorrupt, FileNotFoundError, StoreUnavailable) as exc:
        if isinstance(exc, StoreUnavailable) and not store_mismatch(manifest, settings):
            raise  # the configured database is down: a rebuild would fail too, and say less
        return manifest, None, f"the existing index cannot be used ({exc})", None


def _write(
    directory: Path, settings: Settings, embedder: Embedder, store: VectorStore, chunks: list[Chunk],
    documents: dict[str, Any], skipped: dict[str, Any], statements: StatementVectors,
) -> None:
    """Write a new generation beside the old one, then swap the manifest in as the single commit point."""
    build_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    chunks_name = f"chunks-{build_id}.json"
    record, vectors_file = store.commit(directory, build_id)  # FAISS: a new vectors file; Milvus: a flush
    ordered = sorted(chunks, key=lambda c: (c.source, c.start, c.end))
    chunk_bytes = json.dumps({"format_version": FORMAT_VERSION, "chunks": [c.to_json() for c in ordered]},
                             ensure_ascii=False).encode("utf-8")
    _atomic_write(directory / chunks_name, chunk_bytes)
    statements_name = f"statements-{build_id}.npz"
    statement_bytes = statements.to_bytes()
    _atomic_write(directory / statements_name, statement_bytes)
    manifest = {
        "format_version": FORMAT_VERSION,
        "build_id": build_id,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "corpus": str(settings.corpus_dir),
        "model": {"name": settings.model, "dim": store.dim, "max_tokens": embedder.max_tokens},
        "store": record,
        "splitter": splitter_config(settings),
        "files": {
            **({"vectors": vectors_file} if vectors_file else {}),
            "chunks": {"name": chunks_name, "bytes": len(chunk_bytes), "sha256": hashlib.sha256(chunk_bytes).hexdigest()},
            "statements": {"name": statements_name, "bytes": len(statement_bytes),
                           "sha256": hashlib.sha256(statement_bytes).hexdigest()},
        },
        "documents": dict(sorted(documents.items())),
        "skipped": dict(sorted(skipped.items())),
    }
    _atomic_write(directory / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False).encode("utf-8"))
    _fsync_dir(directory)
    # Older generations go at once, so text removed from the corpus is gone from disk too; a reader
    # that read the old manifest a moment ago finds its files missing and re-reads the new one.
    keep = {chunks_name, statements_name, *([vectors_file["name"]] if vectors_file else [])}
    for path in directory.iterdir():
        if path.name.startswith(("vectors-", "chunks-", "statements-")) and path.is_file() and path.name not in keep:
            path.unlink(missing_ok=True)


def _tidy(store: VectorStore, stale: list[str], documents: dict[str, Any], log: Callable[[str], None]) -> None:
    """After the swap, delete a shared store's vectors that no manifest names any more, and older collections.

    Failing here loses nothing: the new index is in place, and the next build deletes what is left.
    """
    try:
        store.delete(*stale, keep={int(i) for source in stale for i in documents.get(source, {}).get("chunk_ids", [])})
        store.retain({int(i) for doc in documents.values() for i in doc["chunk_ids"]})
        store.release_others()
    except AdvisorError as exc:
        log(f"The new index is in place, but old vectors could not be deleted yet ({exc}); the next build retries.")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_temp_files(directory: Path) -> None:
    """Delete half-written files left by a build that crashed (only called under the build lock)."""
    for path in directory.glob("*.tmp"):
        path.unlink(missing_ok=True)
