"""Drift against the previous window, unknown skus, and holds on retraining."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from pipeline import zones
from pipeline.__main__ import main
from pipeline.ingest import quality
from pipeline.lake import Lake
from pipeline.settings import DriftSettings

DAY = date(2026, 10, 10)


def publish(lake: Lake, feed: str, day: date, frame: pd.DataFrame) -> None:
    """Stand-in for a published drop: the validated partition only."""
    lake.write_parquet(zones.validated_file(lake, feed, day), frame)


def reviews(labels: list[str], sku: str = "A1", text: str = "fine coffee") -> pd.DataFrame:
    return pd.DataFrame({"review_id": [f"{sku}-{i}-{lbl}" for i, lbl in enumerate(labels)], "sku": sku,
                         "text": text, "label": labels})


@pytest.fixture
def lake(tmp_path) -> Lake:
    lake = Lake((tmp_path / "lake").as_uri())
    publish(lake, "catalog", DAY - timedelta(days=30), pd.DataFrame({"sku": ["A1"], "title": ["Coffee"]}))
    return lake


def test_metrics_pure():
    assert quality.total_variation(pd.Series(["a", "a", "b", "b"]), pd.Series(["a", "b"])) == 0
    assert quality.total_variation(pd.Series(["a"]), pd.Series(["b"])) == 1
    assert quality.relative_change(15.0, 10.0) == pytest.approx(0.5)
    assert quality.relative_change(1.0, 0.0) is None


def test_first_drop_has_no_drift_only_the_sku_check(lake):
    publish(lake, "reviews", DAY, reviews(["positive"] * 5))
    report = quality.check_quality(lake, "reviews", DAY, DriftSettings(min_rows=1))
    assert report.reference_dates == [] and report.metrics == {"unknown_sku_share": 0.0}
    assert not report.severe and lake.read_json(report.uri)["rows"] == 5


def test_label_shift_past_severe_holds_retraining_until_acknowledged(lake):
    publish(lake, "reviews", DAY - timedelta(days=2), reviews(["positive"] * 9 + ["negative"]))
    publish(lake, "reviews", DAY, reviews(["negative"] * 9 + ["positive"]))
    report = quality.check_quality(lake, "reviews", DAY, DriftSettings(min_rows=1))
    assert report.metrics["label_shift"] == pytest.approx(0.8)
    assert report.severe and report.severe[0].startswith("label_shift=+0.8")

    quality.ensure_not_held(lake, ("sales",), DAY)  # other feeds are not held
    quality.ensure_not_held(lake, ("reviews",), DAY - timedelta(days=1))  # nor earlier days
    with pytest.raises(quality.RetrainingHeld, match=r"(?s)reviews 2026-10-10: label_shift.*data ack reviews 2026-10-10"):
        quality.ensure_not_held(lake, ("reviews",), DAY + timedelta(days=3))  # later retraining is held too

    quality.acknowledge(lake, "reviews", DAY, reason="new product line", by="tester")
    quality.ensure_not_held(lake, ("reviews",), DAY + timedelta(days=3))
    quality.check_quality(lake, "reviews", DAY, DriftSettings(min_rows=1))  # a re-run keeps the acknowledgement
    quality.ensure_not_held(lake, ("reviews",), DAY)
    [hold] = quality.all_holds(lake)
    assert hold["acknowledged"]["by"] == "tester" and hold["acknowledged"]["reason"] == "new product line"


def test_a_rerun_without_severe_drift_removes_the_hold(lake):
    publish(lake, "reviews", DAY - timedelta(days=1), reviews(["positive"] * 10))
    publish(lake, "reviews", DAY, reviews(["negative"] * 10))
    quality.check_quality(lake, "reviews", DAY, DriftSettings(min_rows=1))
    assert quality.open_holds(lake, ("reviews",), DAY)
    publish(lake, "reviews", DAY, reviews(["positive"] * 10))  # the drop was corrected and re-run
    quality.check_quality(lake, "reviews", DAY, DriftSettings(min_rows=1))
    assert quality.all_holds(lake) == []


def test_window_leaves_out_old_drops(lake):
    publish(lake, "reviews", DAY - timedelta(days=40), reviews(["negative"] * 10))
    publish(lake, "reviews", DAY - timedelta(days=3), reviews(["positive"] * 10))
    publish(lake, "reviews", DAY, reviews(["positive"] * 10, text="fine coffee, really fine coffee"))
    report = quality.check_quality(lake, "reviews", DAY, DriftSettings(window_days=28, min_rows=1))
    assert report.reference_dates == [(DAY - timedelta(days=3)).isoformat()]
    assert report.metrics["label_shift"] == 0
    assert report.metrics["text_length_change"] == pytest.approx(31 / 11 - 1, abs=1e-3)
    assert report.warnings and not report.severe


def test_a_drop_with_fewer_rows_than_min_rows_is_not_judged(lake):
    """Nine of ten labels flipped is a shift of 0.8, but ten rows are not enough to judge."""
    publish(lake, "reviews", DAY - timedelta(days=2), reviews(["positive"] * 9 + ["negative"]))
    publish(lake, "reviews", DAY, reviews(["negative"] * 9 + ["positive"]))
    report = quality.check_quality(lake, "reviews", DAY, DriftSettings(min_rows=11))
    assert "label_shift" not in report.metrics and not report.severe
    quality.ensure_not_held(lake, ("reviews",), DAY)
    assert quality.check_quality(lake, "reviews", DAY, DriftSettings(min_rows=10)).severe


def test_units_per_store_and_price_drift(lake):
    def sales(units: float, price: float) -> pd.DataFrame:
        return pd.DataFrame({"date": pd.to_datetime(["2026-09-01"] * 4), "store_id": ["1", "1", "2", "2"],
                             "sku": ["A1", "B2", "A1", "B2"], "units": units, "price": price})

    publish(lake, "sales", DAY - timedelta(days=7), sales(10.0, 2.0))
    publish(lake, "sales", DAY, sales(45.0, 2.2))
    report = quality.check_quality(lake, "sales", DAY, DriftSettings(min_rows=1))
    assert report.metrics["units_per_store_change"] == pytest.approx(3.5)
    assert report.metrics["price_change"] == pytest.approx(0.1)
    assert [s.split("=")[0] for s in report.severe] == ["units_per_store_change"]
    assert report.metrics["unknown_sku_share"] == pytest.approx(0.5)  # B2 is not in the catalog
    assert any("skus missing from the catalog (e.g. B2)" in w for w in report.warnings)


def test_nothing_published_is_its_own_error(lake):
    with pytest.raises(quality.NothingPublished):
        quality.check_quality(lake, "sales", DAY, DriftSettings(min_rows=1))


def test_cli_lists_and_acknowledges_holds(lake, monkeypatch, capsys):
    monkeypatch.setenv("RETAIL_LAKE_URI", lake.root)
    publish(lake, "reviews", DAY - timedelta(days=1), reviews(["positive"] * 10))
    publish(lake, "reviews", DAY, reviews(["negative"] * 10))
    quality.check_quality(lake, "reviews", DAY, DriftSettings(min_rows=1))
    assert main(["data", "holds"]) == 0
    assert "reviews 2026-10-10: HOLDING retraining: label_shift=+1" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no hold on sales"):
        main(["data", "ack", "sales", DAY.isoformat(), "--reason", "x"])
    assert main(["data", "ack", "reviews", DAY.isoformat(), "--reason", "promotion week", "--by", "ana"]) == 0
    main(["data", "holds"])
    assert "reviews 2026-10-10: acknowledged" in capsys.readouterr().out
    assert quality.open_holds(lake, ("reviews",), DAY) == []


def test_retraining_step_refuses_to_build_a_dataset_while_held(retail_env):
    from pipeline import steps

    lake = Lake((retail_env / "lake").as_uri())
    publish(lake, "interactions", DAY - timedelta(days=1), pd.DataFrame({"sku": ["A1"] * 10, "event": "purchase"}))
    publish(lake, "interactions", DAY, pd.DataFrame({"sku": ["A1"] * 10, "event": "view"}))
    assert quality.check_quality(lake, "interactions", DAY, DriftSettings(min_rows=1)).severe
    with pytest.raises(quality.RetrainingHeld, match="interactions 2026-10-10: event_shift"):
        steps.build_dataset("recommender", DAY.isoformat())
