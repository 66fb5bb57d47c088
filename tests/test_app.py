"""`python app.py` as users run it: a real server process, gradio_client, and headless Chromium via Playwright."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from advisor.config import PROJECT_ROOT
from conftest import DATA, SEED_CORPUS, free_port, wait_until_serving

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / "artifacts"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run"]


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
        [sys.executable, "app.py", "--corpus", str(corpus), "--index", str(root / "index"),
         "--feedback", str(root / "feedback"), "--port", str(port)],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
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


def test_files_are_not_served_and_huge_messages_are_refused(server):
    import urllib.error

    for path in ("gradio_api/file=app.py", "gradio_api/file=index/manifest.json", "gradio_api/file=../../etc/passwd",
                 "gradio_api/file=/etc/passwd", f"gradio_api/file={server.corpus}/hostile-notes.md",
                 "gradio_api/file=%2e%2e/%2e%2e/etc/passwd", "app.py", "index/manifest.json"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server.url + path, timeout=10)
        assert refused.value.code in (403, 404), path
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    assert "characters long" in client.predict("salary " * 150_000, api_name="/chat")  # about 1 MB
    assert "$85,000" in client.predict("What do juniors earn?", api_name="/chat")  # and the server is still up
    assert "127.0.0.1" in server.url


@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"), reason="system chromium not installed")
def test_a_person_chats_in_the_browser(server):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        dialogs, remote = [], []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.on("request", lambda request: remote.append(request.url)
                if not request.url.startswith((server.url, "data:", "blob:")) else None)
        page.goto(server.url, wait_until="domcontentloaded")
        textbox = page.locator('textarea[data-testid="textbox"]')
        textbox.wait_for(timeout=60_000)
        bots = page.locator('[data-testid="bot"]')
        expect(page.locator("#index-status")).to_contain_text("3 documents")

        def ask(question: str | None = None, example: str | None = None) -> str:
            count = bots.count()
            if example:
                page.get_by_role("button", name=example).click()
            else:
                textbox.fill(question)
                textbox.press("Enter")
            expect(bots).to_have_count(count + 1, timeout=60_000)
            page.locator('button[data-testid="stop-button"]').wait_for(state="hidden", timeout=60_000)
            page.wait_for_timeout(300)  # the last streamed update and the sources panel
            return bots.last.inner_text()

        first = page.get_by_role("button", name=re.compile(r"^Select example 1: .+\?$"))
        expect(first).to_be_visible()  # examples are the corpus's own FAQ questions
        pay = ask("How much do ML engineers earn at each level?")
        assert "[1]" in pay and "$85,000" in pay
        sources = page.locator("#sources")
        expect(sources).to_contain_text("[1]")
        expect(sources).to_contain_text("Entry Level $85,000")
        assert page.locator("#sources mark").count() > 0

        assert "$170,000" in ask("And at the senior level?")
        refusal = ask("How do I bake sourdough bread?")
        assert "couldn't find that in my documents" in refusal
        expect(sources).to_contain_text("The passages an answer cites appear here")

        hostile = ask("What do quokka engineers paste into their salary notes?")
        assert '<script>alert("xss")</script>' in hostile  # shown as text
        expect(sources).to_contain_text('<script>alert("xss")</script>')
        expect(sources).to_contain_text('<img src=x onerror="alert(1)">')
        assert page.locator("#sources script, #chat script").count() == 0
        assert page.locator('img[src="x"], img[src*="remote.invalid"]').count() == 0

        page.get_by_role("button", name="Like").last.click()
        feedback = server.feedback / "feedback.jsonl"
        deadline = time.monotonic() + 20
        while not feedback.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        vote = json.loads(feedback.read_text().splitlines()[-1])
        assert vote["vote"] == "up" and vote["question"] == "What do quokka engineers paste into their salary notes?"
        assert vote["sources"] and vote["history"]
        page.screenshot(path=str(ARTIFACTS / "browser-chat.png"), full_page=True)

        # An edited document: the UI notices, rebuilds in the background and answers from it without a restart.
        notes = server.corpus / "hostile-notes.md"
        notes.write_text(notes.read_text() + "\n## Visa Sponsorship\n\nSome employers sponsor work visas for machine "
                                             "learning engineers who relocate from abroad.\n")
        page.get_by_role("button", name="Check for changes").click()
        expect(page.locator("#index-status")).to_contain_text("corpus has changed", timeout=20_000)
        expect(page.locator("#index-status")).to_contain_text("hostile-notes.md")
        page.get_by_role("button", name="Rebuild index").click()
        expect(page.locator("#index-status")).to_contain_text("Index rebuilt", timeout=120_000)
        expect(page.locator("#index-status")).to_contain_text("1 changed")
        assert "work visas" in ask("Do employers sponsor work visas for ML engineers?")
        page.screenshot(path=str(ARTIFACTS / "browser-rebuilt.png"), full_page=True)

        page.get_by_role("button", name="Clear chat").click()
        expect(bots).to_have_count(0)
        browser.close()
    assert dialogs == [] and remote == []


def test_load_script_smoke(server, tmp_path):
    """The load benchmark works (its figures come from a full run, see README): 3 users for 3 seconds."""
    out = tmp_path / "load.json"
    result = subprocess.run([sys.executable, "bench/load.py", "--users", "3", "--seconds", "3", "--url", server.url,
                             "--out", str(out)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(out.read_text())
    assert summary["answered"] > 0 and summary["errors"] == 0 and summary["p95_ms"] >= summary["p50_ms"] > 0


def test_benchmark_smoke(tmp_path):
    """bench/run.py works end to end with tiny sizes (its real figures come from a full run, see README)."""
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "bench/run.py", "--quick", "--out", str(out)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = json.loads(out.read_text())["results"]
    names = " | ".join(r["name"] for r in rows)
    for part in ("answer time", "build throughput", "incremental rebuild", "start-up", "peak RSS", "faiss ivf",
                 "vectors in milvus lite file", "vectors in milvus server", "write 1 changed document"):
        assert part in names
    assert all(isinstance(r["ratio"], float | int) and r["ratio"] > 0 for r in rows)
