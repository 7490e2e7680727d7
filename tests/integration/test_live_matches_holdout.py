"""Live and promotion metrics agree when the live truth is the holdout itself (issue 29,
"done when (e)").

For each family, on small real data: two reference models (baselines, so that nothing is
trained here) answer the holdout question exactly as evaluation asks it (the forecaster's
windows each from its own origin: :func:`pipeline.evaluation.evaluate.ask`); their answers
are kept as what two versions issued, on the day each question was asked; then the
holdout's truth arrives through the real ingest as dated drops of the feed contract. The
live metric of each version (:mod:`pipeline.monitoring.live`, from the validated
partitions) must equal the holdout metric of the family's score function.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pandas as pd
import pytest

from pipeline import zones
from pipeline.datasets import FamilyData
from pipeline.demo_data import load_movielens, load_orange_juice, load_reviews
from pipeline.evaluation import baselines
from pipeline.evaluation.evaluate import ask
from pipeline.families import get_family
from pipeline.ingest.history import import_history
from pipeline.lake import Lake
from pipeline.monitoring.issued import keep_issued
from pipeline.settings import ForecasterTraining, load_settings

D0 = date(2026, 10, 1)  # the last day before the holdout's truth starts to arrive


def day(n: int) -> date:
    return D0 + timedelta(days=n)


def _lakes(root: Path) -> tuple[Lake, Lake]:
    return Lake((root / "landing").as_uri()), Lake((root / "lake").as_uri())


def _drop(landing: Lake, feed: str, when: date, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    landing.write_bytes(f"{zones.landing_folder(landing, feed, when)}/{feed}.parquet", buffer.getvalue())


def _ingest(landing: Lake, lake: Lake) -> None:
    result = import_history(landing, lake, load_settings().ingest)
    assert not result.rejected and result.rows_quarantined == 0, result.summary()


def _holdout_answers(family: str, data: FamilyData, model: Callable[[FamilyData, object], pd.DataFrame],
                     hp: object) -> tuple[list[FamilyData], list[pd.DataFrame]]:
    """The questions evaluation asks about ``data``'s holdout (one per window) and the
    model's answer to each."""
    record = get_family(family)
    windows = record.function("windows")(data, hp) if record.windows else [data]
    return windows, [model(window, hp) for window in windows]


def _live(family: str, lake: Lake, until: date, since: date, hp: object) -> pd.DataFrame:
    return get_family(family).function("live_units")(lake, until, since, hp)


def _live_metrics(family: str, units: pd.DataFrame, hp: object) -> dict[str, float]:
    return get_family(family).function("live_metrics")(units, hp)


def _holdout_metrics(family: str, answers: pd.DataFrame, data: FamilyData, hp: object) -> dict[str, float]:
    return get_family(family).function("score")(answers, data, hp)


# ------------------------------------------------------------------ forecasts

STORES, SKUS = ("2", "5", "8"), ("OJ01", "OJ02")


def naive(data: FamilyData, hp: ForecasterTraining) -> pd.DataFrame:
    """The last value: seasonal naive with a season of one period."""
    return baselines.seasonal_naive(data, hp.model_copy(update={"season_length": 1}))


FORECASTERS = {"1": baselines.seasonal_naive, "2": naive}


