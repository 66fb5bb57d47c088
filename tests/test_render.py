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


def test_web_addresses_in_document_text_are_shown_but_never_linked():
    import re

    said = "Pay Guide (see https://evil.example/login, www.tracker.example or help@evil.example)"
    asks = ["What do juniors earn?"]
    text = render.answer_markdown(f"My documents cover {said}. You could ask:\n- {asks[0]}", asks=asks)
    # What GFM's autolinks (and CommonMark's <…> autolinks) start from: none is left in the page's Markdown.
    assert not re.search(r"(?i)(https?|ftp|mailto|javascript):|www\.|\w@\w|<\w+:", text)
    assert said in render.plain_text(text)  # the words are all there, for the reader and for follow-ups


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
        "Key points [1]:\n- One\n- Two\nDuties [1]:\n- Three\nA closing sentence [1].",
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


def test_a_passage_shows_its_markdown_as_formatting_and_everything_else_as_text():
    passage = (
        "## Pay by level\n\n**Data Scientists** earn *more* at first. <script>alert(1)</script>\n"
        "![p](http://remote.invalid/p.png) [x](javascript:alert(2))\n\n"
        "- Python **and** SQL\n- Statistics\n\n"
        "| Level | Salary |\n| --- | --- |\n| Entry Level | $85,000 |\n| Senior | $170,000 |"
    )
    shown = render.passage_html(passage, ("Entry Level | $85,000", "earn *more* at first."))
    assert '<div class="src-h">Pay by level</div>' in shown and "##" not in shown
    assert "<strong>Data Scientists</strong> <mark>earn </mark><em><mark>more</mark></em><mark> at first.</mark>" in shown
    assert "**" not in shown and "<script" not in shown and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert "<img" not in shown and "<a " not in shown and "![p](http://remote.invalid/p.png)" in shown
    assert '<ul class="src-list"><li>Python <strong>and</strong> SQL</li><li>Statistics</li></ul>' in shown
    assert (
        "<tr><th>Level</th><th>Salary</th></tr><tr><td><mark>Entry Level</mark></td><td><mark>$85,000</mark></td></tr>" in shown
    )
    assert "---" not in shown and "\n" not in shown  # one line: the chat's markdown leaves the block whole
    # Markup a document cannot close is text, read in linear time.
    assert render.passage_html("**a " * 5000, ()).count("<strong>") == 0


def test_suggested_questions_become_links_that_ask_them_and_read_back_as_said():
    text = "I couldn't find that (sorry). You could ask:\n- What do *juniors* earn?\n- Is a PhD needed?\n- not one"
    answer = Answer(text, kind="out_of_scope", suggestions=("What do *juniors* earn?", "Is a PhD needed?"))
    shown = render.message(answer)
    assert "- [What do \\*juniors\\* earn?](#ask)\n- [Is a PhD needed?](#ask)\n- not one" in shown
    assert render.plain_text(shown) == text  # the conversation as said, for follow-ups
    assert "(#ask)" not in render.answer_markdown(text)  # only the answer's own suggestions are links


def test_a_chat_exports_as_markdown_with_each_answers_numbered_sources():
    passage = "Intro with **bold** words.\n\n| Level | Pay |\n| --- | --- |\n| Entry Level | $85,000 |"
    chunk = Chunk(1, "corpus/guide.md", "Pay Guide", "Pay by level", passage, 0, len(passage), page=3)
    answer = Answer("Entry level pays $85,000 [1].", (Citation(1, Hit(chunk, 1.0, 1), ("Entry Level | $85,000",)),))
    history = [
        {"role": "user", "content": "What do juniors earn?"},
        {"role": "assistant", "content": render.message(answer)},
        {"role": "user", "content": "And pilots?"},
        {"role": "assistant", "content": render.message(Answer("I couldn't find that.", kind="out_of_scope"))},
    ]
    assert render.conversation_markdown(history, "Chat") == (
        "# Chat\n\n**You:** What do juniors earn?\n\n**Career Advisor:** Entry level pays $85,000 [1].\n\n"
        "Sources:\n1. Pay by level (Pay Guide · guide.md, page 3)\n   > Entry Level | $85,000\n\n"
        "**You:** And pilots?\n\n**Career Advisor:** I couldn't find that.\n"
    )


def test_a_messages_sources_read_back_keep_only_the_markup_sources_list_writes():
    chunk = Chunk(1, "corpus/guide.md", "Guide", "Pay", "**Pay** is <b>high</b>.", 0, 10)
    citations = (Citation(1, Hit(chunk, 1.0, 1), ("is",)),)
    assert render.sources_in(render.message(Answer("x [1].", citations))) == render.sources_list(citations)
    forged = (
        '<details class="answer-sources"><summary>S</summary><img src=x onerror=alert(1)>'
        '<div class="src" onclick="x">a</div><script>x</script></details>'
    )
    assert render.sources_in(forged) == '<div class="src">a</div>'
    assert render.sources_in("no sources here") == ""


def test_a_line_after_a_list_is_never_read_as_part_of_its_last_item():
    markdown = render.answer_markdown("Key points [1]:\n- One\n- Two\nDuties [2]:\n- Three\nA closing sentence [2].")
    assert "- Two\n\n**Duties**" in markdown and "- Three\n\nA closing sentence" in markdown


def test_a_plain_text_table_of_labels_and_figures_is_shown_as_a_table_with_its_quoted_rows_marked():
    passage = "Experience Level Average Annual Salary\nEntry Level $85,000\nMid-Level $120,000\n\nThis table shows pay."
    shown = render.passage_html(passage, ("Mid-Level $120,000",))
    assert '<th colspan="2">Experience Level Average Annual Salary</th>' in shown
    assert "<tr><td>Entry Level</td><td>$85,000</td></tr>" in shown
    assert "<tr><td><mark>Mid-Level</mark></td><td><mark>$120,000</mark></td></tr>" in shown
    assert shown.endswith("<p>This table shows pay.</p>")
    prose = "Pilots fly planes for 20 years\nand earn well after 5 moves"  # two lines with numbers: still text
    assert "<table" not in render.passage_html(prose, ())


def test_a_header_wrapped_over_lines_is_shown_as_its_column_names():
    passage = "Percentile 10% 25% 50%\n(Median)\n75% 90%\nAnnual Wage $31,400 $38,270 $47,320 $58,030 $69,890"
    shown = render.passage_html(passage, ())
    header = "".join(f"<th>{name}</th>" for name in ("Percentile", "10%", "25%", "50% (Median)", "75%", "90%"))
    assert f"<tr>{header}</tr>" in shown, shown
    assert "<td>Annual Wage</td><td>$31,400</td>" in shown
