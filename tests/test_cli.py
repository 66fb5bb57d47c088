"""The CLI as users run it: a real subprocess, the real model, a temp corpus and index."""

import json
import shutil
import socket
import time

from conftest import DATA, advisor_cli


def test_index_json_status_and_search(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    shutil.copy(DATA / "career-notes.md", corpus)
    shutil.copy(DATA / "binary-data.txt", corpus)
    paths = ["--corpus", str(corpus), "--index", str(index)]

    first = advisor_cli("index", "--json", *paths)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout.strip().splitlines()[-1])
    assert list(result) == ["added", "changed", "removed", "unchanged", "chunks_embedded", "chunks_total"]
    assert result["added"] == ["corpus/career-notes.md"] and result["chunks_embedded"] == result["chunks_total"] > 0
    assert "skipped   corpus/binary-data.txt: binary content" in first.stderr
    assert "Batches" in first.stderr  # the embedding progress bar

    fresh = advisor_cli("index", "--status", *paths)
    assert fresh.returncode == 0 and "up to date" in fresh.stdout

    (corpus / "remote.txt").write_text("Remote Work\n\nMost teams let ML engineers work remotely two days a week.\n")
    stale = advisor_cli("index", "--status", *paths)
    assert stale.returncode == 1 and "corpus/remote.txt" in stale.stdout and "stale" in stale.stdout

    second = advisor_cli("index", "--json", *paths)
    update = json.loads(second.stdout.strip().splitlines()[-1])
    assert update["added"] == ["corpus/remote.txt"] and update["unchanged"] == ["corpus/career-notes.md"]
    assert 0 < update["chunks_embedded"] < update["chunks_total"]

    found = advisor_cli("search", "can I work from home", "-k", "1", *paths)
    assert found.returncode == 0 and "[1]" in found.stdout and "corpus/remote.txt" in found.stdout
    assert "remotely two days a week" in found.stdout
    # A byte that is no UTF-8 in the argument (read as a lone surrogate) is searched for, not a traceback.
    undecodable = advisor_cli("search", "pay \udcff", "-k", "1", *paths)
    assert undecodable.returncode == 0 and "Traceback" not in undecodable.stderr and "[1]" in undecodable.stdout


