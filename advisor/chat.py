"""The conversation stage: `Advisor.ask(question, history) -> Answer`, with small talk, long messages and honest refusals."""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from advisor.answer import PASSAGES, Statement, candidates, compose, judge
from advisor.config import Settings
from advisor.judge import AnswerModel, get_answer_model
from advisor.lexical import terms
from advisor.llm import PASSAGES as LLM_PASSAGES, LLMClient, LLMError, answer_messages, check, condense_messages
from advisor.query import Query, message_text, valid_text
from advisor.retrieve import Retriever
from advisor.statements import Unit, normalized
from advisor.types import Answer, Citation, Hit

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 4000
MAX_QUESTIONS = 4  # questions answered from one message
# What is read of a chat history, which the browser or an API client sends with every message and so is
# untrusted input of any size: the last messages only (a follow-up looks back three questions, an LLM six
# messages), each cut to what an answerable message or one of this tool's answers can be.
MAX_HISTORY_MESSAGES = 12
MAX_ANSWER_CHARS = 8000
BACKGROUND_WEIGHT = 0.3  # words of a long message's background, in BM25 for each of its questions

QUOTED_POOL = 30  # passages searched for those the previous answer quoted

_ADVICE = re.compile(
    r"\b(should i|how (do|can|would|should) i|can i|could i|do i need|am i|i'm|i am|i've|i have|"
    r"my|is (a|an|the)\b.{0,60}\benough|worth it|where (do|should) i start)\b",
    re.IGNORECASE,
)
_QUESTION = re.compile(r"[^.?!\n]*\?")
_ASKS_FOR_QUESTIONS = re.compile(r"\b(questions?|ask|asks|asked|asking)\b", re.IGNORECASE)  # "what do interviews ask?"

_SMALL_TALK = [
    ("greeting", re.compile(r"^(hi|hello|hey|hiya|howdy|greetings|good (morning|afternoon|evening|day)|yo)\b", re.I)),
    (
        "thanks",
        re.compile(
            r"^(thanks|thank you|thx|ty|cheers|many thanks|much appreciated|great|awesome|perfect|"
            r"cool|nice|ok|okay|got it)\b",
            re.I,
        ),
    ),
    ("bye", re.compile(r"^(bye|goodbye|good bye|see you|see ya|farewell|that's all|that is all)\b", re.I)),
    (
        "about",
        re.compile(
            r"^((who|what) are you|are you (a |an )?(bot|robot|human|real|person|ai|machine)|what can you do|"
            r"how can you help|what do you do|help)\b",
            re.I,
        ),
    ),
    ("how", re.compile(r"^(how are you|how's it going|how is it going)\b", re.I)),
]
# Words that only pad small talk ("thanks, that was really helpful") and carry no question.
_PADDING = frozenset(
    terms(
        "there help helpful much lot great good nice day everyone again all so very really "
        "appreciate appreciated today doing going well useful answer answers thing bot advisor"
    )
)


