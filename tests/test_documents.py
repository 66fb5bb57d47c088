import os
import time
from pathlib import Path

import pytest

from advisor.config import Settings
from advisor.documents import (
    DocumentInfo,
    DocumentRefused,
    add_document,
    list_documents,
    remove_document,
    safe_filename,
    uploads_blocked,
)
from advisor.errors import AdvisorError, ConfigError, CorpusMissing
from advisor.index import Index, build
from advisor.load import scan_corpus
from test_load import add_odd_entries, finishes

MB = 2**20
NOTES = b"# Interview notes\n\nBring questions about the team's on-call rota.\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An empty corpus folder (the shared ``corpus`` fixture fills its own with test data)."""
    path = tmp_path / "corpus"
    path.mkdir()
    return path


@pytest.fixture
def upload(tmp_path: Path):
    """Write bytes where Gradio would put an upload (outside the corpus) and return that path."""

    def make(data: bytes = NOTES, name: str = "gradio-upload") -> Path:
        path = tmp_path / "uploads" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        return path

    return make


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("../../etc/passwd.md", "passwd.md"),
        ("..\\x.md", "x.md"),
        ("/abs/path.txt", "path.txt"),
        ("C:\\Users\\me\\My CV (final).PDF", "My CV -final.pdf"),
        (".hidden.md", "hidden.md"),
        ("...md", "md"),  # a hidden name, with no extension left: refused as a type
        ("notes;rm -rf ~.md", "notes-rm -rf.md"),
        ("résumé.txt", "résumé.txt"),
        ("a\x00b<script>.html", "a-b-script.html"),
        ("  spaced  .md  ", "spaced.md"),
    ],
)
def test_safe_filename_keeps_only_a_plain_last_component(given, stored):
    assert safe_filename(given) == stored


def test_safe_filename_is_never_empty_and_capped():
    assert safe_filename("") == "document"
    assert safe_filename("..") == "document"
    long = safe_filename("x" * 400 + ".md")
    assert long.endswith(".md") and len(long.encode()) <= 130
    assert len(safe_filename("é" * 400 + ".md").encode()) <= 130


@pytest.mark.parametrize("name", ["../../etc/passwd.md", "..\\x.md", "/abs/path.txt", ".hidden.md"])
def test_traversal_and_hidden_names_land_as_plain_visible_files_inside_the_corpus(folder, upload, name):
    path = add_document(folder, name, upload(), max_bytes=MB)
    assert path.parent == folder.resolve() and not path.name.startswith(".")
    assert path.read_bytes() == NOTES
    assert leftovers(folder) == [path.name]  # no temp file left behind, nothing written elsewhere
    files, _ = scan_corpus(folder)
    assert [f.source for f in files] == [f"corpus/{path.name}"]  # the index will see it


@pytest.mark.parametrize("name", ["cv.docx", "script.sh", "README", "notes.md.exe", ".md"])
def test_unsupported_types_are_refused_naming_the_supported_ones(folder, upload, name):
    with pytest.raises(DocumentRefused, match=r"not a supported document type.*\.md .*\.pdf"):
        add_document(folder, name, upload(), max_bytes=MB)
    assert leftovers(folder) == []


def test_oversized_upload_is_refused_from_its_size_naming_the_limit_and_setting(folder, tmp_path):
    big = tmp_path / "big.txt"
    with big.open("wb") as handle:
        handle.truncate(50 * MB)  # sparse: instant, and no disk used
    with pytest.raises(DocumentRefused, match=r"'big\.txt' is 50\.0 MB, over the 1\.0 MB limit.*ADVISOR_MAX_FILE_MB"):
        add_document(folder, "big.txt", big, max_bytes=MB)
    assert leftovers(folder) == []


def test_a_file_exactly_at_the_limit_is_accepted(folder, upload):
    assert add_document(folder, "at-limit.txt", upload(b"x" * 100), max_bytes=100).stat().st_size == 100


