"""The corpus folder as the Documents tab sees it: list its files, add an uploaded one safely, remove one."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import stat
import tempfile
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from advisor.config import Settings
from advisor.errors import AdvisorError, CorpusMissing
from advisor.files import FileTooLarge, hash_file
from advisor.load import FORMATS, SUPPORTED, printable, scan_corpus
from advisor.types import Skipped

if TYPE_CHECKING:  # the index module pulls in numpy and the vector stores; listing needs only its manifest
    from advisor.index import Index

# Headers a reverse proxy adds: a request carrying one was not made on this machine, whatever address it came from.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip", "x-forwarded-host")
LOOPBACK_NAMES = {"localhost", "localhost.", "ip6-localhost"}
MAX_STEM_BYTES = 120  # leaves room for "-NNN" and the suffix under the usual 255-byte file-name limit
MAX_CLASHES = 999  # name-2 … name-999, then refuse rather than probe forever
# The size limit a listing applies when its caller gives none: the setting's default (ADVISOR_MAX_FILE_MB).
DEFAULT_MAX_BYTES = Settings().max_file_bytes


class DocumentRefused(AdvisorError):
    """An upload or removal from the Documents tab was refused; the message says why and what to do instead."""


@dataclass(frozen=True)
class DocumentInfo:
    """One supported file in the corpus folder, and whether the index holds its current bytes."""

    source: str  # "corpus/<relative path>", the name citations use
    title: str  # the index's title when indexed, else the file name
    kind: str  # "txt" | "md" | "html" | "pdf"
    size: int  # bytes on disk now
    passages: int  # chunks in the index (of the indexed version); 0 when not indexed
    indexed: bool  # the index has some version of this file
    up_to_date: bool  # the index has exactly these bytes
    problem: str = ""  # why the last build could not use these bytes (e.g. "empty file"), if it could not

    @property
    def status(self) -> str:
        """A short human-readable state for the table: indexed, changed since, or why it is not indexed."""
        if self.up_to_date:
            return "indexed"
        if self.indexed:
            return "changed since the index was built; rebuild to update"
        if self.problem:
            return f"not indexed: {self.problem}"
        return "not indexed yet"


def list_documents(
    corpus_dir: Path, index: Index | None, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[list[DocumentInfo], list[Skipped]]:
    """The corpus's supported files (sorted by source name), and the files the scan will not read, with reasons.

    ``index`` is the loaded index to compare with, or None when nothing has been built yet. Files over
    ``max_bytes`` (pass ``settings.max_file_bytes``) are listed as skipped without being read: the listing runs
    on every page load.
    """
    root = _corpus_root(corpus_dir)
    files, skipped = scan_corpus(root, max_bytes)
    documents = index.documents if index is not None else {}
    # Files the last build read but could not use, keyed by the bytes it saw: same bytes, same reason.
    failed = index.manifest.skipped if index is not None else {}
    rows = []
    for file in files:
        entry = documents.get(file.source)
        failure = failed.get(file.source)
        rows.append(
            DocumentInfo(
                source=file.source,
                title=(entry.title or file.path.name) if entry else file.path.name,
                kind=FORMATS[file.path.suffix.lower()],
                size=file.size,
                passages=len(entry.chunk_ids) if entry else 0,
                indexed=entry is not None,
                up_to_date=entry is not None and entry.sha256 == file.sha256,
                problem=failure.reason if failure and entry is None and failure.sha256 == file.sha256 else "",
            )
        )
    return rows, skipped


def safe_filename(filename: str) -> str:
    """The file name an upload is stored under: its last path component with only safe characters.

    Letters, digits, ``-``, ``_``, ``.`` and spaces are kept, runs of anything else become one ``-``; leading
    dots are dropped (the scanner ignores hidden files), the name is capped in length and never empty.
    The suffix is lower-cased; whether it is a supported type is for the caller to check.
    """
    # Both separators on every OS: a Windows browser may send "C:\\Users\\me\\cv.md", and "..\\x.md" must
    # not become a path anywhere. NFC so that "é" is one letter, not "e" and a combining accent.
    name = unicodedata.normalize("NFC", re.split(r"[\\/]", filename)[-1])
    name = re.sub(r"[^\w\-. ]+", "-", name).strip(" .")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    stem = stem.strip(" .-")
    suffix = suffix.strip().lower()[:16]
    while len(stem.encode("utf-8")) > MAX_STEM_BYTES:
        stem = stem[:-1]
    stem = stem.rstrip(" .-") or "document"
    return f"{stem}.{suffix}" if suffix else stem


def add_document(corpus_dir: Path, filename: str, data_path: Path, max_bytes: int) -> Path:
    """Copy an uploaded file (``data_path``, sent as ``filename``) into the corpus folder; return the path written.

    The name is made safe (``safe_filename``), the type must be one the loader reads, the size at most
    ``max_bytes`` and not zero. An existing file is never replaced: a clash gets the next free
    ``name-2.md``, ``name-3.md`` …, and a file with the same bytes under that name is refused as a duplicate.
    The copy is written to a hidden temp file in the corpus folder and only then given its name, so the
    index build never sees half a file. Raises DocumentRefused (or CorpusMissing) with the reason.
    """
    root = _corpus_root(corpus_dir)
    name = safe_filename(filename)
    suffix = Path(name).suffix
    if suffix not in FORMATS:
        raise DocumentRefused(
            f"'{filename}' is not a supported document type ('{suffix or 'no extension'}'); upload one of: {SUPPORTED}"
        )
    data_path = Path(data_path)
    try:
        info = data_path.stat()
    except OSError as exc:
        raise DocumentRefused(f"the upload of '{filename}' cannot be read ({exc.strerror or exc}); upload it again") from None
    if not stat.S_ISREG(info.st_mode):
        raise DocumentRefused(f"the upload of '{filename}' is not a regular file; upload a document file")
    # Size first, from the file system: an oversized upload is refused without reading it.
    _check_size(filename, info.st_size, max_bytes)
    tmp: Path | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=root, prefix=".upload-", suffix=".tmp")  # hidden: the scanner skips it
        tmp = Path(tmp_name)
        with os.fdopen(fd, "wb") as out, data_path.open("rb") as src:
            digest, copied = hashlib.sha256(), 0
            for block in iter(lambda: src.read(1 << 20), b""):
                copied += len(block)
                _check_size(filename, copied, max_bytes)  # the upload may still be growing
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        _check_size(filename, copied, max_bytes)
        return _claim_name(root, name, tmp, digest.hexdigest(), copied, filename)
    except OSError as exc:
        raise DocumentRefused(
            f"'{filename}' could not be saved in {root} ({exc.strerror or exc}); check the folder's free space and permissions"
        ) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def remove_document(corpus_dir: Path, source: str) -> None:
    """Delete one corpus file, named as citations name it (``corpus/guide.md``) or relative to the corpus folder.

    Refuses names that leave the corpus folder, hidden files, folders, symlinks to outside the corpus and
    files that do not exist. The index keeps the document's passages until the next build.
    """
    root = _corpus_root(corpus_dir)
    given = source
    source = source.strip()
    # Citations name files "<corpus folder name>/<relative path>"; a bare relative name works too.
    relative = source.removeprefix(f"{root.name}/")
    # Checked both ways: "/" on every OS, and the native form ("\\" too on Windows); resolve() has the last word.
    parts = PurePosixPath(relative).parts
    if not relative or PurePosixPath(relative).is_absolute() or Path(relative).is_absolute():
        raise DocumentRefused(f"{given!r} is not a document in the corpus; give its name as listed, e.g. '{root.name}/guide.md'")
    if any(part.startswith(".") for part in (*parts, *Path(relative).parts)):  # "..", "." and hidden names
        raise DocumentRefused(
            f"{given!r} is outside the corpus's documents ('..' or a hidden name); "
            f"give a name as listed, e.g. '{root.name}/guide.md'"
        )
    path = root.joinpath(*parts)
    if not _resolved(path.parent).is_relative_to(root):
        raise DocumentRefused(f"{given!r} is in a folder that leads outside {root}; remove it by hand if it must go")
    if path.is_symlink():
        if not _resolved(path).is_relative_to(root):  # a loop resolves to itself, inside: removing it is safe
            raise DocumentRefused(
                f"{given!r} is a symlink to {printable(os.readlink(path))}, outside {root}; remove it by hand if it must go"
            )
    elif not path.exists():
        raise DocumentRefused(f"{given!r} does not exist in {root}; it may have been removed already (refresh the list)")
    elif not path.is_file():
        raise DocumentRefused(f"{given!r} is a folder, not a document; remove its files one by one")
    try:
        path.unlink()
    except FileNotFoundError:
        raise DocumentRefused(f"{given!r} does not exist in {root}; it may have been removed already") from None
    except OSError as exc:
        raise DocumentRefused(
            f"{given!r} could not be removed ({exc.strerror or exc}); check the corpus folder's permissions"
        ) from None


def uploads_blocked(settings: Settings, headers: Mapping[str, str] | None = None) -> str | None:
    """Why the page may not add or remove documents under ``settings`` (for a request with ``headers``), or None
    when it may.

    ``ADVISOR_UPLOADS`` decides: "on" and "off" say so outright. "auto" allows it when a login is required
    (``ADVISOR_AUTH``), or when nobody else can reach the server: it listens on a loopback address and the
    request did not come through a reverse proxy (which would let anyone in while the app sees only 127.0.0.1).
    """
    yourself = f"put files in {settings.corpus_dir} yourself and run `python -m advisor index`."
    if settings.uploads == "on":
        return None
    if settings.uploads == "off":
        return f"Adding and removing documents from this page is off (ADVISOR_UPLOADS=off); {yourself}"
    if settings.auth:
        return None
    if not is_loopback(settings.host):
        return (
            f"Adding and removing documents from this page is off: the server listens on {settings.host} without a "
            f"login. Set ADVISOR_AUTH=user:password, or serve on 127.0.0.1 (ADVISOR_HOST); or {yourself}"
        )
    proxied = [name for name in PROXY_HEADERS if headers and headers.get(name)]
    if proxied:
        return (
            f"Adding and removing documents from this page is off: the request came through a proxy ({proxied[0]}) "
            f"and the app requires no login. Set ADVISOR_AUTH=user:password, or ADVISOR_UPLOADS=on if the proxy "
            f"checks who may; or {yourself}"
        )
    return None


# --- helpers ------------------------------------------------------------------------------


def _resolved(path: Path) -> Path:
    """``path`` with its symlinks resolved as far as they go; unlike ``Path.resolve`` it never raises on a loop."""
    return Path(os.path.realpath(path))


def _corpus_root(corpus_dir: Path) -> Path:
    root = _resolved(Path(corpus_dir))
    if not root.is_dir():
        raise CorpusMissing(
            f"corpus folder {root} does not exist; create it or point ADVISOR_CORPUS / --corpus at your documents"
        )
    return root


def _check_size(filename: str, size: int, max_bytes: int) -> None:
    if size == 0:
        raise DocumentRefused(f"'{filename}' is empty; upload a file with some text")
    if size > max_bytes:
        raise DocumentRefused(
            f"'{filename}' is {_human(size)}, over the {_human(max_bytes)} limit; split it, or raise "
            "ADVISOR_MAX_FILE_MB and restart"
        )


def _human(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 2**20:.1f} MB"


def _claim_name(root: Path, name: str, tmp: Path, sha256: str, size: int, filename: str) -> Path:
    """Give the written temp file ``name``, or the first free ``stem-N.ext``; never replace an existing file, and
    never add a second copy of a document already in the corpus under another name."""
    stem, suffix = Path(name).stem, Path(name).suffix
    twin = _copy_in(root, sha256, size)
    if twin is not None:
        raise DocumentRefused(
            f"'{filename}' is already in the corpus as {root.name}/{twin.relative_to(root).as_posix()} (same content); "
            "nothing was added"
        )
    # A name that only looks like one in the folder ("сareer-notes.md" with a Cyrillic "с", "Career-Notes.md")
    # is taken too, so no upload can sit beside a document passing itself off as it.
    looks = {_skeleton(entry) for entry in os.listdir(root) if not entry.startswith(".")}
    for n in range(1, MAX_CLASHES + 1):
        target = root / (name if n == 1 else f"{stem}-{n}{suffix}")
        if _skeleton(target.name) in looks:
            continue
        # The name has no separators, so this only fails for a symlink already there; such a name is taken anyway.
        if not _resolved(target).is_relative_to(root):
            continue
        if _same_bytes(target, sha256, size):
            raise DocumentRefused(
                f"'{filename}' is already in the corpus as {root.name}/{target.name} (same content); nothing was added"
            )
        if _link_if_free(tmp, target):
            return target
    raise DocumentRefused(
        f"'{filename}': {name} and {MAX_CLASHES - 1} numbered copies already exist in {root}; rename the file and upload it again"
    )


# Letters of other scripts drawn like Latin ones (after NFKC and casefolding), from Unicode's confusables list.
_LOOK_ALIKES = str.maketrans(
    "аеорсухѕіјԁһԛԝνοαιϲκρτυχ",  # Cyrillic, then Greek
    "aeopcyxsijdhqwvoaickptux",
)


def _skeleton(name: str) -> str:
    """What a file name looks like on screen: case, compatibility forms, invisible characters and letters of
    other scripts drawn like Latin ones all set aside."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    visible = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    return visible.translate(_LOOK_ALIKES)


