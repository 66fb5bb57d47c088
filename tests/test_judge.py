import json
import shutil

import numpy as np
import pytest

from advisor.config import ANSWER_MODEL_DIR
from advisor.errors import ModelUnavailable
from advisor.judge import AnswerModel

SHIPPED = ("calibration.json", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


@pytest.fixture
def model_copy(tmp_path):
    """A copy of the shipped answer model, to damage."""
    folder = tmp_path / "answer-model"
    folder.mkdir()
    for name in SHIPPED:
        shutil.copy(ANSWER_MODEL_DIR / name, folder / name)
    return folder


def test_the_shipped_model_is_small_fp16_safetensors_with_its_calibration():
    assert (ANSWER_MODEL_DIR / "model.safetensors").stat().st_size <= 50 * 1024 * 1024
    record = json.loads((ANSWER_MODEL_DIR / "calibration.json").read_text(encoding="utf-8"))
    assert json.loads((ANSWER_MODEL_DIR / "config.json").read_text(encoding="utf-8"))["dtype"] == "float16"
    assert 0 < record["threshold"] < 1 and record["metrics"]["validation_questions"] > 0
    calibration = AnswerModel(ANSWER_MODEL_DIR).calibration
    assert calibration.threshold == record["threshold"] and calibration.max_tokens == record["max_tokens"]
    assert calibration.threshold <= calibration.overrule == record["overrule"] < 1


@pytest.mark.parametrize("missing", ["model.safetensors", "calibration.json"])
def test_a_missing_file_names_the_file_and_the_fix(model_copy, missing):
    (model_copy / missing).unlink()
    with pytest.raises(ModelUnavailable, match=f"{missing}.*missing.*python -m advisor train"):
        AnswerModel(model_copy).load()


def test_damaged_weights_or_calibration_name_the_fix_instead_of_crashing(model_copy):
    (model_copy / "calibration.json").write_text('{"combine": {"model": 1.0}}', encoding="utf-8")
    with pytest.raises(ModelUnavailable, match="calibration.*unreadable.*git checkout advisor/data/answer-model"):
        AnswerModel(model_copy).load()
    shutil.copy(ANSWER_MODEL_DIR / "calibration.json", model_copy / "calibration.json")
    weights = model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])  # a download or copy cut short
    with pytest.raises(ModelUnavailable, match="cannot be loaded.*python -m advisor train"):
        AnswerModel(model_copy).load()


@pytest.mark.slow
def test_the_model_reads_the_answering_statement_as_the_answer():
    model = AnswerModel(ANSWER_MODEL_DIR)
    question = "how much do elevator mechanics make when they start out"
    titles = ["Elevator Mechanic Careers"] * 3
    texts = [
        "Apprentice elevator mechanics earn about $28 an hour in their first year.",
        "Elevator mechanics install, repair and inspect elevators, escalators and moving walkways.",
        "Most states require elevator mechanics to hold a license.",
    ]
    p = model.probabilities(question, "", titles, texts, [0.6, 0.55, 0.5])
    assert int(np.argmax(p)) == 0 and p[0] >= model.calibration.threshold
    unrelated = model.probabilities("what do pastry chefs earn in paris", "", titles[:1], texts[2:], [0.2])
    assert unrelated[0] < model.calibration.threshold
