"""Blends of the transformer and the classic model, on small slices of real data: they answer
in the transformer's format, weight 1 and 0 give back their parts, and the weight is chosen
on the validation windows only (replacing every holdout label leaves it unchanged)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import mlflow.pyfunc  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from pipeline.datasets import (FamilyData, forecast_windows, interaction_question, interaction_validation,  # noqa: E402
                               review_question, review_validation, sales_question, sales_validation, split_interactions,
                               split_reviews, split_sales)
from pipeline.families import FAMILIES  # noqa: E402
from pipeline.settings import ForecasterTraining, RecommenderTraining, SentimentTraining  # noqa: E402
from pipeline.training import blend  # noqa: E402
from pipeline.training.core import RunOptions  # noqa: E402

SEED = 5


@dataclass
class Fitted:
    """A family's data, settings, trained parts and the blend fitted on them."""

    data: FamilyData
    hp: Any
    parts: dict[str, Path]
    blend: dict[str, Any]  # blend.json and the run parameters fit returned
    folder: Path


def _fit(family: str, data: FamilyData, hp: Any, parts: dict[str, Path], model_dir: Path) -> dict[str, Any]:
    record = FAMILIES[family]
    params = record.function_named(record.candidate("blend").fit)(data, hp, model_dir, SEED, parts)
    return {**params, **json.loads((model_dir / blend.BLEND_FILE).read_text())}


def _fitted(family: str, data: FamilyData, hp: Any, parts: dict[str, Path], root: Path) -> Fitted:
    return Fitted(data, hp, parts, _fit(family, data, hp, parts, root / "blend"), root / "blend")


def _classic(family: str, name: str, data: FamilyData, hp: Any, folder: Path) -> Path:
    record = FAMILIES[family]
    record.function_named(record.candidate(name).fit)(data, hp, folder, SEED)
    return folder


def _load(family: str, name: str, folder: Path) -> Any:
    return blend.load_part(family, name, folder)


def _forced(cls: type, fitted: Fitted, weight: float, target: Path) -> Any:
    """The fitted blend with its weight forced (parts and calibration kept), loaded."""
    shutil.copytree(fitted.folder, target)
    config = json.loads((target / blend.BLEND_FILE).read_text())
    config["weights"] = dict(zip(config["parts"], (weight, 1.0 - weight)))
    (target / blend.BLEND_FILE).write_text(json.dumps({**config, "weight": weight}))
    model = cls()
    model.load_context(SimpleNamespace(artifacts={"model_dir": str(target)}))
    return model


def _served(cls: type, fitted: Fitted, folder: Path) -> Any:
    """The blend saved and loaded through MLflow, as it is logged and served."""
    mlflow.pyfunc.save_model(str(folder), python_model=cls(), artifacts={"model_dir": str(fitted.folder)})
    return mlflow.pyfunc.load_model(str(folder))


def _replaced(data: FamilyData, column: str, values) -> FamilyData:
    holdout = data.holdout.copy()
    holdout[column] = values(holdout[column])
    return FamilyData(data.train, holdout, data.catalog, data.plan, data.recent)


def _same_choice(first: dict[str, Any], second: dict[str, Any]) -> None:
    assert first["weight"] == second["weight"] and first["validation"] == second["validation"]


# ------------------------------------------------------------------ the weight, in small


def test_the_best_figure_wins_and_ties_go_to_the_even_blend():
    assert blend.choose_weight({0.0: 0.5, 0.3: 0.7, 1.0: 0.6}, "macro_f1") == 0.3
    assert blend.choose_weight({0.0: 0.5, 0.3: 0.7, 1.0: 0.6}, "wape") == 0.0  # lower is better
    assert blend.choose_weight({w: 0.8 for w in blend.GRID}, "macro_f1") == 0.5
    assert blend.choose_weight({0.2: 0.8, 0.9: 0.8, 0.0: 0.1}, "ndcg_at_10") == 0.2
    assert blend.choose_weight({0.0: float("nan"), 1.0: 0.4}, "wape") == 1.0
    assert blend.choose_weight({}, "wape") == 0.5  # no validation window: an even blend


