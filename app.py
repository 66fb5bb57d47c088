"""Career Advisor: `python app.py` builds the index if needed and serves the chat in the browser."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from advisor.cli import format_report  # noqa: E402
from advisor.config import Settings  # noqa: E402
from advisor.errors import AdvisorError  # noqa: E402
from advisor.index import build  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Parse flags, bring the index up to date, load the model once, and serve."""
    parser = argparse.ArgumentParser(description="Career Advisor: chat with the ML-engineer career corpus.")
    parser.add_argument("--host", help="address to serve on (env ADVISOR_HOST; default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to serve on (env ADVISOR_PORT; default 7860)")
    parser.add_argument("--corpus", type=Path, help="folder of documents (env ADVISOR_CORPUS)")
    parser.add_argument("--index", type=Path, help="folder for the built index (env ADVISOR_INDEX)")
    parser.add_argument("--feedback", type=Path, help="folder for the likes/dislikes file (env ADVISOR_FEEDBACK)")
    parser.add_argument("--vector-store", help="'faiss' (default), 'milvus://host:19530' or a Milvus Lite file "
                                               "(env ADVISOR_VECTOR_STORE)")
    parser.add_argument("--milvus-collection", help="Milvus collection name prefix (env ADVISOR_MILVUS_COLLECTION)")
    parser.add_argument("--llm-base-url", help="OpenAI-compatible server for LLM answers (env ADVISOR_LLM_BASE_URL)")
    parser.add_argument("--llm-model", help="model the server runs (env ADVISOR_LLM_MODEL)")
    parser.add_argument("--llm-api-key", help="API key, if the server needs one (env ADVISOR_LLM_API_KEY)")
    parser.add_argument("--llm-timeout", type=float, help="seconds allowed for one answer (env ADVISOR_LLM_TIMEOUT)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.load(host=args.host, port=args.port, corpus_dir=args.corpus, index_dir=args.index,
                                 feedback_dir=args.feedback, vector_store=args.vector_store,
                                 milvus_collection=args.milvus_collection, llm_base_url=args.llm_base_url,
                                 llm_model=args.llm_model, llm_api_key=args.llm_api_key, llm_timeout=args.llm_timeout)
        report = build(settings, progress=True, wait=600, log=print)
        print(format_report(report, settings), flush=True)
        from advisor.service import AdvisorService
        from advisor.ui import launch

        service = AdvisorService(settings)
        mode = f"answers written by {settings.llm_model} at {settings.llm_base_url}" if settings.llm else "no LLM"
        print(f"Career Advisor is serving on http://{settings.host}:{settings.port} ({mode})", flush=True)
        launch(service)
    except AdvisorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the port is taken
        print(f"error: cannot serve on {args.host or '127.0.0.1'}:{args.port or 7860}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