def test_errors_are_one_clear_line_and_exit_2(tmp_path):
    missing = advisor_cli("index", "--corpus", str(tmp_path / "nope"), "--index", str(tmp_path / "index"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: corpus folder") and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "corpus").mkdir()
    no_index = advisor_cli("search", "pay", "--corpus", str(tmp_path / "corpus"), "--index", str(tmp_path / "index"))
    assert no_index.returncode == 2 and "no index in" in no_index.stderr and "python -m advisor index" in no_index.stderr
    # A missing answer model stops `ask` before any index build, with the fix, not partway through an answer.
    gone, index = str(tmp_path / "gone"), str(tmp_path / "index")
    no_model = advisor_cli("ask", "What do they earn?", "--answer-model", gone, "--index", index)
    assert no_model.returncode == 2 and no_model.stderr.startswith("error: the answer model's")
    assert "python -m advisor train" in no_model.stderr and "Traceback" not in no_model.stderr
    assert not (tmp_path / "index").exists()


def test_a_taken_port_is_said_at_once_with_our_own_setting_and_nothing_is_announced(tmp_path):
    with socket.socket() as other:  # another copy of the app, or anything else, listening there
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        started = time.monotonic()
        taken = advisor_cli("serve", "--port", str(port), "--index", str(tmp_path / "index"))
    assert taken.returncode == 2 and time.monotonic() - started < 20  # before any index build or model load
    assert "is serving" not in taken.stdout and not (tmp_path / "index").exists()
    assert f"127.0.0.1:{port}" in taken.stderr and "already in use" in taken.stderr
    assert f"--port {port + 1}" in taken.stderr and f"ADVISOR_PORT={port + 1}" in taken.stderr
    assert "GRADIO" not in taken.stderr and "Traceback" not in taken.stderr


def test_ask_jsonl_contract_round_trip(seed_settings):
    requests = [
        {"question": "How much does a mid-level ML engineer make?", "history": []},
        {
            "question": "And at the senior level?",
            "history": [
                {"role": "user", "content": "What is the entry-level salary?"},
                {"role": "assistant", "content": "$85,000 [1]"},
            ],
        },
        "not json at all",
        {"question": "How do I bake bread?"},
        {"question": "Thanks!", "history": []},
    ]
    stdin = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in requests) + "\n"
    result = advisor_cli(
        "ask", "--jsonl", "--corpus", str(seed_settings.corpus_dir), "--index", str(seed_settings.index_dir), stdin=stdin
    )
    assert result.returncode == 0, result.stderr
    replies = [json.loads(line) for line in result.stdout.splitlines()]  # nothing but JSON lines on stdout
    assert len(replies) == len(requests)
    mid, senior, broken, bread, thanks = replies
    for reply in (mid, senior, bread, thanks):
        assert list(reply) == ["answer", "grounded", "sources"]
    assert mid["grounded"] and "$120,000 [1]" in mid["answer"]
    source = mid["sources"][0]
    assert list(source) == ["n", "source", "title", "section", "text", "score"]
    assert source["n"] == 1 and source["source"] == "corpus/ml-engineer-career-guide-statistics-and-faq.txt"
    assert "Mid-Level $120,000" in source["text"] and isinstance(source["score"], float)
    assert "$170,000" in senior["answer"] and senior["grounded"]
    for reply in (mid, senior):
        cited = {int(n) for n in __import__("re").findall(r"\[(\d+)\]", reply["answer"])}
        assert cited == {s["n"] for s in reply["sources"]}
    assert broken["grounded"] is False and broken["sources"] == [] and "line 3" in broken["error"]
    assert bread == {"answer": bread["answer"], "grounded": False, "sources": []} and "couldn't find" in bread["answer"]
    assert thanks["grounded"] is False and thanks["sources"] == []


def test_ask_jsonl_answers_every_line_after_hostile_ones(seed_settings):
    """Each bad line gets its own error reply and the lines after it are still answered; a huge line is
    skipped without being held in memory."""
    ok = json.dumps({"question": "How much does a mid-level ML engineer make?"}).encode()
    lines = [
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError in json, which once ended the run
        b'{"question": "bad \xff byte"}',  # not UTF-8, under PYTHONIOENCODING=utf-8
        b'{"question": "' + b"salary " * 1_000_000 + b'"}',  # 7 MB: over the line limit
        b'{"question": "What skills do ML engineers need \\ud800"}',  # a lone surrogate, valid JSON
        b"42",
        ok,
    ]
    paths = ["--corpus", str(seed_settings.corpus_dir), "--index", str(seed_settings.index_dir)]
    result = advisor_cli("ask", "--jsonl", *paths, stdin=b"\n".join(lines) + b"\n", env={"PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stderr
    nested, undecodable, huge, surrogate, number, answered = (json.loads(line) for line in result.stdout.splitlines())
    assert nested["error"] == "line 1: the JSON is nested too deeply"
    assert undecodable["error"] == "line 2: not UTF-8 (byte 0xff at 18)"
    assert huge["error"].startswith("line 3: the line is over 4 MB")
    assert surrogate["grounded"] and "error" not in surrogate
    assert number["error"] == "line 5: TypeError('each line must be a JSON object')"
    assert answered["grounded"] and "$120,000" in answered["answer"]


def test_ask_prints_the_answer_and_its_sources(seed_settings):
    result = advisor_cli(
        "ask",
        "What percent of ML engineers are women?",
        "--corpus",
        str(seed_settings.corpus_dir),
        "--index",
        str(seed_settings.index_dir),
    )
    assert result.returncode == 0, result.stderr
    answer, sources = result.stdout.split("\nSources:\n")
    assert "17% [1]" in answer
    assert sources.startswith("[1] corpus/ml-engineer-career-guide-statistics-and-faq.txt — Gender Distribution")
