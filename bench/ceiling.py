"""Where the answering statement is among the statements the rules rank: the prize for a better judge of them.

    python bench/ceiling.py                                                   # the four dev sets of the table
    python bench/ceiling.py eval/blind/pilots-r1.jsonl:eval/corpora/pilots    # SET:CORPUS pairs of your own

For each answerable question of a golden set, the rank of the first statement, among those the answerer ranked
for it, that holds one of the item's `answer_any` texts and comes from a passage holding its evidence. Prints a
Markdown table (rules' correct answers, then that statement ranked 1st / in the top 3 / top 10 / anywhere), the
one docs/answers-and-quality.md shows. Read-only: eval's indexes (`index/eval-<corpus>/`) are built if missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from advisor.config import PROJECT_ROOT as ROOT

DEV_SETS = (
    "eval/blind/seeds-r8.jsonl:corpus",
    "eval/blind/pilots-r1.jsonl:eval/corpora/pilots",
    "eval/blind/seeds-r7.jsonl:corpus",
    "eval/blind/careers-r7.jsonl:eval/corpora/careers",
)
CUTS = (1, 3, 10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="*", default=DEV_SETS, help="SET:CORPUS pairs (default: four dev sets)")
    args = parser.parse_args(argv)

    import advisor.chat as chat
    from advisor.answer import normalized
    from advisor.cli import eval_index
    from advisor.config import Settings
    from advisor.evaluate import judge, read_golden, replay
    from advisor.index import build

    # The answerer's first ranking of each question is what a judge would choose from: record it as it is made.
    ranked_now: list[list] = []
    rank = chat.rank_statements

    def recording(*a, **kw):  # type: ignore[no-untyped-def]
        out = rank(*a, **kw)
        ranked_now.append(out)
        return out

    chat.rank_statements = recording
    print("| set | rules: correct | right statement ranked 1st | in the top 3 | in the top 10 | anywhere |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for pair in args.sets:
        golden, corpus = (Path(p) for p in pair.split(":"))
        settings = Settings.load()
        if corpus.resolve() != (ROOT / "corpus").resolve():
            settings = eval_index(dataclasses.replace(settings, corpus_dir=corpus.resolve()))
        build(settings)
        advisor = chat.Advisor(dataclasses.replace(settings, top_k=max(settings.top_k, 10)))
        correct, ranks = 0, []
        items = [item for item in read_golden(golden) if item.answerable]
        for item in items:
            history = replay(advisor.ask, item.history)
            ranked_now.clear()
            correct += judge(item, advisor.ask(item.question, history)).correct
            ranked = ranked_now[0] if ranked_now else []
            evidence = [normalized(e) for e in item.evidence]
            expected = [normalized(a) for a in item.answer_any]
            # Each passage is read once, however many of its statements were ranked.
            passages = {s.hit.chunk.id: s.hit.chunk.text for s in ranked}
            holding = {chunk for chunk, text in passages.items() if any(e in normalized(text) for e in evidence)}
            ranks.append(
                next(
                    (
                        i
                        for i, s in enumerate(ranked)
                        if s.hit.chunk.id in holding
                        and any(a in normalized(" ".join((_said_under(s.unit), s.unit.text, *s.unit.lines))) for a in expected)
                    ),
                    None,
                )
            )
        n = len(items) or 1
        within = [sum(r is not None and r < k for r in ranks) / n for k in CUTS]
        anywhere = sum(r is not None for r in ranks) / n
        cells = " | ".join(f"{v:.3f}" for v in (correct / n, *within, anywhere))
        print(f"| {golden.stem} ({len(items)}) | {cells} |", flush=True)
    return 0


def _said_under(unit) -> str:  # type: ignore[no-untyped-def]
    """The lead-in or table title an item or row is said under in an answer (a sentence's heading is not said)."""
    return unit.context if unit.kind in ("item", "row") else ""


if __name__ == "__main__":
    sys.exit(main())
