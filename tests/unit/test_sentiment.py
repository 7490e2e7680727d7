from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.training.core import RunOptions
from pipeline.datasets import FamilyData
from pipeline.evaluation.baselines import tfidf_logistic_regression
from pipeline.evaluation.scoring import classification_score
from pipeline.settings import SentimentTraining
from pipeline.training import sentiment

GOOD = ["Delicious, my kids love it", "Great taste and fresh", "Best coffee I have had", "Lovely tea, will buy again"]
BAD = ["Stale and tasteless", "Arrived broken, awful", "Too salty, threw it away", "Not worth the money"]


def _data(n: int = 8) -> FamilyData:
    texts = (GOOD + BAD) * (n // 8)
    labels = (["great"] * 4 + ["other"] * 4) * (n // 8)
    train = pd.DataFrame({"text": texts, "label": labels})
    return FamilyData(train, train.copy())


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sentiment") / "model_dir"
    hp = SentimentTraining(max_length=32, batch_size=8, epochs=3, learning_rate=5e-4, early_stopping_patience=0)
    history = sentiment.fine_tune(_data(16), hp, RunOptions(), folder, None, seed=1)
    assert history.steps == 6 and len(history.epochs) == 3
    return folder


def test_pyfunc_round_trip_gives_a_label_and_probabilities(model_dir, tmp_path):
    path = tmp_path / "pyfunc"
    mlflow.pyfunc.save_model(str(path), python_model=sentiment.SentimentModel(),
                             artifacts={"model_dir": str(model_dir)}, pip_requirements=["torch"])
    out = mlflow.pyfunc.load_model(str(path)).predict(pd.DataFrame({"text": GOOD + BAD + [""]}))
    assert list(out.columns) == ["label", "score", "p_great", "p_other"]
    assert len(out) == 9 and set(out["label"]) <= {"great", "other"}
    np.testing.assert_allclose(out["p_great"] + out["p_other"], 1.0, rtol=1e-5)
    # a few steps at a high learning rate are enough to separate these on the training texts
    assert (out["label"].iloc[:8] == ["great"] * 4 + ["other"] * 4).mean() >= 0.75
    # a day without unlabelled reviews asks about none: an empty answer with the same columns
    none = mlflow.pyfunc.load_model(str(path)).predict(pd.DataFrame({"text": pd.Series([], dtype=str)}))
    assert list(none.columns) == list(out.columns) and len(none) == 0


def test_warm_start_refuses_a_model_with_other_labels(model_dir, tmp_path):
    data = _data()
    data.train["label"] = data.train["label"].map({"great": "pos", "other": "neg"})
    with pytest.raises(ValueError, match="other label values"):
        sentiment.fine_tune(data, SentimentTraining(epochs=0), RunOptions(), tmp_path / "m", model_dir, 1)


def test_a_single_label_value_is_a_clear_error(tmp_path):
    data = _data()
    data.train["label"] = "great"
    with pytest.raises(ValueError, match="at least two label values"):
        sentiment.fine_tune(data, SentimentTraining(), RunOptions(), tmp_path / "m", None, 1)


def _amazon_reviews() -> FamilyData:
    """The real Amazon fine-food reviews with the split the data set ships with
    (modeldata's training_data, 4,000 rows, and testing_data, 1,000 rows)."""
    from pipeline.demo_data import load_reviews

    reviews = load_reviews()
    is_test = reviews["review_id"].str.startswith("AFF-te-")
    return FamilyData(reviews[~is_test].reset_index(drop=True), reviews[is_test].reset_index(drop=True))


def test_baseline_and_score_agree_on_a_perfect_prediction():
    data = _amazon_reviews()
    assert (len(data.train), len(data.holdout)) == (4000, 1000)
    assert set(data.train["review_id"]).isdisjoint(data.holdout["review_id"])
    perfect = pd.DataFrame({"label": data.holdout["label"]})
    assert classification_score(perfect, data)["accuracy"] == 1.0
    # scored on the 1,000 held-out reviews it never saw: measured accuracy 0.803, macro-F1
    # 0.785 (on its own training rows it scores 0.937 / 0.931). Always saying the majority
    # label ("great", 658 of 1,000) would give accuracy 0.658 and macro-F1 0.397.
    score = classification_score(tfidf_logistic_regression(data), data)
    majority = data.holdout["label"].value_counts(normalize=True).max()
    assert score["macro_f1"] > 0.75 and score["accuracy"] > majority + 0.1
    assert min(score["recall_great"], score["recall_other"]) > 0.7  # both classes, not one


def test_fp32_scoring_pads_batches_to_multiples_of_16_with_the_same_answer(model_dir, monkeypatch):
    """The fewer batch shapes keep scoring's memory down; the extra columns are masked, so
    in fp32 the answer is the one of exact-width batches (short texts and real Amazon reviews)."""
    monkeypatch.setenv("RETAIL_SCORING_PRECISION", "fp32")
    # 64 rows a batch, shortest first: 16 short texts alone in the first, 100 reviews after them
    texts = pd.DataFrame({"text": (GOOD + BAD) * 8 + _amazon_reviews().holdout["text"].iloc[:100].tolist()})
    model = sentiment.SentimentModel()
    model.load_context(type("Context", (), {"artifacts": {"model_dir": str(model_dir)}})())
    plain, widths = sentiment._bucketed_batches, []
    monkeypatch.setattr(sentiment, "_bucketed_batches",
                        lambda *a: [widths.append(b["input_ids"].shape[1]) or b for b in plain(*a)])
    padded, padded_widths = model.predict(None, texts), widths[:]
    monkeypatch.setattr(sentiment, "SCORING_PAD_MULTIPLE", 1)
    widths.clear()
    exact = model.predict(None, texts)
    assert all(w % 16 == 0 for w in padded_widths) and any(w % 16 for w in widths), (padded_widths, widths)
    assert (padded["label"] == exact["label"]).all()
    np.testing.assert_allclose(padded["p_great"], exact["p_great"], atol=1e-6)
