"""Command line: `advisor index | ask | search | eval | serve` (also `python -m advisor …`; `python app.py` is serve)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import sys
import textwrap
from pathlib import Path
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from advisor import stores
from advisor.config import PROJECT_ROOT, Settings, add_arguments, quiet_environment
from advisor.errors import AdvisorError, IndexUnwritable
from advisor.index import WAIT_SECONDS, BuildReport, IndexStatus, build, index_status
from advisor.plan import plan
from advisor.types import Answer, Hit

if TYPE_CHECKING:
    from advisor.service import AdvisorService

DEVSET = PROJECT_ROOT / "eval" / "devset.jsonl"
THRESHOLDS = PROJECT_ROOT / "eval" / "thresholds.json"
MAX_REQUEST_BYTES = 4 * 2**20  # one `ask --jsonl` line: a question and far more history than is read (chat.bound_history)
# Which settings each command takes as flags (config.GROUPS); the rest still come from ADVISOR_* variables.
COMMAND_SETTINGS = {
    "index": ("corpus", "store"),
    "ask": ("corpus", "store", "answer", "llm"),
    "eval": ("corpus", "store", "answer", "llm"),
    "search": ("corpus", "store", "search"),
    "serve": ("corpus", "store", "answer", "llm", "serve"),
}


def main(argv: list[str] | None = None, prog: str = "advisor") -> int:
    """Run one command; returns the process exit code (0 ok, 1 stale index or below threshold, 2 error)."""
    quiet_environment()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # the training recipe has flags of its own and needs no index
        from advisor import train

        return train.main(argv[1:], prog=f"{prog} train")
    args = parser(prog).parse_args(argv)
    # Progress and what a build did go to stdout for `index` and `serve`; elsewhere stdout carries the answer.
    human = sys.stderr if args.command in ("ask", "eval", "search") or getattr(args, "json", False) else sys.stdout
    _log_to(human, logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO)
    try:
        settings = Settings.from_args(args)
        if args.command == "index":
            return _status(settings, args.json) if args.status else _index(settings, args.full, args.json, args.wait, human)
        if args.command == "ask":
            return _ask_jsonl(settings) if args.jsonl else _ask(settings, args.question)
        if args.command == "eval":
            if args.corpus_dir is not None and args.index_dir is None and not os.environ.get("ADVISOR_INDEX", "").strip():
                settings = eval_index(settings)
            return _eval(settings, args)
        if args.command == "serve":
            return _serve(settings)
        return _search(settings, args.query, settings.top_k, args.json)
    except AdvisorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def eval_index(settings: Settings) -> Settings:
    """``settings`` with the index of another corpus in ``<index>/eval-<corpus folder name>/``, so scoring it never
    replaces the app's index."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", settings.corpus_dir.name).strip("-") or "corpus"
    return dataclasses.replace(settings, index_dir=settings.index_dir / f"eval-{name}")


def parser(prog: str = "advisor") -> argparse.ArgumentParser:
    """The argument parser: one sub-command each, with the settings flags of config.add_arguments."""
    top = argparse.ArgumentParser(prog=prog, description="Career Advisor: cited answers from your career documents.")
    commands = top.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, **kwargs: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, **kwargs)
        add_arguments(sub, *COMMAND_SETTINGS[name])
        loud = sub.add_mutually_exclusive_group()
        loud.add_argument("-v", "--verbose", action="store_true", help="also log details (debug level)")
        loud.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
        return sub

    index = command(
        "index",
        "build or update the index incrementally",
        description="Embed new and changed documents, drop removed ones, keep the rest.",
    )
    index.add_argument("--full", action="store_true", help="re-embed every document")
    index.add_argument(
        "--status", action="store_true", help="only report whether the index matches the corpus (exit 0 fresh, 1 stale)"
    )
    index.add_argument("--json", action="store_true", help="end the output with one JSON line (human text goes to stderr)")
    index.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long if another build is running")
    ask = command("ask", "answer a question with numbered, cited sources")
    ask.add_argument("question", nargs="?", help="the question (omit with --jsonl)")
    ask.add_argument(
        "--jsonl",
        action="store_true",
        help='read {"question", "history"} JSON lines on stdin; write one JSON answer line for each',
    )
    evaluate = command(
        "eval",
        "score answers on a golden set, beside the naive recipe",
        epilog="With --corpus (and no --index) the index is built in <index>/eval-<corpus folder name>/, "
        "leaving the app's index alone.",
    )
    evaluate.add_argument(
        "file", nargs="?", type=Path, default=DEVSET, help="golden set of JSON lines (default eval/devset.jsonl)"
    )
    evaluate.add_argument("--json", action="store_true", help="print the scores as one JSON line")
    evaluate.add_argument("--check", action="store_true", help="exit 1 when a metric is below its threshold")
    evaluate.add_argument("--thresholds", type=Path, default=THRESHOLDS, help="JSON of metric minimums for --check")
    evaluate.add_argument("--failures", action="store_true", help="list the questions the advisor got wrong")
    evaluate.add_argument(
        "--results",
        type=Path,
        metavar="FILE",
        help="write one JSON line per question: what was asked, the answer, and how it was judged",
    )
    evaluate.add_argument(
        "--report", type=Path, metavar="FILE", help="write the scores as a Markdown table (docs/results/quality-*.md)"
    )
    commands.add_parser("train", help="retrain the answer model from train/data (see `advisor train --help`)", add_help=False)
    search = command("search", "print the passages that best match a query")
    search.add_argument("query")
    search.add_argument("--json", action="store_true", help="print the hits as one JSON line")
    command("serve", "bring the index up to date and serve the chat in the browser (what `python app.py` runs)")
    return top


