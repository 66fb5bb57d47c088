"""Judge whether statements answer a question: the trained answer model (a small cross-encoder), loaded once."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advisor.config import ANSWER_MODEL_DIR, quiet_environment
from advisor.errors import ModelUnavailable
from advisor.train import model_input, statement_input

_FIX = "restore it with `git checkout advisor/data/answer-model` or retrain it with `python -m advisor train`"


@dataclass(frozen=True)
class Calibration:
    """How the model's score and the bi-encoder's cosine become one probability, and the answerability and overrule
    cuts on it (all fitted on the training data's validation split by `advisor train`, never on an eval set)."""

    model: float
    dense: float
    bias: float
    threshold: float  # a question is answerable when its best statement's probability reaches this
    overrule: float  # a refusal of the answerer's gives way when its best statement's probability reaches this
    max_tokens: int

    def probability(self, logits: np.ndarray, dense: np.ndarray) -> np.ndarray:
        """P(statement answers) from the model's logits and the statements' cosines with the question."""
        return 1 / (1 + np.exp(-(self.model * logits + self.dense * dense + self.bias)))


class AnswerModel:
    """The cross-encoder in ``directory`` (safetensors weights, tokenizer, calibration.json), loaded on first use."""

    def __init__(self, directory: Path = ANSWER_MODEL_DIR) -> None:
        self.directory = directory
        self._lock = threading.Lock()  # one forward pass at a time: torch already uses every core for one

    @functools.cached_property
    def calibration(self) -> Calibration:
        """The calibration record shipped beside the weights."""
        path = self.directory / "calibration.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            combine = data["combine"]
            return Calibration(
                float(combine["model"]),
                float(combine["dense"]),
                float(combine["bias"]),
                float(data["threshold"]),
                float(data["overrule"]),
                int(data["max_tokens"]),
            )
        except FileNotFoundError:
            raise ModelUnavailable(f"the answer model's calibration {path} is missing; {_FIX}") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelUnavailable(f"the answer model's calibration {path} is unreadable ({exc}); {_FIX}") from None

    @functools.cached_property
    def _loaded(self) -> tuple[Any, Any]:
        quiet_environment()
        weights = self.directory / "model.safetensors"
        if not weights.is_file():
            raise ModelUnavailable(f"the answer model's weights {weights} are missing; {_FIX}")
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(self.directory))
            # Shipped in fp16 to stay small; computed in fp32, which is what a CPU is fast at.
            model = AutoModelForSequenceClassification.from_pretrained(str(self.directory), dtype=torch.float32)
        except Exception as exc:  # a damaged file surfaces as any of safetensors', json's or transformers' errors
            raise ModelUnavailable(f"the answer model in {self.directory} cannot be loaded ({exc}); {_FIX}") from None
        model.eval()
        return model, tokenizer

    def load(self) -> None:
        """Load weights and calibration now (the app does this before its first question, so a missing or
        damaged file stops it at start with the fix, not in the middle of an answer)."""
        self.calibration  # noqa: B018 - cached
        self._loaded  # noqa: B018 - cached

    def logits(self, question: str, previous: str, statements: Sequence[str]) -> np.ndarray:
        """The model's raw score of each (question, statement) pair."""
        if not statements:
            return np.zeros(0, dtype=np.float32)
        import torch

        model, tokenizer = self._loaded
        asked = model_input(question, previous)
        inputs = tokenizer(
            [asked] * len(statements),
            list(statements),
            truncation="longest_first",
            max_length=self.calibration.max_tokens,
            padding=True,
            return_tensors="pt",
        )
        with self._lock, torch.inference_mode():
            return model(**inputs).logits.squeeze(-1).float().numpy()

    def probabilities(
        self, question: str, previous: str, titles: Sequence[str], texts: Sequence[str], dense: Sequence[float]
    ) -> np.ndarray:
        """P(answers ``question``) for each statement (``texts`` under ``titles``, with their cosines ``dense``)."""
        statements = [statement_input(title, text) for title, text in zip(titles, texts)]
        return self.calibration.probability(self.logits(question, previous, statements), np.asarray(dense, dtype=np.float32))


@functools.lru_cache(maxsize=4)
def get_answer_model(directory: Path = ANSWER_MODEL_DIR) -> AnswerModel:
    """One AnswerModel per folder per process."""
    return AnswerModel(directory)
