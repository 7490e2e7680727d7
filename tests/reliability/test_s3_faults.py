"""S3 errors and timeouts: real HTTP faults (a proxy in front of moto's S3 server) against
the lake's own client. Transient 5xx answers and stalled calls are retried and nothing is
lost; a failure that persists raises an error naming the URI and nothing is written."""

from __future__ import annotations

import gzip
import io
import os
import time
from datetime import date

import boto3
import pandas as pd
import pytest
from botocore.exceptions import ClientError

from pipeline import steps
from pipeline.lake import LakeError, lake_from_settings
from pipeline.settings import load_settings
from faults import Fault

DAY = date(2026, 10, 2)
HEADER = "date,store_id,sku,units,price,promo\n"


@pytest.fixture
def bucket(s3_endpoint, s3_proxy, tmp_path, monkeypatch) -> str:
    """A fresh bucket; the pipeline reaches S3 only through the proxy, with short timeouts."""
    name = f"faults-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    monkeypatch.setenv("RETAIL_LAKE_URI", f"s3://{name}/lake")
    monkeypatch.setenv("RETAIL_LANDING_URI", f"s3://{name}/landing")
    monkeypatch.setenv("RETAIL_S3_ENDPOINT_URL", s3_proxy.url)
    monkeypatch.setenv("RETAIL_S3__MAX_ATTEMPTS", "3")
    monkeypatch.setenv("RETAIL_S3__READ_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("RETAIL_S3__CONNECT_TIMEOUT_SECONDS", "1")
    return name


def direct(s3_endpoint: str):  # noqa: ANN201 - a boto3 S3 client that bypasses the proxy
    return boto3.client("s3", endpoint_url=s3_endpoint)


def object_body(s3_endpoint: str, bucket: str, key: str) -> bytes | None:
    try:
        return direct(s3_endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in ("NoSuchKey", "404")
        return None


def test_writes_and_reads_retry_through_503s(bucket, s3_proxy, s3_endpoint):
    lake = lake_from_settings(load_settings())
    frame = pd.DataFrame({"sku": ["a", "b"], "units": [1.0, 2.5]})
    uri = lake.uri("validated", "sales", "date=2026-10-02", "part.parquet")

    s3_proxy.set(Fault(status=503, times=2, match=lambda method, path: method == "PUT"))
    lake.write_parquet(uri, frame)
    assert s3_proxy.seen("PUT") == ["fail", "fail", "forward"]  # two 503s, then the retry went through
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(
        object_body(s3_endpoint, bucket, "lake/validated/sales/date=2026-10-02/part.parquet"))), frame)

    s3_proxy.set(Fault(status=500, times=2, match=lambda method, path: method == "GET"))
    pd.testing.assert_frame_equal(lake.read_parquet(uri), frame)
    assert s3_proxy.seen("GET") == ["fail", "fail", "forward"]


def test_a_stalled_call_times_out_and_is_retried(bucket, s3_proxy, s3_endpoint):
    lake = lake_from_settings(load_settings())  # read timeout 1 s
    uri = lake.uri("raw", "x", "manifest.json")
    s3_proxy.set(Fault(times=1, stall_seconds=4, match=lambda method, path: method == "PUT"))
    started = time.monotonic()
    lake.write_json(uri, {"rows": 2})
    assert time.monotonic() - started < 4  # it did not wait for the stalled answer
    assert s3_proxy.seen("PUT") == ["stall", "forward"]
    assert object_body(s3_endpoint, bucket, "lake/raw/x/manifest.json") is not None

    s3_proxy.set(Fault(times=1, stall_seconds=4, match=lambda method, path: method == "GET"))
    started = time.monotonic()
    assert lake.read_json(uri) == {"rows": 2}
    assert time.monotonic() - started < 4 and s3_proxy.seen("GET") == ["stall", "forward"]


def test_a_failure_that_persists_names_the_uri_and_writes_nothing(bucket, s3_proxy, s3_endpoint):
    lake = lake_from_settings(load_settings())
    uri = lake.uri("validated", "sales", "date=2026-10-02", "part.parquet")
    lake.write_bytes(uri, b"the version already published")
    s3_proxy.set(Fault(status=503, times=10**6, match=lambda method, path: method == "PUT"))
    with pytest.raises(LakeError, match=rf"S3 write of {uri} failed: .*ServiceUnavailable.*reached max retries: 2"):
        lake.write_bytes(uri, b"a new version")
    assert s3_proxy.seen("PUT") == ["fail"] * 3  # RETAIL_S3__MAX_ATTEMPTS, the first try included
    key = "lake/validated/sales/date=2026-10-02/part.parquet"
    assert object_body(s3_endpoint, bucket, key) == b"the version already published"
    with pytest.raises(LakeError, match=rf"S3 write of {lake.uri('new.json')} failed"):
        lake.write_json(lake.uri("new.json"), {})
    assert object_body(s3_endpoint, bucket, "lake/new.json") is None

    # a stall that persists: timeouts, then the same kind of error
    s3_proxy.set(Fault(times=10**6, stall_seconds=3, match=lambda method, path: method == "GET"))
    with pytest.raises(LakeError, match=rf"S3 read of {uri} failed: .*(timeout|Read timed out)"):
        lake.read_bytes(uri)
    assert s3_proxy.seen("GET") == ["stall"] * 3


