"""Load, check and build the index: chunk JSON, statement vectors and a manifest on disk, vectors in a VectorStore."""

from __future__ import annotations

import io
import json
import logging
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from advisor.config import Settings
from advisor.embed import Embedder, get_embedder
from advisor.errors import (
    REBUILD,
    AdvisorError,
    ConfigError,
    IndexBusy,
    IndexCorrupt,
    IndexMismatch,
    IndexUnwritable,
    StoreUnavailable,
    without_fix,
)
from advisor.extract import DocumentReader
from advisor.files import FileEntry, atomic_write, fsync_dir, read_checked, remove_temp_files
from advisor.load import CorpusFile, LoadError, load_document
from advisor.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    DocumentEntry,
    Manifest,
    ModelInfo,
    SkippedEntry,
    manifest_stamp,
    read_manifest,
    write_manifest,
)
from advisor.plan import BuildPlan, plan, splitter_config
from advisor.split import split_document
from advisor.statements import units_of
from advisor.stores import VectorStore, create_store, open_store, store_mismatch
from advisor.types import Chunk, Document, Skipped

log = logging.getLogger(__name__)

WHOLE = 0.8  # share of a passage's text a statement must be made of to share the passage's vector
LOCK = ".build.lock"
WAIT_SECONDS = 600.0  # how long the app and `ask` wait for another process's build before giving up


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
        ids = (
            np.concatenate([np.full(len(v), i, dtype=np.int64) for i, v in per_chunk])
            if per_chunk
            else np.zeros(0, dtype=np.int64)
        )
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
    manifest: Manifest
    chunks: dict[int, Chunk]
    store: VectorStore = field(repr=False)
    statements: StatementVectors = field(repr=False, default_factory=lambda: StatementVectors.build([], 0))

    @classmethod
    def load(cls, directory: Path, model: str | None = None, settings: Settings | None = None) -> Index:
        """Load and verify the index in ``directory``; with ``model``, insist it was built with that model.

        ``settings`` supplies the Milvus token and, when given, the index must use the vector store they name.
        """
        manifest = read_manifest(directory)
        built_with = manifest.model.name
        if model is not None and built_with != model:
            raise IndexMismatch(
                f"{directory / MANIFEST} was built with model '{built_with}' but the configured model is "
                f"'{model}'; {REBUILD}, or set ADVISOR_MODEL={built_with}"
            )
        if settings is not None and (changed := store_mismatch(manifest.store, settings)):
            raise IndexMismatch(f"{directory / MANIFEST}: {changed}; run `python -m advisor index` to rebuild it")
        settings = settings or Settings()
        for _ in range(3):
            try:
                return cls.open(directory, manifest, settings)
            except FileNotFoundError as exc:
                # A build swapped in a new generation (and deleted this one) while it was being read.
                missing = exc.filename
            newer = read_manifest(directory)
            if newer.build_id == manifest.build_id:
                break  # no new generation: the file is really gone
            manifest = newer
        raise IndexCorrupt(f"{missing} is missing; {REBUILD}")

    @classmethod
    def open(cls, directory: Path, manifest: Manifest, settings: Settings) -> Index:
        """The index ``manifest`` describes, its files checked against their checksums and each other.

        Its vectors are opened where the manifest says, which may not be the configured store (a build moving them).
        """
        chunk_path = directory / manifest.files["chunks"].name
        data = read_checked(chunk_path, manifest.files["chunks"])
        try:
            # Titles are kept once per document, in the manifest (a page's title may be long).
            titles = {source: entry.title for source, entry in manifest.documents.items()}
            chunks = {c.id: c for c in (Chunk.from_json(item, titles[item["source"]]) for item in json.loads(data)["chunks"])}
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexCorrupt(f"{chunk_path} cannot be read ({exc}); {REBUILD}") from None
        sources = manifest.sources()
        if set(chunks) != set(sources):
            raise IndexCorrupt(f"{chunk_path} and {MANIFEST} list different passages; {REBUILD}")
        statement_path = directory / manifest.files["statements"].name
        data = read_checked(statement_path, manifest.files["statements"])
        try:
            statements = StatementVectors.from_bytes(data)
        except (ValueError, KeyError, OSError) as exc:
            raise IndexCorrupt(f"{statement_path} cannot be read ({exc}); {REBUILD}") from None
        if not set(statements.spans) <= set(sources):
            raise IndexCorrupt(f"{statement_path} and {MANIFEST} list different passages; {REBUILD}")
        store = open_store(manifest.store, directory, dict(manifest.files), sources, settings)
        if store.dim != manifest.model.dim:
            raise IndexCorrupt(f"{store.where} holds {store.dim}-d vectors, {MANIFEST} says {manifest.model.dim}; {REBUILD}")
        store.verify(sources, f"{chunk_path} and {MANIFEST}")
        return cls(directory, manifest, chunks, store, statements)

    @property
    def built_at(self) -> str:
        """When this index was written (UTC, ISO 8601)."""
        return self.manifest.built_at

    @property
    def documents(self) -> dict[str, DocumentEntry]:
        """Indexed documents by corpus path: sha256, title, kind and chunk ids."""
        return dict(self.manifest.documents)

    def chunks_of(self, source: str) -> list[Chunk]:
        """The chunks of one document, in text order."""
        entry = self.manifest.documents.get(source)
        return [self.chunks[i] for i in entry.chunk_ids] if entry else []


