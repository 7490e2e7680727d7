"""Forecasting baselines: seasonal naive (the reference baseline) and gradient boosting on
lags, calendar, price and promo (a fit and a predict the classic forecaster candidate reuses)."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipeline.datasets import FamilyData, sales_question
from pipeline.series import (SERIES_KEY, clean, days_since_epoch, default_season, ffill, infer_period_days,
                             median_prices, series_keys, split_by_key, to_grid)

log = logging.getLogger(__name__)

FORECAST_COLUMNS = ["store_id", "sku", "date", "forecast", "p10", "p50", "p90"]


def seasonal_naive(data: FamilyData, hp: Any) -> pd.DataFrame:
    """Each asked period gets the series' value at the same point of the latest season
    (``hp.season_length`` periods, or by default a year of weekly or monthly data, a week of
    daily data) on its period grid, gaps carrying the last value; or the last value when the
    history is shorter than a season."""
    history, future, period = _question(data)
    season = hp.season_length or default_season(period)
    parts = []
    for past, rows in zip(*_by_series(history, future)):
        if not len(rows):
            continue
        grid = to_grid(past, period)
        units = ffill(np.clip(grid.units, 0, None)) if grid.n else np.zeros(1)
        if grid.n == 0 or grid.n < season:
            values = np.repeat(units[-1], len(rows))
        else:
            pos = _grid_positions(rows["date"], grid, period)  # > n - 1: periods after the history
            back = np.ceil((pos - (grid.n - 1)) / season).clip(min=1).astype(int)
            values = units[pos - season * back]
        parts.append(_forecast_rows(rows, values, values, values))
    return _concat_forecasts(parts)


# HistGradientBoosting on the question's features: one global model, log1p(units) target,
# direct multi-step (the step ahead is a feature); fixed settings a data team would start from.
# (Targets relative to the recent level were tried: WAPE 0.473 against 0.459 on the bundled
# orange-juice data with its plan, so the plain target stays.)
GBM_PARAMS = {"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 31, "min_samples_leaf": 40,
              "l2_regularization": 1.0}
# HistGradientBoostingRegressor bins a categorical feature into at most 255 values
GBM_MAX_CATEGORIES = 255
# a random sample of the (origin, step) rows beyond this: enough for 14 features, and it
# bounds the fit's time and memory for a chain's tens of thousands of series
GBM_MAX_TRAIN_ROWS = 1_000_000
GBM_LONG_MEAN = 13  # periods of the longer rolling mean
GBM_FEATURES = ["step", "lag_1", "lag_2", "lag_3", "lag_4", "mean_4", "mean_13", "seasonal", "price_ratio",
                "promo", "week_sin", "week_cos", "store", "sku"]


def gradient_boosting(data: FamilyData, hp: Any) -> pd.DataFrame:
    """scikit-learn's HistGradientBoostingRegressor on lags, rolling means, the value a
    season back, calendar, price and promo (one global model for all series), asked the
    same question as the forecaster: trained on every origin of the history
    (:func:`fit_gradient_boosting`), then forecasting the asked periods from the end of
    each series' history (:func:`predict_gradient_boosting`)."""
    history, future, period = _question(data)
    if future.empty:
        return _concat_forecasts([])
    horizon = max(1, int(future.groupby(SERIES_KEY).size().max()))
    season = hp.season_length or default_season(period)
    model = fit_gradient_boosting(history, horizon, season, period)
    if model is None:
        return _concat_forecasts([])
    rows, point = predict_gradient_boosting(model, history, future)
    return _forecast_rows(rows, point, point, point)


