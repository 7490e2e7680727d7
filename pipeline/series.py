"""Store x sku sales series: their typed frame, their period grid, and the forecaster's
question.

:func:`forecast_input` builds what any forecaster is asked (history rows, then the
periods to forecast with empty units). Evaluation, the inventory plan's backtest, the
inventory plan itself and the input example logged for serving all build it here, so a
model is judged on the question its consumer asks.

Series live on a regular grid of periods (the typical spacing of the data,
:func:`infer_period_days`): :func:`to_grid` places a series' rows on it, leaving missing
periods empty, so the model and the seasonal-naive baseline count periods the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SERIES_KEY = ["store_id", "sku"]
COLUMNS = ["store_id", "sku", "date", "units", "price", "promo"]


def sales_frame(sales: pd.DataFrame) -> pd.DataFrame:
    """The forecaster's columns, numbers as float64: a model's signature then accepts
    missing prices and promo flags, which nullable integer columns would not carry."""
    frame = sales[COLUMNS].copy()
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.astype({"units": "float64", "price": "float64", "promo": "float64"})


def forecast_input(
    history: pd.DataFrame,
    future: pd.DataFrame | None = None,
    *,
    horizon: int = 0,
    period_days: float = 7.0,
    context: int | None = None,
) -> pd.DataFrame:
    """The question asked of a forecaster: each series' history (its last ``context``
    rows, or all), then the periods to forecast with units empty.

    ``future`` gives those periods with their known price and promo (the holdout's rows,
    say). Without it, each series gets ``horizon`` periods after its last row,
    ``period_days`` apart, at its last price and without promotion."""
    frame = sales_frame(history).sort_values([*SERIES_KEY, "date"], kind="stable")
    if context:
        frame = frame.groupby(SERIES_KEY).tail(context)
    if future is None:
        last = frame.groupby(SERIES_KEY).tail(1)
        future = pd.concat([
            last.assign(date=last["date"] + pd.Timedelta(days=period_days * step), promo=0.0)
            for step in range(1, horizon + 1)
        ], ignore_index=True)
    asked = sales_frame(future.assign(units=np.nan))
    out = pd.concat([frame, asked], ignore_index=True)
    return out.sort_values([*SERIES_KEY, "date"], kind="stable").reset_index(drop=True)


def clean(frame: pd.DataFrame) -> pd.DataFrame:
    """Typed copy sorted by series and date; price and promo may be missing (unknown)."""
    out = frame.reindex(columns=COLUMNS).copy()
    out["store_id"] = out["store_id"].astype(str)
    out["sku"] = out["sku"].astype(str)
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    out["units"] = pd.to_numeric(out["units"], errors="coerce").astype(float)
    price = pd.to_numeric(out["price"], errors="coerce").astype(float)
    out["price"] = price.where(price > 0)  # a price of 0 or less is treated as unknown
    out["promo"] = pd.to_numeric(out["promo"], errors="coerce").astype(float).fillna(0.0).clip(0, 1)
    return out.sort_values([*SERIES_KEY, "date"], kind="stable").reset_index(drop=True)


def days_since_epoch(dates: pd.Series) -> np.ndarray:
    return ((dates - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)).to_numpy(float)


def infer_period_days(history: pd.DataFrame) -> float:
    """The grid spacing: the median gap between consecutive rows of a series (7 without any)."""
    gaps = history.groupby(SERIES_KEY, sort=False)["date"].diff().dropna() / pd.Timedelta(days=1)
    gaps = gaps[gaps > 0]
    return float(gaps.median()) if len(gaps) else 7.0


def default_season(period_days: float) -> int:
    """Periods in a season: a week of daily data (7), a year of weekly (52) or monthly (12) data."""
    return 7 if period_days <= 1.5 else max(2, round(365.25 / period_days))


def ffill(values: np.ndarray) -> np.ndarray:
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


@dataclass
class SeriesGrid:
    """One series on the period grid: position 0 is its first row, the last its last row."""

    units: np.ndarray  # units as given, NaN for periods without a row
    price: np.ndarray  # known prices carried forward (the series' median before the first)
    promo: np.ndarray  # 0 where unknown
    days: np.ndarray  # day number of each grid position
    median_price: float

    @property
    def n(self) -> int:
        return len(self.units)


def to_grid(rows: pd.DataFrame, period_days: float, fallback_price: float = 1.0) -> SeriesGrid:
    """Place one series' rows (clean, date order) on the grid of ``period_days`` spacing;
    ``fallback_price`` stands for the median price of a series without any."""
    days = days_since_epoch(rows["date"])
    if len(days):
        steps = np.maximum(1, np.rint(np.diff(days) / period_days)).astype(int)
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
    price = ffill(price)
    price = np.where(np.isnan(price), median_price, price)
    return SeriesGrid(units, price, promo, grid_days, median_price)


def series_keys(history: pd.DataFrame, future: pd.DataFrame | None = None) -> pd.DataFrame:
    """The series of ``history`` (and of ``future``, sorted, when given)."""
    if future is None:
        return history[SERIES_KEY].drop_duplicates().reset_index(drop=True)
    keys = pd.concat([history[SERIES_KEY], future[SERIES_KEY]]).drop_duplicates()
    return keys.sort_values(SERIES_KEY).reset_index(drop=True)


def split_by_key(frame: pd.DataFrame, keys: pd.DataFrame) -> list[pd.DataFrame]:
    """The rows of each key in ``keys`` order (empty frames for keys with no rows)."""
    groups = {k: g for k, g in frame.groupby(SERIES_KEY, sort=False)}
    empty = frame.iloc[:0]
    return [groups.get((s, k), empty) for s, k in zip(keys["store_id"], keys["sku"])]
