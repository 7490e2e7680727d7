"""Live scoring on a real lake: predictions kept when they were issued
(:func:`pipeline.monitoring.issued.keep_issued`) joined with the ground truth that the real
ingest published later, for the three kinds of task.

One lake for the module: real data written as dated drops of the feed contract into a
landing folder and imported with :func:`pipeline.ingest.history.import_history`:
- sales: 2 stores x 2 orange-juice brands (Dominick's), the history up to D0, then one
  week's sales a drop (week 1 on D0+8, week 2 on D0+15);
- reviews: 40 Amazon fine-food reviews sent without their label on D0+1, 30 of them sent
  again with it on D0+3;
- interactions: real MovieLens customers and items on D0+1, D0+2 and D0+3.

Each is scored on the holdout's unit (:mod:`pipeline.monitoring.live`): a forecast per
period and lead, a review's label, a customer's next single item after a list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pipeline import zones
from pipeline.demo_data import load_movielens, load_orange_juice, load_reviews
from pipeline.evaluation.metrics import classification_metrics
from pipeline.ingest.history import import_history
from pipeline.lake import Lake
from pipeline.monitoring.issued import keep_issued
from pipeline.monitoring.live import (forecast_metrics_by_lead, forecast_metrics_live, forecast_units,
                                      recommendation_metrics, recommendation_units, review_metrics, review_units)
from pipeline.settings import load_settings

D0 = date(2026, 10, 1)  # the history load


def day(n: int) -> date:
    return D0 + timedelta(days=n)


STORES, SKUS = ("2", "5"), ("OJ01", "OJ02")
W1, W2, W3 = (pd.Timestamp(D0 + timedelta(weeks=k)) for k in (1, 2, 3))  # the weeks after the history
SALES_ARRIVE = {W1: day(8), W2: day(15)}  # W3's sales never arrive


@dataclass
class World:
    lake: Lake
    sales: pd.DataFrame  # the OJ rows of the four series, dated (all weeks)
    reviews: pd.DataFrame  # the 40 reviews, with their real label
    labelled: list[str]  # the review ids whose label arrived on D0+3
    customers: dict[str, str]  # role -> real MovieLens customer id
    items: dict[str, str]  # role -> real MovieLens sku


def _drop(landing: Lake, feed: str, when: date, frame: pd.DataFrame, fmt: str = "csv") -> None:
    folder = zones.landing_folder(landing, feed, when)
    if fmt == "jsonl":
        data = frame.to_json(orient="records", lines=True, date_format="iso").encode()
    elif fmt == "parquet":
        import io

        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        data = buffer.getvalue()
    else:
        data = frame.to_csv(index=False).encode()
    landing.write_bytes(f"{folder}/{feed}.{fmt}", data)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root: Path = tmp_path_factory.mktemp("live")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RETAIL_LAKE_URI", (root / "lake").as_uri())
        mp.setenv("RETAIL_LANDING_URI", (root / "landing").as_uri())
        landing, lake = Lake((root / "landing").as_uri()), Lake((root / "lake").as_uri())

        # sales: the last 12 weeks of four real series, re-dated so that week 3 from the end is D0
        oj = load_orange_juice()
        oj = oj[oj["store_id"].isin(STORES) & oj["sku"].isin(SKUS)]
        last = oj["week"].max()
        oj = oj[oj["week"] > last - 12]
        oj = oj.assign(date=[pd.Timestamp(D0 + timedelta(weeks=int(w - last + 2))) for w in oj["week"]])
        oj = oj.drop(columns="week").reset_index(drop=True)
        assert len(oj) == 4 * 12  # every series has all 12 weeks
        _drop(landing, "sales", D0, oj[oj["date"] <= pd.Timestamp(D0)])
        for week, arrives in SALES_ARRIVE.items():
            _drop(landing, "sales", arrives, oj[oj["date"] == week])

        # reviews: sent unlabelled on D0+1, 30 of them again with their label on D0+3
        reviews = load_reviews().iloc[:40].assign(created_at=datetime.combine(day(1), time(9)))
        unlabelled = reviews.assign(label=None)
        labelled = reviews.iloc[:30]
        _drop(landing, "reviews", day(1), unlabelled, "jsonl")
        _drop(landing, "reviews", day(3), labelled, "jsonl")

        # interactions: real customers rating real items they rated in MovieLens
        interactions, _ = load_movielens()
        rated = interactions.groupby("customer_id")["sku"].apply(list)
        a, b, c, d, e = rated.index[:5]
        customers = {"A": a, "B": b, "C": c, "D": d, "E": e}
        items = {"A1": rated[a][0], "A2": rated[a][1], "A3": rated[a][2], "B0": rated[b][0], "B1": rated[b][1],
                 "B2": rated[b][2], "C1": rated[c][0], "D1": rated[d][0], "E1": rated[e][0]}
        real = interactions.set_index(["customer_id", "sku"])["value"]

        def events(when: date, pairs: list[tuple[str, str]]) -> pd.DataFrame:
            return pd.DataFrame({
                "customer_id": [customers[who] for who, _ in pairs], "sku": [items[it] for _, it in pairs],
                "timestamp": [pd.Timestamp(datetime.combine(when, time(10 + i))) for i in range(len(pairs))],
                "event": "rating", "value": [float(real[(customers[who], items[it])]) for who, it in pairs],
            })

        _drop(landing, "interactions", day(1), events(day(1), [("B", "B0")]), "parquet")
        _drop(landing, "interactions", day(2),
              events(day(2), [("A", "A1"), ("A", "A3"), ("B", "B1"), ("C", "C1"), ("D", "D1")]), "parquet")
        _drop(landing, "interactions", day(3), events(day(3), [("A", "A2"), ("B", "B2"), ("E", "E1")]), "parquet")

        result = import_history(landing, lake, load_settings().ingest)
        assert not result.rejected and result.rows_quarantined == 0, result.summary()
    return World(lake, oj, reviews, list(labelled["review_id"]), customers, items)


# ------------------------------------------------------------------ forecasts


def _forecasts(sales: pd.DataFrame, weeks: list[pd.Timestamp], history_weeks: int, until: date) -> pd.DataFrame:
    """A forecast per series and week as a simple forecaster would issue it on ``until``: the
    mean of the last ``history_weeks`` weeks of sales, quantiles from those weeks."""
    rows = []
    for (store, sku), series in sales[sales["date"] <= pd.Timestamp(until)].groupby(["store_id", "sku"]):
        recent = series.sort_values("date")["units"].to_numpy(float)[-history_weeks:]
        for week in weeks:
            rows.append({"store_id": store, "sku": sku, "date": week, "forecast": recent.mean(),
                         "p10": np.quantile(recent, 0.1), "p90": np.quantile(recent, 0.9),
                         "p_service": np.quantile(recent, 0.95)})
    return pd.DataFrame(rows)


W4 = pd.Timestamp(D0 + timedelta(weeks=4))


@pytest.fixture(scope="module")
def forecasts(world: World) -> dict[tuple[str, date], pd.DataFrame]:
    """What each version kept, by (version, day issued): each issue is the next three weeks
    of every series, so a week's lead is its position in the issue."""
    kept = {
        ("1", day(1)): _forecasts(world.sales, [W1, W2, W3], 4, D0),
        ("1", day(3)): _forecasts(world.sales, [W1, W2, W3], 8, D0),   # re-issued: replaces day 1's at each lead
        ("1", day(8)): _forecasts(world.sales, [W2, W3, W4], 3, W1.date()),  # after week 1 arrived: W2 one ahead
        ("2", day(3)): _forecasts(world.sales, [W1, W2, W3], 2, D0),
    }
    # after week 1's sales arrived: a forecast for week 1 equal to its sales (it would look
    # perfect) must not be scored
    actual_w1 = world.sales[world.sales["date"] == W1]
    kept[("2", day(10))] = actual_w1.assign(forecast=actual_w1["units"], p10=actual_w1["units"],
                                            p90=actual_w1["units"], p_service=actual_w1["units"])[
        ["store_id", "sku", "date", "forecast", "p10", "p90", "p_service"]]
    for (version, issued), frame in kept.items():
        keep_issued(world.lake, "forecaster", issued, version, frame)
    return kept