@dataclass
class GradientBoosting:
    """A fitted gradient-boosting forecaster: the trees and what turns a question into
    their features (``encodings``: per id column, ``{"categories": [...]}`` where the trees
    bin it, else ``{"means": {id: mean target}, "fill": overall mean}``)."""

    model: Any  # sklearn.ensemble.HistGradientBoostingRegressor
    features: list[str]
    encodings: dict[str, dict[str, Any]]
    season: int
    period_days: float
    horizon: int
    # [store, sku, median price] of each training series: the price ratio's reference,
    # whatever history a question passes (a series not in it: its question's median)
    median_prices: list[list] = field(default_factory=list)

    def settings(self) -> dict[str, Any]:
        """Everything but the trees, as plain JSON values."""
        return {"features": self.features, "encodings": self.encodings, "season": self.season,
                "period_days": self.period_days, "horizon": self.horizon, "median_prices": self.median_prices}

    def grid(self, past: pd.DataFrame) -> Any:
        """One series' history on the grid, priced against its training median."""
        if past.empty:
            return to_grid(past, self.period_days)
        return to_grid(past, self.period_days, median_price=self.medians.get(_ids(past)))

    @functools.cached_property
    def medians(self) -> dict[tuple[str, str], float]:
        return {(str(store), str(sku)): float(price) for store, sku, price in self.median_prices}


def fit_gradient_boosting(history: pd.DataFrame, horizon: int, season: int, period: float,
                          seed: int = 0) -> GradientBoosting | None:
    """The trees trained on every origin t and step h <= ``horizon`` of every series of
    ``history`` (clean, units known) whose target period t + h has a row; log1p(units)
    target, direct multi-step (the step ahead is a feature). None without a row to learn from."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    parts = []
    medians = median_prices(history)
    for past in split_by_key(history, series_keys(history).sort_values(SERIES_KEY, ignore_index=True)):
        grid = to_grid(past, period, median_price=medians.get(_ids(past)))
        if grid.n == 0:
            continue
        level = _log_level(grid)
        observed = ~np.isnan(grid.units)
        for h in range(1, horizon + 1):
            t = np.arange(0, grid.n - h)
            t = t[observed[t + h]]
            if len(t):
                parts.append(_gbm_features(level, grid, period, t, t + h, h, season, *_ids(past))
                             .assign(target=level[t + h]))
    if not parts:
        return None
    train = pd.concat(parts, ignore_index=True)
    if len(train) > GBM_MAX_TRAIN_ROWS:
        train = train.sample(GBM_MAX_TRAIN_ROWS, random_state=seed)
    encodings = _fit_id_encodings(train)
    train = _encode_ids(train, encodings)
    # a feature with no value in training (the value a season back, in histories shorter
    # than a season) is left out: the trees cannot bin it
    features = [f for f in GBM_FEATURES if train[f].notna().any()]
    categorical = [c for c, e in encodings.items() if "categories" in e]
    model = HistGradientBoostingRegressor(categorical_features=categorical, random_state=seed, **GBM_PARAMS)
    model.fit(train[features], train["target"])
    return GradientBoosting(model, features, encodings, season, period, horizon,
                            [[store, sku, price] for (store, sku), price in medians.items()])


def predict_gradient_boosting(model: GradientBoosting, history: pd.DataFrame,
                              future: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The ``future`` rows (clean) of every series with a history, in series then date
    order, and their point forecasts in units, each from the end of its series' history."""
    period = model.period_days
    asked_parts, row_parts = [], []
    for past, rows in zip(*_by_series(history, future)):
        grid = model.grid(past)
        if grid.n == 0 or not len(rows):
            continue
        pos = _grid_positions(rows["date"], grid, period)
        origin = np.full(len(rows), grid.n - 1)
        asked_parts.append(_gbm_features(_log_level(grid), grid, period, origin, pos, pos - origin, model.season,
                                         *_ids(past), price=rows["price"].to_numpy(float),
                                         promo=rows["promo"].to_numpy(float)))
        row_parts.append(rows)
    if not row_parts:
        return future.iloc[:0], np.zeros(0)
    asked = _encode_ids(pd.concat(asked_parts, ignore_index=True), model.encodings)
    point = np.clip(np.expm1(model.model.predict(asked[model.features])), 0, None)
    return pd.concat(row_parts, ignore_index=True), point


def gbm_history_periods(season: int) -> int:
    """The periods of history the features read back from an origin: the longer rolling
    mean, and the value a season back."""
    return max(GBM_LONG_MEAN, season)


def _log_level(grid: Any) -> np.ndarray:
    """log1p of a series' units on its grid, gaps carrying the last value."""
    return np.log1p(ffill(np.clip(grid.units, 0, None)))


def _ids(past: pd.DataFrame) -> tuple[str, str]:
    return str(past["store_id"].iloc[0]), str(past["sku"].iloc[0])


