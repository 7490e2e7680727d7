"""Inventory planning from the demand-forecaster champion.

Per store x sku, from the champion's calibrated forecast (see
pipeline/training/forecaster/calibration.py) at the service level of the settings:

- an order placed now arrives after the lead time L and must last until the next order can
  arrive, a review period R later: the order-up-to level is the service-level quantile of
  the cumulative demand over L + R periods, and the suggested order brings stock on hand
  up to it; safety stock is that level minus the point forecast of the demand over L + R,
  which is its median (``cum_forecast``: the transformer's calibrated p50, a classic
  model's or a blend's point). The median, not the mean, on purpose: it is the demand the
  plan shows beside the order (``cover_demand``), the forecast WAPE rewards and the gate
  judged, and for right-skewed retail demand the mean lies above it, so a mean-based
  safety stock would understate the buffer the service level asks above the typical week;
- the reorder point is the service-level quantile of the demand over L periods;
- the stock-out probability is the chance that demand over the lead time exceeds what is
  on hand (read from the calibrated quantiles of that demand), and days of cover divide
  stock on hand by the forecast demand per day. ``at_risk`` ranks by that probability.

Stock on hand comes from the optional ``stock`` feed (the latest count up to the day);
without it the plan starts from zero stock and says so in ``stock_basis``.

A backtest checks the plan's promise on the last ``horizon`` periods of the calendar,
forecast from what came before them with the same question: the share of periods whose
demand exceeded the planned level (the service-level quantile) against 1 - service level.
"""

from __future__ import annotations

import logging
import math
from datetime import date, timedelta
from statistics import NormalDist

import numpy as np
import pandas as pd

from pipeline import zones
from pipeline.consumers.outputs import answer_with_champion, write_output
from pipeline.evaluation.metrics import interval_metrics
from pipeline.lake import lake_from_settings
from pipeline.registry import load_champion
from pipeline.series import SERIES_KEY, forecast_input, holdout_cutoff, sales_frame
from pipeline.settings import Settings
from pipeline.validated import read_latest, read_validated, validated_partitions

log = logging.getLogger(__name__)
QUANTILE_COLUMNS = {0.1: "cum_p10", 0.5: "cum_p50", 0.9: "cum_p90"}
# what is kept of each forecast, to be scored on the realised sales (pipeline/monitoring/live.py)
KEPT_COLUMNS = ["store_id", "sku", "date", "forecast", "p10", "p90", "p_service"]


def plan_from_forecast(forecast: pd.DataFrame, service_level: float, lead_time: int, review_period: int = 1,
                       period_days: float = 7.0, stock: pd.DataFrame | None = None) -> pd.DataFrame:
    """Order-up-to level, safety stock, reorder point, order quantity, stock-out probability
    and days of cover per store x sku, from the forecaster's output at ``service_level``;
    ``stock`` (store_id, sku, on_hand, date) is what is on hand, when known."""
    f = forecast.sort_values([*SERIES_KEY, "date"]).copy()
    f["step"] = f.groupby(SERIES_KEY).cumcount()
    horizon = int(f["step"].max()) + 1 if len(f) else 0
    cover = lead_time + review_period
    if cover > horizon:
        log.warning("lead time + review period (%d periods) is longer than the forecast (%d): ordering for %d",
                    cover, horizon, horizon)
    lead_row = f[f["step"] == min(lead_time, horizon) - 1].set_index(SERIES_KEY)
    cover_row = f[f["step"] == min(cover, horizon) - 1].set_index(SERIES_KEY)
    grouped = f.groupby(SERIES_KEY)
    plan = pd.DataFrame({
        "first_period": grouped["date"].min(),
        "mean_period_demand": grouped["forecast"].mean(),
        "lead_time_demand": lead_row["cum_forecast"],
        "reorder_point": lead_row["cum_p_service"],
        "cover_demand": cover_row["cum_forecast"],
        "order_up_to": cover_row["cum_p_service"],
    }).reset_index()
    plan["safety_stock"] = (plan["order_up_to"] - plan["cover_demand"]).clip(lower=0)
    if stock is not None and len(stock):
        latest = stock.sort_values("date").groupby(SERIES_KEY).tail(1)
        plan = plan.merge(latest[[*SERIES_KEY, "on_hand", "date"]].rename(columns={"date": "counted_on"}),
                          on=SERIES_KEY, how="left")
        plan["stock_basis"] = np.where(plan["on_hand"].notna(), "stock on hand", "no count for this item: zero")
        plan["on_hand"] = plan["on_hand"].fillna(0.0)
    else:
        plan["on_hand"], plan["counted_on"] = 0.0, pd.NaT
        plan["stock_basis"] = "demand only (no stock feed)"
    plan["suggested_order"] = np.ceil((plan["order_up_to"] - plan["on_hand"]).clip(lower=0))
    plan["below_reorder_point"] = plan["on_hand"] < plan["reorder_point"]
    lead = lead_row.reindex(pd.MultiIndex.from_frame(plan[SERIES_KEY]))
    points = {**{level: lead[column].to_numpy(float) for level, column in QUANTILE_COLUMNS.items()},
              service_level: lead["cum_p_service"].to_numpy(float)}
    plan["stockout_probability"] = exceedance(points, plan["on_hand"].to_numpy(float))
    per_day = plan["mean_period_demand"] / period_days
    plan["days_of_cover"] = np.where(per_day > 0, plan["on_hand"] / per_day.clip(lower=1e-9), np.inf)
    return plan


