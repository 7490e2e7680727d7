"""Live performance: the predictions kept when they were issued, joined with the ground
truth that arrived later. One pair of functions per kind of task, named in the family
records (:mod:`pipeline.families`): ``*_units`` gives one row per model version and unit
(what the metric is computed over), ``*_metrics`` the metrics of a set of such rows.

Each unit is the unit the holdout is scored on (:mod:`pipeline.evaluation.scoring`), so a
live metric is comparable with the metric the version was promoted on:

- forecasts: realised sales per store x sku x period x lead against the forecast for that
  period made ``lead`` periods ahead (the period's position among the series' periods in
  one issue), the one issued last before the sales arrived, with its quantiles. Every
  lead 1..horizon is a unit, as in the holdout, where each window of ``horizon`` periods
  is asked from its own origin;
- reviews: the label that arrived after a review was scored against the label the model
  gave it (its latest score before the label came);
- recommendations: the next single item, as the leave-last-out holdout: a customer's first
  interaction on a day after a list was served to them, a hit when that one item is in the
  list's top 10. A list replaced before the customer came back was never in front of
  them: of the lists followed by the same interaction, the one served last is scored.

A unit's ``day`` is the day its ground truth arrived: the rolling window is on it.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from pipeline.evaluation.metrics import classification_metrics, forecast_metrics, interval_metrics
from pipeline.lake import Lake
from pipeline.monitoring.issued import ISSUED_COLUMN, VERSION_COLUMN, read_issued
from pipeline.series import infer_period_days
from pipeline.validated import PARTITION_COLUMN, latest_by_key, read_validated

# predictions issued this many days before the window are still read (a forecast for a
# period four weeks ahead, a list served before a customer's quiet weeks); a forecaster
# whose horizon reaches further reads back to its longest lead
ISSUED_LOOKBACK_DAYS = 35
HIT_RANKS = 10
UNIT_COLUMNS = [VERSION_COLUMN, "unit", "day", "slice"]


def _truth(lake: Lake, feed: str, day: date, since: date) -> pd.DataFrame | None:
    """The feed's validated rows that arrived from ``since`` to ``day`` (None without any)."""
    try:
        return read_validated(lake, feed, day, since=since)
    except FileNotFoundError:
        return None


def _issued(lake: Lake, family: str, day: date, since: date, lookback_days: int = ISSUED_LOOKBACK_DAYS) -> pd.DataFrame:
    return read_issued(lake, family, day, since - timedelta(days=lookback_days))


def _empty(*columns: str) -> pd.DataFrame:
    return pd.DataFrame(columns=[*UNIT_COLUMNS, *columns])


# ------------------------------------------------------------------ forecasts


FORECAST_STATS = ("actual", "forecast", "p10", "p90", "p_service")
FORECAST_KEY = ["store_id", "sku", "date"]


def _with_leads(issued: pd.DataFrame) -> pd.DataFrame:
    """The kept forecasts with their ``lead``: the period's position (1-based) among the
    series' periods in the issue (one consumer run's forecast for a series)."""
    pred = issued.assign(store_id=issued["store_id"].astype(str), sku=issued["sku"].astype(str),
                         date=pd.to_datetime(issued["date"]).dt.normalize().astype("datetime64[ns]"))
    pred = pred.sort_values([VERSION_COLUMN, ISSUED_COLUMN, *FORECAST_KEY], kind="stable")
    pred = pred.drop_duplicates([VERSION_COLUMN, ISSUED_COLUMN, *FORECAST_KEY], keep="last")
    return pred.assign(lead=pred.groupby([VERSION_COLUMN, ISSUED_COLUMN, "store_id", "sku"]).cumcount() + 1)


