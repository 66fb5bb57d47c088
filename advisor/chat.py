"""The conversation stage: `Advisor.ask(question, history) -> Answer`, with small talk, long messages and honest refusals."""

from __future__ import annotations

import functools
import logging
import re
import time
from collections import Counter
from collections.abc import Container, Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from advisor.answer import (
    PASSAGES,
    RUNNER_UP,
    Statement,
    asks_amount,
    asks_quantity,
    compose,
    has_figure,
    operators,
    rank_statements,
)
from advisor.claims import check_reply, claims_of
from advisor.config import Settings
from advisor.facets import Facet, as_the_corpus_names, asked_part, facets, places, qualifiers, statement_words
from advisor.judge import AnswerModel, get_answer_model
from advisor.lexical import terms
from advisor.llm import PASSAGES as LLM_PASSAGES, LLMClient, LLMError, answer_messages, check, condense_messages
from advisor.query import Query, content_words, lexicon_terms, message_text, valid_text
from advisor.retrieve import Retriever
from advisor.spelling import COMMON, english_rank
from advisor.train import previous_user
from advisor.statements import Unit, clean, normalized
from advisor.types import MARKER, Answer, Chunk, Citation, Hit

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 4000
MAX_QUESTIONS = 4  # questions answered from one message
# What is read of a chat history, which the browser or an API client sends with every message and so is
# untrusted input of any size: the last messages only (a follow-up looks back three questions, an LLM six
# messages), each cut to what an answerable message or one of this tool's answers can be.
MAX_HISTORY_MESSAGES = 12
MAX_ANSWER_CHARS = 8000
BACKGROUND_WEIGHT = 0.3  # words of a long message's background, in BM25 for each of its questions

# When is a question outside the documents? Judged on the question's own words, each weighted by its rarity
# in the corpus; a word the corpus never uses counts as rare as can be (a quarter of that when it is one of
# the COMMON (spelling.py) most frequent English words, or shorthand of three letters or fewer: "necessary" and "pls" rarely
# carry what a question is about, "nurse" does).
# These are round priors, not values fitted to a question set:
UNKNOWN_DECLINE = 0.5  # unknown words carry half the question: the documents can't answer it
UNKNOWN_DOUBT = 1 / 3  # a third: declined unless the best statement is plainly close in meaning
CLOSE = 0.55  # cosine of the question and a statement that means nearly the same
RELATED = 0.45  # cosine below which the words found must carry the answer
# An FAQ answer without a figure leads a question for an amount only when no statement with one is at least this
# close in meaning relative to it: the answer's closeness comes from its heading, which repeats the question.
FIGURE_UNDER_OWN_ANSWER = 0.7
FOUND = 0.5  # share of the question's weighted words the best statement and its heading must contain
MISSING = 0.25  # share of the question left uncovered by the answer that earns a "not covered" note
QUOTED_POOL = 30  # passages searched for those the previous answer quoted
# Statements the answer model reads before the reply says the documents don't cover what a question names: the
# rules' best (each costs about 7 ms on 2 cores).
JUDGED = 10
RESTATED_WORDS = 40  # an LLM's restatement of a follow-up longer than this is an answer, not a question
UNCHECKED = "(The language model's wording could not be checked against the documents, so this answer quotes them.)"

# A yes/no question opens with an auxiliary verb ("Is the pay good?", "Does it pay?").
_YES_NO = re.compile(r"^\W*(is|are|was|were|am|do|does|did|can|could|will|would|should|has|have|had)\b", re.IGNORECASE)
_HOW_LONG = re.compile(r"\bhow long\b", re.IGNORECASE)  # answered by a year too ("since 1995")
_ADVICE = re.compile(
    r"\b(should i|how (do|can|would|should) i|can i|could i|do i need|am i|i'm|i am|i've|i have|"
    r"my|is (a|an|the)\b.{0,60}\benough|worth it|where (do|should) i start)\b",
    re.IGNORECASE,
)
_QUESTION = re.compile(r"[^.?!\n]*\?")
# A request to write or go over the asker's own papers ("Can you write my CV?", "please review my cover letter"):
# no document answers it, whatever the job it names, so the reply says what this tool does instead.
_REQUEST = re.compile(
    r"(?:^|[.!?]\s+)\W*(?:(?:can|could|would|will) (?:you|u)\s+(?:please\s+|pls\s+)?|please\s+|pls\s+|"
    r"i (?:need|want) you to\s+|help me\s+)?"
    r"(?P<verb>write|draft|rewrite|redo|review|proofread|edit|check|fix|improve|polish|create|make|prepare|tailor)"
    r"\s+(?:up\s+)?(?:me\s+(?:a|an|my)?|a|an|my)\s*(?:[\w-]+\s+){0,3}?"
    r"(?P<thing>cv|resume|résumé|cover letter|personal statement|statement of purpose|motivation letter|"
    r"linkedin(?: profile)?|application|essay|portfolio)s?\b",
    re.IGNORECASE,
)
_ASKS_FOR_QUESTIONS = re.compile(r"\b(questions?|ask|asks|asked|asking)\b", re.IGNORECASE)  # "what do interviews ask?"