def test_empty_and_missing_uploads_are_refused(folder, upload, tmp_path):
    with pytest.raises(DocumentRefused, match="'empty.md' is empty"):
        add_document(folder, "empty.md", upload(b""), max_bytes=MB)
    with pytest.raises(DocumentRefused, match="cannot be read.*upload it again"):
        add_document(folder, "gone.md", tmp_path / "no-such-upload", max_bytes=MB)
    assert leftovers(folder) == []


def test_a_name_clash_gets_the_next_free_name_and_never_overwrites(folder, upload):
    (folder / "notes.md").write_bytes(b"the original\n")
    second = add_document(folder, "notes.md", upload(b"second\n"), max_bytes=MB)
    third = add_document(folder, "sub/notes.md", upload(b"third\n"), max_bytes=MB)
    assert (second.name, third.name) == ("notes-2.md", "notes-3.md")
    assert (folder / "notes.md").read_bytes() == b"the original\n"
    assert second.read_bytes() == b"second\n" and third.read_bytes() == b"third\n"


def test_a_name_that_only_looks_like_one_in_the_corpus_gets_a_number_too(folder, upload):
    (folder / "career-notes.md").write_bytes(b"the original\n")
    lookalikes = ["\u0441areer-notes.md", "Career-Notes.md", "\uff43areer-notes.md", "\u0441\u0430reer-n\u043etes.md"]
    added = [add_document(folder, name, upload(f"copy {i}\n".encode()), max_bytes=MB).name for i, name in enumerate(lookalikes)]
    assert [name.endswith(("-2.md", "-3.md", "-4.md", "-5.md")) for name in added] == [True] * 4, added
    assert (folder / "career-notes.md").read_bytes() == b"the original\n"
    assert add_document(folder, "careers.md", upload(b"other\n"), max_bytes=MB).name == "careers.md"


def test_the_same_file_uploaded_twice_is_refused_as_a_duplicate(folder, upload):
    add_document(folder, "notes.md", upload(), max_bytes=MB)
    with pytest.raises(DocumentRefused, match="already in the corpus as corpus/notes.md"):
        add_document(folder, "notes.md", upload(), max_bytes=MB)
    assert leftovers(folder) == ["notes.md"]


def test_the_same_bytes_under_another_name_are_refused_as_a_duplicate(folder, upload, tmp_path):
    (folder / "guides").mkdir()
    (folder / "guides" / "pay.md").write_bytes(b"# Pay\n\nJuniors earn $50,000.\n")
    with pytest.raises(DocumentRefused, match="already in the corpus as corpus/guides/pay.md"):
        add_document(folder, "pay (1).md", upload(b"# Pay\n\nJuniors earn $50,000.\n"), max_bytes=MB)
    outside = tmp_path / "elsewhere.md"
    outside.write_bytes(b"linked in\n")
    (folder / "link.md").symlink_to(outside)  # a linked file is not read to compare
    assert add_document(folder, "copy.md", upload(b"linked in\n"), max_bytes=MB).name == "copy.md"
    assert add_document(folder, "other.md", upload(b"# Pay\n\nJuniors earn $60,000.\n"), max_bytes=MB).name == "other.md"


def test_a_symlink_in_the_way_is_not_followed(folder, upload, tmp_path):
    outside = tmp_path / "outside.md"
    outside.write_bytes(b"not yours\n")
    (folder / "notes.md").symlink_to(outside)
    path = add_document(folder, "notes.md", upload(), max_bytes=MB)
    assert path.name == "notes-2.md" and outside.read_bytes() == b"not yours\n"


