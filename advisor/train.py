"""Train the answer model: a cross-encoder that reads (question, statement) and says whether the statement answers it.

`python -m advisor train` runs the whole recipe from the data in `train/data/` (fixed seed):

1. prepare: each training document is loaded, split and cut into statements exactly as the index does; each
   question is paired with the statements a first stage would hand the model (the closest by the bi-encoder),
   labelled by its evidence;
2. fit: a cross-encoder initialised from the packaged all-MiniLM-L6-v2 weights learns those labels;
3. calibrate: on the validation batches (whole occupations never trained on), a logistic combination of the
   model's score and the bi-encoder's cosine gives a probability, and one answerability threshold is chosen,
   with a stricter cut at which the model's reading overrules the answerer's "not in my documents".

The fit step needs only numpy, torch and transformers, so this file also runs by itself on a machine without
the rest of the project, to train on an accelerator. From the repository root::

    python -c "import runpy, sys; sys.argv = ['train', *sys.argv[1:]]; runpy.run_path('advisor/train.py', run_name='__main__')" \
        fit --pairs pairs.jsonl.gz --base BASE_MODEL_DIR --out OUT_DIR --device cuda

(``python advisor/train.py`` would put ``advisor/`` first on the path, where ``types.py`` hides the standard one.)
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

SEED = 1234
VALIDATION = ("seed-d", "w6")  # whole batches (occupations) held out for calibration and the reported metrics
# Wrong statements of the question's document paired with it besides its answers, per split: the closest, and a
# few random ones. Fewer in training, so the recipe fits 90 minutes on 2 CPU cores (the cost of a step grows with
# its pairs); validation keeps as many as the answerer hands the model, so its metrics read the same.
CLOSEST_NEGATIVES = {"train": 5, "validation": 8}
RANDOM_NEGATIVES = {"train": 1, "validation": 2}
# The share of unanswerable validation questions whose best statement may reach the cut at which the model overrules
# a refusal: a refusal overruled wrongly answers with an unrelated statement, a worse failure than a refusal kept.
OVERRULE_PASSED = 0.05
CANDIDATES = 12  # statements the answerer hands the model (its cost grows with each); metrics use as many
MAX_TOKENS = 128  # question and statement together: statements are short, a long question is cut from its end
# What an answer quotes: a sentence, an FAQ answer, a list item, a table row, or a whole list or table (the
# answer when a question asks for what several of its lines say together).
STATEMENT_KINDS = ("sentence", "answer", "item", "row", "list", "table")
KINDS = ("answerable", "unanswerable", "followup", "multi")


@dataclass(frozen=True)
class Pair:
    """One (question, statement) example: the texts the model reads, its label and its first-stage cosine."""

    group: int  # the question it belongs to
    question: str
    statement: str
    label: int
    dense: float
    answerable: bool  # whether the question's document answers it at all
    split: str  # "train" | "validation"


def model_input(question: str, previous: str = "") -> str:
    """The question side the model reads: the question, then the user's previous question in a follow-up."""
    question = " ".join(question.split())
    previous = " ".join(previous.split())
    return f"{question} [SEP] {previous}" if previous else question


def statement_input(title: str, embed_text: str) -> str:
    """The statement side the model reads: the document's title, then the statement under its heading."""
    title, said = " ".join(title.split()), " ".join(embed_text.split())
    return said if not title or said.startswith(title) else f"{title} › {said}"


def _loose(text: str) -> str:
    """Text compared loosely: markup, cell bars and punctuation dropped, lower case."""
    return " ".join(re.sub(r"[*_|#`>\[\]()]+|(?<!\d)[.,;:!?](?!\d)", " ", text.lower()).split())


# --- prepare (needs the project: loader, splitter, statements, bi-encoder) ----------------------


