"""Build, check and load the on-disk index: FAISS vectors, chunk JSON and a manifest that ties them together."""

from __future__ import annotations

import hashlib
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

from advisor.config import Settings
from advisor.embed import Embedder, get_embedder
from advisor.errors import ConfigError, CorpusMissing, IndexBusy, IndexCorrupt, IndexMismatch, IndexMissing
from advisor.load import CorpusFile, LoadError, load_document, scan_corpus
from advisor.split import CONTEXT_TOKENS, SPLITTER_VERSION, split_document
from advisor.store import FaissStore
from advisor.types import Chunk, Skipped

FORMAT_VERSION = 1
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
        }


@dataclass
class Index:
    """A loaded index whose files were checked against its manifest."""

    directory: Path
    manifest: dict[str, Any]
    chunks: dict[int, Chunk]
    store: FaissStore = field(repr=False)

    @classmethod
    def load(cls, directory: Path, model: str | None = None) -> Index:
        """Load and verify the index in ``directory``; with ``model``, insist it was built with that model."""
        manifest = read_manifest(directory)
        built_with = manifest["model"]["name"]
        if model is not None and built_with != model:
            raise IndexMismatch(
                f"{directory / MANIFEST} was built with model '{built_with}' but the configured model is "
                f"'{model}'; {REBUILD}, or set ADVISOR_MODEL={built_with}"
            )
        for _ in range(3):
            try:
                return cls._open(directory, manifest)
            except FileNotFoundError as exc:
                # A build swapped in a new generation (and deleted this one) while it was being read.
                missing = exc.filename
            newer = read_manifest(directory)
            if newer["build_id"] == manifest.get("build_id"):
                break  # no new generation: the file is really gone
            manifest = newer
        raise IndexCorrupt(f"{missing} is missing; {REBUILD}")

    @classmethod
    def _open(cls, directory: Path, manifest: dict[str, Any]) -> Index:
        chunk_path = directory / manifest["files"]["chunks"]["name"]
        data = chunk_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != manifest["files"]["chunks"]["sha256"]:
            raise IndexCorrupt(f"{chunk_path} does not match {directory / MANIFEST} (checksum differs); {REBUILD}")
        try:
            chunks = {c.id: c for c in (Chunk.from_json(item) for item in json.loads(data)["chunks"])}
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexCorrupt(f"{chunk_path} cannot be read ({exc}); {REBUILD}") from None
        vector_path = directory / manifest["files"]["vectors"]["name"]
        size = vector_path.stat().st_size
        if size != manifest["files"]["vectors"]["bytes"]:
            raise IndexCorrupt(
                f"{vector_path} is {size} bytes but {MANIFEST} expects {manifest['files']['vectors']['bytes']} "
                f"(truncated or replaced); {REBUILD}"
            )
        try:
            store = FaissStore.load(vector_path)
        except RuntimeError as exc:
            raise IndexCorrupt(f"{vector_path} is damaged ({str(exc).splitlines()[-1][:160]}); {REBUILD}") from None
        if store.dim != manifest["model"]["dim"]:
            raise IndexCorrupt(
                f"{vector_path} holds {store.dim}-d vectors, {MANIFEST} says {manifest['model']['dim']}; {REBUILD}"
            )
        listed = {int(i) for doc in manifest["documents"].values() for i in doc["chunk_ids"]}
        if not (store.ids() == set(chunks) == listed):
            raise IndexCorrupt(f"{vector_path}, {chunk_path} and {MANIFEST} list different passages; {REBUILD}")
        return cls(directory, manifest, chunks, store)

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
        fields = (("name", str), ("sha256", str), ("bytes", int))
        expected = [(files[k][f], t) for k in ("vectors", "chunks") for f, t in fields]
        expected += [(model["name"], str), (model["dim"], int), (manifest["splitter"], dict), (manifest["built_at"], str),
                     (manifest["build_id"], str), (docs, dict), (manifest.get("skipped", {}), dict)]
        expected += [(value, t) for doc in docs.values() for value, t in ((doc["sha256"], str), (doc["chunk_ids"], list))]
        wrong = [value for value, kind in expected if not isinstance(value, kind)]
    except (KeyError, TypeError, AttributeError) as exc:
        raise IndexCorrupt(f"{path} is missing field {exc}; {REBUILD}") from None
    if wrong:
        raise IndexCorrupt(f"{path} has a malformed field (value {wrong[0]!r}); {REBUILD}")
    return manifest


def splitter_config(settings: Settings) -> dict[str, int]:
    """The splitter settings recorded in the manifest; any change forces a full rebuild."""
    return {
        "version": SPLITTER_VERSION,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap": settings.chunk_overlap,
        "context_tokens": CONTEXT_TOKENS,
    }


