import re

import pytest

from advisor.errors import ConfigError
from advisor.load import load_document, scan_corpus
from advisor.blocks import parse_blocks
from advisor.split import CONTEXT_TOKENS, split_document
from advisor.types import Document
from conftest import SEED_CORPUS

BOILERPLATE = ("arif-riyanto", "Photo by Arif Riyanto", "You are currently viewing", "Image of Machine Learning Engineer")
SALARY = "2. Average Salary of Machine Learning Engineers"


@pytest.fixture(scope="module")
def seeds(embedder):
    files, _ = scan_corpus(SEED_CORPUS)
    docs = [load_document(f, 2**30) for f in files]
    return {doc.source.split("/")[-1]: (doc, split(doc, embedder)) for doc in docs}


def split(doc, embedder, chunk_tokens=160, overlap=24):
    return split_document(
        doc, embedder.tokenizer, chunk_tokens=chunk_tokens, chunk_overlap=overlap, max_tokens=embedder.max_tokens
    )


def doc_of(text: str, source: str = "corpus/test.txt", title: str = "Test") -> Document:
    return Document(source=source, title=title, text=text, sha256="0" * 64, kind="txt")


def guide(seeds):
    return seeds["ml-engineer-career-guide-statistics-and-faq.txt"]


def containing(chunks, needle):
    found = [c for c in chunks if needle in c.text]
    assert found, f"no chunk contains {needle!r}"
    return found


def test_every_chunk_fits_the_model_and_maps_back_exactly(seeds, embedder):
    for doc, chunks in seeds.values():
        assert chunks
        for chunk in chunks:
            assert doc.text[chunk.start : chunk.end] == chunk.text
            assert embedder.count_tokens(chunk.text) <= 160
            assert embedder.count_tokens(chunk.embedding_text) <= embedder.max_tokens
            assert chunk.text == chunk.text.strip() and chunk.source == doc.source and chunk.title == doc.title
        spans = [(c.start, c.end) for c in chunks]
        assert spans == sorted(spans)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
        assert len({c.id for c in chunks}) == len(chunks)


def test_every_content_line_is_in_a_chunk_and_boilerplate_is_not(seeds):
    for doc, chunks in seeds.values():
        for match in re.finditer(r"[^\n]+", doc.text):
            line = match.group().strip()
            if any(line.startswith(b) for b in BOILERPLATE):
                continue
            covered = any(c.start <= match.start() + 1 and match.end() - 1 <= c.end for c in chunks)
            # A heading that only groups others (or repeats the title) lives in the sections' paths.
            assert covered or line == doc.title or any(line in c.section.split(" › ") for c in chunks), line
        for chunk in chunks:
            assert not any(b in chunk.text for b in BOILERPLATE)


def test_salary_table_stays_whole_with_title_header_and_caption(seeds):
    _, chunks = guide(seeds)
    (chunk,) = containing(chunks, "Entry Level $85,000")
    for part in (
        SALARY,
        "Experience Level Average Annual Salary",
        "Mid-Level $120,000",
        "Senior Level $170,000",
        "This table outlines the average annual salary",
    ):
        assert part in chunk.text
    assert chunk.section == "Average Salary of Machine Learning Engineers"
    assert chunk.text.startswith(SALARY)


def test_each_of_the_ten_numbered_tables_is_one_chunk_with_its_rows(seeds):
    doc, chunks = guide(seeds)
    titles = re.findall(r"^(\d{1,2}\. .+)$", doc.text, flags=re.MULTILINE)
    assert len(titles) == 10
    for title in titles:
        (chunk,) = containing(chunks, title)
        table = doc.text[doc.text.index(title) :].split("\n\n")[1]  # header row and data rows
        assert table in chunk.text


def test_flattened_comparison_table_stays_with_its_section(seeds):
    _, chunks = guide(seeds)
    (chunk,) = containing(chunks, "Primary focus on data analysis and insights extraction")
    assert "Proficient in R, Python, and SQL" in chunk.text
    assert chunk.section == "Data Scientist vs. Machine Learning Engineer"


def test_each_faq_question_stays_with_its_answer(seeds):
    doc, chunks = guide(seeds)
    faq = doc.text[doc.text.rindex("Frequently Asked Questions") :]
    pairs = re.findall(r"^(.+\?)\n\n(.+)$", faq, flags=re.MULTILINE)
    assert len(pairs) == 10
    for question, answer in pairs:
        (chunk,) = containing(chunks, question)
        assert answer in chunk.text
        assert chunk.section.endswith(question)


