"""Holdout scores of one set of predictions, per kind of task: ``score(predictions, data,
hp) -> metrics`` (``hp``: the family's training settings). The metric arithmetic itself is
in :mod:`pipeline.evaluation.metrics`.

Beside each score, ``units(predictions, data, hp) -> (unit, {metric: (stats, statistic)})``
splits the primary metrics into additive statistics per holdout unit, for the paired
bootstrap against the champion (:mod:`pipeline.evaluation.bootstrap`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipeline.datasets import FamilyData
from pipeline.evaluation.bootstrap import Units, macro_f1, ratio
from pipeline.evaluation.metrics import (
    classification_metrics,
    clustered_share_se,
    forecast_metrics,
    hits_and_gains,
    interval_metrics,
    mase,
    naive_scale,
    ranking_metrics,
)
from pipeline.series import SERIES_KEY, clean, default_season, infer_period_days, sales_frame, series_keys, to_grid


def classification_score(predictions: pd.DataFrame, data: FamilyData, hp: Any = None) -> dict[str, float]:
    """Accuracy, macro-F1, and recall and F1 per class of the predicted ``label``."""
    return classification_metrics(data.holdout["label"].astype(str).tolist(),
                                  predictions["label"].astype(str).tolist())


def classification_units(predictions: pd.DataFrame, data: FamilyData, hp: Any = None) -> tuple[str, dict[str, Units]]:
    """Per review: [tp, fp, fn] of each label (macro-F1), and [correct, 1] (accuracy)."""
    truth = data.holdout["label"].astype(str).to_numpy()
    pred = predictions["label"].astype(str).to_numpy()
    labels = sorted(set(truth) | set(pred))  # as classification_metrics: the union of both
    columns = []
    for label in labels:
        is_true, is_pred = truth == label, pred == label
        columns += [is_true & is_pred, ~is_true & is_pred, is_true & ~is_pred]
    correct = np.column_stack([truth == pred, np.ones(len(truth), bool)]).astype(float)
    return "review", {"macro_f1": (np.column_stack(columns).astype(float), macro_f1(len(labels))),
                      "accuracy": (correct, ratio(0, 1))}


def forecast_score(predictions: pd.DataFrame, data: FamilyData, hp: Any) -> dict[str, float]:
    """WAPE, bias, MASE (per series, seasonal-naive scale), p10-p90 coverage and the share
    of periods whose demand exceeded the service-level quantile (``p_service``; a
    prediction without one is its own point forecast), over the holdout."""
    metrics = forecast_table(join_forecast(predictions, data), series_scales(data, hp), 1 - hp.service_level)
    metrics["series_unscored"] = len(series_keys(data.train)) - len(series_keys(data.holdout))
    return metrics


def join_forecast(predictions: pd.DataFrame, data: FamilyData) -> pd.DataFrame:
    """The holdout rows with their predictions; every holdout row must have one."""
    keys = [*SERIES_KEY, "date"]
    holdout = sales_frame(data.holdout)[[*keys, "units"]]
    columns = [c for c in ("forecast", "p10", "p90", "p_service") if c in predictions]
    preds = predictions[[*keys, *columns]].assign(
        store_id=predictions["store_id"].astype(str), sku=predictions["sku"].astype(str),
        date=pd.to_datetime(predictions["date"]).astype("datetime64[ns]"))
    joined = holdout.merge(preds, on=keys, how="left", validate="one_to_one")
    missing = int(joined["forecast"].isna().sum())
    if missing:
        raise ValueError(f"{missing} of {len(joined)} holdout rows have no forecast")
    for column in ("p10", "p90", "p_service"):
        if column not in joined:
            joined[column] = joined["forecast"]
    return joined


def forecast_units(predictions: pd.DataFrame, data: FamilyData, hp: Any = None) -> tuple[str, dict[str, Units]]:
    """Per series (its weeks are not independent): [sum |error|, sum |actual|] (WAPE)."""
    joined = join_forecast(predictions, data)
    frame = joined[SERIES_KEY].assign(error=(joined["forecast"] - joined["units"]).abs(), actual=joined["units"].abs())
    sums = frame.groupby(SERIES_KEY, sort=True)[["error", "actual"]].sum()
    return "series", {"wape": (sums.to_numpy(float), ratio(0, 1))}


def series_scales(data: FamilyData, hp: Any) -> dict[tuple[str, str], float]:
    """Each series' MASE scale: its in-sample seasonal-naive MAE on the period grid."""
    train = clean(data.train)
    train = train[train["units"].notna()]
    period = infer_period_days(train)
    season = getattr(hp, "season_length", 0) or default_season(period)
    return {(str(s), str(k)): naive_scale(to_grid(rows, period).units, season)
            for (s, k), rows in train.groupby(SERIES_KEY, sort=False)}