def settings_mismatch(manifest: dict[str, Any], settings: Settings) -> str | None:
    """Why an index built as ``manifest`` says cannot be updated in place under ``settings``, or None."""
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

    A different model or splitter setting, a damaged index, or ``full`` re-embeds everything.
    The new index is written beside the old one and swapped in by replacing the manifest, so
    a crash leaves the previous index loadable. ``wait`` is how long to wait for another build.
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
        manifest, previous, why_full = _previous(directory, settings, full)
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
        refit = in_place and previous.store.kind != previous.store.wanted_kind(settings.flat_max)
        if in_place and not (new_chunks or plan.added or plan.changed or plan.removed or refit) \
                and skipped_map == old_skipped:
            return BuildReport(unchanged=tuple(plan.unchanged), skipped=tuple(skipped), chunks_total=len(previous.store),
                               documents=len(documents), seconds=time.perf_counter() - started)

        # Unchanged documents keep their vectors; those of changed, removed and now-unreadable ones go.
        kept = {s: documents[s] for s in plan.unchanged} if in_place else {}
        if in_place:
            store = previous.store.copy()
            store.remove(int(i) for s, doc in documents.items() if s not in kept for i in doc["chunk_ids"])
        else:
            store = FaissStore(embedder.dim)
        if new_chunks:
            log(f"Embedding {len(new_chunks)} passages from {len(new_docs)} document(s)…")
        vectors = embedder.embed_passages([c.embedding_text for c in new_chunks], progress=progress)
        store.add([c.id for c in new_chunks], vectors)
        store = store.fitted(settings.flat_max)  # exact while small, IVF once large (see store.FLAT_MAX)
        all_chunks = [previous.chunks[int(i)] for doc in kept.values() for i in doc["chunk_ids"]] if in_place else []
        all_chunks += new_chunks
        all_docs = {**kept, **new_docs}
        _write(directory, settings, embedder, store, all_chunks, all_docs, skipped_map)
        return BuildReport(
            added=tuple(s for s in new_docs if s not in documents),
            changed=tuple(plan.changed),
            removed=tuple(plan.removed),
            unchanged=tuple(plan.unchanged),
            skipped=tuple(skipped),
            chunks_embedded=len(new_chunks),
            chunks_total=len(store),
            documents=len(all_docs),
            full_rebuild=why_full,
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
                chunks=sum(len(d["chunk_ids"]) for d in manifest["documents"].values()))
    names = [manifest["files"][k]["name"] for k in ("vectors", "chunks")]
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


def _previous(directory: Path, settings: Settings, full: bool) -> tuple[dict[str, Any] | None, Index | None, str | None]:
    """The last manifest, the index to update in place (if any), and why a full rebuild is needed (if so)."""
    try:
        manifest = read_manifest(directory)
    except IndexMissing:
        return None, None, None
    except (IndexCorrupt, IndexMismatch) as exc:
        return None, None, f"the existing index cannot be used ({exc})"
    why = "a full rebuild was requested" if full else settings_mismatch(manifest, settings)
    if why:
        return manifest, None, why
    try:
        return manifest, Index._open(directory, manifest), None
    except (IndexCorrupt, FileNotFoundError) as exc:
        return manifest, None, f"the existing index cannot be used ({exc})"


def _write(
    directory: Path, settings: Settings, embedder: Embedder, store: FaissStore, chunks: list[Chunk],
    documents: dict[str, Any], skipped: dict[str, Any],
) -> None:
    """Write a new generation beside the old one, then swap the manifest in as the single commit point."""
    build_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    vectors_name, chunks_name = f"vectors-{build_id}.faiss", f"chunks-{build_id}.json"
    vectors_tmp = directory / f"{vectors_name}.tmp"
    store.save(vectors_tmp)
    os.replace(vectors_tmp, directory / vectors_name)
    ordered = sorted(chunks, key=lambda c: (c.source, c.start, c.end))
    chunk_bytes = json.dumps({"format_version": FORMAT_VERSION, "chunks": [c.to_json() for c in ordered]},
                             ensure_ascii=False).encode("utf-8")
    _atomic_write(directory / chunks_name, chunk_bytes)
    manifest = {
        "format_version": FORMAT_VERSION,
        "build_id": build_id,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "corpus": str(settings.corpus_dir),
        "model": {"name": settings.model, "dim": store.dim, "max_tokens": embedder.max_tokens},
        "store": store.kind,
        "splitter": splitter_config(settings),
        "files": {
            "vectors": {"name": vectors_name, "bytes": (directory / vectors_name).stat().st_size,
                        "sha256": _sha256_file(directory / vectors_name)},
            "chunks": {"name": chunks_name, "bytes": len(chunk_bytes), "sha256": hashlib.sha256(chunk_bytes).hexdigest()},
        },
        "documents": dict(sorted(documents.items())),
        "skipped": dict(sorted(skipped.items())),
    }
    _atomic_write(directory / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False).encode("utf-8"))
    _fsync_dir(directory)
    # Older generations go at once, so text removed from the corpus is gone from disk too; a reader
    # that read the old manifest a moment ago finds its files missing and re-reads the new one.
    keep = {vectors_name, chunks_name}
    for path in directory.iterdir():
        if path.name.startswith(("vectors-", "chunks-")) and path.name not in keep:
            path.unlink(missing_ok=True)


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


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