def test_rank_fusion_follows_the_weight():
    a = pd.DataFrame({"customer_id": ["c"] * 3, "rank": [1, 2, 3], "sku": ["x", "y", "z"], "score": [3.0, 2.0, 1.0]})
    b = pd.DataFrame({"customer_id": ["c"] * 3, "rank": [1, 2, 3], "sku": ["z", "w", "y"], "score": [9.0, 8.0, 7.0]})
    assert blend.fuse_rankings([a, b], [1.0, 0.0], 3)["sku"].tolist() == ["x", "y", "z"]
    assert blend.fuse_rankings([a, b], [0.0, 1.0], 3)["sku"].tolist() == ["z", "w", "y"]
    even = blend.fuse_rankings([a, b], [0.5, 0.5], 2)
    assert even["sku"].tolist() == ["z", "y"] and even["rank"].tolist() == [1, 2]  # in both lists: first
    assert list(even.dtypes) == list(a.dtypes)


# ------------------------------------------------------------------ sentiment


@pytest.fixture(scope="module")
def sentiment_blend(tmp_path_factory) -> Fitted:
    from pipeline.demo_data import load_reviews
    from pipeline.training import sentiment

    reviews = load_reviews().head(4000).sample(240, random_state=0)
    reviews = reviews.assign(created_at=pd.date_range("2026-01-01", periods=len(reviews), freq="h"))
    data = split_reviews(reviews, holdout_fraction=0.2, max_train_rows=0)
    hp = SentimentTraining(max_length=32, batch_size=16, epochs=1, learning_rate=2e-4, validation_fraction=0.25)
    root = tmp_path_factory.mktemp("sentiment-blend")
    history = sentiment.fine_tune(data, hp, RunOptions(), root / "transformer", None, seed=SEED)
    # the transformer never trains on the validation window, also with one epoch
    window = review_validation(data, hp)[0]
    assert history.samples == len(window.train) == len(data.train) - len(window.holdout)
    assert window.holdout["created_at"].min() > window.train["created_at"].max()
    parts = {"transformer": root / "transformer", "tfidf": _classic("sentiment", "tfidf", data, hp, root / "tfidf")}
    return _fitted("sentiment", data, hp, parts, root)


def test_label_blend_answers_as_the_transformer_and_gives_back_its_parts(sentiment_blend, tmp_path):
    fitted = sentiment_blend
    assert fitted.blend["weight"] in blend.GRID and len(fitted.blend["validation"]) == len(blend.GRID)
    question = review_question(fitted.data)
    transformer = _load("sentiment", "transformer", fitted.parts["transformer"]).predict(None, question)
    tfidf = _load("sentiment", "tfidf", fitted.parts["tfidf"]).predict(None, question)
    served = _served(blend.LabelBlend, fitted, tmp_path / "pyfunc").predict(question)
    assert list(served.columns) == list(transformer.columns) and list(served.dtypes) == list(transformer.dtypes)
    np.testing.assert_allclose(served.filter(like="p_").sum(axis=1), 1.0, rtol=1e-5)

    one = _forced(blend.LabelBlend, fitted, 1.0, tmp_path / "w1").predict(None, question)
    pd.testing.assert_frame_equal(one, transformer)
    zero = _forced(blend.LabelBlend, fitted, 0.0, tmp_path / "w0").predict(None, question)
    assert zero["label"].tolist() == tfidf["label"].tolist()
    probabilities = [c for c in tfidf.columns if c != "label"]
    np.testing.assert_allclose(zero[probabilities].to_numpy(float), tfidf[probabilities].to_numpy(float), rtol=1e-6)


def test_label_blend_weight_does_not_see_the_holdout(sentiment_blend, tmp_path):
    fitted = sentiment_blend
    flipped = _replaced(fitted.data, "label", lambda labels: labels.map({"great": "other", "other": "great"}))
    assert (flipped.holdout["label"] != fitted.data.holdout["label"]).all()
    _same_choice(fitted.blend, _fit("sentiment", flipped, fitted.hp, fitted.parts, tmp_path / "flipped"))


