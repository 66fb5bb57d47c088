"""`python app.py` as users run it: a real server process, gradio_client, and headless Chromium via Playwright."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from advisor.config import PROJECT_ROOT
from advisor.render import ASK
from conftest import DATA, SEED_CORPUS, free_port, wait_until_serving

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / "artifacts"
ENTRY = re.compile(r"Entry Level\s*\$85,000")  # the salary table's first row, as text or as two cells
# The chat's answers: a chart under an answer is a bot message of its own.
ANSWERS = '#chat [data-testid="bot"]:not(:has([data-testid="matplotlib"]))'
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    corpus = root / "corpus"
    shutil.copytree(SEED_CORPUS, corpus)
    shutil.copy(DATA / "hostile-notes.md", corpus)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVISOR_")}
    env |= {"PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = (root / "app.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "app.py",
            "--corpus",
            str(corpus),
            "--index",
            str(root / "index"),
            "--feedback",
            str(root / "feedback"),
            "--port",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    wait_until_serving(process, url, root / "app.log")
    yield SimpleNamespace(url=url, corpus=corpus, feedback=root / "feedback", log=root / "app.log")
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def test_startup_builds_the_index_and_prints_the_url(server):
    text = server.log.read_text()
    assert "Embedding" in text and "3 documents" in text
    assert f"serving on {server.url.rstrip('/')}" in text


def test_chat_api_answers_with_markers_and_keeps_history_per_client(server):
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    first = client.predict("How much does a mid-level ML engineer make?", api_name="/chat")
    assert isinstance(first, str) and "$120,000 [1]" in first
    assert "$170,000" in client.predict("And at the senior level?", api_name="/chat")
    assert "couldn't find that in my documents" in client.predict("How do I bake bread?", api_name="/chat")
    assert "Please type a question" in client.predict("   ", api_name="/chat")
    too_long = client.predict("salary " * 700, api_name="/chat")  # 4,900 characters: over 4,000
    assert "characters long" in too_long


def test_raw_http_api_returns_plain_text_like_gradio_client(server):
    # The curl example on Gradio's API page: POST the question, then read the event stream for the result.
    request = urllib.request.Request(
        server.url + "gradio_api/call/chat",
        data=json.dumps({"data": ["What skills do ML engineers need?"]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        event = json.loads(reply.read())["event_id"]
    with urllib.request.urlopen(f"{server.url}gradio_api/call/chat/{event}", timeout=60) as reply:
        stream = reply.read().decode()
    data = stream.split("event: complete\ndata: ", 1)[1].splitlines()[0]
    answer = json.loads(data)[0]
    assert "[1]" in answer and "&" in answer  # "Computer science & programming", not "&amp;" (it was escaped)
    assert "&amp;" not in answer and "<" not in answer and "](#" not in answer


def test_a_huge_message_is_refused_and_leaves_the_conversation_usable(server):
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    assert "$85,000" in client.predict("What do juniors earn?", api_name="/chat")
    with pytest.raises(Exception, match="413"):  # refused before Gradio reads it (it kept 10 MB in the session)
        client.predict("salary " * 1_500_000, api_name="/chat")
    assert "characters long" in client.predict("salary " * 140_000, api_name="/chat")  # 980 KB: read, then refused
    # The follow-ups read only the history's last messages, each cut to its limit (they took ~40 s each)
    assert "$170,000" in client.predict("What do seniors earn?", api_name="/chat")
    assert "$120,000" in client.predict("And mid-level?", api_name="/chat")


def test_files_are_not_served_and_huge_messages_are_refused(server):
    import urllib.error

    for path in (
        "gradio_api/file=app.py",
        "gradio_api/file=index/manifest.json",
        "gradio_api/file=../../etc/passwd",
        "gradio_api/file=/etc/passwd",
        f"gradio_api/file={server.corpus}/hostile-notes.md",
        "gradio_api/file=%2e%2e/%2e%2e/etc/passwd",
        "app.py",
        "index/manifest.json",
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server.url + path, timeout=10)
        assert refused.value.code in (403, 404), path
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    assert "characters long" in client.predict("salary " * 140_000, api_name="/chat")  # 980 KB: just under the body limit
    assert "$85,000" in client.predict("What do juniors earn?", api_name="/chat")  # and the server is still up
    assert "127.0.0.1" in server.url


@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"), reason="system chromium not installed")
def test_a_person_chats_in_the_browser(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        dialogs, remote = [], []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.on(
            "request",
            lambda request: remote.append(request.url) if not request.url.startswith((server.url, "data:", "blob:")) else None,
        )
        page.goto(server.url, wait_until="domcontentloaded")
        textbox = page.locator('textarea[data-testid="textbox"]')
        textbox.wait_for(timeout=60_000)
        bots = page.locator(ANSWERS)
        status = page.locator("#index-status")
        expect(status).to_contain_text("Documents: 3")
        expect(status).not_to_contain_text("passages")  # index internals live in the Documents tab

        def ask(question: str) -> Any:
            return _ask(page, question)

        first = page.locator(f'#chat a[href="{ASK}"]').first
        expect(first).to_have_text(re.compile(r".+\?$"))  # examples are the corpus's own FAQ questions
        pay = ask("How much do ML engineers earn at each level?")
        expect(pay.locator("table").first).to_contain_text("$85,000")  # table rows as a table
        # ... and the passage's own table as a table in its Sources, the quoted rows marked.
        expect(pay.locator("details.answer-sources .src-table mark").first).to_have_text("Entry Level")
        # ... and as a bar chart under the answer (#25, pay at a glance); an answer with one figure has none.
        chart = page.locator('#chat [data-testid="bot"] [data-testid="matplotlib"] img')
        expect(chart).to_have_count(1)
        assert chart.evaluate("img => img.naturalWidth > 200 && img.getAttribute('src').startsWith('data:image/')")
        expect(pay.locator("details.answer-sources")).to_contain_text(ENTRY)
        skills = ask("What skills do ML engineers need?")
        assert skills.locator("li").count() >= 3  # a list as a list
        expect(textbox).to_have_attribute("placeholder", re.compile("Ask a question"))  # the placeholder stays
        refusal = ask("How do I bake sourdough bread?")
        expect(refusal).to_contain_text("couldn't find that in my documents")
        assert refusal.locator("details.answer-sources").count() == 0

        # Three answers later, the first answer's [1] still opens its own passage.
        first_answer = bots.first
        first_answer.locator('a[href="#cite-1"]').first.click()
        opened = first_answer.locator("details.answer-sources .src-1.active")
        expect(opened).to_be_visible()
        expect(opened).to_contain_text(ENTRY)
        expect(opened.locator("mark").first).to_be_visible()
        # The side panel follows the answer the user clicks, not just the latest.
        first_answer.locator("p").first.click()
        expect(page.locator("#side-sources")).to_contain_text(ENTRY)

        hostile = ask("What do quokka engineers paste into their salary notes?")
        expect(hostile).to_contain_text('<script>alert("xss")</script>')  # shown as text
        hostile.locator("summary").click()
        expect(hostile.locator("details.answer-sources")).to_contain_text('<img src=x onerror="alert(1)">')
        assert page.locator("#chat script, #side-sources script").count() == 0
        assert page.locator('img[src="x"], img[src*="remote.invalid"]').count() == 0

        page.get_by_role("button", name="Like").last.click()
        feedback = server.feedback / "feedback.jsonl"
        deadline = time.monotonic() + 20
        while not (feedback.exists() and feedback.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.2)
        vote = json.loads(feedback.read_text().splitlines()[-1])
        assert vote["vote"] == "up" and vote["question"] == "What do quokka engineers paste into their salary notes?"
        assert vote["sources"] and vote["history"]
        assert "<details" not in json.dumps(vote["history"])  # the conversation as said, not as rendered

        # A message over the limit is explained before sending, and stays in the box to be shortened.
        long_message = "I work in support. " * 240  # 4,560 characters
        textbox.fill(long_message)
        textbox.press("Enter")
        # Gradio may also put the message in a screen-reader announcement (role=status): the one shown is meant.
        shown = page.locator(":not([role=status])")
        expect(page.get_by_text(re.compile("the limit is 4,000")).and_(shown)).to_be_visible(timeout=20_000)
        assert textbox.input_value() == long_message
        # So is one over the server's 1 MB body limit, which is refused before the page's own check can run.
        pasted = "salary " * 200_000
        textbox.fill(pasted)
        textbox.press("Enter")
        expect(page.get_by_text(re.compile("over 1 MB, the most the server reads")).and_(shown)).to_be_visible(timeout=20_000)
        assert textbox.input_value() == pasted
        textbox.fill("")
        page.screenshot(path=str(ARTIFACTS / "browser-desktop.png"))

        # The chat survives a reload: it is in the saved list, and opens with its sources.
        page.reload(wait_until="domcontentloaded")
        textbox.wait_for(timeout=60_000)
        saved = page.get_by_role("gridcell", name=re.compile("^How much do ML engineers earn")).first
        expect(saved).to_be_visible(timeout=20_000)
        saved.click()
        expect(bots.first.locator("details.answer-sources")).to_contain_text(ENTRY)

        # A document added from the page is indexed in the background and answers, cited.
        page.get_by_role("tab", name="Documents").click()
        expect(page.locator("table.documents")).to_contain_text("hostile-notes.md")
        visas = tmp_path / "visa-notes.md"
        visas.write_text(
            "# Visa notes\n\n## Visa Sponsorship\n\nSome employers sponsor work visas for machine "
            "learning engineers who relocate from abroad.\n"
        )
        bad = tmp_path / "tool.exe"
        bad.write_bytes(b"MZ")
        page.locator('input[type="file"]').set_input_files([str(visas), str(bad)])
        expect(page.get_by_text(re.compile("Added visa-notes.md"))).to_be_visible(timeout=30_000)
        expect(page.get_by_text(re.compile("tool.exe: .*not a supported"))).to_be_visible()
        expect(status).to_contain_text("Documents: 4", timeout=120_000)
        expect(page.locator("table.documents")).to_contain_text("visa-notes.md")
        page.get_by_role("tab", name="Chat").click()
        answer = ask("Do employers sponsor work visas for ML engineers?")
        expect(answer).to_contain_text("work visas")
        expect(answer.locator("details.answer-sources")).to_contain_text("visa-notes.md")
        assert (server.corpus / "visa-notes.md").exists() and not (server.corpus / "tool.exe").exists()

        # A document changed on disk: one sentence and one button.
        notes = server.corpus / "hostile-notes.md"
        notes.write_text(notes.read_text() + "\nQuokka engineers also keep a diary.\n")
        page.reload(wait_until="domcontentloaded")
        expect(status).to_contain_text("1 document changed", timeout=30_000)
        page.get_by_role("button", name="Update now").click()
        expect(status).not_to_contain_text("changed", timeout=120_000)
        page.get_by_role("button", name="Update now").wait_for(state="hidden")
        browser.close()
    assert dialogs == [] and remote == []


@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"), reason="system chromium not installed")
def test_on_a_phone_the_box_and_the_answer_are_on_screen(server):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        page.goto(server.url, wait_until="domcontentloaded")
        textbox = page.locator('textarea[data-testid="textbox"]')
        textbox.wait_for(timeout=60_000)
        expect(textbox).to_be_in_viewport()
        assert not page.locator("#side-sources").is_visible()  # sources live under each answer here
        textbox.fill("What do ML engineers earn at each level?")
        textbox.press("Enter")
        bots = page.locator(ANSWERS)
        expect(bots).to_have_count(1, timeout=60_000)
        page.locator('button[data-testid="stop-button"]').wait_for(state="hidden", timeout=60_000)
        expect(bots.last.locator("details.answer-sources")).to_be_attached()
        expect(bots.last).to_be_in_viewport()
        for button in page.get_by_role("button").all():
            box = button.bounding_box()
            assert box is None or box["height"] < 120, button.inner_text()  # nothing grows out of proportion
        page.screenshot(path=str(ARTIFACTS / "browser-phone.png"))
        browser.close()


def test_the_upload_route_takes_nothing_over_the_file_limit(server):
    import urllib.error

    boundary = "advisorboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + b"x" * (21 * 2**20)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        server.url + "gradio_api/upload",
        data=body,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 413


def test_the_upload_route_stores_nothing_for_a_request_through_a_proxy(server):
    """The app listens on 127.0.0.1 with no login: a visitor through a reverse proxy may not upload."""
    import urllib.error

    boundary = "advisorboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="notes.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\nWelders earn well.\r\n--{boundary}--\r\n"
    ).encode()

    def upload(**headers: str) -> tuple[int, str]:
        request = urllib.request.Request(
            server.url + "gradio_api/upload",
            data=body,
            method="POST",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read().decode()

    status, said = upload(**{"X-Forwarded-For": "203.0.113.9"})
    assert status == 403 and "proxy" in said and "ADVISOR_AUTH" in said
    status, said = upload()  # from this machine itself: the page's own uploads work
    assert status == 200 and "notes.txt" in said
    Path(json.loads(said)[0]).unlink()


def test_wrong_passwords_are_throttled_per_address_and_a_right_one_elsewhere_still_signs_in(server, tmp_path):
    """A second app with a login, on the first one's index: after 5 wrong passwords an address must wait."""
    import urllib.error
    import urllib.parse

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVISOR_")}
    env |= {"PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False", "ADVISOR_AUTH": "ann:right-password"}
    log_path = tmp_path / "auth.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "app.py", "--corpus", str(server.corpus), "--index", str(server.corpus.parent / "index"),
             "--feedback", str(tmp_path / "feedback"), "--port", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_until_serving(process, url, log_path)

            def sign_in(password: str, **headers: str) -> int:
                form = urllib.parse.urlencode({"username": "ann", "password": password}).encode()
                request = urllib.request.Request(url + "login", data=form, method="POST", headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=30) as reply:
                        return reply.status
                except urllib.error.HTTPError as refused:
                    return refused.code

            started = time.monotonic()
            assert [sign_in(f"guess-{i}") for i in range(5)] == [400] * 5
            assert sign_in("guess-5") == 429 and sign_in("right-password") == 429  # this address waits now
            assert time.monotonic() - started < 30
            assert sign_in("right-password", **{"X-Forwarded-For": "198.51.100.7"}) == 200  # someone else, via a proxy
        finally:
            process.terminate()
            process.wait(20)