def prepare(data_dir: Path, out: Path, validation: Sequence[str] = VALIDATION) -> dict[str, Any]:
    """Write the labelled pairs of every batch under ``data_dir`` to ``out`` (gzipped JSON lines); return counts."""
    from advisor.config import Settings
    from advisor.embed import get_embedder
    from advisor.index import passages_of
    from advisor.load import scan_corpus
    from advisor.statements import units_of

    settings = Settings.load()
    embedder = get_embedder(settings.model)
    rng = random.Random(SEED)
    counts: dict[str, Any] = {"documents": 0, "questions": {}, "pairs": {}, "occupation_batches": {}}
    group = 0
    unmatched = 0
    with gzip.open(out, "wt", encoding="utf-8") as sink:
        for batch in sorted(p for p in data_dir.iterdir() if (p / "questions.jsonl").is_file()):
            split = "validation" if batch.name in validation else "train"
            files, _ = scan_corpus(batch / "docs", settings.max_file_bytes)
            # doc name -> [(model text, loose text, loose lines of a whole list or table)]
            statements: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {}
            for file in files:
                _, chunks = passages_of(file, settings, embedder)
                seen: set[str] = set()
                found = []
                for chunk in chunks:
                    for unit in units_of(chunk):
                        if unit.kind not in STATEMENT_KINDS:
                            continue
                        text = statement_input(chunk.title, unit.embed)
                        if text in seen:  # chunk overlap repeats statements
                            continue
                        seen.add(text)
                        lines = tuple(_loose(line) for line in unit.parts) if unit.kind in ("list", "table") else ()
                        found.append((text, _loose(" ".join(unit.parts)), lines))
                statements[Path(file.path).name] = found
                counts["documents"] += 1
            vectors = {
                name: embedder.embed_passages([t for t, _, _ in found]) if found else np.zeros((0, embedder.dim))
                for name, found in statements.items()
            }
            questions = [
                json.loads(line) for line in (batch / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()
            ]
            asked = [model_input(q["question"], previous_user(q.get("history") or [])) for q in questions]
            question_vectors = embedder.embed_passages(asked)
            for q, text, qv in zip(questions, asked, question_vectors):
                found = statements.get(q["doc"])
                if not found or q.get("kind") not in KINDS:
                    continue
                evidence = [e for e in map(_loose, q.get("evidence") or []) if e]
                labels = [_label(loose, lines, evidence) for _, loose, lines in found]
                answerable = bool(evidence)
                if answerable and not any(labels):
                    unmatched += 1  # its evidence is split across statements differently: not a clean example
                    continue
                closeness = vectors[q["doc"]] @ qv
                order = np.argsort(-closeness)
                positives = [i for i in order if labels[i]]
                negatives = [i for i in order if not labels[i]]
                # The closest wrong statements are what the model must learn to refuse; a few random ones keep
                # it sane on easy cases.
                hard, rest = negatives[: CLOSEST_NEGATIVES[split]], negatives[CLOSEST_NEGATIVES[split] :]
                picked = positives + hard + rng.sample(rest, min(RANDOM_NEGATIVES[split], len(rest)))
                for i in picked:
                    pair = Pair(group, text, found[i][0], labels[i], round(float(closeness[i]), 5), answerable, split)
                    sink.write(json.dumps(asdict(pair)) + "\n")
                    counts["pairs"][split] = counts["pairs"].get(split, 0) + 1
                counts["questions"].setdefault(split, {}).setdefault(q["kind"], 0)
                counts["questions"][split][q["kind"]] += 1
                group += 1
            counts["occupation_batches"][batch.name] = split
    counts["skipped_unmatched_evidence"] = unmatched
    return counts


def previous_user(history: Sequence[dict[str, Any]]) -> str:
    """The user's last question before this one (what a follow-up continues): the model reads it after the
    question, in training and in the app alike."""
    return next((str(m["content"]) for m in reversed(history) if m.get("role") == "user" and m.get("content")), "")


def _label(loose: str, lines: tuple[str, ...], evidence: list[str]) -> int:
    """1 when the statement answers: one the evidence names, or a whole list or table two or more of whose
    lines the evidence names (a question about several of them); 0 otherwise."""
    if lines:
        return int(sum(any(_answers(line, e) for line in lines) for e in evidence) >= 2)
    return int(any(_answers(loose, e) for e in evidence))


def _answers(statement: str, evidence: str) -> bool:
    """Whether a statement (loose text) is one the evidence names: it contains the evidence, or the evidence
    contains most of it (a sentence the splitter cut differently)."""
    if not statement:
        return False
    if evidence in statement:
        return True
    return statement in evidence and len(statement) >= 0.6 * len(evidence)


# --- fit (numpy, torch and transformers only) -------------------------------------------------


def read_pairs(path: Path) -> list[Pair]:
    """The pairs ``prepare`` wrote."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [Pair(**json.loads(line)) for line in f if line.strip()]


def fit(
    pairs: list[Pair],
    base: Path,
    out: Path,
    layers: int = 3,
    epochs: int = 2,
    batch: int = 32,
    lr: float = 1e-4,
    head_lr: float = 1e-3,
    listwise: bool = True,
    device: str = "cpu",
    log: Any = None,
) -> dict[str, Any]:
    """Fine-tune a cross-encoder from ``base`` on the training pairs, calibrate it on the validation pairs, and
    save weights (fp16 safetensors), tokenizer and calibration to ``out``. Returns the calibration record."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(device == "cpu")
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    # fp32 whatever the stored precision: training in fp16 on a CPU is slow and unstable.
    model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1, dtype=torch.float32)
    model.bert.encoder.layer = model.bert.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    model.to(device)
    train = [p for p in pairs if p.split == "train"]
    validation = [p for p in pairs if p.split == "validation"]
    steps = epochs * len(_batches(train, batch, random.Random(SEED)))
    # The classification head starts from random weights: at the body's rate it would barely move in one epoch.
    head = [p for n, p in model.named_parameters() if n.startswith(("classifier", "bert.pooler"))]
    body = [p for n, p in model.named_parameters() if not n.startswith(("classifier", "bert.pooler"))]
    optimizer = torch.optim.AdamW([{"params": body, "lr": lr}, {"params": head, "lr": head_lr}], weight_decay=0.01)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    started, step = time.monotonic(), 0
    model.train()
    for epoch in range(epochs):
        for chosen in _batches(train, batch, random.Random(SEED + epoch)):
            inputs = _encode(tokenizer, chosen, device)
            labels = torch.tensor([float(p.label) for p in chosen], device=device)
            logits = model(**inputs).logits.squeeze(-1)
            # Pointwise (does it answer at all: answerability) plus listwise (which one answers best: ranking).
            loss = loss_fn(logits, labels) + (_listwise(logits, chosen) if listwise else 0.0)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step % 200 == 0 or step == steps:
                log(f"epoch {epoch + 1}/{epochs} step {step}/{steps} loss {loss.item():.4f} ({time.monotonic() - started:.0f} s)")
    seconds = time.monotonic() - started
    model.eval()
    logits = score_pairs(model, tokenizer, validation, device)
    record = calibrate(validation, logits)
    record.update(
        layers=layers,
        epochs=epochs,
        batch=batch,
        lr=lr,
        head_lr=head_lr,
        listwise=listwise,
        max_tokens=MAX_TOKENS,
        seed=SEED,
        device=device,
        train_seconds=round(seconds),
    )
    record["train_pairs"], record["validation_pairs"] = len(train), len(validation)
    out.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    (out / "calibration.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def _batches(pairs: list[Pair], size: int, rng: random.Random) -> list[list[Pair]]:
    """Shuffled batches of whole questions (each with all its statements, for the listwise loss), questions of
    similar length together (padding to the longest in a batch is most of the cost on a CPU)."""
    groups: dict[int, list[Pair]] = {}
    for p in pairs:
        groups.setdefault(p.group, []).append(p)
    order = list(groups.values())
    rng.shuffle(order)
    batches: list[list[Pair]] = []
    for m in range(0, len(order), 64):
        pool = sorted(order[m : m + 64], key=lambda g: sum(len(p.question) + len(p.statement) for p in g) / len(g))
        current: list[Pair] = []
        for group in pool:
            current += group
            if len(current) >= size:
                batches.append(current)
                current = []
        if current:
            batches.append(current)
    rng.shuffle(batches)
    return batches


def _listwise(logits: Any, pairs: Sequence[Pair]) -> Any:
    """Mean over the batch's answerable questions of -log(the softmax mass of its answering statements)."""
    import torch

    losses = []
    start = 0
    while start < len(pairs):
        end = start
        while end < len(pairs) and pairs[end].group == pairs[start].group:
            end += 1
        labels = [p.label for p in pairs[start:end]]
        if any(labels) and not all(labels):
            scores = logits[start:end]
            mask = torch.tensor(labels, dtype=torch.bool, device=scores.device)
            losses.append(torch.logsumexp(scores, 0) - torch.logsumexp(scores[mask], 0))
        start = end
    return torch.stack(losses).mean() if losses else logits.sum() * 0.0


def _encode(tokenizer: Any, pairs: Sequence[Pair], device: str) -> Any:
    return tokenizer(
        [p.question for p in pairs],
        [p.statement for p in pairs],
        truncation="longest_first",
        max_length=MAX_TOKENS,
        padding=True,
        return_tensors="pt",
    ).to(device)


def score_pairs(model: Any, tokenizer: Any, pairs: Sequence[Pair], device: str, batch: int = 256) -> np.ndarray:
    """The model's logits for ``pairs``."""
    import torch

    out = []
    with torch.inference_mode():
        for b in range(0, len(pairs), batch):
            out.append(model(**_encode(tokenizer, pairs[b : b + batch], device)).logits.squeeze(-1).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


# --- calibrate (numpy) --------------------------------------------------------------------------


def logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1.0, iterations: int = 100) -> np.ndarray:
    """Weights (last one the bias) of an L2-regularised logistic regression, by damped Newton steps on
    standardised features (so the penalty treats both alike), returned for the raw features."""
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-9
    x = np.hstack([(features - mean) / scale, np.ones((len(features), 1))])
    w = np.zeros(x.shape[1])
    penalty = l2 * np.diag([1.0] * features.shape[1] + [0.0])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
        gradient = x.T @ (p - labels) + penalty @ w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty + 1e-6 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    raw = w[:-1] / scale
    return np.append(raw, w[-1] - float(raw @ mean))


def calibrate(pairs: Sequence[Pair], logits: np.ndarray) -> dict[str, Any]:
    """The combination of model score and cosine, the answerability threshold, and the validation metrics.

    Metrics are over each question's first-stage candidates (its ``CANDIDATES`` closest statements by cosine,
    as the answerer hands them to the model): top-1 is the share of answerable questions whose best-scored
    candidate answers; AUC separates answerable from unanswerable questions by their best candidate's score.
    """
    dense = np.array([p.dense for p in pairs])
    labels = np.array([p.label for p in pairs], dtype=float)
    features = np.stack([logits, dense], axis=1)
    weights = logistic(features, labels)
    combined = 1 / (1 + np.exp(-(np.hstack([features, np.ones((len(pairs), 1))]) @ weights)))
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(p.group, []).append(i)
    # Each question's candidates, closest first, as the answerer would hand them to the model.
    candidates = [sorted(members, key=lambda i: -dense[i])[:CANDIDATES] for members in groups.values()]
    best_model, best_dense, answerable, top_model, top_dense = [], [], [], [], []
    for members in candidates:
        if pairs[members[0]].answerable and not any(labels[i] for i in members):
            continue  # its answer is not among the candidates: a first-stage miss, not the model's
        best = max(members, key=lambda i: combined[i])
        best_model.append(combined[best])
        best_dense.append(dense[members[0]])
        answerable.append(pairs[members[0]].answerable)
        if pairs[members[0]].answerable:
            top_model.append(labels[best])
            top_dense.append(labels[members[0]])
    truth = np.array(answerable)
    scores = np.array(best_model)
    threshold, balanced = _threshold(scores, truth)
    # Never under the threshold itself: the model does not overrule a refusal with what it does not read as answered.
    overrule = max(_overrule(scores, truth), threshold)
    join, f1 = _join(pairs, candidates, combined, labels, threshold)
    return {
        "combine": {"model": float(weights[0]), "dense": float(weights[1]), "bias": float(weights[2])},
        "threshold": threshold,
        "overrule": overrule,
        "join": join,
        "metrics": {
            "validation_questions": int(len(truth)),
            "top1_model": round(float(np.mean(top_model)), 4),
            "top1_biencoder": round(float(np.mean(top_dense)), 4),
            "auc_model": round(_auc(scores, truth), 4),
            "auc_biencoder": round(_auc(np.array(best_dense), truth), 4),
            "answerable_kept": round(float(np.mean(scores[truth] >= threshold)), 4),
            "unanswerable_declined": round(float(np.mean(scores[~truth] < threshold)), 4),
            "answerable_over_overrule": round(float(np.mean(scores[truth] >= overrule)), 4),
            "unanswerable_over_overrule": round(float(np.mean(scores[~truth] >= overrule)), 4),
            "balanced_accuracy": round(balanced, 4),
            "chosen_f1": round(f1, 4),
        },
    }


def _threshold(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """The cut on the best candidate's probability with the best balanced accuracy (answerable kept, the rest
    declined), as a round number of two decimals."""
    best, cut = -1.0, 0.5
    for t in np.arange(0.02, 0.99, 0.01):
        balanced = (np.mean(scores[truth] >= t) + np.mean(scores[~truth] < t)) / 2
        if balanced > best:
            best, cut = float(balanced), round(float(t), 2)
    return cut, best


def _overrule(scores: np.ndarray, truth: np.ndarray) -> float:
    """The lowest cut (two decimals) that at most ``OVERRULE_PASSED`` of the unanswerable questions' best
    statements reach."""
    for t in np.arange(0.02, 0.99, 0.01):
        if np.mean(scores[~truth] >= t) <= OVERRULE_PASSED:
            return round(float(t), 2)
    return 0.99


def _join(
    pairs: Sequence[Pair], candidates: list[list[int]], combined: np.ndarray, labels: np.ndarray, threshold: float
) -> tuple[float, float]:
    """The share of the best statement's probability another must reach to join the answer: the one whose
    chosen statements best match the answering ones (mean F1 over answerable questions' candidates)."""
    best, cut = -1.0, 0.8
    for share in np.arange(0.3, 1.0, 0.05):
        f1s = []
        for members in candidates:
            if not pairs[members[0]].answerable or not any(labels[i] for i in members):
                continue
            top = max(combined[i] for i in members)
            chosen = {i for i in members if combined[i] >= max(threshold, share * top)}
            right = {i for i in members if labels[i]}
            hit = len(chosen & right)
            f1s.append(2 * hit / (len(chosen) + len(right)) if chosen else 0.0)
        if f1s and float(np.mean(f1s)) > best:
            best, cut = float(np.mean(f1s)), round(float(share), 2)
    return cut, best


def _auc(scores: np.ndarray, truth: np.ndarray) -> float:
    pos, neg = scores[truth], scores[~truth]
    if not len(pos) or not len(neg):
        return float("nan")
    ranks = np.argsort(np.argsort(np.concatenate([pos, neg]))) + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


# --- the command ------------------------------------------------------------------------------


def _default_out() -> Path:
    from advisor.config import ANSWER_MODEL_DIR

    return ANSWER_MODEL_DIR


def recalibrate(pairs: list[Pair], out: Path, device: str = "cpu") -> dict[str, Any]:
    """Calibrate the model saved in ``out`` again on the validation pairs, keeping its training record."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForSequenceClassification.from_pretrained(str(out), dtype=torch.float32).to(device).eval()
    validation = [p for p in pairs if p.split == "validation"]
    path = out / "calibration.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    record.update(calibrate(validation, score_pairs(model, tokenizer, validation, device)))
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def main(argv: Iterable[str] | None = None, prog: str = "advisor train") -> int:
    """`prepare`, `fit`, or both (the default): see the module docstring."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("step", nargs="?", choices=("all", "prepare", "fit", "calibrate"), default="all")
    parser.add_argument("--data", type=Path, default=None, help="training data folder (default: train/data)")
    parser.add_argument("--pairs", type=Path, default=None, help="pairs file written by prepare, read by fit")
    parser.add_argument("--base", type=Path, default=None, help="model to start from (default: the packaged MiniLM)")
    parser.add_argument("--out", type=Path, default=None, help="where the trained model goes (default: the shipped one)")
    parser.add_argument("--layers", type=int, default=3, help="encoder layers kept (fewer: faster answers)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--pointwise", action="store_true", help="BCE only, without the listwise loss")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(list(argv) if argv is not None else None)
    root = Path(__file__).resolve().parent.parent
    pairs_path = args.pairs or root / "train" / "pairs.jsonl.gz"
    if args.step in ("all", "prepare"):
        counts = prepare(args.data or root / "train" / "data", pairs_path)
        (pairs_path.parent / "counts.json").write_text(json.dumps(counts, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(counts))
    if args.step == "calibrate":  # again, for a model already trained (the calibration recipe changed)
        out = args.out or _default_out()
        record = recalibrate(read_pairs(pairs_path), out, device=args.device)
        print(json.dumps(record["metrics"]))
    if args.step in ("all", "fit"):
        base = args.base
        if base is None:
            from advisor.config import PACKAGED_MODEL
            from advisor.embed import model_path

            base = Path(model_path(PACKAGED_MODEL))
        out = args.out or _default_out()
        record = fit(
            read_pairs(pairs_path),
            base,
            out,
            layers=args.layers,
            epochs=args.epochs,
            lr=args.lr,
            head_lr=args.head_lr,
            listwise=not args.pointwise,
            device=args.device,
        )
        print(json.dumps(record["metrics"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
