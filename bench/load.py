"""Load test: concurrent gradio_client users ask for a while against a local app; prints p50/p95 and errors.

    python bench/load.py                      # 30 users for 60 s against its own app on a free port
    python bench/load.py --users 5 --seconds 10 --url http://127.0.0.1:7860/
    python bench/load.py --hostile --users 10 --seconds 30   # normal users, then the same beside the hostile mix

--hostile serves a corpus holding a named pipe, a symlink loop and a file name that is not UTF-8, and measures
normal users alone, then beside clients that send a 10 MB chat history with every question, then (in a second
app whose LLM server sends keep-alives and never an answer) how long an answer can be held; the app's RSS is
sampled throughout. Traffic goes to 127.0.0.1 only. Writes bench/results/load.json (or hostile.json).
"""

from __future__ import annotations

import argparse
import json
import importlib.util
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from advisor.config import PROJECT_ROOT as ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--url", help="a running app (default: start one on a free 127.0.0.1 port)")
    parser.add_argument("--hostile", action="store_true", help="normal users alone, then beside the hostile mix")
    parser.add_argument("--out", type=Path, help="default bench/results/load.json (hostile.json with --hostile)")
    args = parser.parse_args(argv)
    from advisor.evaluate import read_golden

    questions = [(i.question, list(i.history)) for i in read_golden(ROOT / "eval" / "devset.jsonl")]
    if args.hostile:
        summary = _hostile(questions, args.users, args.seconds)
        ok = summary["normal_beside_hostile"]["errors"] == 0 and summary["slow_llm"]["errors"] == 0
    else:
        server = None if args.url else start_app(tempfile.mkdtemp(prefix="advisor-load-index-"))
        url = args.url or server[1]
        try:
            results = _run(url, questions, args.users, args.seconds)
        finally:
            if server:
                _stop(server[0])
        summary = _summarize(results, args.users, args.seconds)
        ok = summary["errors"] == 0
    out = args.out or ROOT / "bench" / "results" / ("hostile.json" if args.hostile else "load.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    for key, value in summary.items():
        print(f"{key:<22}{value}")
    return 0 if ok else 1


def start_app(
    index_dir: str, poll: float = 0.5, timeout: float = 240, extra: tuple[str, ...] = ()
) -> tuple[subprocess.Popen, str]:
    """`python app.py` on a free 127.0.0.1 port with ``index_dir`` (and ``extra`` flags), once it serves
    (bench/run.py times this too)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--index", index_dir, *extra],
        cwd=ROOT,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return process, url
        except OSError:
            if process.poll() is not None:
                raise SystemExit("the app exited before serving") from None
            time.sleep(poll)
    process.kill()
    raise SystemExit(f"the app did not start serving in {timeout:.0f} s")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(20)


# --- the hostile mix ------------------------------------------------------------------------------

BLOAT_USERS = 4
BLOAT = "salary " * 1_500_000  # 10.5 MB: one message of the chat history each of them sends
LLM_TIMEOUT = 3.0


def _hostile(questions: list, users: int, seconds: float) -> dict:
    """Normal users alone, then beside history-bloat clients, on a corpus with a pipe in it; then a slow LLM."""
    work = Path(tempfile.mkdtemp(prefix="advisor-hostile-"))
    corpus = work / "corpus"
    shutil.copytree(ROOT / "corpus", corpus)
    os.mkfifo(corpus / "pipe.txt")  # opening it for reading would block for ever
    (corpus / "loop.md").symlink_to(corpus / "loop.md")
    with open(os.path.join(os.fsencode(corpus), b"caf\xe9.txt"), "wb") as handle:
        handle.write(b"a name that is not UTF-8")
    server = start_app(str(work / "index"), extra=("--corpus", str(corpus)))
    rss = _RSS(server[0].pid)
    try:
        rss.phase("normal")
        alone = _summarize(_run(server[1], questions, users, seconds), users, seconds)
        rss.phase("beside_hostile")
        bloat: list[tuple[str, float]] = []
        attackers = [
            threading.Thread(target=_bloat, args=(server[1], time.monotonic() + seconds, bloat)) for _ in range(BLOAT_USERS)
        ]
        for thread in attackers:
            thread.start()
        beside = _summarize(_run(server[1], questions, users, seconds), users, seconds)
        for thread in attackers:
            thread.join()
    finally:
        rss.stop()
        _stop(server[0])
    slow = _slow_llm(work, corpus, questions, users, seconds)
    change = round(100 * (beside["p95_ms"] / alone["p95_ms"] - 1), 1) if alone["p95_ms"] else None
    return {
        "normal_alone": alone,
        "normal_beside_hostile": beside,
        "p95_change_percent": change,
        "bloat": {
            "users": BLOAT_USERS,
            "history_mb": round(len(BLOAT) / 2**20, 1),
            "requests": len(bloat),
            "answered": sum(1 for o, _ in bloat if o == "ok"),
            "p95_ms": _pct(sorted(t for o, t in bloat if o == "ok"), 0.95),
        },
        "rss_max_mb": rss.peaks,
        "slow_llm": slow,
    }


def _bloat(url: str, until: float, results: list[tuple[str, float]]) -> None:
    """Ask follow-ups with a 10 MB message in the chat history until ``until``."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    history = [{"role": "user", "content": BLOAT}, {"role": "assistant", "content": "That message is too long."}]
    while time.monotonic() < until:
        began = time.perf_counter()
        try:
            reply = client.predict("And at the senior level?", history, api_name="/chat")
            outcome = "ok" if isinstance(reply, str) and reply else "empty"
        except Exception:
            outcome = "error"
        results.append((outcome, time.perf_counter() - began))


def _slow_llm(work: Path, corpus: Path, questions: list, users: int, seconds: float) -> dict:
    """An app whose LLM server sends keep-alives and never an answer: how long each answer is held."""
    spec = importlib.util.spec_from_file_location("llm_server", ROOT / "tests" / "llm_server.py")
    assert spec and spec.loader
    llm_server = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(llm_server)
    with llm_server.FakeLLMServer() as llm:
        flags = ("--corpus", str(corpus), "--llm-base-url", llm.url, "--llm-model", "keep-alive")
        server = start_app(str(work / "index"), extra=(*flags, "--llm-timeout", str(LLM_TIMEOUT)))
        try:
            summary = _summarize(_run(server[1], questions, min(users, 4), seconds), min(users, 4), seconds)
        finally:
            _stop(server[0])
    return {"llm_timeout_s": LLM_TIMEOUT, **summary}


class _RSS:
    """Samples a process's resident memory every 0.2 s; ``peaks`` is the highest seen in each phase, in MB."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peaks, self._phase = pid, {}, "start"
        self._stopped = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def phase(self, name: str) -> None:
        self._phase = name

    def stop(self) -> None:
        self._stopped.set()

    def _sample(self) -> None:
        while not self._stopped.wait(0.2):
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                return
            kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
            self.peaks[self._phase] = max(self.peaks.get(self._phase, 0), round(kb / 1024))


def _run(url: str, questions: list, users: int, seconds: float) -> list[tuple[str, float]]:
    from gradio_client import Client

    results: list[tuple[str, float]] = []
    lock = threading.Lock()
    start = threading.Barrier(users)
    deadline = [0.0]

    def user(offset: int) -> None:
        client = Client(url, verbose=False)
        start.wait()
        if offset == 0:
            deadline[0] = time.monotonic() + seconds
        time.sleep(0.01)
        i = offset
        while time.monotonic() < deadline[0]:
            question, _ = questions[i % len(questions)]
            i += users
            began = time.perf_counter()
            try:
                reply = client.predict(question, api_name="/chat")
                outcome = "ok" if isinstance(reply, str) and reply else "empty"
            except Exception as exc:
                outcome = "busy" if "queue" in str(exc).lower() and "full" in str(exc).lower() else "error"
            with lock:
                results.append((outcome, time.perf_counter() - began))

    threads = [threading.Thread(target=user, args=(n,)) for n in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _summarize(results: list[tuple[str, float]], users: int, seconds: float) -> dict:
    ok = sorted(t for outcome, t in results if outcome == "ok")

    return {
        "users": users,
        "seconds": seconds,
        "requests": len(results),
        "answered": len(ok),
        "busy": sum(1 for o, _ in results if o == "busy"),
        "errors": sum(1 for o, _ in results if o in ("error", "empty")),
        "answers_per_second": round(len(ok) / seconds, 1),
        "p50_ms": _pct(ok, 0.50),
        "p95_ms": _pct(ok, 0.95),
        "max_ms": round(ok[-1] * 1000, 1) if ok else 0.0,
        "mean_ms": round(statistics.fmean(ok) * 1000, 1) if ok else 0.0,
    }


def _pct(ok: list[float], p: float) -> float:
    return round(ok[min(len(ok) - 1, int(p * len(ok)))] * 1000, 1) if ok else 0.0


if __name__ == "__main__":
    raise SystemExit(main())
