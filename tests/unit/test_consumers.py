import numpy as np
import pandas as pd
import pytest

from pipeline.consumers.inventory import plan_from_forecast
from pipeline.consumers.outputs import neutralise_formulas
from pipeline.series import forecast_input


def forecaster_output(store: str, demand: list[float], spread: float, on: str = "2026-10-05") -> pd.DataFrame:
    """What the forecaster returns for one series: per period and cumulative quantiles
    (median = ``demand``, p10/p90 and the p95 ``spread`` times the median apart in log terms)."""
    median = np.array(demand)
    cum = np.cumsum(median)
    out = {"store_id": store, "sku": "a", "date": pd.date_range(on, periods=len(demand), freq="7D")}
    for prefix, m in (("", median), ("cum_", cum)):
        out |= {f"{prefix}forecast": m, f"{prefix}p50": m, f"{prefix}p10": m * np.exp(-1.28 * spread),
                f"{prefix}p90": m * np.exp(1.28 * spread), f"{prefix}p_service": m * np.exp(1.645 * spread)}
    return pd.DataFrame(out)


def test_order_covers_lead_time_plus_review_period_at_the_service_level():
    forecast = forecaster_output("1", [10.0, 12.0, 8.0, 10.0], spread=0.2)
    plan = plan_from_forecast(forecast, 0.95, lead_time=1, review_period=2).iloc[0]
    # the order brings stock up to the p95 of demand over 3 periods, not the whole horizon
    assert plan["cover_demand"] == 30.0 and plan["order_up_to"] == pytest.approx(30 * np.exp(0.329))
    assert plan["safety_stock"] == pytest.approx(plan["order_up_to"] - 30.0)
    assert plan["suggested_order"] == np.ceil(plan["order_up_to"])  # no stock feed: nothing on hand
    # the reorder point is the p95 of lead-time demand
    assert plan["lead_time_demand"] == 10.0 and plan["reorder_point"] == pytest.approx(10 * np.exp(0.329))
    longer = plan_from_forecast(forecast, 0.95, lead_time=2, review_period=2).iloc[0]
    assert longer["order_up_to"] > plan["order_up_to"]


def test_safety_stock_is_the_service_level_quantile_above_the_median():
    """Lognormal demand over the cover (L + R = 2 periods): median e^mu, mean e^(mu + s^2/2),
    p95 e^(mu + 1.645 s). The safety stock is p95 - median, the buffer above the point
    forecast the plan shows; p95 - mean would be smaller by the skew."""
    mu, s = np.log(40.0), 0.5
    median, mean, p95 = np.exp(mu), np.exp(mu + s * s / 2), np.exp(mu + 1.645 * s)
    forecast = forecaster_output("1", [20.0, 20.0], spread=s)  # cumulative median 40 at the second period
    plan = plan_from_forecast(forecast, 0.95, lead_time=1, review_period=1).iloc[0]
    assert plan["cover_demand"] == pytest.approx(median) and plan["order_up_to"] == pytest.approx(p95)
    assert plan["safety_stock"] == pytest.approx(p95 - median)
    assert plan["safety_stock"] > p95 - mean + 1.0  # the median's definition, not the mean's


def test_stock_out_probability_reads_the_calibrated_quantiles():
    forecast = forecaster_output("1", [10.0, 10.0], spread=0.2)
    points = {0.1: forecast["cum_p10"].iloc[:1].to_numpy(), 0.5: forecast["cum_p50"].iloc[:1].to_numpy(),
              0.9: forecast["cum_p90"].iloc[:1].to_numpy(), 0.95: forecast["cum_p_service"].iloc[:1].to_numpy()}
    stock = np.array([0.0, 10.0])
    from pipeline.consumers.inventory import exceedance

    at = {q: exceedance(points, v)[0] for q, v in points.items()}
    for level, p in at.items():  # at each quantile, P(demand > it) is 1 - its level
        assert p == pytest.approx(1 - level, abs=0.01)
    low, mid = exceedance({k: np.repeat(v, 2) for k, v in points.items()}, stock)
    assert low > 0.99 and mid == pytest.approx(0.5, abs=0.01)


