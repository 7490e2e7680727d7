"""Demand forecaster: a global time-series transformer over every store x sku series.

One ``transformers.TimeSeriesTransformerForPrediction`` learns from all series at once.
The target is log1p(units); price and promo are time-varying covariates known in the
future (the planned price and promo of the periods asked about); store and sku are static
categorical features, with index 0 kept for ones the model never saw. Forecasts are
sample paths from the model's Student-t head, turned back into units with expm1.

Series live on a regular grid of periods (the typical spacing of the data): a missing
period inside a history is carried forward with observed mask 0, and a history shorter
than one window is padded at the start the same way, so the scaler and the loss ignore
both. Future periods are taken in order, one grid step each.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from transformers import TimeSeriesTransformerConfig, TimeSeriesTransformerForPrediction

from pipeline.datasets import FamilyData
from pipeline.evaluation.metrics import forecast_metrics
from pipeline.settings import ForecasterTraining
from pipeline.training.core import (
    Batch,
    LoopConfig,
    RunOptions,
    TrainHistory,
    run_training,
    seed_everything,
    select_device,
)

log = logging.getLogger(__name__)

KEYS = ["store_id", "sku"]
OUTPUT_COLUMNS = ["store_id", "sku", "date", "forecast", "p10", "p50", "p90"]
META_FILE = "forecaster.json"
MODEL_SUBDIR = "model"
UNKNOWN = 0  # vocabulary index of a store or sku the model has not seen

# Small lags only: a lag of 52 would make every window a year longer, and most series
# would be mostly padding.
LAGS = [1, 2, 3, 4]
# sin/cos of the year and of the week (the latter is constant for weekly data, but lets
# daily data learn the weekday pattern with the same model code)
N_TIME_FEATURES = 4
# promo, log price relative to the series' median price, standardised log price
N_DYNAMIC_FEATURES = 3
DISTRIBUTION = "student_t"
# log1p(units) sits far from 0, so each window is centred and scaled (the mean scaler
# would squash every history to values near 1)
TARGET_SCALING = "std"
DROPOUT = 0.1
LAYERDROP = 0.1
N_LAYERS = 2
N_HEADS = 2
MAX_EMBEDDING_DIM = 16
# share of training windows whose store or sku is swapped for the unknown index, so that
# index 0 learns an "average" embedding instead of staying at its random start
UNKNOWN_DROPOUT = 0.05
PREDICT_BATCH_SERIES = 128
# The tensors here are tiny (batch 64 x 20 periods x d_model 32): a second intra-op thread
# gains little, and on a busy 2-core worker (other tasks running) it made training steps
# 10x slower and prediction 8x slower, the threads waiting on each other. So CPU work runs
# on one thread.
CPU_THREADS = 1
DAYS_PER_YEAR = 365.2425


@dataclass
class ForecasterMeta:
    """Everything besides the weights that the pyfunc needs, written as JSON."""

    stores: list[str]  # vocabulary: index i + 1 (0 is unknown)
    skus: list[str]
    context_length: int
    horizon: int
    lags: list[int]
    period_days: float  # grid spacing, the median gap between consecutive rows
    price_log_mean: float  # covariate scaling of log(price)
    price_log_std: float
    num_samples: int

    @property
    def past_length(self) -> int:
        return self.context_length + max(self.lags)

    def save(self, folder: Path) -> None:
        (folder / META_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path) -> "ForecasterMeta":
        return cls(**json.loads((folder / META_FILE).read_text()))

    def index(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, 2) store and sku indices; unknown values map to 0."""
        stores = {s: i + 1 for i, s in enumerate(self.stores)}
        skus = {s: i + 1 for i, s in enumerate(self.skus)}
        return np.stack(
            [
                frame["store_id"].astype(str).map(stores).fillna(UNKNOWN).to_numpy(np.int64),
                frame["sku"].astype(str).map(skus).fillna(UNKNOWN).to_numpy(np.int64),
            ],
            axis=1,
        )


@contextmanager
def _cpu_threads(device: torch.device) -> Iterator[None]:
    """Limit torch's intra-op threads to CPU_THREADS for the block (CPU only), then restore."""
    before = torch.get_num_threads()
    if device.type == "cpu" and before > CPU_THREADS:
        torch.set_num_threads(CPU_THREADS)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


# ---------------------------------------------------------------- data preparation


