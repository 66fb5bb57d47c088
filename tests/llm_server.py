"""A small OpenAI-compatible chat server for tests, on 127.0.0.1; the requested model name picks its behaviour."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONDENSED = "What is the average salary of a senior level machine learning engineer?"
SLOW_SECONDS = 3.0
DRIP_SECONDS = 0.3  # between the keep-alives or tokens of the servers that never finish
# Models whose server never finishes an answer: "keep-alive" sends only SSE comments (which the client never
# sees as chunks), "trickle" a token at a time, "hang" accepts the request and sends nothing; each until the
# client hangs up. Asked for a whole reply, "keep-alive" and "trickle" send spaces before a JSON body never sent.
ENDLESS = ("keep-alive", "trickle", "hang")


# What a small real model (SmolLM2-135M) was seen to do, replayed: restate a follow-up as the start of an answer.
RESTATED_AS_ANSWER = "The most in-demand programming languages for machine learning engineers are:"


def reply_text(model: str, messages: list[dict]) -> str:
    if messages[0]["content"].startswith("Rewrite"):
        return RESTATED_AS_ANSWER if model == "restates-an-answer" else CONDENSED
    passages = dict(re.findall(r'<passage n="(\d+)"[^>]*>\n(.*?)\n</passage>', messages[-1]["content"], flags=re.S))
    line = lambda n: passages[n].strip().splitlines()[-1][:160]  # noqa: E731
    asked = set(re.findall(r"\w+", messages[-1]["content"].rpartition("Question:")[2].lower()))

    def fact(n: str) -> str:
        """The line of passage n with a figure that shares the most words with the question (a table row)."""
        rows = [row for row in passages[n].splitlines() if re.search(r"[$%]", row)] or [line(n)]
        return max(rows, key=lambda row: len(asked & set(re.findall(r"\w+", row.lower())))).strip()

    return {
        "good": f"According to the documents, {fact('1')} [1].",
        "second": f"{fact('2')} [2]. {fact('1')} [1].",
        "bad-cite": f"The documents say {line('1')} [1], and also something else [9].",
        "no-cite": "Machine learning engineers earn a lot of money everywhere.",
        "two": f"{fact('1')} [1]. {fact('2')} [2].",
        # A real model's failures: a figure the cited passage doesn't give, with a valid marker; one sentence right
        # and one invented; the app's own note copied from the history.
        "wrong-figure": "Mid-level machine learning engineers earn $340,000 a year [1].",
        "one-wrong": f"{fact('1')} [1]. About 25% of machine learning engineers hold a PhD [1].",
        "copies-note": f"(Unsupported: this answer cites none of the documents' passages.)\n{fact('1')} [1].",
        "unsafe": f"<script>alert(1)</script>{fact('1')} ![x](http://remote.invalid/a.png) [this](javascript:alert(2)) [1].",
        "nested": f"{fact('1')} <<script>script>alert(1)<</script>/script> <<img src=x>img onerror=alert(1)> [1].\n"
        "[7]: javascript:alert(1)\nSee <javascript:alert(3)>.",
    }.get(model, f"According to the documents, {fact('1')} [1].")


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)  # type: ignore[attr-defined]
        model = body["model"]
        if model == "slow":
            time.sleep(SLOW_SECONDS)
        if model in ENDLESS:
            self._endless(model, bool(body.get("stream")))
            return
        if model == "error":
            self._send(500, "application/json", json.dumps({"error": {"message": "boom", "type": "server_error"}}))
            return
        text = reply_text(model, body["messages"])
        if not body.get("stream"):
            if model == "garbage":
                self._send(200, "application/json", "this is not json")
                return
            self._send(
                200,
                "application/json",
                json.dumps(
                    {
                        "id": "cmpl-1",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                ),
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if model == "garbage":
            self.wfile.write(b"data: {not json at all\n\n")
        else:
            for piece in re.findall(r"\S+\s*", text):
                self.wfile.write(_chunk(model, piece))
                self.wfile.flush()
            end = {
                "id": "cmpl-1",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            self.wfile.write(f"data: {json.dumps(end)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _endless(self, model: str, stream: bool) -> None:
        """Hold the request open, sending what ``model`` sends, until the client closes the connection."""
        if model == "hang":
            self.connection.recv(1)  # returns when the client hangs up: the request was read whole
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if stream else "application/json")
        self.end_headers()
        try:
            for n in itertools.count():
                if not stream:
                    piece = b" "  # JSON allows leading white space: a keep-alive some servers send
                elif model == "trickle":
                    piece = _chunk(model, f"word{n} ")
                else:
                    piece = b": keep-alive\n\n"
                self.wfile.write(piece)
                self.wfile.flush()
                time.sleep(DRIP_SECONDS)
        except OSError:
            pass  # the client hung up, as it should

    def _send(self, status: int, kind: str, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def _chunk(model: str, content: str) -> bytes:
    """One server-sent event with a piece of the answer."""
    chunk = {
        "id": "cmpl-1",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    return f"data: {json.dumps(chunk)}\n\n".encode()


class FakeLLMServer:
    """Start with `with FakeLLMServer() as server:`; `server.url` is the /v1 base URL, `server.requests` what came in."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.requests = []  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @property
    def requests(self) -> list[dict]:
        return self.httpd.requests  # type: ignore[attr-defined]

    def __enter__(self) -> FakeLLMServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