# Small talk, phrase by phrase: a message made only of these ("ok cool thanks", "good morning, who am I talking
# to?", "lol ok bye") is answered as small talk, by the kind that matters most of those it holds (listed first).
_SMALL_TALK = [
    (
        "about",
        re.compile(
            r"^((who|what) are you|who am i (talking|speaking|chatting) (to|with)|who (made|built|created|wrote) you|"
            r"(are you|r u|you|is this|am i (talking|speaking|chatting) (to|with))( just)? (a |an )?(real )?"
            r"(bot|chatbot|robot|human|person|ai|machine|computer|program)|what can you do|how can you help|"
            r"what do you do|what's your name|what is your name|help)\b",
            re.I,
        ),
    ),
    ("how", re.compile(r"^(how are you|how are u|how's it going|how is it going|how you doing|what's up|sup)\b", re.I)),
    (
        "bye",
        re.compile(r"^(bye+|goodbye+|good bye+|bye bye+|see you|see ya|cya|farewell|good night|that's all|that is all)\b", re.I),
    ),
    (
        "thanks",
        re.compile(
            r"^(thanks+|thank you|thank u|thx+|ty|tysm|cheers|many thanks|much appreciated|that helps|"
            r"that was helpful|great|awesome|perfect)\b",
            re.I,
        ),
    ),
    (
        "ack",
        re.compile(
            r"^(cool+|nice+|ok+|okay+|k|kk|got it|gotcha|alright|all right|sweet|lol+|(ha)+h?|hm+|wow+|interesting|"
            r"understood|makes sense|good to know|noted|fair enough|nvm|never mind|yep|yeah|yes|sure)\b",
            re.I,
        ),
    ),
    ("greeting", re.compile(r"^(hi+|hel+o+|he+y+|hiya|howdy|greetings|good (morning|afternoon|evening|day)|yo+)\b", re.I)),
]
# Words that only pad small talk ("thanks, that was really helpful", "… gonna go think about it. bye!") and carry
# no question. Stretched words ("heyy", "byeee", "okk") match the phrases above.
_PADDING = frozenset(
    terms(
        "there help helpful much lot great good nice day everyone again all so very really mate man dude buddy "
        "appreciate appreciated today doing going well useful answer answers thing bot advisor helped actually gonna go "
        "think over later now ai robot human person real "
        "thats youre"  # contractions typed without the apostrophe ("thanks thats helpful")
    )
)


# A word in front of small talk that changes nothing ("wait, am I talking to a bot?", "um thanks").
_FILLER = re.compile(r"^(wait|um+|uh+|oh+|so|btw|anyway)\b[\s,.!?;:-]*", re.I)
_CLAUSE = re.compile(r"[^,.!?;:]+[,.!?;:]+\s*")  # words up to and including their punctuation


