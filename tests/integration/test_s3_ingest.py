"""Ingestion on S3 (moto's standalone server over HTTP): the same steps, the same zones."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import boto3
import pytest

from pipeline import steps
from pipeline.ingest.land import MissingDrop, NoDrop
from pipeline.ingest.validate import DropRejected
from pipeline.lake import Lake

DAY = date(2026, 10, 2)
HEADER = "date,store_id,sku,units,price,promo\n"


@pytest.fixture
def s3_settings(s3_endpoint, tmp_path, monkeypatch) -> tuple[Lake, Lake]:
    bucket = f"retail-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    monkeypatch.setenv("RETAIL_LAKE_URI", f"s3://{bucket}/lake")
    monkeypatch.setenv("RETAIL_LANDING_URI", f"s3://{bucket}/landing")
    monkeypatch.setenv("RETAIL_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("RETAIL_INGEST__CHUNK_ROWS", "16")  # several chunks even for a small drop
    return Lake(f"s3://{bucket}/landing", s3_endpoint), Lake(f"s3://{bucket}/lake", s3_endpoint)


def test_land_validate_check_on_s3(s3_settings):
    landing, lake = s3_settings
    rows = "".join(f"2026-09-28,{s},OJ01,{s},0.05,0\n" for s in range(1, 60)) + "2026-09-28,60,OJ01,-1,0.05,0\n"
    landing.write_bytes(landing.uri("sales", DAY.isoformat(), "sales.csv.gz"), gzip.compress((HEADER + rows).encode()))
    landing.write_text(landing.uri("catalog", DAY.isoformat(), "catalog.csv"), "sku,title\nOJ01,Orange juice\n")

    for feed in ("catalog", "sales"):
        steps.land(feed, DAY.isoformat())
        report_uri = steps.validate(feed, DAY.isoformat())
        assert report_uri.startswith(lake.root) and report_uri.endswith("validation.html")
    drift_uri = steps.check_quality("sales", DAY.isoformat())

    manifest = lake.read_json(lake.uri("raw", "sales", DAY.isoformat(), "manifest.json"))
    publish = manifest["publish"]
    assert (publish["rows_in"], publish["rows_published"], publish["rows_quarantined"]) == (60, 59, 1)
    assert len(lake.read_parquet(lake.uri("validated", "sales", f"date={DAY}", "part.parquet"))) == 59
    bad = lake.read_parquet(lake.uri("quarantine", "sales", f"date={DAY}", "rows.parquet"))
    assert bad["_rules"].tolist() == ["min:units"]
    assert lake.read_json(drift_uri)["metrics"]["unknown_sku_share"] == 0

    # a re-run replaces, never duplicates
    steps.validate("sales", DAY.isoformat())
    assert len(lake.read_parquet(lake.uri("validated", "sales", f"date={DAY}", "part.parquet"))) == 59
    assert not [u for u in lake.list(lake.root) if u.endswith(".tmp")]


def test_a_traversal_key_on_s3_cannot_escape_a_local_lake(s3_settings, tmp_path, monkeypatch):
    landing, _ = s3_settings
    local = tmp_path / "deep" / "lake"
    monkeypatch.setenv("RETAIL_LAKE_URI", local.as_uri())
    s3 = boto3.client("s3", endpoint_url=landing.s3_endpoint_url)
    bucket = landing.root.split("/")[2]
    s3.put_object(Bucket=bucket, Key=f"landing/sales/{DAY}/../../../../../evil.csv", Body=HEADER.encode())
    steps.land("sales", DAY.isoformat())
    with pytest.raises(DropRejected, match="unsafe file name"):
        steps.validate("sales", DAY.isoformat())
    assert not list(Path(tmp_path).rglob("evil.csv"))
    assert all(str(p).startswith(str(local)) for p in Path(tmp_path).rglob("*") if p.is_file())


def test_missing_drop_skips_or_fails_as_configured(s3_settings, monkeypatch):
    with pytest.raises(NoDrop):
        steps.land("reviews", DAY.isoformat())
    monkeypatch.setenv("RETAIL_INGEST__MISSING_DROP", "fail")
    with pytest.raises(MissingDrop, match="ingest.missing_drop=fail"):
        steps.land("reviews", DAY.isoformat())