def _copy_in(root: Path, sha256: str, size: int) -> Path | None:
    """A document in the corpus with exactly these bytes, if any: only files of the same size are read."""
    for folder, _, names in os.walk(root):  # symlinked folders are not entered, nor linked files read
        for name in sorted(names):
            path = Path(folder) / name
            readable = path.suffix in FORMATS and not name.startswith(".") and not path.is_symlink()
            if readable and _same_bytes(path, sha256, size):
                return path
    return None


def _link_if_free(tmp: Path, target: Path) -> bool:
    """Give ``tmp``'s content the name ``target`` unless that name is taken (even by a broken symlink)."""
    try:
        # A hard link appears atomically and, unlike os.replace, fails rather than replace a file that another
        # upload claimed a moment ago. The temp file is unlinked by the caller.
        os.link(tmp, target)
        return True
    except FileExistsError:
        return False
    except OSError:
        pass  # a file system without hard links (FAT, some network shares): check, then rename
    if target.exists() or target.is_symlink():
        return False
    os.replace(tmp, target)
    return True


def _same_bytes(path: Path, sha256: str, size: int) -> bool:
    """Whether ``path`` is a regular file holding exactly the bytes hashed to ``sha256``, ``size`` long."""
    try:
        info = os.stat(path)
        # The size first, from the file system: a file of another size (a huge one) is never read, nor a pipe.
        if not stat.S_ISREG(info.st_mode) or info.st_size != size:
            return False
        return hash_file(path, max_bytes=size)[0] == sha256
    except (OSError, FileTooLarge):
        return False


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
