"""Serve answers from the loaded index, swapping in each new one: rebuilt here in the background, or by another process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from advisor.chat import MAX_QUESTION_CHARS, Advisor
from advisor.config import Settings
from advisor.errors import AdvisorError, IndexCorrupt, StoreUnavailable
from advisor.index import WAIT_SECONDS, BuildReport, Index, IndexStatus, build, index_status
from advisor.manifest import manifest_stamp, read_manifest
from advisor.retrieve import Retriever
from advisor.types import Answer

log = logging.getLogger(__name__)

# How often a question checks whether another process (the CLI, or another replica sharing the index folder
# and vector store) has swapped in a new index: one stat() of the manifest, at most this often.
CHECK_SECONDS = 1.0
LONG_MESSAGE_CHARS = 600  # a message this long (a question with a background paragraph or more) takes its turn
LONG_WAIT_SECONDS = 1.0
LONG_TURN_SECONDS = 1.0
BUSY = Answer(
    "Other long messages are being answered right now. Please send yours again in a moment, or ask in a shorter message.",
    kind="busy",
)


@dataclass(frozen=True)
class RebuildState:
    """Where the last background rebuild stands."""

    running: bool
    message: str  # what happened last, for the UI ("" before any rebuild)
    ok: bool = True


class AdvisorService:
    """One Advisor for many users; `rebuild()` replaces it without stopping anyone's questions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stamp = manifest_stamp(settings.index_dir)
        self._advisor = self._load()
        self._checked = time.monotonic()
        self._reload_lock = threading.Lock()
        # Load the model and run one query now, so the first person to ask does not wait for torch.
        self._advisor.retriever.embedder.embed_query("warm up")
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running = False  # a rebuild thread is at work (set and cleared under _lock)
        self._again = False  # a rebuild was asked for while one ran: build once more when it ends
        self._state = RebuildState(False, "")
        self._long_lane = threading.Semaphore(1)
        self._next_long = 0.0  # when the next long message may start (monotonic seconds)

    def _load(self) -> Advisor:
        retriever = Retriever.open(self.settings)
        retriever.kin.warm()  # the corpus's words embedded now, not when someone first types a word it lacks
        advisor = Advisor(self.settings, retriever=retriever)
        advisor.answer_model.load()  # once per process; a missing or damaged model stops the start with its fix
        return advisor

    @property
    def advisor(self) -> Advisor:
        """The Advisor answering now (replaced as a whole when a rebuild finishes)."""
        return self._advisor

    def ask(self, question: str, history: Sequence[dict[str, Any]] = ()) -> Answer:
        """Answer from whichever index is current when the question arrives."""
        with self._turn(question) as turn:
            if not turn:
                return BUSY
            advisor = self._current()
            try:
                return advisor.ask(question, history)
            except (IndexCorrupt, StoreUnavailable) as exc:
                return self._retry_after_failure(advisor, exc).ask(question, history)

    def ask_stream(self, question: str, history: Sequence[dict[str, Any]] = ()) -> Iterator[Answer]:
        """Partial answers, then the final one, from the index current when the question arrives."""
        with self._turn(question) as turn:
            if not turn:
                yield BUSY
                return
            advisor, started = self._current(), False
            try:
                for answer in advisor.ask_stream(question, history):
                    started = True
                    yield answer
            except (IndexCorrupt, StoreUnavailable) as exc:
                if started:
                    raise
                yield from self._retry_after_failure(advisor, exc).ask_stream(question, history)

    @contextmanager
    def _turn(self, question: str) -> Iterator[bool]:
        """Whether ``question`` may be answered now. Long messages are answered one at a time, at most one starting
        each LONG_TURN_SECONDS, and one that would wait over LONG_WAIT_SECONDS for its turn is asked to be sent
        again: each costs several short questions (embedding grows with its length), so a few senders of long
        messages can take neither the cores nor, by waiting, the server's answer slots from everyone else."""
        if len(question) < LONG_MESSAGE_CHARS or _too_long(question):
            yield True  # short, or too long to be answered at all: refused at once, with no work to share
            return
        asked = time.monotonic()
        if not self._long_lane.acquire(timeout=LONG_WAIT_SECONDS):
            yield False
            return
        try:
            gap = self._next_long - time.monotonic()
            if gap > LONG_WAIT_SECONDS - (time.monotonic() - asked):
                yield False
                return
            if gap > 0:
                time.sleep(gap)
            self._next_long = time.monotonic() + LONG_TURN_SECONDS
            yield True
        finally:
            self._long_lane.release()

    def _retry_after_failure(self, failed: Advisor, error: AdvisorError) -> Advisor:
        """After a search failed: the newer index, if another process swapped one in (and dropped the
        collection this one searched); otherwise the failure stands."""
        fresh = self._current(force=True)
        if fresh is failed:
            raise error
        return fresh

    def _current(self, force: bool = False) -> Advisor:
        """The Advisor to answer with, after loading the index on disk if another process has replaced it."""
        now = time.monotonic()
        if not force and now - self._checked < CHECK_SECONDS:
            return self._advisor
        self._checked = now
        stamp = manifest_stamp(self.settings.index_dir)
        if stamp == self._stamp or (self._thread is not None and self._thread.is_alive()):
            return self._advisor
        if not self._reload_lock.acquire(blocking=force):
            return self._advisor  # another question is loading it; answer from the current one meanwhile
        try:
            if read_manifest(self.settings.index_dir).build_id != self.index.manifest.build_id:
                self._advisor = self._load()
            self._stamp = stamp
        except AdvisorError as exc:  # caught mid-swap or damaged: keep serving this one and look again next time
            log.warning("Kept serving index %s: the index on disk could not be loaded (%s)", self.index.manifest.build_id, exc)
        finally:
            self._reload_lock.release()
        return self._advisor

    @property
    def index(self) -> Index:
        """The index being served."""
        return self._advisor.retriever.index

    def status(self) -> IndexStatus:
        """Whether the served index matches the corpus (and is the one on disk)."""
        self._current(force=True)
        status = index_status(self.settings)
        if status.fresh and status.build_id != self.index.manifest.build_id:
            # Someone rebuilt on disk (the CLI, say) after this index was loaded.
            return IndexStatus(
                False,
                "a newer index was built on disk; rebuild to load it",
                built_at=status.built_at,
                documents=status.documents,
                chunks=status.chunks,
            )
        return status

    def rebuild(self, wait: bool = False) -> bool:
        """Start a background rebuild; False when one is already running, which then builds once more when it
        ends (a file added or removed meanwhile may be missed by the build under way, so the index still comes
        to match the corpus). ``wait`` blocks until the builds end."""
        with self._lock:
            if self._running:
                self._again = True
                return False
            self._running, self._again = True, False
            self._state = RebuildState(True, "Rebuilding the index…")
            self._thread = threading.Thread(target=self._rebuild_until_current, name="index-rebuild", daemon=True)
            self._thread.start()
        if wait:
            self._thread.join()
        return True

    def _rebuild_until_current(self) -> None:
        while True:
            self._rebuild()
            with self._lock:  # decided under the lock that rebuild() takes, so no request is lost between
                if not self._again:
                    self._running = False
                    return
                self._again = False
                self._state = RebuildState(True, "Rebuilding the index again: the documents changed during the update…")

    def rebuild_state(self) -> RebuildState:
        """The state of the last rebuild."""
        return self._state

    def _rebuild(self) -> None:
        started = time.perf_counter()
        try:
            report = build(self.settings, wait=WAIT_SECONDS)
            stamp = manifest_stamp(self.settings.index_dir)
            fresh = self._load()
        except AdvisorError as exc:
            log.warning("Rebuild failed: %s", exc)
            self._state = RebuildState(False, f"Rebuild failed: {exc}. Answers still come from the previous index.", ok=False)
            return
        except Exception as exc:  # a failed rebuild must leave the app serving; the traceback goes to the log
            log.exception("Rebuild failed")
            self._state = RebuildState(
                False, f"Rebuild failed ({type(exc).__name__}: {exc}). Answers still come from the previous index.", ok=False
            )
            return
        self._advisor, self._stamp = fresh, stamp  # one reference swap: questions already running finish on the old one
        self._state = RebuildState(False, _summary(report, time.perf_counter() - started))


def _too_long(question: str) -> bool:
    return len(question) > 2 * MAX_QUESTION_CHARS or len(" ".join(question.split())) > MAX_QUESTION_CHARS


def _summary(report: BuildReport, seconds: float) -> str:
    changes = (
        ", ".join(
            f"{len(v)} {k}" for k, v in (("added", report.added), ("changed", report.changed), ("removed", report.removed)) if v
        )
        or "no document changes"
    )
    skipped = f"; {len(report.skipped)} file(s) skipped" if report.skipped else ""
    return f"Index rebuilt in {seconds:.1f} s: {changes}{skipped}."