def forecast_units(lake: Lake, day: date, since: date, hp: Any = None) -> pd.DataFrame:
    """Per version and store x sku x period x lead whose sales arrived in the window: the
    sales and the forecast made that many periods ahead (with its quantiles), issued last
    before they arrived. A period forecast at several leads is a unit at each."""
    sales = _truth(lake, "sales", day, since)
    if sales is None:
        return _empty(*FORECAST_STATS, ISSUED_COLUMN, "lead")
    sales = latest_by_key(sales, "sales")
    truth = pd.DataFrame({"store_id": sales["store_id"].astype(str), "sku": sales["sku"].astype(str),
                          "date": pd.to_datetime(sales["date"]).dt.normalize().astype("datetime64[ns]"),
                          "actual": sales["units"].astype(float),
                          "day": pd.to_datetime(sales[PARTITION_COLUMN]).astype("datetime64[ns]")})
    # the longest lead's forecast was issued about horizon + 1 periods before its sales arrived
    horizon = int(getattr(hp, "horizon", 0) or 0)
    lookback = max(ISSUED_LOOKBACK_DAYS, math.ceil((horizon + 1) * infer_period_days(truth)))
    issued = _issued(lake, "forecaster", day, since, lookback)
    if issued.empty:
        return _empty(*FORECAST_STATS, ISSUED_COLUMN, "lead")
    pred = _with_leads(issued)
    joined = truth.merge(pred[[*FORECAST_KEY, "forecast", "p10", "p90", "p_service", ISSUED_COLUMN, VERSION_COLUMN,
                               "lead"]], on=FORECAST_KEY)
    joined = joined[joined[ISSUED_COLUMN] < joined["day"]]
    joined = joined.sort_values(ISSUED_COLUMN, kind="stable").drop_duplicates(
        [VERSION_COLUMN, *FORECAST_KEY, "lead"], keep="last")
    joined = joined.sort_values([VERSION_COLUMN, *FORECAST_KEY, "lead"])
    return joined.assign(
        unit=joined["store_id"] + "|" + joined["sku"] + "|" + joined["date"].dt.strftime("%Y-%m-%d")
        + "|" + joined["lead"].astype(str),
        slice=joined["store_id"],
    )[[*UNIT_COLUMNS, *FORECAST_STATS, ISSUED_COLUMN, "lead"]].reset_index(drop=True)


def forecast_metrics_live(units: pd.DataFrame, hp: Any = None) -> dict[str, float]:
    """WAPE, bias, the share inside p10-p90 and the share above the service-level quantile,
    over every lead (as the holdout's windows score leads 1..horizon)."""
    actual = units["actual"].to_numpy(float)
    out = forecast_metrics(actual, units["forecast"].to_numpy(float))
    out.update(interval_metrics(actual, *(units[c].to_numpy(float) for c in ("p10", "p90", "p_service"))))
    return out


def forecast_metrics_by_lead(units: pd.DataFrame, hp: Any = None) -> dict[int, dict[str, float]]:
    """:func:`forecast_metrics_live` of each lead's units, with how many there are."""
    return {int(lead): {**forecast_metrics_live(rows, hp), "samples": len(rows)}
            for lead, rows in units.groupby("lead", sort=True)}


# ------------------------------------------------------------------ reviews


def review_units(lake: Lake, day: date, since: date, hp: Any = None) -> pd.DataFrame:
    """Per version and review whose label arrived in the window: that label (``truth``) and
    the one the version gave it last before (``predicted``); ``slice`` is the true class."""
    issued = _issued(lake, "sentiment", day, since)
    reviews = _truth(lake, "reviews", day, since)
    if reviews is None or issued.empty:
        return _empty("truth", "predicted")
    labelled = reviews[reviews["label"].notna()].sort_values(PARTITION_COLUMN, kind="stable")
    labelled = labelled.drop_duplicates("review_id", keep="first")  # when the label arrived
    truth = pd.DataFrame({"review_id": labelled["review_id"].astype(str), "truth": labelled["label"].astype(str),
                          "day": pd.to_datetime(labelled[PARTITION_COLUMN]).astype("datetime64[ns]")})
    pred = issued.assign(review_id=issued["review_id"].astype(str), predicted=issued["label"].astype(str))
    joined = truth.merge(pred[["review_id", "predicted", ISSUED_COLUMN, VERSION_COLUMN]], on="review_id")
    joined = joined[joined[ISSUED_COLUMN] <= joined["day"]]
    joined = joined.sort_values(ISSUED_COLUMN).drop_duplicates([VERSION_COLUMN, "review_id"], keep="last")
    return joined.assign(unit=joined["review_id"], slice=joined["truth"])[
        [*UNIT_COLUMNS, "truth", "predicted", ISSUED_COLUMN]].reset_index(drop=True)


