"""Forecasting with a trained forecaster: sample paths from the model, turned into the
mean and quantiles in units; the MLflow pyfunc that serves it."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from transformers import TimeSeriesTransformerForPrediction

from pipeline.series import SERIES_KEY, clean, refuse_beyond_horizon
from pipeline.training.core import select_device
from pipeline.training.forecaster.model import MODEL_SUBDIR, cpu_threads
from pipeline.training.forecaster import calibration
from pipeline.training.forecaster.panel import ForecasterMeta, Panel, build_panel

log = logging.getLogger(__name__)

VALUES = ["forecast", "p10", "p50", "p90", "p_service"]
OUTPUT_COLUMNS = ["store_id", "sku", "date", *VALUES, *(f"cum_{v}" for v in VALUES)]
PREDICT_BATCH_SERIES = 128


def sample_paths(
    model: TimeSeriesTransformerForPrediction, meta: ForecasterMeta, frame: pd.DataFrame, device: torch.device
) -> tuple[Panel, np.ndarray] | None:
    """The panel of ``frame``'s series and their sample paths in log1p(units), shape
    (series, samples, horizon); None when no row asks for a forecast."""
    frame = clean(frame)
    future = frame[frame["units"].isna()]
    history = frame[frame["units"].notna()]
    refuse_beyond_horizon(future, meta.horizon)
    if future.empty:
        return None
    future_keys = future[SERIES_KEY].drop_duplicates()
    history = history.merge(future_keys, on=SERIES_KEY)  # series with nothing to forecast are skipped
    panel = build_panel(history, meta, future=future)
    past = meta.past_length
    static = torch.from_numpy(meta.index(panel.keys))
    no_history = panel.n == 0
    if no_history.any():
        log.warning("%d series have no history; their forecast is 0", int(no_history.sum()))

    samples = np.zeros((len(panel.n), meta.num_samples, meta.horizon), np.float32)
    model.config.num_parallel_samples = meta.num_samples
    model.eval().to(device)
    todo = np.flatnonzero(~no_history)
    # fixed seed: the same question gets the same answer, without touching global RNG state
    rng_devices = [device] if device.type == "cuda" else []
    with cpu_threads(device), torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(0)
        for start in range(0, len(todo), PREDICT_BATCH_SERIES):
            idx = todo[start : start + PREDICT_BATCH_SERIES]
            out = model.generate(
                past_values=torch.from_numpy(panel.target[idx, -past:]).to(device),
                past_observed_mask=torch.from_numpy(panel.observed[idx, -past:]).to(device),
                past_time_features=torch.from_numpy(panel.features[idx, -past:]).to(device),
                future_time_features=torch.from_numpy(panel.future_features[idx]).to(device),
                static_categorical_features=static[idx].to(device),
            )
            samples[idx] = out.sequences.float().cpu().numpy()
    # a draw far in the Student-t tail would become an absurd number of units after expm1;
    # cap draws at a few times the largest level the model was shown (its past_length
    # periods: the same whatever history the question passed)
    ceiling = (panel.target[:, -past:] * panel.observed[:, -past:]).max(axis=1) + math.log(5.0)
    return panel, np.clip(samples, 0.0, ceiling[:, None, None]).astype(np.float64)


def asked_rows(panel: Panel) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The asked rows in panel order, with each one's series index and step ahead (0-based)."""
    rows = [r for r in panel.future_rows if len(r)]
    series = np.concatenate([np.full(len(r), i) for i, r in enumerate(panel.future_rows)]).astype(int)
    step = np.concatenate([np.arange(len(r)) for r in panel.future_rows]).astype(int)
    frame = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["store_id", "sku", "date"])
    return frame, series, step


def forecast(
    model: TimeSeriesTransformerForPrediction,
    meta: ForecasterMeta,
    frame: pd.DataFrame,
    device: torch.device,
    service_level: float = 0.95,
) -> pd.DataFrame:
    """Forecast the rows of ``frame`` whose units are null (see ForecasterModel.predict)."""
    result = sample_paths(model, meta, frame, device)
    if result is None:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in OUTPUT_COLUMNS})
    panel, logs = result
    rows, series, step = asked_rows(panel)
    out = rows[["store_id", "sku", "date"]].reset_index(drop=True)
    levels = {"p10": 0.1, "p50": 0.5, "p90": 0.9, "p_service": service_level}
    for prefix, paths in (("", logs), ("cum_", calibration.cumulative_logs(logs))):
        kind = "cumulative" if prefix else "period"
        m, s = calibration.location_scale(paths)
        m, s = m[series, step], s[series, step]
        units = None if meta.calibration else np.expm1(paths[series, :, step])
        for name, level in levels.items():
            if units is None:
                out[prefix + name] = calibration.quantile(meta.calibration, kind, step, m, s, level)
            else:  # a model saved without a calibration window: the sample paths' own spread
                out[prefix + name] = np.quantile(units, level, axis=1)
        # the point forecast is the median: what WAPE rewards, and robust to the long right tail
        out[f"{prefix}forecast"] = out[f"{prefix}p50"]
    values = [c for c in OUTPUT_COLUMNS if c not in ("store_id", "sku", "date")]
    out[values] = out[values].clip(lower=0.0).astype(float)
    return out[OUTPUT_COLUMNS]


class ForecasterModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc around a folder written by :func:`fine_tune`."""

    def load_context(self, context: Any) -> None:
        folder = Path(context.artifacts["model_dir"])
        self.meta = ForecasterMeta.load(folder)
        self.device = select_device("auto")
        self.model = TimeSeriesTransformerForPrediction.from_pretrained(folder / MODEL_SUBDIR)
        self.model.eval().to(self.device)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Rows with units are history, rows with null units the periods to forecast.

        Returns store_id, sku, date, forecast (the point forecast: the median), p10, p50,
        p90 and p_service (the
        quantile at ``params["service_level"]``) in units, one row per requested period, and
        the same for the cumulative demand from the first requested period to this one
        (``cum_forecast``, ``cum_p10``, ...: the demand over a lead time of that many periods).
        """
        started = time.perf_counter()
        level = float((params or {}).get("service_level", 0.95))
        out = forecast(self.model, self.meta, model_input, self.device, level)
        log.info("forecast %d rows in %.1f s", len(out), time.perf_counter() - started)
        return out
