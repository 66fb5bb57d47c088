"""Copy the generated figures in docs/results/*.md into the docs pages' include blocks (never retyped by hand).

    python bench/include.py          # refresh every block; prints the pages it changed
    python bench/include.py --check  # exit 1 when a block differs from its results file

A block is ``<!-- include results/NAME.md -->`` … ``<!-- end include -->``; bench/run.py and
`advisor eval --report` write the results files, and bench/run.py runs this afterwards.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"(<!-- include (results/[\w.-]+\.md) -->\n)(.*?)(<!-- end include -->)", re.DOTALL)


def refreshed(page: str, docs: Path = DOCS) -> str:
    """``page`` with every include block holding its results file (a missing file leaves a note instead)."""

    def fill(match: re.Match[str]) -> str:
        source = docs / match.group(2)
        body = (
            source.read_text(encoding="utf-8")
            if source.is_file()
            else f"*(no figures yet: run bench/run.py to write {match.group(2)})*\n"
        )
        return f"{match.group(1)}{body if body.endswith(chr(10)) else body + chr(10)}{match.group(4)}"

    return BLOCK.sub(fill, page)


def refresh(docs: Path = DOCS, check: bool = False) -> list[Path]:
    """Refresh (or, with ``check``, only compare) every page in ``docs``; returns the pages that differ."""
    stale = []
    for path in sorted(docs.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        new = refreshed(text, docs)
        if new != text:
            stale.append(path)
            if not check:
                path.write_text(new, encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report pages whose blocks are out of date")
    args = parser.parse_args(argv)
    stale = refresh(check=args.check)
    for path in stale:
        print(f"{'out of date' if args.check else 'refreshed'}: {path.relative_to(DOCS.parent)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
