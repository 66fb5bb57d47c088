"""The browser chat: streamed cited answers, a sources panel, examples, feedback and index freshness."""

from __future__ import annotations

import html
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls out at start

import gradio as gr  # noqa: E402

from advisor.errors import AdvisorError  # noqa: E402
from advisor.feedback import record_vote  # noqa: E402
from advisor.index import store_record  # noqa: E402
from advisor.store import store_label  # noqa: E402
from advisor.query import message_text  # noqa: E402
from advisor.service import AdvisorService  # noqa: E402
from advisor.types import Answer  # noqa: E402

# System fonts only: the default theme fetches web fonts, and the page must load nothing from other hosts.
THEME = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
REMEMBERED_ANSWERS = 2000  # answers kept so the sources panel and votes can find what was shown
STREAM_WORDS = 4  # words per streamed update
CSS = """
#sources .source {border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px; margin: 0 0 8px}
#sources .source-head {font-weight: 600}
#sources .source-file {font-size: 0.85em; opacity: 0.75; margin-bottom: 4px}
#sources .passage {white-space: pre-wrap; font-size: 0.9em; line-height: 1.4}
#sources mark {background: #ffe58a; color: inherit; padding: 0 1px}
#sources .empty {opacity: 0.7}
#chat [data-testid="bot"], #chat [data-testid="user"] {white-space: pre-wrap}
#index-status {font-size: 0.9em}
"""


class ChatUI:
    """Builds the page and answers its events; one instance serves every browser session."""

    def __init__(self, service: AdvisorService) -> None:
        self.service = service
        self._answers: OrderedDict[tuple[str, str], Answer] = OrderedDict()
        self._lock = threading.Lock()

    # --- chat ----------------------------------------------------------------------------

    def respond(self, message: Any, history: list[dict[str, Any]], request: gr.Request) -> Iterator[str]:
        """Answer one message, streaming the text; the sources panel follows from the remembered answer.

        The chat bubble renders HTML, so the browser gets the text escaped (a "<script>" quoted from a
        document shows as text); API clients (gradio_client marks its calls) get the plain answer.
        """
        api = bool(request and request.headers.get("x-gradio-user") == "api")

        def shown(text: str) -> str:
            return text if api else html.escape(text, quote=False)

        answer, streamed = Answer(""), False
        try:
            for answer in self.service.ask_stream(message_text(message), history):
                if answer.kind == "partial":  # an LLM writing: its tokens as they come
                    streamed = True
                    yield shown(answer.text)
        except AdvisorError as exc:  # e.g. the Milvus server is down: say so in the chat, keep the page working
            answer = Answer(f"Sorry, I cannot search the documents right now: {exc}", kind="error")
        final = shown(answer.text)
        self._remember(_session(request), final, answer)
        if not streamed:  # a composed answer is ready at once; show it arriving a few words at a time
            pieces = re.split(r"(\s+)", final)
            for end in range(STREAM_WORDS * 2, len(pieces), STREAM_WORDS * 2):
                yield "".join(pieces[:end])
        yield final

    def sources(self, history: list[dict[str, Any]] | None, request: gr.Request) -> str:
        """The sources panel for the latest answer in this session's chat."""
        last = next((message_text(m.get("content")) for m in reversed(history or []) if m.get("role") == "assistant"), "")
        return render_sources(self._recall(_session(request), last))

    def vote(self, data: gr.LikeData, history: list[dict[str, Any]], request: gr.Request) -> None:
        """Record a like or dislike with the question, the conversation before it, the answer and its sources."""
        index = data.index if isinstance(data.index, int) else data.index[0]
        text = message_text(history[index].get("content")) if 0 <= index < len(history) else message_text(data.value)
        answer = self._recall(_session(request), text) or Answer(text, kind="unknown")
        before = history[:index]
        question_at = next((i for i in range(len(before) - 1, -1, -1) if before[i].get("role") == "user"), None)
        question = message_text(before[question_at].get("content")) if question_at is not None else ""
        earlier = before[:question_at] if question_at is not None else before
        record_vote(self.service.settings.feedback_dir, question, earlier, answer, bool(data.liked))
        gr.Info("Thanks, your feedback was saved.")

    def _remember(self, session: str, shown: str, answer: Answer) -> None:
        with self._lock:
            self._answers[(session, shown)] = answer
            self._answers.move_to_end((session, shown))
            while len(self._answers) > REMEMBERED_ANSWERS:
                self._answers.popitem(last=False)

    def _recall(self, session: str, text: str) -> Answer | None:
        with self._lock:
            return self._answers.get((session, text))

    # --- index freshness -----------------------------------------------------------------

    def status(self) -> tuple[str, Any, Any]:
        """(status HTML, rebuild button update, poll timer update) for the index bar."""
        index = self.service.index
        state = self.service.rebuild_state()
        built = index.built_at.replace("T", " ").replace("+00:00", " UTC")
        vectors = store_label(store_record(index.manifest))
        lines = [f"<b>Index</b> built {html.escape(built)} · {_count(len(index.documents), 'document')} · "
                 f"{_count(len(index.chunks), 'passage')} · vectors in {html.escape(vectors)}"]
        stale = False
        if state.running:
            lines.append("Rebuilding the index… questions are answered from the current one meanwhile.")
        else:
            status = self.service.status()
            if not status.fresh:
                stale = True
                changed = ", ".join(status.added + status.changed + status.removed)
                lines.append(f"<b>The corpus has changed since this index was built</b>: {html.escape(status.reason)}"
                             + (f" ({html.escape(changed)})" if changed else ""))
            if state.message:
                lines.append(html.escape(state.message))
        return ("<br>".join(lines), gr.update(visible=stale and not state.running, interactive=not state.running),
                gr.Timer(active=state.running))

    def rebuild(self) -> tuple[str, Any, Any]:
        """Start a background rebuild and show that it is running."""
        self.service.rebuild()
        return self.status()

    # --- page ----------------------------------------------------------------------------

    def blocks(self) -> gr.Blocks:
        """The page: index bar, chat with examples and votes, sources panel."""
        with gr.Blocks(title="Career Advisor") as page:
            gr.Markdown(f"# Career Advisor\nAsk about what the documents cover ({self.service.advisor.scope}). "
                        "Answers quote the documents and cite them as [1], [2], shown beside the chat.")
            with gr.Row(equal_height=True):
                status = gr.HTML(elem_id="index-status")
                check = gr.Button("Check for changes", size="sm", scale=0, min_width=160)
                rebuild = gr.Button("Rebuild index", variant="primary", size="sm", scale=0, min_width=140, visible=False)
            timer = gr.Timer(2.0, active=False)
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(elem_id="chat", height=560, render_markdown=False, sanitize_html=True,
                                         show_label=False,
                                         feedback_options=("Like", "Dislike"), buttons=["copy"],
                                         placeholder="Ask a question, or pick an example below.")
                    chat = gr.ChatInterface(
                        self.respond, chatbot=chatbot, examples=self.service.advisor.examples() or None, api_name="chat",
                        concurrency_limit=self.service.settings.concurrency, fill_height=False,
                        textbox=gr.Textbox(placeholder="Ask a question about the documents…", max_lines=6,
                                           submit_btn=True, stop_btn=True),
                    )
                    clear = gr.Button("Clear chat", size="sm")
                with gr.Column(scale=2):
                    gr.Markdown("### Sources")
                    sources = gr.HTML(render_sources(None), elem_id="sources")
            chatbot.change(self.sources, [chatbot], [sources], api_visibility="private", show_progress="hidden",
                           queue=False)
            chatbot.like(self.vote, [chatbot], None, api_visibility="private")
            clear.click(lambda: ([], [], render_sources(None)), None, [chatbot, chat.chatbot_state, sources],
                        api_visibility="private", queue=False)
            bar = [status, rebuild, timer]
            page.load(self.status, None, bar, api_visibility="private")
            check.click(self.status, None, bar, api_visibility="private")
            rebuild.click(self.rebuild, None, bar, api_visibility="private")
            timer.tick(self.status, None, bar, api_visibility="private")
        return page


