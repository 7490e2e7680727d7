"""Bad input at the file level: each case gives a clear message (file, column, rule) and
loses nothing: rows in = published + quarantined, or the whole drop sits in quarantine."""

from __future__ import annotations

import gzip
import io
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from pipeline.ingest.land import land_drop
from pipeline.ingest.publish import validate_and_publish
from pipeline.validated import read_latest, read_validated
from pipeline.ingest.validate import DropRejected
from pipeline.lake import Lake

DAY = date(2026, 10, 2)
SALES_HEADER = "date,store_id,sku,units,price,promo\n"


def good_sales(stores: int = 40, sku: str = "OJ01") -> str:
    return "".join(f"2026-09-28,{s},{sku},{s},0.05,0\n" for s in range(1, stores + 1))


PLAN_HEADER = "date,store_id,sku,price,promo\n"


def good_plan(stores: int = 10) -> str:
    """Four weeks of a promotion calendar per store: the last three after the drop's date."""
    weeks = ("2026-09-28", "2026-10-05", "2026-10-12", "2026-10-19")
    return "".join(f"{w},{s},OJ01,0.05,{i % 2}\n" for s in range(1, stores + 1) for i, w in enumerate(weeks))


@pytest.fixture
def lakes(tmp_path: Path) -> tuple[Lake, Lake]:
    return Lake((tmp_path / "landing").as_uri()), Lake((tmp_path / "lake").as_uri())


def drop(landing: Lake, feed: str, files: dict[str, bytes | str]) -> None:
    for name, data in files.items():
        landing.write_bytes(landing.uri(feed, DAY.isoformat(), name), data.encode() if isinstance(data, str) else data)


def ingest(lakes: tuple[Lake, Lake], feed: str, chunk_rows: int = 500_000, max_bad_share: float = 0.05):
    landing, lake = lakes
    land_drop(landing, lake, feed, DAY)
    return validate_and_publish(lake, feed, DAY, max_bad_share, chunk_rows)


def rejected(lakes: tuple[Lake, Lake], feed: str, match: str) -> dict:
    """Ingest expecting a whole-drop rejection; return the quarantine report."""
    with pytest.raises(DropRejected, match=match):
        ingest(lakes, feed)
    lake = lakes[1]
    report = lake.read_json(lake.uri("quarantine", feed, f"date={DAY}", "report.json"))
    assert report["status"] == "rejected" and report["rows_published"] == 0
    assert report["rows_in"] == report["rows_quarantined"]
    assert not lake.exists(lake.uri("validated", feed, f"date={DAY}", "part.parquet"))
    for name, stored in report["files_quarantined"].items():  # the drop is kept, byte for byte
        original = lakes[0].uri(feed, DAY.isoformat(), name.replace("%", "%25"))
        assert lake.read_bytes(lake.uri("quarantine", feed, f"date={DAY}", stored)) == lakes[0].read_bytes(original)
    return report