def exceedance(points: dict[float, np.ndarray], x: np.ndarray) -> np.ndarray:
    """P(demand > x) per row, from quantiles of demand at a few levels (``{level: values}``):
    linear between them in log1p(units) against the normal quantile of the level, and
    continued with the nearest segment's slope beyond the outermost ones."""
    levels = sorted(points)
    z = np.array([NormalDist().inv_cdf(level) for level in levels])
    values = np.log1p(np.stack([np.clip(points[level], 0, None) for level in levels], axis=1))
    values = np.maximum.accumulate(values, axis=1)  # quantiles never decrease with the level
    target = np.log1p(np.clip(x, 0, None))
    out = np.empty(len(x))
    for i in range(len(x)):
        v = values[i]
        if v[-1] - v[0] < 1e-9:  # no spread: demand is that value
            out[i] = 1.0 if target[i] < v[0] else 0.0
            continue
        keep = np.concatenate([[True], np.diff(v) > 1e-9])
        vi, zi = v[keep], z[keep]
        if target[i] <= vi[0]:
            slope = (zi[1] - zi[0]) / (vi[1] - vi[0]) if len(vi) > 1 else 0.0
            zx = zi[0] + (target[i] - vi[0]) * slope
        elif target[i] >= vi[-1]:
            slope = (zi[-1] - zi[-2]) / (vi[-1] - vi[-2]) if len(vi) > 1 else 0.0
            zx = zi[-1] + (target[i] - vi[-1]) * slope
        else:
            zx = float(np.interp(target[i], vi, zi))
        out[i] = 1.0 - NormalDist().cdf(zx)
    return out


def at_risk(plan: pd.DataFrame, n: int = 20) -> pd.DataFrame:
    """Items most likely to stock out before an order placed now arrives; ties: fewest days of cover."""
    return plan.sort_values(["stockout_probability", "days_of_cover"], ascending=[False, True]).head(n)


