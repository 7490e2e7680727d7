"""Gradient boosting as a forecaster candidate: the reference baseline's trees
(:func:`pipeline.evaluation.baselines.fit_gradient_boosting`) with calibrated quantiles,
served with the transformer forecaster's output (:data:`OUTPUT_COLUMNS`).

The trees give one point forecast per asked period. Its quantiles are calibrated the way
the transformer's are (:mod:`pipeline.training.forecaster.calibration`, split-conformal):
trees fitted on the rows before the family's validation windows
(:func:`pipeline.datasets.sales_validation`, the transformer's calibration windows) forecast
each window from its origin; the residuals ``log1p(actual) - log1p(point)`` per step ahead,
of each period and of the cumulative demand from the window's first period, give the
quantile table (location ``log1p(point)``, scale 1). The saved trees are then refitted on
all of ``data.train``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from pipeline.datasets import FamilyData, sales_question, sales_validation
from pipeline.evaluation.baselines.forecast import (GradientBoosting, fit_gradient_boosting,
                                                    gbm_history_periods, predict_gradient_boosting)
from pipeline.series import SERIES_KEY, clean, default_season, infer_period_days, refuse_beyond_horizon
from pipeline.training.classic.store import dump_sklearn, load_sklearn, read_json, write_json
from pipeline.training.forecaster import calibration
from pipeline.training.forecaster.predict import OUTPUT_COLUMNS

log = logging.getLogger(__name__)

MODEL_FILE = "gbm.skops"
SETTINGS_FILE = "gbm.json"
# types a fitted HistGradientBoostingRegressor holds beyond skops' defaults: its trees, and
# the check of numeric columns that its categorical preprocessing wraps in a partial
TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]
KEYS = [*SERIES_KEY, "date"]


@dataclass(frozen=True)
class GbmMeta:
    """What the inventory consumer reads from a forecaster: the period, the periods it
    forecasts at once, and the history rows a question needs."""

    period_days: float
    horizon: int
    past_length: int


def fit(data: FamilyData, hp: Any, model_dir: Path, seed: int) -> dict[str, Any]:
    """Calibrate on the validation windows, fit the trees on all of ``data.train`` and write
    ``model_dir``; the settings it chose."""
    history = _known(data.train)
    period = infer_period_days(history)
    season = hp.season_length or default_season(period)
    windows = sales_validation(data, hp)
    table = calibrate(windows, hp.horizon, season, period, seed)
    model = fit_gradient_boosting(history, hp.horizon, season, period, seed)
    if model is None:
        raise ValueError("gradient boosting: no series has a period after its first to learn from")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    dump_sklearn(model.model, model_dir / MODEL_FILE)
    write_json(model_dir / SETTINGS_FILE, {**model.settings(), "calibration": table})
    return {"season": season, "period_days": period, "calibration_windows": len(windows),
            "calibrated": table is not None}


def calibrate(windows: list[FamilyData], horizon: int, season: int, period: float, seed: int) -> dict | None:
    """The quantile table of the residuals of trees fitted before the first window, each
    window asked from its own origin; None (quantiles = the point) when too few."""
    if not windows:
        log.warning("gradient boosting: no calibration window before the holdout; quantiles uncalibrated")
        return None
    model = fit_gradient_boosting(_known(windows[0].train), horizon, season, period, seed)
    residuals: dict[str, list[list[float]]] = {kind: [[] for _ in range(horizon)] for kind in calibration.KINDS}
    if model is not None:
        for window in windows:
            point = point_forecast(model, sales_question(window))
            for kind, values in point_residuals(point, window.holdout, horizon).items():
                for h, z in enumerate(values):
                    residuals[kind][h] += z
    try:
        table = calibration.fit(residuals)
    except ValueError as exc:
        log.warning("gradient boosting quantiles left uncalibrated (quantiles = the point forecast): %s", exc)
        return None
    log.info("gradient boosting quantiles calibrated on %d windows; residuals per step: %s", len(windows),
             table["counts"]["period"])
    return table


def point_forecast(model: GradientBoosting, question: pd.DataFrame) -> pd.DataFrame:
    """KEYS, ``forecast`` and ``cum_forecast`` (from the first asked period) of every asked
    row (null units) of ``question``, in series and date order; a series without a history
    is forecast 0, as the transformer does."""
    frame = clean(question)
    history, future = frame[frame["units"].notna()], frame[frame["units"].isna()]
    rows, point = predict_gradient_boosting(model, history, future)
    out = rows[KEYS].assign(forecast=point)
    unknown = future.merge(history[SERIES_KEY].drop_duplicates(), on=SERIES_KEY, how="left", indicator=True)
    unknown = unknown[unknown["_merge"] == "left_only"]
    if len(unknown):
        log.warning("%d series have no history; their forecast is 0", len(unknown[SERIES_KEY].drop_duplicates()))
        out = pd.concat([out, unknown[KEYS].assign(forecast=0.0)], ignore_index=True)
    out = out.sort_values(KEYS, kind="stable").reset_index(drop=True)
    out["cum_forecast"] = out.groupby(SERIES_KEY, sort=False)["forecast"].cumsum()
    return out


def asked_steps(point: pd.DataFrame) -> np.ndarray:
    """Each row's step ahead within its series (0: the first asked period); rows in date order."""
    return point.groupby(SERIES_KEY, sort=False).cumcount().to_numpy()