def review_metrics(units: pd.DataFrame, hp: Any = None) -> dict[str, float]:
    """Accuracy, macro-F1 and per-class recall and F1 of the labels that arrived."""
    return classification_metrics(units["truth"].tolist(), units["predicted"].tolist())


# ------------------------------------------------------------------ recommendations


def _next_interactions(lists: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Each list (customer, ``issued`` day) with the customer's first interaction on a later
    day (``timestamp``, ``sku``); lists without one are left out. Interactions at the same
    moment count in sku order."""
    events = events.sort_values(["timestamp", "sku"], kind="stable").drop_duplicates(
        ["customer_id", "timestamp"], keep="first")
    lists = lists.assign(after=lists[ISSUED_COLUMN] + pd.Timedelta(days=1)).sort_values("after", kind="stable")
    matched = pd.merge_asof(lists, events, left_on="after", right_on="timestamp", by="customer_id",
                            direction="forward")
    return matched.dropna(subset=["timestamp"]).drop(columns="after")


def recommendation_units(lake: Lake, day: date, since: date, hp: Any = None) -> pd.DataFrame:
    """Per version and customer's next interaction in the window (the first on a day after a
    list was served to them): ``hit`` 1 when its item (``sku``) is in the top 10 of the list
    served last before it. An interaction that was not the first after any list is not a
    unit: the holdout asks for the next single item, not every item chosen."""
    served = _issued(lake, "recommender", day, since)
    # from as far back as the lists: a list's first interaction may fall before the window
    events = _truth(lake, "interactions", day, since - timedelta(days=ISSUED_LOOKBACK_DAYS))
    if events is None or served.empty:
        return _empty("hit", ISSUED_COLUMN, "sku")
    events = pd.DataFrame({"customer_id": events["customer_id"].astype(str), "sku": events["sku"].astype(str),
                           "timestamp": pd.to_datetime(events["timestamp"]).astype("datetime64[ns]")}).drop_duplicates()
    served = served.assign(customer_id=served["customer_id"].astype(str), sku=served["sku"].astype(str))
    lists = served[[VERSION_COLUMN, "customer_id", ISSUED_COLUMN]].drop_duplicates()
    units = _next_interactions(lists, events)
    units = units.assign(day=units["timestamp"].dt.normalize().astype("datetime64[ns]"))
    units = units[(units["day"] >= pd.Timestamp(since)) & (units["day"] <= pd.Timestamp(day))]
    units = units.sort_values(ISSUED_COLUMN, kind="stable").drop_duplicates(
        [VERSION_COLUMN, "customer_id", "timestamp"], keep="last")
    if units.empty:
        return _empty("hit", ISSUED_COLUMN, "sku")
    top = served.loc[served["rank"] <= HIT_RANKS, [VERSION_COLUMN, "customer_id", ISSUED_COLUMN, "sku"]]
    top = top.drop_duplicates().assign(hit=1.0)
    units = units.merge(top, on=[VERSION_COLUMN, "customer_id", ISSUED_COLUMN, "sku"], how="left")
    units = units.fillna({"hit": 0.0}).sort_values([VERSION_COLUMN, "customer_id", "timestamp"])
    units["unit"] = units["customer_id"] + "|" + units["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return units.assign(slice="")[[*UNIT_COLUMNS, "hit", ISSUED_COLUMN, "sku"]].reset_index(drop=True)


def recommendation_metrics(units: pd.DataFrame, hp: Any = None) -> dict[str, float]:
    """The hit rate at 10 of the next items: the holdout's ``hr_at_10``."""
    return {f"hr_at_{HIT_RANKS}": float(np.mean(units["hit"].to_numpy(float))) if len(units) else 0.0}