def build(
    settings: Settings,
    *,
    full: bool = False,
    embedder: Embedder | None = None,
    progress: bool = False,
    wait: float = 0.0,
) -> BuildReport:
    """Bring the index in line with the corpus, embedding only new and changed documents: ``apply(plan(settings))``.

    A different model, splitter setting or vector store, a damaged index, or ``full`` re-embeds everything.
    ``wait`` is how long to wait for another build.
    """
    return apply(plan(settings, full=full), embedder=embedder, progress=progress, wait=wait)


def apply(build_plan: BuildPlan, *, embedder: Embedder | None = None, progress: bool = False, wait: float = 0.0) -> BuildReport:
    """Carry out a plan under the index folder's build lock (re-planned if another build changed the index since).

    The new index is written beside the old one and swapped in by replacing the manifest, so a crash leaves the
    previous index loadable. With a shared (Milvus) store, vectors of changed documents are added before the swap
    and the old ones deleted after it, so processes still serving the previous manifest keep finding theirs.
    """
    started = time.perf_counter()
    settings = build_plan.settings
    directory = settings.index_dir
    try:
        _make_folder(directory)
        with _build_lock(directory, wait):
            remove_temp_files(directory)
            if manifest_stamp(directory) != build_plan.stamp:  # another build swapped an index in since
                build_plan = plan(settings, full=build_plan.requested)
            return _apply(build_plan, embedder, progress, started)
    except IndexUnwritable as exc:
        if not _up_to_date(build_plan):
            raise
        # A read-only index folder (a shared mount, a container image) serves its index as it is.
        log.warning("%s; the index there matches the corpus and is used as it is.", exc)
        return _nothing_written(build_plan, build_plan.skipped, started)


def _nothing_written(p: BuildPlan, skipped: Sequence[Skipped], started: float) -> BuildReport:
    """The report of a build that left the index on disk as it was: it already serves the plan's corpus."""
    assert p.manifest is not None
    return BuildReport(
        unchanged=p.unchanged,
        skipped=tuple(skipped),
        chunks_total=p.manifest.passages,
        documents=len(p.manifest.documents),
        seconds=time.perf_counter() - started,
    )


def _up_to_date(p: BuildPlan) -> bool:
    """Whether the index on disk already serves this plan's corpus and settings (nothing to embed or move)."""
    return p.manifest is not None and not (p.unusable or p.full_rebuild or p.move or p.corpus_changed)


