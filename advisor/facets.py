"""What a question pins down (the job, place, employer or year it names), and whether a statement is about that."""

from __future__ import annotations

import functools
import re
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

from advisor.lexical import STOPWORDS, terms
from advisor.query import lexicon, phrase_pattern

_WORD = re.compile(r"[A-Za-z0-9][\w'’.&-]*")
_YEAR = re.compile(r"\b(19[5-9]\d|20\d\d)\b")
# A job named as the asker's own background ("I'm a nurse", "as a developer") is not what they ask about.
_BACKGROUND = re.compile(
    r"\b(i'?m|i am|im|i was|i work as|work(ing|ed)? as|as an?|from|former|formerly|currently|"
    r"been an?)\s+(an?\s+|the\s+)?((\w[\w'’-]*\s+){0,3})$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Facet:
    """Something a question names that its answer must be about: a job ("data scientists"), a place ("Brazil"),
    a sector ("finance"), an employer ("Google") or a year ("2035")."""

    typed: str  # as the user wrote it
    kind: str  # "job" | "place" | "sector" | "employer" | "year"
    variants: tuple[tuple[str, ...], ...]  # stem sequences; a text naming any one of them names the facet
    # For a job with a word before its head ("data scientists"): the ways of saying that word, and the head alone.
    modifier: tuple[tuple[str, ...], ...] = ()
    head: str = ""

    def known(self, vocabulary: Container[str]) -> bool:
        """Whether the corpus uses every word of some way of saying it."""
        return any(all(t in vocabulary for t in variant) for variant in self.variants)

    def named_in(self, words: Sequence[str]) -> bool:
        """Whether the stemmed ``words`` contain one of its variants, its words next to each other."""
        for variant in self.variants:
            n = len(variant)
            if any(tuple(words[i : i + n]) == variant for i in range(len(words) - n + 1)):
                return True
        return False


@functools.lru_cache(maxsize=1)
def _lists() -> dict[str, tuple[str, ...]]:
    """The sections of advisor/data/facets.txt: occupations, levels, places."""
    text = resources.files("advisor").joinpath("data/facets.txt").read_text(encoding="utf-8")
    sections: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            continue
        sections.setdefault(current, []).extend(p.strip() for p in line.split(",") if p.strip())
    return {name: tuple(words) for name, words in sections.items()}


@functools.lru_cache(maxsize=1)
def _name_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    """(pattern, kind) for every place, sector and employer, longest first ("New York" before "York")."""
    lists = _lists()
    # A place in capitals whose lower case is an everyday word ("US" / "us") matches only in capitals.
    named = [(p, "place", p.isupper() and p.lower() in STOPWORDS) for p in lists["places"]]
    named += [(e, "sector", False) for e in lists.get("sectors", ())]
    named += [(e, "employer", False) for e in lists.get("employers", ())]
    named += [(e, "employer", True) for e in lists.get("employers in capitals", ())]
    return tuple((phrase_pattern(name, capitals), kind) for name, kind, capitals in sorted(named, key=lambda n: -len(n[0])))


@functools.lru_cache(maxsize=1)
def _place_pattern() -> re.Pattern[str]:
    """One pattern for every place, longest first ("New York" before "York"): one pass over a whole passage."""
    names = sorted(_lists()["places"], key=len, reverse=True)
    said = [f"(?-i:{re.escape(p)})" if p.isupper() and p.lower() in STOPWORDS else re.escape(p) for p in names]
    return re.compile(rf"(?<![\w'])(?:{'|'.join(said)})(?![\w'])", re.IGNORECASE)


def places(text: str) -> frozenset[frozenset[tuple[str, ...]]]:
    """The places ``text`` names, each as its set of ways of saying it (for whole corpora: one pass per text)."""
    return frozenset(frozenset(_variants(m.group())) for m in _place_pattern().finditer(text))


@functools.lru_cache(maxsize=4096)  # the same words recur in every passage a corpus's qualifiers are read from
def _variants(phrase: str) -> tuple[tuple[str, ...], ...]:
    """Stem sequences meaning ``phrase``: itself and the phrases of its lexicon group ("UK" -> "united kingdom")."""
    found = [tuple(terms(phrase)) or (phrase.lower(),)]
    for patterns, phrases in lexicon():
        if any(p.fullmatch(phrase) for p in patterns):
            found += [tuple(terms(p)) or (p.lower(),) for p in phrases]
    return tuple(dict.fromkeys(v for v in found if v))


def facets(question: str) -> list[Facet]:
    """The jobs, places, sectors, employers and years ``question`` asks about, in order: what it names, less what
    it names as the asker's background ("I'm a nurse", "I'm an analyst at a retail company. Should I …?")."""
    told = _about_the_asker(question)
    return [f for start, f in _named(question) if not any(a <= start < b for a, b in told)]


def named(text: str) -> list[Facet]:
    """The jobs, places, sectors, employers and years any text names (a passage, say), in order."""
    return [f for _, f in _named(text)]


def _named(text: str) -> list[tuple[int, Facet]]:
    """(where, facet) for each thing ``text`` names, in order (a job named as the asker's own left out)."""
    found: list[tuple[int, Facet]] = []
    taken: list[tuple[int, int]] = []
    for pattern, kind in _name_patterns():
        for m in pattern.finditer(text):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue  # "New York" already taken, not "York" again
            taken.append((m.start(), m.end()))
            found.append((m.start(), Facet(m.group(), kind, _variants(m.group()))))
    for m in _YEAR.finditer(text):
        found.append((m.start(), Facet(m.group(), "year", ((m.group(),),))))
    found += _jobs(text)
    return sorted(found, key=lambda pair: pair[0])


@functools.lru_cache(maxsize=1)
def _job_words() -> tuple[frozenset[str], frozenset[str]]:
    """(occupations' head nouns, levels), lower case, from advisor/data/facets.txt."""
    lists = _lists()
    return frozenset(w.lower() for w in lists["occupations"]), frozenset(w.lower() for w in lists["levels"])


def _jobs(text: str) -> list[tuple[int, Facet]]:
    """(where, facet) for each job ``text`` names by an occupation's head noun, with the word before it that says
    which job (a job named as the asker's own left out)."""
    found: list[tuple[int, Facet]] = []
    heads, levels = _job_words()
    words = list(_WORD.finditer(text))
    for i, m in enumerate(words):
        # A job that ends a sentence ("… than librarians.") is matched without its full stop.
        word = m.group().rstrip(".")
        if word.lower() not in heads or _BACKGROUND.search(text[: m.start()]):
            continue
        # The words just before the head say which job it is ("data scientist", "machine learning engineer");
        # a level ("senior"), a function word or the end of a sentence ends them.
        before: list[str] = []
        nxt = m
        for w in reversed(words[max(0, i - 3) : i]):
            lowered = w.group().lower()
            if lowered in STOPWORDS or lowered in levels or lowered.endswith(".") or text[w.end() : nxt.start()].strip():
                break
            before.insert(0, w.group())
            nxt = w
        modifier = _modifier(before)
        head = tuple(terms(word))
        if modifier:
            said = _variants(modifier)
            found.append((m.start(), Facet(f"{modifier} {word}", "job", tuple(v + head for v in said), said, word)))
        else:
            found.append((m.start(), Facet(word, "job", (head,))))
    return found


_SENTENCE = re.compile(r"[^.?!\n]+[.?!\n]*")
_FIRST_PERSON = re.compile(r"\b(i|i'm|im|i've|i'd|my|me|we|we're|our)\b", re.IGNORECASE)


def asked_part(message: str) -> str:
    """The message without its sentences about the asker ("I was an army medic. Can ML engineers work in
    healthcare?" -> "Can ML engineers work in healthcare?")."""
    told = _about_the_asker(message)
    return " ".join(message[a:b] for a, b in zip([0] + [b for _, b in told], [a for a, _ in told] + [len(message)]))


def _about_the_asker(message: str) -> list[tuple[int, int]]:
    """Spans of a message's sentences that tell about the asker rather than ask ("I'm an analyst at a retail
    company. Should I …?"): what they name is background. Only in a message that asks in a sentence of its own."""
    sentences = [(m.start(), m.end(), m.group().strip()) for m in _SENTENCE.finditer(message)]
    if not any(text.endswith("?") for _, _, text in sentences):
        return []
    return [(a, b) for a, b, text in sentences if not text.endswith("?") and _FIRST_PERSON.search(text)]


def as_the_corpus_names(
    asked: Sequence[Facet], qualifiers: Container[tuple[str, ...]], vocabulary: Container[str]
) -> list[Facet]:
    """The facets, each job said as a corpus would say it: the word before a job's head counts only when the
    corpus itself puts it before a job's head ("data scientists"). Otherwise it tells where, how or who
    ("paid librarians", "hires librarians", "the Census librarian job"), and the job is its head alone. A word the
    corpus never uses at all still counts: a job the documents lack ("pediatric nurses") is one they don't cover."""
    said: list[Facet] = []
    for f in asked:
        known = any(all(t in vocabulary for t in v) for v in f.modifier)
        if f.head and known and not any(v in qualifiers for v in f.modifier):
            f = Facet(f.head, "job", (tuple(terms(f.head)),))
        said.append(f)
    return said


def qualifiers(texts: Iterable[str]) -> frozenset[tuple[str, ...]]:
    """The words a corpus puts just before a job's head noun ("data" in "data scientists", "machine learning"
    in "machine learning engineers"), as stem sequences: the words that, in its documents, say which job."""
    found: set[tuple[str, ...]] = set()
    for text in texts:
        for _, f in _jobs(text):
            found.update(f.modifier)
    return frozenset(found)


def _modifier(before: list[str]) -> str:
    """The word (or lexicon phrase, "machine learning") just before a job's head noun."""
    for k in (3, 2):
        if len(before) >= k:
            phrase = " ".join(before[-k:])
            if any(p.fullmatch(phrase) for patterns, _ in lexicon() for p in patterns):
                return phrase
    return before[-1] if before else ""


_US = re.compile(r"\bU\.S\.(?=\W|$)|\bUS\b")


def statement_words(*texts: str) -> list[str]:
    """The stems a facet is looked for in: a statement, its heading, its document's title ("US" kept as "usa",
    which the analyzer would otherwise drop as the pronoun "us"). A "|" between the texts keeps a phrase from
    running across two of them (a title "Librarian" after the line "U.S. Census Bureau" is no "bureau librarian")."""
    stems: list[str] = []
    for text in texts:
        stems += [*terms(_US.sub(" USA ", text)), "|"]
    return stems[:-1]