class Advisor:
    """Answers questions from the index; settings, index, model and BM25 load once, on first use.

    Without an LLM the answer is composed from the passages themselves. With ``settings.llm_base_url`` set, an
    OpenAI-compatible server writes it from the same passages; its citations are checked, and any failure
    falls back to the composed answer with a note.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        retriever: Retriever | None = None,
        llm: LLMClient | None = None,
        answer_model: AnswerModel | None = None,
    ) -> None:
        self.settings = settings or Settings.load()
        self._retriever = retriever
        self._llm = llm
        self._answer_model = answer_model

    @functools.cached_property
    def retriever(self) -> Retriever:
        """The loaded index and model (loading takes a few seconds, once)."""
        return self._retriever or Retriever.open(self.settings)

    @functools.cached_property
    def answer_model(self) -> AnswerModel:
        """The trained model that judges which statements answer a question (loaded on first use)."""
        return self._answer_model or get_answer_model(self.settings.answer_model)

    @functools.cached_property
    def llm(self) -> LLMClient | None:
        """The LLM client, or None in the default no-LLM mode."""
        if self._llm is not None or not self.settings.llm:
            return self._llm
        s = self.settings
        return LLMClient(s.llm_base_url, s.llm_model, s.llm_api_key, s.llm_timeout)

    # --- what the corpus is about (from the corpus, never from code) ---------------------------

    @functools.cached_property
    def scope(self) -> str:
        """What the documents are about, from their titles: "Machine Learning Engineer; Data Scientist Career Guide"."""
        titles = list(dict.fromkeys(c.title for c in self.retriever.index.chunks.values() if c.title))
        return "; ".join(titles[:6]) + ("; …" if len(titles) > 6 else "") if titles else "the documents in the corpus"

    @functools.cached_property
    def corpus_questions(self) -> list[str]:
        """Questions the documents answer, from their FAQ headings (headings that are questions), in corpus order,
        taking one from each document in turn so every document is represented."""
        per_doc: dict[str, list[str]] = {}
        for chunk in sorted(self.retriever.index.chunks.values(), key=lambda c: (c.source, c.start)):
            for part in chunk.section.split(" › "):
                part = part.strip()
                if part.endswith("?") and 3 <= len(part.split()) <= 14 and part[0].isupper():
                    questions = per_doc.setdefault(chunk.source, [])
                    if part not in questions:
                        questions.append(part)
        ordered: list[str] = []
        for i in range(max((len(q) for q in per_doc.values()), default=0)):
            ordered += [q[i] for q in per_doc.values() if i < len(q)]
        return ordered

    @functools.cached_property
    def _question_vectors(self) -> np.ndarray:
        questions = self.corpus_questions
        return self.retriever.embedder.embed_passages(questions) if questions else np.zeros((0, 1), dtype=np.float32)

    def examples(self, n: int = 4) -> list[str]:
        """Example questions for the page: FAQ questions of the corpus, several documents represented."""
        return self.corpus_questions[:n]

    def suggestions(self, question: str = "", n: int = 3) -> list[str]:
        """Questions the documents answer, nearest in meaning to ``question`` first (corpus order without one)."""
        questions = self.corpus_questions
        if not question or len(questions) <= n:
            return questions[:n]
        closeness = self._question_vectors @ self.retriever.embed(question)[0]
        return [questions[i] for i in np.argsort(-closeness)[:n]]

    # --- answering -----------------------------------------------------------------------------

    def ask(self, question: str, history: Sequence[dict[str, Any]] = ()) -> Answer:
        """Answer ``question`` in the light of ``history`` (a list of {"role", "content"} messages)."""
        return list(self.ask_stream(question, history, stream=False))[-1]  # without streaming: one answer

    def ask_stream(self, question: str, history: Sequence[dict[str, Any]] = (), stream: bool = True) -> Iterator[Answer]:
        """Partial answers (kind "partial", growing text) while an LLM writes, then the final, checked answer."""
        history = bound_history(history)
        if len(question or "") > 2 * MAX_QUESTION_CHARS:
            yield self._too_long(len(question))  # refused before any work on it, whatever its spacing
            return
        question = " ".join(valid_text(question or "").split())
        early = self._early(question)
        if early is not None:
            yield early
            return
        _, rest = small_talk(question)
        questions, background = split_message(rest)
        # One time limit for everything an LLM does for this message: restating a follow-up and writing the answer.
        deadline = time.monotonic() + self.settings.llm_timeout
        if len(questions) > 1:
            questions = questions[:MAX_QUESTIONS]
            yield _merge(
                [
                    (q, self._answer(q, _leaning(history, q, questions[:i]), background, deadline)[0])
                    for i, q in enumerate(questions)
                ]
            )
            return
        composed, query, hits = self._answer(questions[0], history, background, deadline)
        if self.llm is None or not composed.grounded:
            yield composed
        else:
            yield from self._written(query.question, history, hits, composed, stream, deadline)

    def _answer(
        self, question: str, history: Sequence[dict[str, Any]], background: str, deadline: float | None = None
    ) -> tuple[Answer, Query, list[Hit]]:
        """The composed (no-LLM) answer to one question, the query it was read as, and the passages found."""
        query = self._query(question, history, background, deadline)
        hits = self.retriever.search(query, max(self.settings.top_k, PASSAGES))
        if not hits:
            return self.decline(query), query, hits
        passages = hits[:PASSAGES] + [h for h in self._cited_before(query, hits) if h not in hits[:PASSAGES]]
        vectors = [self.retriever.embed(query.question)]
        if query.followup:
            vectors.append(self.retriever.embed(query.text))
        everything = candidates(passages, vectors, self._statement_vectors, bool(_ASKS_FOR_QUESTIONS.search(query.text)))
        speller = self.retriever.speller
        asked = speller.spelled_out(query.question)
        previous = speller.spelled_out(_previous_question(history)) if query.followup else ""
        model = self.answer_model

        def probabilities(statements: list[Statement]) -> np.ndarray:
            titles = [s.hit.chunk.title for s in statements]
            return model.probabilities(asked, previous, titles, [s.unit.embed for s in statements], [s.dense for s in statements])

        judged = judge(everything, probabilities)
        # Answerable or not is one learned judgement: the best statement's calibrated probability against the
        # threshold chosen on the training data's validation split.
        if not judged or judged[0].score < model.calibration.threshold:
            return self.decline(query, hits), query, hits
        answer, _ = compose(judged, everything, hits, query.question, model.calibration, advice=bool(_ADVICE.search(question)))
        if not answer.grounded:
            return self.decline(query, hits), query, hits
        return answer, query, hits

    def _query(
        self, question: str, history: Sequence[dict[str, Any]], background: str = "", deadline: float | None = None
    ) -> Query:
        query = self.retriever.query(question, history)
        if background:
            weights = dict(query.weights)
            for term in terms(self.retriever.speller(background)[0]):
                weights.setdefault(term, BACKGROUND_WEIGHT)
            query = replace(query, weights=weights)
        if query.followup and self.llm is not None:
            # The LLM may restate a follow-up as a standalone question; on any failure the blended query stays.
            try:
                standalone = self.llm.complete(condense_messages(question, history), max_tokens=80, deadline=deadline).strip()
            except LLMError as exc:
                log.info("The LLM did not restate the follow-up (%s); searching with the blended question", exc)
                return query
            standalone = standalone.splitlines()[0][:300] if standalone else ""
            if standalone:
                return self.retriever.query(standalone)
        return query

    def _cited_before(self, query: Query, hits: Sequence[Hit]) -> list[Hit]:
        """In a follow-up, the passages the previous answer quoted ("which of those …" points into them)."""
        if not query.followup or not query.previous_answer:
            return []
        said = _shingles(re.sub(r"\[\d+\]", " ", query.previous_answer))
        if not said:
            return []
        # The passages it quoted are among those whose words best match it: look only at those (BM25 on the
        # answer's words), so a follow-up costs the same whatever the size of the corpus.
        found = []
        floor = min((h.score for h in hits[:PASSAGES]), default=0.0)
        for chunk_id in sorted(self.retriever.matching(query.previous_answer, QUOTED_POOL)):
            chunk = self.retriever.index.chunks[chunk_id]
            if len(said & _shingles(chunk.text)) >= 2:
                known = next((h for h in hits if h.chunk.id == chunk_id), None)
                found.append(known or Hit(chunk, floor, len(hits) + len(found) + 1))
        return found[:3]

    def _statement_vectors(self, hit: Hit, units: list[Unit]) -> np.ndarray:
        vectors = self.retriever.index.statements.of(hit.chunk.id)
        if len(vectors) != len(units):  # an index built by other statement rules: embed them now
            vectors = self.retriever.embedder.embed_passages([u.embed for u in units])
        return vectors

    @staticmethod
    def _too_long(length: int) -> Answer:
        return Answer(
            f"That message is {length:,} characters long. Please keep it under "
            f"{MAX_QUESTION_CHARS:,} characters: your background and up to {MAX_QUESTIONS} questions.",
            kind="too_long",
        )

    def _early(self, question: str) -> Answer | None:
        """The reply for messages that need no retrieval: empty, too long, small talk, nothing indexed."""
        if not question:
            return Answer(
                f"Please type a question about {self._scope_or_default()}. For example:\n"
                f"{self._listed(self._safe_suggestions())}",
                kind="empty",
            )
        if len(question) > MAX_QUESTION_CHARS:
            return self._too_long(len(question))
        kind, _ = small_talk(question)
        if kind:
            return Answer(
                _SMALL_TALK_REPLIES[kind].format(
                    scope=self._scope_or_default(), suggestions=self._listed(self._safe_suggestions())
                ),
                kind="chitchat",
            )
        if not self.retriever.index.chunks:
            return Answer(
                "There is nothing to search yet: no documents are indexed. Add .txt, .md, .html or .pdf "
                "files to the corpus folder and rebuild the index.",
                kind="empty",
            )
        return None

    def _scope_or_default(self) -> str:
        return self.scope if self.retriever.index.chunks else "the documents in the corpus"

    def _safe_suggestions(self) -> list[str]:
        return self.suggestions() if self.retriever.index.chunks else []

    @staticmethod
    def _listed(questions: list[str]) -> str:
        return "\n".join(f"- {q}" for q in questions)

    def decline(self, query: Query | None = None, hits: Sequence[Hit] = ()) -> Answer:
        """The plain "not in my documents" reply, with questions they answer (never the one just asked)."""
        asked = normalized(query.question) if query else ""
        suggestions = [q for q in self.suggestions(query.question if query else "", n=4) if normalized(q) != asked][:3]
        text = f"I couldn't find that in my documents, so I can't answer it. They are about: {self.scope}." + (
            f" You could ask:\n{self._listed(suggestions)}" if suggestions else ""
        )
        return Answer(text, kind="out_of_scope", hits=tuple(hits))

    def _written(
        self,
        question: str,
        history: Sequence[dict[str, Any]],
        hits: Sequence[Hit],
        composed: Answer,
        stream: bool,
        deadline: float | None = None,
    ) -> Iterator[Answer]:
        given = list(hits[:LLM_PASSAGES])
        messages = answer_messages(question, history, given)
        text = ""
        try:
            if stream:
                for piece in self.llm.stream(messages, deadline=deadline):  # type: ignore[union-attr]
                    text += piece
                    yield Answer(check(text, len(given)).text, kind="partial", hits=tuple(hits))
            else:
                text = self.llm.complete(messages, deadline=deadline)  # type: ignore[union-attr]
        except LLMError as exc:
            note = f"(The language model did not answer: {exc}. This answer quotes the documents instead.)"
            yield replace(composed, text=f"{note}\n{composed.text}", note=note)
            return
        checked = check(text, len(given))
        if not checked.cited:
            note = "(Unsupported: this answer cites none of the documents' passages, so nothing here shows it is backed by them.)"
            yield Answer(f"{checked.text}\n{note}", kind="unsupported", hits=tuple(hits), note=note)
            return
        # Number the cited passages 1..k in order of first use, so [n] is always sources[n-1].
        number = {old: new for new, old in enumerate(checked.cited, start=1)}
        final = re.sub(r"\[(\d+)\]", lambda m: f"[{number[int(m.group(1))]}]", checked.text)
        citations = tuple(Citation(number[old], given[old - 1], ()) for old in checked.cited)
        yield Answer(final, citations, kind="answer", hits=tuple(hits))


def split_message(message: str) -> tuple[list[str], str]:
    """(the questions of a message, its background): a long message with background and several questions
    ("I'm 31, in customer support. Is a bootcamp enough? What do juniors earn?") is answered question by question."""
    questions = [q.strip() for q in _QUESTION.findall(message) if terms(q)]
    if len(questions) <= 1 and len(message) < 300:
        return [message], ""
    if not questions:
        return [message], ""
    background = _QUESTION.sub(" ", message)
    return questions, " ".join(background.split())


def bound_history(history: Any) -> list[dict[str, str]]:
    """The last ``MAX_HISTORY_MESSAGES`` user and assistant messages of a client-supplied chat history, as
    {"role", "content"} strings cut to their limits; anything malformed is left out.

    Each message is cut before any other work on it, so a history of any size costs the same.
    """
    if not isinstance(history, Sequence) or isinstance(history, (str, bytes)):
        return []
    kept: list[dict[str, str]] = []
    for message in reversed(history):
        if len(kept) == MAX_HISTORY_MESSAGES:
            break
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            continue
        limit = MAX_QUESTION_CHARS if message["role"] == "user" else MAX_ANSWER_CHARS
        kept.append({"role": message["role"], "content": message_text(message.get("content"), limit)})
    return kept[::-1]


def _previous_question(history: Sequence[dict[str, Any]]) -> str:
    """The user's last question before this one: what a follow-up continues."""
    return next((m["content"] for m in reversed(history) if m.get("role") == "user" and m.get("content")), "")