# per version, (week, lead) -> the day of the forecast scored: the one issued last before the
# week's sales arrived among those made that many weeks ahead
SCORED = {"1": {(W1, 1): day(3),    # not day 1's (older); W1 arrived on day 8
                (W2, 2): day(3),    # W2 two weeks ahead: day 1's and day 3's issues, day 3's the later
                (W2, 1): day(8)},   # W2 one week ahead: day 8's issue, before W2 arrived (day 15)
          "2": {(W1, 1): day(3),    # not day 10's (after W1 arrived)
                (W2, 2): day(3)}}


def _unit(store: str, sku: str, week: pd.Timestamp, lead: int) -> str:
    return f"{store}|{sku}|{week:%Y-%m-%d}|{lead}"


def _expected(world: World, forecasts: dict, version: str, weeks_leads: list[tuple[pd.Timestamp, int]]) -> pd.DataFrame:
    """The scored forecast rows of ``version`` at those weeks and leads with the real sales."""
    parts = []
    for week, lead in weeks_leads:
        frame = forecasts[(version, SCORED[version][(week, lead)])]
        parts.append(frame[frame["date"] == week].assign(lead=lead))
    return pd.concat(parts).merge(world.sales[["store_id", "sku", "date", "units"]], on=["store_id", "sku", "date"])