def _log_to(stream: TextIO, level: int) -> None:
    """Send the library's log records (logger "advisor") to ``stream`` as plain lines."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("advisor")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def _serve(settings: Settings) -> int:
    """Load the model once and serve the chat (blocks until stopped), from an index brought up to date first,
    or, when an index of these settings is already there, from that one while it is updated in the background."""
    # Checked first, so a second copy of the app says so at once instead of building, announcing and failing.
    taken = port_in_use(settings.host, settings.port)
    if taken:
        print(_port_error(settings, taken), file=sys.stderr)
        return 2
    from advisor.judge import get_answer_model
    from advisor.service import AdvisorService
    from advisor.ui import launch

    get_answer_model(settings.answer_model).load()  # a missing or damaged model: its fix, before any build
    service = _serve_previous(settings)
    if service is None:
        try:
            report = build(settings, progress=True, wait=WAIT_SECONDS)
            print(format_report(report, settings), flush=True)
        except IndexUnwritable as exc:  # read-only or full: the index already there still serves
            print(f"warning: {exc}; serving the index as it is", file=sys.stderr, flush=True)
        service = AdvisorService(settings)
    mode = f"answers written by {settings.llm_model} at {settings.llm_base_url}" if settings.llm else "no LLM"
    print(f"Career Advisor is serving on http://{settings.host}:{settings.port} ({mode})", flush=True)
    try:
        launch(service)
    except OSError as exc:  # the port was taken since the check (Gradio's message names its own variables)
        print(_port_error(settings, port_in_use(settings.host, settings.port) or str(exc)), file=sys.stderr)
        return 2
    return 0


def _serve_previous(settings: Settings) -> AdvisorService | None:
    """The index already built under these settings, served now and updated in the background when the corpus
    has changed, so a restart serves within seconds whatever the corpus now holds; None when there is no such
    index (none yet, damaged, another model or splitter), which must be built first."""
    from advisor.service import AdvisorService

    p = plan(settings)
    if p.manifest is None or p.unusable or p.mismatch or p.move:
        return None
    try:
        service = AdvisorService(settings)
    except AdvisorError:  # damaged in a way only opening it shows (a checksum): rebuilt first
        return None
    if p.corpus_changed:
        print(
            f"The documents changed since the last build ({p.changes()}): updating the index in the background; "
            "answers come from the previous index meanwhile.",
            flush=True,
        )
        service.rebuild()
    return service


def port_in_use(host: str, port: int) -> str:
    """Why the app could not listen on ``host:port`` ("Address already in use"), or "" when it can."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot resolve {host} ({exc.strerror or exc})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As the server itself will bind: a port left in TIME_WAIT by an earlier run counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return ""


def _port_error(settings: Settings, reason: str) -> str:
    other = settings.port + 1 if settings.port < 65535 else 7860
    return (
        f"error: cannot serve on {settings.host}:{settings.port}: {reason} (is Career Advisor already running?); "
        f"choose another port with --port {other} or ADVISOR_PORT={other}"
    )