def render_sources(answer: Answer | None) -> str:
    """HTML for the cited passages, every piece of document text escaped, the quoted parts highlighted."""
    if answer is None or not answer.citations:
        return '<div class="empty">The passages an answer cites appear here.</div>'
    blocks = []
    for citation in answer.citations:
        chunk = citation.chunk
        where = chunk.source + (f", page {chunk.page}" if chunk.page else "")
        blocks.append(
            f'<div class="source" id="source-{citation.n}">'
            f'<div class="source-head">[{citation.n}] {html.escape(chunk.title)} — '
            f'{html.escape(chunk.section or chunk.title)}</div>'
            f'<div class="source-file">{html.escape(where)}</div>'
            f'<div class="passage">{highlight(chunk.text, citation.quotes)}</div></div>'
        )
    return "".join(blocks)


def highlight(text: str, quotes: tuple[str, ...]) -> str:
    """``text`` escaped, with each quote's first occurrence wrapped in <mark>."""
    spans = sorted((start, start + len(q)) for q in quotes if q and (start := text.find(q)) >= 0)
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, position = [], 0
    for start, end in merged:
        out += [html.escape(text[position:start]), "<mark>", html.escape(text[start:end]), "</mark>"]
        position = end
    out.append(html.escape(text[position:]))
    return "".join(out)


def launch(service: AdvisorService) -> None:
    """Serve the page on the configured host and port (blocks until stopped)."""
    settings = service.settings
    page = ChatUI(service).blocks()
    page.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    user, _, password = settings.auth.partition(":")
    page.launch(server_name=settings.host, server_port=settings.port, share=False, css=CSS, theme=THEME,
                show_error=False, footer_links=[], auth=(user, password) if settings.auth else None,
                # Gradio serves no file outside its own folders anyway; these are never to be served.
                blocked_paths=[str(settings.index_dir), str(settings.corpus_dir), str(settings.feedback_dir)])


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "default"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