def test_forecasts_are_scored_per_store_sku_period_and_lead_when_their_sales_arrive(world: World,  # noqa: ANN001
                                                                                   forecasts):
    units = forecast_units(world.lake, day(15), since=day(1))
    assert sorted(units["version"].unique()) == ["1", "2"]
    for version, scored in SCORED.items():
        mine = units[units["version"] == version]
        # W3 never sold: not scored; W4 is not in the data
        assert set(mine["unit"]) == {_unit(s, k, w, lead) for s in STORES for k in SKUS for w, lead in scored}
        assert len(mine) == len(set(mine["unit"])) == 4 * len(scored)
    # the truth is the real sales of that store, sku and week, on the day they arrived
    parts = units["unit"].str.split("|", expand=True)
    truth = world.sales.set_index(world.sales["store_id"] + "|" + world.sales["sku"] + "|"
                                  + world.sales["date"].dt.strftime("%Y-%m-%d"))["units"]
    assert np.allclose(units["actual"], truth.loc[parts[0] + "|" + parts[1] + "|" + parts[2]].to_numpy())
    arrived = {f"{w:%Y-%m-%d}": pd.Timestamp(d) for w, d in SALES_ARRIVE.items()}
    assert (units["day"] == parts[2].map(arrived)).all()
    assert (units["lead"] == parts[3].astype(int)).all()
    assert set(units["slice"]) == set(STORES)


def test_the_forecast_issued_last_before_the_sales_arrived_is_scored_at_each_lead(world: World,  # noqa: ANN001
                                                                                 forecasts):
    units = forecast_units(world.lake, day(15), since=day(1)).set_index(["version", "unit"])
    for version, scored in SCORED.items():
        for (week, lead), issued in scored.items():
            expected = _expected(world, forecasts, version, [(week, lead)])
            got = units.loc[version].loc[[_unit(r.store_id, r.sku, week, lead) for r in expected.itertuples()]]
            assert (got["issued"] == pd.Timestamp(issued)).all(), (version, week, lead)
            assert np.allclose(got["forecast"], expected["forecast"]), (version, week, lead)
            assert np.allclose(got[["p10", "p90", "p_service"]], expected[["p10", "p90", "p_service"]])
    # the issues scored differ from those they replaced, or the test could not tell them apart
    w1 = [(W1, 1)]
    assert not np.allclose(_forecasts(world.sales, [W1], 4, D0)["forecast"],
                           _expected(world, forecasts, "1", w1)["forecast"])
    assert not np.allclose(_expected(world, forecasts, "1", [(W2, 1)])["forecast"],
                           _expected(world, forecasts, "1", [(W2, 2)])["forecast"])


