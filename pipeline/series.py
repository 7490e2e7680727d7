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
    frame["store_id"], frame["sku"] = frame["store_id"].astype(str), frame["sku"].astype(str)
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    return frame.astype({"units": "float64", "price": "float64", "promo": "float64"})


def future_dates(last: pd.Timestamp, horizon: int, period_days: float) -> list[pd.Timestamp]:
    """The ``horizon`` periods after ``last``, ``period_days`` apart."""
    return [last + pd.Timedelta(days=period_days * step) for step in range(1, horizon + 1)]


def forecast_input(
    history: pd.DataFrame,
    dates: list[pd.Timestamp] | None = None,
    *,
    plan: pd.DataFrame | None = None,
    horizon: int = 0,
    period_days: float = 7.0,
    context: int | None = None,
) -> pd.DataFrame:
    """The question asked of a forecaster: each series' history (its last ``context``
    rows, or all), then the periods to forecast with units empty.

    Every series is asked about the same periods: ``dates``, or else the ``horizon``
    periods after the last date of the whole history, ``period_days`` apart. Their price
    and promo come from ``plan`` (the plan feed: date, store_id, sku, price, promo) where it
    has them; otherwise the stated assumption holds: the series' last known price, no
    promotion. ``frame.attrs["basis"]`` says which basis was used, for the logs."""
    frame = sales_frame(history).sort_values([*SERIES_KEY, "date"], kind="stable")
    if context:
        frame = frame.groupby(SERIES_KEY).tail(context)
    if dates is None:
        dates = future_dates(frame["date"].max(), horizon, period_days) if len(frame) else []
    dates = pd.to_datetime(pd.Series(list(dates), dtype="datetime64[ns]")).drop_duplicates().sort_values()
    keys = frame[SERIES_KEY].drop_duplicates()
    last_price = frame.dropna(subset=["price"]).groupby(SERIES_KEY)["price"].last().rename("last_price")
    future = keys.merge(pd.DataFrame({"date": dates.to_numpy()}), how="cross")
    future = future.merge(last_price.reset_index(), on=SERIES_KEY, how="left")
    planned = pd.Series(False, index=future.index)
    future["price"], future["promo"] = future.pop("last_price"), 0.0
    if plan is not None and len(plan) and len(future):
        rows = plan_frame(plan)
        merged = future[[*SERIES_KEY, "date"]].merge(rows, on=[*SERIES_KEY, "date"], how="left")
        price, promo = merged["price"].to_numpy(), merged["promo"].to_numpy()
        planned = pd.Series(~np.isnan(price) | ~np.isnan(promo), index=future.index)
        future["price"] = np.where(np.isnan(price), future["price"], price)
        future["promo"] = np.where(np.isnan(promo), 0.0, promo)
    asked = sales_frame(future.assign(units=np.nan))
    out = pd.concat([frame, asked], ignore_index=True)
    out = out.sort_values([*SERIES_KEY, "date"], kind="stable").reset_index(drop=True)
    out.attrs["basis"] = covariate_basis(int(planned.sum()), len(future))
    return out


ASSUMPTION = "last known price, no promotion"


def covariate_basis(planned: int, periods: int) -> str:
    """How the future periods' price and promo were set, in words."""
    if planned == 0:
        return f"no plan for the {periods} future periods: {ASSUMPTION}"
    if planned == periods:
        return f"plan feed for all {periods} future periods"
    return f"plan feed for {planned} of {periods} future periods; the others: {ASSUMPTION}"


def plan_frame(plan: pd.DataFrame) -> pd.DataFrame:
    """The plan feed's rows typed like the sales: store_id, sku, date, price (NaN where not
    planned), promo (NaN where not planned)."""
    out = plan.reindex(columns=[*SERIES_KEY, "date", "price", "promo"]).copy()
    out["store_id"], out["sku"] = out["store_id"].astype(str), out["sku"].astype(str)
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    out["price"] = pd.to_numeric(out["price"], errors="coerce").astype(float)
    out["price"] = out["price"].where(out["price"] > 0)
    out["promo"] = pd.to_numeric(out["promo"], errors="coerce").astype(float)
    return out.drop_duplicates([*SERIES_KEY, "date"], keep="last")


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


def holdout_cutoff(dates: pd.Series, horizon: int, period_days: float) -> pd.Timestamp:
    """The last date before the calendar's final ``horizon`` periods (half a period of slack)."""
    return pd.Timestamp(dates.max()) - pd.Timedelta(days=period_days * (horizon - 0.5))


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


def refuse_beyond_horizon(future: pd.DataFrame, horizon: int) -> None:
    """A ValueError when a series asks for more future periods (rows of ``future``) than a
    model forecasts at once."""
    counts = future.groupby(SERIES_KEY).size()
    too_many = counts[counts > horizon]
    if len(too_many):
        first = too_many.index[0]
        raise ValueError(
            f"{len(too_many)} series ask for more than the model's horizon of {horizon} "
            f"future periods (e.g. store {first[0]}, sku {first[1]}: {int(too_many.iloc[0])} rows)"
        )


def median_prices(history: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Each series' median known price in ``history``. A model keeps its training data's, so
    the price relative to it that a question asks with does not depend on how much history
    the question passes (the inventory plan passes a few context windows, evaluation all)."""
    known = history.dropna(subset=["price"])
    medians = known.groupby([known["store_id"].astype(str), known["sku"].astype(str)])["price"].median()
    return {key: float(value) for key, value in medians.items()}


def to_grid(rows: pd.DataFrame, period_days: float, fallback_price: float = 1.0,
            median_price: float | None = None) -> SeriesGrid:
    """Place one series' rows (clean, date order) on the grid of ``period_days`` spacing;
    ``median_price``: the series' median price in the model's training data (else the
    median of these rows), ``fallback_price`` for a series without any."""
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
    if median_price is None or not np.isfinite(median_price):
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
