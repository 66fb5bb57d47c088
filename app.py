"""Career Advisor app: builds the index if it is missing or stale (the chat UI comes next)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from advisor.cli import format_report
from advisor.config import Settings
from advisor.errors import AdvisorError
from advisor.index import build


def main(argv: list[str] | None = None) -> int:
    """Parse flags, bring the index up to date, and say what to do next."""
    parser = argparse.ArgumentParser(description="Career Advisor: chat with the ML-engineer career corpus.")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    parser.add_argument("--corpus", type=Path, help="folder of documents (env ADVISOR_CORPUS)")
    parser.add_argument("--index", type=Path, help="folder for the built index (env ADVISOR_INDEX)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.load(corpus_dir=args.corpus, index_dir=args.index)
        report = build(settings, progress=True, wait=600, log=print)
    except AdvisorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(report, settings))
    print("The browser chat is not built yet. Meanwhile, ask from the terminal:")
    print('  python -m advisor ask "What do ML engineers earn?"')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
