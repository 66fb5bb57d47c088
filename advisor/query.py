"""Turn a question and its chat history into a retrieval query: follow-ups blended in, users' words mapped to the corpus's."""

from __future__ import annotations

import re
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any

from advisor.lexical import terms

# Users rarely use the articles' words ("pay" vs "salary", "junior" vs "entry level"). Each row adds the
# corpus's words when the question uses a user's word for the same thing; it is vocabulary, not answers.
VOCABULARY: tuple[tuple[str, str], ...] = (
    (r"\b(pay|pays|paid|payed|salar\w*|earn\w*|wages?|income|compensation|money|remuneration|"
     r"how much (do|does|can|will) .{0,40}\bmake)\b", "salary pay"),
    (r"\b(well[- ]paid|lucrative|high[- ]paying|good money|pays? well)\b", "lucrative highest-paying"),
    (r"\b(junior|juniors|entry[- ]?level|beginners?|new grads?|graduates?|freshers?|starting|starters?|"
     r"first job|no experience)\b", "entry level"),
    (r"\b(seniors?|experienced|veterans?|principal|staff engineers?)\b", "senior level"),
    (r"\b(mid|middle|mid[- ]career|intermediate|a few years)\b", "mid-level"),
    (r"\bboot[- ]?camps?\b", "boot camp"),
    (r"\b(ph\.?\s?d\.?s?|doctorates?|doctoral)\b", "Ph.D. degree"),
    (r"\b(masters?|msc|m\.sc|graduate degrees?)\b", "master's degree"),
    (r"\b(bachelors?|bsc|b\.sc|undergrad\w*)\b", "bachelor's degree undergraduate"),
    (r"\b(degrees?|college|university|universities|studies|study|studied|majors?|diplomas?|schooling|"
     r"academic)\b", "education degree"),
    (r"\b(wom[ae]n|females?|girls?)\b", "gender female"),
    (r"\b(gender|diversity|sex)\b", "gender male female"),
    (r"\b(m[ae]n|males?|guys)\b", "gender male"),
    (r"\b(ages?|old|older|young|younger|years old|generation)\b", "age group"),
    (r"\b(happy|happiness|satisf\w*|enjoy\w*|fulfil\w*|content with|like their (job|work)s?)\b",
     "job satisfaction satisfied"),
    (r"\b(start[- ]?ups?|new companies|young companies)\b", "startups"),
    (r"\b(countr\w+|nations?|where in the world)\b", "country"),
    (r"\b(uk|u\.k\.?|britain|british|england)\b", "united kingdom"),
    (r"\b(?-i:US|USA|U\.S\.A?\.?)(?=\W|$)|\b(america|american|the states)\b", "united states"),
    (r"\b(share|percent\w*|proportion|fraction|portion|ratio|how many|what part)\b", "percentage"),
    (r"\b(job market|openings?|postings?|vacanc\w+|demand|job ads?|regions?|continents?|"
     r"where are the jobs)\b", "job postings demand region"),
    (r"\b(hires?|hiring|employ\w*|employers?|works? in|working in)\b", "employing employed"),
    (r"\b(depend\w*|rely|relies|work together|collaborat\w*|team up|teams? up|teamwork|cooperat\w*)\b",
     "collaborate rely"),
    (r"\b(in common|similar\w*|overlap\w*|alike|shared?)\b", "share common overlap"),
    (r"\b(replac\w*|instead of|substitut\w*|alternatives?|in place of|without a degree)\b", "equivalent instead"),
    (r"\b(people|persons?|humans?|manual\w*|supervis\w*)\b", "human"),
    (r"\b(by themselves|on their own|by itself|on its own|autonomous\w*|self[- ]learning)\b", "on their own"),
    (r"\b(certs?|certificat\w*|credentials?|certified)\b", "certification"),
    (r"\b(languages?|programming|coding|code)\b", "programming language coding"),
    (r"\b(sectors?|industr\w+|fields?|domains?|verticals?|kinds of companies|types of companies)\b", "industry industries"),
    (r"\b(market|growth|grow\w*|outlook|future|prospects?|forecasts?|projected|predicted)\b",
     "market growth future outlook demand"),
    (r"\b(misconceptions?|myths?|misunderst\w+|false beliefs?|misbeliefs?|believe wrongly|people get wrong)\b",
     "misconception"),
    (r"\b(duties|duty|responsibilit\w+|tasks?|day[- ]to[- ]day|daily work|job involve\w*|spend (their|the|most|all)"
     r"( of their)? (time|days?)|what do(es)? .{0,40}\bdo\b)\b", "responsibilities duties"),
    (r"\b(skills?|skillset|abilities|competenc\w+|need to (know|learn)|learn)\b", "skills"),
    (r"\b(maths?|mathematical)\b", "mathematics"),
    (r"\b(love|loves|passionate|passion|fond of|fascinated)\b", "passion"),
    (r"\b(soft skills?|people skills?|interpersonal|teamwork)\b", "communication collaboration"),
    (r"\bmles?\b", "machine learning engineer"),
    (r"\bml\b", "machine learning"),
    (r"\bai\b", "artificial intelligence"),
    (r"\b(interviews?|interviewing)\b", "interview questions"),
    (r"\b(ethic\w*|moral\w*|bias\w*|fairness|privacy)\b", "ethical considerations"),
    (r"\b(challeng\w*|difficult\w*|hardest|struggles?|obstacles?)\b", "challenges"),
    (r"\b(differen\w+|vs\.?|versus|compare\w*|comparison|distinguish\w*|same as)\b", "difference"),
    (r"\b(secure|security|stable|stability|safe career)\b", "job security stable"),
    (r"\b(tools?|frameworks?|librar\w+|tensorflow|pytorch|scikit[- ]learn|sklearn)\b", "libraries frameworks"),
    (r"\b(cloud|aws|gcp|distributed)\b", "cloud computing"),
    (r"\b(big data|zettabytes?|how much data)\b", "big data"),
)
_VOCABULARY = tuple((re.compile(pattern, re.IGNORECASE), words) for pattern, words in VOCABULARY)