def test_truncated_gzip_names_the_file(lakes):
    data = gzip.compress((SALES_HEADER + good_sales()).encode())
    drop(lakes[0], "sales", {"sales.csv.gz": data[: len(data) // 2]})
    report = rejected(lakes, "sales", r"sales\.csv\.gz: .*(truncated|corrupt|cannot be read)")
    assert report["file"] == "sales.csv.gz"


def test_truncated_parquet_names_the_file(lakes):
    buffer = io.BytesIO()
    pd.DataFrame({"customer_id": ["c1"] * 50, "sku": ["a"] * 50, "timestamp": ["2026-10-01"] * 50}).to_parquet(buffer)
    drop(lakes[0], "interactions", {"i.parquet": buffer.getvalue()[:-200]})
    rejected(lakes, "interactions", r"i\.parquet: cannot be read")


def test_csv_cut_mid_row_quarantines_the_broken_line(lakes):
    text = SALES_HEADER + good_sales() + "2026-09-28,41,OJ01"  # the last line lost its end
    drop(lakes[0], "sales", {"sales.csv": text})
    summary = ingest(lakes, "sales")
    assert (summary.rows_in, summary.rows_published, summary.rows_quarantined) == (41, 40, 1)
    bad = lakes[1].read_parquet(summary.quarantine_uri)
    assert bad["_rules"].tolist() == ["malformed_row"] and bad["_raw_line"].tolist() == ["2026-09-28,41,OJ01"]


def test_empty_file_is_a_warning_and_the_rest_is_published(lakes):
    drop(lakes[0], "sales", {"a.csv": SALES_HEADER + good_sales(), "empty.csv": b""})
    summary = ingest(lakes, "sales")
    assert summary.rows_published == 40 and summary.rows_quarantined == 0
    assert any("empty.csv: empty file" in w for w in summary.warnings)


def test_a_drop_of_empty_files_only_is_rejected(lakes):
    """0 bytes: no header, so none of the required columns; the day fails loudly instead of
    passing as "0 rows"."""
    drop(lakes[0], "sales", {"a.csv": b"", "b.csv": b""})
    report = rejected(lakes, "sales", r"a\.csv, b\.csv: nothing in the drop is readable as sales: every file is empty")
    assert report["column"] == "date,store_id,sku,units" and report["rows_in"] == 0


def test_header_only_file_publishes_zero_rows(lakes):
    drop(lakes[0], "sales", {"sales.csv": SALES_HEADER})
    summary = ingest(lakes, "sales")
    assert (summary.rows_in, summary.rows_published) == (0, 0)
    assert len(read_validated(lakes[1], "sales", DAY)) == 0


def test_header_only_file_without_a_required_column_is_rejected(lakes):
    drop(lakes[0], "sales", {"sales.csv": "date,store_id,sku,price\n"})
    report = rejected(lakes, "sales", r"sales\.csv: sales drop lacks required column\(s\): units")
    assert report["column"] == "units"


def test_wrong_delimiter_says_so(lakes):
    drop(lakes[0], "sales", {"sales.csv": SALES_HEADER.replace(",", ";") + good_sales().replace(",", ";")})
    rejected(lakes, "sales", r"sales\.csv: .*semicolon-separated")


def test_non_utf8_bytes_are_rejected_with_the_reason(lakes):
    text = SALES_HEADER + good_sales(10) + "2026-09-28,11,Caf\xe9,1,0.05,0\n"
    drop(lakes[0], "sales", {"sales.csv": text.encode("latin-1")})
    rejected(lakes, "sales", r"sales\.csv: .*UTF-?8")


def test_non_utf8_jsonl_is_rejected_with_the_reason(lakes):
    line = '{"review_id": "1", "sku": "a", "text": "Caf\xe9", "created_at": "2026-10-01"}\n'
    drop(lakes[0], "reviews", {"r.jsonl": line.encode("latin-1")})
    rejected(lakes, "reviews", r"r\.jsonl: .*UTF-8")


def test_text_in_a_numeric_column_quarantines_that_row_naming_the_rule(lakes):
    drop(lakes[0], "sales", {"sales.csv": SALES_HEADER + good_sales() + "2026-09-28,99,OJ01,lots,0.05,0\n"})
    summary = ingest(lakes, "sales")
    assert summary.rule_counts == {"type:units": 1}
    bad = lakes[1].read_parquet(summary.quarantine_uri)
    assert bad[["units", "_rules", "_file", "_row"]].values.tolist() == [["lots", "type:units", "sales.csv", "41"]]


def test_a_one_megabyte_review_is_published_whole(lakes):
    text = ("A long review about coffee. " * 40_000)[:1_000_000]
    rows = [{"review_id": "big", "sku": "a", "text": text, "created_at": "2026-10-01T10:00:00"},
            {"review_id": "small", "sku": "a", "text": "ok", "created_at": "2026-10-01T11:00:00"}]
    drop(lakes[0], "reviews", {"r.jsonl": pd.DataFrame(rows).to_json(orient="records", lines=True)})
    summary = ingest(lakes, "reviews")
    assert summary.rows_published == 2
    published = read_validated(lakes[1], "reviews", DAY).set_index("review_id")
    assert published.loc["big", "text"] == text


def test_the_same_file_twice_is_published_once(lakes):
    body = SALES_HEADER + good_sales()
    drop(lakes[0], "sales", {"a.csv": body, "b.csv": body})
    summary = ingest(lakes, "sales")
    assert (summary.rows_in, summary.rows_published, summary.rows_quarantined) == (80, 40, 40)
    assert summary.rule_counts == {"duplicate_file:a.csv": 40}  # not counted as bad rows
    assert any("b.csv: same bytes as a.csv" in w for w in summary.warnings)
    assert len(read_validated(lakes[1], "sales", DAY)) == 40


def test_a_file_name_that_tries_to_leave_the_lake_is_refused(lakes, tmp_path):
    landing, lake = lakes
    folder = tmp_path / "landing" / "sales" / DAY.isoformat()
    folder.mkdir(parents=True)
    # a file URI decodes %2F: written as-is this name would climb out of the lake
    (folder / "x%2F..%2F..%2F..%2F..%2Fescaped.csv").write_text(SALES_HEADER + good_sales())
    report = rejected(lakes, "sales", r"unsafe file name")
    assert report["rows_in"] == 0
    assert not list(tmp_path.rglob("escaped.csv"))
    stored = report["files_quarantined"]["x%2F..%2F..%2F..%2F..%2Fescaped.csv"]
    assert stored.startswith("refused/")  # kept under its sha256, not under its name


def test_duplicate_keys_across_chunks_are_quarantined(lakes):
    body = SALES_HEADER + good_sales(5) + "2026-09-28,1,OJ01,7,0.05,0\n"  # row 6 repeats row 1's key
    drop(lakes[0], "sales", {"sales.csv": body})
    summary = ingest(lakes, "sales", chunk_rows=2, max_bad_share=0.5)
    assert (summary.rows_published, summary.rule_counts) == (5, {"unique:date+store_id+sku": 1})
    bad = lakes[1].read_parquet(summary.quarantine_uri)
    assert bad[["store_id", "units", "_row"]].values.tolist() == [["1", "7", "6"]]


def test_chunked_validation_gives_the_same_result_as_one_chunk(lakes):
    rows = [f"2026-09-{20 + i % 5:02d},{i},OJ0{i % 3},{-1 if i % 17 == 0 else i},0.05,{i % 2}\n" for i in range(300)]
    drop(lakes[0], "sales", {"sales.csv": SALES_HEADER + "".join(rows)})
    whole = ingest(lakes, "sales", chunk_rows=1_000, max_bad_share=0.5)
    one = read_validated(lakes[1], "sales", DAY).drop(columns="_partition")
    chunked = ingest(lakes, "sales", chunk_rows=7, max_bad_share=0.5)
    assert (chunked.rows_published, chunked.rule_counts) == (whole.rows_published, whole.rule_counts)
    pd.testing.assert_frame_equal(read_validated(lakes[1], "sales", DAY).drop(columns="_partition"), one)


def test_a_plan_may_lie_after_the_drop_date(lakes):
    drop(lakes[0], "plan", {"plan.csv": PLAN_HEADER + good_plan()})
    summary = ingest(lakes, "plan", max_bad_share=0.0)
    assert (summary.rows_in, summary.rows_published, summary.rows_quarantined) == (40, 40, 0)
    published = read_validated(lakes[1], "plan", DAY)
    assert published["date"].max() == pd.Timestamp("2026-10-19") > pd.Timestamp(DAY)
    assert published["promo"].tolist() == [0, 1, 0, 1] * 10


def test_bad_plan_rows_are_quarantined_with_the_reason_and_the_good_published(lakes):
    bad_rows = ("2026-10-05,90,OJ01,0,1\n"       # price 0: a planned price is > 0
                "2026-10-05,91,OJ01,-0.05,0\n"   # a negative price
                "2026-10-05,92,OJ01,0.05,2\n"    # promo is a 0/1 flag
                "2026-10-05,93, ,0.05,0\n"       # a blank sku
                "2026-10-05,1,OJ01,0.04,1\n")    # the key of an earlier row again
    drop(lakes[0], "plan", {"plan.csv": PLAN_HEADER + good_plan() + bad_rows})
    summary = ingest(lakes, "plan", max_bad_share=0.2)
    assert (summary.rows_in, summary.rows_published, summary.rows_quarantined) == (45, 40, 5)
    assert summary.rule_counts == {"min:price": 2, "in_set:promo": 1, "not_blank:sku": 1,
                                   "unique:date+store_id+sku": 1}
    bad = lakes[1].read_parquet(summary.quarantine_uri)
    assert bad[["store_id", "_rules", "_file", "_row"]].values.tolist() == [
        ["90", "min:price", "plan.csv", "41"], ["91", "min:price", "plan.csv", "42"],
        ["92", "in_set:promo", "plan.csv", "43"], ["93", "not_blank:sku", "plan.csv", "44"],
        ["1", "unique:date+store_id+sku", "plan.csv", "45"]]
    published = read_validated(lakes[1], "plan", DAY).set_index(["store_id", "date"])
    assert len(published) == 40 and published.loc[("1", pd.Timestamp("2026-10-05")), "price"] == 0.05  # the first


def test_a_plan_drop_without_a_required_column_is_rejected(lakes):
    body = PLAN_HEADER.replace("sku,", "") + good_plan().replace(",OJ01", "")
    drop(lakes[0], "plan", {"plan.csv": body})
    report = rejected(lakes, "plan", r"plan\.csv: plan drop lacks required column\(s\): sku")
    assert report["column"] == "sku" and report["rows_in"] == 40


def test_a_later_plan_drop_replaces_the_rows_of_the_same_key(lakes):
    landing, lake = lakes
    drop(landing, "plan", {"plan.csv": PLAN_HEADER + good_plan(2)})
    ingest(lakes, "plan", max_bad_share=0.0)
    later = date(2026, 10, 6)  # a revised plan: store 1's week of 10-12 repriced, a new week added
    landing.write_bytes(landing.uri("plan", later.isoformat(), "plan.csv"),
                        (PLAN_HEADER + "2026-10-12,1,OJ01,0.03,1\n2026-10-26,1,OJ01,0.05,0\n").encode())
    land_drop(landing, lake, "plan", later)
    validate_and_publish(lake, "plan", later, 0.0)
    latest = read_latest(lake, "plan", later).set_index(["store_id", "date"]).sort_index()
    assert len(latest) == 9  # 8 rows of the first drop, one of them replaced, and one new
    assert latest.loc[("1", pd.Timestamp("2026-10-12")), ["price", "promo"]].tolist() == [0.03, 1]
    assert latest.loc[("2", pd.Timestamp("2026-10-12")), ["price", "promo"]].tolist() == [0.05, 0]
    assert len(read_latest(lake, "plan", DAY)) == 8  # up to the first drop's day: the first plan


def test_review_text_is_escaped_in_the_html_report(lakes):
    rows = [{"review_id": f"r{i}", "sku": "a", "text": "<script>alert(1)</script>", "created_at": "2026-10-01",
             "rating": 9 if i == 0 else 5} for i in range(30)]
    drop(lakes[0], "reviews", {"r.jsonl": pd.DataFrame(rows).to_json(orient="records", lines=True)})
    summary = ingest(lakes, "reviews")
    page = lakes[1].read_bytes(summary.report_uri).decode()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "max:rating" in page and "expect_column_values_to_be_between" in page
