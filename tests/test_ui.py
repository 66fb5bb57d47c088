import json
import shutil
import threading

from advisor.chat import Advisor
from advisor.config import PROJECT_ROOT
from advisor.evaluate import read_golden
from advisor.feedback import record_vote
from advisor.index import build
from advisor.service import AdvisorService
from advisor.types import Answer, Chunk, Citation, Hit
from advisor.render import passage_html
from advisor.ui import render_sources
from conftest import DATA

HOSTILE = '<script>alert("xss")</script> and <img src=x onerror="alert(1)"> & ![p](http://remote.invalid/p.png)'


def test_sources_panel_escapes_document_text_and_marks_quotes():
    chunk = Chunk(7, "corpus/<b>bad</b>.md", "Title <i>x</i>", "Sec <u>", f"Intro. {HOSTILE} Quoted part.", 0, 10)
    answer = Answer("x [1].", (Citation(1, Hit(chunk, 1.0, 1), ("Quoted part.",)),))
    panel = render_sources(answer)
    assert "<script" not in panel and "<img" not in panel and "<b>" not in panel and "<i>" not in panel
    assert "&lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt;" in panel and "&lt;img src=x onerror=" in panel
    assert "<mark>Quoted part.</mark>" in panel and 'class="src src-1"' in panel
    assert render_sources(None).startswith('<div class="empty">')


def test_overlapping_quotes_are_marked_once():
    assert passage_html("a <b> c d", ("<b> c", "c d")) == "<p>a <mark>&lt;b&gt; c d</mark></p>"
    assert passage_html("abc", ("zzz",)) == "<p>abc</p>"


def test_a_vote_is_saved_in_a_shape_eval_reads(tmp_path, seed_settings):
    advisor = Advisor(seed_settings)
    history = [
        {"role": "user", "content": "What is the entry-level salary?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Entry Level — $85,000 [1]."}]},
    ]
    answer = advisor.ask("And at the senior level?", history)
    path = record_vote(tmp_path, "And at the senior level?", history, answer, liked=False)
    entry = json.loads(path.read_text().splitlines()[-1])
    assert entry["vote"] == "down" and entry["kind"] == "followup" and entry["answer"] == answer.text
    assert entry["history"][1] == {"role": "assistant", "content": "Entry Level — $85,000 [1]."}
    assert entry["sources"][0]["text"] == answer.citations[0].chunk.text and entry["time"]
    # The review step: a person adds what a correct source and answer must contain; eval then takes the file.
    entry |= {"evidence": ["Senior Level $170,000"], "answer_any": ["$170,000"]}
    path.write_text(json.dumps(entry) + "\n")
    (item,) = read_golden(path)
    assert item.kind == "followup" and item.history[0]["content"] == "What is the entry-level salary?"
    decline = record_vote(tmp_path, "How do I bake bread?", [], advisor.ask("How do I bake bread?"), liked=True)
    assert json.loads(decline.read_text().splitlines()[-1])["kind"] == "out_of_scope"


