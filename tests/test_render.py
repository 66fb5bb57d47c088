from advisor import render
from advisor.llm import check
from advisor.types import Answer, Chunk, Citation, Hit

HOSTILE = "<script>alert(1)</script> ![p](http://remote.invalid/p.png) [x](javascript:alert(2)) **bold** $$x$$"
TABLE_PASSAGE = "Average Salary\n\n| Level | Salary |\n| --- | --- |\n| Entry Level | $85,000 |\n| Senior | $170,000 |"


def _answer(text: str, passage: str = "Passage text.") -> Answer:
    chunk = Chunk(1, "corpus/guide.md", "Guide", "Pay", passage, 0, len(passage))
    return Answer(text, (Citation(1, Hit(chunk, 1.0, 1), ()),))


def test_document_text_stays_literal_markdown():
    escaped = render.escape(HOSTILE)
    assert "<script>" not in escaped and "&lt;script&gt;" in escaped
    assert "\\!\\[p\\]\\(http" in escaped and "\\[x\\]\\(javascript" in escaped
    assert "\\*\\*bold\\*\\*" in escaped and "\\$\\$x\\$\\$" in escaped
    assert render.escape("1. not a list") == "1\\. not a list"


def test_lists_headings_tables_and_markers_become_markdown():
    text = (
        "**Do I need a degree?**\nNo [1].\n\nAverage Salary [1]:\n- Entry Level: $85,000\n- Senior: $170,000\n"
        "Skills [1]:\n- Python\n- SQL"
    )
    markdown = render.message(_answer(text, TABLE_PASSAGE))
    assert markdown.startswith("**Do I need a degree?**\nNo [\\[1\\]](#cite-1).")
    assert "| Level | Salary |\n| --- | --- |\n| Entry Level | \\$85,000 |" in markdown  # header from the passage
    assert "**Skills** [\\[1\\]](#cite-1):\n\n- Python\n- SQL" in markdown
    assert '<details class="answer-sources"><summary>Sources (1)</summary>' in markdown
    assert "\n\n" not in markdown[markdown.index("<details") :]  # one block: markdown leaves it whole


def test_a_table_without_column_names_is_an_html_table_of_rows():
    markdown = render.answer_markdown("Pay <b> [1]:\n- Entry: $1\n- Senior: $2")
    assert '<table class="answer-table"><tbody><tr><td>Entry</td><td>$1</td></tr>' in markdown
    assert "<b>" not in markdown and "&lt;b&gt;" in markdown


def test_plain_text_gives_back_what_the_answerer_wrote():
    for text in (
        "Pay [1]:\n- Entry Level: $85,000\n- Senior: $170,000\nIt rises [1].",
        "Quokkas paste <script>x</script> & ![p](u) [1].",
        "Skills [1]:\n- Python (3.x)\n- SQL",
    ):
        for passage in (TABLE_PASSAGE, "Plain passage."):
            assert render.plain_text(render.message(_answer(text, passage))) == text, (text, passage)
    assert render.plain_text("What do **juniors** earn?") == "What do **juniors** earn?"  # users' text as typed


def test_sources_name_the_file_when_titles_repeat():
    titles = render.source_titles({"corpus/a.txt": "ML Engineer", "corpus/b.txt": "ML Engineer", "corpus/c.md": "Data"})
    assert titles == {"corpus/a.txt": "ML Engineer · a.txt", "corpus/b.txt": "ML Engineer · b.txt", "corpus/c.md": "Data"}
    block = render.sources_block(_answer("x [1].", f"Intro.\n{HOSTILE}").citations)
    assert "<script" not in block and "Guide · guide.md" in block and "<br>" in block


def test_model_text_reaches_the_browser_checked_and_literal():
    text = (
        "<<script>script>alert(1)<</script>/script>Pay <<img src=x>img onerror=alert(1)>is high, a < b and "
        "R&D [1].\n[7]: javascript:alert(1)"
    )
    body, _, block = render.message(_answer(check(text, 1).text)).partition("\n\n<details")
    assert body == "Pay is high, a &lt; b and R&amp;D [\\[1\\]](#cite-1)." and "Passage text." in block
    assert render.plain_text(render.message(_answer(check(text, 1).text))) == "Pay is high, a < b and R&D [1]."