class Advisor:
    """Answers questions from the index; settings, index, model and BM25 load once, on first use.

    Without an LLM the answer is composed from the passages themselves. With ``settings.llm_base_url`` set, an
    OpenAI-compatible server writes it from the same passages; its citations are checked, and any failure
    falls back to the composed answer with a note.
    """

    def __init__(
        self, settings: Settings | None = None, retriever: Retriever | None = None, llm: LLMClient | None = None
    ) -> None:
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

    @functools.cached_property
    def answer_model(self) -> AnswerModel:
        """The trained model that judges whether a statement answers a question (loaded on first use)."""
        return get_answer_model(self.settings.answer_model)

    # --- what the corpus is about (from the corpus, never from code) ---------------------------

    @functools.cached_property
    def scope(self) -> str:
        """What the documents are about, from their titles: "Machine Learning Engineer; Data Scientist Career Guide"."""
        titles = list(dict.fromkeys(clean(c.title) for c in self.retriever.index.chunks.values() if c.title))
        return "; ".join(titles[:6]) + ("; …" if len(titles) > 6 else "") if titles else "the documents in the corpus"

    @functools.cached_property
    def qualifiers(self) -> frozenset[tuple[str, ...]]:
        """The words the documents put before a job's head noun ("data" scientists), which say which job."""
        return qualifiers(text for c in self.retriever.index.chunks.values() for text in (c.title, c.section, c.text))

    @functools.cached_property
    def _places_by_document(self) -> dict[str, frozenset[frozenset[tuple[str, ...]]]]:
        """The places each document names anywhere (title, headings, text), each as its set of ways of saying it."""
        found: dict[str, set[frozenset[tuple[str, ...]]]] = {}
        for c in self.retriever.index.chunks.values():
            found.setdefault(c.source, set()).update(places(f"{c.title}\n{c.section}\n{c.text}"))
        return {source: frozenset(named_there) for source, named_there in found.items()}

    @functools.cached_property
    def home_place(self) -> frozenset[tuple[str, ...]]:
        """The corpus's own country or region: the place more of its documents name than any other (the United
        States for pages of U.S. agencies), or none when two places tie. Its documents give their figures for it
        without saying so on every line ("Number of Jobs, 2016: 3,100")."""
        top = Counter(place for named_there in self._places_by_document.values() for place in named_there).most_common(2)
        if not top or (len(top) > 1 and top[0][1] == top[1][1]):
            return frozenset()
        return top[0][0]

    def _is_about(self, statement: Statement, asked: Sequence[Facet]) -> bool:
        """Whether a statement is about what the question names (see ``_names``); one in a document that names
        no place but the corpus's own is about that place."""
        if not any(f.kind == "place" for f in asked):
            return _names(statement, asked, self.retriever.lexical.df)
        home = self.home_place
        at_home = bool(home) and self._places_by_document.get(statement.hit.chunk.source, frozenset()) <= {home}
        return _names(statement, asked, self.retriever.lexical.df, home if at_home else frozenset())

    @functools.cached_property
    def corpus_questions(self) -> list[str]:
        """Questions the documents answer, from their FAQ headings (headings that are questions), in corpus order,
        taking one from each document in turn so every document is represented."""
        per_doc: dict[str, list[str]] = {}
        for chunk in sorted(self.retriever.index.chunks.values(), key=lambda c: (c.source, c.start)):
            for part in chunk.section.split(" › "):
                part = clean(part)
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
        """Questions the documents answer, nearest in meaning to ``question`` first (corpus order without one);
        never ``question`` itself, which was just asked."""
        asked = _words_of(question)
        questions = [q for q in self.corpus_questions if _words_of(q) != asked]
        if not question or len(questions) <= n:
            return questions[:n]
        kept = [i for i, q in enumerate(self.corpus_questions) if _words_of(q) != asked]
        closeness = self._question_vectors[kept] @ self.retriever.embed(question)[0]
        return [questions[i] for i in np.argsort(-closeness)[:n]]

    # --- answering -----------------------------------------------------------------------------

    def ask(self, question: str, history: Sequence[dict[str, Any]] = ()) -> Answer:
        """Answer ``question`` in the light of ``history`` (a list of {"role", "content"} messages)."""
        return list(self.ask_stream(question, history, stream=False))[-1]  # without streaming: one answer

    def ask_stream(self, question: str, history: Sequence[dict[str, Any]] = (), stream: bool = True) -> Iterator[Answer]:
        """Partial answers (kind "partial", growing text) while an LLM writes, then the final, checked answer."""
        history = _without_small_talk(bound_history(history))
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
        if len(questions) > 1:
            questions = questions[:MAX_QUESTIONS]
            parts = [(q, self._answer(q, _leaning(history, q, questions[:i]), background)[0]) for i, q in enumerate(questions)]
            yield _merge(parts)
            return
        # The documents' own answer never depends on the LLM: it is what the reply falls back to.
        composed, query, hits = self._answer(questions[0], history, background)
        if self.llm is None or not composed.grounded:
            yield composed
            return
        # One time limit for everything an LLM does for this message: restating a follow-up and writing the answer.
        deadline = time.monotonic() + self.settings.llm_timeout
        restated = self._restated(questions[0], history, query, deadline)
        if restated is not None:
            query, hits = restated, self.retriever.search(restated, max(self.settings.top_k, PASSAGES))
        yield from self._written(query.question, history, hits, composed, stream, deadline)

    def _answer(self, question: str, history: Sequence[dict[str, Any]], background: str) -> tuple[Answer, Query, list[Hit]]:
        """The composed (no-LLM) answer to one question, the query it was read as, and the passages found."""
        query = self._query(question, history, background)
        request = _REQUEST.search(question)
        if request:
            return self.cannot_write(request["verb"], request["thing"], query), query, []
        hits = self.retriever.search(query, max(self.settings.top_k, PASSAGES))
        if not hits:
            return self.decline(query), query, hits
        passages = hits[:PASSAGES] + [h for h in self._cited_before(query, hits) if h not in hits[:PASSAGES]]
        vectors = [self.retriever.embed(query.question)]
        if query.followup:
            vectors.append(self.retriever.embed(query.text))
        ranked = rank_statements(query, passages, vectors, self._statement_vectors, self.retriever.lexical)
        if not _ASKS_FOR_QUESTIONS.search(query.text):  # the conversation so far, for a follow-up
            # A statement that is itself a question (an interview question the documents list, an FAQ heading
            # said in the text) answers nothing: "What is overfitting?" listed is no answer to "explain overfitting".
            ranked = [s for s in ranked if not s.unit.text.rstrip().endswith("?")]
        if not ranked:
            return self.decline(query, hits), query, hits
        # A question naming a job, place, employer or year is answered only by statements about it ("data scientists' pay"
        # is not answered by ML engineers' pay): the documents either say it or the reply says they don't.
        vocabulary = self.retriever.lexical.df
        asked = facets(query.question)
        judge = _Judge(self.answer_model, query, history, ranked[:JUDGED])  # the rules' best, before any restriction
        said = as_the_corpus_names(asked, self.qualifiers, vocabulary)
        if said != asked and judge.sure():
            # A word before a job that the documents never put before one ("paid librarians", "the Census
            # librarian job") tells how or where, unless it names another job ("product managers"): the model
            # tells which, by reading one of the best statements surely as the answer (the overrule cut).
            asked = said
        unmentioned = tuple(f.typed for f in asked if not f.known(vocabulary))
        restricted = False
        # These refusals are the rules' alone: the model reads a table's row about another job, country or year as
        # the answer too often ("entry level data engineer salary", "ML startups in France": of 16 such refusals it
        # overruled on the dev sets, 8 were of uncovered questions and 2 more answered wrongly).
        if any(not any(f.known(vocabulary) for f in asked if f.kind == kind) for kind in {f.kind for f in asked}):
            return self.decline(query, hits, unmentioned), query, hits
        if asked:
            fitting = self._about(asked, query, history, ranked, passages, hits, vectors)
            if not fitting:
                # Name what the best statements leave out ("Google", not "ML engineers", for "What does Google
                # pay ML engineers?"), or every facet when they leave out none by itself.
                known = [f for f in asked if f.known(vocabulary)]
                lacking = [f for f in known if not any(self._is_about(s, [f]) for s in ranked[:PASSAGES])]
                return self.decline(query, hits, unmentioned, not_about=tuple(f.typed for f in lacking or known)), query, hits
            restricted, ranked = fitting[0] is not ranked[0], fitting
        # The documents' own answer to a question (said under an FAQ heading, close in meaning) stands without a
        # figure: "How much money do ML engineers make?" → "… one of the highest-paying jobs".
        lead = ranked[0]
        own_answer = lead.unit.context.rstrip().endswith("?") and lead.dense >= CLOSE
        quantity = asks_quantity(query.question)
        wants_figure = quantity or (asks_amount(query.question) and not _YES_NO.match(query.question))
        # A year is no amount ("… little or no change from 2014 to 2024" gives no number of jobs), but it is how
        # long something has been ("since 1995").
        years = bool(_HOW_LONG.search(query.question))
        if wants_figure and not has_figure(lead, years):
            # "How many hours a week…", "What do they earn?" (not "Is the pay good?", which the documents' words
            # answer): the best statement gives no figure; one that does,
            # nearly as close in meaning, answers first (the documents' own answer, if it leads, may follow it).
            # For a quantity with no figure anywhere near, the documents don't give one.
            # Looser for the documents' own answer: it is close in meaning through its FAQ heading, not what it says.
            share = FIGURE_UNDER_OWN_ANSWER if own_answer else RUNNER_UP
            figures = [s for s in ranked if has_figure(s, years) and s.dense >= share * lead.dense]
            wider = [h for h in hits if h not in passages]
            if not figures and quantity and wider:
                # The best passages give no figure; a page's quick facts a little further down may ("how many
                # sociologist jobs are there?" → "Number of Jobs, 2014: 2,600"), when the model reads it as the
                # answer (a salary row is no number of hours).
                every = rank_statements(query, passages + wider, vectors, self._statement_vectors, self.retriever.lexical)
                found = [
                    s
                    for s in every
                    if s.hit in wider
                    and has_figure(s, years)
                    and s.dense >= share * lead.dense
                    and (not asked or self._is_about(s, asked))
                ]
                if found and _Judge(self.answer_model, query, history, found[:JUDGED]).answered():
                    figures = ranked = found  # what the best passages say without a figure answers no "how many"
            if not figures and quantity and not own_answer and not judge.overrules():
                return self.decline(query, hits, no_figure=True), query, hits
            ranked = figures + [s for s in ranked if s not in figures]
        unknown, missing = self._uncovered(query, ranked[0])
        closeness = max(ranked[0].dense, hits[0].dense)
        doubtful = (unknown.share >= UNKNOWN_DECLINE and closeness < CLOSE) or (
            unknown.share >= UNKNOWN_DOUBT and closeness < RELATED
        )
        # A follow-up's own words are few ("And at the senior level?"); those of the question it continues need
        # not all be in one statement, so only a word the corpus lacks gets it declined here.
        thin = missing.found < FOUND and closeness < RELATED and not (query.followup and not unknown.words)
        if (doubtful or thin) and not judge.overrules():
            # The words the documents lack are named as what they don't cover only when the model agrees that
            # nothing answers: "They don't mention “instead”, “back” or “school”" names no subject.
            named = unknown.words if doubtful and not judge.answered() else ()
            return self.decline(query, hits, named), query, hits
        if judge.overruled:
            # The rules would have refused: the statement the model reads as the answer leads.
            ranked = [judge.best] + [s for s in ranked if s is not judge.best]
        advice = bool(_ADVICE.search(question))
        answer, chosen = compose(ranked, hits, query.question, advice=advice)
        if not answer.grounded:
            return self.decline(query, hits), query, hits
        gaps = self._uncovered(query, *chosen, specific=True)[1]
        # A job, place, employer or year the question names that no chosen statement is about ("Compare ML engineer and
        # data scientist pay" when only ML engineers' pay is given) is said to be missing.
        unnamed = self._left_out(asked, query, chosen)
        if restricted and not any(s.display for s in chosen) and gaps.share >= MISSING and gaps.words and not judge.overrules():
            # The statements about the job or place named say nothing of what was asked about it.
            return self.decline(query, hits, not_about=tuple(f.typed for f in asked)), query, hits
        uncovered = gaps.words if not advice and not any(s.display for s in chosen) and gaps.share >= MISSING else ()
        # Words the question only seems to be about ("realistically", "besides", "hype") would make that note a
        # false claim about the documents: it stands only when the answer model reads none of the best statements
        # as the answer.
        if (unnamed or uncovered) and not judge.answered():
            note = f"My documents don't say this about {_quoted(unnamed or uncovered)}; here is what they do say:"
            answer = replace(answer, text=f"{note}\n{answer.text}", note=note)
        return answer, query, hits

    def _about(
        self,
        asked: list[Facet],
        query: Query,
        history: Sequence[dict[str, Any]],
        ranked: list[Statement],
        passages: list[Hit],
        hits: Sequence[Hit],
        vectors: list[np.ndarray],
    ) -> list[Statement]:
        """The ranked statements about the jobs, places and years the question names; empty when none of them
        is about as close in meaning to the question as the best statement overall, unless the answer model
        reads one of them as the answer."""
        fitting = [s for s in ranked if self._is_about(s, asked)]

        def close(found: list[Statement]) -> bool:
            # A follow-up naming only a place or job ("And in Germany?") means little by itself: any statement
            # about it among the passages found for the conversation will do.
            return bool(found) and (query.followup or found[0].dense >= RUNNER_UP * ranked[0].dense)

        wider = [h for h in hits if h not in passages]
        if not close(fitting) and wider:
            # The best passages are about another job or place: look through all the passages found.
            every = rank_statements(query, passages + wider, vectors, self._statement_vectors, self.retriever.lexical)
            fitting = [s for s in every if self._is_about(s, asked)]
        if close(fitting):
            return fitting
        # A table's rows say it in figures, far in meaning from the words of the question ("librarians' pay in
        # 2003" → "Colleges and universities: 20,850, $23.82, $49,540" on a page about librarians in 2003).
        return fitting if fitting and _Judge(self.answer_model, query, history, fitting[:JUDGED]).answered() else []

    def _left_out(self, asked: list[Facet], query: Query, chosen: list[Statement]) -> tuple[str, ...]:
        """The jobs, places and years the question names that the chosen statements don't answer for: not named
        by any of them, or, in a comparison, named only by statements that don't say what was asked ("Compare ML
        engineer and data scientist salaries" when only the ML engineers' statements give pay)."""
        left = tuple(f.typed for f in asked if not any(self._is_about(s, [f]) for s in chosen))
        # A comparison names two things of a kind (two jobs, two places, two years); a job and a sector ("ML
        # engineers in finance") are one subject, which a statement naming both answers for.
        compared = [f for f in asked if sum(g.kind == f.kind for g in asked) > 1]
        if compared and not left and not any(s.display for s in chosen):
            facet_words = {t for f in asked for v in f.variants for t in v}
            for f in compared:
                about = [s for s in chosen if self._is_about(s, [f])]
                lacking = self._uncovered(query, *about, specific=True)[1]
                if lacking.share >= MISSING and set(terms(" ".join(lacking.words))) - facet_words:
                    left += (f.typed,)
        return left

    def _query(self, question: str, history: Sequence[dict[str, Any]], background: str = "") -> Query:
        query = self.retriever.query(question, history)
        if background:
            weights = dict(query.weights)
            for term in terms(self.retriever.speller(background)[0]):
                weights.setdefault(term, BACKGROUND_WEIGHT)
            query = replace(query, weights=weights)
        return query

    def _restated(self, question: str, history: Sequence[dict[str, Any]], query: Query, deadline: float) -> Query | None:
        """A follow-up restated by the LLM as one standalone question, to find the passages it writes from; None
        when it isn't a follow-up, the LLM fails, or the restatement doesn't read as this follow-up asked again:
        one short question holding every word of the follow-up's own and one of the question it continues (a
        model may answer instead of restating, or drop the new words: "The most in-demand languages are:")."""
        if not query.followup:
            return None
        try:
            standalone = self.llm.complete(condense_messages(question, history), max_tokens=80, deadline=deadline)  # type: ignore[union-attr]
        except LLMError as exc:
            log.info("The LLM did not restate the follow-up (%s); searching with the blended question", exc)
            return None
        standalone = " ".join(standalone.split())
        own, said = set(terms(question)), set(terms(standalone))
        earlier = set(terms(query.text)) - own
        if (
            not standalone.endswith("?")
            or standalone.count("?") > 1
            or len(standalone.split()) > RESTATED_WORDS
            or MARKER.search(standalone)
            or not own <= said
            or (earlier and not earlier & said)
        ):
            log.info("Kept the blended question: the LLM's restatement %r does not ask the follow-up again", standalone[:120])
            return None
        return self.retriever.query(standalone)

    def _cited_before(self, query: Query, hits: Sequence[Hit]) -> list[Hit]:
        """In a follow-up, the passages the previous answer quoted ("which of those …" points into them)."""
        if not query.followup or not query.previous_answer:
            return []
        said = _shingles(MARKER.sub(" ", query.previous_answer))
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

    def _uncovered(self, query: Query, *statements: Statement, specific: bool = False) -> tuple[_Share, _Share]:
        """(the question's words the corpus never uses, the question's words these statements don't contain), each
        with its share of the question's weight and the words as the user typed them. ``specific``: report only
        words outside the COMMON English words as not contained."""
        lexical = self.retriever.lexical
        unseen = lexical.idf("\x00")  # the weight of a word no passage contains
        found = set().union(*(s.stems for s in statements))
        # A row is said under its table's column names: "by percentile" is what the "Percentile" column gives.
        found.update(t for s in statements if s.unit.table is not None for t in terms(" ".join(s.unit.table.columns)))
        typed = content_words(query.question)
        rank = {t: english_rank(w) for w in reversed(typed) for t in terms(w)}  # the word as typed, not its stem
        weights: dict[str, float] = {}
        unknown: set[str] = set()
        missing: set[str] = set()
        # A follow-up's earlier question counts too, at its weight: "And which one comes second?" is about it.
        asked = (
            {t: w for t, w in query.weights.items() if t in query.own or w >= 0.5}
            if query.followup
            else {t: 1.0 for t in query.own}
        )
        for term in set(asked) - operators(query.question):
            if term not in query.own and term not in lexical.df:
                continue  # an earlier question's word the corpus lacks was judged when that question was asked
            others = query.synonyms.get(term, frozenset())
            known = [t for t in (term, *others) if t in lexical.df]
            if known:
                # A word found in nearly every passage is the corpus's own topic: evidence the question is on it,
                # so it weighs at least as much as a common word the corpus lacks.
                weights[term] = asked[term] * max(0.25 * unseen, max(lexical.idf(t) for t in known))
                if not any(t in found for t in (term, *others)) and not (specific and rank.get(term, 0) < COMMON):
                    missing.add(term)
            else:
                # Rare English (not shorthand) or a career concept of the lexicon ("remote"): it carries the question.
                concept = (rank.get(term, 10**9) >= COMMON and len(term) > 3) or term in lexicon_terms()
                weights[term] = asked[term] * unseen * (1.0 if concept else 0.25)
                unknown.add(term)
                if not (specific and rank.get(term, 10**9) < COMMON):
                    missing.add(term)
        total = sum(weights.values()) or 1.0

        # What the asker tells about themselves ("I was an army medic.") weighs as it does, but is never named as
        # what the documents don't cover: it is not what they ask the documents about.
        told = set(terms(query.question)) - set(terms(asked_part(query.question)))

        def share(chosen: set[str]) -> _Share:
            words = [w for w in typed if set(terms(w)) & chosen and not set(terms(w)) <= told]
            return _Share(sum(weights[t] for t in chosen) / total, tuple(dict.fromkeys(words)))

        return share(unknown), share(missing)

    @staticmethod
    def _too_long(length: int) -> Answer:
        return Answer(
            f"That message is {length:,} characters long. Please keep it under "
            f"{MAX_QUESTION_CHARS:,} characters: your background and up to {MAX_QUESTIONS} questions.",
            kind="too_long",
        )

    def _early(self, question: str) -> Answer | None:
        """The reply for messages that need no retrieval: empty (or without a word: "😀", "?????", a zero-width
        space), too long, small talk, nothing indexed."""
        if not _WORDY.search(question):
            suggestions = self._safe_suggestions()
            return Answer(
                f"Please type a question about {self._scope_or_default()}. For example:\n{self._listed(suggestions)}",
                kind="empty",
                suggestions=tuple(suggestions),
            )
        if len(question) > MAX_QUESTION_CHARS:
            return self._too_long(len(question))
        kind, _ = small_talk(question)
        if kind:
            suggestions = self._safe_suggestions()
            reply, lead = _SMALL_TALK_REPLIES[kind]
            reply = reply.format(scope=self._scope_or_default())
            if lead and suggestions:
                reply += f" {lead}\n{self._listed(suggestions)}"
            return Answer(reply, kind="chitchat", suggestions=tuple(suggestions))
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

    def decline(
        self,
        query: Query | None = None,
        hits: Sequence[Hit] = (),
        unknown: tuple[str, ...] = (),
        not_about: tuple[str, ...] = (),
        no_figure: bool = False,
    ) -> Answer:
        """The plain "not in my documents" reply, naming what they don't mention (``unknown``) or mention without
        answering this (``not_about``), with questions they answer."""
        missing = f" They don't mention {_quoted(unknown)}." if unknown else ""
        if not_about:
            missing += f" They don't say this about {_quoted(not_about)}."
        if no_figure:
            missing += " They give no figure for it."
        suggestions = self.suggestions(query.question if query else "")
        text = f"I couldn't find that in my documents, so I can't answer it.{missing} They are about: {self.scope}." + (
            f" You could ask:\n{self._listed(suggestions)}" if suggestions else ""
        )
        return Answer(text, kind="out_of_scope", hits=tuple(hits), suggestions=tuple(suggestions))

    def cannot_write(self, verb: str, thing: str, query: Query) -> Answer:
        """The reply to a request to write or go over the asker's own papers: what this tool does instead, and
        questions its documents answer that may help with them."""
        verb = verb.lower()
        whose = "a" if verb in ("write", "draft", "create", "make", "prepare") else "your"
        suggestions = self.suggestions(query.question)
        text = (
            f"I can't {verb} {whose} {thing} for you: I only answer questions from my documents ({self.scope}) and "
            "cite the passages I use."
        ) + (f" What they say may help with it. You could ask:\n{self._listed(suggestions)}" if suggestions else "")
        return Answer(text, kind="out_of_scope", suggestions=tuple(suggestions))

    def _written(
        self,
        question: str,
        history: Sequence[dict[str, Any]],
        hits: Sequence[Hit],
        composed: Answer,
        stream: bool,
        deadline: float | None = None,
    ) -> Iterator[Answer]:
        """The LLM's answer, keeping only the sentences the passages they cite support (see claims.py); the
        documents' own answer, with a note, when what is left does not answer as it does."""
        given = list(hits[:LLM_PASSAGES])
        texts = [h.chunk.text for h in given]
        messages = answer_messages(question, history, given)
        text = shown = checked = ""
        try:
            if stream:
                for piece in self.llm.stream(messages, deadline=deadline):  # type: ignore[union-attr]
                    text += piece
                    # Only sentences already finished and checked go on screen, so nothing shown is taken back
                    # as unsupported; the last one may still be growing.
                    lines = claims_of(check(text, len(given)).text)
                    finished = "\n".join(" ".join(line) for line in [*lines[:-1], lines[-1][:-1]] if line) if lines else ""
                    if finished == checked:
                        continue  # no sentence finished with this token: nothing new to check (stemming is the cost)
                    checked = finished
                    kept = check_reply(finished, texts)[0] if finished else ""
                    if kept and kept != shown:
                        shown = kept
                        yield Answer(_renumbered(kept, given)[0], kind="partial", hits=tuple(hits))
            else:
                text = self.llm.complete(messages, deadline=deadline)  # type: ignore[union-attr]
        except LLMError as exc:
            note = f"(The language model did not answer: {exc}. This answer quotes the documents instead.)"
            yield replace(composed, text=f"{note}\n{composed.text}", note=note)
            return
        kept, judged = check_reply(check(text, len(given)).text, texts)
        dropped = [c for c in judged if not c.supported]
        if dropped:
            reasons = "; ".join(c.why for c in dropped)
            log.info("Removed %d of %d sentences of the LLM's answer: %s", len(dropped), len(judged), reasons)
        if not self._answers_as_composed(kept, given, composed, question):
            note = UNCHECKED
            yield replace(composed, text=f"{note}\n{composed.text}", note=note)
            return
        final, citations = _renumbered(kept, given)
        yield Answer(final, citations, kind="answer", hits=tuple(hits))

    @staticmethod
    def _answers_as_composed(kept: str, given: list[Hit], composed: Answer, question: str) -> bool:
        """Whether the checked LLM text answers where the documents' own answer does: it cites a passage that
        answer cites, and gives a figure when the question asks for one and that answer has one."""
        cited = {given[int(n) - 1].chunk.id for n in MARKER.findall(kept)}
        if not cited & {c.chunk.id for c in composed.citations}:
            return False
        wants_figure = asks_quantity(question) or (asks_amount(question) and not _YES_NO.match(question))
        return not (wants_figure and re.search(r"\d", composed.text) and not re.search(r"\d", MARKER.sub("", kept)))


