"""Metric functions over arrays of truths and predictions, no model code."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

# which way each metric improves: every other metric is better higher
LOWER_IS_BETTER = frozenset({"wape", "mase", "abs_bias"})


def better(metric: str, a: float, b: float) -> bool:
    """True when ``a`` is strictly better than ``b`` for this metric."""
    return a < b if metric in LOWER_IS_BETTER else a > b


def worse_by(metric: str, value: float, reference: float, relative: bool = False) -> float:
    """How much worse ``value`` is than ``reference`` in the metric's direction (negative:
    better): the difference, or with ``relative`` a share of the reference (0 against a
    reference of 0). WAPE 0.44 against 0.40: 0.04, relative 0.10; macro-F1 0.80 against
    0.85: 0.05, relative 0.059."""
    difference = value - reference if metric in LOWER_IS_BETTER else reference - value
    if not relative:
        return difference
    return difference / abs(reference) if reference else 0.0


def best_first(metric: str, value: float | None) -> float:
    """Sort key: the best value of ``metric`` first, a missing or NaN value last."""
    if value is None or math.isnan(value):
        return math.inf
    return value if metric in LOWER_IS_BETTER else -value


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro-F1 over the union of true and predicted labels, and recall and F1
    of each true class (as recall_<class>, f1_<class>), from scikit-learn."""
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    true, pred = [str(v) for v in y_true], [str(v) for v in y_pred]
    if not true:
        return {"accuracy": 0.0, "macro_f1": 0.0}
    labels = sorted(set(true) | set(pred))
    recalls = recall_score(true, pred, labels=labels, average=None, zero_division=0.0)
    f1s = f1_score(true, pred, labels=labels, average=None, zero_division=0.0)
    out: dict[str, float] = {"accuracy": float(accuracy_score(true, pred))}
    classes = set(true)
    for label, recall, f1 in zip(labels, recalls, f1s):
        if label in classes:
            out[f"recall_{label}"], out[f"f1_{label}"] = float(recall), float(f1)
    out["macro_f1"] = float(np.mean(f1s))
    return out


def forecast_metrics(actual: Sequence[float], forecast: Sequence[float]) -> dict[str, float]:
    """WAPE (sum |error| / sum actual) and bias (sum error / sum actual) and its size."""
    a = np.asarray(actual, dtype=float)
    f = np.asarray(forecast, dtype=float)
    err = f - a
    denom = max(float(np.abs(a).sum()), 1e-9)
    bias = float(err.sum() / denom)
    return {"wape": float(np.abs(err).sum() / denom), "bias": bias, "abs_bias": abs(bias)}


def interval_metrics(actual: np.ndarray, p10: np.ndarray, p90: np.ndarray, p_service: np.ndarray) -> dict[str, float]:
    """Share of periods inside p10-p90 (``coverage_80``) and above the service-level
    quantile (``exceed_share``); NaN without periods."""
    if not len(actual):
        return {"coverage_80": float("nan"), "exceed_share": float("nan")}
    return {"coverage_80": float(((actual >= p10) & (actual <= p90)).mean()),
            "exceed_share": float((actual > p_service).mean())}


def clustered_share_se(hits: np.ndarray, clusters: np.ndarray) -> float:
    """The standard error of the share of ``hits`` (booleans) when the rows of one cluster
    move together (the periods of a holdout: a chain-wide promotion or a holiday hits every
    series in the same week): the cluster-robust (sandwich) estimate over the clusters' sums,
    with the small-sample factor C / (C - 1); NaN with fewer than two clusters."""
    frame = pd.DataFrame({"hit": np.asarray(hits, float), "cluster": np.asarray(clusters)})
    sums = frame.groupby("cluster")["hit"].agg(["sum", "size"])
    c, n = len(sums), float(sums["size"].sum())
    if c < 2 or not n:
        return float("nan")
    share = sums["sum"].sum() / n
    residual = (sums["sum"] - share * sums["size"]).to_numpy(float)
    return float(np.sqrt(c / (c - 1) * (residual ** 2).sum()) / n)


def mase(abs_errors: Sequence[Sequence[float]], scales: Sequence[float]) -> tuple[float, int]:
    """Mean absolute scaled error: each series' mean absolute error over its in-sample
    (seasonal-)naive MAE, averaged over the series; series whose scale is 0 or unknown
    are left out. Returns the MASE (NaN when no series has a scale) and the series used."""
    ratios = [float(np.mean(e)) / s for e, s in zip(abs_errors, scales) if len(e) and s and s > 0]
    return (float(np.mean(ratios)) if ratios else float("nan")), len(ratios)


def naive_scale(units: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal-naive forecast on a series' period grid (NaN where a
    period has no row): only pairs of observed periods ``season`` apart count, so gaps are
    not differenced as if adjacent. A series with no such pair (shorter than a season)
    falls back to lag 1. 0 when no pair exists at all."""
    for lag in (season, 1):
        if len(units) > lag:
            diffs = np.abs(units[lag:] - units[:-lag])
            diffs = diffs[~np.isnan(diffs)]
            if len(diffs):
                return float(diffs.mean())
    return 0.0


def hits_and_gains(recommended: Sequence[Sequence[str]], relevant: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per user: 1 when the held-out item is in the top k, and its NDCG gain 1/log2(rank+1)."""
    hits, gains = np.zeros(len(relevant)), np.zeros(len(relevant))
    for i, (recs, target) in enumerate(zip(recommended, relevant)):
        top = list(recs)[:k]
        if target in top:
            hits[i], gains[i] = 1.0, 1.0 / np.log2(top.index(target) + 2)
    return hits, gains


def ranking_metrics(
    recommended: Sequence[Sequence[str]], relevant: Sequence[str], k: int, catalog_size: int
) -> dict[str, float]:
    """Hit rate and NDCG at k for one held-out item per user, and catalog coverage."""
    hits, gains = hits_and_gains(recommended, relevant, k)
    shown = {item for recs in recommended for item in list(recs)[:k]}
    return {
        f"hr_at_{k}": float(hits.mean()) if len(hits) else 0.0,
        f"ndcg_at_{k}": float(gains.mean()) if len(gains) else 0.0,
        f"coverage_at_{k}": len(shown) / max(1, catalog_size),
    }
