"""The VectorStore contract, run against both implementations: FAISS and a real Milvus Lite collection."""

import numpy as np
import pytest

from advisor.config import Settings
from advisor.stores import create_store, doc_key
from advisor.stores.faiss import FaissRecord, FaissStore

DIM = 16


def unit(rows: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(params=["faiss", "milvus-lite"])
def store(request, tmp_path):
    vector_store = "faiss" if request.param == "faiss" else str(tmp_path / "vectors.db")
    return create_store(Settings.load(env={}, vector_store=vector_store), DIM)


def test_add_search_count_and_vectors(store):
    a, b = unit(5, 1), unit(3, 2)
    store.add("a.md", [10, 11, 12, 13, 14], a)
    store.add('dir/b "quoted".txt', [20, 21, 22], b)
    assert store.count() == 8 and store.ids() == {10, 11, 12, 13, 14, 20, 21, 22}
    found = store.search(a[2:3], 8)
    expected = sorted(zip([10, 11, 12, 13, 14, 20, 21, 22], np.vstack([a, b]) @ a[2]), key=lambda p: -p[1])
    assert [i for i, _ in found] == [i for i, _ in expected]  # exact: the same order as brute force
    assert np.allclose([s for _, s in found], [s for _, s in expected], atol=1e-5)
    assert found[0] == (12, pytest.approx(1.0, abs=1e-5))
    assert [i for i, _ in store.search(a[2:3], 3)] == [i for i, _ in found[:3]]
    assert np.allclose(store.vectors([21, 10]), np.vstack([b[1], a[0]]), atol=1e-6)
    assert store.search(a[:1], 0) == []


def test_add_replaces_the_vectors_held_under_the_same_ids(store):
    store.add("a.md", [1, 2], unit(2, 3))
    replacement = unit(2, 4)
    store.add("a.md", [1, 2], replacement)
    assert store.count() == 2
    assert np.allclose(store.vectors([1, 2]), replacement, atol=1e-6)


def test_delete_by_document_keeps_other_documents_and_the_kept_ids(store):
    store.add("a.md", [1, 2, 3], unit(3, 5))
    store.add("b.md", [4, 5], unit(2, 6))
    assert store.delete("a.md", keep={2}) == 2
    assert store.ids() == {2, 4, 5}
    assert store.delete("b.md") == 2 and store.ids() == {2}
    assert store.delete("never-added.md") == 0
    assert {i for i, _ in store.search(unit(1, 7), 10)} == {2}
    store.add("c.md", [6, 7], unit(2, 9))
    store.add("d.md", [8], unit(1, 10))
    assert store.delete("c.md", "d.md", "never-added.md", keep={7}) == 2 and store.ids() == {2, 7}


def test_the_record_and_label_name_the_kind_and_count(store):
    store.add("a.md", [1], unit(1, 8))
    record = store.record()
    assert record.to_json()["kind"] == record.kind and store.count() == 1 and store.dim == DIM
    if isinstance(store, FaissStore):
        assert record == FaissRecord("flat") and record.to_json() == {"kind": "faiss", "index": "flat"}
        assert store.label() == "FAISS (flat, 1 vectors)"
    else:
        assert record.kind == "milvus" and record.index == "FLAT" and record.collection.startswith("career_advisor_")
        assert store.label().startswith(f"Milvus collection {record.collection} at ")


def test_doc_key_is_a_stable_63_bit_number():
    assert doc_key("corpus/a.md") == doc_key("corpus/a.md") != doc_key("corpus/b.md")
    assert 0 <= doc_key("x") < 2**63
