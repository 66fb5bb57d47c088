"""Judge whether the documents answer a question: a logistic model over the answerer's signals, fitted by `advisor train`."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

from advisor.errors import ModelUnavailable

ANSWERABILITY_FILE = Path(__file__).resolve().parent / "data" / "answerability.json"
_FIX = "restore it with `git checkout advisor/data/answerability.json` or refit it with `python -m advisor train`"


@dataclass(frozen=True)
class Signals:
    """What the answerer knows about a question once its statements are ranked: how close the best statement and
    passage are in meaning and in words, and what of the question the corpus lacks."""

    lead_dense: float  # cosine of the question and the best statement
    lead_cover: float  # share of the question's weighted words the best statement and its heading contain
    lead_score: float  # the best statement's ranking score
    hit_dense: float  # cosine of the question and the best passage
    hit_score: float  # the best passage's fused retrieval score
    unknown: float  # share of the question's weight carried by words the corpus never uses
    found: float  # share of the question's weight the best statement contains
    facets: int  # jobs, places, employers and years the question names
    unknown_facets: int  # of those, the ones the corpus never mentions
    fitting: bool  # some statement about the named ones is about as close as the best statement
    quantity: bool  # the question asks for a number
    lead_figure: bool  # the best statement gives one
    any_figure: bool  # one of the best five does
    followup: bool
    max_cover: float  # the best word coverage among the best five statements
    words: int  # content words of the question

    def vector(self) -> list[float]:
        """The model's inputs: the signals, then three of their interactions."""
        quantity_without_figure = float(self.quantity and not self.any_figure)
        named_unknown = float(self.unknown_facets > 0)
        named_elsewhere = float(self.facets * (not self.fitting) * (self.unknown_facets == 0))
        return [float(v) for v in astuple(self)] + [quantity_without_figure, named_unknown, named_elsewhere]

    @classmethod
    def names(cls) -> list[str]:
        """The names of ``vector()``'s entries, in order."""
        return [f.name for f in fields(cls)] + ["quantity_without_figure", "named_unknown", "named_elsewhere"]


@dataclass(frozen=True)
class Answerability:
    """P(the documents answer the question) from its signals, and the one threshold below which it is declined."""

    weights: tuple[float, ...]
    bias: float
    threshold: float

    def probability(self, signals: Signals) -> float:
        """The calibrated probability that the best statements answer the question."""
        z = sum(w * x for w, x in zip(self.weights, signals.vector())) + self.bias
        return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))

    def answers(self, signals: Signals) -> bool:
        """Whether the question is answered rather than declined."""
        return self.probability(signals) >= self.threshold

    @classmethod
    def load(cls, path: Path = ANSWERABILITY_FILE) -> Answerability:
        """The fitted model in ``path``; a missing or damaged file names the fix."""
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            names, weights = data["features"], tuple(float(w) for w in data["weights"])
            if names != Signals.names() or len(weights) != len(names):
                raise ValueError(f"it was fitted on other signals ({', '.join(names)})")
            model = cls(weights, float(data["bias"]), float(data["threshold"]))
        except FileNotFoundError:
            raise ModelUnavailable(f"the answerability model {path} is missing; {_FIX}") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelUnavailable(f"the answerability model {path} is unreadable ({exc}); {_FIX}") from None
        if not all(math.isfinite(v) for v in (*model.weights, model.bias, model.threshold)):
            raise ModelUnavailable(f"the answerability model {path} holds a value that is not a number; {_FIX}")
        return model


@functools.lru_cache(maxsize=4)
def get_answerability(path: Path = ANSWERABILITY_FILE) -> Answerability:
    """The answerability model in ``path``, read once."""
    return Answerability.load(path)
