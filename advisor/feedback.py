"""Append likes and dislikes to a JSONL file that `python -m advisor eval` takes as a golden set once reviewed."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

from advisor.query import is_followup, message_text
from advisor.types import Answer

FEEDBACK_FILE = "feedback.jsonl"
_WRITE = threading.Lock()  # several users may vote at once


def record_vote(folder: Path, question: str, history: Sequence[dict[str, Any]], answer: Answer, liked: bool) -> Path:
    """Append one vote; returns the file. Each line is a golden-set item plus what was shown and the vote.

    A person turns it into an eval item by filling in "evidence" (text a correct source must contain) and
    "answer_any" (text a correct answer must contain), or by keeping "kind" as a decline.
    """
    turns = [{"role": m.get("role", ""), "content": message_text(m.get("content"))} for m in history]
    if answer.grounded:
        kind = "followup" if turns and is_followup(question) else "fact"
    else:
        kind = "chitchat" if answer.kind == "chitchat" else "out_of_scope"
    entry = {
        "question": question,
        "history": turns,
        "kind": kind,
        "evidence": [],
        "answer_any": [],
        "vote": "up" if liked else "down",
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        **{k: v for k, v in answer.to_json().items() if k in ("answer", "grounded", "sources")},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FEEDBACK_FILE
    with _WRITE, path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return path