def _index(settings: Settings, full: bool, as_json: bool, wait: float, out: TextIO) -> int:
    report = build(settings, full=full, progress=True, wait=wait)
    print(format_report(report, settings), file=out)
    if as_json:
        print(json.dumps(report.to_json()), flush=True)
    return 0


def format_report(report: BuildReport, settings: Settings) -> str:
    """A short human summary of a build: what changed, what was skipped and why."""
    lines = [
        f"  {label:<9} {source}"
        for label, sources in (("added", report.added), ("changed", report.changed), ("removed", report.removed))
        for source in sources
    ]
    lines += [f"  skipped   {s.source}: {s.reason}" for s in report.skipped]
    where = f"{_short(settings.index_dir)}/ from {_short(settings.corpus_dir)}/"
    if elsewhere := stores.elsewhere(settings):
        where += f" (vectors in {elsewhere})"
    if not report.wrote:
        lines.append(
            f"Index {where} is up to date: {_count(report.documents, 'document')}, {_count(report.chunks_total, 'passage')}."
        )
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
        print(
            f"Index is up to date: {_count(status.documents, 'document')}, {_count(status.chunks, 'passage')}, "
            f"built {status.built_at}; vectors in {status.store}.",
            file=out,
        )
        return
    print(f"Index is stale: {status.reason}", file=out)
    for label, sources in (("added", status.added), ("changed", status.changed), ("removed", status.removed)):
        for source in sources:
            print(f"  {label:<9} {source}", file=out)


def _ready(settings: Settings) -> None:
    """Check the answer model loads, then bring the index up to date before answering (a no-op, without loading
    the embedding model, when it is)."""
    from advisor.judge import get_answer_model

    get_answer_model(settings.answer_model).load()  # a missing or damaged model stops here with its fix, not mid-answer
    try:
        report = build(settings, progress=True, wait=WAIT_SECONDS)
    except IndexUnwritable as exc:  # read-only or full: the index already there still answers
        print(f"warning: {exc}; answering from the index as it is", file=sys.stderr)
        return
    if report.wrote:
        print(format_report(report, settings), file=sys.stderr)


def _ask(settings: Settings, question: str | None) -> int:
    from advisor.chat import Advisor

    if not question:
        print('error: give a question, e.g. python -m advisor ask "What do ML engineers earn?", or use --jsonl', file=sys.stderr)
        return 2
    _ready(settings)
    streamed, answer = "", None
    for answer in Advisor(settings).ask_stream(question):
        if answer.kind == "partial":  # an LLM writing: print its sentences as each passes the check
            print(answer.text[len(streamed) :] if answer.text.startswith(streamed) else f"\n{answer.text}", end="", flush=True)
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
            lines += [
                textwrap.fill(line, width, initial_indent="    ", subsequent_indent="    ")
                for line in chunk.text.splitlines()
                if line.strip()
            ]
    return "\n" + "\n".join(lines) if lines else ""


def _ask_jsonl(settings: Settings) -> int:
    from advisor.chat import Advisor

    _ready(settings)
    advisor = Advisor(settings)
    for number, line in enumerate(_request_lines(sys.stdin.buffer), start=1):
        if line is not None and not line.strip():
            continue
        try:
            if line is None:
                problem = f"the line is over {MAX_REQUEST_BYTES // 2**20} MB; send the question and only the recent history"
            else:
                request = json.loads(line.decode("utf-8"))
                if not isinstance(request, dict):
                    raise TypeError("each line must be a JSON object")
                question, history = request["question"], request.get("history") or []
                if not isinstance(question, str) or not isinstance(history, list):
                    raise TypeError("'question' must be a string and 'history' a list")
                _print_json(advisor.ask(question, history).to_json())
                continue
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            problem = _problem(exc)
        # One bad line gets an error reply in its place, so replies stay aligned with requests.
        _print_json({"answer": "", "grounded": False, "sources": [], "error": f"line {number}: {problem}"})
    return 0


def _request_lines(stream: BinaryIO) -> Iterator[bytes | None]:
    """Each line of ``stream`` as bytes, or None for a line over MAX_REQUEST_BYTES (its bytes are skipped unread,
    so one huge line costs no memory)."""
    while True:
        line = stream.readline(MAX_REQUEST_BYTES + 1)
        if not line:
            return
        if len(line) <= MAX_REQUEST_BYTES or line.endswith(b"\n"):
            yield line
            continue
        while (rest := stream.readline(MAX_REQUEST_BYTES)) and not rest.endswith(b"\n"):
            pass
        yield None


