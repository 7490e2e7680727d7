"""Metric functions over arrays of truths and predictions, no model code."""

from __future__ import annotations

from typing import Sequence

import numpy as np


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