def _leaning(history: Sequence[dict[str, Any]], question: str, before: list[str]) -> Sequence[dict[str, Any]]:
    """The conversation one question of a several-question message continues: for a piece with at most one
    word of its own ("What do juniors earn? And seniors?", "… format my resume? one page or two?"), the
    message's question just before it too."""
    if not before or len(terms(question)) > 1:
        return history
    return [*history, {"role": "user", "content": before[-1]}, {"role": "assistant", "content": ""}]


def _merge(parts: list[tuple[str, Answer]]) -> Answer:
    """One answer to a message of several questions: each question in bold, then its answer, citations numbered
    across all of them."""
    citations: list[Citation] = []
    number: dict[int, int] = {}
    pieces: list[str] = []
    hits: list[Hit] = []
    for question, answer in parts:
        renumber: dict[int, int] = {}
        for c in answer.citations:
            if c.chunk.id not in number:
                number[c.chunk.id] = len(number) + 1
                citations.append(Citation(number[c.chunk.id], c.hit, c.quotes))
            else:
                n = number[c.chunk.id]
                i = n - 1
                citations[i] = Citation(n, citations[i].hit, tuple(dict.fromkeys(citations[i].quotes + c.quotes)))
            renumber[c.n] = number[c.chunk.id]
        text = re.sub(
            r"\[(\d+)\]", lambda m, renumber=renumber: f"[{renumber.get(int(m.group(1)), int(m.group(1)))}]", answer.text
        )
        if answer.kind == "out_of_scope":
            text = text.split(" They are about:")[0]  # one list of what the documents cover is enough, below
        pieces.append(f"**{question}**\n{text}")
        hits += [h for h in answer.hits if h not in hits]
    kind = "answer" if citations else "out_of_scope"
    return Answer("\n\n".join(pieces), tuple(citations), kind=kind, hits=tuple(hits))


