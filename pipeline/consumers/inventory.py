"""Inventory planning from the demand-forecaster champion.

Per store x sku: forecast the next ``horizon`` periods with quantiles, then
safety stock = z(service level) x sigma over the lead time, reorder point = lead-time
demand + safety stock. No stock feed exists yet, so the suggested order covers the whole
horizon's demand plus safety stock from zero stock; the output says so.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from statistics import NormalDist

import numpy as np
import pandas as pd

from pipeline.consumers.outputs import write_output
from pipeline.datasets import sales_frame
from pipeline.ingest.publish import read_validated
from pipeline.lake import lake_from_settings
from pipeline.registry import load_champion
from pipeline.settings import Settings

log = logging.getLogger(__name__)
Z_80 = NormalDist().inv_cdf(0.9)  # p10..p90 spans +-1.2816 sigma of a normal


def planning_input(sales: pd.DataFrame, horizon: int, context: int, period_days: int) -> pd.DataFrame:
    """Each series' recent history plus ``horizon`` future rows (last price, no promo)."""
    frame = sales_frame(sales).sort_values(["store_id", "sku", "date"])
    history = frame.groupby(["store_id", "sku"]).tail(context)
    last = history.groupby(["store_id", "sku"]).tail(1)
    future = [
        last.assign(date=last["date"] + pd.Timedelta(days=period_days * step), units=np.nan, promo=0.0)
        for step in range(1, horizon + 1)
    ]
    return pd.concat([history, *future], ignore_index=True).sort_values(["store_id", "sku", "date"])


def plan_from_forecast(forecast: pd.DataFrame, service_level: float, lead_time: int) -> pd.DataFrame:
    """Safety stock, reorder point and order quantity per store x sku."""
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
    plan["suggested_order"] = np.ceil(plan["horizon_demand"] + plan["safety_stock"])
    plan["stock_basis"] = "demand only (no stock feed)"
    return plan


def run_inventory_plan(settings: Settings, day: date) -> str:
    lake = lake_from_settings(settings)
    model, version = load_champion(settings, "forecaster")
    hp = settings.training.forecaster
    period_days = 7 if settings.sales_period == "week" else 1
    sales = read_validated(lake, "sales", day)
    sales = sales[pd.to_datetime(sales["date"]) > pd.Timestamp(day - timedelta(days=period_days * hp.context_length * 3))]
    forecast = model.predict(planning_input(sales, hp.horizon, hp.context_length, period_days))
    plan = plan_from_forecast(forecast, settings.inventory_service_level, settings.inventory_lead_time_periods)
    version_cols = {"model_name": settings.model_name("forecaster"), "model_version": version}
    write_output(lake, "inventory_plan", day, "forecast", forecast.assign(**version_cols))
    uri = write_output(lake, "inventory_plan", day, "plan", plan.assign(**version_cols))
    risk = plan.assign(risk=plan["safety_stock"] / plan["lead_time_demand"].clip(lower=1)).nlargest(5, "risk")
    log.info("inventory plan for %d store x sku from %s v%s -> %s; widest uncertainty:\n%s",
             len(plan), settings.model_name("forecaster"), version, uri,
             risk[["store_id", "sku", "lead_time_demand", "safety_stock", "reorder_point"]].to_string(index=False))
    return uri
