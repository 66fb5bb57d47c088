"""Answers through a real LLM server: what the claim check kept, removed and fell back on, and the time per answer.

    python bench/llm.py --start                                   # SmolLM2 on llama.cpp, first 25 dev-set questions
    python bench/llm.py --url http://127.0.0.1:8080/v1 --model local --questions 40 --out /tmp/llm.json

--start builds (once, about 5 minutes on 2 cores) and starts llama.cpp's server with SmolLM2-135M (tests/llama_server.py);
otherwise the server at --url must already run. Writes docs/results/llm.json (every question, the reply the model
wrote, what was shown, the documents' own answer, both judged as `advisor eval` judges) and docs/results/llm.md
(the table docs/llm.md includes).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from advisor.config import PROJECT_ROOT as ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="the server's OpenAI-compatible base URL")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--start", action="store_true", help="build and start SmolLM2 on llama.cpp's server")
    parser.add_argument("--questions", type=int, default=25, help="the first N questions of eval/devset.jsonl")
    parser.add_argument("--index", type=Path, help="the index of corpus/ (default: the configured one)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per answer")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "llm.json")
    args = parser.parse_args(argv)

    from advisor.chat import UNCHECKED, Advisor
    from advisor.claims import claims_of
    from advisor.config import Settings
    from advisor.evaluate import judge, read_golden, replay
    from advisor.llm import LLMClient
    from advisor.types import MARKER

    server = None
    if args.start:
        sys.path.insert(0, str(ROOT / "tests"))
        import llama_server

        log = ROOT / "bench" / "results" / "llama-server.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        server = llama_server.start(llama_server.ensure_built(), log)
        args.url = server.url
    elif not args.url:
        parser.error("give --url of a running server, or --start")
    settings = Settings.load()
    if args.index:
        settings = replace(settings, index_dir=args.index)
    settings = replace(settings, llm_base_url=args.url, llm_model=args.model, llm_timeout=args.timeout)
    plain = Advisor(replace(settings, llm_base_url="", llm_model=""))
    advisor = Advisor(settings)
    written: list[str] = []
    prompts: list[str] = []
    real_complete = LLMClient.complete

    def recording(self: LLMClient, messages: list, *a: object, **k: object) -> str:
        text = real_complete(self, messages, *a, **k)
        if not messages[0]["content"].startswith("Rewrite"):
            written.append(text)
            prompts.append(messages[-1]["content"])
        return text

    LLMClient.complete = recording  # type: ignore[method-assign]  # keep what the model wrote, to report it
    removed: list[str] = []

    class Removed(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("Removed"):
                removed.append(record.getMessage())

    chat_log = logging.getLogger("advisor.chat")
    chat_log.setLevel(logging.INFO)
    chat_log.addHandler(Removed())
    rows = []
    for item in read_golden(ROOT / "eval" / "devset.jsonl")[: args.questions]:
        history = replay(advisor.ask, item.history)
        written.clear()  # what the model wrote for the replayed turns is not this question's reply
        removed.clear()
        began = time.perf_counter()
        answer = advisor.ask(item.question, history)
        seconds = time.perf_counter() - began
        outcome = (
            "fallback: unchecked"
            if answer.note == UNCHECKED
            else "fallback: no answer"
            if answer.note.startswith("(The language model did not answer")
            else "LLM"
            if written
            else "no LLM call"
        )
        documents = plain.ask(item.question, history)
        sentences = [c for line in claims_of(written[-1]) for c in line] if written else []
        rows.append(
            {
                "question": item.question,
                "history": history,
                "written": written[-1] if written else "",
                "prompt": prompts[-1] if prompts else "",  # the passages the model was given, as it got them
                "sentences_written": len(sentences),
                "sentences_citing": sum(bool(MARKER.search(c)) for c in sentences),
                "removed": removed[-1] if removed else "",
                "shown": answer.text,
                "outcome": outcome,
                "seconds": round(seconds, 2),
                "documents_answer": documents.text,
                "passages": [c.chunk.text for c in answer.citations],
                "correct": judge(item, answer).correct,
                "documents_answer_correct": judge(item, documents).correct,
            }
        )
        print(f"{outcome:<20} {seconds:5.1f} s  {item.question[:70]}", file=sys.stderr)
    if server:
        server.stop()
    summary = _summary(rows, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "answers": rows}, indent=1), encoding="utf-8")
    args.out.with_suffix(".md").write_text(_markdown(summary), encoding="utf-8")
    print(json.dumps(summary, indent=1))
    if args.out.parent == ROOT / "docs" / "results":
        subprocess.run([sys.executable, str(ROOT / "bench" / "include.py")], check=True)  # the table in docs/llm.md
    return 0


def _summary(rows: list[dict], args: argparse.Namespace) -> dict:
    times = sorted(r["seconds"] for r in rows)
    count = lambda outcome: sum(1 for r in rows if r["outcome"] == outcome)  # noqa: E731
    return {
        "model": args.model,
        "questions": len(rows),
        "kept_from_llm": count("LLM"),
        "fallback_unchecked": count("fallback: unchecked"),
        "fallback_no_answer": count("fallback: no answer"),
        "no_llm_call": count("no LLM call"),
        "replies_with_a_sentence_removed": sum(1 for r in rows if r["removed"]),
        "sentences_written": sum(r["sentences_written"] for r in rows),
        "sentences_citing": sum(r["sentences_citing"] for r in rows),
        "correct": sum(r["correct"] for r in rows),
        "documents_answer_correct": sum(r["documents_answer_correct"] for r in rows),
        "median_s": round(statistics.median(times), 2) if times else 0.0,
        "p95_s": round(times[min(len(times) - 1, int(0.95 * len(times)))], 2) if times else 0.0,
    }


def _markdown(s: dict) -> str:
    header = [
        "questions",
        "model's sentences (citing a passage)",
        "LLM's answer shown (checked)",
        "documents' answer: LLM text failed the check",
        "documents' answer: LLM failed",
        "declined or small talk (no LLM)",
        "replies with a sentence removed",
        "correct (without the LLM)",
        "time per answer, median / p95",
    ]
    cells = [
        s["questions"],
        f"{s['sentences_written']} ({s['sentences_citing']})",
        s["kept_from_llm"],
        s["fallback_unchecked"],
        s["fallback_no_answer"],
        s["no_llm_call"],
        s["replies_with_a_sentence_removed"],
        f"{s['correct']} ({s['documents_answer_correct']})",
        f"{s['median_s']:g} s / {s['p95_s']:g} s",
    ]
    return (
        f"Measured {time.strftime('%Y-%m-%d')} by `python bench/llm.py` with `{s['model']}`, on the first "
        f"{s['questions']} dev-set questions over the shipped articles:\n\n"
        + "| "
        + " | ".join(header)
        + " |\n"
        + "|"
        + " ---: |" * len(header)
        + "\n"
        + "| "
        + " | ".join(str(c) for c in cells)
        + " |\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
