"""The classic candidates (TF-IDF + logistic regression, gradient boosting, EASE, item-kNN)
on small slices of real data: fitted, written, loaded through their pyfunc's
``load_context``, they answer in the transformer's output format with exactly the numbers
of the reference baseline fitted on the same rows; the forecaster's quantiles are ordered
and calibrated; their folders hold no pickle, and a tampered file is refused."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import skops.io
import torch
from skops.io.exceptions import UntrustedTypesFoundException

from pipeline.datasets import (FamilyData, interaction_question, interactions_dataset, review_question,
                               sales_question, sales_validation, split_reviews, split_sales)
from pipeline.demo_data import load_movielens, load_orange_juice, load_reviews
from pipeline.evaluation import baselines
from pipeline.families import get_family
from pipeline.series import SERIES_KEY
from pipeline.settings import ForecasterTraining, RecommenderTraining, SentimentTraining
from pipeline.training.classic import forecast, ranking, text
from pipeline.training.forecaster.predict import OUTPUT_COLUMNS

KEYS = [*SERIES_KEY, "date"]
SALES_HP = ForecasterTraining(horizon=4)
RANKING_HP = RecommenderTraining()


def load(pyfunc_class: type, model_dir: Path):
    model = pyfunc_class()
    model.load_context(SimpleNamespace(artifacts={"model_dir": str(model_dir)}))
    return model


# ------------------------------------------------------------------ data and fitted models


@pytest.fixture(scope="module")
def reviews() -> FamilyData:
    frame = load_reviews().sample(400, random_state=0)
    return split_reviews(frame.assign(created_at=pd.date_range("2026-01-01", periods=len(frame), freq="h")), 0.25, 0)


@pytest.fixture(scope="module")
def sales() -> FamilyData:
    """The orange-juice panel of 2 stores (22 weekly series of about 110 weeks); the last
    4 weeks held out, as one window."""
    oj = load_orange_juice()
    oj = oj[oj["store_id"].isin(sorted(oj["store_id"].unique())[:2])]
    dates = pd.Timestamp("2026-01-05") + pd.to_timedelta((oj["week"] - oj["week"].min()) * 7, unit="D")
    return split_sales(oj.drop(columns="week").assign(date=dates), horizon=SALES_HP.horizon, min_train_periods=8)


@pytest.fixture(scope="module")
def interactions() -> FamilyData:
    """MovieLens-100k's first 300 customers on its 400 most rated films (a small item
    matrix keeps EASE's inversions quick)."""
    frame, catalog = load_movielens()
    frame = frame[frame["sku"].isin(frame["sku"].value_counts().index[:400])]
    frame = frame[frame["customer_id"] <= "C0300"]
    frame = frame.assign(timestamp=pd.to_datetime(frame["seconds"], unit="s"))
    return interactions_dataset({"interactions": frame, "catalog": catalog}, RANKING_HP)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, reviews: FamilyData, sales: FamilyData,
            interactions: FamilyData) -> dict[str, tuple[Path, dict]]:
    """Each classic candidate's model folder and the settings its ``fit`` returned."""
    fitted = {}
    for name, fit, data, hp in (("tfidf", text.fit, reviews, SentimentTraining()),
                                ("gbm", forecast.fit, sales, SALES_HP),
                                ("ease", ranking.fit_ease, interactions, RANKING_HP),
                                ("item_knn", ranking.fit_item_knn, interactions, RANKING_HP)):
        folder = tmp_path_factory.mktemp(name) / "model"
        fitted[name] = folder, fit(data, hp, folder, 0)
    return fitted


# ------------------------------------------------------------------ the family records


@pytest.mark.parametrize("family, name", [("sentiment", "tfidf"), ("forecaster", "gbm"),
                                          ("recommender", "ease"), ("recommender", "item_knn")])
def test_the_family_records_name_these_models(family: str, name: str):
    record = get_family(family)
    candidate = record.candidate(name)
    assert candidate.kind == "classic"
    assert callable(record.function_named(candidate.fit))
    assert record.pyfunc(name).__class__.__module__.startswith("pipeline.training.classic")


# ------------------------------------------------------------------ sentiment


def test_tfidf_answers_as_the_transformer_with_the_baseline_s_numbers(folders, reviews: FamilyData):
    from pipeline.training.sentiment import SentimentModel

    folder, settings = folders["tfidf"]
    assert settings == {"analyzer": "word", "ngram_range": "1-2"}  # English reviews: word n-grams
    out = load(text.TfidfSentimentModel, folder).predict(None, review_question(reviews))
    pd.testing.assert_frame_equal(out, baselines.tfidf_logistic_regression(reviews))
    # the transformer's own columns, from its pyfunc asked about no review
    transformer = SentimentModel()
    transformer.config = {"classes": sorted(reviews.train["label"].unique()), "max_length": 8}
    transformer.scoring_precision = "float32"
    transformer.device = torch.device("cpu")
    assert list(out.columns) == list(transformer.predict(None, pd.DataFrame({"text": []})).columns)
    assert np.allclose(out.filter(like="p_").sum(axis=1), 1.0)
    assert (out["label"] == out.filter(like="p_").idxmax(axis=1).str[2:]).all()