def test_forecast_input_appends_future_rows_with_unknown_units():
    sales = pd.DataFrame({"store_id": "1", "sku": "a", "date": pd.date_range("2026-09-07", periods=6, freq="7D"),
                          "units": np.arange(6.0), "price": 2.0, "promo": 1})
    frame = forecast_input(sales, horizon=3, period_days=7, context=4)
    assert len(frame) == 7 and frame["units"].isna().sum() == 3
    assert frame.attrs["basis"] == "no plan for the 3 future periods: last known price, no promotion"
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

    forecast = pd.concat([forecaster_output(store, [10.0, 10.0], spread=0.2) for store in ("1", "2", "3")])
    stock = pd.DataFrame({"store_id": ["1", "1", "2", "3"], "sku": "a", "on_hand": [100.0, 5.0, 50.0, 12.0],
                          "date": pd.to_datetime(["2026-09-28", "2026-10-04", "2026-10-04", "2026-10-04"])})
    plan = plan_from_forecast(forecast, 0.95, 1, 1, 7.0, stock).set_index("store_id")
    assert plan.loc["1", "on_hand"] == 5.0  # the latest count wins
    assert plan.loc["1", "suggested_order"] == np.ceil(plan.loc["1", "order_up_to"] - 5)
    assert plan.loc["2", "suggested_order"] == 0 and not plan.loc["2", "below_reorder_point"]
    assert plan.loc["1", "below_reorder_point"] and (plan["stock_basis"] == "stock on hand").all()
    # 5 units against a median lead-time demand of 10: likely out; 50: safe
    assert plan.loc["1", "stockout_probability"] > 0.9 > 0.01 > plan.loc["2", "stockout_probability"]
    assert plan.loc["2", "days_of_cover"] == pytest.approx(50 / (10 / 7))
    assert list(at_risk(plan.reset_index())["store_id"]) == ["1", "3", "2"]
    without = plan_from_forecast(forecast, 0.95, 1)
    assert (without["stock_basis"] == "demand only (no stock feed)").all() and (without["on_hand"] == 0).all()


def test_backtest_counts_periods_where_demand_exceeded_the_plan():
    from pipeline.consumers.inventory import backtest

    class Flat:  # forecasts 10 with p10 8, p90 12 and the service-level quantile 13
        def predict(self, frame, params=None):  # noqa: ANN001, ANN201
            assert params == {"service_level": 0.95}
            future = frame[frame["units"].isna()]
            return future[["store_id", "sku", "date"]].assign(forecast=10.0, p10=8.0, p90=12.0, p_service=13.0)

    sales = pd.DataFrame({"store_id": "1", "sku": "a", "date": pd.date_range("2026-08-03", periods=8, freq="7D"),
                          "units": [10.0] * 4 + [9.0, 30.0, 12.5, 10.0], "price": 1.0, "promo": 0})
    result = backtest(Flat(), sales, horizon=4, period_days=7.0, service_level=0.95)
    assert result["periods"] == 4 and result["demand_exceeded_plan"] == 0.25
    assert result["target"] == pytest.approx(0.05) and result["coverage_80"] == 0.5
    assert result["basis"] == "no plan for the 4 future periods: last known price, no promotion"


def test_poorly_reviewed_items_move_to_the_end_of_each_list():
    from pipeline.consumers.recommendations import demote

    recs = pd.DataFrame({"customer_id": ["c1"] * 3 + ["c2"] * 2, "rank": [1, 2, 3, 1, 2],
                         "sku": ["bad", "ok", "fine", "ok", "bad"], "score": [3.0, 2.0, 1.0, 2.0, 1.0]})
    out = demote(recs, pd.Series({"bad": 0.8, "ok": 0.1}), threshold=0.5)
    assert out[out["customer_id"] == "c1"][["rank", "sku"]].values.tolist() == [[1, "ok"], [2, "fine"], [3, "bad"]]
    assert out[out["customer_id"] == "c2"]["sku"].tolist() == ["ok", "bad"] and out["demoted"].sum() == 2
    assert demote(recs, pd.Series({"bad": 0.8}), threshold=0.0)["sku"].tolist() == recs["sku"].tolist()  # off
