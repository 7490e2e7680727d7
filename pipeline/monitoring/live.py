"""Live performance: the predictions kept when they were issued, joined with the ground
truth that arrived later. One pair of functions per kind of task, named in the family
records (:mod:`pipeline.families`): ``*_units`` gives one row per model version and unit
(what the metric is computed over), ``*_metrics`` the metrics of a set of such rows.

- forecasts: realised sales per store x sku x period against the forecast for that period
  issued last before the sales arrived (the shortest lead), with its quantiles;
- reviews: the label that arrived after a review was scored against the label the model
  gave it (its latest score before the label came);
- recommendations: each day a customer interacted, the items they chose against the list
  served to them last before that day (a hit when one of them is in its top 10).

A unit's ``day`` is the day its ground truth arrived: the rolling window is on it.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from pipeline.evaluation.metrics import classification_metrics, forecast_metrics, interval_metrics
from pipeline.lake import Lake
from pipeline.monitoring.issued import ISSUED_COLUMN, VERSION_COLUMN, read_issued
from pipeline.validated import PARTITION_COLUMN, latest_by_key, read_validated

# predictions issued this many days before the window are still read (a forecast for a
# period four weeks ahead, a list served before a customer's quiet weeks)
ISSUED_LOOKBACK_DAYS = 35
HIT_RANKS = 10
UNIT_COLUMNS = [VERSION_COLUMN, "unit", "day", "slice"]


def _truth(lake: Lake, feed: str, day: date, since: date) -> pd.DataFrame | None:
    """The feed's validated rows that arrived from ``since`` to ``day`` (None without any)."""
    try:
        return read_validated(lake, feed, day, since=since)
    except FileNotFoundError:
        return None


def _issued(lake: Lake, family: str, day: date, since: date) -> pd.DataFrame:
    return read_issued(lake, family, day, since - timedelta(days=ISSUED_LOOKBACK_DAYS))


def _empty(*columns: str) -> pd.DataFrame:
    return pd.DataFrame(columns=[*UNIT_COLUMNS, *columns])


# ------------------------------------------------------------------ forecasts


FORECAST_STATS = ("actual", "forecast", "p10", "p90", "p_service")


def forecast_units(lake: Lake, day: date, since: date, hp: Any = None) -> pd.DataFrame:
    """Per version and store x sku x period whose sales arrived in the window: the sales and
    the forecast (with its quantiles) issued last before they arrived."""
    issued = _issued(lake, "forecaster", day, since)
    sales = _truth(lake, "sales", day, since)
    if sales is None or issued.empty:
        return _empty(*FORECAST_STATS)
    sales = latest_by_key(sales, "sales")
    key = ["store_id", "sku", "date"]
    truth = pd.DataFrame({"store_id": sales["store_id"].astype(str), "sku": sales["sku"].astype(str),
                          "date": pd.to_datetime(sales["date"]).dt.normalize().astype("datetime64[ns]"),
                          "actual": sales["units"].astype(float),
                          "day": pd.to_datetime(sales[PARTITION_COLUMN]).astype("datetime64[ns]")})
    pred = issued.assign(store_id=issued["store_id"].astype(str), sku=issued["sku"].astype(str),
                         date=pd.to_datetime(issued["date"]).dt.normalize().astype("datetime64[ns]"))
    joined = truth.merge(pred[[*key, "forecast", "p10", "p90", "p_service", ISSUED_COLUMN, VERSION_COLUMN]], on=key)
    joined = joined[joined[ISSUED_COLUMN] < joined["day"]]
    joined = joined.sort_values(ISSUED_COLUMN).drop_duplicates([VERSION_COLUMN, *key], keep="last")
    return joined.assign(
        unit=joined["store_id"] + "|" + joined["sku"] + "|" + joined["date"].dt.strftime("%Y-%m-%d"),
        slice=joined["store_id"],
    )[[*UNIT_COLUMNS, *FORECAST_STATS, ISSUED_COLUMN]].reset_index(drop=True)


def forecast_metrics_live(units: pd.DataFrame, hp: Any = None) -> dict[str, float]:
    """WAPE, bias, the share inside p10-p90 and the share above the service-level quantile."""
    actual = units["actual"].to_numpy(float)
    out = forecast_metrics(actual, units["forecast"].to_numpy(float))
    out.update(interval_metrics(actual, *(units[c].to_numpy(float) for c in ("p10", "p90", "p_service"))))
    return out


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


def recommendation_units(lake: Lake, day: date, since: date, hp: Any = None) -> pd.DataFrame:
    """Per version and (customer, day with interactions in the window): ``hit`` 1 when an
    item the customer chose that day is in the top 10 of the list served to them last
    before that day."""
    served = _issued(lake, "recommender", day, since)
    events = _truth(lake, "interactions", day, since)
    if events is None or served.empty:
        return _empty("hit")
    events = pd.DataFrame({"customer_id": events["customer_id"].astype(str), "sku": events["sku"].astype(str),
                           "day": pd.to_datetime(events["timestamp"]).dt.normalize().astype("datetime64[ns]")})
    events = events[(events["day"] >= pd.Timestamp(since)) & (events["day"] <= pd.Timestamp(day))].drop_duplicates()
    served = served[served["rank"] <= HIT_RANKS].assign(customer_id=served["customer_id"].astype(str),
                                                       sku=served["sku"].astype(str))
    visits = events[["customer_id", "day"]].drop_duplicates().sort_values("day")
    out = []
    for version, lists in served.groupby(VERSION_COLUMN):
        issues = lists[["customer_id", ISSUED_COLUMN]].drop_duplicates().sort_values(ISSUED_COLUMN)
        matched = pd.merge_asof(visits, issues, left_on="day", right_on=ISSUED_COLUMN, by="customer_id",
                                allow_exact_matches=False).dropna(subset=[ISSUED_COLUMN])
        if matched.empty:
            continue
        hits = (events.merge(matched, on=["customer_id", "day"])
                .merge(lists[["customer_id", "sku", ISSUED_COLUMN]], on=["customer_id", "sku", ISSUED_COLUMN])
                [["customer_id", "day"]].drop_duplicates().assign(hit=1.0))
        matched = matched.merge(hits, on=["customer_id", "day"], how="left").fillna({"hit": 0.0})
        out.append(matched.assign(**{VERSION_COLUMN: version, "slice": ""}))
    if not out:
        return _empty("hit")
    units = pd.concat(out, ignore_index=True)
    units["unit"] = units["customer_id"] + "|" + units["day"].dt.strftime("%Y-%m-%d")
    return units[[*UNIT_COLUMNS, "hit", ISSUED_COLUMN]].reset_index(drop=True)


def recommendation_metrics(units: pd.DataFrame, hp: Any = None) -> dict[str, float]:
    return {f"hr_at_{HIT_RANKS}": float(np.mean(units["hit"].to_numpy(float))) if len(units) else 0.0}
