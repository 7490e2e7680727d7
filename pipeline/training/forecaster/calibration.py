"""Calibrated forecast distributions (split-conformal, normalised residuals).

The model's sample paths give, per series and period, a location ``m`` and a scale ``s``
of log1p(units). On calibration windows that the model did not train on (the last
periods before the holdout, each forecast from everything before it), the residuals ``(log1p(actual) - m) / s`` are
collected per step ahead, for each period's demand and for the cumulative demand from
the first step to that one (the demand over a lead time). Their quantiles, kept with the
model, replace the model's own spread: the forecast's quantile at level q is
``expm1(m + s * Q_step(q))``. So a p95 is exceeded in about 5% of periods on data like
the calibration window's, whatever the model's sample paths said, while ``s`` keeps what
the model knows about which series are more uncertain.
"""

from __future__ import annotations

import numpy as np

LEVELS = np.arange(1, 1000) / 1000  # the residual quantiles kept: every 0.1%
MIN_SCALE = 0.02  # floor of s in log1p units, so near-constant sample paths do not divide by ~0
MIN_RESIDUALS = 50  # a step with fewer residuals uses all steps' residuals pooled
KINDS = ("period", "cumulative")


def location_scale(logs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over the samples axis (1) of log1p-scale paths."""
    return logs.mean(axis=1), np.maximum(logs.std(axis=1), MIN_SCALE)


def cumulative_logs(logs: np.ndarray) -> np.ndarray:
    """log1p of the cumulative units of each path, step by step (axis 2)."""
    return np.log1p(np.cumsum(np.expm1(logs), axis=2))


def fit(residuals: dict[str, list[list[float]]]) -> dict:
    """Quantile tables from residuals per kind and step (index 0: one step ahead)."""
    table: dict = {"levels": len(LEVELS), "counts": {}}
    for kind in KINDS:
        steps = [np.asarray(r, float) for r in residuals[kind]]
        pooled = np.concatenate(steps) if steps else np.zeros(0)
        if len(pooled) < MIN_RESIDUALS:
            raise ValueError(f"{len(pooled)} {kind} residuals: too few to calibrate (need {MIN_RESIDUALS})")
        table[kind] = [np.quantile(r if len(r) >= MIN_RESIDUALS else pooled, LEVELS).round(5).tolist()
                       for r in steps]
        table["counts"][kind] = [len(r) for r in steps]
    return table


def quantile(table: dict, kind: str, step: np.ndarray, m: np.ndarray, s: np.ndarray, level: float) -> np.ndarray:
    """Calibrated quantile at ``level`` in units, per row (``step``: 0-based steps ahead)."""
    grid = np.asarray(table[kind])
    z = np.array([np.interp(level, LEVELS, grid[min(h, len(grid) - 1)]) for h in range(len(grid))])
    return np.expm1(m + s * z[np.minimum(step, len(grid) - 1)])
