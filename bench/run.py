"""Benchmarks: each figure beside a reference measured in the same run, written where the docs include them.

    python bench/run.py                    # every section (about 20 minutes on 2 cores with the 1M FAISS rows)
    python bench/run.py --only answers     # one section: answers, faiss, stores or quality (comma-separated)
    python bench/run.py --quick            # a smoke run with tiny sizes (the tests run it; its figures mean little)

Each section writes docs/results/<section>.md (a table) and .json, then bench/include.py copies the tables into
docs/performance.md and docs/answers-and-quality.md. --quick writes to bench/results/ instead, leaving docs alone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from advisor.config import PROJECT_ROOT as ROOT, quiet_environment

SECTIONS = ("answers", "faiss", "stores", "quality")
TITLES = {
    "answers": "Answer time, build throughput, incremental rebuild, start-up and memory",
    "faiss": "Vector search at size: flat, HNSW and IVF",
    "stores": "FAISS against Milvus",
    "quality": "Golden-set scores",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves the benchmarks run")
    parser.add_argument("--out", type=Path, help="folder for the results (default docs/results; bench/results with --quick)")
    parser.add_argument(
        "--faiss-sizes",
        default="10000,100000,1000000",
        help="comma-separated passage counts for the FAISS comparison (1M needs ~6 GB and ~10 min)",
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument(
        "--store-sizes",
        default="10000,100000",
        help="comma-separated passage counts for the FAISS-vs-Milvus Lite write and search comparison",
    )
    args = parser.parse_args(argv)
    sections = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := set(sections) - set(SECTIONS):
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    out = args.out or ROOT / ("bench/results" if args.quick else "docs/results")
    quiet_environment()
    from advisor.config import Settings
    from advisor.embed import get_embedder

    embedder = get_embedder()
    embedder.embed_query("warm up")
    settings = Settings.load(env={})
    machine = f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {sys.platform}"
    for section in sections:
        if section == "answers":
            rows = [
                answer_time(settings, embedder, questions=10 if args.quick else None),
                build_throughput(settings, embedder),
                incremental_rebuild(embedder, documents=20 if args.quick else 1000),
                *startup(quick=args.quick),
            ]
        elif section == "faiss":
            rows = faiss_scaling(embedder, sizes=(2_000,) if args.quick else tuple(int(n) for n in args.faiss_sizes.split(",")))
        elif section == "stores":
            store_sizes = (2_000,) if args.quick else tuple(int(n) for n in args.store_sizes.split(","))
            rows = vector_stores(settings, embedder, questions=10 if args.quick else None, sizes=store_sizes)
        else:
            quality(out, quick=args.quick)
            continue
        write_section(out, f"bench-{section}", TITLES[section], rows, machine, args.quick)
        print(f"{'benchmark':<46}{'value':>20}{'reference':>24}{'ratio':>8}  target")
        for row in rows:
            print(f"{row['name']:<46}{row['value']:>20}{row['reference']:>24}{row['ratio']:>8}  {row['target']}")
    if not args.quick and out == ROOT / "docs" / "results":
        subprocess.run([sys.executable, str(ROOT / "bench" / "include.py")], check=True)
    return 0


def write_section(out: Path, name: str, title: str, rows: list[dict], machine: str, quick: bool) -> None:
    """``<name>.json`` (every field) and ``<name>.md`` (the table the docs include)."""
    out.mkdir(parents=True, exist_ok=True)
    when = time.strftime("%Y-%m-%d")
    (out / f"{name}.json").write_text(json.dumps({"machine": machine, "date": when, "quick": quick, "results": rows}, indent=1))
    lines = [
        f"{title}. Measured {when} on {machine} by `python bench/run.py --only {name.removeprefix('bench-')}`.",
        "",
        "| benchmark | value | reference, same run | ratio | target | details |",
        "| --- | --- | --- | ---: | --- | --- |",
        *(f"| {r['name']} | {r['value']} | {r['reference']} | {r['ratio']} | {r['target']} | {_details(r)} |" for r in rows),
    ]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")


def _details(row: dict) -> str:
    """The row's extra measurements ("recall_at_10": 0.995 -> "recall at 10 0.995")."""
    shown = {"name", "value", "reference", "ratio", "target"}
    return ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in row.items() if key not in shown)