def _renumbered(text: str, given: list[Hit]) -> tuple[str, tuple[Citation, ...]]:
    """``text`` with its cited passages numbered 1..k in order of first use, so [n] is always sources[n-1] (the
    same numbers while it streams as at its end), and those citations."""
    cited = list(dict.fromkeys(int(n) for n in MARKER.findall(text)))
    number = {old: new for new, old in enumerate(cited, start=1)}
    renumbered = MARKER.sub(lambda m: f"[{number[int(m.group(1))]}]", text)
    return renumbered, tuple(Citation(number[old], given[old - 1], ()) for old in cited)


class _Share:
    """Part of a question: its share of the question's weight and the words as typed."""

    __slots__ = ("share", "words")

    def __init__(self, share: float, words: tuple[str, ...]) -> None:
        self.share, self.words = share, words

    @property
    def found(self) -> float:
        """The rest of the question: 1 - share."""
        return 1.0 - self.share


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


def _without_small_talk(history: list[dict[str, str]]) -> list[dict[str, str]]:
    """The conversation without its small talk: a question after "good morning, who am I talking to?" continues
    nothing, so it is not read as a follow-up of the greeting."""
    kept: list[dict[str, str]] = []
    chatting = False
    for message in history:
        if message["role"] == "user":
            chatting = small_talk(message["content"])[0] is not None
        if not chatting:
            kept.append(message)
    return kept