# ------------------------------------------------------------------ forecaster

TINY_FORECASTER = dict(horizon=4, context_length=12, epochs=1, batch_size=16, windows_per_series=4, d_model=8,
                       num_samples=20, learning_rate=1e-3, min_batches_per_epoch=0, evaluation_windows=3)


@pytest.fixture(scope="module")
def forecaster_blend(tmp_path_factory) -> Fitted:
    from pipeline.demo_data import load_walmart_weekly  # 7 departments, 143 weeks, holidays as the plan
    from pipeline.training import forecaster

    sales, plan = load_walmart_weekly()
    hp = ForecasterTraining(**TINY_FORECASTER)
    data = split_sales(sales, hp.horizon, 24, plan=plan, windows=hp.evaluation_windows)
    root = tmp_path_factory.mktemp("forecaster-blend")
    forecaster.fine_tune(data, hp, RunOptions(), root / "transformer", None, seed=SEED)
    parts = {"transformer": root / "transformer", "gbm": _classic("forecaster", "gbm", data, hp, root / "gbm")}
    return _fitted("forecaster", data, hp, parts, root)


def test_sales_validation_is_the_transformers_calibration_windows(forecaster_blend):
    data, hp = forecaster_blend.data, forecaster_blend.hp
    windows = sales_validation(data, hp)
    assert len(windows) == 4  # CALIBRATION_WINDOWS of horizon periods, each asked from its own origin
    for window in windows:
        assert window.holdout.groupby(["store_id", "sku"])["date"].nunique().max() == hp.horizon
        assert window.train["date"].max() < window.holdout["date"].min()
    assert windows[-1].holdout["date"].max() == pd.to_datetime(data.train["date"]).max()
    assert pd.to_datetime(data.holdout["date"]).min() > windows[-1].holdout["date"].max()


def test_forecast_blend_answers_as_the_transformer_and_gives_back_its_point_forecasts(forecaster_blend, tmp_path):
    fitted = forecaster_blend
    assert fitted.blend["weight"] in blend.GRID and fitted.blend["calibration"] is not None
    assert fitted.blend["validation_windows"] == 4
    question = sales_question(forecast_windows(fitted.data, fitted.hp)[0])
    params = {"service_level": 0.9}
    transformer = _load("forecaster", "transformer", fitted.parts["transformer"])
    expected = transformer.predict(None, question, params)
    gbm = _load("forecaster", "gbm", fitted.parts["gbm"]).predict(None, question, params)

    loaded = _served(blend.ForecastBlend, fitted, tmp_path / "pyfunc")
    served = loaded.predict(question, params=params)
    assert list(served.columns) == list(expected.columns) and list(served.dtypes) == list(expected.dtypes)
    assert len(served) == len(expected)
    for prefix in ("", "cum_"):
        assert (served[f"{prefix}p10"] <= served[f"{prefix}p50"]).all()
        assert (served[f"{prefix}p50"] <= served[f"{prefix}p90"]).all()
    meta = loaded.unwrap_python_model().meta  # what the inventory plan reads
    assert (meta.period_days, meta.horizon, meta.past_length) == (
        transformer.meta.period_days, transformer.meta.horizon, transformer.meta.past_length)

    keys, points = ["store_id", "sku", "date"], ["forecast", "cum_forecast"]
    for weight, part in ((1.0, expected), (0.0, gbm)):
        answer = _forced(blend.ForecastBlend, fitted, weight, tmp_path / f"w{weight}").predict(None, question, params)
        merged = answer[keys + points].merge(part[keys + points], on=keys, suffixes=("", "_part"))
        assert len(merged) == len(answer) == len(part)
        for column in points:
            np.testing.assert_allclose(merged[column], merged[f"{column}_part"], rtol=1e-9)


