"""Holdout scores of one set of predictions, per kind of task: ``score(predictions, data,
hp) -> metrics`` (``hp``: the family's training settings). The metric arithmetic itself is
in :mod:`pipeline.evaluation.metrics`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipeline.datasets import FamilyData
from pipeline.evaluation.metrics import classification_metrics, forecast_metrics, ranking_metrics
from pipeline.series import SERIES_KEY, clean


def classification_score(predictions: pd.DataFrame, data: FamilyData, hp: Any = None) -> dict[str, float]:
    """Accuracy, macro-F1, and recall and F1 per class of the predicted ``label``."""
    return classification_metrics(data.holdout["label"].astype(str).tolist(),
                                  predictions["label"].astype(str).tolist())


def naive_mae(train: pd.DataFrame) -> float:
    """Mean absolute one-step naive error over all train histories (the MASE scale)."""
    frame = clean(train)
    frame = frame[frame["units"].notna()]
    errors = frame.groupby(SERIES_KEY, sort=False)["units"].diff().abs().dropna()
    return float(errors.mean()) if len(errors) else 0.0


def forecast_score(predictions: pd.DataFrame, data: FamilyData, hp: Any = None) -> dict[str, float]:
    """WAPE, bias, MASE and 80% interval coverage of ``predictions`` on the holdout."""
    keys = [*SERIES_KEY, "date"]
    holdout = data.holdout[[*keys, "units"]].copy()
    preds = predictions[[*keys, "forecast", "p10", "p90"]].copy()
    for frame in (holdout, preds):
        frame["store_id"] = frame["store_id"].astype(str)
        frame["sku"] = frame["sku"].astype(str)
        frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    joined = holdout.merge(preds, on=keys, how="left", validate="one_to_one")
    missing = int(joined["forecast"].isna().sum())
    if missing:
        raise ValueError(f"{missing} of {len(joined)} holdout rows have no forecast")
    actual = joined["units"].to_numpy(float)
    metrics = forecast_metrics(actual, joined["forecast"].to_numpy(float), naive_mae(data.train) or None)
    inside = (actual >= joined["p10"].to_numpy(float)) & (actual <= joined["p90"].to_numpy(float))
    metrics["coverage_80"] = float(inside.mean()) if len(inside) else 0.0
    return metrics


def ranking_score(predictions: pd.DataFrame, data: FamilyData, hp: Any) -> dict[str, float]:
    """Ranking metrics at ``hp.top_k`` over holdout customers; a customer without
    predictions is a miss."""
    ranked = predictions.assign(customer_id=predictions["customer_id"].astype(str)).sort_values(
        ["customer_id", "rank"], kind="stable"
    )
    lists = {c: g.astype(str).tolist() for c, g in ranked.groupby("customer_id", sort=False)["sku"]}
    customers = data.holdout["customer_id"].astype(str).tolist()
    targets = data.holdout["sku"].astype(str).tolist()
    if data.catalog is not None and len(data.catalog):
        catalog_size = int(data.catalog["sku"].nunique())
    else:
        catalog_size = int(data.train["sku"].nunique())
    return ranking_metrics([lists.get(c, []) for c in customers], targets, hp.top_k, catalog_size)
