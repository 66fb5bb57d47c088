import json
import subprocess
import sys

import pytest

from advisor.config import PROJECT_ROOT, Settings
from advisor.evaluate import GoldenSetError, check, evaluate, judge, read_golden, summarize
from advisor.types import Answer, Chunk, Citation, Hit

DEVSET = PROJECT_ROOT / "eval" / "devset.jsonl"
CAREERS = PROJECT_ROOT / "eval" / "corpora" / "careers"


def loaded_text(folder):
    """The documents of ``folder`` as the bot indexes them (through the loader), compared loosely."""
    from advisor.answer import normalized
    from advisor.load import load_document, scan_corpus

    files, skipped = scan_corpus(folder)
    assert files and not skipped, folder
    return "\n".join(normalized(load_document(f, 2**31).text) for f in files)


def test_the_dev_set_covers_what_the_issue_asks():
    from advisor.answer import normalized

    items = read_golden(DEVSET)
    kinds = [i.kind for i in items]
    assert len(items) >= 60 and kinds.count("followup") >= 8
    assert kinds.count("out_of_scope") + kinds.count("chitchat") >= 8
    text = loaded_text(PROJECT_ROOT / "corpus")
    for item in items:
        assert all(normalized(e) in text for e in item.evidence), item.question
    # Every table of the articles is asked about: the ten numbered ones, the market size, the comparison.
    for row in (
        "Information Technology 25%",
        "Senior Level $170,000",
        "1 Python",
        "5 Germany 97",
        "Ph.D. 5%",
        "Highly Satisfied 46%",
        "Female 17%",
        "Coursera Machine Learning Certification",
        "25-34 50%",
        "North America 45%",
        "$96.7 billion",
        "Proficient in R, Python, and SQL",
    ):
        assert any(row in e for i in items for e in i.evidence), row


def test_the_advisor_meets_the_quality_thresholds_on_the_second_corpus(make_settings, embedder):
    """The second gate: the seeds plus three documents on neighbouring careers, with their own golden set."""
    from advisor.chat import Advisor
    from advisor.index import build

    settings = make_settings(corpus_dir=CAREERS)
    build(settings, embedder=embedder)
    scores = summarize(evaluate(Advisor(settings).ask, read_golden(PROJECT_ROOT / "eval" / "corpora" / "careers.jsonl")))
    thresholds = json.loads((PROJECT_ROOT / "eval" / "corpora" / "careers.thresholds.json").read_text())
    assert check(scores, thresholds) == [], scores


def test_the_advisor_meets_the_quality_thresholds_on_the_dev_set(seed_settings):
    """The quality gate CI runs: a drop below eval/thresholds.json fails the build."""
    from dataclasses import replace

    from advisor.chat import Advisor

    advisor = Advisor(replace(seed_settings, top_k=10))
    scores = summarize(evaluate(advisor.ask, read_golden(DEVSET)))
    thresholds = json.loads((PROJECT_ROOT / "eval" / "thresholds.json").read_text())
    assert check(scores, thresholds) == [], scores


def test_judge_scores_rank_correctness_and_citations(tmp_path):
    chunk = Chunk(1, "corpus/a.txt", "T", "Pay", "Entry Level $85,000", 0, 19)
    hit = Hit(chunk, 1.0, 1)
    golden = tmp_path / "golden.jsonl"
    golden.write_text(
        json.dumps({"question": "pay?", "evidence": ["Entry Level $85,000"], "answer_any": ["$85,000"], "kind": "fact"}) + "\n"
    )
    (item,) = read_golden(golden)
    good = judge(item, Answer("Entry Level: $85,000 [1].", (Citation(1, hit, ("Entry Level $85,000",)),), hits=(hit,)))
    assert good.rank == 1 and good.correct and good.citations_valid and good.quotes_verified
    bad = judge(item, Answer("It is $85,000 [2].", (Citation(1, hit, ("Entry Level $85,000",)),), hits=(hit,)))
    assert not bad.citations_valid
    declined = judge(item, Answer("I couldn't find that.", kind="out_of_scope", hits=(hit,)))
    assert declined.declined and not declined.correct and declined.rank == 1


