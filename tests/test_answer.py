import re
from dataclasses import replace

import pytest

from advisor.answer import Statement, normalized, verify
from advisor.chat import Advisor
from advisor.config import PROJECT_ROOT
from advisor.evaluate import read_golden


@pytest.fixture(scope="module")
def advisor(seed_settings):
    return Advisor(seed_settings)


def cited_pieces(text):
    """(n, piece) for every piece of a rendered answer, read independently of the answer code: prose up to
    each [n]; a list's lines belong to the [n] of the line that introduces them. A piece's parts, as the
    renderer joins them (" — ", ": ", "; ", "(rank n)"), must each be found in passage n."""
    pieces, current = [], None
    for line in text.splitlines():
        if line.startswith("- "):
            pieces.append((current, line[2:]))
            continue
        position = 0
        for match in re.finditer(r"\s\[(\d+)\]", line):
            current = int(match.group(1))
            pieces.append((current, line[position:match.start()]))
            position = match.end()
    return pieces


def parts(piece):
    piece = re.sub(r"\s*\(rank \d+\)$", "", piece.strip())
    piece = re.sub(r"^\d+\. ", "", piece)
    return [p.strip(" .()") for p in re.split(r" — |: |; | \(", piece) if p.strip(" .()")]


def test_table_facts_come_out_readable(advisor):
    answer = advisor.ask("How much does a mid-level ML engineer make?")
    assert answer.text == "Mid-Level — Average Annual Salary: $120,000 [1]."
    assert answer.citations[0].chunk.section == "Average Salary of Machine Learning Engineers"
    assert answer.citations[0].quotes == ("Mid-Level $120,000",)


def test_whole_tables_and_lists_come_out_as_short_lists(advisor):
    salary = advisor.ask("How much do ML engineers earn at each level?")
    assert salary.text.splitlines()[1:4] == ["- Entry Level: $85,000", "- Mid-Level: $120,000", "- Senior Level: $170,000"]
    skills = advisor.ask("List the skills you need for machine learning engineering")
    assert "- Statistics & Probability" in skills.text.splitlines()


def test_a_listed_misconception_is_never_stated_as_fact(advisor):
    answer = advisor.ask("What are common misconceptions about ML engineers?")
    lines = answer.text.splitlines()
    assert "misconceptions" in lines[0]
    assert "- Machine Learning is the same as Artificial Intelligence." in lines[1:]


def test_every_answer_piece_is_found_in_the_passage_it_cites(advisor):
    items = read_golden(PROJECT_ROOT / "eval" / "devset.jsonl") + read_golden(PROJECT_ROOT / "eval" / "unseen.jsonl")
    answered = 0
    for item in items:
        answer = advisor.ask(item.question, list(item.history))
        if not answer.grounded:
            assert not answer.citations and "[" not in answer.text
            continue
        answered += 1
        assert len(answer.text.split()) <= 110, item.question
        markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}
        assert markers == {c.n for c in answer.citations} == set(range(1, len(answer.citations) + 1))
        for citation in answer.citations:
            assert citation.quotes and all(q in citation.chunk.text for q in citation.quotes)
        for n, piece in cited_pieces(answer.text):
            passage = normalized(answer.citations[n - 1].chunk.text)
            for part in parts(piece):
                assert normalized(part) in passage, (item.question, n, part)
    assert answered > 80


def test_a_statement_not_found_in_its_passage_is_rejected(advisor):
    answer = advisor.ask("What is the average pay for a junior ML engineer?")
    citation = answer.citations[0]
    real = Statement(citation.hit, "row", ("Entry Level $85,000",), ("Entry Level $85,000",), "Entry Level — $85,000")
    assert verify(real)
    assert not verify(replace(real, parts=("Entry Level $95,000",)))
    assert not verify(replace(real, quotes=("Entry Level  $85,000",)))