@dataclass
class _Panel:
    """All series of a frame on one grid, left-padded to a common width.

    Series ``i`` holds the last ``n[i]`` columns; the columns before it are padding.
    """

    keys: pd.DataFrame  # store_id, sku per series
    n: np.ndarray  # (S,) history length in periods
    target: np.ndarray  # (S, W) log1p(units), gaps and padding carried, float32
    observed: np.ndarray  # (S, W) 1 where units were observed
    features: np.ndarray  # (S, W, F) time features then dynamic covariates
    units: np.ndarray  # (S, W) units as given (float64, gaps carried), for the baseline
    future_features: np.ndarray | None = None  # (S, horizon, F)
    future_rows: list[pd.DataFrame] | None = None  # requested future rows per series


def _clean(frame: pd.DataFrame) -> pd.DataFrame:
    """Typed copy sorted by series and date; price and promo may be missing (unknown)."""
    out = frame.reindex(columns=["store_id", "sku", "date", "units", "price", "promo"]).copy()
    out["store_id"] = out["store_id"].astype(str)
    out["sku"] = out["sku"].astype(str)
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    out["units"] = pd.to_numeric(out["units"], errors="coerce").astype(float)
    price = pd.to_numeric(out["price"], errors="coerce").astype(float)
    out["price"] = price.where(price > 0)  # a price of 0 or less is treated as unknown
    out["promo"] = pd.to_numeric(out["promo"], errors="coerce").astype(float).fillna(0.0).clip(0, 1)
    return out.sort_values(["store_id", "sku", "date"], kind="stable").reset_index(drop=True)


def _days(dates: pd.Series) -> np.ndarray:
    return ((dates - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)).to_numpy(float)


def _infer_period_days(history: pd.DataFrame) -> float:
    gaps = history.groupby(KEYS, sort=False)["date"].diff().dropna() / pd.Timedelta(days=1)
    gaps = gaps[gaps > 0]
    return float(gaps.median()) if len(gaps) else 7.0


def _price_scaling(history: pd.DataFrame) -> tuple[float, float]:
    logs = np.log(history["price"].dropna().to_numpy(float))
    if len(logs) == 0:
        return 0.0, 1.0
    return float(logs.mean()), float(max(logs.std(), 1e-3))


def _time_features(days: np.ndarray) -> np.ndarray:
    year = 2 * np.pi * days / DAYS_PER_YEAR
    week = 2 * np.pi * days / 7.0
    return np.stack([np.sin(year), np.cos(year), np.sin(week), np.cos(week)], axis=-1)


def _covariates(
    price: np.ndarray, promo: np.ndarray, median_price: np.ndarray, meta: ForecasterMeta
) -> np.ndarray:
    """promo, log(price / the series' median price), standardised log price."""
    log_price = np.log(price)
    relative = np.clip(log_price - np.log(median_price)[:, None], -3, 3)
    z = np.clip((log_price - meta.price_log_mean) / meta.price_log_std, -5, 5)
    return np.stack([promo, relative, z], axis=-1)


def _ffill(values: np.ndarray) -> np.ndarray:
    """Carry the last known value forward, then the first one backward."""
    ok = ~np.isnan(values)
    if not ok.any():
        return values
    idx = np.where(ok, np.arange(len(values)), 0)
    np.maximum.accumulate(idx, out=idx)
    out = values[idx]
    first = np.argmax(ok)
    out[:first] = values[first]
    return out


