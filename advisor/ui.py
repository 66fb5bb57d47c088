"""The browser chat: cited answers that keep their sources, saved chats, a Documents tab and index freshness."""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import gradio as gr

from advisor import render
from advisor.chart import bar_charts
from advisor.chart import figure as chart_figure
from advisor.chat import MAX_ANSWER_CHARS, MAX_HISTORY_MESSAGES, MAX_QUESTION_CHARS, bound_history
from advisor.documents import add_document, is_loopback, list_documents, remove_document, uploads_blocked
from advisor.errors import AdvisorError
from advisor.feedback import record_vote
from advisor.load import FORMATS
from advisor.query import message_text
from advisor.service import AdvisorService
from advisor.types import Answer

log = logging.getLogger(__name__)

# System fonts only: the default theme fetches web fonts, and the page must load nothing from other hosts.
THEME = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
REMEMBERED_ANSWERS = 2000  # answers kept so the sources panel and votes can find what was shown
STREAM_WORDS = 4  # words per streamed update
# The largest request body the server reads (uploads excepted): a message is at most 4,000 characters, and the
# largest the page itself sends, its saved chats, stays far below this. See BodyLimit.
MAX_REQUEST_BYTES = 2**20
# Browser and API sessions whose state Gradio keeps, the least recently used dropped first. Gradio keeps every
# input of a session, an API call's message whole (each call opens a session): with the body limit, at most about
# 100 MB however many are opened. 300 let 980 KB messages take the app over 1.2 GB (bench/load.py --hostile).
SESSIONS = 100
EXPORT_SECONDS = 3600  # how long a downloaded chat's file is kept on the server
UPLOAD_SECONDS = 3600
LOGIN_ATTEMPTS = 5  # wrong passwords from one address within LOGIN_WINDOW_SECONDS before it must wait
LOGIN_WINDOW_SECONDS = 60.0
LOGIN_ADDRESSES = 10_000  # addresses whose failures are remembered (the oldest are forgotten)
UPLOAD_ROUTE = "/gradio_api/upload"
UPDATING = "updating the index."  # what an upload or removal says until the update it started has finished
PHONE = 720  # px: narrower than this, sources live only under each answer and the chat fills the screen
CSS = f"""
.src {{border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px 9px; margin: 6px 0}}
.src-head {{font-weight: 600}}
.src-file {{font-size: 0.85em; opacity: 0.75; margin-bottom: 4px}}
.src-text {{font-size: 0.9em; line-height: 1.4}}
.src mark {{background: #ffe58a; color: inherit; padding: 0 1px}}
.src-text p {{margin: 0 0 4px}}
.src-h {{font-weight: 600; margin: 2px 0}}
.src-list {{margin: 0 0 4px 1.2em; padding: 0}}
.src-list li.n {{list-style: none; margin-left: -1.2em}}
.src-table {{border-collapse: collapse; margin: 2px 0 4px; font-size: 0.95em; display: block; overflow-x: auto}}
.src-table th, .src-table td {{border: 1px solid var(--border-color-primary); padding: 2px 8px; text-align: left}}
.src.active {{outline: 2px solid var(--color-accent); background: var(--background-fill-secondary)}}
details.{render.SOURCES_CLASS} > summary {{cursor: pointer; font-weight: 600; margin-top: 4px}}
#side-sources .empty {{opacity: 0.7}}
#index-status {{font-size: 0.9em}}
#index-status p {{margin: 0}}
.history-col {{max-width: 220px; min-width: 160px !important}}
.documents-scroll {{overflow-x: auto; max-width: 100%}}
.documents-scroll table {{min-width: 560px}}
.swipe-hint {{display: none}}
#chat a[href="{render.ASK}"] {{display: inline-block; border: 1px solid var(--color-accent); border-radius: 14px;
  padding: 2px 10px; margin: 2px 0; text-decoration: none; cursor: pointer}}
#chat a[href="{render.ASK}"]:hover {{background: var(--background-fill-secondary)}}
#chat li:has(> a[href="{render.ASK}"]) {{list-style: none; margin-left: -1em}}
#download-chat {{max-width: 180px}}
table.{render.TABLE_CLASS} td {{padding: 4px 12px}}
/* A cell wraps between words only ("$63,400" never splits over lines); a wide table scrolls sideways. */
.src-table th, .src-table td, table.{render.TABLE_CLASS} td {{overflow-wrap: normal; word-break: normal}}
@media (max-width: {PHONE}px) {{
  #side-sources, #side-title {{display: none !important}}
  #chat {{height: 52vh !important; max-height: 52vh !important}}
  .history-col {{order: 2; max-width: none; max-height: 30vh; overflow: auto}}
  #intro p {{font-size: 0.9em; margin: 0}}
  #intro h1 {{font-size: 1.4em; margin: 0 0 2px}}
  .swipe-hint {{display: block; font-size: 0.85em; opacity: 0.75; margin: 0 0 4px}}
}}
"""
# Clicking "[n]" in an answer opens that answer's sources and marks passage n (and shows them in the side panel);
# a suggested question is asked when clicked; on a phone the newest answer is scrolled into view when it arrives
# (the page, not just the chat box, scrolls there).
JS = f"""
() => {{
  // A suggested question or an example is asked as if typed, so it goes where typed questions go (saved chats).
  const ask = (question) => {{
    const box = document.querySelector('#ask-box textarea');
    if (!box) return;
    box.value = question;
    box.dispatchEvent(new Event('input', {{bubbles: true}}));
    let tries = 0;
    const send = () => {{
      const button = document.querySelector('#ask-box button[data-testid="submit-button"]');
      if (button && !button.disabled) button.click();
      else if (tries++ < 50) setTimeout(send, 100);
    }};
    setTimeout(send, 50);
  }};
  document.addEventListener('click', (event) => {{
    const suggestion = event.target.closest('a[href="{render.ASK}"]');
    if (suggestion) {{
      event.preventDefault();
      event.stopPropagation();
      ask(suggestion.textContent.trim());
      return;
    }}
    const link = event.target.closest('a[href^="#cite-"]');
    if (!link) return;
    event.preventDefault();
    event.stopPropagation();
    const n = link.getAttribute('href').slice(6);
    const bubble = link.closest('[data-testid="bot"]') || link.closest('.message');
    const box = bubble && bubble.querySelector('details.{render.SOURCES_CLASS}');
    if (!box) return;
    box.open = true;
    box.querySelectorAll('.src.active').forEach((el) => el.classList.remove('active'));
    const source = box.querySelector('.src-' + n);
    if (source) {{ source.classList.add('active'); source.scrollIntoView({{block: 'nearest', behavior: 'smooth'}}); }}
    // The side panel shows the passages of the answer whose [n] was clicked, n marked (the same escaped HTML).
    const panel = document.querySelector('#side-sources .src, #side-sources .empty');
    if (panel) {{
      panel.parentElement.innerHTML = Array.from(box.querySelectorAll('.src')).map((el) => el.outerHTML).join('');
      const marked = document.querySelector('#side-sources .src-' + n);
      if (marked) marked.scrollIntoView({{block: 'nearest'}});
    }}
  }}, true);
  let count = 0;
  new MutationObserver(() => {{
    const bots = document.querySelectorAll('#chat [data-testid="bot"]');
    if (bots.length !== count) {{
      // The newest answer's text, not the chart that may follow it.
      const added = Array.from(bots).slice(count).filter((bot) => !bot.querySelector('[data-testid="matplotlib"]'));
      count = bots.length;
      if (window.innerWidth < {PHONE} && added.length) added[added.length - 1].scrollIntoView({{block: 'start'}});
    }}
  }}).observe(document.body, {{childList: true, subtree: true}});
}}
"""


