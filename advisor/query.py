"""Turn a question and its chat history into a retrieval query: spelling fixed, synonyms added, follow-ups blended in."""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from advisor.lexical import STOPWORDS, terms

# A question that leans on an earlier one (English grammar, true of any corpus): it opens with a
# connective ("And at the senior level?", "What about Germany?") or, being short, refers back with a
# pronoun ("What do they build there?", "Which of those is cheapest?").
_LEADING = re.compile(
    r"^\s*(and|but|also|so|or|then|what about|how about|what of|same for|and what about|"
    r"what if|how does that|how do those|compared to|in comparison|ok and|okay and)\b",
    re.IGNORECASE,
)
_REFERRING = re.compile(
    r"\b(it|its|they|them|their|theirs|that|those|these|this|there|he|she|his|her|such|"
    r"the same|which one|that one|this one|the one|ones|one|others|another|else)\b",
    re.IGNORECASE,
)
SHORT = 4  # content words: at most this many, a question with a pronoun refers back
TERSE = 2  # content words: at most this many, a question in a conversation continues it
MAX_PARTS = 32  # text blocks read from one message's content
# How much each kind of query word counts in BM25 and in judging coverage: the user's own words most,
# the corpus's synonyms of them less, an earlier question's words (in a follow-up) least.
OWN_WEIGHT, SYNONYM_WEIGHT, HISTORY_WEIGHT = 1.0, 0.6, 0.5


@dataclass(frozen=True)
class Query:
    """What retrieval and answer composition work from."""

    question: str  # this question, spelling corrected
    text: str  # the text to embed: earlier questions of a follow-up, then this one
    weights: dict[str, float]  # stemmed term -> weight, for BM25 and for coverage
    own: frozenset[str]  # stems of this question itself
    followup: bool = False
    synonyms: Mapping[str, frozenset[str]] = field(default_factory=dict)  # own stem -> corpus stems meaning the same
    corrected: tuple[tuple[str, str], ...] = ()  # (typed, corrected) words
    previous_answer: str = ""  # the assistant's last reply, in a follow-up (its passages are the likely topic)


def message_text(content: Any, limit: int | None = None) -> str:
    """Text of a chat message's content: a string, or a list of text blocks ({"type": "text", "text": ...}) one
    level deep, as chat clients send them; at most ``limit`` characters, cut before any other work on them."""
    limit = sys.maxsize if limit is None else limit
    if isinstance(content, str):
        return valid_text(content[:limit])
    if isinstance(content, dict):
        text = content.get("text") or content.get("content")
        return valid_text(text[:limit]) if isinstance(text, str) else ""
    if not isinstance(content, Sequence) or isinstance(content, bytes):
        return ""
    parts: list[str] = []
    size = 0
    for part in content[:MAX_PARTS]:
        text = message_text(part, limit - size) if isinstance(part, (str, dict)) else ""  # no deeper than one list
        parts.append(text)
        size += len(text) + 1
        if size >= limit:
            break
    return " ".join(parts)[:limit]