def test_tfidf_answers_no_review_with_no_row(folders):
    out = load(text.TfidfSentimentModel, folders["tfidf"][0]).predict(None, pd.DataFrame({"text": []}))
    assert out.empty and list(out.columns) == ["label", "score", "p_great", "p_other"]


def test_majority_class_predicts_the_most_frequent_training_label(reviews: FamilyData):
    out = baselines.majority_class(reviews)
    shares = reviews.train["label"].value_counts(normalize=True)
    assert list(out.columns) == ["label", "score", *[f"p_{c}" for c in sorted(shares.index)]]
    assert len(out) == len(reviews.holdout) and (out["label"] == shares.idxmax()).all()
    assert out["score"].iloc[0] == pytest.approx(shares.max())
    assert out[f"p_{shares.idxmin()}"].iloc[0] == pytest.approx(shares.min())


# ------------------------------------------------------------------ forecaster


@pytest.fixture(scope="module")
def gbm(folders) -> forecast.GbmForecasterModel:
    return load(forecast.GbmForecasterModel, folders["gbm"][0])


@pytest.fixture(scope="module")
def gbm_answer(gbm, sales: FamilyData) -> pd.DataFrame:
    return gbm.predict(None, sales_question(sales), {"service_level": 0.95})


def test_gbm_answers_as_the_transformer_with_the_baseline_s_point(folders, gbm_answer: pd.DataFrame,
                                                                  sales: FamilyData):
    assert folders["gbm"][1] == {"season": 52, "period_days": 7.0, "calibration_windows": 4, "calibrated": True}
    assert list(gbm_answer.columns) == OUTPUT_COLUMNS
    assert len(gbm_answer) == len(sales.holdout) == 22 * SALES_HP.horizon
    base = baselines.gradient_boosting(sales, SALES_HP)
    pd.testing.assert_frame_equal(gbm_answer[[*KEYS, "forecast"]], base[[*KEYS, "forecast"]])
    assert (gbm_answer["p50"] == gbm_answer["forecast"]).all()
    assert (gbm_answer["cum_forecast"] == gbm_answer.groupby(SERIES_KEY)["forecast"].cumsum()).all()


def test_gbm_quantiles_are_ordered_and_cumulative_ones_grow_with_the_lead_time(gbm_answer: pd.DataFrame):
    out = gbm_answer
    for prefix in ("", "cum_"):
        assert (out[f"{prefix}p10"] <= out[f"{prefix}p50"]).all() and (out[f"{prefix}p50"] <= out[f"{prefix}p90"]).all()
        assert (out[f"{prefix}p90"] <= out[f"{prefix}p_service"]).all()
        assert (out[f"{prefix}p10"] < out[f"{prefix}p90"]).mean() > 0.9  # calibrated: a real spread
    for column in [c for c in OUTPUT_COLUMNS if c.startswith("cum_")]:
        assert (out.groupby(SERIES_KEY)[column].diff().dropna() >= 0).all(), column


def test_gbm_p_service_is_exceeded_in_about_one_period_in_twenty(gbm, sales: FamilyData):
    """On the calibration windows, each asked from its own origin by trees fitted before
    the first (as ``fit`` calibrates): the p95 is exceeded in about 5% of the periods."""
    windows = sales_validation(sales, SALES_HP)
    history = windows[0].train[windows[0].train["units"].notna()]
    trees = baselines.fit_gradient_boosting(history, SALES_HP.horizon, 52, 7.0, seed=0)
    answers = [forecast.point_quantiles(forecast.point_forecast(trees, sales_question(w)), gbm.calibration, 0.95)
               .merge(w.holdout[[*KEYS, "units"]], on=KEYS) for w in windows]
    joined = pd.concat(answers, ignore_index=True)
    assert len(joined) == 4 * 22 * SALES_HP.horizon
    assert 0.03 <= (joined["units"] > joined["p_service"]).mean() <= 0.07
    assert 0.05 <= (joined["units"] > joined["p90"]).mean() <= 0.15


def test_gbm_meta_tells_the_inventory_consumer_what_to_ask(gbm):
    assert (gbm.meta.period_days, gbm.meta.horizon) == (7.0, SALES_HP.horizon)
    assert gbm.meta.past_length == 52  # the value a season back is its longest look back


