"""The index, retrieval and several app replicas on Milvus: real Milvus Lite collections and server, no mocks."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import advisor.service
from advisor.cli import main as cli_main
from advisor.config import PROJECT_ROOT
from advisor.errors import IndexCorrupt, IndexMismatch, StoreUnavailable
from advisor.index import Index, build
from advisor.manifest import MANIFEST
from advisor.stores.milvus import _client, server_uri
from advisor.retrieve import POOL, Retriever
from advisor.service import AdvisorService
from conftest import DATA, GOOD_FILES, SEED_CORPUS, free_port, wait_until_serving

NEW_DOC = "Quokka Salaries\n\nA quokka-themed survey found that platypus engineers earn 42 seashells per week.\n"
EDITED_DOC = "Quokka Salaries\n\nThe survey now says platypus engineers earn 99 sea urchins per week.\n"


def raw_manifest(directory):
    """manifest.json as written, for checking the on-disk format and for damaging it on purpose."""
    return json.loads((directory / MANIFEST).read_text())


def lite(make_settings, tmp_path: Path, **overrides):
    return make_settings(vector_store=str(tmp_path / "vectors.db"), **overrides)


def collection_of(settings) -> str:
    return raw_manifest(settings.index_dir)["store"]["collection"]


def listed_ids(settings) -> set[int]:
    return {int(i) for doc in raw_manifest(settings.index_dir)["documents"].values() for i in doc["chunk_ids"]}


def test_an_index_in_milvus_lite_answers_like_the_faiss_one(make_settings, tmp_path, embedder):
    settings = lite(make_settings, tmp_path, corpus_dir=SEED_CORPUS)
    report = build(settings, embedder=embedder)
    manifest = raw_manifest(settings.index_dir)
    assert manifest["store"] == {
        "kind": "milvus",
        "uri": str(tmp_path / "vectors.db"),
        "collection": collection_of(settings),
        "index": "FLAT",
    }
    # The passage vectors are in the collection; only the statement vectors (read whole per passage) are a file.
    assert set(manifest["files"]) == {"chunks", "statements"}
    assert not list(settings.index_dir.glob("vectors-*"))
    index = Index.load(settings.index_dir, model=settings.model, settings=settings)
    assert index.store.count() == len(index.chunks) == report.chunks_total == 47
    assert index.store.ids() == set(index.chunks)
    hits = Retriever(index, embedder).search("What does an entry-level machine learning engineer earn?", 3)
    assert "Entry Level $85,000" in hits[0].chunk.text
    assert build(settings, embedder=embedder).wrote is False  # nothing changed: nothing written


def test_the_eval_command_shows_the_same_retrieval_results_with_faiss_and_milvus(seed_settings, tmp_path, capsys, monkeypatch):
    for name in [k for k in os.environ if k.startswith("ADVISOR_")]:
        monkeypatch.delenv(name)
    runs = {}
    for name, index_dir, store in (
        ("faiss", seed_settings.index_dir, "faiss"),
        ("milvus", tmp_path / "index", str(tmp_path / "vectors.db")),
    ):
        code = cli_main(["eval", "--json", "--corpus", str(SEED_CORPUS), "--index", str(index_dir), "--vector-store", store])
        out = capsys.readouterr().out.strip().splitlines()[-1]
        assert code == 0
        runs[name] = json.loads(out)
    assert runs["faiss"]["store"].startswith("FAISS (flat, 47 vectors)")
    assert runs["milvus"]["store"].startswith("Milvus collection career_advisor_")
    # Every question of the dev set ranked the same passages in the same order and got the same answer.
    assert runs["faiss"]["fingerprint"] == runs["milvus"]["fingerprint"]
    assert runs["faiss"]["advisor"] == runs["milvus"]["advisor"]
    thresholds = json.loads((PROJECT_ROOT / "eval" / "thresholds.json").read_text())
    assert runs["milvus"]["advisor"]["hit_at_1"] >= thresholds["hit_at_1"]


def test_incremental_rebuilds_update_the_collection_in_place(corpus, make_settings, tmp_path, embedder):
    settings = lite(make_settings, tmp_path)
    build(settings, embedder=embedder)
    collection = collection_of(settings)
    (corpus / "quokka.md").write_text(NEW_DOC)
    report = build(settings, embedder=embedder)
    assert report.added == ("corpus/quokka.md",) and report.chunks_embedded == 1
    assert collection_of(settings) == collection  # the same collection, updated in place
    index = Index.load(settings.index_dir, settings=settings)
    assert index.store.ids() == listed_ids(settings)
    hits = Retriever(index, embedder).search("platypus engineers seashells", 1)
    assert "42 seashells" in hits[0].chunk.text
    old_ids = set(index.documents["corpus/quokka.md"].chunk_ids)

    (corpus / "quokka.md").write_text(EDITED_DOC)
    report = build(settings, embedder=embedder)
    assert report.changed == ("corpus/quokka.md",) and report.chunks_embedded == 1
    index = Index.load(settings.index_dir, settings=settings)
    assert index.store.ids() == listed_ids(settings) and not old_ids & index.store.ids()
    assert "99 sea urchins" in Retriever(index, embedder).search("platypus engineers pay", 1)[0].chunk.text

    (corpus / "quokka.md").unlink()
    (corpus / "career-notes.md").unlink()
    report = build(settings, embedder=embedder)
    assert set(report.removed) == {"corpus/quokka.md", "corpus/career-notes.md"} and report.chunks_embedded == 0
    index = Index.load(settings.index_dir, settings=settings)
    assert index.store.ids() == listed_ids(settings) == set(index.chunks)
    assert collection_of(settings) == collection


def test_vectors_no_manifest_lists_are_skipped_by_search_and_deleted_by_the_next_build(corpus, make_settings, tmp_path, embedder):
    """A build elsewhere that added vectors before its swap (or stopped half-way) leaves rows this index does not list."""
    settings = lite(make_settings, tmp_path)
    build(settings, embedder=embedder)
    index = Index.load(settings.index_dir, settings=settings)
    retriever = Retriever(index, embedder)
    question = "What do ML engineers earn?"
    before = [h.chunk.id for h in retriever.search(question, 5)]
    query = embedder.embed_query(question)
    strangers = list(range(1, 2 * POOL + 1))  # more unknown rows than one search returns, all closer than any passage
    index.store.add("corpus/elsewhere.md", strangers, np.repeat(query, len(strangers), axis=0))
    assert index.store.count() == len(index.chunks) + len(strangers)
    assert [h.chunk.id for h in retriever.search(question, 5)] == before
    assert Index.load(settings.index_dir, settings=settings).store.count() > len(index.chunks)  # still loads

    (corpus / "quokka.md").write_text(NEW_DOC)
    build(settings, embedder=embedder)
    assert Index.load(settings.index_dir, settings=settings).store.ids() == listed_ids(settings)


def test_changing_the_store_moves_the_vectors_without_re_embedding(corpus, make_settings, tmp_path, embedder):
    faiss = make_settings()
    build(faiss, embedder=embedder)
    before = Index.load(faiss.index_dir)
    ids = sorted(before.chunks)
    settings = lite(make_settings, tmp_path)
    with pytest.raises(IndexMismatch, match="the vector store changed from FAISS"):
        Index.load(settings.index_dir, settings=settings)
    (corpus / "quokka.md").write_text(NEW_DOC)  # and one new document, which is embedded
    report = build(settings, embedder=embedder)
    assert report.moved.startswith("the vector store changed from FAISS (a file in the index folder) to Milvus at")
    assert report.full_rebuild is None and report.chunks_embedded == 1 and report.added == ("corpus/quokka.md",)
    assert not list(settings.index_dir.glob("vectors-*"))  # the FAISS file went with its generation
    moved = Index.load(settings.index_dir, settings=settings)
    assert moved.store.ids() == set(moved.chunks) == set(ids) | set(moved.documents["corpus/quokka.md"].chunk_ids)
    assert np.allclose(moved.store.vectors(ids), before.store.vectors(ids), atol=1e-6)
    collection = collection_of(settings)

    back = build(faiss, embedder=embedder)  # and back: the collection is dropped
    assert back.moved.startswith("the vector store changed from Milvus at") and back.chunks_embedded == 0
    assert collection not in _client(server_uri(settings.vector_store), "").list_collections()
    assert np.allclose(Index.load(faiss.index_dir).store.vectors(ids), before.store.vectors(ids), atol=1e-6)


def test_a_full_build_makes_a_new_collection_and_drops_the_old(corpus, make_settings, tmp_path, embedder):
    settings = lite(make_settings, tmp_path)
    build(settings, embedder=embedder)
    first = collection_of(settings)
    report = build(settings, full=True, embedder=embedder)
    second = collection_of(settings)
    assert report.full_rebuild == "a full rebuild was requested" and second != first
    client = _client(server_uri(settings.vector_store), "")
    assert second in client.list_collections() and first not in client.list_collections()
    other = lite(make_settings, tmp_path, milvus_collection="another_corpus")
    report = build(other, embedder=embedder)
    assert "collection career_advisor to Milvus at" in report.moved and report.chunks_embedded == 0
    assert collection_of(other).startswith("another_corpus_") and second not in client.list_collections()


def test_a_dropped_collection_is_rebuilt_and_an_unreachable_server_is_named(corpus, make_settings, tmp_path, embedder):
    settings = lite(make_settings, tmp_path)
    build(settings, embedder=embedder)
    _client(server_uri(settings.vector_store), "").drop_collection(collection_of(settings))
    with pytest.raises(IndexCorrupt, match=f"the Milvus collection {collection_of(settings)} at .* is gone"):
        Index.load(settings.index_dir, settings=settings)
    report = build(settings, embedder=embedder)
    assert "is gone" in report.full_rebuild and Index.load(settings.index_dir, settings=settings).store.count() > 0

    port = free_port()  # nothing listens there
    down = make_settings(index_dir=tmp_path / "index2", vector_store=f"milvus://127.0.0.1:{port}")
    with pytest.raises(StoreUnavailable, match=f"cannot reach Milvus at http://127.0.0.1:{port} .*start the server"):
        build(down, embedder=embedder)
    assert not (down.index_dir / MANIFEST).exists()


def test_a_milvus_lite_file_held_by_another_process_is_refused_with_a_message(corpus, make_settings, tmp_path, embedder):
    path = tmp_path / "deeper" / "vectors.db"  # folders are created as needed
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from advisor.stores.milvus import MilvusStore; "
                "MilvusStore.create_collection(sys.argv[1], '', 'held', 4); "
                "print('ready', flush=True); time.sleep(60)"
            ),
            str(path),
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreUnavailable, match=f"cannot open the Milvus Lite file {path} .*it is in use"):
            build(make_settings(vector_store=str(path)), embedder=embedder)
    finally:
        holder.kill()
        holder.wait()


def test_a_second_service_on_the_same_index_serves_what_the_first_rebuilt(corpus, make_settings, tmp_path, embedder, monkeypatch):
    monkeypatch.setattr(advisor.service, "CHECK_SECONDS", 0.0)
    settings = lite(make_settings, tmp_path)
    build(settings, embedder=embedder)
    first, second = AdvisorService(settings), AdvisorService(settings)
    question = "How many seashells do platypus engineers earn?"
    assert "42 seashells" not in second.ask(question).text
    (corpus / "quokka.md").write_text(NEW_DOC)
    assert first.rebuild(wait=True) and first.rebuild_state().ok
    answer = second.ask(question)
    assert "42 seashells" in answer.text and answer.citations[0].chunk.source == "corpus/quokka.md"
    assert second.index.manifest.build_id == first.index.manifest.build_id


def test_a_question_whose_collection_was_dropped_by_a_full_build_elsewhere_is_answered_from_the_new_one(
    corpus, make_settings, tmp_path, embedder, monkeypatch
):
    monkeypatch.setattr(advisor.service, "CHECK_SECONDS", 3600.0)  # no look at the manifest before the search
    settings = lite(make_settings, tmp_path)
    build(settings, embedder=embedder)
    service = AdvisorService(settings)
    old = collection_of(settings)
    build(settings, full=True, embedder=embedder)  # as another replica's full rebuild would: the old collection goes
    assert old not in _client(server_uri(settings.vector_store), "").list_collections()
    with pytest.raises(IndexCorrupt, match=f"collection {old} .* is gone"):
        service.advisor.ask("What skills do machine learning engineers need?")  # the loaded index alone fails...
    answer = service.ask("What skills do machine learning engineers need?")
    assert answer.grounded and service.index.manifest.store.collection == collection_of(settings) != old


# --- several app.py processes on one Milvus server -------------------------------------------------------------------


def start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def test_two_app_replicas_share_one_milvus_server_and_both_serve_a_rebuild(tmp_path):
    """Milvus Lite's own gRPC server stands in for a Milvus server; the replicas share corpus/ and index/."""
    from gradio_client import Client

    corpus = tmp_path / "corpus"
    shutil.copytree(SEED_CORPUS, corpus)
    milvus_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVISOR_")}
    env |= {
        "PYTHONUNBUFFERED": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "ADVISOR_VECTOR_STORE": f"milvus://127.0.0.1:{milvus_port}",
        "ADVISOR_CORPUS": str(corpus),
        "ADVISOR_INDEX": str(tmp_path / "index"),
        "ADVISOR_FEEDBACK": str(tmp_path / "feedback"),
    }
    milvus_cli = Path(sys.executable).with_name("milvus-lite")
    processes = [
        start(
            [
                str(milvus_cli),
                "server",
                "--data-dir",
                str(tmp_path / "milvus-data"),
                "--host",
                "127.0.0.1",
                "--port",
                str(milvus_port),
            ],
            tmp_path / "milvus.log",
            env,
        )
    ]
    try:
        replicas = []
        for name in ("a", "b"):  # started together: one builds the index, the other waits for its lock
            port = free_port()
            processes.append(start([sys.executable, "app.py", "--port", str(port)], tmp_path / f"{name}.log", env))
            replicas.append((processes[-1], f"http://127.0.0.1:{port}/", tmp_path / f"{name}.log"))
        for process, url, log in replicas:
            wait_until_serving(process, url, log)
        logs = [log.read_text() for _, _, log in replicas]
        assert sum("Embedding 47 passages" in text for text in logs) == 1, logs  # embedded once, by one of them
        assert all("vectors in Milvus at http://127.0.0.1:" in text for text in logs), logs
        clients = [Client(url, verbose=False) for _, url, _ in replicas]
        for client in clients:
            assert "$85,000 [1]" in client.predict("What do entry-level ML engineers earn?", api_name="/chat")

        shutil.copy(DATA / GOOD_FILES[0], corpus / "career-notes.md")
        (corpus / "quokka.md").write_text(NEW_DOC)
        rebuild = subprocess.run(
            [sys.executable, "-m", "advisor", "index", "--json"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert rebuild.returncode == 0, rebuild.stderr
        assert set(json.loads(rebuild.stdout.splitlines()[-1])["added"]) == {"corpus/quokka.md", "corpus/career-notes.md"}
        time.sleep(advisor.service.CHECK_SECONDS + 0.5)
        for client in clients:  # both replicas answer from the new index without a restart
            answer = client.predict("How many seashells do platypus engineers earn?", api_name="/chat")
            assert "42 seashells" in answer, answer
            assert "$170,000" in Client(client.src, verbose=False).predict(
                "What is the average salary of a senior ML engineer?", api_name="/chat"
            )  # and the rest is still there

        processes[0].terminate()  # the Milvus server goes down: the chat says so, and the replica keeps running
        processes[0].wait(20)
        down = clients[0].predict("What skills do ML engineers need?", api_name="/chat")
        assert down.startswith("Sorry, I cannot search the documents right now: Milvus") and "failed to search" in down
        assert all(process.poll() is None for process, _, _ in replicas)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_a_garbage_milvus_lite_file_is_refused_with_how_to_fix_it(corpus, make_settings, tmp_path, embedder):
    path = tmp_path / "vectors.db"
    path.write_bytes(b"not a database\x00" * 100)
    with pytest.raises(StoreUnavailable, match=f"cannot open the Milvus Lite file {path} .*delete {path} and run"):
        build(make_settings(vector_store=str(path)), embedder=embedder)