def _build_panel(
    history: pd.DataFrame,
    meta: ForecasterMeta,
    future: pd.DataFrame | None = None,
) -> _Panel:
    """Grid every series of ``history`` (and the requested ``future`` rows, if given)."""
    history = history[history["units"].notna()]
    if future is not None:
        keys = pd.concat([history[KEYS], future[KEYS]]).drop_duplicates()
        keys = keys.sort_values(KEYS).reset_index(drop=True)
    else:
        keys = history[KEYS].drop_duplicates().reset_index(drop=True)
    n_series, period, horizon = len(keys), meta.period_days, meta.horizon
    hist_groups = _split_by_key(history, keys)
    future_groups = _split_by_key(future, keys) if future is not None else None
    fallback_price = math.exp(meta.price_log_mean)

    grids: list[dict[str, np.ndarray]] = []
    for i in range(n_series):
        rows = hist_groups[i]
        days = _days(rows["date"])
        if len(days):
            steps = np.maximum(1, np.rint(np.diff(days) / period)).astype(int)
            pos = np.concatenate([[0], np.cumsum(steps)])
            n = int(pos[-1]) + 1
        else:
            pos, n = np.zeros(0, int), 0
        units = np.full(n, np.nan)
        units[pos] = rows["units"].to_numpy(float)
        price = np.full(n, np.nan)
        price[pos] = rows["price"].to_numpy(float)
        promo = np.zeros(n)
        promo[pos] = rows["promo"].to_numpy(float)
        grid_days = np.interp(np.arange(n), pos, days) if n else np.zeros(0)
        known_prices = price[~np.isnan(price)]
        median_price = float(np.median(known_prices)) if len(known_prices) else fallback_price
        price = _ffill(price)
        price = np.where(np.isnan(price), median_price, price)
        grids.append(dict(
            units=units, price=price, promo=promo, days=grid_days, median_price=median_price,
        ))

    lengths = np.array([len(g["units"]) for g in grids], dtype=int)
    width = max(int(lengths.max(initial=0)), 1) + meta.past_length
    target = np.zeros((n_series, width), np.float32)
    units = np.zeros((n_series, width))
    observed = np.zeros((n_series, width), np.float32)
    price = np.ones((n_series, width))
    promo = np.zeros((n_series, width))
    days = np.zeros((n_series, width))
    median_price = np.array([g["median_price"] for g in grids])
    for i, g in enumerate(grids):
        n, pad = lengths[i], width - lengths[i]
        raw = np.clip(g["units"], 0, None)
        observed[i, pad:] = ~np.isnan(raw)
        # gaps and the start padding repeat a neighbouring value, so the lags stay sane
        units[i, pad:] = _ffill(raw) if n else raw
        units[i, :pad] = units[i, pad] if n else 0.0
        target[i] = np.log1p(units[i])
        price[i, pad:] = g["price"]
        price[i, :pad] = g["price"][0] if n else median_price[i]
        promo[i, pad:] = g["promo"]
        first_day = g["days"][0] if n else 0.0
        days[i, :pad] = first_day + (np.arange(pad) - pad) * period
        days[i, pad:] = g["days"]
    features = np.concatenate(
        [_time_features(days), _covariates(price, promo, median_price, meta)], axis=-1
    ).astype(np.float32)
    panel = _Panel(keys, lengths, target, observed, features, units)

    if future_groups is not None:
        fut_days = np.zeros((n_series, horizon))
        fut_price = np.ones((n_series, horizon))
        fut_promo = np.zeros((n_series, horizon))
        for i in range(n_series):
            rows = future_groups[i]
            k = len(rows)
            last_day = days[i, -1] if lengths[i] else _days(rows["date"])[0] - period
            fut_days[i] = last_day + period * np.arange(1, horizon + 1)
            fut_days[i, :k] = _days(rows["date"])[:horizon]
            # an unplanned price keeps the last known one; an unplanned promo is 0
            p = np.full(horizon, np.nan)
            p[:k] = rows["price"].to_numpy(float)[:horizon]
            p = _ffill(np.concatenate([[price[i, -1]], p]))[1:]
            fut_price[i] = p
            fut_promo[i, :k] = rows["promo"].to_numpy(float)[:horizon]
        panel.future_features = np.concatenate(
            [_time_features(fut_days), _covariates(fut_price, fut_promo, median_price, meta)],
            axis=-1,
        ).astype(np.float32)
        panel.future_rows = future_groups
    return panel


def _split_by_key(frame: pd.DataFrame, keys: pd.DataFrame) -> list[pd.DataFrame]:
    """The rows of each key in ``keys`` order (empty frames for keys with no rows)."""
    groups = {k: g for k, g in frame.groupby(KEYS, sort=False)}
    empty = frame.iloc[:0]
    return [groups.get((s, k), empty) for s, k in zip(keys["store_id"], keys["sku"])]


# ------------------------------------------------------------------------ model


