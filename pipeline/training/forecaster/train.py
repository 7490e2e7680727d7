"""Training the forecaster: random windows of every series, fixed by seed and epoch, fed
to the one training loop (:mod:`pipeline.training.core`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pipeline.datasets import FamilyData
from pipeline.series import clean, infer_period_days
from pipeline.settings import ForecasterTraining
from pipeline.training.core import Batch, LoopConfig, RunOptions, TrainHistory, run_training, seed_everything
from pipeline.training.forecaster.model import MODEL_SUBDIR, cpu_threads, new_model, warm_start
from pipeline.training.forecaster.panel import LAGS, UNKNOWN, ForecasterMeta, Panel, build_panel, price_scaling

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

    def make_batches(epoch: int) -> list[Batch]:
        rng = np.random.default_rng([seed, epoch])
        series = np.repeat(trainable, hp.windows_per_series)
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
    """Train the global forecaster on ``data.train`` and write it to ``model_dir``."""
    seed_everything(seed)
    started = time.perf_counter()
    history = clean(data.train)
    history = history[history["units"].notna()]
    warm = warm_start(Path(init_dir), history, hp) if init_dir else None
    if warm:
        model, meta = warm
    else:
        mean, std = price_scaling(history)
        meta = ForecasterMeta(
            stores=sorted(history["store_id"].unique()),
            skus=sorted(history["sku"].unique()),
            context_length=hp.context_length,
            horizon=hp.horizon,
            lags=list(LAGS),
            period_days=infer_period_days(history),
            price_log_mean=mean,
            price_log_std=std,
            num_samples=hp.num_samples,
        )
        model = new_model(meta, hp)
    panel = build_panel(history, meta)
    static = meta.index(panel.keys)
    log.info(
        "forecaster: %d series, %d periods at most, %.1f-day periods, %d parameters, prepared in %.1f s",
        len(panel.n), int(panel.n.max(initial=0)), meta.period_days,
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
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save_pretrained(model_dir / MODEL_SUBDIR)
    meta.save(model_dir)
    log.info("forecaster written to %s", model_dir)
    return result