def _leaning(history: Sequence[dict[str, Any]], question: str, before: list[str]) -> Sequence[dict[str, Any]]:
    """The conversation one question of a several-question message continues: for a piece with at most one
    word of its own ("What do juniors earn? And seniors?", "… format my resume? one page or two?"), the
    message's question just before it too."""
    if not before or len(terms(question)) > 1:
        return history
    return [*history, {"role": "user", "content": before[-1]}, {"role": "assistant", "content": ""}]


_WORDY = re.compile(r"[^\W_]")  # a letter or digit of any script: what a message needs to ask anything


def _words_of(text: str) -> tuple[str, ...]:
    """A question's words, lower case, without punctuation: "How much?" and "how much" are the same question."""
    return tuple(re.findall(r"\w+", text.casefold()))


def _merge(parts: list[tuple[str, Answer]]) -> Answer:
    """One answer to a message of several questions: each question in bold, then its answer, citations numbered
    across all of them."""
    citations: list[Citation] = []
    number: dict[int, int] = {}
    pieces: list[str] = []
    hits: list[Hit] = []
    suggestions: list[str] = []
    said: set[str] = set()  # the cited sentences of the answers so far
    asked: list[list[str]] = []  # the questions each piece answers
    for question, answer in parts:
        hits += [h for h in answer.hits if h not in hits]
        # A question whose whole answer an earlier one already gave ("Is there a gender gap? How big?") is asked
        # beside that one, not answered again under its own heading.
        if answer.kind != "out_of_scope":
            same = next((i for i, piece in enumerate(pieces) if _said(answer.text) in _said(piece)), None)
            if same is not None:
                asked[same].append(question)
                continue
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
        text = MARKER.sub(lambda m, renumber=renumber: f"[{renumber.get(int(m.group(1)), int(m.group(1)))}]", answer.text)
        # One list of what the documents cover is enough, below; a sentence said for an earlier question, once.
        text = text.split(" They are about:")[0] if answer.kind == "out_of_scope" else _unrepeated(text, said)
        pieces.append(text)
        asked.append([question])
        suggestions += [s for s in answer.suggestions if s not in suggestions and f"- {s}" in text]
    kind = "answer" if citations else "out_of_scope"
    text = "\n\n".join(f"**{' '.join(questions)}**\n{piece}" for questions, piece in zip(asked, pieces))
    return Answer(text, tuple(citations), kind=kind, hits=tuple(hits), suggestions=tuple(suggestions))


