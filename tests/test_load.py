import json
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from advisor.files import FileTooLarge, NotRegularFile, hash_file
from advisor.load import LoadError, decode_text, load_document, scan_corpus
from conftest import BAD_FILES, DATA, GOOD_FILES

MB = 1024 * 1024
T = TypeVar("T")


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


def test_markdown_links_images_and_footnote_references_are_read_as_their_text():
    doc = load(DATA / "footnotes", "electrician-pay-survey.md")
    text = doc.text
    # A footnote reference is dropped, not glued to the next sentence ("2024.1 Apprentices", "time.3 See").
    assert "earned $61,590 a year in 2024. Apprentices start at about half of that." in text
    assert "work full time. See the full occupational profile for more, or the survey page." in text
    assert "Pay by state chart" in text and "Union apprenticeship pay scales, 2025." in text  # alt text, the note
    assert not re.search(r"\]\(|\[\^|#fn|https?:|\.png|\[survey\]", text)  # no targets, addresses or references
    assert "as described in the state guide [4]." in text  # a bracketed number that is no link stays as written
    assert doc.title == "Electrician Pay Survey 2025"


@pytest.mark.parametrize("piece", ["[a", "![", "[^", "<http://", "[a](x", "[" + "a" * 400])
def test_markdown_of_brackets_alone_is_read_in_linear_time(piece):
    from advisor.load import markdown_text

    text = piece * (2_000_000 // len(piece))  # 2 MB on one line: tried from each bracket to its end, minutes
    started = time.monotonic()
    assert len(markdown_text(text)) <= len(text)
    assert time.monotonic() - started < 5


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


# --- odd entries in the corpus folder -----------------------------------------------------------


def finishes(call: Callable[[], T], *, pipes: Iterable[Path] = (), seconds: float = 10.0) -> T:
    """``call()`` in a thread: its result, or a test failure, not a hung run, when it is still going after ``seconds``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed back to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for pipe in pipes:  # a reader stuck opening a named pipe is let go once a writer opens it
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"still running after {seconds:.0f} s: blocked opening a named pipe?")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def add_odd_entries(folder: Path) -> dict[str, str]:
    """Put in ``folder`` one of each entry a scan must report and never open: {source: pattern of its reason}."""
    name = folder.name
    fd = os.open(os.path.join(os.fsencode(folder), b"bad\xff.txt"), os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"Bad name\n\nText under a name that is not UTF-8.\n")
    os.close(fd)
    os.mkdir(os.path.join(os.fsencode(folder), b"notes\xfe"))
    (Path(os.fsdecode(os.path.join(os.fsencode(folder), b"notes\xfe"))) / "inside.md").write_text("# Inside\n")
    os.symlink("b.md", folder / "a.md")
    os.symlink("a.md", folder / "b.md")
    os.symlink("loop.txt", folder / "loop.txt")
    os.symlink("nowhere.md", folder / "dangling.md")
    os.mkfifo(folder / "pipe.txt")
    os.symlink("pipe.txt", folder / "pipe-link.md")
    os.symlink(".", folder / "again", target_is_directory=True)
    os.symlink("..", folder / "up", target_is_directory=True)
    with open(folder / "huge.txt", "wb") as handle:
        handle.truncate(4 * 2**30)  # sparse: no disk used, but 12 s to read through
    expected = {
        f"{name}/bad\ufffd.txt": "file name is not valid UTF-8",
        f"{name}/notes\ufffd": "folder name is not valid UTF-8",
        f"{name}/a.md": "symlink to b.md cannot be followed .*symbolic links",
        f"{name}/b.md": "symlink to a.md cannot be followed .*symbolic links",
        f"{name}/loop.txt": "symlink to loop.txt cannot be followed .*symbolic links",
        f"{name}/dangling.md": "symlink to nowhere.md cannot be followed .*No such file",
        f"{name}/pipe.txt": r"not a regular file \(named pipe\)",
        f"{name}/pipe-link.md": r"not a regular file \(named pipe\)",
        f"{name}/again": "symlink to the folder .; not followed",
        f"{name}/up": "symlink to the folder ..; not followed",
        f"{name}/huge.txt": "file is 4096.0 MB, over the 20 MB limit",
    }
    try:
        os.mknod(folder / "null.txt", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
        expected[f"{name}/null.txt"] = r"not a regular file \(character device\)"
    except OSError:  # not root, or no CAP_MKNOD: the pipe stands for every special file
        pass
    return expected


def test_odd_entries_are_reported_with_printable_names_and_never_opened(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "guide.md").write_text("# Guide\n\nRead me.\n")
    os.symlink("guide.md", corpus / "alias.md")  # a link to a regular file inside: read, through its target
    expected = add_odd_entries(corpus)
    started = time.monotonic()
    files, skipped = finishes(lambda: scan_corpus(corpus, 20 * MB), pipes=[corpus / "pipe.txt"])
    assert time.monotonic() - started < 1  # the 4 GB file is refused by its size, not hashed
    assert [(f.source, f.target) for f in files] == [("corpus/alias.md", corpus / "guide.md"), ("corpus/guide.md", None)]
    assert sorted(s.source for s in skipped) == sorted(expected)
    for entry in skipped:
        assert re.search(expected[entry.source], entry.reason), (entry.source, entry.reason)
    # Every name and reason can be written to the manifest and printed.
    json.dumps([(s.source, s.reason) for s in skipped], ensure_ascii=False).encode("utf-8")


def test_hashing_checks_the_size_limit_before_reading(tmp_path):
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as handle:
        handle.truncate(4 * 2**30)
    started = time.monotonic()
    with pytest.raises(FileTooLarge) as raised:
        hash_file(huge, max_bytes=MB)
    assert raised.value.size == 4 * 2**30 and time.monotonic() - started < 1
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(NotRegularFile, match=r"named pipe"):
        finishes(lambda: hash_file(tmp_path / "pipe"), pipes=[tmp_path / "pipe"])


def test_a_file_replaced_after_the_scan_is_refused_not_read(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("Secret\n\nThe password is swordfish.\n")
    for name in ("piped.txt", "linked.txt", "grown.txt"):
        (corpus / name).write_text("Notes\n\nSmall at scan time.\n")
    files, _ = scan_corpus(corpus, MB)
    scanned = {f.path.name: f for f in files}
    (corpus / "piped.txt").unlink()
    os.mkfifo(corpus / "piped.txt")
    (corpus / "linked.txt").unlink()
    os.symlink(secret, corpus / "linked.txt")
    (corpus / "grown.txt").write_text("Notes\n\n" + "word " * MB)
    with pytest.raises(LoadError, match=r"not a regular file \(named pipe\)"):
        finishes(lambda: load_document(scanned["piped.txt"], MB), pipes=[corpus / "piped.txt"])
    with pytest.raises(LoadError, match="replaced by a symlink"):
        load_document(scanned["linked.txt"], MB)
    with pytest.raises(LoadError, match="over the 1 MB limit"):
        load_document(scanned["grown.txt"], MB)
