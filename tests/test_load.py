import os
from pathlib import Path

import pytest

from advisor.load import LoadError, decode_text, load_document, scan_corpus
from conftest import BAD_FILES, DATA, GOOD_FILES

MB = 1024 * 1024


def make_pdf(path: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Salary Survey 2026")
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, "Salary Survey\n\nEntry level engineers earn about $80,000 a year.")
    pdf.add_page()
    pdf.multi_cell(0, 8, "Senior pay\n\nSenior engineers earn about $160,000 a year.")
    pdf.output(str(path))
    return path


def load(corpus: Path, name: str):
    files, _ = scan_corpus(corpus)
    (file,) = [f for f in files if f.path.name == name]
    return load_document(file, 20 * MB)


def test_scan_lists_supported_files_and_reports_the_rest(corpus):
    (corpus / "notes.docx").write_bytes(b"PK\x03\x04")
    (corpus / ".hidden.txt").write_text("hidden")
    (corpus / "sub").mkdir()
    (corpus / "sub" / "nested.txt").write_text("Nested\n\nNested text.\n")
    files, skipped = scan_corpus(corpus)
    names = {f.source for f in files}
    assert names == {f"corpus/{n}" for n in GOOD_FILES + BAD_FILES} | {"corpus/sub/nested.txt"}
    assert [s.source for s in skipped] == ["corpus/notes.docx"]
    assert "unsupported file type '.docx'" in skipped[0].reason
    assert all(len(f.sha256) == 64 and f.size == f.path.stat().st_size for f in files)


def test_symlink_leading_out_of_the_corpus_is_not_read(corpus, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("Secret\n\nThe password is swordfish.\n")
    os.symlink(outside, corpus / "link.txt")
    os.symlink(corpus / "career-notes.md", corpus / "inside-link.md")  # stays inside: allowed
    files, skipped = scan_corpus(corpus)
    assert "corpus/link.txt" not in {f.source for f in files}
    assert "corpus/inside-link.md" in {f.source for f in files}
    (link,) = [s for s in skipped if s.source == "corpus/link.txt"]
    assert "outside" in link.reason


def test_text_file_keeps_its_exact_text_and_first_line_title():
    doc = load(DATA.parent.parent / "corpus", "ml-engineer-role-skills-and-education.txt")
    path = DATA.parent.parent / "corpus" / "ml-engineer-role-skills-and-education.txt"
    assert doc.text == path.read_text(encoding="utf-8")
    assert doc.title == "Machine Learning Engineer"
    assert doc.kind == "txt" and doc.encoding == "utf-8" and doc.source == "corpus/ml-engineer-role-skills-and-education.txt"


def test_markdown_title_comes_from_its_heading(corpus):
    doc = load(corpus, "career-notes.md")
    assert doc.title == "Career Notes" and doc.kind == "md"


def test_html_keeps_main_text_and_headings_and_drops_scripts_styles_navigation(corpus):
    doc = load(corpus, "hiring-page.html")
    assert doc.title == "Hiring ML Engineers"
    assert "## What interviews cover" in doc.text
    assert "- System design for model serving" in doc.text
    # A table is one block of "| cell |" lines, so it is split and parsed as a table (not one heading per row).
    assert "| Level | Base pay |\n| Staff | $210,000 |" in doc.text
    assert "Teams hiring machine learning engineers look for production experience." in doc.text
    for junk in ("trackingSecret", "color: red", "Navigation link text", "Site banner text", "Footer copyright", "HTML comment"):
        assert junk not in doc.text


def test_pdf_pages_and_metadata_title(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    make_pdf(corpus / "survey.pdf")
    doc = load(corpus, "survey.pdf")
    assert doc.title == "Salary Survey 2026" and doc.kind == "pdf"
    assert [p.number for p in doc.pages] == [1, 2]
    assert doc.page_at(doc.text.index("$80,000")) == 1
    assert doc.page_at(doc.text.index("$160,000")) == 2


def test_latin1_and_utf16_files_are_decoded(corpus):
    latin = load(corpus, "latin1-notes.txt")
    assert "café owner's guide to a naïve résumé" in latin.text and latin.encoding in ("cp1252", "latin-1")
    utf16 = load(corpus, "utf16-notes.txt")
    assert utf16.text.startswith("Remote work") and utf16.encoding == "utf-16"


@pytest.mark.parametrize(
    ("name", "reason"), [("binary-data.txt", "binary"), ("empty.txt", "empty"), ("whitespace-only.txt", "empty")]
)
def test_unusable_files_raise_a_reason(corpus, name, reason):
    with pytest.raises(LoadError, match=reason):
        load(corpus, name)


def test_broken_pdf_and_oversized_file_are_refused_with_a_reason(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not really a pdf")
    (corpus / "big.txt").write_text("Big\n\n" + "word " * 300_000)
    with pytest.raises(LoadError, match="PDF"):
        load(corpus, "broken.pdf")
    files, _ = scan_corpus(corpus)
    (big,) = [f for f in files if f.path.name == "big.txt"]
    with pytest.raises(LoadError, match="over the 1 MB limit.*ADVISOR_MAX_FILE_MB"):
        load_document(big, 1 * MB)


def test_decode_text_rejects_random_bytes_without_nul():
    noise = bytes((i * 97 + 13) % 256 for i in range(4000) if (i * 97 + 13) % 256 != 0)
    with pytest.raises(LoadError, match="binary"):
        decode_text(noise)