def test_a_restart_serves_the_previous_index_at_once_and_updates_it_in_the_background(server, tmp_path):
    """However much has to be read and embedded, a restart answers from the index already built."""
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(server.corpus, corpus)
    shutil.copytree(server.corpus.parent / "index", index, ignore=shutil.ignore_patterns(".build.lock"))
    # Minutes of embedding on 2 cores (over a thousand passages), and a page that is slow to parse.
    (corpus / "big.txt").write_text("".join(f"Welders in town {i} earn {i % 50 + 20} dollars an hour. " for i in range(12_000)))
    (corpus / "tags.html").write_text("<html><body>" + "<b>x " * 100_000 + "</body></html>")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVISOR_")}
    env |= {"PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False", "ADVISOR_READ_SECONDS": "1"}
    log_path = tmp_path / "restart.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "app.py", "--corpus", str(corpus), "--index", str(index),
             "--feedback", str(tmp_path / "feedback"), "--port", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_until_serving(process, f"http://127.0.0.1:{port}/", log_path)
            assert time.monotonic() - started < 30, log_path.read_text()
            said = log_path.read_text()
            assert "2 added" in said and "updating the index in the background" in said and "Embedding" not in said
        finally:
            process.terminate()
            process.wait(20)


def test_load_script_smoke(server, tmp_path):
    """The load benchmark works (its figures come from a full run, see docs/performance.md): 3 users for 3 seconds."""
    out = tmp_path / "load.json"
    result = subprocess.run(
        [sys.executable, "bench/load.py", "--users", "3", "--seconds", "3", "--url", server.url, "--out", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(out.read_text())
    assert summary["answered"] > 0 and summary["errors"] == 0 and summary["p95_ms"] >= summary["p50_ms"] > 0


def test_benchmark_smoke(tmp_path):
    """bench/run.py works end to end with tiny sizes (its real figures come from a full run, see docs/performance.md)."""
    out = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--out", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = [r for name in ("answers", "faiss", "stores") for r in json.loads((out / f"bench-{name}.json").read_text())["results"]]
    assert "| answer time" in (out / "bench-answers.md").read_text() and "| hit_at_1 |" in (out / "quality-seeds.md").read_text()
    names = " | ".join(r["name"] for r in rows)
    for part in (
        "answer time",
        "build throughput",
        "incremental rebuild",
        "start-up",
        "peak RSS",
        "faiss ivf",
        "vectors in milvus lite file",
        "vectors in milvus server",
        "write 1 changed document",
    ):
        assert part in names
    assert all(isinstance(r["ratio"], float | int) and r["ratio"] > 0 for r in rows)


def _ask(page: Any, question: str | None = None, click: Any = None) -> Any:
    """Send a question (typed, or by clicking a link that asks it) and wait for its whole answer."""
    from playwright.sync_api import expect

    bots = page.locator(ANSWERS)
    count = bots.count()
    if click is not None:
        click.click()
    else:
        box = page.locator('textarea[data-testid="textbox"]')
        box.fill(question)
        box.press("Enter")
    expect(bots.nth(count)).to_be_visible(timeout=60_000)
    page.locator('button[data-testid="stop-button"]').wait_for(state="hidden", timeout=60_000)
    page.wait_for_timeout(500)  # the last streamed update
    expect(bots.nth(count).locator("details.answer-sources, p").first).to_be_visible(timeout=60_000)
    return bots.nth(count)


@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"), reason="system chromium not installed")
@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_examples_and_suggestions_ask_and_the_open_chat_comes_back_after_a_reload(server, screen):
    from playwright.sync_api import expect, sync_playwright

    phone = screen == "phone"
    size = {"width": 390, "height": 844} if phone else {"width": 1366, "height": 900}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        context = browser.new_context(viewport=size, is_mobile=phone, has_touch=phone, accept_downloads=True)
        page = context.new_page()
        page.goto(server.url, wait_until="domcontentloaded")
        page.locator('textarea[data-testid="textbox"]').wait_for(timeout=60_000)
        # The page's load event fills the status: until then a key press may come before Gradio handles it.
        expect(page.locator("#index-status")).to_contain_text("Documents:", timeout=60_000)
        bots = page.locator(ANSWERS)
        # Enter in an empty box sends nothing: no empty message, no reply to it.
        page.locator('textarea[data-testid="textbox"]').press("Enter")
        expect(page.get_by_text("Type a question about the documents first.")).to_be_visible(timeout=20_000)
        assert page.locator('#chat [data-testid="user"]').count() == 0 and bots.count() == 0

        # An example asks itself, and the chat it starts is saved like a typed one (#25, 3).
        example = page.locator(f'#chat a[href="{ASK}"]', has_text="What is a Machine Learning Engineer?")
        answer = _ask(page, click=example)
        expect(page.locator('#chat [data-testid="user"]').first).to_have_text("What is a Machine Learning Engineer?")
        expect(page.locator(".history-col")).to_contain_text("What is a Machine Learning Engineer?", timeout=20_000)
        # A passage shows its Markdown as formatting, never as asterisks (#25, 8).
        answer.locator("summary").click()
        passages = answer.locator("details.answer-sources .src-text")
        expect(passages.first).to_be_visible()
        assert answer.locator("details.answer-sources .src-text strong").count() >= 1
        assert "**" not in " ".join(passages.all_inner_texts())

        # A decline's suggested questions are links that ask them (#25, 4); the refused question is not one.
        declined = _ask(page, "How do I bake sourdough bread?")
        suggestions = declined.locator(f'a[href="{ASK}"]')
        expect(suggestions.first).to_be_visible()
        assert "How do I bake sourdough bread?" not in suggestions.all_inner_texts()
        suggested = suggestions.first.inner_text()
        _ask(page, click=suggestions.first)
        expect(page.locator('#chat [data-testid="user"]').last).to_have_text(suggested)
        assert bots.count() == 3

        if not phone:  # the side panel follows the answer whose [n] is clicked (#25, 9)
            bots.first.locator('a[href="#cite-1"]').first.click()
            first_passage = bots.first.locator("details.answer-sources .src-1 .src-text").text_content()
            expect(page.locator("#side-sources .src-1.active")).to_contain_text(first_passage[:40])

        # Download chat: the conversation as Markdown with each answer's numbered sources.
        with page.expect_download() as download:
            page.locator("#download-chat").click()
        saved = Path(download.value.path()).read_text()
        assert "**You:** What is a Machine Learning Engineer?" in saved and f"**You:** {suggested}" in saved
        assert "Sources:\n1. " in saved and "   > " in saved and "How do I bake sourdough bread?" in saved

        # A reload returns to this chat, whole, and its [1] still opens its sources (side panel too on a desktop).
        page.reload(wait_until="domcontentloaded")
        page.locator('textarea[data-testid="textbox"]').wait_for(timeout=60_000)
        expect(bots).to_have_count(3, timeout=20_000)
        expect(page.locator('#chat [data-testid="user"]').first).to_have_text("What is a Machine Learning Engineer?")
        bots.first.locator('a[href="#cite-1"]').first.click()
        expect(bots.first.locator("details.answer-sources .src-1.active")).to_be_visible()
        if not phone:
            expect(page.locator("#side-sources .src-1")).to_be_visible()
        else:
            assert not page.locator("#side-sources").is_visible()
        # A new chat, then a reload: the empty chat stays empty.
        page.get_by_role("button", name="New chat").click()
        expect(bots).to_have_count(0)
        page.wait_for_timeout(1_000)  # the browser notes the change (a queued event)
        page.reload(wait_until="domcontentloaded")
        page.locator('textarea[data-testid="textbox"]').wait_for(timeout=60_000)
        page.wait_for_timeout(2_000)
        assert bots.count() == 0
        page.screenshot(path=str(ARTIFACTS / f"browser-chats-{screen}.png"))
        browser.close()


@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"), reason="system chromium not installed")
@pytest.mark.parametrize("screen", ["phone", "desktop"])
def test_the_documents_tab_scrolls_on_a_phone_asks_before_removing_and_says_when_the_update_is_done(server, tmp_path, screen):
    from playwright.sync_api import expect, sync_playwright

    phone = screen == "phone"
    size = {"width": 390, "height": 844} if phone else {"width": 1366, "height": 900}
    name = f"removal-{screen}.md"
    notes = tmp_path / name
    notes.write_text(f"# Removal notes {screen}\n\nQuokka engineers file their removal notes on Fridays.\n")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page(viewport=size, is_mobile=phone, has_touch=phone)
        page.goto(server.url, wait_until="domcontentloaded")
        page.locator('textarea[data-testid="textbox"]').wait_for(timeout=60_000)
        page.get_by_role("tab", name="Documents").click()
        table = page.locator(".documents-scroll")
        expect(table).to_be_visible()
        if phone:  # every column can be reached: the table scrolls sideways inside the page, not off it
            assert table.evaluate("el => el.scrollWidth > el.clientWidth && getComputedStyle(el).overflowX === 'auto'")
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
        page.locator('input[type="file"]').set_input_files([str(notes)])
        outcome = page.locator("#documents-outcome")
        # "updating the index" is replaced when the update it announced is done.
        expect(outcome).to_contain_text(f"Added {name}; the index is up to date.", timeout=120_000)
        expect(page.locator("table.documents")).to_contain_text(name)
        expect(page.locator("#intro")).to_contain_text(f"Removal notes {screen}")  # the header names it (#25, 5)
        before = len(list(server.corpus.iterdir()))

        page.locator("#remove-choice input").click()
        page.get_by_role("option", name=name).click()
        page.get_by_role("button", name="Remove", exact=True).click()
        confirm = page.locator("#confirm-removal")
        expect(confirm).to_contain_text(re.compile(rf"Delete \S*{re.escape(name)} from the documents folder\?"))
        page.get_by_role("button", name="Cancel").click()
        expect(confirm).to_be_hidden()
        assert (server.corpus / name).exists() and len(list(server.corpus.iterdir())) == before

        page.get_by_role("button", name="Remove", exact=True).click()
        page.get_by_role("button", name="Yes, delete it").click()
        expect(outcome).to_contain_text(re.compile(rf"Removed \S*{re.escape(name)}; the index is up to date\."), timeout=120_000)
        assert not (server.corpus / name).exists()
        expect(page.locator("table.documents")).not_to_contain_text(name)
        expect(page.locator("#intro")).not_to_contain_text(f"Removal notes {screen}")
        page.screenshot(path=str(ARTIFACTS / f"browser-documents-{screen}.png"), full_page=True)
        browser.close()