def _make_folder(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexUnwritable(f"cannot create the index folder {directory} ({exc.strerror or exc})") from None


def _apply(p: BuildPlan, embedder: Embedder | None, progress: bool, started: float) -> BuildReport:
    settings = p.settings
    p, previous = _open_previous(p)
    if p.full_rebuild and p.manifest:
        log.info("Rebuilding the whole index: %s.", p.full_rebuild)
    embedder = embedder or get_embedder(settings.model)
    new_docs, new_chunks, failed = _load_and_split(p.to_load, settings, embedder)
    if previous is not None and new_chunks and embedder.dim != previous.store.dim:
        p, previous = p.rebuild_all(f"the model's dimension changed from {previous.store.dim} to {embedder.dim}"), None
        log.info("Rebuilding the whole index: %s.", p.full_rebuild)
        new_docs, new_chunks, failed = _load_and_split(p.to_load, settings, embedder)
    skipped = [*p.skipped, *failed]
    skipped_map = {s.source: SkippedEntry(s.sha256, s.reason) for s in skipped if s.sha256}
    documents = p.manifest.documents if p.manifest else {}
    if (
        previous is not None
        and not (new_chunks or p.corpus_changed or p.move or previous.store.needs_refit(settings.flat_max))
        and skipped_map == previous.manifest.skipped
    ):
        return _nothing_written(p, skipped, started)

    # Unchanged documents keep their vectors; those of changed, removed and now-unreadable ones go.
    kept = {s: documents[s] for s in p.unchanged} if previous is not None else {}
    store, stale = _store_to_write(p, previous, kept, embedder.dim)
    if new_chunks:
        log.info("Embedding %d passages from %d document(s)…", len(new_chunks), len(new_docs))
    vectors, fresh = _embed(embedder, new_chunks, progress)
    start = 0
    for source, doc in new_docs.items():  # chunks are in document order, so each document is one run
        count = len(doc.chunk_ids)
        store.add(source, [c.id for c in new_chunks[start : start + count]], vectors[start : start + count])
        start += count
    store = store.fitted(settings.flat_max)  # FAISS: exact while small, IVF once large (ADVISOR_FLAT_MAX)
    all_chunks = [previous.chunks[i] for doc in kept.values() for i in doc.chunk_ids] if previous is not None else []
    all_chunks += new_chunks
    all_docs = {**kept, **new_docs}
    old = previous.statements if previous is not None else StatementVectors.build([], store.dim)
    statements = StatementVectors.build([(c.id, fresh[c.id] if c.id in fresh else old.of(c.id)) for c in all_chunks], store.dim)
    _write(settings.index_dir, settings, embedder, store, all_chunks, all_docs, skipped_map, statements)
    if store.live:
        _tidy(store, stale, all_docs)
    if p.move and previous is not None and previous.store.live:  # the shared store the vectors came from goes
        try:
            previous.store.drop()
        except AdvisorError as exc:
            log.warning("The vectors were moved, but the old store could not be emptied (%s).", exc)
    return BuildReport(
        added=tuple(s for s in new_docs if s not in documents),
        changed=p.changed,
        removed=p.removed,
        unchanged=p.unchanged,
        skipped=tuple(skipped),
        chunks_embedded=len(new_chunks),
        chunks_total=len(all_chunks),
        documents=len(all_docs),
        full_rebuild=p.full_rebuild,
        moved=p.move if previous is not None else None,
        wrote=True,
        seconds=time.perf_counter() - started,
    )


def _open_previous(p: BuildPlan) -> tuple[BuildPlan, Index | None]:
    """The index the plan updates, opened where its manifest says; a damaged one turns the plan into a full rebuild."""
    if p.manifest is None or p.full_rebuild is not None:
        return p, None
    try:
        return p, Index.open(p.settings.index_dir, p.manifest, p.settings)
    except (IndexCorrupt, FileNotFoundError, StoreUnavailable) as exc:
        if isinstance(exc, StoreUnavailable) and not p.move:
            raise  # the configured database is down: a rebuild would fail too, and say less
        return p.rebuild_all(f"the existing index cannot be used ({without_fix(str(exc))})"), None


def _store_to_write(
    p: BuildPlan, previous: Index | None, kept: dict[str, DocumentEntry], dim: int
) -> tuple[VectorStore, list[str]]:
    """The store this build writes, holding the kept documents' vectors, and the documents whose vectors are stale
    (a shared store deletes those only after the swap, so readers of the previous manifest keep finding theirs)."""
    if previous is None:
        return create_store(p.settings, dim), []
    if p.move:  # to another vector store: copy the unchanged documents' vectors there; nothing old is in it
        log.info("Moving the vectors: %s.", p.move)
        store = create_store(p.settings, previous.store.dim)
        for source, doc in kept.items():
            store.add(source, list(doc.chunk_ids), previous.store.vectors(list(doc.chunk_ids)))
        return store, []
    store = previous.store.for_update()
    stale = [s for s in previous.manifest.documents if s not in kept]
    if not store.live:  # a private copy: nobody reads it until the swap
        store.delete(*stale)
    return store, stale


def _embed(embedder: Embedder, chunks: list[Chunk], progress: bool) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The passages' vectors, and each passage's statement vectors (``statements.units_of``) by chunk id.

    Passages and statements go in one encode call: the model batches them by length either way. A statement that
    is nearly the whole passage (a passage that is one table or list) shares the passage's vector.
    """
    units = [[(u.embed, sum(map(len, u.parts)) >= WHOLE * len(c.text)) for u in units_of(c)] for c in chunks]
    encoded = embedder.embed_passages(
        [c.embedding_text for c in chunks] + [t for us in units for t, whole in us if not whole], progress=progress
    )
    vectors, unit_vectors = encoded[: len(chunks)], encoded[len(chunks) :]
    statements, encoded_units = {}, iter(unit_vectors)  # the statements' own vectors, in order
    for i, (chunk, texts) in enumerate(zip(chunks, units)):
        rows = [vectors[i] if whole else next(encoded_units) for _, whole in texts]
        statements[chunk.id] = np.stack(rows) if rows else unit_vectors[:0]
    return vectors, statements


def index_status(settings: Settings) -> IndexStatus:
    """Compare the index with the corpus and settings without loading the model or opening the store."""
    p = plan(settings)
    manifest = p.manifest
    if manifest is None:
        if p.unusable:
            return IndexStatus(False, p.unusable)
        return IndexStatus(
            False,
            f"no index in {settings.index_dir} yet; build it with `python -m advisor index`",
            added=tuple(f.source for f in p.files),
        )
    base = dict(
        built_at=manifest.built_at,
        build_id=manifest.build_id,
        documents=len(manifest.documents),
        chunks=manifest.passages,
        store=manifest.store.label(),
    )
    if p.unusable:
        return IndexStatus(False, p.unusable, **base)
    mismatch = p.mismatch or p.move  # the plan moves the vectors only when nothing else forces a rebuild
    if mismatch:
        return IndexStatus(False, f"{mismatch}; run `python -m advisor index` to rebuild", **base)
    if p.corpus_changed:
        return IndexStatus(
            False,
            f"corpus changed since the last build ({p.changes()}); run `python -m advisor index`",
            added=p.added,
            changed=p.changed,
            removed=p.removed,
            **base,
        )
    return IndexStatus(True, "index matches the corpus", **base)


def passages_of(
    file: CorpusFile, settings: Settings, embedder: Embedder, reader: DocumentReader | None = None
) -> tuple[Document, list[Chunk]]:
    """Load one corpus file (through ``reader``, bounded in time and memory, when given) and split it into
    passages, as a build does (``advisor train`` cuts its documents the same way). The tokenizer, and so the
    model, loads only once some file has text to split."""
    doc = reader.read(file) if reader else load_document(file, settings.max_file_bytes, settings.max_chars)
    chunks = split_document(
        doc,
        embedder.tokenizer,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap=settings.chunk_overlap,
        max_tokens=embedder.max_tokens,
    )
    return doc, chunks


def _load_and_split(
    files: tuple[CorpusFile, ...], settings: Settings, embedder: Embedder
) -> tuple[dict[str, DocumentEntry], list[Chunk], list[Skipped]]:
    """Load and split each file; a file that fails is reported, never fatal to the build."""
    docs: dict[str, DocumentEntry] = {}
    chunks: list[Chunk] = []
    failed: list[Skipped] = []
    with DocumentReader(settings.max_file_bytes, settings.max_chars, settings.read_seconds) as reader:
        for file in files:
            try:
                doc, doc_chunks = passages_of(file, settings, embedder, reader)
            except LoadError as exc:
                failed.append(Skipped(file.source, str(exc), file.sha256))
                continue
            except ConfigError:
                raise  # a bad setting fails every file alike: say so once
            except Exception as exc:  # one bad file must not abort the build
                log.debug("%s could not be processed", file.source, exc_info=True)
                failed.append(Skipped(file.source, f"could not be processed ({type(exc).__name__}: {exc})", file.sha256))
                continue
            if not doc_chunks:
                failed.append(Skipped(file.source, "no indexable text (only headings or boilerplate)", doc.sha256))
                continue
            docs[file.source] = DocumentEntry(doc.sha256, doc.title, doc.kind, tuple(c.id for c in doc_chunks))
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
    except OSError as exc:  # a read-only or full file system: nothing can be built here
        raise IndexUnwritable(f"cannot write to the index folder {directory} ({exc.strerror or exc})") from None
    try:
        yield
    finally:
        lock.release()


def _write(
    directory: Path,
    settings: Settings,
    embedder: Embedder,
    store: VectorStore,
    chunks: list[Chunk],
    documents: dict[str, DocumentEntry],
    skipped: dict[str, SkippedEntry],
    statements: StatementVectors,
) -> None:
    """Write a new generation beside the old one, then swap the manifest in as the single commit point."""
    build_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    try:
        record, files = store.commit(directory, build_id)  # FAISS: a new vectors file; Milvus: a flush
        ordered = sorted(chunks, key=lambda c: (c.source, c.start, c.end))
        chunk_bytes = json.dumps(
            {"format_version": FORMAT_VERSION, "chunks": [_without_title(c.to_json()) for c in ordered]}, ensure_ascii=False
        ).encode("utf-8")
        for key, name, data in (
            ("chunks", f"chunks-{build_id}.json", chunk_bytes),
            ("statements", f"statements-{build_id}.npz", statements.to_bytes()),
        ):
            atomic_write(directory / name, data)
            files[key] = FileEntry.of_bytes(name, data)
        manifest = Manifest(
            build_id=build_id,
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            corpus=str(settings.corpus_dir),
            model=ModelInfo(settings.model, store.dim, embedder.max_tokens),
            store=record,
            splitter=splitter_config(settings),
            files=files,
            documents=documents,
            skipped=skipped,
        )
        write_manifest(directory, manifest)
    except (OSError, RuntimeError) as exc:  # a full disk, a read-only folder; faiss reports a failed write as RuntimeError
        for path in directory.glob(f"*-{build_id}.*"):  # this generation's files, .tmp included; the old ones stay
            path.unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).strip().splitlines()[-1][:160]
        raise IndexUnwritable(
            f"could not write the new index to {directory} ({reason}); the previous index is unchanged"
        ) from None
    fsync_dir(directory)
    # Older generations go at once, so text removed from the corpus is gone from disk too; a reader
    # that read the old manifest a moment ago finds its files missing and re-reads the new one.
    keep = set(manifest.file_names())
    for path in directory.iterdir():
        if path.name.startswith(("vectors-", "chunks-", "statements-")) and path.is_file() and path.name not in keep:
            path.unlink(missing_ok=True)


def _without_title(chunk: dict[str, Any]) -> dict[str, Any]:
    """A chunk's stored fields: its title is the manifest's, for its document."""
    del chunk["title"]
    return chunk


def _tidy(store: VectorStore, stale: list[str], documents: dict[str, DocumentEntry]) -> None:
    """After the swap, delete a shared store's vectors that no manifest names any more, and older collections.

    Failing here loses nothing: the new index is in place, and the next build deletes what is left.
    """
    try:
        store.delete(*stale, keep={i for source in stale if source in documents for i in documents[source].chunk_ids})
        store.retain({i for doc in documents.values() for i in doc.chunk_ids})
        store.release_others()
    except AdvisorError as exc:
        log.warning("The new index is in place, but old vectors could not be deleted yet (%s); the next build retries.", exc)
