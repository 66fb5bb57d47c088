"""Check a training batch: every line well formed, every evidence an exact substring of its document's text."""

import html
import json
import re
import sys
from collections import Counter
from pathlib import Path

KINDS = {"answerable", "unanswerable", "followup", "multi"}


def text_of(path: Path) -> str:
    raw = path.read_text(encoding="utf-8")
    if path.suffix in (".html", ".htm"):
        # a table row reads as "| cell | cell |", the same as a Markdown row
        raw = re.sub(r"<tr[^>]*>", "\n| ", raw, flags=re.I)
        raw = re.sub(r"</t[dh]>", " | ", raw, flags=re.I)
        raw = html.unescape(re.sub(r"<[^>]+>", " ", raw))
    return re.sub(r"\s+", " ", raw)


def main(batch: str) -> int:
    root = Path(batch)
    docs = {p.name: text_of(p) for p in sorted((root / "docs").iterdir())}
    bad, kinds, per_doc = 0, Counter(), Counter()
    for n, line in enumerate((root / "questions.jsonl").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
        except json.JSONDecodeError as exc:
            print(f"line {n}: bad JSON: {exc}")
            bad += 1
            continue
        problems = []
        if q.get("doc") not in docs:
            problems.append(f"doc {q.get('doc')!r} not in docs/")
        if q.get("kind") not in KINDS:
            problems.append(f"kind {q.get('kind')!r}")
        if not isinstance(q.get("question"), str) or not q["question"].strip():
            problems.append("empty question")
        hist = q.get("history", [])
        if not isinstance(hist, list) or any(set(h) != {"role", "content"} for h in hist):
            problems.append("history must be a list of {role, content}")
        if q.get("kind") == "followup" and not hist:
            problems.append("a followup needs history")
        ev = q.get("evidence", [])
        if q.get("kind") in ("answerable", "followup", "multi") and not ev:
            problems.append("needs evidence")
        if q.get("kind") == "unanswerable" and ev:
            problems.append("unanswerable must have empty evidence")
        text = docs.get(q.get("doc"), "")
        for e in ev:
            if re.sub(r"\s+", " ", e) not in text:
                problems.append(f"evidence not found verbatim: {e[:80]!r}")
        if problems:
            bad += 1
            print(f"line {n}: " + "; ".join(problems))
        kinds[q.get("kind")] += 1
        per_doc[q.get("doc")] += 1
    print(f"{len(docs)} docs, {sum(kinds.values())} questions {dict(kinds)}, {bad} bad lines")
    few = {d: c for d, c in per_doc.items() if c < 50}
    if few:
        print("docs with under 50 questions:", few)
    missing = set(docs) - set(per_doc)
    if missing:
        print("docs with no questions:", sorted(missing))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