def quality(out: Path, quick: bool) -> None:
    """`advisor eval --report` on the seed dev set and on eval/corpora/careers (each ~30 s)."""
    runs = [
        ("quality-seeds", [ROOT / "eval" / "devset.jsonl"]),
        ("quality-careers", [ROOT / "eval" / "corpora" / "careers.jsonl", "--corpus", ROOT / "eval" / "corpora" / "careers"]),
    ]
    for name, arguments in runs[:1] if quick else runs:
        if quick:
            golden = out / "quick-golden.jsonl"
            out.mkdir(parents=True, exist_ok=True)
            golden.write_text("".join(Path(arguments[0]).read_text().splitlines(keepends=True)[:10]))
            arguments = [golden]
        subprocess.run(
            [sys.executable, "-m", "advisor", "eval", *map(str, arguments), "--report", str(out / f"{name}.md"), "-q"],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print((out / f"{name}.md").read_text())


def _row(name: str, value: float, unit: str, reference: float, ref_unit: str, ratio: float, target: str, **extra):
    return {
        "name": name,
        "value": f"{value:.4g} {unit}",
        "reference": f"{reference:.4g} {ref_unit}",
        "ratio": round(ratio, 2),
        "target": target,
        **extra,
    }


def answer_time(settings, embedder, questions: int | None) -> dict:
    """Warm `ask` per question against one raw `encode_query` of the same question."""
    from advisor.chat import Advisor
    from advisor.evaluate import read_golden

    items = read_golden(ROOT / "eval" / "devset.jsonl")[:questions]
    index_dir = Path(tempfile.mkdtemp(prefix="bench-index-"))
    from advisor.index import build

    local = replace(settings, index_dir=index_dir)
    build(local, embedder=embedder)
    advisor = Advisor(local)
    advisor.ask("warm up question about salary")
    asked, raw = [], []
    for item in items:
        started = time.perf_counter()
        advisor.ask(item.question, list(item.history))
        asked.append(time.perf_counter() - started)
        started = time.perf_counter()
        embedder.embed_query(item.question)
        raw.append(time.perf_counter() - started)
    shutil.rmtree(index_dir, ignore_errors=True)
    a, r = statistics.median(asked), statistics.median(raw)
    return _row(
        "answer time per question (median, warm)",
        a * 1000,
        "ms",
        r * 1000,
        "ms encode",
        a / r,
        "<= 3x",
        p95_ms=round(sorted(asked)[int(0.95 * len(asked))] * 1000, 1),
        questions=len(items),
    )


def build_throughput(settings, embedder) -> dict:
    """A full index build of the seed corpus against raw `encode` of the same passages."""
    from advisor.index import Index, build

    index_dir = Path(tempfile.mkdtemp(prefix="bench-index-"))
    local = replace(settings, index_dir=index_dir)
    started = time.perf_counter()
    report = build(local, embedder=embedder, full=True)
    built = time.perf_counter() - started
    texts = [c.embedding_text for c in Index.load(index_dir).chunks.values()]
    started = time.perf_counter()
    embedder.model.encode(texts, batch_size=32, normalize_embeddings=True)
    raw = time.perf_counter() - started
    shutil.rmtree(index_dir, ignore_errors=True)
    ours, theirs = report.chunks_total / built, len(texts) / raw
    # The build also embeds every passage's statements (sentences, list items, table rows) for choosing answers.
    return _row(
        "full build throughput (passages and their statements)",
        ours,
        "passages/s",
        theirs,
        "passages/s raw encode",
        ours / theirs,
        ">= 0.5x",
    )


def incremental_rebuild(embedder, documents: int) -> dict:
    """Change one file of a synthetic corpus: the rebuild against a full build, and against embedding that file."""
    from advisor.config import Settings
    from advisor.index import build

    root = Path(tempfile.mkdtemp(prefix="bench-corpus-"))
    corpus = root / "corpus"
    corpus.mkdir()
    sentences = _corpus_sentences()
    rng = random.Random(7)
    for n in range(documents):
        body = " ".join(rng.sample(sentences, 6))
        (corpus / f"doc-{n:04d}.txt").write_text(f"Document {n}\n\n{body}\n")
    settings = Settings.load(env={}, corpus_dir=corpus, index_dir=root / "index")
    started = time.perf_counter()
    full = build(settings, embedder=embedder)
    full_seconds = time.perf_counter() - started
    changed = corpus / "doc-0000.txt"
    changed.write_text(changed.read_text() + "An added sentence about machine learning salaries.\n")
    started = time.perf_counter()
    inc = build(settings, embedder=embedder)
    inc_seconds = time.perf_counter() - started
    started = time.perf_counter()
    embedder.embed_passages([changed.read_text()] * inc.chunks_embedded)
    one_file = time.perf_counter() - started
    shutil.rmtree(root, ignore_errors=True)
    return _row(
        f"incremental rebuild, 1 of {documents} files changed",
        inc_seconds,
        "s",
        full_seconds,
        "s full build",
        inc_seconds / full_seconds,
        "~ that file, not the corpus",
        chunks_total=full.chunks_total,
        chunks_embedded=inc.chunks_embedded,
        embed_that_file_s=round(one_file, 3),
    )


def startup(quick: bool) -> list[dict]:
    """`python app.py` until it serves, against the bare import of gradio and sentence-transformers; peak RSS."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import gradio, sentence_transformers"], env=env, check=True)
    imports = time.perf_counter() - started
    index_dir = tempfile.mkdtemp(prefix="bench-index-")
    subprocess.run(
        [sys.executable, "-m", "advisor", "index", "--index", index_dir], env=env, check=True, capture_output=True
    )  # start-up is measured with the index built, as on every run but the first
    from load import start_app  # bench/load.py, beside this script

    started = time.perf_counter()
    app, url = start_app(index_dir, poll=0.05)
    try:
        serving = time.perf_counter() - started
        from gradio_client import Client

        client = Client(url, verbose=False)
        for question in ("What do juniors earn?", "Which skills do I need?", "And at the senior level?")[: 1 if quick else 3]:
            client.predict(question, api_name="/chat")
        status = Path(f"/proc/{app.pid}/status").read_text()
        peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    finally:
        app.terminate()
        app.wait(20)
        shutil.rmtree(index_dir, ignore_errors=True)
    return [
        _row("app start-up to serving", serving, "s", imports, "s imports", serving / imports, "<= 1.3x"),
        _row("app peak RSS, serving the seed corpus", peak, "MB", 1024, "MB budget", peak / 1024, "<= 1.0"),
    ]


def faiss_scaling(embedder, sizes: tuple[int, ...]) -> list[dict]:
    """Search latency and recall@10 of flat, HNSW and IVF indexes over sentence-embedding-like vectors."""
    import faiss
    import numpy as np

    base = embedder.embed_passages(_corpus_sentences())
    rng = np.random.default_rng(3)
    rows = []
    for n in sizes:
        # Mixtures of two real sentence embeddings plus a little noise: clustered like real passages, not uniform.
        vectors = _mixtures(base, n, rng)
        queries = _mixtures(base, 200, rng)
        exact = faiss.IndexFlatIP(base.shape[1])
        exact.add(vectors)
        _, truth = exact.search(queries, 10)
        candidates = {"flat": exact}
        started = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(base.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efSearch = 64
        hnsw.add(vectors)
        candidates["hnsw"] = hnsw
        built = {"flat": 0.0, "hnsw": time.perf_counter() - started}
        started = time.perf_counter()
        nlist = max(16, int(4 * np.sqrt(n)))
        quantizer = faiss.IndexFlatIP(base.shape[1])  # kept referenced: the IVF index does not own it
        ivf = faiss.IndexIVFFlat(quantizer, base.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(vectors[: max(nlist * 40, 10_000)])
        ivf.add(vectors)
        ivf.nprobe = 16
        candidates["ivf"] = ivf
        built["ivf"] = time.perf_counter() - started
        flat_ms = None
        for name, index in candidates.items():
            started = time.perf_counter()
            found = np.stack([index.search(q[None, :], 10)[1][0] for q in queries])
            ms = (time.perf_counter() - started) / len(queries) * 1000
            recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]))
            flat_ms = ms if name == "flat" else flat_ms
            rows.append(
                _row(
                    f"faiss {name}, {n:,} passages",
                    ms,
                    "ms/query",
                    flat_ms,
                    "ms flat",
                    ms / flat_ms,
                    "recall@10 >= 0.95",
                    recall_at_10=round(recall, 3),
                    build_s=round(built[name], 1),
                )
            )
    return rows


def vector_stores(settings, embedder, questions: int | None, sizes: tuple[int, ...]) -> list[dict]:
    """FAISS against Milvus: answer time on the seed corpus (Milvus Lite in-process, and a Milvus server over
    gRPC, played by `milvus-lite server`), then what one changed document costs to write, and search, at size."""
    import numpy as np

    from advisor.chat import Advisor
    from advisor.evaluate import read_golden
    from advisor.index import build
    from advisor.stores.faiss import FaissStore

    items = read_golden(ROOT / "eval" / "devset.jsonl")[:questions]
    root = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    port = _free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("milvus-lite")),
            "server",
            "--data-dir",
            str(root / "server-data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows = []
    try:
        timings = {}
        for name, store in (
            ("faiss", "faiss"),
            ("milvus lite file", str(root / "vectors.db")),
            ("milvus server (gRPC)", f"milvus://127.0.0.1:{port}"),
        ):
            local = replace(settings, index_dir=root / name.replace(" ", "-"), vector_store=store)
            for _ in range(100):  # the server may still be starting
                try:
                    build(local, embedder=embedder)
                    break
                except Exception:
                    time.sleep(0.2)
            advisor = Advisor(local)
            advisor.ask("warm up question about salary")
            asked = []
            for item in items:
                started = time.perf_counter()
                advisor.ask(item.question, list(item.history))
                asked.append(time.perf_counter() - started)
            timings[name] = statistics.median(asked)
        for name, seconds in timings.items():
            rows.append(
                _row(
                    f"answer time, vectors in {name}",
                    seconds * 1000,
                    "ms",
                    timings["faiss"] * 1000,
                    "ms faiss",
                    seconds / timings["faiss"],
                    "same answers (eval fingerprint)",
                )
            )

        rng = np.random.default_rng(5)
        base = embedder.embed_passages(_corpus_sentences())
        for n in sizes:
            vectors = _mixtures(base, n, rng)
            ids = list(range(n))
            sources = [f"doc-{i // 4}" for i in ids]  # four passages a document
            faiss_store = FaissStore(vectors.shape[1], sources=dict(zip(ids, sources)))
            faiss_store.index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))
            faiss_store = faiss_store.fitted(settings.flat_max)
            started = time.perf_counter()  # what an incremental build of one changed document does with FAISS:
            copy = faiss_store.for_update()  # copy the index, change it, and write the whole file anew
            copy.delete("doc-0")
            copy.add("doc-0", [n + 1, n + 2, n + 3, n + 4], vectors[:4])
            copy = copy.fitted(settings.flat_max)
            copy.commit(root, f"bench-{n}")
            faiss_write = time.perf_counter() - started
            queries = _mixtures(base, 50, rng)
            started = time.perf_counter()
            for q in queries:
                faiss_store.search(q[None, :], 30)
            faiss_search = (time.perf_counter() - started) / len(queries)

            from advisor.stores.milvus import MilvusStore

            milvus = MilvusStore.create_collection(str(root / f"scale-{n}.db"), "", "bench", vectors.shape[1])
            milvus.add("doc-0", ids[:4], vectors[:4])  # loaded in bulk: only doc-0 is changed below
            for start in range(4, n, 4_000):
                chunk = slice(start, min(n, start + 4_000))
                milvus.add("the rest", ids[chunk], vectors[chunk])
            milvus.commit(root, "bulk")
            started = time.perf_counter()  # the same change as an index build makes it: upsert, delete by document, flush
            new_ids = [n + 1, n + 2, n + 3, n + 4]
            milvus.add("doc-0", new_ids, vectors[:4])
            milvus.delete("doc-0", keep=set(new_ids))
            milvus.commit(root, "one")
            milvus_write = time.perf_counter() - started
            started = time.perf_counter()
            for q in queries:
                milvus.search(q[None, :], 30)
            milvus_search = (time.perf_counter() - started) / len(queries)
            rows.append(
                _row(
                    f"write 1 changed document, {n:,} passages: milvus lite",
                    milvus_write * 1000,
                    "ms",
                    faiss_write * 1000,
                    f"ms faiss ({faiss_store.kind})",
                    milvus_write / faiss_write,
                    "faiss grows with the corpus",
                )
            )
            rows.append(
                _row(
                    f"search top 30, {n:,} passages: milvus lite",
                    milvus_search * 1000,
                    "ms/query",
                    faiss_search * 1000,
                    f"ms faiss ({faiss_store.kind})",
                    milvus_search / faiss_search,
                    "information",
                )
            )
    finally:
        server.terminate()
        server.wait(20)
        shutil.rmtree(root, ignore_errors=True)
    return rows


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _mixtures(base, n: int, rng):
    import numpy as np

    a, b = base[rng.integers(0, len(base), n)], base[rng.integers(0, len(base), n)]
    weight = rng.uniform(0.5, 1.0, (n, 1)).astype(np.float32)
    mixed = weight * a + (1 - weight) * b + rng.normal(0, 0.02, a.shape).astype(np.float32)
    return (mixed / np.linalg.norm(mixed, axis=1, keepdims=True)).astype(np.float32)


def _corpus_sentences() -> list[str]:
    text = " ".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "corpus").glob("*.txt")))
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s.split()) >= 5]


if __name__ == "__main__":
    raise SystemExit(main())