def test_malformed_golden_lines_are_named(tmp_path):
    path = tmp_path / "golden.jsonl"
    path.write_text('{"question": "ok?", "kind": "chitchat"}\n{"question": "pay?", "kind": "fact"}\n')
    with pytest.raises(GoldenSetError, match="line 2: a fact or followup item needs 'evidence' and 'answer_any'"):
        read_golden(path)
    path.write_text('{"question": "x", "kind": "banana"}\n')
    with pytest.raises(GoldenSetError, match="line 1: kind must be one of"):
        read_golden(path)


def test_eval_command_compares_with_the_naive_recipe_and_checks_thresholds(tmp_path, seed_settings):
    golden = tmp_path / "tiny.jsonl"
    golden.write_text(
        "\n".join(
            json.dumps(x)
            for x in [
                {
                    "question": "What's the average pay for a junior ML engineer?",
                    "history": [],
                    "evidence": ["Entry Level $85,000"],
                    "answer_any": ["$85,000"],
                    "kind": "fact",
                },
                {
                    "question": "And at the senior level?",
                    "history": [{"role": "user", "content": "What is the entry level salary?"}],
                    "evidence": ["Senior Level $170,000"],
                    "answer_any": ["$170,000"],
                    "kind": "followup",
                },
                {"question": "How do I bake bread?", "history": [], "evidence": [], "answer_any": [], "kind": "out_of_scope"},
            ]
        )
        + "\n"
    )
    impossible = tmp_path / "thresholds.json"
    impossible.write_text(json.dumps({"median_answer_words": 1000}))
    args = [
        sys.executable,
        "-m",
        "advisor",
        "eval",
        str(golden),
        "--json",
        "--check",
        "--thresholds",
        str(impossible),
        "--corpus",
        str(seed_settings.corpus_dir),
        "--index",
        str(seed_settings.index_dir),
    ]
    result = subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["advisor"]["answer_accuracy"] == 1.0 and report["advisor"]["refusal_accuracy"] == 1.0
    assert report["naive"]["refusal_accuracy"] == 0.0 and report["naive"]["questions"] == 3
    assert report["below_threshold"] == [
        "median_answer_words = " + f"{report['advisor']['median_answer_words']:.3f}" + " is below the threshold 1000.000"
    ]
    assert isinstance(Settings.load(env={}), Settings)