class _ChatInterface(gr.ChatInterface):
    """Gradio's ChatInterface, keeping the textbox's placeholder after a message is sent (it blanks it)."""

    def _clear_and_save_textbox(self, message: Any) -> tuple[Any, Any]:
        return type(self.textbox)("", interactive=False, placeholder=self.textbox.placeholder), message

    def _append_message_to_history(
        self, message: Any, history: list[Any], role: Literal["user", "assistant"] = "user"
    ) -> list[Any]:
        # The conversation is kept in the session's state: an over-long message sent through the API (the page
        # refuses it before sending) is answered "too long" and kept only to the limit, not held whole for good.
        if role == "user" and isinstance(message, str) and len(message) > MAX_QUESTION_CHARS:
            message = message[:MAX_QUESTION_CHARS] + "…"
        return super()._append_message_to_history(message, history, role)


class ChatUI:
    """Builds the page and answers its events; one instance serves every browser session."""

    def __init__(self, service: AdvisorService) -> None:
        self.service = service
        self._answers: OrderedDict[str, Answer] = OrderedDict()
        self._lock = threading.Lock()

    # --- chat ----------------------------------------------------------------------------

    def respond(self, message: Any, history: list[dict[str, Any]], request: gr.Request) -> Iterator[str | list[Any]]:
        """Answer one message, streaming the text; the final message carries its own sources block, and a bar chart
        follows it when it lists two or more comparable numbers from a table.

        Document text is escaped for the browser (a "<script>" quoted from a document shows as text); API
        clients get the plain answer with its [n] markers.
        """
        api = _from_api(request)
        answer, streamed = Answer(""), False
        try:
            for answer in self.service.ask_stream(message_text(message), _as_said(history)):
                if answer.kind == "partial":  # an LLM writing: its sentences as each passes the check
                    streamed = True
                    yield answer.text if api else render.answer_markdown(answer.text, links=False)
        except AdvisorError as exc:  # e.g. the Milvus server is down: say so in the chat, keep the page working
            answer = Answer(f"Sorry, I cannot search the documents right now: {exc}", kind="error")
        if api:
            yield answer.text
            return
        final = render.message(answer)
        self._remember(final, answer)
        if not streamed:  # a composed answer is ready at once; show it arriving a few words at a time
            pieces = re.split(r"(\s+)", render.answer_markdown(answer.text, links=False))
            for end in range(STREAM_WORDS * 2, len(pieces), STREAM_WORDS * 2):
                yield "".join(pieces[:end])
        charts = bar_charts(answer.text) if answer.grounded else []
        # Each chart is a message of its own under the answer, in the same bubble; its title cites the source.
        yield [final, *(gr.Plot(chart_figure(chart), show_label=False, container=False) for chart in charts)] if charts else final

    def export(self, history: list[dict[str, Any]] | None) -> Any:
        """The "Download chat" button, holding the conversation as Markdown with each answer's sources; hidden
        until there is an answer."""
        messages = [{"role": m.get("role"), "content": message_text(m.get("content"))} for m in history or []]
        if not any(m["role"] == "assistant" for m in messages):
            return gr.update(value=None, visible=False)
        text = render.conversation_markdown(messages, f"Career Advisor chat, {datetime.now():%Y-%m-%d %H:%M}")
        return gr.update(value=str(_export_file(text)), visible=True)

    def check_length(self, message: Any) -> Any:
        """Refuse an over-long message before it is sent, so the text stays in the box to be shortened; an empty
        one is not sent at all (Enter in an empty box would add an empty message and a reply to it)."""
        if not message_text(message).strip():
            return gr.validate(False, "Type a question about the documents first.")
        length = len(message_text(message))
        return gr.validate(
            length <= MAX_QUESTION_CHARS,
            f"This message is {length:,} characters; the limit is {MAX_QUESTION_CHARS:,}. "
            "Shorten it (your background and up to four questions) and send it again.",
        )

    def latest_sources(self, history: list[dict[str, Any]] | None) -> str:
        """The side panel for the newest answer in the chat."""
        said = (message_text(m.get("content")) for m in reversed(history or []) if m.get("role") == "assistant")
        return _panel(next((text for text in said if text), ""))  # a chart under an answer has no text

    def selected_sources(self, history: list[dict[str, Any]] | None, data: gr.SelectData) -> str:
        """The side panel for the answer the user clicked."""
        index = data.index if isinstance(data.index, int) else data.index[0]
        history = history or []
        return _panel(message_text(history[index].get("content")) if 0 <= index < len(history) else "")

    def vote(self, data: gr.LikeData, history: list[dict[str, Any]]) -> None:
        """Record a like or dislike with the question, the conversation before it, the answer and its sources."""
        index = data.index if isinstance(data.index, int) else data.index[0]
        text = message_text(history[index].get("content")) if 0 <= index < len(history) else message_text(data.value)
        # An answer this page showed is recalled whole; any other text is the client's, kept only to its limit.
        answer = self._recall(text) or Answer(render.plain_text(text[:MAX_ANSWER_CHARS]), kind="unknown")
        before = _as_said(history[max(0, index - MAX_HISTORY_MESSAGES) : index])
        question_at = next((i for i in range(len(before) - 1, -1, -1) if before[i].get("role") == "user"), None)
        question = message_text(before[question_at].get("content")) if question_at is not None else ""
        earlier = before[:question_at] if question_at is not None else before
        record_vote(self.service.settings.feedback_dir, question, earlier, answer, bool(data.liked))
        gr.Info("Thanks, your feedback was saved.")

    def _remember(self, shown: str, answer: Answer) -> None:
        # Keyed by the message text alone: a saved chat reopened after a reload has a new session, and what
        # is recalled is only the cited corpus passages.
        with self._lock:
            self._answers[shown] = answer
            self._answers.move_to_end(shown)
            while len(self._answers) > REMEMBERED_ANSWERS:
                self._answers.popitem(last=False)

    def _recall(self, text: str) -> Answer | None:
        with self._lock:
            return self._answers.get(text)

    # --- index freshness -----------------------------------------------------------------

    def intro(self) -> str:
        """The page's header: what the answers come from, named by the documents' titles as indexed now (each
        title literal text, never Markdown: a title can't become a link or an image)."""
        return (
            f"# Career Advisor\nAnswers come only from your documents ({render.escape(self.service.advisor.scope)}) "
            "and cite them: open **Sources** under an answer, or click a [1]."
        )

    def status(self) -> tuple[str, Any, Any, str]:
        """(freshness line, "Update now" button, poll timer, header) for the top of the page, in plain words; the
        header follows the documents, so it changes when a rebuild swaps a new index in."""
        index = self.service.index
        state = self.service.rebuild_state()
        line = f"Documents: {len(index.documents)} · updated {_day(index.built_at)}"
        stale = False
        if state.running:
            line += " · <b>updating…</b> answers come from the current documents meanwhile."
        else:
            status = self.service.status()
            if not status.fresh:
                stale = True
                changed = len(status.added) + len(status.changed) + len(status.removed)
                line += (
                    f" · <b>{_count(changed, 'document')} changed</b>" if changed else " · <b>the documents need an update</b>"
                )
            elif state.message and not state.ok:
                line += f" · {html.escape(state.message)}"
        return (line, gr.update(visible=stale and not state.running), gr.Timer(active=state.running), self.intro())

    def rebuild(self) -> tuple[str, Any, Any, str]:
        """Start a background rebuild and show that it is running."""
        self.service.rebuild()
        return self.status()

    # --- documents -------------------------------------------------------------------------

    def documents(self) -> tuple[str, Any, str]:
        """(documents table, choices for removal, index details) for the Documents tab."""
        settings = self.service.settings
        index = self.service.index
        try:
            rows, skipped = list_documents(settings.corpus_dir, index, settings.max_file_bytes)
        except AdvisorError as exc:
            return f"<p>{html.escape(str(exc))}</p>", gr.update(choices=[]), ""
        titles = render.source_titles({row.source: row.title for row in rows})
        cells = "".join(
            f"<tr><td>{html.escape(titles[row.source])}</td><td>{html.escape(row.source)}</td>"
            f"<td>{row.kind}</td><td>{_size(row.size)}</td><td>{row.passages}</td>"
            f"<td>{html.escape(row.status)}</td></tr>"
            for row in rows
        )
        table = (
            "<p class='swipe-hint'>Swipe the table sideways for type, size, passages and status.</p>"
            "<div class='documents-scroll'><table class='documents'><thead><tr><th>Title</th><th>File</th>"
            f"<th>Type</th><th>Size</th><th>Passages</th><th>Status</th></tr></thead><tbody>{cells}</tbody></table></div>"
        )
        if skipped:
            table += (
                "<p><b>Not read:</b></p><ul>"
                + "".join(f"<li>{html.escape(s.source)}: {html.escape(s.reason)}</li>" for s in skipped)
                + "</ul>"
            )
        state = self.service.rebuild_state()
        details = (
            f"Built {html.escape(index.built_at.replace('T', ' ').replace('+00:00', ' UTC'))} · "
            f"{_count(len(index.documents), 'document')} · {_count(len(index.chunks), 'passage')} · "
            f"vectors in {html.escape(index.manifest.store.label())} · "
            f"build {html.escape(index.manifest.build_id)}" + (f"<br>{html.escape(state.message)}" if state.message else "")
        )
        return table, gr.update(choices=[row.source for row in rows], value=None), details

    def upload(self, files: list[str] | None, request: gr.Request | None = None) -> str:
        """Copy uploaded files into the corpus and start an update; say what was added and what was refused."""
        settings = self.service.settings
        blocked = uploads_blocked(settings, _headers(request))  # checked here too: a hidden control is no permission
        if blocked:
            for path in files or []:
                Path(path).unlink(missing_ok=True)
            return html.escape(blocked)
        added, refused = [], []
        for path in files or []:
            try:
                added.append(add_document(settings.corpus_dir, Path(path).name, Path(path), settings.max_file_bytes).name)
            except AdvisorError as exc:
                refused.append(f"{Path(path).name}: {exc}")
            finally:
                Path(path).unlink(missing_ok=True)  # Gradio's temporary copy: the corpus holds the one kept
        if added:
            self.service.rebuild()
        return _report(added and f"Added {', '.join(added)}; {UPDATING}", refused)

    def confirm_removal(self, source: str | None) -> tuple[Any, str, str]:
        """(confirmation row, its question, outcome): Remove asks before a file is deleted."""
        if not source:
            return gr.update(visible=False), "", "Choose a document to remove."
        return (
            gr.update(visible=True),
            f"Delete **{render.escape(source)}** from the documents folder? Answers will no longer use it.",
            "",
        )

    def settled(self, outcome: str | None) -> Any:
        """The Documents tab's last outcome, once the update it announced has finished: said done (or failed)."""
        state = self.service.rebuild_state()
        if not outcome or UPDATING not in outcome or state.running:
            return gr.update()
        done = "the index is up to date." if state.ok else f"the update failed: {state.message}"
        return outcome.replace(UPDATING, html.escape(done))

    def remove(self, source: str | None, request: gr.Request | None = None) -> str:
        """Delete one document from the corpus and start an update."""
        settings = self.service.settings
        blocked = uploads_blocked(settings, _headers(request))  # checked here too: a hidden control is no permission
        if blocked:
            return html.escape(blocked)
        if not source:
            return "Choose a document to remove."
        try:
            remove_document(settings.corpus_dir, source)
        except AdvisorError as exc:
            return _report("", [str(exc)])
        self.service.rebuild()
        return _report(f"Removed {source}; {UPDATING}", [])

    # --- page ----------------------------------------------------------------------------

    def blocks(self) -> gr.Blocks:
        """The page: a Chat tab (saved chats, answers with sources, side panel) and a Documents tab."""
        settings = self.service.settings
        # Gradio keeps each upload in its temporary folder; an upload the page never handed on (sent to the route
        # directly) is deleted within the hour.
        with gr.Blocks(title="Career Advisor", delete_cache=(UPLOAD_SECONDS, UPLOAD_SECONDS)) as page:
            intro = gr.Markdown(self.intro(), elem_id="intro")
            with gr.Row(equal_height=True):
                status = gr.HTML(elem_id="index-status")
                update = gr.Button("Update now", variant="primary", size="sm", scale=0, min_width=110, visible=False)
            timer = gr.Timer(2.0, active=False)
            with gr.Tabs():
                with gr.Tab("Chat"), gr.Row():
                    with gr.Column(scale=4):
                        chatbot = gr.Chatbot(
                            elem_id="chat",
                            height=560,
                            render_markdown=True,
                            sanitize_html=True,
                            show_label=False,
                            feedback_options=("Like", "Dislike"),
                            buttons=["copy"],
                            latex_delimiters=[],  # "$$" in a document is text, not math
                            placeholder=self.placeholder(),
                        )
                        download = gr.DownloadButton(
                            "Download chat", size="sm", visible=False, elem_id="download-chat", render=False
                        )
                        chat = _ChatInterface(
                            self.respond,
                            chatbot=chatbot,
                            api_name="chat",
                            concurrency_limit=settings.concurrency,
                            fill_height=False,
                            save_history=True,
                            validator=self.check_length,
                            textbox=gr.Textbox(
                                placeholder="Ask a question about the documents…",
                                max_lines=6,
                                submit_btn=True,
                                stop_btn=True,
                                elem_id="ask-box",
                            ),
                        )
                        download.render()  # under the chat
                    with gr.Column(scale=2, min_width=260):
                        gr.Markdown("### Sources", elem_id="side-title")
                        sources = gr.HTML(render_sources(None), elem_id="side-sources")
                with gr.Tab("Documents") as documents_tab:
                    blocked = uploads_blocked(settings)
                    if blocked:
                        gr.Markdown(blocked)
                    else:
                        gr.Markdown(
                            f"Add documents ({' '.join(sorted(FORMATS))}, up to {settings.max_file_mb:g} MB "
                            "each) or remove them; the index updates in the background."
                        )
                        # No file_types filter: the browser would drop other files silently; the server says why.
                        uploader = gr.File(label="Add documents", file_count="multiple", type="filepath")
                        with gr.Row():
                            choice = gr.Dropdown(label="Remove a document", choices=[], scale=3, elem_id="remove-choice")
                            remove = gr.Button("Remove", variant="stop", scale=0, min_width=100)
                        with gr.Row(visible=False, elem_id="confirm-removal") as confirm:
                            question = gr.Markdown()
                            yes = gr.Button("Yes, delete it", variant="stop", scale=0, min_width=160)
                            no = gr.Button("Cancel", scale=0, min_width=90)
                        outcome = gr.HTML(elem_id="documents-outcome")
                    table = gr.HTML()
                    with gr.Accordion("Index details", open=False):
                        details = gr.HTML()
                        check = gr.Button("Check for changes", size="sm")
                    if blocked:
                        choice = gr.Dropdown(visible=False)
            self._save_chats_across_restarts(chat)
            self._reopen_the_last_chat(page, chat)
            chatbot.change(
                self.latest_sources, [chatbot], [sources], api_visibility="private", show_progress="hidden", queue=False
            )
            chatbot.select(
                self.selected_sources, [chatbot], [sources], api_visibility="private", show_progress="hidden", queue=False
            )
            chatbot.like(self.vote, [chatbot], None, api_visibility="private")
            # Only the newest change is exported once the one running ends: a streamed answer asks for one file or two.
            chatbot.change(
                self.export, [chatbot], [download], api_visibility="private", show_progress="hidden", trigger_mode="always_last"
            )
            bar = [status, update, timer, intro]
            listing = [table, choice, details]
            page.load(self.status, None, bar, api_visibility="private")
            update.click(self.rebuild, None, bar, api_visibility="private")
            ticked = timer.tick(self.status, None, bar, api_visibility="private").then(
                self.documents, None, listing, api_visibility="private"
            )
            documents_tab.select(self.documents, None, listing, api_visibility="private")
            check.click(self.status, None, bar, api_visibility="private").then(
                self.documents, None, listing, api_visibility="private"
            )
            if not blocked:
                uploader.upload(self.upload, [uploader], [outcome], api_visibility="private").then(
                    lambda: None, None, [uploader], api_visibility="private"
                ).then(self.status, None, bar, api_visibility="private").then(
                    self.documents, None, listing, api_visibility="private"
                ).then(self.settled, [outcome], [outcome], api_visibility="private")
                remove.click(self.confirm_removal, [choice], [confirm, question, outcome], api_visibility="private")
                no.click(lambda: gr.update(visible=False), None, [confirm], api_visibility="private", queue=False)
                yes.click(lambda: gr.update(visible=False), None, [confirm], api_visibility="private", queue=False).then(
                    self.remove, [choice], [outcome], api_visibility="private"
                ).then(self.status, None, bar, api_visibility="private").then(
                    self.documents, None, listing, api_visibility="private"
                ).then(self.settled, [outcome], [outcome], api_visibility="private")
                ticked.then(self.settled, [outcome], [outcome], api_visibility="private")
        return page

    def placeholder(self) -> str:
        """What the empty chat shows: an invitation and example questions (the documents' own FAQ questions), each
        a link that asks it, the way a typed question is asked, so the chat it starts is saved like any other."""
        examples = self.service.advisor.examples()
        if not examples:
            return "Ask a question about the documents."
        links = "\n".join(f"- [{render.escape(q)}]({render.ASK})" for q in examples)
        return f"**Ask a question, or try one of these:**\n\n{links}"

    def reopen(self, opened: Any, saved: Any) -> tuple[Any, Any, Any]:
        """(conversation id, chat, the chat's state) on page load: the saved chat that was open before the reload,
        if it is still saved; otherwise an empty chat."""
        index = _opened_index(opened)
        if index is not None and isinstance(saved, list) and index < len(saved) and saved[index]:
            return index, saved[index], saved[index]
        return None, gr.update(), gr.update()

    def _reopen_the_last_chat(self, page: gr.Blocks, chat: gr.ChatInterface) -> None:
        """A reload returns to the chat that was open: the browser remembers which saved chat it was.

        ChatInterface keeps that in a State its own unqueued events set, and those fire no change event, so the
        same triggers are followed here: a new chat is saved first in the list, an opened one keeps its place.
        """
        opened = gr.BrowserState("none", storage_key="career_advisor_open_chat")
        # Queued: a BrowserState set by an unqueued event is not written to the browser's storage.
        private: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}
        # Kept as text ("chat 0"): the browser stores no value that reads as false, such as 0.
        chat.textbox.submit(lambda i: i if _opened_index(i) is not None else "chat 0", [opened], [opened], **private)
        chat.chat_history_dataset.click(lambda i: f"chat {i}", [chat.chat_history_dataset], [opened], **private)
        chat.new_chat_button.click(lambda: "none", None, [opened], **private)
        chat.chatbot.clear(lambda: "none", None, [opened], **private)
        page.load(
            self.reopen,
            [opened, chat.saved_conversations],
            [chat.conversation_id, chat.chatbot, chat.chatbot_state],
            api_visibility="private",
            queue=False,
        )

    def _save_chats_across_restarts(self, chat: gr.ChatInterface) -> None:
        """Saved chats are scrambled in the browser with a per-process key by default, so a restart of the app
        would lose them; a key kept beside the feedback file keeps them readable. Gradio sends that key to the
        page, so it protects nothing from whoever can use the page: docs/operations.md says so. The history
        list also goes below the chat on a phone (CSS class)."""
        folder = self.service.settings.feedback_dir
        key_file = folder / ".chat-key"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not key_file.exists():
                descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(secrets.token_urlsafe(24))
            chat.saved_conversations.secret = key_file.read_text().strip()
        except OSError as exc:  # a read-only folder: chats are still saved, for as long as this process runs
            log.warning("Saved chats will not survive a restart: cannot keep their key in %s (%s)", folder, exc)
        column = getattr(getattr(chat, "new_chat_button", None), "parent", None)
        if column is not None:
            column.elem_classes = ["history-col"]