def _unrepeated(text: str, said: set[str]) -> str:
    """An answer to one question of several without the cited sentences an earlier answer already gave ("I'm 47,
    am I too old? how many are 45-54?" both find the age-distribution sentence); whole when it would be left with
    nothing, for then the repeat is this question's answer. Adds its sentences to ``said``."""
    kept, dropped, saying = [], False, []
    for line in text.split("\n"):
        if line.startswith("- ") or line.rstrip().endswith(":"):  # a list and its lead-in stay whole
            kept.append(line)
            continue
        pieces = _CITED.findall(line)
        saying += map(_said, pieces)
        rest = _CITED.sub("", line).strip()
        fresh = [p for p in pieces if _said(p) not in said]
        dropped = dropped or len(fresh) < len(pieces)
        if fresh or rest or not pieces:
            kept.append(" ".join(p.strip() for p in [*fresh, rest] if p.strip()))
    said.update(saying)
    shorter = "\n".join(kept).strip()
    return shorter if dropped and shorter else text


_CITED = re.compile(r"[^\s].*?\[\d+\][.!?]?(?=\s|$)")  # prose up to and including its [n] marker


def _said(piece: str) -> str:
    """A cited piece as compared with another: without its marker or final stop, loosely (``normalized``)."""
    return normalized(MARKER.sub("", piece)).rstrip(".!?")


