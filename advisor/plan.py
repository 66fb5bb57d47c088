"""Plan a build: compare the corpus and settings with the manifest on disk, without the model or the vector store."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from advisor.config import Settings
from advisor.errors import REBUILD, CorpusMissing, IndexCorrupt, IndexMismatch, IndexMissing, without_fix
from advisor.extract import still_over_bound
from advisor.load import LOADER_VERSION, CorpusFile, scan_corpus
from advisor.manifest import Manifest, manifest_stamp, read_manifest
from advisor.split import CONTEXT_TOKENS, SPLITTER_VERSION
from advisor.statements import STATEMENTS_VERSION
from advisor.stores import store_mismatch
from advisor.types import Skipped


@dataclass(frozen=True)
class BuildPlan:
    """What a build will do and why, decided from the corpus, the settings and the manifest alone.

    ``apply`` carries it out; it may still turn it into a full rebuild when the previous index turns out to be
    damaged or the model's dimension changed (both are only known once the files or the model are opened).
    """

    settings: Settings
    manifest: Manifest | None  # the index being updated; None when there is none or it cannot be read
    stamp: tuple[int, int, int] | None  # manifest_stamp() taken before the manifest was read
    files: tuple[CorpusFile, ...]  # the corpus's supported files, as scanned
    skipped: tuple[Skipped, ...]  # files the scan will not read, with reasons
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    to_load: tuple[CorpusFile, ...] = ()  # files to read, split and embed
    full_rebuild: str | None = None  # why every document is re-embedded, when it is
    move: str | None = None  # why the vectors are copied to another vector store, when they are
    unusable: str | None = None  # why the index on disk cannot be used as it is (unreadable, files missing)
    mismatch: str | None = None  # why its vectors cannot be reused under these settings (model, splitter)
    requested: bool = False  # a full rebuild was asked for

    @property
    def corpus_changed(self) -> bool:
        """Whether documents were added, changed or removed since the manifest was written."""
        return bool(self.added or self.changed or self.removed)

    def changes(self) -> str:
        """What changed in the corpus, in words: "2 added, 1 removed" ("" when nothing did)."""
        counts = (("added", self.added), ("changed", self.changed), ("removed", self.removed))
        return ", ".join(f"{len(v)} {k}" for k, v in counts if v)

    def rebuild_all(self, reason: str) -> BuildPlan:
        """This plan as a full rebuild (re-embed every file, in the configured store) because of ``reason``."""
        return replace(self, to_load=self.files, full_rebuild=reason, move=None)


def plan(settings: Settings, *, full: bool = False) -> BuildPlan:
    """Decide what a build of ``settings.corpus_dir`` into ``settings.index_dir`` must do (hashes the corpus).

    Odd entries in the corpus (pipes, symlink loops, names that are not UTF-8, files over the size limit) are
    in ``skipped`` with their reasons; none of them stops the plan.
    """
    corpus, directory = settings.corpus_dir, settings.index_dir
    if not corpus.is_dir():
        raise CorpusMissing(
            f"corpus folder {corpus} does not exist; create it and add .txt, .md, .html or .pdf files, "
            "or point ADVISOR_CORPUS / --corpus at your documents"
        )
    # Files over the size limit are skipped by their size here, never read or hashed.
    files, skipped = scan_corpus(corpus, settings.max_file_bytes)
    manifest: Manifest | None = None
    unusable = mismatch = move = None
    stamp = manifest_stamp(directory)
    try:
        manifest = read_manifest(directory)
    except IndexMissing:
        pass
    except (IndexCorrupt, IndexMismatch) as exc:
        unusable = str(exc)
    if manifest is not None:
        missing = [name for name in manifest.file_names() if not (directory / name).is_file()]
        # Sizes only: cheap enough for every status check; the checksums are verified when the index is opened.
        resized = [e.name for e in manifest.files.values() if e.name not in missing and _size(directory / e.name) != e.bytes]
        if missing:
            unusable = f"index files missing from {directory}: {', '.join(missing)}; {REBUILD}"
        elif resized:
            unusable = f"index files in {directory} are not the size the manifest says: {', '.join(resized)}; {REBUILD}"
        mismatch = embedding_mismatch(manifest, settings)
        move = store_mismatch(manifest.store, settings)
    why = "a full rebuild was requested" if full else mismatch
    if unusable:  # whatever else was asked: nothing on disk can be reused
        # Said while rebuilding it: the advice to run a rebuild (kept for `--status`) would tell the user to do
        # what is being done.
        why = f"the existing index cannot be used ({without_fix(unusable)})"
    documents = manifest.documents if manifest else {}
    old_skipped = manifest.skipped if manifest else {}
    added, changed, unchanged, to_load = [], [], [], []
    for f in files:
        old = documents.get(f.source)
        if old is not None and old.sha256 == f.sha256:
            unchanged.append(f.source)
            if why:
                to_load.append(f)
            continue
        # Files skipped last time are retried (a setting such as the size limit may have changed),
        # but one with the same bytes as then is no change to the corpus. One that was over a bound on reading
        # (time, memory, characters) is not read again until it changes or that bound is raised: each build
        # would spend that time on it again.
        entry = old_skipped.get(f.source)
        if not why and entry is not None and entry.sha256 == f.sha256 and still_over_bound(entry.reason, settings):
            skipped.append(Skipped(f.source, entry.reason, f.sha256))
            continue
        to_load.append(f)
        if old is not None:
            changed.append(f.source)
        elif entry is None or entry.sha256 != f.sha256:
            added.append(f.source)
    present = {f.source for f in files}
    return BuildPlan(
        settings=settings,
        manifest=manifest,
        stamp=stamp,
        files=tuple(files),
        skipped=tuple(skipped),
        added=tuple(added),
        changed=tuple(changed),
        removed=tuple(source for source in documents if source not in present),
        unchanged=tuple(unchanged),
        to_load=tuple(to_load),
        full_rebuild=why,
        move=None if why else move,
        unusable=unusable,
        mismatch=mismatch,
        requested=full,
    )


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


def embedding_mismatch(manifest: Manifest, settings: Settings) -> str | None:
    """Why the index's vectors cannot be reused under ``settings`` (another model or splitter), or None."""
    built_with = manifest.model.name
    if built_with != settings.model:
        return f"the model changed from '{built_with}' to '{settings.model}'"
    old, new = manifest.splitter, splitter_config(settings)
    if old != new:
        diffs = ", ".join(f"{k} {old.get(k)} → {new[k]}" for k in new if old.get(k) != new[k])
        return f"the splitter settings changed ({diffs})"
    return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1