def test_without_hard_links_the_copy_is_renamed_into_place_and_still_never_overwrites(folder, upload, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    first = add_document(folder, "notes.md", upload(b"first\n"), max_bytes=MB)
    second = add_document(folder, "notes.md", upload(b"second\n"), max_bytes=MB)
    assert (first.read_bytes(), second.name, second.read_bytes()) == (b"first\n", "notes-2.md", b"second\n")
    assert leftovers(folder) == ["notes-2.md", "notes.md"]


def test_html_with_scripts_is_stored_as_is(folder, upload):
    page = b"<html><body><script>alert(1)</script><p>Salary bands</p></body></html>"
    assert add_document(folder, "page.html", upload(page), max_bytes=MB).read_bytes() == page


def test_a_missing_corpus_folder_is_reported(tmp_path, upload):
    with pytest.raises(CorpusMissing, match="does not exist"):
        add_document(tmp_path / "nowhere", "a.md", upload(), max_bytes=MB)


def test_remove_deletes_a_corpus_file_by_source_or_bare_name(folder):
    (folder / "a.md").write_bytes(NOTES)
    (folder / "sub").mkdir()
    (folder / "sub" / "b.txt").write_bytes(NOTES)
    remove_document(folder, "corpus/a.md")
    remove_document(folder, "sub/b.txt")
    assert not (folder / "a.md").exists() and not (folder / "sub" / "b.txt").exists()
    with pytest.raises(DocumentRefused, match="does not exist"):
        remove_document(folder, "corpus/a.md")


def test_remove_refuses_anything_outside_the_corpus(folder, tmp_path):
    victim = tmp_path / "victim.md"
    victim.write_bytes(NOTES)
    (folder / ".keep").write_bytes(b"")
    (folder / "link.md").symlink_to(victim)
    (folder / "away").symlink_to(tmp_path, target_is_directory=True)
    (folder / "sub").mkdir()
    for name, reason in [
        ("corpus/../victim.md", "outside the corpus"),
        ("../victim.md", "outside the corpus"),
        (str(victim), "not a document in the corpus"),
        ("corpus/.keep", "hidden"),
        ("corpus/link.md", "symlink to .*outside"),
        ("corpus/away/victim.md", "leads outside"),
        ("corpus/sub", "is a folder"),
        ("corpus/", "not a document in the corpus"),
    ]:
        with pytest.raises(DocumentRefused, match=reason):
            remove_document(folder, name)
    assert victim.read_bytes() == NOTES and (folder / ".keep").exists() and (folder / "link.md").is_symlink()


def test_a_symlink_inside_the_corpus_is_removed_not_its_target(folder):
    (folder / "real.md").write_bytes(NOTES)
    (folder / "alias.md").symlink_to(folder / "real.md")
    remove_document(folder, "corpus/alias.md")
    assert leftovers(folder) == ["real.md"]


def test_listing_without_an_index(folder):
    (folder / "guide.md").write_bytes(NOTES)
    (folder / "page.html").write_bytes(b"<p>hello</p>")
    (folder / "cv.docx").write_bytes(b"PK")
    documents, skipped = list_documents(folder, None)
    assert documents == [
        DocumentInfo("corpus/guide.md", "guide.md", "md", len(NOTES), 0, indexed=False, up_to_date=False),
        DocumentInfo("corpus/page.html", "page.html", "html", 12, 0, indexed=False, up_to_date=False),
    ]
    assert {d.status for d in documents} == {"not indexed yet"}
    assert [(s.source, s.reason) for s in skipped] == [
        ("corpus/cv.docx", "unsupported file type '.docx' (supported: .htm .html .markdown .md .pdf .text .txt)")
    ]


def test_uploads_are_allowed_only_on_loopback_or_with_a_login():
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LocalHost"):
        assert uploads_blocked(Settings(host=host)) is None, host
    for host in ("0.0.0.0", "::", "192.168.1.20", "example.com", ""):
        assert uploads_blocked(Settings(host=host)) is not None, host
        assert uploads_blocked(Settings(host=host, auth="me:secret")) is None, host
    reason = uploads_blocked(Settings(host="0.0.0.0"))
    assert "0.0.0.0" in reason and "ADVISOR_AUTH" in reason and "ADVISOR_HOST" in reason
    assert uploads_blocked(Settings()) is None


def test_uploads_follow_the_setting_and_a_proxy_counts_as_someone_else():
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    assert uploads_blocked(Settings(), {"user-agent": "x"}) is None
    for headers in (proxied, {"forwarded": "for=203.0.113.9"}, {"x-real-ip": "203.0.113.9"}):
        reason = uploads_blocked(Settings(), {k.lower(): v for k, v in headers.items()})
        assert reason and "proxy" in reason and "ADVISOR_UPLOADS=on" in reason, headers
    assert uploads_blocked(Settings(auth="me:secret"), {"x-forwarded-for": "203.0.113.9"}) is None
    assert uploads_blocked(Settings(uploads="on", host="0.0.0.0"), {"x-forwarded-for": "203.0.113.9"}) is None
    for settings in (Settings(uploads="off"), Settings(uploads="off", auth="me:secret")):
        assert "ADVISOR_UPLOADS=off" in uploads_blocked(settings)
    with pytest.raises(ConfigError, match="ADVISOR_UPLOADS='sometimes' must be one of auto, on, off"):
        Settings.load(env={"ADVISOR_UPLOADS": "sometimes"})


def test_refusals_are_advisor_errors():
    assert issubclass(DocumentRefused, AdvisorError)


def test_listing_against_a_built_index(corpus, make_settings, embedder, upload):
    """The shared test corpus, built once: indexed, changed, new and unreadable files each say so."""
    settings = make_settings()
    build(settings, embedder=embedder)
    index = Index.load(settings.index_dir)
    (corpus / "career-notes.md").write_bytes((corpus / "career-notes.md").read_bytes() + b"\nOne more line.\n")
    added = add_document(corpus, "fresh.md", upload(), max_bytes=settings.max_file_bytes)
    (corpus / "slides.pptx").write_bytes(b"PK")
    documents, skipped = list_documents(corpus, index)
    rows = {d.source: d for d in documents}
    assert set(rows) == {f"corpus/{p.name}" for p in corpus.iterdir() if p.suffix != ".pptx"}

    html = rows["corpus/hiring-page.html"]
    manifest = index.documents["corpus/hiring-page.html"]
    assert (html.title, html.kind, html.passages) == (manifest.title, "html", len(manifest.chunk_ids))
    assert html.up_to_date and html.status == "indexed" and html.passages > 0
    assert html.size == os.path.getsize(corpus / "hiring-page.html")

    changed = rows["corpus/career-notes.md"]
    assert changed.indexed and not changed.up_to_date and changed.passages > 0
    assert changed.status.startswith("changed since")

    new = rows[f"corpus/{added.name}"]
    assert (new.indexed, new.passages, new.title, new.status) == (False, 0, "fresh.md", "not indexed yet")

    empty = rows["corpus/empty.txt"]
    assert not empty.indexed and empty.problem == "empty file" and empty.status == "not indexed: empty file"
    assert rows["corpus/binary-data.txt"].problem.startswith("binary content")
    assert [s.source for s in skipped] == ["corpus/slides.pptx"]


def test_listing_reports_odd_entries_without_opening_or_hashing_them(folder):
    (folder / "guide.md").write_bytes(NOTES)
    expected = add_odd_entries(folder)
    started = time.monotonic()
    documents, skipped = finishes(lambda: list_documents(folder, None), pipes=[folder / "pipe.txt"])
    assert time.monotonic() - started < 1  # the default size limit applies: the 4 GB file is not hashed
    assert [d.source for d in documents] == ["corpus/guide.md"]
    assert sorted(s.source for s in skipped) == sorted(expected)


def test_uploads_and_removals_get_past_loops_pipes_and_huge_files(folder, upload):
    os.symlink("notes.md", folder / "notes.md")  # loops onto itself
    os.mkfifo(folder / "notes-2.md")
    with open(folder / "notes-3.md", "wb") as handle:
        handle.truncate(4 * 2**30)  # a clash compared by its size, never hashed
    started = time.monotonic()
    path = finishes(lambda: add_document(folder, "notes.md", upload(), max_bytes=MB), pipes=[folder / "notes-2.md"])
    assert path.name == "notes-4.md" and path.read_bytes() == NOTES and time.monotonic() - started < 1
    remove_document(folder, "corpus/notes.md")  # the loop itself goes; it leads nowhere
    assert not os.path.lexists(folder / "notes.md")