def _names(
    statement: Statement, asked: Sequence[Facet], vocabulary: Container[str], home: frozenset[tuple[str, ...]] = frozenset()
) -> bool:
    """Whether a statement (with its heading and document title) is about every kind of thing the question
    names: one of the jobs it names, one of the places, one of the years (those the corpus mentions at all).
    ``home``: the place the statement's document speaks of throughout, without naming it on every line."""
    chunk = statement.hit.chunk
    kinds = {f.kind for f in asked}

    # A job or place must be in the statement itself (or its heading, its document's title: a table row
    # "Germany: …"); a year may be given anywhere in its passage ("In 2020, the market …" then "It grew …").
    def about(f: Facet) -> bool:
        if f.named_in(statement.stems) or (f.kind == "place" and bool(home) and frozenset(f.variants) == home):
            return True
        if f.kind == "year":
            return f.named_in(_passage_stems(chunk))
        # A passage about one place only ("… typical base salaries in the United States: …") speaks of it
        # throughout; one naming several places (a table of countries) names the place in the row itself.
        return f.kind == "place" and f.named_in(_passage_stems(chunk)) and _places(chunk.text) <= set(f.variants)

    return all(any(about(f) for f in asked if f.kind == kind and f.known(vocabulary)) for kind in kinds)


@functools.lru_cache(maxsize=4096)
def _passage_stems(chunk: Chunk) -> list[str]:
    """A passage's stems with its heading and title, computed once per passage rather than per statement."""
    return statement_words(chunk.title, chunk.section, chunk.text)


