"""Hash files and write them crash-safely: every stage that leaves files on disk goes through here."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from advisor.errors import REBUILD, IndexCorrupt

BLOCK = 1 << 20
# What the file types other than a regular file are called in a skip reason.
_KINDS = (
    (stat.S_ISDIR, "folder"),
    (stat.S_ISFIFO, "named pipe"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISLNK, "symlink"),
)


class NotRegularFile(OSError):
    """A path opened as a file turned out to be a pipe, device, socket or folder; ``strerror`` says which."""


class FileTooLarge(Exception):
    """A file is over the size limit it was read under; ``size`` is its size as far as it was seen."""

    def __init__(self, path: Path, size: int, max_bytes: int) -> None:
        super().__init__(f"{path} is over {max_bytes} bytes")
        self.size = size
        self.max_bytes = max_bytes


def file_kind(mode: int) -> str:
    """What a file of ``mode`` (an ``st_mode``) is, in words: "regular file", "named pipe", "character device" …"""
    if stat.S_ISREG(mode):
        return "regular file"
    return next((name for test, name in _KINDS if test(mode)), "special file")


def open_regular(path: Path, *, follow_symlinks: bool = True) -> BinaryIO:
    """Open ``path`` for reading in binary mode, only if it is a regular file (else raise NotRegularFile).

    Opening never blocks: O_NONBLOCK makes a named pipe open at once (a plain open waits for a writer forever),
    and the check is made on the opened descriptor, so a file swapped for a pipe or device after the caller
    looked at it is refused, not read. With ``follow_symlinks=False`` a symlink is refused too (ELOOP).
    """
    nonblock = getattr(os, "O_NONBLOCK", 0)  # absent on Windows, which has no named pipes in the file system
    flags = os.O_RDONLY | nonblock | getattr(os, "O_BINARY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(None, f"not a regular file ({file_kind(mode)})", str(path))
        if nonblock:  # back to plain reads: some network file systems do answer EAGAIN on a non-blocking one
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_blocks(path: Path, *, max_bytes: int | None = None, follow_symlinks: bool = True) -> Iterator[bytes]:
    """The bytes of a regular file (``open_regular``) in blocks of 1 MB.

    With ``max_bytes`` the size is checked before anything is read, and again as it is read (the file may be
    growing): FileTooLarge is raised rather than reading more than ``max_bytes`` + one block.
    """
    with open_regular(path, follow_symlinks=follow_symlinks) as handle:
        size = os.fstat(handle.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise FileTooLarge(path, size, max_bytes)
        seen = 0
        for block in iter(lambda: handle.read(BLOCK), b""):
            seen += len(block)
            if max_bytes is not None and seen > max_bytes:
                raise FileTooLarge(path, max(seen, size), max_bytes)
            yield block


@dataclass(frozen=True)
class FileEntry:
    """A file of an index generation as the manifest lists it: name (in the index folder), size and sha256."""

    name: str
    bytes: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> FileEntry:
        """The entry of a file already written."""
        sha256, size = hash_file(path)
        return cls(path.name, size, sha256)

    @classmethod
    def of_bytes(cls, name: str, data: bytes) -> FileEntry:
        """The entry of a file about to be written with ``data``."""
        return cls(name, len(data), hashlib.sha256(data).hexdigest())

    @classmethod
    def from_json(cls, data: Any) -> FileEntry:
        """Read ``{"name", "bytes", "sha256"}``; raises TypeError/KeyError on anything else."""
        entry = cls(data["name"], data["bytes"], data["sha256"])
        if not (isinstance(entry.name, str) and type(entry.bytes) is int and isinstance(entry.sha256, str)):
            raise TypeError(f"malformed file entry {data!r}")
        return entry

    def to_json(self) -> dict[str, Any]:
        """The manifest's form."""
        return {"name": self.name, "bytes": self.bytes, "sha256": self.sha256}


def hash_file(path: Path, *, max_bytes: int | None = None, follow_symlinks: bool = True) -> tuple[str, int]:
    """The sha256 (hex) and size in bytes of a regular file, read in 1 MB blocks (see ``read_blocks``).

    Raises NotRegularFile (an OSError) for a pipe, device or folder, FileTooLarge past ``max_bytes``.
    """
    digest = hashlib.sha256()
    size = 0
    for block in read_blocks(path, max_bytes=max_bytes, follow_symlinks=follow_symlinks):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


def read_checked(path: Path, entry: FileEntry) -> bytes:
    """The bytes of an index file, which must match the checksum the manifest's ``entry`` gives (IndexCorrupt)."""
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise IndexCorrupt(f"{path} does not match the manifest (checksum differs); {REBUILD}")
    return data


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader or a crash sees the old file or the new one, never half of it."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not keep the half-written copy
        raise


def fsync_dir(directory: Path) -> None:
    """Make the renames in ``directory`` durable (a rename is only safe once its folder is flushed)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_temp_files(directory: Path) -> None:
    """Delete half-written ``*.tmp`` files left by a writer that crashed (call it only under the build lock)."""
    for path in directory.glob("*.tmp"):
        path.unlink(missing_ok=True)
