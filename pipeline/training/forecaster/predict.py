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

from pipeline.series import SERIES_KEY, clean
from pipeline.training.core import select_device
from pipeline.training.forecaster.model import MODEL_SUBDIR, cpu_threads
from pipeline.training.forecaster.panel import ForecasterMeta, build_panel

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = ["store_id", "sku", "date", "forecast", "p10", "p50", "p90"]
PREDICT_BATCH_SERIES = 128


def forecast(
    model: TimeSeriesTransformerForPrediction,
    meta: ForecasterMeta,
    frame: pd.DataFrame,
    device: torch.device,
) -> pd.DataFrame:
    """Forecast the rows of ``frame`` whose units are null (see ForecasterModel.predict)."""
    frame = clean(frame)
    future = frame[frame["units"].isna()]
    history = frame[frame["units"].notna()]
    counts = future.groupby(SERIES_KEY).size()
    too_many = counts[counts > meta.horizon]
    if len(too_many):
        first = too_many.index[0]
        raise ValueError(
            f"{len(too_many)} series ask for more than the model's horizon of {meta.horizon} "
            f"future periods (e.g. store {first[0]}, sku {first[1]}: {int(too_many.iloc[0])} rows)"
        )
    if future.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in OUTPUT_COLUMNS})
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
    # cap draws at a few times the series' largest observed level
    ceiling = (panel.target * panel.observed).max(axis=1) + math.log(5.0)
    units = np.expm1(np.clip(samples, 0.0, ceiling[:, None, None]))
    mean = units.mean(axis=1)
    q10, q50, q90 = np.quantile(units, [0.1, 0.5, 0.9], axis=1)

    parts = []
    for i, rows in enumerate(panel.future_rows):
        k = len(rows)
        if not k:
            continue
        parts.append(pd.DataFrame({
            "store_id": rows["store_id"].to_numpy(),
            "sku": rows["sku"].to_numpy(),
            "date": rows["date"].to_numpy(),
            "forecast": mean[i, :k],
            "p10": q10[i, :k],
            "p50": q50[i, :k],
            "p90": q90[i, :k],
        }))
    out = pd.concat(parts, ignore_index=True)
    values = ["forecast", "p10", "p50", "p90"]
    out[values] = out[values].clip(lower=0.0).astype(float)
    return out


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

        Returns store_id, sku, date, forecast (mean), p10, p50, p90 in units, one row per
        requested period.
        """
        started = time.perf_counter()
        out = forecast(self.model, self.meta, model_input, self.device)
        log.info("forecast %d rows in %.1f s", len(out), time.perf_counter() - started)
        return out
