"""The forecaster's view of the data: its metadata (vocabularies, window sizes, grid,
covariate scaling) and every series on one grid, left-padded to a common width, with the
time features and covariates the model reads."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.series import days_since_epoch, ffill, series_keys, split_by_key, to_grid

META_FILE = "forecaster.json"
UNKNOWN = 0  # vocabulary index of a store or sku the model has not seen
SHORT_LAGS = [1, 2, 3, 4]
# sin/cos of the year and of the week (the latter is constant for weekly data, but lets
# daily data learn the weekday pattern with the same model code)
N_TIME_FEATURES = 4
# promo, log price relative to the series' median price, standardised log price
N_DYNAMIC_FEATURES = 3
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
    # normalised residual quantiles from the calibration window (see calibration.py); None: raw
    calibration: dict | None = None
    # [store, sku, median price] of each training series: the relative-price feature's
    # reference, whatever history a question passes (a series not in it: its question's median)
    median_prices: list[list] = field(default_factory=list)

    def price_medians(self) -> dict[tuple[str, str], float]:
        """``median_prices`` by (store, sku)."""
        return {(str(store), str(sku)): float(price) for store, sku, price in self.median_prices}

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


@dataclass
class Panel:
    """All series of a frame on one grid, left-padded to a common width.

    Series ``i`` holds the last ``n[i]`` columns; the columns before it are padding.
    """

    keys: pd.DataFrame  # store_id, sku per series
    n: np.ndarray  # (S,) history length in periods
    target: np.ndarray  # (S, W) log1p(units), gaps and padding carried, float32
    observed: np.ndarray  # (S, W) 1 where units were observed
    features: np.ndarray  # (S, W, F) time features then dynamic covariates
    future_features: np.ndarray | None = None  # (S, horizon, F)
    future_rows: list[pd.DataFrame] | None = None  # requested future rows per series


def choose_lags(period_days: float, longest: int, horizon: int) -> list[int]:
    """Lags 1-4 and the seasonal ones (52 for weekly data, 12 for monthly, 7 and 364 for
    daily) that the longest series can fill: a history of at least lag + horizon + 1
    periods. A shorter series reads padding in those lags, which the model learns to weigh."""
    if period_days <= 1.5:
        seasonal = [7, 364]
    else:
        seasonal = [max(2, round(DAYS_PER_YEAR / period_days))]
    return sorted(set(SHORT_LAGS) | {lag for lag in seasonal if longest >= lag + horizon + 1})


def price_scaling(history: pd.DataFrame) -> tuple[float, float]:
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


def _up_to(past: pd.DataFrame, asked: pd.DataFrame, period: float) -> pd.DataFrame:
    """A history that stops periods before the first asked date gets an empty row (units
    unknown) on the period before it, so the asked periods follow the history on the grid."""
    if not len(past) or not len(asked):
        return past
    before = asked["date"].min() - pd.Timedelta(days=period)
    if (before - past["date"].max()) / pd.Timedelta(days=period) < 0.5:
        return past
    gap = past.iloc[-1:].assign(date=before, units=np.nan, promo=0.0)
    return pd.concat([past, gap], ignore_index=True)


def build_panel(
    history: pd.DataFrame,
    meta: ForecasterMeta,
    future: pd.DataFrame | None = None,
) -> Panel:
    """Grid every series of ``history`` (and the requested ``future`` rows, if given);
    both are clean frames (:func:`pipeline.series.clean`)."""
    history = history[history["units"].notna()]
    keys = series_keys(history, future)
    n_series, period, horizon = len(keys), meta.period_days, meta.horizon
    fallback_price = math.exp(meta.price_log_mean)
    pasts = split_by_key(history, keys)
    if future is not None:
        pasts = [_up_to(rows, asked, period) for rows, asked in zip(pasts, split_by_key(future, keys))]
    medians = meta.price_medians()
    grids = [to_grid(rows, period, fallback_price, medians.get((str(store), str(sku))))
             for rows, store, sku in zip(pasts, keys["store_id"], keys["sku"])]

    lengths = np.array([g.n for g in grids], dtype=int)
    width = max(int(lengths.max(initial=0)), 1) + meta.past_length
    target = np.zeros((n_series, width), np.float32)
    units = np.zeros((n_series, width))
    observed = np.zeros((n_series, width), np.float32)
    price = np.ones((n_series, width))
    promo = np.zeros((n_series, width))
    days = np.zeros((n_series, width))
    median_price = np.array([g.median_price for g in grids])
    for i, g in enumerate(grids):
        n, pad = lengths[i], width - lengths[i]
        raw = np.clip(g.units, 0, None)
        observed[i, pad:] = ~np.isnan(raw)
        # gaps and the start padding repeat a neighbouring value, so the lags stay sane
        units[i, pad:] = ffill(raw) if n else raw
        units[i, :pad] = units[i, pad] if n else 0.0
        target[i] = np.log1p(units[i])
        price[i, pad:] = g.price
        price[i, :pad] = g.price[0] if n else median_price[i]
        promo[i, pad:] = g.promo
        first_day = g.days[0] if n else 0.0
        days[i, :pad] = first_day + (np.arange(pad) - pad) * period
        days[i, pad:] = g.days
    features = np.concatenate(
        [_time_features(days), _covariates(price, promo, median_price, meta)], axis=-1
    ).astype(np.float32)
    panel = Panel(keys, lengths, target, observed, features)

    if future is not None:
        future_groups = split_by_key(future, keys)
        fut_days = np.zeros((n_series, horizon))
        fut_price = np.ones((n_series, horizon))
        fut_promo = np.zeros((n_series, horizon))
        for i in range(n_series):
            rows = future_groups[i]
            k = len(rows)
            last_day = days[i, -1] if lengths[i] else days_since_epoch(rows["date"])[0] - period
            fut_days[i] = last_day + period * np.arange(1, horizon + 1)
            fut_days[i, :k] = days_since_epoch(rows["date"])[:horizon]
            # an unplanned price keeps the last known one; an unplanned promo is 0
            p = np.full(horizon, np.nan)
            p[:k] = rows["price"].to_numpy(float)[:horizon]
            p = ffill(np.concatenate([[price[i, -1]], p]))[1:]
            fut_price[i] = p
            fut_promo[i, :k] = rows["promo"].to_numpy(float)[:horizon]
        panel.future_features = np.concatenate(
            [_time_features(fut_days), _covariates(fut_price, fut_promo, median_price, meta)],
            axis=-1,
        ).astype(np.float32)
        panel.future_rows = future_groups
    return panel