def _new_model(meta: ForecasterMeta, hp: ForecasterTraining) -> TimeSeriesTransformerForPrediction:
    cardinality = [len(meta.stores) + 1, len(meta.skus) + 1]
    config = TimeSeriesTransformerConfig(
        prediction_length=meta.horizon,
        context_length=meta.context_length,
        lags_sequence=list(meta.lags),
        distribution_output=DISTRIBUTION,
        scaling=TARGET_SCALING,
        num_time_features=N_TIME_FEATURES,
        num_dynamic_real_features=N_DYNAMIC_FEATURES,
        num_static_categorical_features=2,
        cardinality=cardinality,
        embedding_dimension=[min(MAX_EMBEDDING_DIM, (c + 1) // 2) for c in cardinality],
        d_model=hp.d_model,
        encoder_layers=N_LAYERS,
        decoder_layers=N_LAYERS,
        encoder_attention_heads=N_HEADS,
        decoder_attention_heads=N_HEADS,
        encoder_ffn_dim=2 * hp.d_model,
        decoder_ffn_dim=2 * hp.d_model,
        dropout=DROPOUT,
        encoder_layerdrop=LAYERDROP,
        decoder_layerdrop=LAYERDROP,
        num_parallel_samples=hp.num_samples,
    )
    return TimeSeriesTransformerForPrediction(config)


def _grow_embeddings(model: TimeSeriesTransformerForPrediction, sizes: list[int]) -> None:
    """Add rows for stores or skus that are new since the warm-start model was saved."""
    embedders = model.model.embedder.embedders
    for k, size in enumerate(sizes):
        old = embedders[k]
        if size <= old.num_embeddings:
            continue
        new = torch.nn.Embedding(size, old.embedding_dim)
        with torch.no_grad():
            new.weight.normal_(0.0, model.config.init_std)
            new.weight[: old.num_embeddings] = old.weight
        embedders[k] = new
    model.config.cardinality = [e.num_embeddings for e in embedders]


def _warm_start(
    init_dir: Path, history: pd.DataFrame, hp: ForecasterTraining
) -> tuple[TimeSeriesTransformerForPrediction, ForecasterMeta] | None:
    """The champion's model and metadata, vocabularies extended; None if incompatible."""
    old = ForecasterMeta.load(init_dir)
    model = TimeSeriesTransformerForPrediction.from_pretrained(init_dir / MODEL_SUBDIR)
    wanted = (hp.context_length, hp.horizon, LAGS, hp.d_model)
    found = (old.context_length, old.horizon, list(old.lags), model.config.d_model)
    if wanted != found:
        log.warning(
            "warm start skipped: %s holds context/horizon/lags/d_model %s, settings ask for %s",
            init_dir, found, wanted,
        )
        return None
    # keep the champion's indices and covariate scaling so its weights keep their meaning
    stores = old.stores + sorted(set(history["store_id"]) - set(old.stores))
    skus = old.skus + sorted(set(history["sku"]) - set(old.skus))
    meta = ForecasterMeta(
        stores=stores, skus=skus, context_length=old.context_length, horizon=old.horizon,
        lags=list(old.lags), period_days=old.period_days, price_log_mean=old.price_log_mean,
        price_log_std=old.price_log_std, num_samples=hp.num_samples,
    )
    _grow_embeddings(model, [len(stores) + 1, len(skus) + 1])
    model.config.num_parallel_samples = hp.num_samples
    log.info(
        "warm start from %s (%d new stores, %d new skus)",
        init_dir, len(stores) - len(old.stores), len(skus) - len(old.skus),
    )
    return model, meta


def _window_batches(
    panel: _Panel, static: np.ndarray, meta: ForecasterMeta, hp: ForecasterTraining, seed: int
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
    history = _clean(data.train)
    history = history[history["units"].notna()]
    warm = _warm_start(Path(init_dir), history, hp) if init_dir else None
    if warm:
        model, meta = warm
    else:
        mean, std = _price_scaling(history)
        meta = ForecasterMeta(
            stores=sorted(history["store_id"].unique()),
            skus=sorted(history["sku"].unique()),
            context_length=hp.context_length,
            horizon=hp.horizon,
            lags=list(LAGS),
            period_days=_infer_period_days(history),
            price_log_mean=mean,
            price_log_std=std,
            num_samples=hp.num_samples,
        )
        model = _new_model(meta, hp)
    panel = _build_panel(history, meta)
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
    with _cpu_threads(run.device):
        result = run_training(model, _window_batches(panel, static, meta, hp, seed), _loss, cfg, run)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save_pretrained(model_dir / MODEL_SUBDIR)
    meta.save(model_dir)
    log.info("forecaster written to %s", model_dir)
    return result


# ---------------------------------------------------------------------- predict


def _forecast(
    model: TimeSeriesTransformerForPrediction,
    meta: ForecasterMeta,
    frame: pd.DataFrame,
    device: torch.device,
) -> pd.DataFrame:
    """Forecast the rows of ``frame`` whose units are null (see ForecasterModel.predict)."""
    frame = _clean(frame)
    future = frame[frame["units"].isna()]
    history = frame[frame["units"].notna()]
    counts = future.groupby(KEYS).size()
    too_many = counts[counts > meta.horizon]
    if len(too_many):
        first = too_many.index[0]
        raise ValueError(
            f"{len(too_many)} series ask for more than the model's horizon of {meta.horizon} "
            f"future periods (e.g. store {first[0]}, sku {first[1]}: {int(too_many.iloc[0])} rows)"
        )
    if future.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in OUTPUT_COLUMNS})
    future_keys = future[KEYS].drop_duplicates()
    history = history.merge(future_keys, on=KEYS)  # series with nothing to forecast are skipped
    panel = _build_panel(history, meta, future=future)
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
    with _cpu_threads(device), torch.random.fork_rng(devices=rng_devices):
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
        out = _forecast(self.model, self.meta, model_input, self.device)
        log.info("forecast %d rows in %.1f s", len(out), time.perf_counter() - started)
        return out


# -------------------------------------------------------------- inputs and scoring


def model_input(data: FamilyData) -> pd.DataFrame:
    """The question asked of any forecaster: train rows, then holdout rows with units null."""
    future = data.holdout.copy()
    future["units"] = np.nan
    frame = pd.concat([data.train, future], ignore_index=True)
    frame = frame[["store_id", "sku", "date", "units", "price", "promo"]]
    return frame.sort_values(["store_id", "sku", "date"], kind="stable").reset_index(drop=True)


def baseline_predictions(data: FamilyData, season_length: int) -> pd.DataFrame:
    """Seasonal naive: each holdout period gets the value ``season_length`` periods earlier
    (on the same period grid as the model), or the last value when the history is shorter."""
    history = _clean(data.train)
    history = history[history["units"].notna()]
    future = _clean(data.holdout)
    horizon = int(future.groupby(KEYS).size().max()) if len(future) else 1
    meta = ForecasterMeta(
        stores=[], skus=[], context_length=1, horizon=horizon, lags=[1],
        period_days=_infer_period_days(history), price_log_mean=0.0, price_log_std=1.0,
        num_samples=1,
    )
    panel = _build_panel(history, meta, future=future)
    width = panel.target.shape[1]
    units = panel.units  # gaps carry the last observed value
    parts = []
    for i, rows in enumerate(panel.future_rows):
        k, n = len(rows), int(panel.n[i])
        if not k:
            continue
        steps = np.arange(k)  # future step h = steps + 1
        if n == 0:
            values = np.zeros(k)
        elif n < season_length:
            values = np.repeat(units[i, -1], k)
        else:
            values = units[i, width - season_length + steps % season_length]
        values = np.clip(values, 0, None)
        parts.append(pd.DataFrame({
            "store_id": rows["store_id"].to_numpy(),
            "sku": rows["sku"].to_numpy(),
            "date": rows["date"].to_numpy(),
            "forecast": values, "p10": values, "p50": values, "p90": values,
        }))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in OUTPUT_COLUMNS})
    return pd.concat(parts, ignore_index=True)