def test_only_the_sales_that_arrived_in_the_window_are_scored(world: World, forecasts):  # noqa: ANN001
    def weeks(units: pd.DataFrame) -> set[str]:
        return set(units["unit"].str.split("|").str[2])

    # up to D0+14: only week 1 has arrived
    assert weeks(forecast_units(world.lake, day(14), since=day(1))) == {f"{W1:%Y-%m-%d}"}
    # from D0+9: only week 2's drop is in the window, at both its leads
    units = forecast_units(world.lake, day(15), since=day(9))
    assert weeks(units) == {f"{W2:%Y-%m-%d}"}
    assert sorted(units.loc[units["version"] == "1", "lead"].unique()) == [1, 2]
    # a forecast issued on the day its sales arrived is not scored
    keep_issued(world.lake, "forecaster", day(8), "9", forecasts[("2", day(10))])
    try:
        units = forecast_units(world.lake, day(15), since=day(1))
        assert "9" not in set(units["version"])
    finally:
        world.lake.delete(zones.issued_file(world.lake, "forecaster", day(8), "9"))


def test_a_longer_horizon_reads_the_forecasts_issued_that_many_periods_before(world: World,  # noqa: ANN001
                                                                             forecasts):
    # issued 48 days before week 1 arrived, week 1 the 7th of its weeks: read with a horizon of
    # 8 weeks, not with the default lookback (35 days, a horizon of 4 weeks)
    weeks = [W1 - pd.Timedelta(weeks=k) for k in range(6, -1, -1)]
    issued = day(-40)
    keep_issued(world.lake, "forecaster", issued, "8", _forecasts(world.sales, weeks, 4, issued))
    try:
        short = forecast_units(world.lake, day(8), since=day(8), hp=SimpleNamespace(horizon=4))
        assert "8" not in set(short["version"])
        long = forecast_units(world.lake, day(8), since=day(8), hp=SimpleNamespace(horizon=8))
        mine = long[long["version"] == "8"]
        assert len(mine) == 4 and (mine["lead"] == 7).all() and (mine["issued"] == pd.Timestamp(issued)).all()
    finally:
        world.lake.delete(zones.issued_file(world.lake, "forecaster", issued, "8"))


@pytest.mark.parametrize("version", ["1", "2"])
def test_live_forecast_metrics_are_wape_bias_and_interval_shares_over_every_lead(world: World,  # noqa: ANN001
                                                                                forecasts, version: str):
    units = forecast_units(world.lake, day(15), since=day(1))
    metrics = forecast_metrics_live(units[units["version"] == version])
    pairs = _expected(world, forecasts, version, list(SCORED[version]))
    a, f = pairs["units"].to_numpy(float), pairs["forecast"].to_numpy(float)
    assert len(a) == 4 * len(SCORED[version])
    assert metrics["wape"] == pytest.approx(np.abs(f - a).sum() / a.sum())
    assert metrics["bias"] == pytest.approx((f - a).sum() / a.sum())
    inside = sum(lo <= x <= hi for x, lo, hi in zip(a, pairs["p10"], pairs["p90"]))
    assert metrics["coverage_80"] == pytest.approx(inside / len(a))
    assert metrics["exceed_share"] == pytest.approx(sum(x > q for x, q in zip(a, pairs["p_service"])) / len(a))


