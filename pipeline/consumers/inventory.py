"""Inventory planning from the demand-forecaster champion.

Per store x sku: forecast the next ``horizon`` periods with quantiles, then
safety stock = z(service level) x sigma over the lead time, reorder point = lead-time
demand + safety stock, and a suggested order = horizon demand + safety stock - stock on
hand. Stock on hand comes from the optional ``stock`` feed (the latest count up to the
day); without it the plan starts from zero stock and says so in ``stock_basis``.

A backtest checks the plan's promise: the last ``horizon`` periods of history are
forecast from what came before, and the share of periods whose demand exceeded the
planned level (forecast + z x sigma) is set against the target (1 - service level).
"""

from __future__ import annotations

import logging
import math
from datetime import date, timedelta
from statistics import NormalDist

import numpy as np
import pandas as pd

from pipeline import zones
from pipeline.consumers.outputs import write_output
from pipeline.lake import lake_from_settings
from pipeline.registry import load_champion
from pipeline.series import SERIES_KEY, forecast_input, sales_frame
from pipeline.settings import Settings
from pipeline.validated import read_validated

log = logging.getLogger(__name__)
Z_80 = NormalDist().inv_cdf(0.9)  # p10..p90 spans +-1.2816 sigma of a normal


def plan_from_forecast(forecast: pd.DataFrame, service_level: float, lead_time: int,
                       stock: pd.DataFrame | None = None) -> pd.DataFrame:
    """Safety stock, reorder point and order quantity per store x sku; ``stock`` (store_id,
    sku, on_hand, date) is what is on hand, when known."""
    z = NormalDist().inv_cdf(service_level)
    f = forecast.sort_values(["store_id", "sku", "date"]).copy()
    f["sigma"] = ((f["p90"] - f["p10"]) / (2 * Z_80)).clip(lower=0)
    f["step"] = f.groupby(["store_id", "sku"]).cumcount()
    lead = f[f["step"] < lead_time]
    grouped = f.groupby(["store_id", "sku"])
    plan = pd.DataFrame({
        "horizon_demand": grouped["forecast"].sum(),
        "lead_time_demand": lead.groupby(["store_id", "sku"])["forecast"].sum(),
        "lead_time_sigma": np.sqrt((lead["sigma"] ** 2).groupby([lead["store_id"], lead["sku"]]).sum()),
        "first_period": grouped["date"].min(),
    }).reset_index()
    plan["safety_stock"] = z * plan["lead_time_sigma"]
    plan["reorder_point"] = plan["lead_time_demand"] + plan["safety_stock"]
    if stock is not None and len(stock):
        latest = stock.sort_values("date").groupby(["store_id", "sku"]).tail(1)
        plan = plan.merge(latest[["store_id", "sku", "on_hand", "date"]].rename(columns={"date": "counted_on"}),
                          on=["store_id", "sku"], how="left")
        plan["stock_basis"] = np.where(plan["on_hand"].notna(), "stock on hand", "no count for this item: zero")
        plan["on_hand"] = plan["on_hand"].fillna(0.0)
    else:
        plan["on_hand"], plan["counted_on"] = 0.0, pd.NaT
        plan["stock_basis"] = "demand only (no stock feed)"
    plan["suggested_order"] = np.ceil((plan["horizon_demand"] + plan["safety_stock"] - plan["on_hand"]).clip(lower=0))
    plan["below_reorder_point"] = plan["on_hand"] < plan["reorder_point"]
    # periods of lead-time demand the stock covers: the fewer, the nearer a stock-out
    plan["cover"] = plan["on_hand"] / plan["lead_time_demand"].clip(lower=1e-9)
    return plan


def at_risk(plan: pd.DataFrame, n: int = 20) -> pd.DataFrame:
    """Items most at risk of a stock-out: least cover first, then the widest uncertainty."""
    ranked = plan.assign(uncertainty=plan["safety_stock"] / plan["lead_time_demand"].clip(lower=1))
    return ranked.sort_values(["cover", "uncertainty"], ascending=[True, False]).head(n)


def backtest(model, sales: pd.DataFrame, horizon: int, context: int, service_level: float) -> dict[str, float]:  # noqa: ANN001
    """Forecast each series' last ``horizon`` periods from the periods before them (with
    their real price and promo) and count how often demand exceeded forecast + z x sigma."""
    frame = sales_frame(sales).sort_values([*SERIES_KEY, "date"])
    from_end = frame.groupby(SERIES_KEY).cumcount(ascending=False)
    held = frame[from_end < horizon]
    forecast = model.predict(forecast_input(frame[from_end >= horizon], held, context=context))
    z = NormalDist().inv_cdf(service_level)
    forecast = forecast.assign(store_id=forecast["store_id"].astype(str), sku=forecast["sku"].astype(str),
                               date=pd.to_datetime(forecast["date"]).astype("datetime64[ns]"))
    joined = held.assign(date=held["date"].astype("datetime64[ns]")).merge(forecast, on=["store_id", "sku", "date"])
    level = joined["forecast"] + z * ((joined["p90"] - joined["p10"]) / (2 * Z_80)).clip(lower=0)
    exceeded = float((joined["units"] > level).mean()) if len(joined) else float("nan")
    return {"periods": int(len(joined)), "demand_exceeded_plan": exceeded, "target": 1 - service_level}


def run_inventory_plan(settings: Settings, day: date) -> str:
    """Plan from the sales of the last three context windows of the champion (its period,
    horizon and context, whatever the settings say now)."""
    lake = lake_from_settings(settings)
    model, version = load_champion(settings, "forecaster")
    meta = model.unwrap_python_model().meta
    # sales partitions are dated on or after their rows' dates: older ones cannot hold a row in the window
    since = day - timedelta(days=math.ceil(meta.period_days * meta.context_length * 3))
    sales = read_validated(lake, "sales", day, since=since + timedelta(days=1))
    sales = sales[pd.to_datetime(sales["date"]) > pd.Timestamp(since)]
    forecast = model.predict(forecast_input(sales, horizon=meta.horizon, period_days=meta.period_days,
                                            context=meta.context_length))
    try:
        stock = read_validated(lake, "stock", day)
    except FileNotFoundError:
        stock = None
        log.info("no stock feed published: planning from demand alone (suggested orders assume zero stock)")
    plan = plan_from_forecast(forecast, settings.inventory_service_level, settings.inventory_lead_time_periods, stock)
    version_cols = {"model_name": settings.model_name("forecaster"), "model_version": version}
    write_output(lake, "inventory_plan", day, "forecast", forecast.assign(**version_cols))
    uri = write_output(lake, "inventory_plan", day, "plan", plan.assign(**version_cols))
    risk = at_risk(plan)
    write_output(lake, "inventory_plan", day, "at_risk", risk.assign(**version_cols))
    check = backtest(model, sales, meta.horizon, meta.context_length, settings.inventory_service_level)
    lake.write_json(f"{zones.output_folder(lake, 'inventory_plan', day)}/backtest.json", {**check, **version_cols})
    log.info("inventory plan for %d store x sku from %s v%s -> %s (%s); backtest over %d held-out periods: demand "
             "exceeded the plan in %.1f%% of them (target %.1f%%); most at risk of a stock-out:\n%s",
             len(plan), settings.model_name("forecaster"), version, uri, plan["stock_basis"].iloc[0] if len(plan) else "-",
             check["periods"], 100 * check["demand_exceeded_plan"], 100 * check["target"],
             risk[["store_id", "sku", "on_hand", "lead_time_demand", "safety_stock", "reorder_point",
                   "suggested_order"]].head(5).to_string(index=False))
    return uri
