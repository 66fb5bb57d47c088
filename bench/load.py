"""Load test: concurrent gradio_client users ask for a while against a local app; prints p50/p95 and errors.

    python bench/load.py                      # 30 users for 60 s against its own app on a free port
    python bench/load.py --users 5 --seconds 10 --url http://127.0.0.1:7860/

Traffic goes to 127.0.0.1 only. Writes bench/results/load.json.
"""

from __future__ import annotations

import argparse
import json
import os
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
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "load.json")
    args = parser.parse_args(argv)
    from advisor.evaluate import read_golden

    questions = [(i.question, list(i.history)) for i in read_golden(ROOT / "eval" / "devset.jsonl")]
    server = None if args.url else start_app(tempfile.mkdtemp(prefix="advisor-load-index-"))
    url = args.url or server[1]
    try:
        results = _run(url, questions, args.users, args.seconds)
    finally:
        if server:
            server[0].terminate()
            server[0].wait(20)
    summary = _summarize(results, args.users, args.seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    for key, value in summary.items():
        print(f"{key:<22}{value}")
    return 0 if summary["errors"] == 0 else 1


def start_app(index_dir: str, poll: float = 0.5, timeout: float = 240) -> tuple[subprocess.Popen, str]:
    """`python app.py` on a free 127.0.0.1 port with ``index_dir``, once it serves (bench/run.py times this too)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--index", index_dir],
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

    def pct(p: float) -> float:
        return round(ok[min(len(ok) - 1, int(p * len(ok)))] * 1000, 1) if ok else 0.0

    return {
        "users": users,
        "seconds": seconds,
        "requests": len(results),
        "answered": len(ok),
        "busy": sum(1 for o, _ in results if o == "busy"),
        "errors": sum(1 for o, _ in results if o in ("error", "empty")),
        "answers_per_second": round(len(ok) / seconds, 1),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "max_ms": round(ok[-1] * 1000, 1) if ok else 0.0,
        "mean_ms": round(statistics.fmean(ok) * 1000, 1) if ok else 0.0,
    }


if __name__ == "__main__":
    raise SystemExit(main())