def test_eval_shows_progress_on_a_terminal_and_nothing_extra_when_piped(seed_settings, tmp_path):
    import os
    import pty

    golden = tmp_path / "golden.jsonl"
    golden.write_text(
        json.dumps({"question": "What do senior ML engineers earn?", "evidence": ["Senior"], "answer_any": ["170,000"]}) + "\n"
    )
    args = [sys.executable, "-m", "advisor", "eval", str(golden), "--corpus", str(seed_settings.corpus_dir)]
    args += ["--index", str(seed_settings.index_dir)]
    # On a terminal (stderr a pseudo-terminal): a bar for each of the two runs, counting questions.
    leader, follower = pty.openpty()
    run = subprocess.run(args, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=follower, text=True, timeout=300)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end is closed: all of it was read
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert run.returncode == 0
    assert b"advisor" in shown and b"naive recipe" in shown and b"1/1" in shown and b"question" in shown
    # Piped, or with --json: no bar at all.
    piped = subprocess.run([*args, "--json"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0 and "1/1" not in piped.stderr and "naive recipe" not in piped.stderr
    assert json.loads(piped.stdout.strip().splitlines()[-1])["advisor"]["questions"] == 1


def test_conversations_are_replayed_with_the_systems_own_replies(tmp_path):
    from advisor.evaluate import replay, result_record

    asked = []

    def ask(question, history):
        asked.append((question, list(history)))
        return Answer(f"reply to {question}")

    turns = replay(
        ask,
        (
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "second"},
            {"role": "assistant", "content": "kept"},
        ),
    )
    assert turns[1] == {"role": "assistant", "content": "reply to first"} and turns[3]["content"] == "kept"
    assert asked == [("first", [])]  # a written assistant turn is kept as it is

    golden = tmp_path / "golden.jsonl"
    golden.write_text(
        json.dumps(
            {
                "question": "third",
                "kind": "chitchat",
                "history": [{"role": "user", "content": "first"}, {"role": "assistant", "content": ""}],
            }
        )
        + "\n"
    )
    (result,) = evaluate(ask, read_golden(golden))
    assert result_record(result)["history"][1] == {"role": "assistant", "content": "reply to first"}


def test_blind_sets_and_the_second_corpus_are_well_formed():
    """Every blind-set evidence string is in the text the loader makes of the documents the set was written from."""
    from advisor.answer import normalized

    blind = PROJECT_ROOT / "eval" / "blind"
    for path, folder, size in (
        (blind / "seeds-r7.jsonl", PROJECT_ROOT / "corpus", 100),
        (blind / "careers-r7.jsonl", CAREERS, 40),
        (blind / "seeds-r8.jsonl", PROJECT_ROOT / "corpus", 100),
        (blind / "pilots-r1.jsonl", PROJECT_ROOT / "eval" / "corpora" / "pilots", 60),
        (blind / "seeds-r9.jsonl", PROJECT_ROOT / "corpus", 100),
        (blind / "meteorologists-r1.jsonl", PROJECT_ROOT / "eval" / "corpora" / "meteorologists", 60),
        (blind / "seeds-r10.jsonl", PROJECT_ROOT / "corpus", 100),
        (blind / "epidemiologists-r1.jsonl", PROJECT_ROOT / "eval" / "corpora" / "epidemiologists", 60),
        (blind / "seeds-r11.jsonl", PROJECT_ROOT / "corpus", 100),
        (blind / "forensic-r1.jsonl", PROJECT_ROOT / "eval" / "corpora" / "forensic", 60),
        (blind / "seeds-r12.jsonl", PROJECT_ROOT / "corpus", 100),
        (blind / "zoologists-r1.jsonl", PROJECT_ROOT / "eval" / "corpora" / "zoologists", 60),
        (blind / "seeds-r13.jsonl", PROJECT_ROOT / "corpus", 100),
        (blind / "air-traffic-controllers-r1.jsonl", PROJECT_ROOT / "eval" / "corpora" / "air-traffic-controllers", 60),
        (blind / "seeds-r14.jsonl", PROJECT_ROOT / "corpus", 100),
        (blind / "archaeologists-r1.jsonl", PROJECT_ROOT / "eval" / "corpora" / "archaeologists", 60),
        (blind / "seeds-r15.jsonl", PROJECT_ROOT / "corpus", 100),
        (blind / "physicists-r1.jsonl", PROJECT_ROOT / "eval" / "corpora" / "physicists", 60),
        (blind / "seeds-r16.jsonl", PROJECT_ROOT / "corpus", 100),
        (blind / "librarians-r1.jsonl", PROJECT_ROOT / "eval" / "corpora" / "librarians", 60),
        (blind / "seeds-r17.jsonl", PROJECT_ROOT / "corpus", 100),
        (blind / "glaziers-r1.jsonl", PROJECT_ROOT / "eval" / "corpora" / "glaziers", 60),
        (blind / "seeds-r18.jsonl", PROJECT_ROOT / "corpus", 100),
        (blind / "genetic-counselors-r1.jsonl", PROJECT_ROOT / "eval" / "corpora" / "genetic-counselors", 60),
        (blind / "seeds-r19.jsonl", PROJECT_ROOT / "corpus", 100),
        (blind / "choreographers-r1.jsonl", PROJECT_ROOT / "eval" / "corpora" / "choreographers", 60),
        (blind / "seeds-r20.jsonl", PROJECT_ROOT / "corpus", 100),
        (blind / "sociologists-r1.jsonl", PROJECT_ROOT / "eval" / "corpora" / "sociologists", 60),
        (blind / "seeds-r21.jsonl", PROJECT_ROOT / "corpus", 100),
        (blind / "locksmiths-r1.jsonl", PROJECT_ROOT / "eval" / "corpora" / "locksmiths", 60),
        (blind / "seeds-r22.jsonl", PROJECT_ROOT / "corpus", 100),
        (blind / "jewelers-r1.jsonl", PROJECT_ROOT / "eval" / "corpora" / "jewelers", 60),
        (PROJECT_ROOT / "eval" / "corpora" / "careers.jsonl", CAREERS, 100),
    ):
        text = loaded_text(folder)
        items = read_golden(path)
        name = path.name
        assert len(items) >= size
        for item in items:
            assert all(normalized(e) in text for e in item.evidence), (name, item.question)