def _fit_id_encodings(train: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Store and sku as categories where the trees can bin them (at most GBM_MAX_CATEGORIES
    values); an id with more values (a chain's hundreds of stores) becomes the mean training
    target of its value, the overall mean for a value not seen in training."""
    encodings: dict[str, dict[str, Any]] = {}
    for column in ("store", "sku"):
        values = train[column].unique()
        if len(values) <= GBM_MAX_CATEGORIES:
            encodings[column] = {"categories": sorted(str(v) for v in values)}
        else:
            means = train.groupby(column)["target"].mean()
            encodings[column] = {"means": {str(k): float(v) for k, v in means.items()},
                                 "fill": float(train["target"].mean())}
    return encodings


def _encode_ids(frame: pd.DataFrame, encodings: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The id columns of ``frame`` as :func:`_fit_id_encodings` chose (an unknown category:
    missing, which the trees send down their learned branch)."""
    encoded = {}
    for column, encoding in encodings.items():
        if "categories" in encoding:
            encoded[column] = frame[column].astype(pd.CategoricalDtype(encoding["categories"]))
        else:
            encoded[column] = frame[column].map(encoding["means"]).astype(float).fillna(encoding["fill"])
    return frame.assign(**encoded)


def _gbm_features(level: np.ndarray, grid: Any, period: float, origin: np.ndarray, target: np.ndarray,
                  step: np.ndarray | int, season: int, store: str, sku: str, price: np.ndarray | None = None,
                  promo: np.ndarray | None = None) -> pd.DataFrame:
    """Features of forecasting grid position ``target`` from position ``origin`` (log1p units)."""
    cumulative = np.concatenate([[0.0], np.cumsum(level)])

    def lag(k: int) -> np.ndarray:
        return level[np.clip(origin - k, 0, None)]

    def mean(k: int) -> np.ndarray:
        start = np.clip(origin + 1 - k, 0, None)
        return (cumulative[origin + 1] - cumulative[start]) / (origin + 1 - start)

    back = target - season * np.ceil((target - origin) / season).clip(min=1).astype(int)
    seasonal = np.where(back >= 0, level[np.clip(back, 0, None)], np.nan)
    inside = np.clip(target, 0, grid.n - 1)
    if price is None:
        price, promo = grid.price[inside], grid.promo[inside]
    price = np.where(np.isnan(price), grid.price[-1], price)
    days = grid.days[0] + target * period
    year = 2 * np.pi * days / 365.2425
    return pd.DataFrame({
        "step": np.broadcast_to(step, origin.shape).astype(float), "lag_1": lag(0), "lag_2": lag(1),
        "lag_3": lag(2), "lag_4": lag(3), "mean_4": mean(4), "mean_13": mean(GBM_LONG_MEAN), "seasonal": seasonal,
        "price_ratio": np.log(price / grid.median_price), "promo": promo, "week_sin": np.sin(year),
        "week_cos": np.cos(year), "store": store, "sku": sku,
    })


def _question(data: FamilyData) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """The family's question split into history and asked rows, and the grid spacing."""
    question = clean(sales_question(data))
    history = question[question["units"].notna()]
    return history, question[question["units"].isna()], infer_period_days(history)


def _by_series(history: pd.DataFrame, future: pd.DataFrame) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    keys = series_keys(history, future)
    return split_by_key(history, keys), split_by_key(future, keys)


def _grid_positions(dates: pd.Series, grid: Any, period: float) -> np.ndarray:
    """Grid positions of ``dates`` on a series' grid (beyond its end for future dates)."""
    return np.rint((days_since_epoch(dates) - grid.days[0]) / period).astype(int)


def _forecast_rows(rows: pd.DataFrame, forecast: np.ndarray, p10: np.ndarray, p90: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "store_id": rows["store_id"].to_numpy(), "sku": rows["sku"].to_numpy(), "date": rows["date"].to_numpy(),
        "forecast": forecast, "p10": p10, "p50": forecast, "p90": p90,
    })


def _concat_forecasts(parts: list[pd.DataFrame]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in FORECAST_COLUMNS})
    return pd.concat(parts, ignore_index=True)
