"""Daily sales through the whole path, on CDNOW's real daily sales: drift over daily drops,
the forecaster's period read from the data (a day), a week as the seasonal-naive season,
and an inventory plan for the next days with a lead time of one period (a day)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from pipeline import steps
from pipeline.__main__ import main
from pipeline.demo_data import load_cdnow_daily
from pipeline.lake import Lake
from pipeline.settings import load_settings

pytestmark = pytest.mark.slow
LAST = date(2026, 10, 3)


def test_daily_sales_from_drops_to_the_inventory_plan(retail_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"FAMILIES": '["forecaster"]', "DEVICE": "cpu", "TRAINING__FORECASTER__EPOCHS": "2",
                       "TRAINING__FORECASTER__WINDOWS_PER_SERIES": "64"}.items():
        monkeypatch.setenv(f"RETAIL_{key}", value)
    sales = load_cdnow_daily()
    sales["date"] = sales["date"] + (pd.Timestamp(LAST) - sales["date"].max())
    landing = Lake(load_settings().landing)
    # the history in one drop two days back, then a drop a day
    for day in (LAST - timedelta(days=2), LAST - timedelta(days=1), LAST):
        first = day == LAST - timedelta(days=2)
        rows = sales[sales["date"].dt.date <= day] if first else sales[sales["date"].dt.date == day]
        landing.write_bytes(landing.uri("sales", day.isoformat(), "sales.csv"), rows.to_csv(index=False).encode())
    assert main(["ingest"]) == 0

    settings = load_settings()
    lake = Lake(settings.lake_uri)
    drift = lake.read_json(lake.uri("quality", "sales", f"date={LAST}", "drift.json"))
    assert drift["reference_dates"] == [(LAST - timedelta(days=d)).isoformat() for d in (2, 1)]

    day = LAST.isoformat()
    steps.check_data("forecaster", day)
    dataset = steps.build_dataset("forecaster", day)
    run_id = steps.evaluate("forecaster", dataset, steps.fine_tune("forecaster", dataset, day))
    version = steps.register("forecaster", run_id, steps.gate("forecaster", run_id))
    from pipeline import registry

    # the best of the candidates (transformer, gradient boosting, their blend) serves: none forced
    assert steps.promote("forecaster", version)
    model, _ = registry.load_champion(settings, "forecaster")
    assert model.unwrap_python_model().meta.period_days == 1.0

    import mlflow

    metrics = mlflow.get_run(run_id).data.metrics
    holdout = lake.read_parquet(f"{dataset}/holdout.parquet")
    known = pd.concat([lake.read_parquet(f"{dataset}/train.parquet"), holdout]).sort_values("date")
    units = known.set_index(pd.to_datetime(known["date"]))["units"]
    # seasonal naive with a week's season: each holdout day gets the units of 7 days before (asked
    # from its window's origin, a week back is always known: the horizon is 4 days)
    naive = [units[d - pd.Timedelta(days=7)] for d in pd.to_datetime(holdout["date"])]
    expected_wape = abs(pd.Series(naive).to_numpy() - holdout["units"].to_numpy()).sum() / holdout["units"].sum()
    assert metrics["baselines/seasonal_naive/wape"] == pytest.approx(expected_wape)
    # seasonal naive is the reference baseline; gradient boosting is a candidate
    assert metrics["baseline_wape"] == metrics["baselines/seasonal_naive/wape"]
    assert {"candidates/transformer/wape", "candidates/gbm/wape", "candidates/blend/wape"} <= set(metrics)

    steps.inventory_plan(day)
    forecast = lake.read_parquet(lake.uri("outputs", "inventory_plan", f"date={day}", "forecast.parquet"))
    assert pd.to_datetime(forecast["date"]).dt.date.tolist() == [LAST + timedelta(days=d) for d in range(1, 5)]
    plan = lake.read_parquet(lake.uri("outputs", "inventory_plan", f"date={day}", "plan.parquet")).iloc[0]
    assert plan["lead_time_demand"] == pytest.approx(forecast["cum_forecast"].iloc[0])  # one period: one day
    # the order covers lead time + review period: two days
    assert plan["order_up_to"] == pytest.approx(forecast["cum_p_service"].iloc[1])