def test_live_forecast_metrics_by_lead(world: World, forecasts):  # noqa: ANN001
    units = forecast_units(world.lake, day(15), since=day(1))
    by_lead = forecast_metrics_by_lead(units[units["version"] == "1"])
    assert sorted(by_lead) == [1, 2]
    for lead in (1, 2):
        pairs = _expected(world, forecasts, "1", [k for k in SCORED["1"] if k[1] == lead])
        a, f = pairs["units"].to_numpy(float), pairs["forecast"].to_numpy(float)
        assert by_lead[lead]["samples"] == len(a)
        assert by_lead[lead]["wape"] == pytest.approx(np.abs(f - a).sum() / a.sum())


# ------------------------------------------------------------------ reviews


def _rule(text: str, words: tuple[str, ...]) -> str:
    return "great" if any(w in text.lower() for w in words) else "other"


@pytest.fixture(scope="module")
def review_scores(world: World) -> dict[tuple[str, date], pd.DataFrame]:
    texts = world.reviews.set_index("review_id")["text"]
    kept = {
        ("1", day(1)): ["great", "love"],
        ("1", day(2)): ["great", "love", "best", "delicious", "good"],  # replaces day 1's
        ("2", day(2)): ["!"],
    }
    frames = {}
    for (version, issued), words in kept.items():
        frames[(version, issued)] = pd.DataFrame(
            {"review_id": texts.index, "label": [_rule(t, tuple(words)) for t in texts]})
        keep_issued(world.lake, "sentiment", issued, version, frames[(version, issued)])
    return frames


def test_reviews_are_scored_against_the_label_that_arrived(world: World, review_scores):  # noqa: ANN001
    units = review_units(world.lake, day(3), since=day(1))
    truth = world.reviews.set_index("review_id")["label"]
    for version in ("1", "2"):
        mine = units[units["version"] == version].set_index("unit")
        assert sorted(mine.index) == sorted(world.labelled)  # the 10 still unlabelled are not scored
        assert (mine["truth"] == truth.loc[mine.index]).all()
        assert (mine["slice"] == mine["truth"]).all()
        assert (mine["day"] == pd.Timestamp(day(3))).all()
        # the version's latest score before the label: day 2's
        latest = review_scores[(version, day(2))].set_index("review_id")["label"]
        assert (mine["predicted"] == latest.loc[mine.index]).all()
        assert (mine["issued"] == pd.Timestamp(day(2))).all()
    # day 1's and day 2's scores of v1 differ on some labelled reviews, or that was not tested
    first = review_scores[("1", day(1))].set_index("review_id")["label"].loc[world.labelled]
    assert (first != review_scores[("1", day(2))].set_index("review_id")["label"].loc[world.labelled]).any()


def test_no_review_is_scored_before_its_label_arrives(world: World, review_scores):  # noqa: ANN001
    assert review_units(world.lake, day(2), since=day(1)).empty


def test_live_review_metrics_are_the_classification_metrics_of_the_pairs(world: World, review_scores):  # noqa: ANN001
    units = review_units(world.lake, day(3), since=day(1))
    truth = world.reviews.set_index("review_id")["label"].loc[world.labelled]
    for version in ("1", "2"):
        predicted = review_scores[(version, day(2))].set_index("review_id")["label"].loc[world.labelled]
        expected = classification_metrics(truth.tolist(), predicted.tolist())
        assert review_metrics(units[units["version"] == version]) == pytest.approx(expected)


# ------------------------------------------------------------------ recommendations