def test_a_multipart_upload_is_all_or_nothing(bucket, s3_proxy, s3_endpoint, tmp_path):
    lake = lake_from_settings(load_settings())
    uri = lake.uri("raw", "sales", DAY.isoformat(), "files", "big.csv")
    key = f"lake/raw/sales/{DAY}/files/big.csv"
    big = tmp_path / "big.csv"
    big.write_bytes(os.urandom(9 * 1024 * 1024))  # above boto3's 8 MB multipart threshold: two parts
    lake.put_file(big, uri)
    first = big.read_bytes()
    assert object_body(s3_endpoint, bucket, key) == first

    # parts that fail twice are retried; the object appears whole
    big.write_bytes(os.urandom(9 * 1024 * 1024))
    s3_proxy.set(Fault(status=503, times=2, match=lambda method, path: method == "PUT" and "partNumber=" in path))
    lake.put_file(big, uri)
    assert s3_proxy.seen("PUT", "partNumber=").count("fail") == 2
    assert object_body(s3_endpoint, bucket, key) == big.read_bytes()

    # the upload can never complete: an error naming the URI, the old object intact, the upload aborted
    second = big.read_bytes()
    big.write_bytes(os.urandom(9 * 1024 * 1024))
    s3_proxy.set(Fault(status=503, times=10**6, match=lambda method, path: method == "POST" and "uploadId=" in path))
    with pytest.raises(LakeError, match=rf"S3 upload of {uri} failed"):
        lake.put_file(big, uri)
    assert "fail" in s3_proxy.seen("POST", "uploadId=")
    assert object_body(s3_endpoint, bucket, key) == second != first
    assert not direct(s3_endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_a_failed_download_leaves_no_partial_file(bucket, s3_proxy, tmp_path):
    lake = lake_from_settings(load_settings())
    uri = lake.uri("raw", "sales", DAY.isoformat(), "files", "sales.csv")
    lake.write_bytes(uri, b"x" * 100_000)
    folder = tmp_path / "download"
    folder.mkdir()
    s3_proxy.set(Fault(status=503, times=10**6, match=lambda method, path: method == "GET"))
    with pytest.raises(LakeError, match=rf"S3 download of {uri} failed"):
        lake.get_file(uri, folder / "input")
    assert list(folder.iterdir()) == []
    s3_proxy.set(Fault(status=503, times=2, match=lambda method, path: method == "GET"))
    assert lake.get_file(uri, folder / "input").read_bytes() == b"x" * 100_000
    assert [p.name for p in folder.iterdir()] == ["input"]


def test_ingestion_through_a_flaky_endpoint_loses_no_row(bucket, s3_proxy, s3_endpoint):
    """Every other request of a whole land + validate run gets a 503; the outcome is the
    one of a clean run: every row accounted for, nothing temporary left behind."""
    settings = load_settings()
    landing, lake = lake_from_settings(settings.model_copy(update={"lake_uri": settings.landing})), \
        lake_from_settings(settings)
    rows = "".join(f"2026-09-28,{s},OJ01,{s},0.05,0\n" for s in range(1, 60)) + "2026-09-28,60,OJ01,-1,0.05,0\n"
    landing.write_bytes(landing.uri("sales", DAY.isoformat(), "sales.csv.gz"), gzip.compress((HEADER + rows).encode()))

    s3_proxy.set(Fault(status=503, every_other=True))
    steps.land("sales", DAY.isoformat())
    steps.validate("sales", DAY.isoformat())
    failed = sum(action == "fail" for _, _, action in s3_proxy.log)
    assert failed >= 10, s3_proxy.log  # the run really went through a flaky endpoint

    s3_proxy.set(Fault())
    publish = lake.read_json(lake.uri("raw", "sales", DAY.isoformat(), "manifest.json"))["publish"]
    assert (publish["rows_in"], publish["rows_published"], publish["rows_quarantined"]) == (60, 59, 1)
    validated = lake.read_parquet(lake.uri("validated", "sales", f"date={DAY}", "part.parquet"))
    assert sorted(validated["store_id"].astype(int)) == list(range(1, 60))
    assert lake.read_parquet(lake.uri("quarantine", "sales", f"date={DAY}", "rows.parquet"))["_rules"].tolist() == \
        ["min:units"]
    keys = [o["Key"] for o in direct(s3_endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert not [k for k in keys if k.endswith(".tmp") or "/." in k]
    assert not direct(s3_endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads")
