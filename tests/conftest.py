"""Shared fixtures: the real packaged model (loaded once), tiny corpora and settings in temp folders."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from advisor.config import PACKAGED_MODEL, PROJECT_ROOT, Settings, quiet_environment
from advisor.embed import Embedder, get_embedder
from advisor.index import build

quiet_environment()  # as the entry points do: no hub, no analytics

DATA = Path(__file__).parent / "data"
SEED_CORPUS = PROJECT_ROOT / "corpus"
GOOD_FILES = ("career-notes.md", "hiring-page.html", "latin1-notes.txt", "utf16-notes.txt")
BAD_FILES = ("binary-data.txt", "empty.txt", "whitespace-only.txt")


# What makes a test slow: the real model (directly or through a fixture that builds an index), a browser, a server
# process, or Milvus. Such tests are marked "slow" here, so `pytest -m "not slow"` is the fast subset.
SLOW_FIXTURES = {"embedder", "seed_settings"}
SLOW_MODULES = {"test_app", "test_cli", "test_milvus", "test_llm"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the slow tests (see SLOW_FIXTURES and SLOW_MODULES; a test may also mark itself)."""
    for item in items:
        params = getattr(item, "callspec", None)
        milvus = params is not None and any("milvus" in str(value) for value in params.params.values())
        if (
            SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
            or item.module.__name__.split(".")[-1] in SLOW_MODULES
            or milvus
        ):
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The fast subset must stay fast: fail it if a test loaded the model anyway (mark that test slow)."""
    import sys

    if session.config.getoption("markexpr") == "not slow" and "sentence_transformers" in sys.modules and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print("\nerror: a test outside the slow set loaded the embedding model; mark it slow or give it a fake embedder")


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real packaged MiniLM model, loaded once for the whole session."""
    model = get_embedder(PACKAGED_MODEL)
    model.model  # noqa: B018 - load now, not inside the first test's timing
    return model


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a corpus and index under this test's temp folder, ignoring the caller's ADVISOR_* env."""

    def make(**overrides: object) -> Settings:
        overrides.setdefault("corpus_dir", tmp_path / "corpus")
        overrides.setdefault("index_dir", tmp_path / "index")
        return Settings.load(env={}, **overrides)

    return make


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A temp corpus holding the test data files, good and bad."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in GOOD_FILES + BAD_FILES:
        shutil.copy(DATA / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def seed_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Settings:
    """The shipped corpus indexed once into a temp folder (the repo's own index/ is left alone)."""
    index_dir = tmp_path_factory.mktemp("seed-index")
    settings = Settings.load(env={}, corpus_dir=SEED_CORPUS, index_dir=index_dir)
    build(settings, embedder=embedder)
    return settings


def advisor_cli(*args: str, stdin: str | bytes | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m advisor ARGS` as a user runs it, in the project folder, without the caller's ADVISOR_* variables
    (``env`` adds variables); text in and out unless ``stdin`` is bytes."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ADVISOR_")} | {"PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "advisor", *args],
        input=stdin,
        cwd=PROJECT_ROOT,
        env=clean | (env or {}),
        capture_output=True,
        text=not isinstance(stdin, bytes),
        timeout=300,
    )


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(process: subprocess.Popen, url: str, log: Path, seconds: float = 240) -> None:
    """Wait for ``url`` to answer 200, failing with the process's log if it exits or takes too long."""
    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"{url} did not start serving:\n{log.read_text()}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
