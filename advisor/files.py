"""Hash files and write them crash-safely: every stage that leaves files on disk goes through here."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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


def hash_file(path: Path) -> tuple[str, int]:
    """The sha256 (hex) and size in bytes of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader or a crash sees the old file or the new one, never half of it."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


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