def test_list_stays_with_its_heading_and_lead_in(seeds):
    doc, chunks = seeds["ml-engineer-role-skills-and-education.txt"]
    (chunk,) = containing(chunks, "They help in:")
    assert chunk.text.startswith("Works of a Machine Learning Engineer?")
    assert "Attempting machine learning experiments and reporting the results." in chunk.text
    (skills,) = containing(chunks, "Statistics & Probability")
    assert skills.text.startswith("Skills Needed For Machine Learning Engineering")
    (questions,) = containing(chunks, "1. What are precision and recall?")
    assert "5. Has any of your code been officially verified?" in questions.text


def test_misconception_subsection_carries_its_group_heading(seeds):
    _, chunks = guide(seeds)
    (chunk,) = containing(chunks, "There are several common misconceptions")
    assert chunk.section == "Common Misconceptions › Machine Learning Engineer Role"
    assert "Common Misconceptions" in chunk.context


def test_long_paragraph_is_split_under_the_limit_with_exact_offsets(embedder):
    sentences = " ".join(f"Sentence number {i} talks about model deployment and monitoring." for i in range(300))
    doc = doc_of(f"Title\n\nLong part\n\n{sentences}\n")
    chunks = split(doc, embedder, chunk_tokens=100, overlap=10)
    assert len(chunks) > 10
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert embedder.count_tokens(chunk.text) <= 100
    assert "Sentence number 299" in chunks[-1].text and chunks[0].text.startswith("Long part")
    assert all(f"Sentence number {i} " in "".join(c.text for c in chunks) for i in range(300))


def test_long_list_breaks_between_items(embedder):
    items = "\n".join(f"• Item {i} covers a separate machine learning skill" for i in range(200))
    doc = doc_of(f"Skills\n\n{items}\n")
    chunks = split(doc, embedder, chunk_tokens=80, overlap=8)
    assert len(chunks) > 5
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert embedder.count_tokens(chunk.text) <= 80
        assert chunk.text.endswith("skill")
        assert chunk.section == "Skills"


def test_repeated_text_gets_its_own_offsets(embedder):
    para = "Machine learning engineers deploy models and monitor them in production every day."
    doc = doc_of(f"First\n\n{para}\n\nSecond\n\n{para}\n\nThird\n\n" + (para + " ") * 40 + "\n")
    chunks = split(doc, embedder, chunk_tokens=60, overlap=6)
    starts = [c.start for c in chunks]
    assert len(set(starts)) == len(starts)
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text


def test_crlf_text_and_markdown_heading_paths(embedder):
    text = "# Guide\r\n\r\n## Pay\r\n\r\nPay grows with experience.\r\n\r\n### Entry level\r\n\r\nJuniors earn less.\r\n"
    doc = doc_of(text, source="corpus/guide.md", title="Guide")
    chunks = split(doc, embedder)
    assert [c.section for c in chunks] == ["Guide › Pay", "Guide › Pay › Entry level"]
    assert chunks[1].text == "### Entry level\r\n\r\nJuniors earn less."
    assert chunks[1].context == "Guide › Pay › Entry level"
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text


def test_markdown_table_and_image_line(embedder):
    text = (SEED_CORPUS.parent / "tests" / "data" / "career-notes.md").read_text()
    chunks = split(doc_of(text, title="Career Notes"), embedder)
    (table,) = containing(chunks, "| Junior | $70,000 |")
    assert "Pay depends on the level of experience." in table.text and "| Senior | $150,000 |" in table.text
    assert not any("![diagram]" in c.text for c in chunks)
    (skills,) = containing(chunks, "- Python and SQL")
    assert "The skills that matter most:" in skills.text


def test_blocks_classify_the_structures_of_the_seed_text():
    text = "Key Takeaways\n\n  • one\n  • two\n\nRank Country Number of Startups\n1 United States 452\n\nAnswer.\n"
    kinds = [b.kind for b in parse_blocks(text)]
    assert kinds == ["heading", "list", "table", "paragraph"]


def test_too_large_chunk_setting_is_refused(embedder):
    with pytest.raises(ConfigError, match="ADVISOR_CHUNK_TOKENS=240"):
        split(doc_of("Title\n\nText.\n"), embedder, chunk_tokens=240)
    assert 160 + CONTEXT_TOKENS <= embedder.max_tokens