@pytest.fixture(scope="module")
def served(world: World) -> dict[tuple[str, str, str], list[str]]:
    """The lists served: (version, customer role, day) -> skus in rank order. Fillers are the
    most rated MovieLens items the customer never rated."""
    interactions, _ = load_movielens()
    popular = interactions["sku"].value_counts().index

    def filler(who: str, n: int) -> list[str]:
        seen = set(interactions.loc[interactions["customer_id"] == world.customers[who], "sku"])
        return [s for s in popular if s not in seen][:n]

    def place(base: list[str], at: dict[int, str]) -> list[str]:
        out = list(base)
        for rank, role in sorted(at.items()):
            out.insert(rank - 1, world.items[role])
        return out

    lists = {
        ("1", "A", "d1"): place(filler("A", 13), {3: "A1", 5: "A2"}),   # A1 at 3, A2 at 5
        ("1", "A", "d2"): filler("A", 15),                               # served again on day 2, without A1 and A2
        ("1", "B", "d1"): place(filler("B", 12), {1: "B0", 10: "B1"}),  # B1 at rank 10 (the last that counts)
        ("1", "C", "d1"): place(filler("C", 14), {11: "C1"}),           # C1 at rank 11: outside the top 10
        ("1", "E", "d1"): place(filler("E", 14), {2: "E1"}),            # replaced on day 2 before E came back
        ("1", "E", "d2"): filler("E", 15),
        ("2", "A", "d1"): place(filler("A", 14), {1: "A1"}),            # a second version, served once
    }
    for version in ("1", "2"):
        for when, issued in (("d1", day(1)), ("d2", day(2))):
            mine = [(who, skus) for (v, who, w), skus in lists.items() if v == version and w == when]
            if mine:
                frame = pd.concat([pd.DataFrame({"customer_id": world.customers[who], "sku": skus,
                                                 "rank": range(1, len(skus) + 1)}) for who, skus in mine],
                                  ignore_index=True)
                keep_issued(world.lake, "recommender", issued, version, frame)
    return lists


def _at(who: str, when: date, hour: int) -> str:
    return f"{who}|{when.isoformat()}T{hour:02d}:00:00"


def test_a_unit_is_the_next_item_after_a_list_a_hit_when_it_is_in_its_top_10(world: World,  # noqa: ANN001
                                                                            served):
    units = recommendation_units(world.lake, day(3), since=day(1))
    c, i = world.customers, world.items
    # (version, unit) -> (hit, the list scored, the next item)
    expected = {
        ("1", _at(c["A"], day(2), 10)): (1.0, day(1), i["A1"]),  # A1 at rank 3 (A3 an hour later is not next)
        ("1", _at(c["A"], day(3), 10)): (0.0, day(2), i["A2"]),  # day 2's list, served the day A chose A1 and A3:
                                                                 # its next item is A2 on day 3, not in it
        ("1", _at(c["B"], day(2), 12)): (1.0, day(1), i["B1"]),  # B1 at rank 10; B0 the day of the list is
                                                                 # not after it, B2 on day 3 not the next
        ("1", _at(c["C"], day(2), 13)): (0.0, day(1), i["C1"]),  # C1 at rank 11
        ("1", _at(c["E"], day(3), 12)): (0.0, day(2), i["E1"]),  # the list served last before E came back
        ("2", _at(c["A"], day(2), 10)): (1.0, day(1), i["A1"]),  # v2's only list: one unit
    }
    # D never got a list: its interaction is no unit
    got = {(v, u): (h, d.date(), s) for v, u, h, d, s in
           zip(units["version"], units["unit"], units["hit"], units["issued"], units["sku"])}
    assert got == expected
    assert (units["day"] == pd.to_datetime(units["unit"].str.split("|").str[1]).dt.normalize()).all()
    assert set(units["slice"]) == {""}
    mine = units[units["version"] == "1"]
    assert recommendation_metrics(mine)["hr_at_10"] == pytest.approx(2 / 5)


def test_interactions_outside_the_window_are_not_scored(world: World, served):  # noqa: ANN001
    units = recommendation_units(world.lake, day(3), since=day(3))
    c = world.customers
    # B2 on day 3 is not a unit: B's list was followed first by B1 on day 2, before the window
    assert set(zip(units["version"], units["unit"])) == {("1", _at(c["A"], day(3), 10)),
                                                         ("1", _at(c["E"], day(3), 12))}
    assert recommendation_units(world.lake, day(1), since=day(1)).empty  # nothing after a list yet