EMPTY_PANEL = '<div class="empty">Click an answer to see the passages it cites here.</div>'


def render_sources(answer: Answer | None) -> str:
    """HTML for the side panel: the cited passages of one answer, escaped, the quoted parts highlighted."""
    if answer is None or not answer.citations:
        return EMPTY_PANEL
    return render.sources_list(answer.citations)


def _panel(message: str) -> str:
    """The side panel for one chat message: the passages its own sources block holds. Read from the message, not
    from this process's memory, so a saved chat reopened after a restart shows its sources too."""
    return render.sources_in(message) or EMPTY_PANEL


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413 before anything reads it.

    Gradio parses every request and keeps each event's input values in its session (for its re-rendering), so
    a 10 MB message would cost its JSON decoding and then 10 MB for as long as the session lives. Uploads are
    limited by Gradio itself (``max_file_size``) and pass through.
    """

    def __init__(self, app: Any, max_bytes: int, exempt: tuple[str, ...] = ()) -> None:
        self.app, self.max_bytes, self.exempt = app, max_bytes, exempt

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].endswith(self.exempt):
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_bytes:
            return await self._refuse(send)
        seen = 0

        async def counted() -> dict[str, Any]:  # a body sent in chunks without a length is counted as it comes
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        # A message far over the 4,000-character limit is refused here, before the page's own length check can run
        # on the server.
        detail = (
            f"This request is over {self.max_bytes // 2**20} MB, the most the server reads. A message may have at most "
            f"{MAX_QUESTION_CHARS:,} characters; shorten it and send it again."
        )
        await _refuse(send, 413, detail)


class _TooLarge(Exception):
    pass


async def _refuse(send: Any, status: int, detail: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """Answer an HTTP request from middleware with ``status`` and JSON as Gradio's own errors are (the page shows
    "detail")."""
    body = json.dumps({"detail": detail, "error": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), *headers]})
    await send({"type": "http.response.body", "body": body})


class LoginThrottle:
    """ASGI middleware that refuses sign-in attempts (HTTP 429) from an address with ``attempts`` wrong
    passwords in the last ``window`` seconds, so a password cannot be guessed at the server's full speed.

    The address is the client's, or behind a reverse proxy on this machine the one the proxy appended last to
    X-Forwarded-For (earlier entries are the client's to write). Only failures count, so a user who signs in
    is never slowed down by someone else guessing from another address."""

    def __init__(self, app: Any, attempts: int = LOGIN_ATTEMPTS, window: float = LOGIN_WINDOW_SECONDS) -> None:
        self.app, self.attempts, self.window = app, attempts, window
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or not scope.get("path", "").rstrip("/").endswith("/login"):
            await self.app(scope, receive, send)
            return
        who = _client_address(scope)
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(who, []) if now - t < self.window]
            self._failures[who] = recent
            self._failures.move_to_end(who)
            while len(self._failures) > LOGIN_ADDRESSES:  # bounded, however many addresses try
                self._failures.popitem(last=False)
        if len(recent) >= self.attempts:
            wait = max(1, round(self.window - (now - recent[0])))
            detail = f"Too many wrong sign-ins from this address; try again in {wait} s."
            await _refuse(send, 429, detail, ((b"retry-after", str(wait).encode()),))
            return

        async def noted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] in (400, 401, 403):
                with self._lock:
                    self._failures.setdefault(who, []).append(time.monotonic())
            await send(message)

        await self.app(scope, receive, noted)


def _client_address(scope: dict[str, Any]) -> str:
    client = scope.get("client") or ("?", 0)
    host = str(client[0])
    if is_loopback(host):
        for name, value in scope.get("headers", []):
            if name.lower() == b"x-forwarded-for" and value.strip():
                return value.decode("latin-1").split(",")[-1].strip()
    return host


class UploadGate:
    """ASGI middleware refusing Gradio's upload route (HTTP 403) to whoever may not add documents: the page is
    the only thing here that uploads, so the route must not store files for anyone else."""

    def __init__(self, app: Any, settings: Any) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path", "").rstrip("/").endswith(UPLOAD_ROUTE):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            blocked = uploads_blocked(self.settings, headers)
            if blocked:
                await _refuse(send, 403, blocked)
                return
        await self.app(scope, receive, send)


def launch(service: AdvisorService) -> None:
    """Serve the page on the configured host and port (blocks until stopped)."""
    from starlette.middleware import Middleware

    settings = service.settings
    page = ChatUI(service).blocks()
    page.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    user, _, password = settings.auth.partition(":")
    page.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        css=CSS,
        js=JS,
        theme=THEME,
        show_error=False,
        footer_links=[],
        auth=(user, password) if settings.auth else None,
        quiet=True,  # app.py prints the address; Gradio's own lines include a hint to share publicly
        max_file_size=settings.max_file_bytes,  # the upload route takes nothing the loader would refuse
        app_kwargs={
            "middleware": [
                Middleware(LoginThrottle),
                Middleware(UploadGate, settings=settings),
                Middleware(BodyLimit, max_bytes=MAX_REQUEST_BYTES, exempt=(UPLOAD_ROUTE,)),
            ]
        },
        # Sessions whose state Gradio keeps (the least recently used go first): with MAX_REQUEST_BYTES, what
        # anyone can make it hold is bounded.
        state_session_capacity=SESSIONS,
        # Gradio serves no file outside its own folders anyway; these are never to be served.
        blocked_paths=[str(settings.index_dir), str(settings.corpus_dir), str(settings.feedback_dir)],
    )


def _headers(request: gr.Request | None) -> Mapping[str, str]:
    return (request.headers or {}) if request is not None else {}


def _from_api(request: gr.Request | None) -> bool:
    """Whether a chat request came from an API client rather than the page: gradio_client marks its calls, and
    raw HTTP goes through the /call/ route (the page joins the queue)."""
    if request is None:
        return False
    headers = request.headers or {}
    url = str(getattr(request, "url", "") or "")
    return headers.get("x-gradio-user") == "api" or "/gradio_api/call/" in url


def _as_said(history: Any) -> list[dict[str, Any]]:
    """The chat history as the conversation went, without what the page added to answers (see render.plain_text);
    only its last messages, each cut to its limit (see chat.bound_history) before any work on them."""
    said = [m for m in bound_history(history) if m["content"] or m["role"] == "user"]  # charts have no text
    return [{"role": m["role"], "content": render.plain_text(m["content"])} for m in said]


def _opened_index(opened: Any) -> int | None:
    """The saved chat a browser says was open ("chat 3"), or None (a new chat, or nothing said)."""
    match = re.fullmatch(r"chat (\d{1,6})", opened) if isinstance(opened, str) else None
    return int(match.group(1)) if match else None


def _export_file(text: str) -> Path:
    """A chat's Markdown written to a file for its download: one folder per content (an unchanged chat is not
    written again), files over an hour old removed, so exports never pile up."""
    root = Path(tempfile.gettempdir()) / "career-advisor-exports"
    now = time.time()
    for old in root.glob("*/*.md") if root.is_dir() else ():
        if now - old.stat().st_mtime > EXPORT_SECONDS:
            old.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                old.parent.rmdir()
    path = root / hashlib.sha256(text.encode()).hexdigest()[:16] / f"career-advisor-chat-{datetime.now():%Y-%m-%d-%H%M}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _day(built_at: str) -> str:
    try:
        when = datetime.fromisoformat(built_at)
    except ValueError:
        return built_at
    return f"{when.day} {when:%b}" + ("" if when.year == datetime.now(when.tzinfo).year else f" {when.year}")


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{max(1, round(size / 1024))} KB"


def _report(done: str, refused: list[str]) -> str:
    parts = [f"<p>{html.escape(done)}</p>"] if done else []
    if refused:
        parts.append("<p><b>Not added:</b></p><ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in refused) + "</ul>")
    return "".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