def valid_text(text: str) -> str:
    """``text`` with any lone surrogate (JSON allows "\\ud800", no encoder does) replaced by "?"."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


# --- lexicon ----------------------------------------------------------------------------------


def phrase_pattern(phrase: str, exact_case: bool = False) -> re.Pattern[str]:
    """A pattern matching ``phrase`` as whole words ("US" not inside "USA" or "us'd"); in any case unless
    ``exact_case``."""
    return re.compile(rf"(?<![\w']){re.escape(phrase)}(?![\w'])", 0 if exact_case else re.IGNORECASE)


@functools.lru_cache(maxsize=1)
def lexicon() -> tuple[tuple[tuple[re.Pattern[str], ...], tuple[str, ...]], ...]:
    """The generic careers lexicon (advisor/data/lexicon.txt): (patterns of the group's phrases, the phrases)."""
    groups = []
    text = resources.files("advisor").joinpath("data/lexicon.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        phrases = tuple(p.strip() for p in line.split(",") if p.strip())
        patterns = tuple(phrase_pattern(p, exact_case=p.isupper()) for p in phrases)
        groups.append((patterns, phrases))
    return tuple(groups)


@functools.lru_cache(maxsize=1)
def lexicon_terms() -> frozenset[str]:
    """The stems of every lexicon phrase: career concepts ("remote", "bootcamp"), whichever corpus is loaded."""
    return frozenset(t for _, phrases in lexicon() for phrase in phrases for t in terms(phrase))


def synonyms(
    question: str, known: Container[str], kin: Callable[[Sequence[str]], Mapping[str, Sequence[str]]] | None = None
) -> dict[str, frozenset[str]]:
    """For each stem of the question's words that a lexicon group matches: the stems of the group's other
    phrases that the corpus uses (``known``, every word of a phrase). A phrase's own stems map to all of them.

    ``kin``, when given, maps the words the corpus never uses to corpus words meaning nearly the same (see
    ``kin.Kin.related``): "hires" -> "employ", so the corpus's way of saying it is searched for and counts as saying
    it.
    """
    found: dict[str, set[str]] = {}
    if kin is not None:
        unknown = [w for w in content_words(question) if (stems := terms(w)) and not any(t in known for t in stems)]
        for word, others in kin(unknown).items():  # one lookup for the whole message (see kin.Kin.related)
            related = {t for other in others for t in terms(other) if t in known}
            for stem in terms(word):
                found.setdefault(stem, set()).update(related)
    for patterns, phrases in lexicon():
        matched = [m.group() for pattern in patterns for m in pattern.finditer(question)]
        if not matched:
            continue
        # A phrase stands for its group only where the corpus has all of its words: "work from home" says
        # nothing of "remote" in a corpus that has "work" but not "home".
        group = {t for phrase in phrases if all(t in known for t in terms(phrase)) for t in terms(phrase)}
        for phrase in matched:
            for stem in terms(phrase) or [phrase.lower()]:
                found.setdefault(stem, set()).update(group - {stem})
    return {stem: frozenset(others) for stem, others in found.items() if others}


# --- follow-ups -------------------------------------------------------------------------------


def is_followup(question: str) -> bool:
    """Whether ``question`` leans on the conversation before it (connective, or short with a pronoun, or terse)."""
    words = terms(question)
    if _LEADING.match(question):
        return True
    if len(words) <= SHORT and _REFERRING.search(question):
        return True
    return len(words) <= TERSE


def build_query(
    question: str,
    history: Sequence[dict[str, Any]] = (),
    known: Container[str] = (),
    correct: Any = None,
    kin: Callable[[Sequence[str]], Mapping[str, Sequence[str]]] | None = None,
) -> Query:
    """The query for ``question``, blending in earlier user questions when it is a follow-up.

    ``known`` holds the corpus's stems (synonyms are added only where the corpus uses them); ``correct``,
    when given, maps a question to (corrected question, corrections) — see ``spelling.Speller``; ``kin``, when
    given, finds the corpus's words for a word it lacks (see ``synonyms``).
    """
    question = " ".join(question.split())
    corrected: tuple[tuple[str, str], ...] = ()
    if correct is not None:
        question, corrected = correct(question)
    turns = [(m.get("role"), " ".join(message_text(m.get("content")).split())) for m in history]
    earlier = [text for role, text in turns if role == "user" and text]
    followup = bool(earlier) and is_followup(question)
    context: list[str] = []
    if followup:
        # Walk back to the question that set the topic; "And senior?" after "And mid-level?" needs the one before.
        for previous in reversed(earlier[-3:]):
            if correct is not None:
                previous = correct(previous)[0]
            context.insert(0, previous)
            if not is_followup(previous):
                break
    weights: dict[str, float] = {}
    for previous in context:
        for others in synonyms(previous, known, kin).values():
            for other in others:
                weights[other] = max(weights.get(other, 0.0), HISTORY_WEIGHT * SYNONYM_WEIGHT)
        for term in terms(previous):
            weights[term] = max(weights.get(term, 0.0), HISTORY_WEIGHT)
    # The current question's words replace whatever weight they had from earlier turns.
    own_synonyms = synonyms(question, known, kin)
    for others in own_synonyms.values():
        for other in others:
            weights[other] = max(weights.get(other, 0.0) if other not in terms(question) else 0.0, SYNONYM_WEIGHT)
    own = terms(question)
    for term in own:
        weights[term] = OWN_WEIGHT
    last_answer = next((text for role, text in reversed(turns) if role == "assistant"), "") if followup else ""
    return Query(
        question=question,
        text=" ".join([*context, question]),
        weights=weights,
        own=frozenset(own),
        followup=followup,
        synonyms=own_synonyms,
        corrected=corrected,
        previous_answer=last_answer,
    )


def content_words(text: str) -> list[str]:
    """The question's words as typed, without stopwords (for naming what the documents don't cover)."""
    # A full stop that ends a sentence is not part of its last word ("medic."); one inside a word is ("U.S.").
    words = (w if "." in w[:-1] else w.rstrip(".") for w in re.findall(r"[A-Za-z][\w'’.-]*", text))
    return [w for w in words if w.lower() not in STOPWORDS]