@functools.lru_cache(maxsize=4096)
def _places(text: str) -> frozenset[tuple[str, ...]]:
    """Every way of saying each place a passage names."""
    return frozenset(v for place in places(text) for v in place)


def _shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _quoted(words: tuple[str, ...]) -> str:
    """Up to four words, each once, as the reply names them: "“finance”", "“Lagos” or “Nigeria”"."""
    once: dict[str, str] = {}
    for w in words:
        once.setdefault(w.casefold(), w)  # the first spelling of each word
    shown = [f"“{w}”" for w in once.values()][:4]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def small_talk(message: str) -> tuple[str | None, str]:
    """("about" | "how" | "bye" | "thanks" | "ack" | "greeting", "") for small talk; (None, question) otherwise.

    A greeting in front of a real question ("Hi, what do ML engineers earn?") leaves the question.
    """
    rest, said = message, []
    while rest:
        kind = next(((k, m) for k, pattern in _SMALL_TALK if (m := pattern.match(rest))), None)
        if kind is None:
            filler = _FILLER.match(rest)
            if filler and any(pattern.match(rest[filler.end() :]) for _, pattern in _SMALL_TALK):
                rest = rest[filler.end() :]
                continue
            # A clause of padding between phrases ("thanks, that really helped, gonna go think it over. bye!").
            clause = _CLAUSE.match(rest)
            if said and clause and clause.end() < len(rest) and not set(terms(clause.group(0))) - _PADDING:
                rest = rest[clause.end() :]
                continue
            break
        said.append(kind[0])
        rest = rest[kind[1].end() :].lstrip(" ,.!?;:-").strip()
    if not said:
        return None, message
    if rest and message.rstrip().endswith("?") and said[-1] in ("thanks", "ack", "greeting"):
        return None, rest  # "ok but what do they actually do all day?" asks something
    if not set(terms(rest)) - _PADDING:
        return min(said, key=[k for k, _ in _SMALL_TALK].index), ""
    return None, rest


# Each reply, and the lead-in of the example questions that follow it (left out when the corpus offers none).
_SMALL_TALK_REPLIES = {
    "greeting": ("Hello! I answer questions from my documents ({scope}) and cite the passages I use.", "You could ask:"),
    "thanks": ("You're welcome! Ask me anything else my documents ({scope}) cover.", "For example:"),
    "ack": ("All right. Ask me anything else my documents ({scope}) cover.", "For example:"),
    "bye": ("Goodbye, and good luck with your career plans!", ""),
    "about": (
        "I'm Career Advisor, an offline assistant: I answer questions using only my documents ({scope}), and I cite "
        "the passages I use.",
        "You could ask:",
    ),
    "how": ("I'm doing well, thanks for asking! Shall we look at my documents ({scope})?", "For example:"),
}


class _Judge:
    """The answer model's reading of one question's best statements, computed once, when first needed: whether
    one answers it (the answerability threshold) and whether one answers it surely enough to overrule a refusal
    of the rules (the stricter cut; both chosen on the training data's validation split)."""

    def __init__(self, model: AnswerModel, query: Query, history: Sequence[dict[str, Any]], best: Sequence[Statement]) -> None:
        self.model, self.query, self.history, self.statements = model, query, history, list(best)
        self.overruled = False  # set once a refusal has given way

    @functools.cached_property
    def _probabilities(self) -> np.ndarray:
        best = self.statements
        previous = previous_user(self.history) if self.query.followup else ""
        titles, texts, dense = [s.hit.chunk.title for s in best], [s.unit.embed for s in best], [s.dense for s in best]
        return self.model.probabilities(self.query.question, previous, titles, texts, dense)

    @property
    def best(self) -> Statement:
        """The statement the model reads as the likeliest answer."""
        return self.statements[int(np.argmax(self._probabilities))]

    def answered(self) -> bool:
        """Whether one of the statements answers the question."""
        return self._reaches(self.model.calibration.threshold)

    def sure(self) -> bool:
        """Whether one of the statements answers the question surely (the overrule cut), remembering nothing."""
        return self._reaches(self.model.calibration.overrule)

    def overrules(self) -> bool:
        """Whether one of the statements answers the question surely enough to overrule a refusal (remembered)."""
        self.overruled = self.overruled or self._reaches(self.model.calibration.overrule)
        return self.overruled

    def _reaches(self, cut: float) -> bool:
        p = self._probabilities
        return bool(len(p)) and float(p.max()) >= cut