def forecast_table(joined: pd.DataFrame, scales: dict[tuple[str, str], float], exceed_target: float) -> dict[str, float]:
    """The forecast metrics of a joined frame (all of the holdout, or one store's rows)."""
    actual = joined["units"].to_numpy(float)
    metrics = forecast_metrics(actual, joined["forecast"].to_numpy(float))
    errors = (joined["forecast"] - joined["units"]).abs().groupby([joined["store_id"], joined["sku"]], sort=False)
    groups = [(key, e.to_numpy(float)) for key, e in errors]
    metrics["mase"], metrics["mase_series"] = mase([e for _, e in groups], [scales.get(k, 0.0) for k, _ in groups])
    metrics.update(interval_metrics(actual, *(joined[c].to_numpy(float) for c in ("p10", "p90", "p_service"))))
    # the service-level rule's noise: periods, not rows, are independent (a week's shock hits every series)
    metrics["exceed_share_se"] = clustered_share_se(actual > joined["p_service"].to_numpy(float),
                                                    pd.to_datetime(joined["date"]).to_numpy())
    metrics["exceed_target"] = exceed_target
    metrics["series_scored"], metrics["holdout_rows"] = len(groups), len(joined)
    return metrics


def _ranked_lists(predictions: pd.DataFrame, data: FamilyData) -> tuple[list[list[str]], list[str]]:
    """Each holdout customer's recommendations in rank order (empty without any), and the
    held-out item."""
    ranked = predictions.assign(customer_id=predictions["customer_id"].astype(str)).sort_values(
        ["customer_id", "rank"], kind="stable"
    )
    lists = {c: g.astype(str).tolist() for c, g in ranked.groupby("customer_id", sort=False)["sku"]}
    customers = data.holdout["customer_id"].astype(str).tolist()
    return [lists.get(c, []) for c in customers], data.holdout["sku"].astype(str).tolist()


def ranking_score(predictions: pd.DataFrame, data: FamilyData, hp: Any) -> dict[str, float]:
    """Ranking metrics at ``hp.top_k`` over holdout customers; a customer without
    predictions is a miss."""
    if data.catalog is not None and len(data.catalog):
        catalog_size = int(data.catalog["sku"].nunique())
    else:
        catalog_size = int(data.train["sku"].nunique())
    return ranking_metrics(*_ranked_lists(predictions, data), hp.top_k, catalog_size)


def ranking_units(predictions: pd.DataFrame, data: FamilyData, hp: Any) -> tuple[str, dict[str, Units]]:
    """Per holdout customer: [hit, 1] (hit rate) and [gain, 1] (NDCG) at ``hp.top_k``."""
    hits, gains = hits_and_gains(*_ranked_lists(predictions, data), hp.top_k)
    ones = np.ones(len(hits))
    return "customer", {f"hr_at_{hp.top_k}": (np.column_stack([hits, ones]), ratio(0, 1)),
                        f"ndcg_at_{hp.top_k}": (np.column_stack([gains, ones]), ratio(0, 1))}
