"""Training the forecaster: random windows of every series, fixed by seed and epoch, fed
to the one training loop (:mod:`pipeline.training.core`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from pipeline.datasets import FamilyData, calibration_split
from pipeline.series import SERIES_KEY, clean, forecast_input, infer_period_days, median_prices
from pipeline.settings import ForecasterTraining
from pipeline.training.core import Batch, LoopConfig, RunOptions, TrainHistory, run_training, seed_everything
from pipeline.training.forecaster.model import MODEL_SUBDIR, cpu_threads, new_model, warm_start
from pipeline.training.forecaster import calibration
from pipeline.training.forecaster.panel import UNKNOWN, ForecasterMeta, Panel, build_panel, choose_lags, price_scaling
from pipeline.training.forecaster.predict import asked_rows, sample_paths

log = logging.getLogger(__name__)

# share of training windows whose store or sku is swapped for the unknown index, so that
# index 0 learns an "average" embedding instead of staying at its random start
UNKNOWN_DROPOUT = 0.05


def _window_batches(
    panel: Panel, static: np.ndarray, meta: ForecasterMeta, hp: ForecasterTraining, seed: int
) -> Callable[[int], list[Batch]]:
    """``make_batches(epoch)`` for run_training: random windows, fixed by seed and epoch."""
    past, horizon = meta.past_length, meta.horizon
    length = past + horizon
    # a window needs its whole future inside the history and at least one past period
    trainable = np.flatnonzero(panel.n >= horizon + 1)
    if not len(trainable):
        raise ValueError(f"no series has more than horizon={horizon} periods to train on")
    target = torch.from_numpy(panel.target)
    observed = torch.from_numpy(panel.observed)
    features = torch.from_numpy(panel.features)
    width = panel.target.shape[1]
    offsets = width - panel.n  # column of each series' first period
    steps = np.arange(-length, 0)
    # a panel of few series still gets min_batches_per_epoch batches an epoch (GluonTS's habit)
    per_series = max(hp.windows_per_series, -(-hp.min_batches_per_epoch * hp.batch_size // len(trainable)))

    def make_batches(epoch: int) -> list[Batch]:
        rng = np.random.default_rng([seed, epoch])
        series = np.repeat(trainable, per_series)
        ends = rng.integers(horizon + 1, panel.n[series] + 1)  # exclusive, in periods
        order = rng.permutation(len(series))
        series, ends = series[order], ends[order]
        cols = torch.from_numpy((offsets[series] + ends)[:, None] + steps)
        rows = torch.from_numpy(series)[:, None]
        cats = static[series].copy()
        cats[rng.random(cats.shape) < UNKNOWN_DROPOUT] = UNKNOWN
        cats_t = torch.from_numpy(cats)
        values, mask, feats = target[rows, cols], observed[rows, cols], features[rows, cols]
        batches = []
        for start in range(0, len(series), hp.batch_size):
            sl = slice(start, start + hp.batch_size)
            batches.append({
                "past_values": values[sl, :past],
                "past_observed_mask": mask[sl, :past],
                "past_time_features": feats[sl, :past],
                "future_values": values[sl, past:],
                "future_observed_mask": mask[sl, past:],
                "future_time_features": feats[sl, past:],
                "static_categorical_features": cats_t[sl],
            })
        return batches

    return make_batches


def _loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    return model(**batch).loss


def fine_tune(
    data: FamilyData,
    hp: ForecasterTraining,
    run: RunOptions,
    model_dir: Path,
    init_dir: Path | None,
    seed: int,
) -> TrainHistory:
    """Train the global forecaster on ``data.train`` up to its calibration windows (the
    family's validation windows, :func:`pipeline.datasets.sales_validation`), calibrate its
    quantiles on those windows (:mod:`calibration`), and write it to ``model_dir``."""
    seed_everything(seed)
    started = time.perf_counter()
    history = clean(data.train)
    history = history[history["units"].notna()]
    period = infer_period_days(history)
    fit, window = calibration_split(history, hp.horizon, period)
    lags = choose_lags(period, int(fit.groupby(SERIES_KEY).size().max()) if len(fit) else 0, hp.horizon)
    warm = warm_start(Path(init_dir), fit, hp, lags) if init_dir else None
    if warm:
        model, meta = warm
    else:
        mean, std = price_scaling(fit)
        meta = ForecasterMeta(
            stores=sorted(fit["store_id"].unique()),
            skus=sorted(fit["sku"].unique()),
            context_length=hp.context_length,
            horizon=hp.horizon,
            lags=lags,
            period_days=period,
            price_log_mean=mean,
            price_log_std=std,
            num_samples=hp.num_samples,
        )
        model = new_model(meta, hp)
    # the training data's own price levels: every later question is priced against them
    meta.median_prices = [[store, sku, price] for (store, sku), price in median_prices(fit).items()]
    panel = build_panel(fit, meta)
    static = meta.index(panel.keys)
    log.info(
        "forecaster: %d series, %d periods at most, %.1f-day periods, lags %s, %d parameters, prepared in %.1f s",
        len(panel.n), int(panel.n.max(initial=0)), meta.period_days, meta.lags,
        sum(p.numel() for p in model.parameters()), time.perf_counter() - started,
    )
    cfg = LoopConfig(
        epochs=hp.epochs,
        learning_rate=hp.learning_rate,
        weight_decay=hp.weight_decay,
        warmup_ratio=hp.warmup_ratio,
    )
    with cpu_threads(run.device):
        result = run_training(model, _window_batches(panel, static, meta, hp, seed), _loss, cfg, run)
    meta.calibration = calibrate(model, meta, fit, window, data.plan, run.device)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save_pretrained(model_dir / MODEL_SUBDIR)
    meta.save(model_dir)
    log.info("forecaster written to %s", model_dir)
    return result


def calibrate(model: torch.nn.Module, meta: ForecasterMeta, fit: pd.DataFrame, window: pd.DataFrame,
              plan: pd.DataFrame | None, device: torch.device) -> dict | None:
    """Forecast each calibration window from everything before it (the question every
    caller asks) and keep the quantiles of the normalised residuals; None when too few."""
    dates = sorted(window["date"].unique())
    residuals: dict[str, list[list[float]]] = {kind: [[] for _ in range(meta.horizon)] for kind in calibration.KINDS}
    for start in range(0, len(dates), meta.horizon):
        asked = dates[start:start + meta.horizon]
        known = pd.concat([fit, window[window["date"] < asked[0]]], ignore_index=True)
        question = forecast_input(known, asked, plan=plan)
        panel, logs = sample_paths(model, meta, question, device)
        rows, series, step = asked_rows(panel)
        actual = rows[[*SERIES_KEY, "date"]].merge(window[[*SERIES_KEY, "date", "units"]], how="left",
                                                  on=[*SERIES_KEY, "date"])["units"].to_numpy(float)
        units = pd.Series(np.clip(actual, 0, None))
        after_gap = units.isna().astype(int).groupby(series).cummax() > 0  # no cumulative truth after a missing period
        cumulative = units.fillna(0.0).groupby(series).cumsum().where(~after_gap).to_numpy()
        for kind, paths, truth in (("period", logs, np.log1p(units.to_numpy())),
                                   ("cumulative", calibration.cumulative_logs(logs), np.log1p(cumulative))):
            m, s = calibration.location_scale(paths)
            z = (truth - m[series, step]) / s[series, step]
            for h in range(meta.horizon):
                residuals[kind][h] += z[(step == h) & ~np.isnan(z)].tolist()
    try:
        table = calibration.fit(residuals)
    except ValueError as exc:
        log.warning("quantiles left uncalibrated: %s", exc)
        return None
    log.info("quantiles calibrated on %d periods before the holdout (%s); %s; residuals per step: %s",
             len(dates), question.attrs["basis"], ", ".join(
                 f"p95 of step {h + 1}: {np.interp(0.95, calibration.LEVELS, q):+.2f} sd"
                 for h, q in enumerate(table["period"])), table["counts"]["period"])
    return table
