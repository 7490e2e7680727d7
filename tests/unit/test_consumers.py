import numpy as np
import pandas as pd
import pytest

from pipeline.consumers.inventory import plan_from_forecast
from pipeline.consumers.outputs import neutralise_formulas
from pipeline.series import forecast_input


def test_plan_adds_safety_stock_that_grows_with_service_level():
    forecast = pd.DataFrame({
        "store_id": "1", "sku": "a", "date": pd.date_range("2026-10-05", periods=4, freq="7D"),
        "forecast": [10.0, 12.0, 8.0, 10.0], "p10": [5.0, 6.0, 4.0, 5.0], "p90": [15.0, 18.0, 12.0, 15.0],
    })
    low = plan_from_forecast(forecast, service_level=0.8, lead_time=2).iloc[0]
    high = plan_from_forecast(forecast, service_level=0.99, lead_time=2).iloc[0]
    assert low["lead_time_demand"] == 22.0 and low["horizon_demand"] == 40.0
    assert 0 < low["safety_stock"] < high["safety_stock"]
    assert high["reorder_point"] == high["lead_time_demand"] + high["safety_stock"]
    assert high["suggested_order"] >= high["horizon_demand"]


def test_forecast_input_appends_future_rows_with_unknown_units():
    sales = pd.DataFrame({"store_id": "1", "sku": "a", "date": pd.date_range("2026-09-07", periods=6, freq="7D"),
                          "units": np.arange(6.0), "price": 2.0, "promo": 1})
    frame = forecast_input(sales, horizon=3, period_days=7, context=4)
    assert len(frame) == 7 and frame["units"].isna().sum() == 3
    future = frame[frame["units"].isna()]
    assert (future["promo"] == 0).all() and (future["price"] == 2.0).all()
    assert future["date"].min() == pd.Timestamp("2026-10-19")


def test_csv_cells_that_look_like_formulas_are_neutralised():
    frame = pd.DataFrame({"text": ["=HYPERLINK(1)", "+1", "-2", "@x", "fine"], "n": [-1, 2, 3, 4, 5]})
    out = neutralise_formulas(frame)
    assert list(out["text"]) == ["'=HYPERLINK(1)", "'+1", "'-2", "'@x", "fine"]
    assert list(out["n"]) == [-1, 2, 3, 4, 5]


def test_a_jump_in_a_skus_negative_share_is_found():
    from datetime import date

    from pipeline.consumers.review_insights import negative_jumps

    day = date(2026, 10, 3)
    rows = [("A", "2026-10-01", "great")] * 8 + [("A", "2026-10-03", "other")] * 5 + [("A", "2026-10-03", "great")] * 1
    rows += [("B", "2026-10-02", "other")] * 5 + [("B", "2026-10-03", "other")] * 5  # bad, but not worse
    rows += [("C", "2026-10-03", "other")] * 9  # no earlier reviews: nothing to compare
    scored = pd.DataFrame(rows, columns=["sku", "created_at", "label"])
    jumps = negative_jumps(scored, day, ["other"], min_reviews=5).set_index("sku")
    assert list(jumps.index) == ["A", "B"]
    assert jumps.loc["A", "jump"] == pytest.approx(5 / 6) and jumps.loc["B", "jump"] == 0
    assert (jumps.loc["A", "reviews_today"], jumps.loc["A", "reviews_before"]) == (6, 8)
    assert negative_jumps(scored, day, ["other"], min_reviews=7).index.size == 0  # A has only 6 today


def test_plan_orders_against_stock_on_hand_and_ranks_stock_out_risk():
    from pipeline.consumers.inventory import at_risk

    forecast = pd.DataFrame({
        "store_id": ["1"] * 2 + ["2"] * 2, "sku": "a",
        "date": list(pd.date_range("2026-10-05", periods=2, freq="7D")) * 2,
        "forecast": [10.0, 10.0, 10.0, 10.0], "p10": [8.0, 8.0, 8.0, 8.0], "p90": [12.0, 12.0, 12.0, 12.0],
    })
    stock = pd.DataFrame({"store_id": ["1", "1", "2"], "sku": "a", "on_hand": [100.0, 5.0, 50.0],
                          "date": pd.to_datetime(["2026-09-28", "2026-10-04", "2026-10-04"])})
    plan = plan_from_forecast(forecast, 0.95, 1, stock).set_index("store_id")
    assert plan.loc["1", "on_hand"] == 5.0  # the latest count wins
    assert plan.loc["1", "suggested_order"] == np.ceil(20 + plan.loc["1", "safety_stock"] - 5)
    assert plan.loc["2", "suggested_order"] == 0 and not plan.loc["2", "below_reorder_point"]
    assert plan.loc["1", "below_reorder_point"] and (plan["stock_basis"] == "stock on hand").all()
    assert list(at_risk(plan.reset_index())["store_id"]) == ["1", "2"]
    without = plan_from_forecast(forecast, 0.95, 1)
    assert (without["stock_basis"] == "demand only (no stock feed)").all() and (without["on_hand"] == 0).all()


def test_backtest_counts_periods_where_demand_exceeded_the_plan():
    from pipeline.consumers.inventory import backtest

    class Flat:  # forecasts 10 with a +-2 band for every requested period
        def predict(self, frame):  # noqa: ANN001, ANN201
            future = frame[frame["units"].isna()]
            return future[["store_id", "sku", "date"]].assign(forecast=10.0, p10=8.0, p90=12.0)

    sales = pd.DataFrame({"store_id": "1", "sku": "a", "date": pd.date_range("2026-08-03", periods=8, freq="7D"),
                          "units": [10.0] * 4 + [9.0, 30.0, 11.0, 10.0], "price": 1.0, "promo": 0})
    result = backtest(Flat(), sales, horizon=4, context=4, service_level=0.95)
    assert result == {"periods": 4, "demand_exceeded_plan": 0.25, "target": pytest.approx(0.05)}


def test_poorly_reviewed_items_move_to_the_end_of_each_list():
    from pipeline.consumers.recommendations import demote

    recs = pd.DataFrame({"customer_id": ["c1"] * 3 + ["c2"] * 2, "rank": [1, 2, 3, 1, 2],
                         "sku": ["bad", "ok", "fine", "ok", "bad"], "score": [3.0, 2.0, 1.0, 2.0, 1.0]})
    out = demote(recs, pd.Series({"bad": 0.8, "ok": 0.1}), threshold=0.5)
    assert out[out["customer_id"] == "c1"][["rank", "sku"]].values.tolist() == [[1, "ok"], [2, "fine"], [3, "bad"]]
    assert out[out["customer_id"] == "c2"]["sku"].tolist() == ["ok", "bad"] and out["demoted"].sum() == 2
    assert demote(recs, pd.Series({"bad": 0.8}), threshold=0.0)["sku"].tolist() == recs["sku"].tolist()  # off
