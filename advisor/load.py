"""Find corpus files and load each one into a Document (txt, md, html, pdf)."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from advisor.blocks import clip, first_heading
from advisor.files import FileTooLarge, file_kind, hash_file, read_blocks
from advisor.types import Document, Page, Skipped

# Bump when the text a file is read into changes (an HTML table is now one "| a | b |" block; Markdown links,
# images and footnote references are read as their text): the index records it, so documents read the old
# way are read again.
# 4: titles are cut to blocks.TITLE_CHARS.
LOADER_VERSION = 4
FORMATS = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".pdf": "pdf"}
SUPPORTED = " ".join(sorted(FORMATS))


class LoadError(Exception):
    """A file could not be turned into text; the message is the reason shown to the user."""


@dataclass(frozen=True)
class CorpusFile:
    """A supported file found in the corpus, with the hash of its bytes at scan time."""

    source: str  # "corpus/<relative path>", the name citations use
    path: Path
    sha256: str
    size: int
    # For a symlink inside the corpus, the file it led to at scan time: that file is opened (without following
    # symlinks), not the link, so a link repointed after the scan is not followed out of the corpus.
    target: Path | None = None


def scan_corpus(corpus_dir: Path, max_bytes: int | None = None) -> tuple[list[CorpusFile], list[Skipped]]:
    """List supported files under ``corpus_dir`` (sorted), and report the ones that will not be read.

    Only regular files are opened: pipes, devices and sockets are reported from their ``lstat`` and never
    opened (opening a named pipe waits for a writer forever). Symlinks are followed only when they lead to a
    regular file inside the corpus; links to folders are not walked into. Names that are not valid UTF-8 are
    reported, shown with replacement characters, since they cannot be written to the manifest or printed.
    Files over ``max_bytes`` (None: no limit) are reported from their size alone, never read or hashed.
    Hidden files and folders and editor backups are ignored silently.
    """
    root = corpus_dir.resolve()
    files: list[CorpusFile] = []
    skipped: list[Skipped] = []

    def unreadable_folder(exc: OSError) -> None:
        folder = Path(exc.filename) if exc.filename else root
        source = _source_name(root, folder) if folder != root else printable(root.name)
        skipped.append(Skipped(source, f"folder cannot be read: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable_folder, followlinks=False):
        here = Path(dirpath)
        walk_into = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            path = here / name
            if not _is_utf8(name):
                skipped.append(Skipped(_source_name(root, path), "folder name is not valid UTF-8; rename it to be read"))
            elif os.path.islink(path):
                # Not walked into: a link to a folder can lead out of the corpus, or back into it forever.
                skipped.append(Skipped(_source_name(root, path), f"symlink to the folder {_link_text(path)}; not followed"))
            else:
                walk_into.append(name)
        dirnames[:] = walk_into
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith("~"):
                continue
            found = _scan_file(root, here / name, max_bytes)
            (files if isinstance(found, CorpusFile) else skipped).append(found)
    return files, skipped


def printable(name: str) -> str:
    """``name`` with any bytes that are not UTF-8 (kept by Python as lone surrogates) shown as U+FFFD.

    Such a string cannot be encoded to UTF-8, so it would stop JSON writing, logging and printing.
    """
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def too_large(size: int, max_bytes: int) -> str:
    """The reason a file of ``size`` bytes is not read under the limit ``max_bytes``."""
    return f"file is {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit; split it or raise ADVISOR_MAX_FILE_MB"


def _scan_file(root: Path, path: Path, max_bytes: int | None) -> CorpusFile | Skipped:
    """One entry of a corpus folder as a CorpusFile (hashed), or a Skipped with the reason it is not read."""
    source = _source_name(root, path)
    if not _is_utf8(path.name):
        return Skipped(source, "file name is not valid UTF-8; rename it to be read")
    try:
        info = os.lstat(path)
    except OSError as exc:
        return Skipped(source, f"cannot be read: {exc.strerror or exc}")
    target: Path | None = None
    if stat.S_ISLNK(info.st_mode):
        link = _link_text(path)
        try:
            # strict: a loop (a -> b -> a) or a missing target is an OSError, never an endless resolve.
            target = Path(os.path.realpath(path, strict=True))
        except OSError as exc:
            return Skipped(source, f"symlink to {link} cannot be followed ({exc.strerror or exc}); not read")
        if not target.is_relative_to(root):
            return Skipped(source, f"symlink to {link}, outside {printable(root.name)}/; not read")
        try:
            info = os.stat(target)
        except OSError as exc:
            return Skipped(source, f"cannot be read: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        return Skipped(source, f"not a regular file ({file_kind(info.st_mode)}); not read")
    if path.suffix.lower() not in FORMATS:
        return Skipped(source, f"unsupported file type '{path.suffix or path.name}' (supported: {SUPPORTED})")
    if max_bytes is not None and info.st_size > max_bytes:
        return Skipped(source, too_large(info.st_size, max_bytes))  # refused by its size, without reading it
    try:
        sha, size = hash_file(target or path, max_bytes=max_bytes, follow_symlinks=False)
    except FileTooLarge as exc:  # it grew since the lstat
        return Skipped(source, too_large(exc.size, exc.max_bytes))
    except OSError as exc:
        return Skipped(source, f"cannot be read: {exc.strerror or exc}")
    return CorpusFile(source, path, sha, size, target)


def load_document(file: CorpusFile, max_bytes: int, max_chars: int | None = None) -> Document:
    """Read and decode one corpus file; raise LoadError with the reason when it cannot be used (its text longer
    than ``max_chars`` included: a few MB of text are hundreds of thousands of passages to split and embed)."""
    if file.size > max_bytes:
        raise LoadError(too_large(file.size, max_bytes))
    try:
        # Opened as the scan saw it: a regular file, not through a symlink, and never blocking on a pipe that
        # took its place since.
        raw = b"".join(read_blocks(file.target or file.path, max_bytes=max_bytes, follow_symlinks=False))
    except FileTooLarge as exc:
        raise LoadError(too_large(exc.size, max_bytes)) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LoadError("replaced by a symlink since the corpus was scanned; not read") from None
        raise LoadError(f"cannot be read: {exc.strerror or exc}") from None
    sha = hashlib.sha256(raw).hexdigest()  # of what was read, in case the file changed since the scan
    if not raw.strip():
        raise LoadError("empty file")
    kind = FORMATS[file.path.suffix.lower()]
    encoding: str | None = None
    pages: tuple[Page, ...] = ()
    if kind == "pdf":
        text, pages, title = _pdf_text(raw, max_chars)
    elif kind == "html":
        text, title = _html_text(raw)
    else:
        text, encoding = decode_text(raw)
        if kind == "md":
            text = markdown_text(text)
        title = first_heading(text)
    if not text.strip():
        raise LoadError("no text content")
    if max_chars is not None and len(text) > max_chars:
        raise too_long(max_chars)
    return Document(
        source=file.source,
        title=clip(title) or _title_from_name(file.path),
        text=text,
        sha256=sha,
        kind=kind,
        encoding=encoding,
        pages=pages,
    )


# Markdown a page's text is wrapped in. A link's target is not text ("[4](#fn4b)" would be quoted as "[4]", a
# citation marker that points nowhere), nor is an image's address. Every part is bounded and stops at the next
# bracket, so a line of brackets is read in linear time, not tried from each bracket to its end.
_TARGET = r"((?:[^()\s]|\([^()\s]{0,300}\)){0,2000})(?:\s+(?:\"[^\"\n]{0,300}\"|'[^'\n]{0,300}'))?\s*\)"
_IMAGE = re.compile(r"!\[([^\[\]\n]{0,500})\]\(" + _TARGET)
_LINK = re.compile(r"\[([^\[\]\n]{1,500})\]\(" + _TARGET)
_REFERENCE_LINK = re.compile(r"\[([^\[\]\n]{1,500})\]\[[^\[\]\n]{0,100}\]")
_FOOTNOTE_REFERENCE = re.compile(r"\[\^[^\[\]\s]{1,100}\](?!:)")
_LINK_DEFINITION = re.compile(r"^ {0,3}\[(?!\^)[^\[\]\n]{1,500}\]:[ \t]+\S.*$\n?", re.MULTILINE)
_FOOTNOTE_DEFINITION = re.compile(r"^ {0,3}\[\^[^\[\]\s]{1,100}\]:[ \t]*", re.MULTILINE)
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^<>\s]{1,2000})>")
_NOTE_MARK = re.compile(r"^\^?(\d{1,3}|[a-z]|[*†‡§])$")  # what a footnote reference's link text reads


def markdown_text(text: str) -> str:
    """Markdown's links, images and footnote references read as their text: "[the survey](https://…)" is "the
    survey", "![chart](pay.png)" is "chart", and a footnote reference ("…rose.[4](#fn4)", "[^4]") is dropped,
    its note kept where the page gives it."""

    def link(match: re.Match[str]) -> str:
        words, target = match.group(1), match.group(2)
        return "" if target.startswith("#") and _NOTE_MARK.match(words.strip()) else words

    text = _LINK_DEFINITION.sub("", text)
    text = _FOOTNOTE_DEFINITION.sub("", text)
    text = _IMAGE.sub(lambda m: m.group(1), text)
    text = _LINK.sub(link, text)
    text = _REFERENCE_LINK.sub(lambda m: m.group(1), text)
    text = _FOOTNOTE_REFERENCE.sub("", text)
    return _AUTOLINK.sub(lambda m: m.group(1), text)


def decode_text(raw: bytes) -> tuple[str, str]:
    """Decode bytes as text, returning (text, encoding); raise LoadError for binary data."""
    for bom, encoding in (
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ):
        if raw.startswith(bom):
            try:
                return raw.decode(encoding), encoding
            except UnicodeDecodeError:
                raise LoadError(f"starts with a {encoding} byte-order mark but is not valid {encoding}") from None
    if b"\x00" in raw[:65536]:
        raise LoadError("binary content (NUL bytes), not text")
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # Legacy 8-bit text is common in old exports; cp1252 is what such files usually are,
    # Latin-1 decodes any byte, so a control-character check is what tells text from binary.
    for encoding in ("cp1252", "latin-1"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f\v") + sum(
            1 for ch in text if 0x7F <= ord(ch) < 0xA0
        )
        if controls <= len(text) // 100:
            return text, encoding
    raise LoadError("binary content or an unknown encoding; save it as UTF-8")


def too_long(max_chars: int) -> LoadError:
    """The error for a document whose text is over ``max_chars`` characters."""
    return LoadError(
        f"its text is over {max_chars:,} characters (ADVISOR_MAX_CHARS={max_chars}); not read. "
        "Split it into smaller files, or raise the limit"
    )


def _title_from_name(path: Path) -> str:
    words = clip(re.sub(r"[-_]+", " ", path.stem))
    return words[:1].upper() + words[1:] if words else clip(path.name)


def _source_name(root: Path, path: Path) -> str:
    return printable(f"{root.name}/{path.relative_to(root).as_posix()}")


def _link_text(path: Path) -> str:
    try:
        return printable(os.readlink(path))
    except OSError:  # replaced since it was listed
        return "?"


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- HTML -------------------------------------------------------------------------------

_DROP_TAGS = {
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "iframe",
    "button",
    "select",
    "head",
    "canvas",
    "object",
    "embed",
}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "blockquote",
    "pre",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "figure",
    "figcaption",
    "address",
    "hr",
    "body",
    "html",
    "details",
    "summary",
}


def _html_text(raw: bytes) -> tuple[str, str]:
    """Main text of an HTML page as markdown-like lines ('## ' headings, '- ' items, ' | ' cells)."""
    from bs4 import BeautifulSoup

    if b"\x00" in raw[:65536] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError("binary content (NUL bytes), not HTML")
    soup = BeautifulSoup(raw, "html.parser")
    title_tag = soup.find("title")
    title = " ".join(title_tag.get_text(" ").split()) if title_tag else ""
    root = soup.find("main") or soup.find("article") or soup.find("body") or soup
    writer = _HtmlWriter()
    writer.walk(root)
    text = writer.text()
    return text, title or first_heading(text)


class _HtmlWriter:
    """Walks the parse tree, emitting one block of text per heading, paragraph, list item or table row."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.inline: list[str] = []

    def text(self) -> str:
        self.flush()
        return "\n\n".join(self.blocks) + "\n"

    def flush(self, prefix: str = "") -> None:
        words = " ".join("".join(self.inline).split())
        self.inline = []
        if words:
            self.blocks.append(prefix + words)

    def walk(self, node) -> None:
        from bs4 import NavigableString, Tag

        for child in node.children:
            if isinstance(child, NavigableString):
                if type(child) is NavigableString:  # subclasses are comments, doctype, CDATA
                    self.inline.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name.lower()
            if name in _DROP_TAGS or child.get("hidden") is not None or child.get("aria-hidden") == "true":
                continue
            if name in _HEADINGS:
                self.flush()
                self.walk(child)
                self.flush("#" * _HEADINGS[name] + " ")
            elif name == "li":
                self.flush()
                self.walk(child)
                self.flush("- ")
            elif name == "table":
                # One block of "| a | b |" lines, so the table is read (and split, and parsed) as a table; rows
                # as blocks of their own would each look like a heading.
                self.flush()
                caption = child.find("caption")
                if caption is not None:
                    self.blocks.append(" ".join(caption.get_text(" ").split()))
                rows = []
                for tr in child.find_all("tr"):
                    cells = [" ".join(c.get_text(" ").split()).replace("|", "/") for c in tr.find_all(["td", "th"])]
                    if any(cells):
                        rows.append("| " + " | ".join(cells) + " |")
                if rows:
                    self.blocks.append("\n".join(rows))
            elif name == "br":
                self.inline.append("\n")
            elif name in _BLOCKS:
                self.flush()
                self.walk(child)
                self.flush()
            else:
                self.walk(child)


# --- PDF --------------------------------------------------------------------------------


def _pdf_text(raw: bytes, max_chars: int | None = None) -> tuple[str, tuple[Page, ...], str]:
    """Text of each PDF page joined by blank lines, with each page's span kept for citations; LoadError as soon
    as the text is over ``max_chars``."""
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed-but-readable PDFs warn per object
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("encrypted PDF; save an unencrypted copy")
        parts: list[str] = []
        pages: list[Page] = []
        offset = 0
        for number, page in enumerate(reader.pages, start=1):
            page_text = (page.extract_text() or "").strip()
            if not page_text:
                continue
            if parts:
                offset += 2  # the "\n\n" joining pages
            pages.append(Page(number, offset, offset + len(page_text)))
            parts.append(page_text)
            offset += len(page_text)
            if max_chars is not None and offset > max_chars:
                raise too_long(max_chars)
        meta_title = (reader.metadata.title or "").strip() if reader.metadata else ""
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoadError(f"unreadable PDF: {exc}") from None
    if not parts:
        raise LoadError("PDF has no extractable text (scanned images?)")
    text = "\n\n".join(parts) + "\n"
    return text, tuple(pages), meta_title or first_heading(text)