def backtest_question(sales: pd.DataFrame, horizon: int, period_days: float,
                      plan: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The backtest's question (the history before the calendar's last ``horizon`` periods,
    asked about those periods) and the rows it is checked against."""
    frame = sales_frame(sales)
    cutoff = holdout_cutoff(frame["date"], horizon, period_days)
    held = frame[frame["date"] > cutoff]
    return forecast_input(frame[frame["date"] <= cutoff], sorted(held["date"].unique()), plan=plan), held


def backtest(model, sales: pd.DataFrame, horizon: int, period_days: float, service_level: float,  # noqa: ANN001
             plan: pd.DataFrame | None = None) -> dict[str, float]:
    """Forecast the calendar's last ``horizon`` periods from the periods before them (the
    question every caller asks: planned price and promo, or the stated assumption) and
    count how often demand exceeded the planned level, the service-level quantile."""
    question, held = backtest_question(sales, horizon, period_days, plan)
    forecast = model.predict(question, params={"service_level": service_level})
    forecast = forecast.assign(store_id=forecast["store_id"].astype(str), sku=forecast["sku"].astype(str),
                               date=pd.to_datetime(forecast["date"]).astype("datetime64[ns]"))
    joined = held.merge(forecast, on=[*SERIES_KEY, "date"])
    hits = interval_metrics(*(joined[c].to_numpy(float) for c in ("units", "p10", "p90", "p_service")))
    return {"periods": int(len(joined)), "demand_exceeded_plan": hits["exceed_share"],
            "target": round(1 - service_level, 6), "coverage_80": hits["coverage_80"], "basis": question.attrs["basis"]}


def run_inventory_plan(settings: Settings, day: date) -> str:
    """Plan from the sales of the last three context windows of the champion (its period,
    horizon and context, whatever the settings say now) and the plan feed, if any."""
    lake = lake_from_settings(settings)
    model, version = load_champion(settings, "forecaster")
    meta = model.unwrap_python_model().meta
    service_level = settings.hyperparameters("forecaster").service_level
    # sales partitions are dated on or after their rows' dates: older ones cannot hold a row in the window
    since = day - timedelta(days=math.ceil(meta.period_days * meta.past_length * 3))
    sales = read_validated(lake, "sales", day, since=since + timedelta(days=1))
    sales = sales[pd.to_datetime(sales["date"]) > pd.Timestamp(since)]
    promotions = read_latest(lake, "plan", day) if validated_partitions(lake, "plan", day) else None
    question = forecast_input(sales, plan=promotions, horizon=meta.horizon, period_days=meta.period_days,
                              context=meta.past_length)
    forecast, version_cols = answer_with_champion(
        settings, lake, "forecaster", day, model, version,
        lambda champion: champion.predict(question, params={"service_level": service_level}),
        lambda given: given[KEPT_COLUMNS])
    try:
        stock = read_validated(lake, "stock", day)
    except FileNotFoundError:
        stock = None
        log.info("no stock feed published: planning from demand alone (suggested orders assume zero stock)")
    plan = plan_from_forecast(forecast, service_level, settings.inventory_lead_time_periods,
                              settings.inventory_review_period_periods, meta.period_days, stock)
    write_output(lake, "inventory_plan", day, "forecast", forecast.assign(**version_cols))
    uri = write_output(lake, "inventory_plan", day, "plan", plan.assign(**version_cols))
    risk = at_risk(plan)
    write_output(lake, "inventory_plan", day, "at_risk", risk.assign(**version_cols))
    check = backtest(model, sales, meta.horizon, meta.period_days, service_level, promotions)
    lake.write_json(f"{zones.output_folder(lake, 'inventory_plan', day)}/backtest.json", {**check, **version_cols})
    log.info("inventory plan for %d store x sku from %s v%s -> %s (%s; future price and promo: %s); backtest over "
             "%d held-out periods: demand exceeded the plan in %.1f%% of them (target %.1f%%), p10-p90 held "
             "%.1f%%; most at risk of a stock-out:\n%s",
             len(plan), settings.model_name("forecaster"), version, uri, plan["stock_basis"].iloc[0] if len(plan) else "-",
             question.attrs["basis"], check["periods"], 100 * check["demand_exceeded_plan"], 100 * check["target"],
             100 * check["coverage_80"],
             risk[["store_id", "sku", "on_hand", "lead_time_demand", "reorder_point", "order_up_to",
                   "suggested_order", "stockout_probability", "days_of_cover"]].head(5).to_string(index=False))
    return uri