def test_rebuild_swaps_the_new_index_in_while_questions_keep_being_answered(tmp_path, make_settings, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("ml-engineer-career-guide-statistics-and-faq.txt",):
        shutil.copy(PROJECT_ROOT / "corpus" / name, corpus / name)
    settings = make_settings()
    build(settings, embedder=embedder)
    service = AdvisorService(settings)
    assert service.status().fresh
    (corpus / "visa.txt").write_text(
        "Visa Sponsorship\n\nSome employers sponsor work visas for machine learning engineers who relocate from abroad.\n"
    )
    status = service.status()
    assert not status.fresh and status.added == ("corpus/visa.txt",)
    answers: list[Answer] = []
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            answers.append(service.ask("What is the average salary for a senior level ML engineer?"))

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        assert service.rebuild(wait=True)
    finally:
        stop.set()
        asker.join()
    assert answers and all(a.grounded and "$170,000" in a.text for a in answers)
    assert service.rebuild_state().message.startswith("Index rebuilt") and service.status().fresh
    visa = service.ask("Do employers sponsor work visas?")
    assert visa.grounded and "visa" in visa.text


def test_the_header_names_the_documents_indexed_now_and_never_renders_their_markup(tmp_path, make_settings, embedder):
    from advisor.ui import ChatUI

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(DATA / "career-notes.md", corpus)
    settings = make_settings()
    build(settings, embedder=embedder)
    page = ChatUI(AdvisorService(settings))
    *_, header = page.status()
    assert "Career Notes" in header and "Pay Guide" not in header
    # A document added since, with Markdown in its title: after the rebuild the header the status poll
    # returns names it, as literal text (no link, no image fetched from elsewhere).
    (corpus / "pay.txt").write_text(
        "Pay Guide ![x](https://tracker.example/p.png) [sign in](https://evil.example) www.evil.example\n\n"
        "Juniors earn $50,000 a year.\n"
    )
    assert page.service.rebuild(wait=True)
    *_, header = page.status()
    assert "Career Notes" in header and "Pay Guide" in header
    assert "tracker.example" in header and "](" not in header and "<img" not in header  # said, not rendered
    assert "evil.example" in header and "https:" not in header and "www." not in header  # and not linked bare


def test_documents_added_and_removed_during_a_rebuild_are_in_the_index_when_the_rebuilds_end(
    tmp_path, make_settings, embedder, monkeypatch
):
    import time

    import advisor.service

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(DATA / "career-notes.md", corpus)
    (corpus / "old.txt").write_text("Old Notes\n\nQuokka keepers earn 12 dollars an hour.\n")
    settings = make_settings()
    build(settings, embedder=embedder)
    service = AdvisorService(settings)
    queued = []

    def build_then_an_upload_and_a_removal_arrive(*args, **kwargs):
        report = build(*args, **kwargs)  # this build read the corpus before the two changes below
        if not queued:
            (corpus / "second.txt").write_text("Second Notes\n\nPlatypus keepers earn 45 dollars an hour.\n")
            (corpus / "old.txt").unlink()
            queued.append(service.rebuild())  # asked while this one runs
        return report

    monkeypatch.setattr(advisor.service, "build", build_then_an_upload_and_a_removal_arrive)
    (corpus / "first.txt").write_text("First Notes\n\nWombat keepers earn 30 dollars an hour.\n")
    assert service.rebuild()
    deadline = time.monotonic() + 120
    while (not queued or service.rebuild_state().running) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert queued == [False]  # one was running: the request was queued, not started
    assert service.rebuild_state().ok and service.status().fresh
    assert set(service.index.documents) == {"corpus/career-notes.md", "corpus/first.txt", "corpus/second.txt"}
    assert "45 dollars" in service.ask("What do platypus keepers earn?").text
    assert "12 dollars" not in service.ask("What do quokka keepers earn?").text


def test_a_failed_rebuild_keeps_serving_the_old_index(tmp_path, make_settings, embedder):
    (tmp_path / "corpus").mkdir()
    shutil.copy(DATA / "career-notes.md", tmp_path / "corpus")
    settings = make_settings()
    build(settings, embedder=embedder)
    service = AdvisorService(settings)
    shutil.rmtree(tmp_path / "corpus")  # the rebuild cannot find its corpus
    assert service.rebuild(wait=True)
    state = service.rebuild_state()
    assert not state.ok and "Rebuild failed" in state.message and "previous index" in state.message
    assert service.ask("What should I ask before the final interview?").grounded


def test_request_bodies_over_the_limit_are_refused_unread():
    """BodyLimit answers 413 from the declared length, or as soon as a body without one runs over."""
    import asyncio

    from advisor.ui import BodyLimit

    def call(headers, chunks, path="/gradio_api/queue/join"):
        reached, sent, read = [], [], []

        async def app(scope, receive, send):
            while True:
                message = await receive()
                read.append(len(message.get("body", b"")))
                if not message.get("more_body"):
                    break
            reached.append(True)
            await send({"type": "http.response.start", "status": 200, "headers": []})

        async def receive():
            body = chunks.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(chunks)}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "path": path, "headers": headers}
        asyncio.run(BodyLimit(app, max_bytes=100, exempt=("/gradio_api/upload",))(scope, receive, send))
        return sent[0]["status"], bool(reached), sum(read)

    assert call([(b"content-length", b"50")], [b"x" * 50]) == (200, True, 50)
    assert call([(b"content-length", b"5000000")], [b"x" * 60, b"x" * 60]) == (413, False, 0)  # not a byte read
    assert call([], [b"x" * 60, b"x" * 60, b"x" * 60])[:2] == (413, False)  # chunked: stopped once over 100
    assert call([(b"content-length", b"abc")], [b""]) == (413, False, 0)
    assert call([(b"content-length", b"5000")], [b"x" * 5000], path="/gradio_api/upload") == (200, True, 5000)


def test_what_api_messages_leave_in_the_server_is_bounded_by_the_sessions_it_keeps(seed_settings, monkeypatch):
    """Gradio keeps each session's inputs (an API call's message too, whole) until the session is dropped: only
    the SESSIONS most recently used are kept, so a flood of large messages, each in a new session, holds at most
    SESSIONS of them (before, 300 of up to 1 MB each took the app over 1.2 GB)."""
    import dataclasses
    import urllib.request

    import gradio as gr

    from advisor import ui
    from conftest import free_port

    assert ui.SESSIONS * ui.MAX_REQUEST_BYTES <= 128 * 2**20  # what docs/operations.md promises
    pages: list[gr.Blocks] = []
    launch = gr.Blocks.launch

    def launch_in_background(page: gr.Blocks, **options):
        pages.append(page)
        return launch(page, **options, prevent_thread_lock=True)

    monkeypatch.setattr(gr.Blocks, "launch", launch_in_background)
    monkeypatch.setattr(ui, "SESSIONS", 3)
    settings = dataclasses.replace(seed_settings, port=free_port())
    ui.launch(AdvisorService(settings))
    (page,) = pages
    try:
        message = "salary " * 10_000  # 70 KB: read, answered "too long"
        body = json.dumps({"data": [message]}).encode()
        for _ in range(8):
            url = f"http://127.0.0.1:{settings.port}/gradio_api/call/chat"
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as reply:
                event = json.loads(reply.read())["event_id"]
            with urllib.request.urlopen(f"{url}/{event}", timeout=30) as reply:
                assert b"characters long" in reply.read()
        sessions = page.state_holder.session_data
        held = [
            config
            for state in sessions.values()
            for config in state.config_values.values()
            if config.get("props", {}).get("value") == message
        ]
        assert len(sessions) <= 3 and 1 <= len(held) <= 3
    finally:
        page.close()
