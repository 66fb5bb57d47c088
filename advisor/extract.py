"""Read corpus files into Documents in a worker process, so that no file can take unbounded time or memory."""

from __future__ import annotations

import os
import pickle
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from advisor.load import CorpusFile, LoadError, load_document
from advisor.types import Document

MEMORY_BYTES = 2 * 2**30  # address space the worker may use: a parser that needs more gives up on that file
OUT_OF_MEMORY = f"reading it needed more than {MEMORY_BYTES / 2**30:g} GB of memory; not read. Split it into smaller files"
_HEADER = 8  # bytes of the length before each pickled message
# The setting a bound's reason names, with its value: "(ADVISOR_READ_SECONDS=60)". A file skipped for a bound is not
# read again while its bytes and that bound are unchanged (see plan.py).
_BOUND = re.compile(r"\((ADVISOR_[A-Z_]+)=([0-9.]+)\)")


class DocumentReader:
    """Loads documents one by one in a child process, killed and restarted when a file takes longer than
    ``seconds``; use it as a context manager. A file that runs out of time or memory raises LoadError with the
    reason, like any unreadable file, and the build goes on with the next one."""

    def __init__(self, max_bytes: int, max_chars: int, seconds: float) -> None:
        self.max_bytes, self.max_chars, self.seconds = max_bytes, max_chars, seconds
        self._worker: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DocumentReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def read(self, file: CorpusFile) -> Document:
        """``file`` loaded as load.load_document does, within the time and memory bounds."""
        worker = self._start()
        deadline = time.monotonic() + self.seconds
        try:
            _send(worker.stdin, (file, self.max_bytes, self.max_chars))
            kind, value = _receive(worker.stdout, deadline)
        except TimeoutError:
            self.close()
            raise LoadError(
                f"took over {self.seconds:g} s to read (ADVISOR_READ_SECONDS={self.seconds:g}); not read. "
                "Split it into smaller files, or raise the limit"
            ) from None
        except (EOFError, OSError, pickle.UnpicklingError):
            self.close()  # the worker died: out of memory, most likely
            raise LoadError(OUT_OF_MEMORY) from None
        if kind == "ok":
            return value
        raise LoadError(value)

    def close(self) -> None:
        """Stop the worker (a later read starts a new one)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill()
            worker.wait()
            for stream in (worker.stdin, worker.stdout):
                if stream is not None:
                    stream.close()

    def _start(self) -> subprocess.Popen[bytes]:
        if self._worker is None or self._worker.poll() is not None:
            self.close()
            root = str(Path(__file__).resolve().parent.parent)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
            self._worker = subprocess.Popen(
                [sys.executable, "-c", "from advisor.extract import serve; serve()"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        return self._worker


def still_over_bound(reason: str, settings: Any) -> bool:
    """Whether a file skipped for ``reason`` would be skipped again under ``settings`` without reading it: the
    reason names a bound (time, memory or characters) and that bound has not been raised since."""
    found = _BOUND.search(reason)
    if not found:
        return reason == OUT_OF_MEMORY  # the memory bound is fixed
    name, value = found.groups()
    current = {"ADVISOR_READ_SECONDS": settings.read_seconds, "ADVISOR_MAX_CHARS": settings.max_chars}.get(name)
    return current is not None and current <= float(value)


def _send(stream: Any, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(_HEADER, "big") + data)
    stream.flush()


def _receive(stream: Any, deadline: float) -> Any:
    """One message from the worker; TimeoutError when none is complete by ``deadline``, EOFError if it died."""
    fd = stream.fileno()

    def take(n: int) -> bytes:
        parts, left = [], n
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimeoutError
            part = os.read(fd, min(left, 1 << 20))
            if not part:
                raise EOFError
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    return pickle.loads(take(int.from_bytes(take(_HEADER), "big")))


def serve() -> None:
    """The worker: read (file, max_bytes, max_chars) requests from stdin, answer ("ok", Document) or ("error",
    reason) on stdout, until stdin closes."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    os.nice(10)  # reading waits for the cores when people are asking questions
    requests, replies = sys.stdin.buffer, os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing a parser prints may corrupt the replies
    while True:
        header = requests.read(_HEADER)
        if len(header) < _HEADER:
            return
        file, max_bytes, max_chars = pickle.loads(requests.read(int.from_bytes(header, "big")))
        try:
            reply: tuple[str, Any] = ("ok", load_document(file, max_bytes, max_chars))
        except LoadError as exc:
            reply = ("error", str(exc))
        except MemoryError:
            reply = ("error", OUT_OF_MEMORY)
        except RecursionError:
            reply = ("error", "nested too deeply to read; not read")
        except Exception as exc:  # one bad file must not stop the worker
            reply = ("error", f"could not be processed ({type(exc).__name__}: {exc})")
        _send(replies, reply)
