"""The index manifest: a typed record of one index generation, validated in one place and written atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from advisor.errors import REBUILD, IndexCorrupt, IndexMismatch, IndexMissing
from advisor.files import FileEntry, atomic_write
from advisor.stores import StoreRecord, record_from_json
from advisor.types import DocKind

# 2: statement vectors beside the passage vectors; 3: a passage's document title is stored once, in the manifest
FORMAT_VERSION = 3
MANIFEST = "manifest.json"
FILES = ("chunks", "statements")  # every generation's files; a store may keep more (its record's ``files``)


@dataclass(frozen=True)
class ModelInfo:
    """The embedding model an index was built with."""

    name: str
    dim: int
    max_tokens: int

    def to_json(self) -> dict[str, Any]:
        """The manifest's form."""
        return {"name": self.name, "dim": self.dim, "max_tokens": self.max_tokens}


@dataclass(frozen=True)
class DocumentEntry:
    """One indexed document: the bytes it was read from, its title and format, and its passages in text order."""

    sha256: str
    title: str
    kind: DocKind
    chunk_ids: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        """The manifest's form."""
        return {"sha256": self.sha256, "title": self.title, "kind": self.kind, "chunk_ids": list(self.chunk_ids)}


@dataclass(frozen=True)
class SkippedEntry:
    """A file the build read but could not use: the same bytes next time are not retried as a change."""

    sha256: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The manifest's form."""
        return {"sha256": self.sha256, "reason": self.reason}


@dataclass(frozen=True)
class Manifest:
    """What one build wrote: its files, model, splitter and store, and every document with its passage ids.

    Replacing ``manifest.json`` is the single commit point of a build (see ``write_manifest``).
    """

    build_id: str
    built_at: str  # UTC, ISO 8601
    corpus: str
    model: ModelInfo
    store: StoreRecord
    splitter: Mapping[str, int]
    files: Mapping[str, FileEntry]
    documents: Mapping[str, DocumentEntry]
    skipped: Mapping[str, SkippedEntry] = field(default_factory=dict)

    @property
    def passages(self) -> int:
        """How many passages the index holds."""
        return sum(len(doc.chunk_ids) for doc in self.documents.values())

    def sources(self) -> dict[int, str]:
        """Each passage id with the document it came from."""
        return {i: source for source, doc in self.documents.items() for i in doc.chunk_ids}

    def file_names(self) -> list[str]:
        """The index-folder files of this generation."""
        return [entry.name for entry in self.files.values()]

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``manifest.json`` (keys in a fixed order, documents sorted)."""
        return {
            "format_version": FORMAT_VERSION,
            "build_id": self.build_id,
            "built_at": self.built_at,
            "corpus": self.corpus,
            "model": self.model.to_json(),
            "store": self.store.to_json(),
            "splitter": dict(self.splitter),
            "files": {key: entry.to_json() for key, entry in self.files.items()},
            "documents": {source: doc.to_json() for source, doc in sorted(self.documents.items())},
            "skipped": {source: entry.to_json() for source, entry in sorted(self.skipped.items())},
        }

    @classmethod
    def from_json(cls, data: Any, path: Path | str = MANIFEST) -> Manifest:
        """Check every field of a parsed ``manifest.json`` and build the record.

        Raises IndexMismatch for another format version and IndexCorrupt, naming the field, for anything malformed.
        """
        if not isinstance(data, dict):
            raise IndexCorrupt(f"{path} is not a manifest object; {REBUILD}")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexMismatch(
                f"{path} has format version {version!r}; this Career Advisor reads version {FORMAT_VERSION}; {REBUILD}"
            )
        store = record_from_json(data.get("store", "flat"))
        try:
            model = data["model"]
            manifest = cls(
                build_id=_typed(data["build_id"], str),
                built_at=_typed(data["built_at"], str),
                corpus=_typed(data.get("corpus", ""), str),
                model=ModelInfo(_typed(model["name"], str), _typed(model["dim"], int), _typed(model.get("max_tokens", 0), int)),
                store=store,
                splitter={_typed(k, str): _typed(v, int) for k, v in _typed(data["splitter"], dict).items()},
                files={key: FileEntry.from_json(data["files"][key]) for key in (*store.files, *FILES)},
                documents={_typed(source, str): _document(doc) for source, doc in _typed(data["documents"], dict).items()},
                skipped={
                    _typed(source, str): SkippedEntry(_typed(s["sha256"], str), _typed(s.get("reason", ""), str))
                    for source, s in _typed(data.get("skipped", {}), dict).items()
                },
            )
        except KeyError as exc:
            raise IndexCorrupt(f"{path} is missing field {exc}; {REBUILD}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise IndexCorrupt(f"{path} has a malformed field ({exc}); {REBUILD}") from None
        ids = [i for doc in manifest.documents.values() for i in doc.chunk_ids]
        if len(ids) != len(set(ids)):
            raise IndexCorrupt(f"{path} lists a passage id twice; {REBUILD}")
        return manifest


def _typed(value: Any, kind: type) -> Any:
    """``value`` if it is a ``kind`` (a bool is no int here), else TypeError naming it."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{value!r} is not of type {kind.__name__}")
    return value


def _document(data: Any) -> DocumentEntry:
    if not isinstance(data, dict):
        raise TypeError(f"document entry {data!r} is not an object")
    kind = data.get("kind", "txt")
    if kind not in get_args(DocKind):
        raise ValueError(f"document kind {kind!r} is not one of {', '.join(get_args(DocKind))}")
    ids = tuple(_typed(i, int) for i in _typed(data["chunk_ids"], list))
    if any(not 0 <= i < 2**63 for i in ids):
        raise ValueError("a chunk id is not a 63-bit number")
    return DocumentEntry(_typed(data["sha256"], str), _typed(data.get("title", ""), str), kind, ids)


def read_manifest(directory: Path) -> Manifest:
    """Read and validate ``directory/manifest.json``; IndexMissing when there is none yet."""
    path = directory / MANIFEST
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise IndexMissing(f"no index in {directory} yet; build it with `python -m advisor index`") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"{path} is not valid JSON ({exc}); {REBUILD}") from None
    return Manifest.from_json(data, path)


def manifest_stamp(directory: Path) -> tuple[int, int, int] | None:
    """Which manifest file is on disk (inode, mtime, size), without reading it; None when there is none.

    Every write replaces the file (a new inode), so an unchanged stamp means the same manifest: a cheap check
    that no build swapped one in since it was read (take the stamp *before* reading).
    """
    try:
        info = os.stat(directory / MANIFEST)
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def write_manifest(directory: Path, manifest: Manifest) -> None:
    """Replace ``directory/manifest.json`` atomically: the commit point of a build."""
    atomic_write(directory / MANIFEST, json.dumps(manifest.to_json(), indent=1, ensure_ascii=False).encode("utf-8"))