def test_forecast_blend_weight_does_not_see_the_holdout(forecaster_blend, tmp_path):
    fitted = forecaster_blend
    replaced = _replaced(fitted.data, "units", lambda units: units[::-1].to_numpy() * 3.0 + 1.0)
    second = _fit("forecaster", replaced, fitted.hp, fitted.parts, tmp_path / "replaced")
    _same_choice(fitted.blend, second)
    assert fitted.blend["calibration"] == second["calibration"]


# ------------------------------------------------------------------ recommender


@pytest.fixture(scope="module")
def recommender_blend(tmp_path_factory) -> Fitted:
    from pipeline.demo_data import load_movielens
    from pipeline.training import recommender

    interactions, catalog = load_movielens()
    interactions = interactions.assign(timestamp=pd.to_datetime(interactions["seconds"], unit="s"))
    # 60 customers and the 300 items they chose most: a small real slice
    customers = sorted(interactions["customer_id"].unique())[:60]
    interactions = interactions[interactions["customer_id"].isin(customers)]
    items = interactions["sku"].value_counts().head(300).index
    interactions = interactions[interactions["sku"].isin(items)]
    data = split_interactions(interactions, catalog[catalog["sku"].isin(items)])
    hp = RecommenderTraining(num_layers=1, epochs=1, max_seq_length=16, batch_size=64, top_k=10, time_split_days=0)
    root = tmp_path_factory.mktemp("recommender-blend")
    trained_on = []
    histories = recommender._histories
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recommender, "_histories",
                      lambda frame, index: trained_on.append(len(frame)) or histories(frame, index))
        recommender.fine_tune(data, hp, RunOptions(), root / "transformer", None, seed=SEED)
    # each validation customer's last training interaction is not trained on
    assert trained_on == [len(interaction_validation(data, hp)[0].train)] and trained_on[0] < len(data.train)
    parts = {"transformer": root / "transformer", "ease": _classic("recommender", "ease", data, hp, root / "ease")}
    return _fitted("recommender", data, hp, parts, root)


def test_ranking_blend_answers_as_the_transformer_and_gives_back_its_parts(recommender_blend, tmp_path):
    fitted = recommender_blend
    assert fitted.blend["weight"] in blend.GRID and len(fitted.blend["validation"]) == len(blend.GRID)
    # the holdout's customers, and one the models never saw (popular items)
    question = interaction_question(fitted.data)
    stranger = question.head(3).assign(customer_id="NEW", sku=["unknown-1", "unknown-2", "unknown-3"])
    question = pd.concat([question, stranger], ignore_index=True)
    params = {"top_k": fitted.hp.top_k}
    expected = _load("recommender", "transformer", fitted.parts["transformer"]).predict(None, question, params)
    ease = _load("recommender", "ease", fitted.parts["ease"]).predict(None, question, params)

    served = _served(blend.RankingBlend, fitted, tmp_path / "pyfunc").predict(question, params=params)
    assert list(served.columns) == list(expected.columns) and list(served.dtypes) == list(expected.dtypes)
    assert served.groupby("customer_id")["rank"].max().eq(fitted.hp.top_k).all()
    assert set(served["customer_id"]) == set(question["customer_id"].astype(str))

    ranked = ["customer_id", "rank", "sku"]
    for weight, part in ((1.0, expected), (0.0, ease)):
        answer = _forced(blend.RankingBlend, fitted, weight, tmp_path / f"w{weight}").predict(None, question, params)
        # in the transformer's dtypes (EASE may write its ids as another string dtype)
        pd.testing.assert_frame_equal(answer[ranked], part[ranked], check_dtype=weight == 1.0,
                                      check_column_type=weight == 1.0)


def test_ranking_blend_weight_does_not_see_the_holdout(recommender_blend, tmp_path):
    fitted = recommender_blend
    other = fitted.data.train["sku"].value_counts().index[-1]
    replaced = _replaced(fitted.data, "sku", lambda skus: pd.Series(other, index=skus.index))
    assert (replaced.holdout["sku"] != fitted.data.holdout["sku"]).any()
    _same_choice(fitted.blend, _fit("recommender", replaced, fitted.hp, fitted.parts, tmp_path / "replaced"))