def test_gbm_refuses_more_periods_than_its_horizon_and_answers_none_with_no_row(gbm, sales: FamilyData):
    dates = sorted(sales.holdout["date"].unique())
    longer = pd.date_range(dates[0], periods=SALES_HP.horizon + 1, freq="7D")
    from pipeline.series import forecast_input

    with pytest.raises(ValueError, match="more than the model's horizon"):
        gbm.predict(None, forecast_input(sales.train, list(longer)))
    empty = gbm.predict(None, sales.train)
    assert empty.empty and list(empty.columns) == OUTPUT_COLUMNS


def test_gbm_forecasts_a_series_without_history_as_zero(gbm, sales: FamilyData):
    """As the transformer does; its quantiles keep the calibrated spread around 0."""
    question = sales_question(sales)
    new = question[question["units"].isna()].head(2).assign(store_id="new")
    out = gbm.predict(None, pd.concat([question, new], ignore_index=True))
    assert len(out) == len(sales.holdout) + 2
    assert (out.loc[out["store_id"] == "new", ["forecast", "p50", "p10", "cum_forecast"]] == 0).all().all()


# ------------------------------------------------------------------ recommender


@pytest.mark.parametrize("name, pyfunc_class, baseline, setting", [
    ("ease", ranking.EaseModel, baselines.ease, "lambda"),
    ("item_knn", ranking.ItemKnnModel, baselines.item_knn, "neighbours"),
])
def test_rankers_answer_as_the_transformer_with_the_baseline_s_ranking(folders, interactions: FamilyData, name: str,
                                                                        pyfunc_class: type, baseline, setting: str):
    folder, settings = folders[name]
    expected = baseline(interactions, RANKING_HP)
    assert settings == {setting: expected.attrs["chosen_on_validation"][setting]}
    out = load(pyfunc_class, folder).predict(None, interaction_question(interactions))
    expected.attrs = {}
    pd.testing.assert_frame_equal(out, expected)
    assert list(out.columns) == baselines.RANKING_COLUMNS
    assert list(dict.fromkeys(out["customer_id"])) == list(dict.fromkeys(interactions.holdout["customer_id"]))


@pytest.mark.parametrize("name, pyfunc_class", [("ease", ranking.EaseModel), ("item_knn", ranking.ItemKnnModel)])
def test_rankers_take_top_k_and_serve_the_popular_items_to_a_stranger(folders, interactions: FamilyData, name: str,
                                                                       pyfunc_class: type):
    model = load(pyfunc_class, folders[name][0])
    question = interaction_question(interactions)
    first = question[question["customer_id"] == question["customer_id"].iloc[0]]
    stranger = pd.DataFrame({"customer_id": ["stranger"], "sku": ["not-a-film"], "timestamp": [pd.Timestamp(0)]})
    out = model.predict(None, pd.concat([first, stranger], ignore_index=True), {"top_k": 3})
    assert out.groupby("customer_id")["rank"].apply(list).to_dict() == {first["customer_id"].iloc[0]: [1, 2, 3],
                                                                       "stranger": [1, 2, 3]}
    popular, _ = baselines.item_popularity(interactions.train)
    assert list(out.loc[out["customer_id"] == "stranger", "sku"]) == list(popular[:3])
    assert not set(out.loc[out["customer_id"] != "stranger", "sku"]) & set(first["sku"])


# ------------------------------------------------------------------ safe files


def test_no_model_folder_holds_a_pickle(folders):
    for name, (folder, _) in folders.items():
        for path in folder.iterdir():
            assert path.suffix in {".json", ".npz", ".skops"}, path
            if path.suffix == ".json":
                continue
            with zipfile.ZipFile(path) as archive:  # skops and npz files are zip archives of .npy / JSON
                for member in archive.namelist():
                    assert member.endswith((".npy", ".json")), (path, member)
                    if member.endswith(".npy"):
                        with archive.open(member) as handle:
                            np.lib.format.read_array(handle, allow_pickle=False)


@pytest.mark.parametrize("name, pyfunc_class, file", [("tfidf", text.TfidfSentimentModel, text.MODEL_FILE),
                                                      ("gbm", forecast.GbmForecasterModel, forecast.MODEL_FILE)])
def test_a_skops_file_with_an_untrusted_type_is_refused(folders, tmp_path: Path, name: str, pyfunc_class: type,
                                                        file: str):
    from sklearn.preprocessing import FunctionTransformer

    folder = tmp_path / "model"
    shutil.copytree(folders[name][0], folder)
    skops.io.dump(FunctionTransformer(print), folder / file)  # what a tampered lake could hold
    with pytest.raises(UntrustedTypesFoundException, match="builtins.print"):
        load(pyfunc_class, folder)
    # the real files hold nothing beyond the exact lists each model trusts
    trusted = {"tfidf": text.TRUSTED_TYPES, "gbm": forecast.TRUSTED_TYPES}[name]
    assert set(skops.io.get_untrusted_types(file=folders[name][0] / file)) <= set(trusted)
