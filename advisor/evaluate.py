"""Score the advisor, and the naive LangChain-tutorial recipe beside it, on a golden set of questions."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from advisor.answer import normalized
from advisor.embed import Embedder
from advisor.errors import AdvisorError
from advisor.load import LoadError, load_document, scan_corpus
from advisor.types import MARKER, Answer, Chunk, Citation, Hit

KINDS = ("fact", "followup", "out_of_scope", "chitchat")


class GoldenSetError(AdvisorError):
    """A golden-set file is missing or has a malformed line."""


@dataclass(frozen=True)
class GoldenItem:
    """One question of a golden set and what a good answer must show."""

    question: str
    history: tuple[dict[str, str], ...]
    evidence: tuple[str, ...]  # any of these must appear in a cited (and, for hit@k, a retrieved) passage
    answer_any: tuple[str, ...]  # any of these must appear in the answer
    kind: str  # "fact" | "followup" | "out_of_scope" | "chitchat"

    @property
    def answerable(self) -> bool:
        """Whether the corpus answers it (fact or follow-up) rather than it being declined."""
        return self.kind in ("fact", "followup")


@dataclass(frozen=True)
class Result:
    """How one system did on one item."""

    item: GoldenItem
    answer: Answer
    rank: int | None  # 1-based rank of the first retrieved passage holding the evidence
    correct: bool  # states the fact, citing a passage that holds the evidence
    declined: bool  # no sources and not grounded
    citations_valid: bool
    quotes_verified: bool
    words: int
    history: tuple[dict[str, Any], ...] = ()  # the conversation as asked: empty assistant turns replayed


@dataclass(frozen=True)
class Scores:
    """The golden-set metrics of one system."""

    hit_at_1: float
    hit_at_3: float
    mrr: float
    answer_accuracy: float
    followup_accuracy: float
    refusal_accuracy: float
    in_scope_answered: float  # answerable questions not refused (1 - the "in-scope refused" rate)
    out_of_scope_declined: float  # out-of-scope questions declined (small talk aside)
    citations_valid: float
    quotes_verified: float
    median_answer_words: float
    questions: int

    def as_dict(self) -> dict[str, float]:
        """Metric name -> value."""
        return asdict(self)


def read_golden(path: Path) -> list[GoldenItem]:
    """Read a golden set of JSON lines, naming the line of any malformed item."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise GoldenSetError(f"cannot read golden set {path}: {exc.strerror or exc}") from None
    items = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            kind = data.get("kind", "fact")
            if kind not in KINDS:
                raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
            item = GoldenItem(
                str(data["question"]),
                tuple(data.get("history") or ()),
                tuple(data.get("evidence") or ()),
                tuple(data.get("answer_any") or ()),
                kind,
            )
            if item.answerable and not (item.evidence and item.answer_any):
                raise ValueError("a fact or followup item needs 'evidence' and 'answer_any'")
        except (ValueError, KeyError, TypeError) as exc:
            raise GoldenSetError(f"{path} line {number}: {exc}") from None
        items.append(item)
    if not items:
        raise GoldenSetError(f"{path} holds no questions")
    return items


def judge(item: GoldenItem, answer: Answer) -> Result:
    """Score one answer against its golden item."""
    evidence = [normalized(e) for e in item.evidence]
    rank = next((h.rank for h in answer.hits if any(e in normalized(h.chunk.text) for e in evidence)), None)
    cited = [normalized(c.chunk.text) for c in answer.citations]
    states = any(normalized(a) in normalized(answer.text) for a in item.answer_any)
    correct = answer.grounded and states and any(e in text for e in evidence for text in cited)
    markers = {int(n) for n in MARKER.findall(answer.text)}
    numbers = {c.n for c in answer.citations}
    valid = markers == numbers and numbers == set(range(1, len(numbers) + 1))
    verified = all(q in c.chunk.text for c in answer.citations for q in c.quotes)
    words = len(MARKER.sub("", answer.text).split())
    return Result(item, answer, rank, correct, not answer.grounded and not answer.citations, valid, verified, words)


def evaluate(
    ask: Callable[[str, Sequence[dict[str, Any]]], Answer],
    items: Sequence[GoldenItem],
    progress: Callable[[Sequence[GoldenItem]], Iterable[GoldenItem]] | None = None,
) -> list[Result]:
    """Ask every item's question (with its history, replayed) and judge the answers; ``progress`` wraps the items
    (a progress bar) when given."""
    results = []
    for item in progress(items) if progress else items:
        history = replay(ask, item.history)
        results.append(replace(judge(item, ask(item.question, history)), history=tuple(history)))
    return results


