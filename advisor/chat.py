"""The conversation stage: `Advisor.ask(question, history) -> Answer`, with small talk and honest refusals."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from advisor.answer import POSITIONAL, compose
from advisor.config import Settings
from advisor.lexical import terms
from advisor.llm import PASSAGES, LLMClient, LLMError, answer_messages, check, condense_messages
from advisor.query import Query, build_query
from advisor.retrieve import Retriever
from advisor.types import Answer, Citation, Hit

# Questions the corpus answers well: shown as suggestions and as the UI's examples (tests check each one).
EXAMPLE_QUESTIONS = (
    "What does a machine learning engineer do?",
    "Which skills do I need to become an ML engineer?",
    "How much do ML engineers earn at each level?",
    "What are common misconceptions about ML engineers?",
)
MAX_QUESTION_CHARS = 1000
SCOPE = ("the machine-learning-engineer career: the role, skills, pay, education, common misconceptions "
         "and industry statistics")

# When is a question outside the documents? Set on eval/devset.jsonl (see README, "Answers"): the best
# passage's cosine similarity to the query mostly separates the two (out of scope <= 0.30, in scope >= 0.36
# there); in the band between, the question's own words must also be found in the best passages. A short
# chat question that never names the field ("What do juniors earn?") embeds far from a table that answers
# it, so finding nearly all its words (out-of-scope questions found at most 0.43) is enough on its own.
# But a question hinging on a word the documents never use ("the salary of a senior nurse") is only
# answered when it is close in meaning: word coverage cannot vouch for what it cannot see.
ON_TOPIC_DENSE = 0.40
OFF_TOPIC_DENSE = 0.30
MIN_COVERAGE = 0.45
SURE_COVERAGE = 0.70

_SMALL_TALK = [
    ("greeting", re.compile(r"^(hi|hello|hey|hiya|howdy|greetings|good (morning|afternoon|evening|day)|yo)\b", re.I)),
    ("thanks", re.compile(r"^(thanks|thank you|thx|ty|cheers|many thanks|much appreciated|great|awesome|perfect|"
                          r"cool|nice|ok|okay|got it)\b", re.I)),
    ("bye", re.compile(r"^(bye|goodbye|good bye|see you|see ya|farewell|that's all|that is all)\b", re.I)),
    ("about", re.compile(r"^((who|what) are you|what can you do|how can you help|what do you do|help)\b", re.I)),
    ("how", re.compile(r"^(how are you|how's it going|how is it going)\b", re.I)),
]
# Words that only pad small talk ("thanks, that was really helpful") and carry no question.
_PADDING = frozenset(terms("there help helpful much lot great good nice day everyone again all so very really "
                           "appreciate appreciated today doing going well useful answer answers thing bot advisor"))


class Advisor:
    """Answers questions from the index; settings, index, model and BM25 load once, on first use.

    Without an LLM the answer is composed from the passages themselves. With ``settings.llm_base_url`` set, an
    OpenAI-compatible server writes it from the same passages; its citations are checked, and any failure
    falls back to the composed answer with a note.
    """

    def __init__(self, settings: Settings | None = None, retriever: Retriever | None = None,
                 llm: LLMClient | None = None) -> None:
        self.settings = settings or Settings.load()
        self._retriever = retriever
        self._llm = llm

    @functools.cached_property
    def retriever(self) -> Retriever:
        """The loaded index and model (loading takes a few seconds, once)."""
        return self._retriever or Retriever.open(self.settings)

    @functools.cached_property
    def llm(self) -> LLMClient | None:
        """The LLM client, or None in the default no-LLM mode."""
        if self._llm is not None or not self.settings.llm:
            return self._llm
        s = self.settings
        return LLMClient(s.llm_base_url, s.llm_model, s.llm_api_key, s.llm_timeout)

    def ask(self, question: str, history: Sequence[dict[str, Any]] = ()) -> Answer:
        """Answer ``question`` in the light of ``history`` (a list of {"role", "content"} messages)."""
        return list(self.ask_stream(question, history, stream=False))[-1]  # without streaming: one answer

    def ask_stream(self, question: str, history: Sequence[dict[str, Any]] = (), stream: bool = True) -> Iterator[Answer]:
        """Partial answers (kind "partial", growing text) while an LLM writes, then the final, checked answer."""
        question = " ".join((question or "").split())
        early = self._early(question)
        if early is not None:
            yield early
            return
        _, rest = small_talk(question)
        query = self._query(rest, history)
        hits = self.retriever.search(query, self.settings.top_k)
        if not on_topic(query, hits, self.retriever):
            yield decline(hits)
            return
        composed = compose(query, hits, self.retriever.lexical)
        if not composed.grounded:
            yield decline(hits)
        elif self.llm is None:
            yield composed
        else:
            yield from self._written(rest, history, hits, composed, stream)

    def _early(self, question: str) -> Answer | None:
        """The reply for messages that need no retrieval: empty, too long, small talk, nothing indexed."""
        if not question:
            return Answer(f"Please type a question about {SCOPE}. For example:\n{_suggestions(2)}", kind="empty")
        if len(question) > MAX_QUESTION_CHARS:
            return Answer(f"That message is {len(question):,} characters long. Please ask in under "
                          f"{MAX_QUESTION_CHARS:,} characters, one question at a time.", kind="too_long")
        kind, _ = small_talk(question)
        if kind:
            return Answer(_SMALL_TALK_REPLIES[kind].format(scope=SCOPE, suggestions=_suggestions(3)), kind="chitchat")
        if not self.retriever.index.chunks:
            return Answer("There is nothing to search yet: no documents are indexed. Add .txt, .md, .html or .pdf "
                          "files to the corpus folder and rebuild the index.", kind="empty")
        return None

    def _query(self, question: str, history: Sequence[dict[str, Any]]) -> Query:
        known = self.retriever.lexical.df
        query = build_query(question, history, known=known)
        if query.followup and self.llm is not None:
            # The LLM may restate a follow-up as a standalone question; on any failure the blended query stays.
            try:
                standalone = self.llm.complete(condense_messages(question, history), max_tokens=80).strip()
            except LLMError:
                return query
            standalone = standalone.splitlines()[0][:300] if standalone else ""
            if standalone:
                return build_query(standalone, (), known=known)
        return query

    def _written(self, question: str, history: Sequence[dict[str, Any]], hits: Sequence[Hit], composed: Answer,
                 stream: bool) -> Iterator[Answer]:
        given = list(hits[:PASSAGES])
        messages = answer_messages(question, history, given)
        text = ""
        try:
            if stream:
                for piece in self.llm.stream(messages):  # type: ignore[union-attr]
                    text += piece
                    yield Answer(check(text, len(given)).text, kind="partial", hits=tuple(hits))
            else:
                text = self.llm.complete(messages)  # type: ignore[union-attr]
        except LLMError as exc:
            note = f"(The language model did not answer: {exc}. This answer quotes the documents instead.)"
            yield replace(composed, text=f"{note}\n{composed.text}", note=note)
            return
        checked = check(text, len(given))
        if not checked.cited:
            note = ("(Unsupported: this answer cites none of the documents' passages, so nothing here shows it is "
                    "backed by them.)")
            yield Answer(f"{checked.text}\n{note}", kind="unsupported", hits=tuple(hits), note=note)
            return
        # Number the cited passages 1..k in order of first use, so [n] is always sources[n-1].
        number = {old: new for new, old in enumerate(checked.cited, start=1)}
        final = re.sub(r"\[(\d+)\]", lambda m: f"[{number[int(m.group(1))]}]", checked.text)
        citations = tuple(Citation(number[old], given[old - 1], ()) for old in checked.cited)
        yield Answer(final, citations, kind="answer", hits=tuple(hits))


def small_talk(message: str) -> tuple[str | None, str]:
    """("greeting" | "thanks" | "bye" | "about" | "how", "") for small talk; (None, question) otherwise.

    A greeting in front of a real question ("Hi, what do ML engineers earn?") leaves the question.
    """
    rest = message
    for kind, pattern in _SMALL_TALK:
        match = pattern.match(rest)
        if match:
            rest = rest[match.end():].strip(" ,.!?;:-")
            if not set(terms(rest)) - _PADDING:
                return kind, ""
            return None, rest
    return None, message


def on_topic(query: Query, hits: Sequence[Hit], retriever: Retriever) -> bool:
    """Whether the best passages are about what was asked: close in meaning, or, when only fairly close,
    containing most of the question's own words (weighted by rarity)."""
    if not hits:
        return False
    own = set(terms(query.question)) - POSITIONAL - query.mapped
    unknown = [t for t in own if t not in retriever.lexical.df]
    if query.followup and unknown and sum(map(retriever.lexical.idf, unknown)) >= 0.5 * sum(map(retriever.lexical.idf, own)):
        return False  # "What about Canada?": the blended query's closeness says nothing about the new word
    dense = hits[0].dense
    if dense >= ON_TOPIC_DENSE:
        return True
    if unknown:
        return False
    # A word the vocabulary translated ("myths") is judged by its translation ("misconception"); a
    # follow-up's own words ("What about Germany?") are judged together with the question it follows.
    asked = set(query.weights) if query.followup else set(query.own)
    weights = {t: retriever.lexical.idf(t) * query.weights.get(t, 0.0) for t in asked - query.mapped}
    found = set(terms(" ".join(f"{h.chunk.section} {h.chunk.text}" for h in hits[:3])))
    coverage = sum(w for t, w in weights.items() if t in found) / (sum(weights.values()) or 1.0)
    return coverage >= SURE_COVERAGE or (dense >= OFF_TOPIC_DENSE and coverage >= MIN_COVERAGE)


def decline(hits: Sequence[Hit] = ()) -> Answer:
    """The plain "not in my documents" reply, with questions the documents can answer."""
    text = (f"I couldn't find that in my documents, so I can't answer it. They cover {SCOPE}. "
            f"You could ask:\n{_suggestions(3)}")
    return Answer(text, kind="out_of_scope", hits=tuple(hits))


def _suggestions(n: int) -> str:
    return "\n".join(f"- {q}" for q in EXAMPLE_QUESTIONS[:n])


_SMALL_TALK_REPLIES = {
    "greeting": "Hello! I answer questions about {scope}, from my documents, and I cite the passages I use. "
                "You could ask:\n{suggestions}",
    "thanks": "You're welcome! Ask me anything else about the ML-engineer career, for example:\n{suggestions}",
    "bye": "Goodbye, and good luck with your career plans!",
    "about": "I'm Career Advisor. I answer questions about {scope}, using only my documents, and I cite the "
             "passages I use. You could ask:\n{suggestions}",
    "how": "I'm doing well, thanks for asking! Shall we talk about the ML-engineer career? For example:\n{suggestions}",
}