def _shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def small_talk(message: str) -> tuple[str | None, str]:
    """("greeting" | "thanks" | "bye" | "about" | "how", "") for small talk; (None, question) otherwise.

    A greeting in front of a real question ("Hi, what do ML engineers earn?") leaves the question.
    """
    rest = message
    for kind, pattern in _SMALL_TALK:
        match = pattern.match(rest)
        if match:
            rest = rest[match.end() :].lstrip(" ,.!?;:-").strip()
            if rest and message.rstrip().endswith("?") and kind in ("thanks", "greeting"):
                return None, rest  # "ok but what do they actually do all day?" asks something
            if not set(terms(rest)) - _PADDING:
                return kind, ""
            return None, rest
    return None, message


_SMALL_TALK_REPLIES = {
    "greeting": "Hello! I answer questions from my documents ({scope}) and cite the passages I use. "
    "You could ask:\n{suggestions}",
    "thanks": "You're welcome! Ask me anything else my documents cover, for example:\n{suggestions}",
    "bye": "Goodbye, and good luck with your career plans!",
    "about": "I'm Career Advisor. I answer questions using only my documents ({scope}), and I cite the "
    "passages I use. You could ask:\n{suggestions}",
    "how": "I'm doing well, thanks for asking! Shall we look at my documents ({scope})? For example:\n{suggestions}",
}
