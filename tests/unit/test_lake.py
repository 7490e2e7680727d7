import boto3
import pandas as pd
import pytest

from pipeline.lake import Lake


def _roundtrip(lake: Lake) -> None:
    frame = pd.DataFrame({"sku": ["a", "b"], "units": [1.0, 2.5]})
    uri = lake.write_parquet(lake.uri("validated", "sales", "date=2026-10-01", "part.parquet"), frame)
    pd.testing.assert_frame_equal(lake.read_parquet(uri), frame)
    lake.write_json(lake.uri("raw", "x", "manifest.json"), {"rows": 2})
    assert lake.read_json(lake.uri("raw", "x", "manifest.json")) == {"rows": 2}
    assert lake.list(lake.uri("validated")) == [uri]
    assert lake.exists(uri)
    lake.delete_prefix(lake.uri("validated"))
    assert lake.list(lake.uri("validated")) == [] and not lake.exists(uri)


def test_local_lake_roundtrip_and_atomic_overwrite(tmp_path):
    lake = Lake((tmp_path / "lake").as_uri())
    _roundtrip(lake)
    target = lake.uri("a.txt")
    lake.write_text(target, "one")
    lake.write_text(target, "two")
    assert lake.read_bytes(target) == b"two"
    # no temporary file is left behind and hidden files are not listed
    assert [p.name for p in (tmp_path / "lake").iterdir() if p.is_file()] == ["a.txt"]


def test_s3_lake_against_moto_server(s3_endpoint):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="retail-lake")
    _roundtrip(Lake("s3://retail-lake/prefix", s3_endpoint))
    # a folder marker (a key ending in "/", as some S3 tools write) is not a file
    s3.put_object(Bucket="retail-lake", Key="prefix/landing/sales/2026-10-01/", Body=b"")
    s3.put_object(Bucket="retail-lake", Key="prefix/landing/sales/2026-10-01/a.csv", Body=b"x")
    lake = Lake("s3://retail-lake/prefix", s3_endpoint)
    assert lake.list(lake.uri("landing", "sales", "2026-10-01")) == [lake.uri("landing/sales/2026-10-01/a.csv")]


def test_unsupported_scheme_is_a_clear_error():
    with pytest.raises(ValueError, match="use file:// or s3://"):
        Lake("gs://bucket").read_bytes("gs://bucket/x")