# A question that leans on the previous one: "And at the senior level?", "What about Germany?", "Is that true?"
_LEADING = re.compile(r"^\s*(and|but|also|so|or|then|what about|how about|what of|same for|and what about|"
                      r"what if|how does that|how do those|compared to|in comparison)\b", re.IGNORECASE)
_REFERRING = re.compile(r"\b(it|its|they|them|their|that|those|these|this|there|he|she|his|her|such|"
                        r"the same|which one|that one|this one|the one|those ones)\b", re.IGNORECASE)
# How much each kind of query word counts when ranking passages and choosing sentences: the user's own
# words most, the corpus's words mapped from them less, an earlier question's words (in a follow-up) least.
OWN_WEIGHT, MAPPED_WEIGHT, HISTORY_WEIGHT, HISTORY_MAPPED_WEIGHT = 1.0, 0.6, 0.5, 0.3


@dataclass(frozen=True)
class Query:
    """What retrieval and answer composition work from."""

    question: str  # the user's words, stripped
    text: str  # the text to embed: earlier questions of a follow-up, then this one
    weights: dict[str, float]  # stemmed term -> weight, for BM25 and for choosing sentences
    own: frozenset[str]  # stems from this question itself (with its vocabulary), not from the history
    followup: bool
    mapped: frozenset[str] = frozenset()  # stems of the user's words that the vocabulary translated


def message_text(content: Any) -> str:
    """Text of a chat message's content: a string, or a list of {"type": "text", "text": ...} blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    if isinstance(content, Sequence):
        return " ".join(message_text(part) for part in content)
    return ""


def _translations(text: str) -> list[tuple[set[str], str]]:
    """(stems of the user's words matched, the corpus's words for them) for each vocabulary row that applies."""
    found = []
    for pattern, words in _VOCABULARY:
        matches = [m.group() for m in pattern.finditer(text)]
        if matches:
            found.append(({t for m in matches for t in terms(m)}, words))
    return found


def _corpus_words(translations: list[tuple[set[str], str]]) -> str:
    return " ".join(dict.fromkeys(words for _, words in translations))


def expand(text: str) -> str:
    """The corpus's words for the user's words found in ``text`` (empty when none apply)."""
    return _corpus_words(_translations(text))


def is_followup(question: str, known: Container[str] = ()) -> bool:
    """Whether a question needs the previous one to make sense: it refers back ("What about …", "that"), or
    it is short and, when the corpus's stems are ``known``, uses only words the corpus knows. "How do I bake
    bread?" after a salary question is a new topic, not a follow-up."""
    if _LEADING.search(question) or _REFERRING.search(question):
        return True
    words = set(terms(question))
    translated = {t for matched, _ in _translations(question) for t in matched}
    return len(words) <= 2 and (not known or all(w in known or w in translated for w in words))


def build_query(question: str, history: Sequence[dict[str, Any]] = (), known: Container[str] = ()) -> Query:
    """The query for ``question``, blending in earlier user questions when it is a follow-up.

    ``known`` holds the corpus's stems: a user's word the corpus never uses ("myths") is stood in for
    by its translation ("misconception") at full weight.
    """
    question = " ".join(question.split())
    earlier = [message_text(m.get("content")) for m in history if m.get("role") == "user"]
    earlier = [" ".join(e.split()) for e in earlier if e.strip()]
    followup = bool(earlier) and is_followup(question, known)
    context: list[str] = []
    if followup:
        # Walk back to the question that set the topic; "And senior?" after "And mid-level?" needs the one before.
        for previous in reversed(earlier[-3:]):
            context.insert(0, previous)
            if not is_followup(previous, known):
                break
    earlier_translations = [_translations(previous) for previous in context]
    weights: dict[str, float] = {}
    for previous, previous_translations in zip(context, earlier_translations):
        for term in terms(_corpus_words(previous_translations)):
            weights[term] = max(weights.get(term, 0.0), HISTORY_MAPPED_WEIGHT)
        for term in terms(previous):
            weights[term] = max(weights.get(term, 0.0), HISTORY_WEIGHT)
    # The current question's words replace whatever weight they had from earlier turns.
    translations = _translations(question)
    current: dict[str, float] = {}
    for matched, words in translations:
        weight = OWN_WEIGHT if known and not any(t in known for t in matched) else MAPPED_WEIGHT
        for term in terms(words):
            current[term] = max(current.get(term, 0.0), weight)
    # A word the vocabulary translates is one concept with its translation ("duties" = "responsibilities"),
    # so it counts as much as the translation, not more.
    translated = {t for matched, _ in translations for t in matched}
    for term in terms(question):
        current[term] = MAPPED_WEIGHT if term in translated else OWN_WEIGHT
    weights.update(current)
    own = terms(f"{question} {_corpus_words(translations)}")
    # The mapped vocabulary feeds BM25 only: appended to the embedded text it lowered hit@1 on the dev set.
    text = " ".join([*context, question])
    # Words translated in the earlier questions of a follow-up ("juniors", "earn") are judged by their
    # translations too.
    translated |= {t for found in earlier_translations for matched, _ in found for t in matched}
    corpus_words = set(terms(" ".join(_corpus_words(found) for found in [*earlier_translations, translations])))
    return Query(question=question, text=text, weights=weights, own=frozenset(own), followup=followup,
                 mapped=frozenset(translated - corpus_words))