def replay(ask: Callable[[str, Sequence[dict[str, Any]]], Answer], history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as this system would have had it: an assistant turn left empty in a golden item is
    filled with the system's own reply to the user turn before it, so a follow-up builds on what it really said."""
    turns: list[dict[str, Any]] = []
    for message in history:
        if message.get("role") == "assistant" and not message.get("content") and turns and turns[-1].get("role") == "user":
            message = {"role": "assistant", "content": ask(str(turns[-1].get("content") or ""), list(turns[:-1])).text}
        turns.append(dict(message))
    return turns


def summarize(results: Sequence[Result]) -> Scores:
    """The metrics over a list of results."""
    answerable = [r for r in results if r.item.answerable]
    followups = [r for r in results if r.item.kind == "followup"]
    declines = [r for r in results if not r.item.answerable]
    grounded = [r.words for r in results if r.answer.grounded]

    def share(rows: Sequence[Result], test: Callable[[Result], bool]) -> float:
        return round(sum(1 for r in rows if test(r)) / len(rows), 4) if rows else 0.0

    return Scores(
        hit_at_1=share(answerable, lambda r: r.rank == 1),
        hit_at_3=share(answerable, lambda r: r.rank is not None and r.rank <= 3),
        mrr=round(sum(1 / r.rank for r in answerable if r.rank) / len(answerable), 4) if answerable else 0.0,
        answer_accuracy=share(answerable, lambda r: r.correct),
        followup_accuracy=share(followups, lambda r: r.correct),
        refusal_accuracy=share(declines, lambda r: r.declined),
        in_scope_answered=share(answerable, lambda r: not r.declined),
        out_of_scope_declined=share([r for r in results if r.item.kind == "out_of_scope"], lambda r: r.declined),
        citations_valid=share([r for r in results if r.answer.citations], lambda r: r.citations_valid),
        quotes_verified=share([r for r in results if r.answer.citations], lambda r: r.quotes_verified),
        median_answer_words=float(statistics.median(grounded)) if grounded else 0.0,
        questions=len(results),
    )


def result_record(result: Result) -> dict[str, Any]:
    """One judged question as plain JSON (for `eval --results`)."""
    item, answer = result.item, result.answer
    return {
        "question": item.question,
        "kind": item.kind,
        "history": list(result.history),
        "answer": answer.text,
        "answer_kind": answer.kind,
        "correct": result.correct,
        "declined": result.declined,
        "rank": result.rank,
        "words": result.words,
        "sources": [f"{c.chunk.source} — {c.chunk.section}" for c in answer.citations],
    }


def fingerprint(results: Sequence[Result]) -> str:
    """A digest of every question's ranked passage ids and answer: equal digests mean the same retrieval results
    (the same corpus indexed in FAISS and in Milvus, say)."""
    import hashlib

    rows = [[[h.chunk.id for h in r.answer.hits], r.answer.text] for r in results]
    return hashlib.sha256(json.dumps(rows).encode("utf-8")).hexdigest()[:16]


class NaiveRecipe:
    """The LangChain-tutorial setup: RecursiveCharacterTextSplitter(1000, 200), the same model, exact inner-product
    search (what FAISS flat computes), the question alone (no history); with no LLM, its answer is the best chunk."""

    def __init__(self, corpus_dir: Path, embedder: Embedder, k: int = 10) -> None:
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
        self.embedder, self.k = embedder, k
        self.chunks: list[Chunk] = []
        files, _ = scan_corpus(corpus_dir)
        for file in files:
            try:
                doc = load_document(file, 2**31)
            except LoadError:
                continue
            cursor = 0
            for piece in splitter.split_text(doc.text):
                start = doc.text.find(piece, cursor)
                cursor = start + 1
                self.chunks.append(Chunk(len(self.chunks), doc.source, doc.title, "", piece, start, start + len(piece)))
        self.vectors = embedder.embed_passages([c.text for c in self.chunks]) if self.chunks else np.zeros((0, embedder.dim))

    def ask(self, question: str, history: Sequence[dict[str, Any]] = ()) -> Answer:
        """The top chunk for the question alone, cited as [1]."""
        scores = self.vectors @ self.embedder.embed_query(question)[0]
        best = np.argsort(-scores, kind="stable")[: self.k]
        hits = tuple(Hit(self.chunks[i], float(scores[i]), rank, dense=float(scores[i])) for rank, i in enumerate(best, start=1))
        if not hits:
            return Answer("", kind="out_of_scope")
        return Answer(f"{hits[0].chunk.text} [1]", (Citation(1, hits[0], (hits[0].chunk.text,)),), hits=hits)


def check(scores: Scores, thresholds: dict[str, float]) -> list[str]:
    """The metrics below their thresholds, as readable lines (empty when all pass)."""
    values = scores.as_dict()
    unknown = set(thresholds) - set(values)
    if unknown:
        raise GoldenSetError(f"unknown metric(s) in thresholds: {', '.join(sorted(unknown))}")
    return [
        f"{name} = {values[name]:.3f} is below the threshold {minimum:.3f}"
        for name, minimum in thresholds.items()
        if values[name] < minimum
    ]


# What each metric means, for the Markdown report.
METRICS = {
    "hit_at_1": "evidence passage ranked first",
    "hit_at_3": "evidence passage in the top 3",
    "mrr": "mean reciprocal rank of the evidence",
    "answer_accuracy": "answers stating the expected fact (single questions)",
    "followup_accuracy": "answers stating the expected fact (follow-ups)",
    "refusal_accuracy": "out-of-scope questions and small talk handled as such",
    "in_scope_answered": "answerable questions answered, not declined",
    "out_of_scope_declined": "questions the documents cannot answer, declined",
    "citations_valid": "citations pointing at a listed source",
    "quotes_verified": "quoted text found in the cited passage",
    "median_answer_words": "median answer length in words",
}


def report_markdown(name: str, items: Sequence[GoldenItem], ours: Scores, naive: Scores, fingerprint: str, store: str) -> str:
    """The scores as a Markdown table, advisor beside the naive recipe, for docs/results/ (written by `eval --report`)."""
    counts = ", ".join(f"{sum(1 for i in items if i.kind == k)} {k.replace('_', '-')}" for k in KINDS)
    lines = [
        f"Golden set `{name}`: {len(items)} questions ({counts}). Vectors in {store}; "
        f"retrieval fingerprint `{fingerprint}`. Written by `python -m advisor eval --report`.",
        "",
        "| metric | what it counts | advisor | naive recipe |",
        "| --- | --- | ---: | ---: |",
    ]
    theirs = naive.as_dict()
    for name, value in ours.as_dict().items():
        if name == "questions":
            continue
        digits = 1 if name == "median_answer_words" else 3
        lines.append(f"| {name} | {METRICS.get(name, '')} | {value:.{digits}f} | {theirs[name]:.{digits}f} |")
    return "\n".join(lines) + "\n"