def point_residuals(point: pd.DataFrame, truth: pd.DataFrame, horizon: int) -> dict[str, list[list[float]]]:
    """``log1p(actual) - log1p(point)`` per kind (period, cumulative) and step ahead, of the
    rows of ``point`` (:func:`point_forecast`) with a truth in ``truth``; a period after a
    missing one has no cumulative truth."""
    units = point[KEYS].merge(clean(truth)[[*KEYS, "units"]], on=KEYS, how="left")["units"].clip(lower=0)
    series = point.groupby(SERIES_KEY, sort=False).ngroup().to_numpy()
    after_gap = units.isna().astype(int).groupby(series).cummax() > 0
    cumulative = units.fillna(0.0).groupby(series).cumsum().where(~after_gap)
    step = np.minimum(asked_steps(point), horizon - 1)
    residuals: dict[str, list[list[float]]] = {}
    for kind, actual, predicted in (("period", units, point["forecast"]),
                                    ("cumulative", cumulative, point["cum_forecast"])):
        z = np.log1p(actual.to_numpy(float)) - np.log1p(predicted.to_numpy(float).clip(min=0))
        residuals[kind] = [z[(step == h) & ~np.isnan(z)].tolist() for h in range(horizon)]
    return residuals


def point_quantiles(point: pd.DataFrame, table: dict | None, service_level: float) -> pd.DataFrame:
    """:data:`OUTPUT_COLUMNS` of a point forecast: ``forecast`` = ``p50`` = the point, the
    other quantiles ``expm1(log1p(point) + Q_step(level))`` from the calibration table (the
    point itself without one). The point is what is served as the median, so the quantiles
    below it are capped at it and those above floored at it; a cumulative quantile never
    falls as the lead time grows (the demand over a longer lead time includes the shorter)."""
    out = point[KEYS].reset_index(drop=True)
    step = asked_steps(point)
    series = point.groupby(SERIES_KEY, sort=False).ngroup().to_numpy()
    levels = {"p10": 0.1, "p90": 0.9, "p_service": service_level}
    for prefix, kind in (("", "period"), ("cum_", "cumulative")):
        centre = point[f"{prefix}forecast"].to_numpy(float).clip(min=0)
        out[f"{prefix}forecast"] = out[f"{prefix}p50"] = centre
        for name, level in levels.items():
            if table is None:
                values = centre
            else:
                values = calibration.quantile(table, kind, step, np.log1p(centre), np.ones_like(centre), level)
                values = np.minimum(values, centre) if level < 0.5 else np.maximum(values, centre)
            if prefix:
                values = pd.Series(values).groupby(series).cummax().to_numpy()
            out[prefix + name] = values
    values = [c for c in OUTPUT_COLUMNS if c not in KEYS]
    out[values] = out[values].clip(lower=0.0).astype(float)
    return out[OUTPUT_COLUMNS]


def forecast(model: GradientBoosting, table: dict | None, question: pd.DataFrame,
             service_level: float = 0.95) -> pd.DataFrame:
    """Forecast the rows of ``question`` whose units are null (see GbmForecasterModel.predict)."""
    asked = clean(question)
    asked = asked[asked["units"].isna()]
    refuse_beyond_horizon(asked, model.horizon)
    if asked.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in OUTPUT_COLUMNS})
    return point_quantiles(point_forecast(model, question), table, service_level)


def _known(frame: pd.DataFrame) -> pd.DataFrame:
    """Clean rows with known units: what the trees learn from."""
    frame = clean(frame)
    return frame[frame["units"].notna()]


class GbmForecasterModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc around a folder written by :func:`fit`."""

    def load_context(self, context: Any) -> None:
        folder = Path(context.artifacts["model_dir"])
        settings = read_json(folder / SETTINGS_FILE)
        trees = load_sklearn(folder / MODEL_FILE, TRUSTED_TYPES)
        self.model = GradientBoosting(trees, settings["features"], settings["encodings"], int(settings["season"]),
                                      float(settings["period_days"]), int(settings["horizon"]),
                                      settings.get("median_prices", []))
        self.calibration = settings["calibration"]
        if self.calibration is None:
            log.warning("gradient boosting forecaster without calibrated quantiles: they equal the point forecast")
        self.meta = GbmMeta(self.model.period_days, self.model.horizon, gbm_history_periods(self.model.season))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Rows with units are history, rows with null units the periods to forecast.

        Returns store_id, sku, date, forecast (the point forecast, also ``p50``), p10, p90
        and p_service (the quantile at ``params["service_level"]``) in units, one row per
        asked period, and the same for the cumulative demand from the first asked period
        to this one (``cum_forecast``, ``cum_p10``, ...)."""
        level = float((params or {}).get("service_level", 0.95))
        return forecast(self.model, self.calibration, model_input, level)