def test_live_forecast_metrics_equal_the_holdout_metrics_over_every_lead(tmp_path: Path):
    family, hp = "forecaster", load_settings().training.forecaster
    oj = load_orange_juice()
    oj = oj[oj["store_id"].isin(STORES) & oj["sku"].isin(SKUS)]
    # the real weeks, re-dated so that the holdout's first week is the week after D0
    first_holdout_week = oj["week"].max() - hp.evaluation_windows * hp.horizon + 1
    sales = oj.assign(date=[pd.Timestamp(D0 + timedelta(weeks=int(w - first_holdout_week + 1))) for w in oj["week"]])
    sales = sales.drop(columns="week").reset_index(drop=True)
    data = get_family(family).function("build")({"sales": sales}, hp)
    assert len(data.holdout) and pd.to_datetime(data.train["date"]).max() <= pd.Timestamp(D0)

    # each window asked from its origin and issued on that day, as the inventory plan would
    landing, lake = _lakes(tmp_path)
    answers = {}
    for version, model in FORECASTERS.items():
        windows, parts = _holdout_answers(family, data, model, hp)
        assert len(windows) == hp.evaluation_windows
        for window, part in zip(windows, parts):
            origin = pd.to_datetime(window.train["date"]).max().date()
            keep_issued(lake, family, origin, version, part.assign(p_service=part["forecast"])[
                ["store_id", "sku", "date", "forecast", "p10", "p90", "p_service"]])
        answers[version] = ask(lambda window, m=model: m(window, hp), windows)

    # the history, then each window's sales the day after its last week: after the window's
    # forecasts were issued, on the day the next window's are
    _drop(landing, "sales", D0, data.train)
    arrivals = []
    for window in windows:
        arrivals.append((pd.to_datetime(window.holdout["date"]).max() + pd.Timedelta(days=1)).date())
        _drop(landing, "sales", arrivals[-1], window.holdout)
    _ingest(landing, lake)

    units = _live(family, lake, arrivals[-1], arrivals[0], hp)
    slicer = get_family(family).function("slices")
    for version in FORECASTERS:
        mine = units[units["version"] == version]
        holdout = _holdout_metrics(family, answers[version], data, hp)
        # one unit per holdout row, each at its lead in its window: 1..horizon
        assert len(mine) == holdout["holdout_rows"] == len(data.holdout)
        assert set(mine["lead"]) == set(range(1, hp.horizon + 1))
        live = _live_metrics(family, mine, hp)
        for metric in ("wape", "bias", "coverage_80", "exceed_share"):
            assert live[metric] == pytest.approx(holdout[metric]), (version, metric)
        # and per store, as the holdout's slices
        stores = slicer(answers[version], data, hp)["store"]
        assert set(stores) == set(mine["slice"]) == set(STORES)
        for store, rows in mine.groupby("slice"):
            live_store = _live_metrics(family, rows, hp)
            assert len(rows) == stores[store]["n"]
            assert live_store["wape"] == pytest.approx(stores[store]["metric"]), (version, store)
            assert live_store["bias"] == pytest.approx(stores[store]["bias"]), (version, store)
    # the two versions were told apart
    assert _live_metrics(family, units[units["version"] == "1"], hp)["wape"] != pytest.approx(
        _live_metrics(family, units[units["version"] == "2"], hp)["wape"])


# ------------------------------------------------------------------ reviews

LABELLERS = {"1": baselines.majority_class, "2": baselines.tfidf_logistic_regression}


def test_live_review_metrics_equal_the_holdout_metrics(tmp_path: Path):
    family, hp = "sentiment", load_settings().training.sentiment
    reviews = load_reviews().iloc[:500]
    # written an hour apart up to D0, in source order
    reviews = reviews.assign(created_at=[datetime.combine(D0, time(0)) - timedelta(hours=len(reviews) - i)
                                         for i in range(len(reviews))])
    data = get_family(family).function("build")({"reviews": reviews}, hp)
    assert len(data.holdout) >= 50

    # the holdout's reviews are scored on D0+1 (as review insights keeps them), their labels
    # come on D0+2
    landing, lake = _lakes(tmp_path)
    answers = {}
    for version, model in LABELLERS.items():
        _, (answers[version],) = _holdout_answers(family, data, model, hp)
        keep_issued(lake, family, day(1), version,
                    pd.DataFrame({"review_id": data.holdout["review_id"], "label": answers[version]["label"]}))
    _drop(landing, "reviews", D0, data.train)
    _drop(landing, "reviews", day(1), data.holdout.assign(label=None))
    _drop(landing, "reviews", day(2), data.holdout)
    _ingest(landing, lake)

    units = _live(family, lake, day(2), day(1), hp)
    for version in LABELLERS:
        mine = units[units["version"] == version]
        assert sorted(mine["unit"]) == sorted(data.holdout["review_id"])
        holdout = _holdout_metrics(family, answers[version], data, hp)
        assert _live_metrics(family, mine, hp) == pytest.approx(holdout)
    assert _live_metrics(family, units[units["version"] == "1"], hp)["macro_f1"] != pytest.approx(
        _live_metrics(family, units[units["version"] == "2"], hp)["macro_f1"])


