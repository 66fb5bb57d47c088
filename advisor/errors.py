"""Domain errors whose messages name the bad value and the fix."""

import re


class AdvisorError(Exception):
    """Base class: the message is meant for the user, not a traceback."""


class ConfigError(AdvisorError):
    """A setting (env var or flag) has a value that cannot be used."""


class ModelUnavailable(AdvisorError):
    """The configured embedding model cannot be loaded offline."""


class CorpusMissing(AdvisorError):
    """The corpus folder does not exist."""


class CorpusEmpty(AdvisorError):
    """There is nothing indexed to search."""


class IndexMissing(AdvisorError):
    """No index has been built in the index folder yet."""


class IndexCorrupt(AdvisorError):
    """An index file is missing, truncated or does not match the manifest."""


class IndexMismatch(AdvisorError):
    """The index was built with another model, splitter or format version."""


class IndexBusy(AdvisorError):
    """Another process holds the build lock."""


class IndexUnwritable(AdvisorError):
    """The index folder cannot be written (read-only, full, no permission); the index there is left as it was."""


class StoreUnavailable(AdvisorError):
    """The vector store (a Milvus server or file) cannot be reached or opened."""


# The fix named by every message about an index that cannot be used as it is.
REBUILD = "run `python -m advisor index --full` to rebuild it"


def without_fix(message: str) -> str:
    """``message`` without its advice to rebuild the index: what is said while that rebuild is under way."""
    return re.sub(r"; run `python -m advisor index[^`]*` to rebuild it$", "", message)