def naive_mae(train: pd.DataFrame) -> float:
    """Mean absolute one-step naive error over all train histories (the MASE scale)."""
    frame = _clean(train)
    frame = frame[frame["units"].notna()]
    errors = frame.groupby(KEYS, sort=False)["units"].diff().abs().dropna()
    return float(errors.mean()) if len(errors) else 0.0


def score(predictions: pd.DataFrame, data: FamilyData) -> dict[str, float]:
    """WAPE, bias, MASE and 80% interval coverage of ``predictions`` on the holdout."""
    holdout = data.holdout[["store_id", "sku", "date", "units"]].copy()
    preds = predictions[["store_id", "sku", "date", "forecast", "p10", "p90"]].copy()
    for frame in (holdout, preds):
        frame["store_id"] = frame["store_id"].astype(str)
        frame["sku"] = frame["sku"].astype(str)
        frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    joined = holdout.merge(preds, on=["store_id", "sku", "date"], how="left", validate="one_to_one")
    missing = int(joined["forecast"].isna().sum())
    if missing:
        raise ValueError(f"{missing} of {len(joined)} holdout rows have no forecast")
    actual = joined["units"].to_numpy(float)
    metrics = forecast_metrics(actual, joined["forecast"].to_numpy(float), naive_mae(data.train) or None)
    inside = (actual >= joined["p10"].to_numpy(float)) & (actual <= joined["p90"].to_numpy(float))
    metrics["coverage_80"] = float(inside.mean()) if len(inside) else 0.0
    return metrics