# ------------------------------------------------------------------ recommendations

RANKERS = {"1": baselines.popularity, "2": baselines.item_knn}


def test_live_hit_rate_equals_the_holdout_hit_rate_of_the_next_item(tmp_path: Path):
    family, hp = "recommender", load_settings().training.recommender
    interactions, catalog = load_movielens()
    customers = sorted(interactions["customer_id"].unique())[:150]
    interactions = interactions[interactions["customer_id"].isin(customers)]
    interactions = interactions.assign(timestamp=pd.to_datetime(interactions.pop("seconds"), unit="s"))
    data = get_family(family).function("build")({"interactions": interactions, "catalog": catalog}, hp)
    assert len(data.holdout) >= 100

    # the lists each version serves the holdout's customers on D0
    landing, lake = _lakes(tmp_path)
    answers = {}
    for version, model in RANKERS.items():
        _, (answers[version],) = _holdout_answers(family, data, model, hp)
        keep_issued(lake, family, D0, version, answers[version][["customer_id", "sku", "rank"]])

    def dated(rows: pd.DataFrame, when: date) -> pd.DataFrame:
        return rows.assign(timestamp=[pd.Timestamp(datetime.combine(when, time(8))) + pd.Timedelta(minutes=i)
                                      for i in range(len(rows))])

    # the train history re-dated to end the day before D0, order kept; each holdout customer's
    # held-out item on one of the three days after D0; their later items (the time-split
    # view's) after that: not the next item, so not scored
    columns = ["customer_id", "sku", "timestamp", "event", "value"]
    source = interactions.set_index(["customer_id", "sku"])[["event", "value"]]
    train = data.train.join(source, on=["customer_id", "sku"])
    shift = pd.Timestamp(datetime.combine(day(-1), time(23))) - train["timestamp"].max()
    _drop(landing, "interactions", day(-1), train.assign(timestamp=train["timestamp"] + shift)[columns])
    holdout = data.holdout.join(source, on=["customer_id", "sku"]).reset_index(drop=True)
    for n in (1, 2, 3):
        _drop(landing, "interactions", day(n), dated(holdout[holdout.index % 3 == n - 1], day(n))[columns])
    assert data.recent is not None and len(data.recent)
    _drop(landing, "interactions", day(4), dated(data.recent.join(source, on=["customer_id", "sku"]), day(4))[columns])
    _ingest(landing, lake)

    units = _live(family, lake, day(4), day(1), hp)
    truth = data.holdout.set_index("customer_id")["sku"]
    for version in RANKERS:
        mine = units[units["version"] == version]
        customers = mine["unit"].str.split("|").str[0]
        assert sorted(customers) == sorted(data.holdout["customer_id"])  # one unit each: the next item
        assert (mine["sku"].to_numpy() == truth.loc[customers].to_numpy()).all()
        live = _live_metrics(family, mine, hp)[f"hr_at_{hp.top_k}"]
        holdout = _holdout_metrics(family, answers[version], data, hp)[f"hr_at_{hp.top_k}"]
        assert 0 < live == pytest.approx(holdout), version
    # the two versions served different lists
    assert not answers["1"][["customer_id", "sku"]].equals(answers["2"][["customer_id", "sku"]])
