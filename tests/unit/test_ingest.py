from datetime import date

import pandas as pd
import pytest

from pipeline.ingest.land import NoDrop, land_drop
from pipeline.ingest.publish import validate_and_publish
from pipeline.validated import read_validated
from pipeline.ingest.validate import DropRejected
from pipeline.lake import Lake

DAY = date(2026, 10, 2)


@pytest.fixture
def lakes(tmp_path):
    return Lake((tmp_path / "landing").as_uri()), Lake((tmp_path / "lake").as_uri())


def _drop(landing: Lake, feed: str, name: str, text: str) -> None:
    landing.write_text(landing.uri(feed, DAY.isoformat(), name), text)


def test_good_rows_are_published_and_bad_rows_quarantined_with_their_rule(lakes):
    landing, lake = lakes
    _drop(landing, "sales", "a.csv", "date,store_id,sku,units,price,promo,region\n"
          "2026-09-28,1,OJ01,10,0.04,0,north\n2026-09-28,2,OJ01,-3,0.04,0,north\n")
    _drop(landing, "sales", "b.csv", "date,store_id,sku,units\n" + "".join(
        f"2026-09-28,{s},OJ02,{s}\n" for s in range(1, 40)))
    manifest = lake.read_json(land_drop(landing, lake, "sales", DAY))
    assert [f["name"] for f in manifest["files"]] == ["a.csv", "b.csv"] and len(manifest["files"][0]["sha256"]) == 64

    summary = validate_and_publish(lake, "sales", DAY, max_bad_share=0.05)
    assert (summary.rows_in, summary.rows_published, summary.rows_quarantined) == (41, 40, 1)
    assert summary.rule_counts == {"min:units": 1} and summary.extra_columns == ["region"]
    bad = lake.read_parquet(summary.quarantine_uri)
    assert list(bad[["units", "_rules", "_file"]].itertuples(index=False, name=None)) == [("-3", "min:units", "a.csv")]
    published = read_validated(lake, "sales", DAY)
    assert len(published) == 40 and (published["units"] >= 0).all()
    # re-running the date replaces its outputs rather than adding to them
    validate_and_publish(lake, "sales", DAY, max_bad_share=0.05)
    assert len(read_validated(lake, "sales", DAY)) == 40


def test_a_drop_missing_a_required_column_is_quarantined_whole(lakes):
    landing, lake = lakes
    _drop(landing, "reviews", "r.jsonl", '{"review_id": "1", "sku": "a", "text": "good"}\n')
    land_drop(landing, lake, "reviews", DAY)
    with pytest.raises(DropRejected, match="created_at"):
        validate_and_publish(lake, "reviews", DAY, max_bad_share=0.05)
    report = lake.read_json(lake.uri("quarantine", "reviews", f"date={DAY}", "report.json"))
    assert report["status"] == "rejected" and report["rows_quarantined"] == 1 and report["rows_published"] == 0
    assert lake.exists(lake.uri("quarantine", "reviews", f"date={DAY}", "files", "r.jsonl"))
    assert not lake.exists(lake.uri("validated", "reviews", f"date={DAY}", "part.parquet"))


def test_an_unreadable_file_names_the_file(lakes):
    landing, lake = lakes
    landing.write_bytes(landing.uri("interactions", DAY.isoformat(), "x.parquet"), b"not parquet at all")
    land_drop(landing, lake, "interactions", DAY)
    with pytest.raises(DropRejected, match="x.parquet"):
        validate_and_publish(lake, "interactions", DAY, max_bad_share=0.05)


def test_no_drop_for_a_date_is_reported_not_crashed(lakes):
    landing, lake = lakes
    with pytest.raises(NoDrop, match="no drop for feed 'catalog'"):
        land_drop(landing, lake, "catalog", DAY)


def test_parquet_drop_with_typed_columns(lakes):
    landing, lake = lakes
    frame = pd.DataFrame({"customer_id": ["c1", "c2"], "sku": ["a", "b"],
                          "timestamp": pd.to_datetime(["2026-10-01 10:00", "2026-10-02 09:00"]),
                          "event": ["rating", "purchase"], "value": [4.0, 1.0]})
    lake_path = landing.uri("interactions", DAY.isoformat(), "i.parquet")
    landing.write_parquet(lake_path, frame)
    land_drop(landing, lake, "interactions", DAY)
    summary = validate_and_publish(lake, "interactions", DAY, max_bad_share=0.05)
    assert summary.rows_published == 2
    assert str(read_validated(lake, "interactions", DAY)["timestamp"].dtype).startswith("datetime64")
