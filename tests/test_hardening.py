"""Bad corpus files, damaged indexes, concurrent builds and empty corpora: nothing lost, clear messages."""

import json
import threading

import pytest

from advisor.config import ConfigError, Settings
from advisor.errors import IndexCorrupt
from advisor.index import Index, build
from advisor.manifest import MANIFEST
from advisor.service import AdvisorService
from conftest import DATA, advisor_cli


def raw_manifest(directory):
    """manifest.json as written, for checking the on-disk format and for damaging it on purpose."""
    return json.loads((directory / MANIFEST).read_text())


def test_bad_files_are_skipped_and_no_passage_is_empty(corpus, make_settings, embedder):
    (corpus / "huge.txt").write_bytes(b"Huge\n\n" + b"word " * (10 * 1024 * 1024))  # 50 MB
    (corpus / "blob.txt").write_text("Blob\n\n" + "x" * 5_000_000 + "\n")  # one 5 MB line without spaces
    (corpus / "mixed.txt").write_text("Mixed\n\nReal sentence about pay. " + "A" * 3000 + " Another real sentence.\n")
    settings = make_settings()
    report = build(settings, embedder=embedder)
    reasons = {s.source: s.reason for s in report.skipped}
    assert reasons["corpus/huge.txt"].startswith("file is 50.0 MB, over the 20 MB limit")
    assert "ADVISOR_MAX_FILE_MB" in reasons["corpus/huge.txt"]
    assert {"corpus/binary-data.txt", "corpus/empty.txt", "corpus/whitespace-only.txt"} <= set(reasons)
    index = Index.load(settings.index_dir)
    assert all(c.text.strip() for c in index.chunks.values())
    assert max(len(c.text) for c in index.chunks.values()) <= settings.chunk_tokens * 12
    mixed = [c.text for c in index.chunks_of("corpus/mixed.txt")]
    assert "Real sentence about pay." in " ".join(mixed) and "AAAA" not in " ".join(mixed)


def test_two_builds_at_once_make_one_consistent_index(corpus, make_settings, embedder):
    settings = make_settings()
    reports, errors = [], []

    def run() -> None:
        try:
            reports.append(build(settings, embedder=embedder, wait=120))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(reports) == 2
    assert sorted(r.wrote for r in reports) == [False, True]  # the second waited, then found it up to date
    index = Index.load(settings.index_dir)
    assert set(index.chunks) == index.store.ids()


def test_damaged_or_mismatched_files_are_named_and_rebuilt(corpus, make_settings, embedder):
    settings = make_settings()
    build(settings, embedder=embedder)
    manifest = raw_manifest(settings.index_dir)
    vectors = settings.index_dir / manifest["files"]["vectors"]["name"]
    vectors.write_bytes(b"")
    with pytest.raises(IndexCorrupt, match=f"{vectors.name} is 0 bytes"):
        Index.load(settings.index_dir)
    assert build(settings, embedder=embedder).full_rebuild  # no crash loop: the next build repairs it
    # Chunk metadata from another build beside this build's vectors.
    manifest = raw_manifest(settings.index_dir)
    chunks = settings.index_dir / manifest["files"]["chunks"]["name"]
    data = json.loads(chunks.read_text())
    data["chunks"] = data["chunks"][:-1]
    chunks.write_text(json.dumps(data))
    with pytest.raises(IndexCorrupt, match=f"{chunks.name} does not match .*checksum"):
        Index.load(settings.index_dir)
    assert build(settings, embedder=embedder).full_rebuild
    # A manifest claiming another dimension.
    manifest = raw_manifest(settings.index_dir)
    manifest["model"]["dim"] = 768
    (settings.index_dir / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexCorrupt, match="holds 384-d vectors, manifest.json says 768"):
        Index.load(settings.index_dir)
    rebuilt = build(settings, embedder=embedder)
    assert rebuilt.full_rebuild and rebuilt.chunks_embedded == rebuilt.chunks_total
    Index.load(settings.index_dir, model=settings.model)


def test_an_empty_corpus_says_there_is_nothing_to_search(tmp_path, make_settings, embedder):
    (tmp_path / "corpus").mkdir()
    settings = make_settings()
    build(settings, embedder=embedder)
    service = AdvisorService(settings)
    answer = service.ask("What do ML engineers earn?")
    assert answer.kind == "empty" and "nothing to search yet" in answer.text and not answer.citations
    result = advisor_cli(
        "ask", "What do ML engineers earn?", "--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir)
    )
    assert result.returncode == 0 and "nothing to search yet" in result.stdout and "Traceback" not in result.stderr


def test_auth_setting_is_user_and_password():
    assert Settings.load(env={"ADVISOR_AUTH": "ann:s3cret"}).auth == "ann:s3cret"
    with pytest.raises(ConfigError, match="ADVISOR_AUTH must be 'user:password'"):
        Settings.load(env={"ADVISOR_AUTH": "ann"})


def test_a_hostile_document_is_indexed_as_plain_text(tmp_path, make_settings, embedder):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "notes.md").write_text((DATA / "hostile-notes.md").read_text())
    settings = make_settings()
    build(settings, embedder=embedder)
    text = " ".join(c.text for c in Index.load(settings.index_dir).chunks.values())
    assert '<script>alert("xss")</script>' in text  # kept verbatim as data; every page escapes it


def test_long_messages_take_turns_and_never_hold_short_questions_up(tmp_path, make_settings, embedder, monkeypatch):
    import threading
    import time

    import advisor.chat
    from advisor.service import LONG_MESSAGE_CHARS

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "pay.md").write_text("# Pay\n\nWelders earn 25 dollars an hour.\n")
    settings = make_settings()
    build(settings, embedder=embedder)
    service = AdvisorService(settings)
    long = "What do welders earn? " + "My background, at length. " * (LONG_MESSAGE_CHARS // 20)
    release, entered = threading.Event(), threading.Event()
    real = advisor.chat.Advisor.ask

    def slow(self, question, history=()):
        if question == long:
            entered.set()
            release.wait(30)
        return real(self, question, history)

    monkeypatch.setattr(advisor.chat.Advisor, "ask", slow)
    first = []
    worker = threading.Thread(target=lambda: first.append(service.ask(long)))
    worker.start()
    assert entered.wait(30)
    started = time.monotonic()
    assert service.ask("What do welders earn?").citations  # a short question goes straight in
    assert service.ask("x " * 4_100).kind == "too_long"  # one over the limit is refused at once, not queued
    assert service.ask(long + " Again.").kind == "busy"  # a second long one is asked to come back...
    assert time.monotonic() - started < 10  # ...after a short wait, not when the first one is done
    release.set()
    worker.join(30)
    assert first[0].citations
    answered = service.ask(long)  # its turn comes at most a second after the last one started
    assert answered.kind != "busy" and answered.citations