def _problem(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 (byte 0x{exc.object[exc.start]:02x} at {exc.start})"
    if isinstance(exc, RecursionError):
        return "the JSON is nested too deeply"
    if isinstance(exc, KeyError):
        return f"missing {exc}"
    return repr(exc)


def _print_json(reply: dict[str, object]) -> None:
    """One JSON line on stdout, in plain Unicode where stdout's encoding can take it and \\u escapes where not
    (a lone surrogate from a "\\ud800" in a request, a terminal set to ASCII)."""
    line = json.dumps(reply, ensure_ascii=False)
    try:
        line.encode(sys.stdout.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        line = json.dumps(reply)
    print(line, flush=True)


def _progress(label: str, as_json: bool) -> Callable[[Sequence[Any]], Iterable[Any]] | None:
    """A progress bar over a golden set's questions, on a terminal only: nothing is added to `--json` output
    or to a log when stderr is piped."""
    if as_json or not sys.stderr.isatty():
        return None
    import shutil

    from tqdm import tqdm

    # The terminal's size as shutil reads it: one that reports none (0 x 0) gets 80 x 24, not a hidden bar.
    size = shutil.get_terminal_size()
    return lambda items: tqdm(
        items, desc=label, unit="question", file=sys.stderr, leave=False, ncols=size.columns, nrows=size.lines
    )


def _eval(settings: Settings, args: argparse.Namespace) -> int:
    from dataclasses import replace

    from advisor.chat import Advisor
    from advisor.embed import get_embedder
    from advisor.evaluate import (
        KINDS,
        GoldenSetError,
        NaiveRecipe,
        check as below,
        evaluate,
        fingerprint,
        read_golden,
        report_markdown,
        result_record,
        summarize,
    )

    path, thresholds_path, results = args.file, args.thresholds, args.results

    items = read_golden(path)
    _ready(settings)
    advisor = Advisor(replace(settings, top_k=max(settings.top_k, 10)))
    ours = evaluate(advisor.ask, items, _progress("advisor", args.json))
    store = advisor.retriever.index.store.label()
    naive_recipe = NaiveRecipe(settings.corpus_dir, get_embedder(settings.model))
    naive = evaluate(naive_recipe.ask, items, _progress("naive recipe", args.json))
    scores, baseline = summarize(ours), summarize(naive)
    if results is not None:
        with results.open("w", encoding="utf-8") as out:
            for mine, theirs in zip(ours, naive):
                out.write(
                    json.dumps(
                        {**result_record(mine), "naive_correct": theirs.correct, "naive_declined": theirs.declined},
                        ensure_ascii=False,
                    )
                    + "\n"
                )
    problems: list[str] = []
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(report_markdown(_short(path), items, scores, baseline, fingerprint(ours), store), encoding="utf-8")
    if args.check:
        try:
            problems = below(scores, json.loads(thresholds_path.read_text()))
        except (OSError, ValueError) as exc:
            raise GoldenSetError(f"cannot read thresholds {thresholds_path}: {exc}") from None
    if args.json:
        print(
            json.dumps(
                {
                    "file": str(path),
                    "advisor": scores.as_dict(),
                    "naive": baseline.as_dict(),
                    "below_threshold": problems,
                    "store": store,
                    "fingerprint": fingerprint(ours),
                }
            )
        )
    else:
        counts = ", ".join(f"{sum(1 for i in items if i.kind == k)} {k}" for k in KINDS)
        print(f"Golden set {path} ({len(items)} questions: {counts})\n")
        print(f"{'metric':<22}{'advisor':>10}{'naive recipe':>15}")
        for name, value in scores.as_dict().items():
            if name != "questions":
                print(f"{name:<22}{value:>10.3f}{baseline.as_dict()[name]:>15.3f}")
        print(
            f"\nVectors in {store}; retrieval fingerprint {fingerprint(ours)} (the same with another store means "
            "every question ranked the same passages and got the same answer)"
        )
        if args.failures:
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
    from advisor.retrieve import Retriever

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
        for line in chunk.text.splitlines()
        if line.strip()
    )
    return f"[{hit.rank}] {hit.score:.3f}  {where}{section}\n{body}\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _short(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
