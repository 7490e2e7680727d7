"""Metric functions: plain numpy over arrays, no model code."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro-F1, and recall and F1 per class (as recall_<class>, f1_<class>)."""
    true = np.asarray(y_true, dtype=object)
    pred = np.asarray(y_pred, dtype=object)
    out: dict[str, float] = {"accuracy": float(np.mean(true == pred)) if len(true) else 0.0}
    f1s = []
    for cls in sorted(set(true.tolist())):
        tp = float(np.sum((pred == cls) & (true == cls)))
        recall = tp / max(1.0, float(np.sum(true == cls)))
        precision = tp / max(1.0, float(np.sum(pred == cls)))
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[f"recall_{cls}"] = recall
        out[f"f1_{cls}"] = f1
        f1s.append(f1)
    out["macro_f1"] = float(np.mean(f1s)) if f1s else 0.0
    return out


def forecast_metrics(
    actual: Sequence[float], forecast: Sequence[float], naive_mae: float | None = None
) -> dict[str, float]:
    """WAPE (sum |error| / sum actual), bias (sum error / sum actual) and its size, and, given the
    in-sample MAE of a one-step naive forecast, MASE."""
    a = np.asarray(actual, dtype=float)
    f = np.asarray(forecast, dtype=float)
    err = f - a
    denom = max(float(np.abs(a).sum()), 1e-9)
    bias = float(err.sum() / denom)
    out = {"wape": float(np.abs(err).sum() / denom), "bias": bias, "abs_bias": abs(bias)}
    if naive_mae:
        out["mase"] = float(np.abs(err).mean() / naive_mae)
    return out


def ranking_metrics(
    recommended: Sequence[Sequence[str]], relevant: Sequence[str], k: int, catalog_size: int
) -> dict[str, float]:
    """Hit rate and NDCG at k for one held-out item per user, and catalog coverage."""
    hits, gains, shown = [], [], set()
    for recs, target in zip(recommended, relevant):
        top = list(recs)[:k]
        shown.update(top)
        if target in top:
            hits.append(1.0)
            gains.append(1.0 / np.log2(top.index(target) + 2))
        else:
            hits.append(0.0)
            gains.append(0.0)
    return {
        f"hr_at_{k}": float(np.mean(hits)) if hits else 0.0,
        f"ndcg_at_{k}": float(np.mean(gains)) if gains else 0.0,
        f"coverage_at_{k}": len(shown) / max(1, catalog_size),
    }
