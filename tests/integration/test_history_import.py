"""The history import leaves the lake exactly as the daily ingest DAG runs would: the same
files, byte for byte, on real data with a quarantined row and a rejected drop."""

from __future__ import annotations

import os
import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers import lake_files

from pipeline.__main__ import main
from pipeline.demo_data import DemoLimits, write_demo_drops
from pipeline.lake import Lake

pytestmark = pytest.mark.slow

START, DAYS = date(2026, 10, 1), 6


def test_import_equals_the_daily_runs_file_for_file(airflow_db: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    lake_root, landing_root = tmp_path / "lake", tmp_path / "landing"
    monkeypatch.setenv("RETAIL_LAKE_URI", lake_root.as_uri())
    monkeypatch.setenv("RETAIL_LANDING_URI", landing_root.as_uri())
    monkeypatch.setenv("RETAIL_TASK_RETRIES", "0")
    write_demo_drops(Lake(landing_root.as_uri()), START, DAYS, DemoLimits(stores=4, reviews=900, customers=300))
    # a row that breaks a rule in the first sales drop, and a reviews drop lacking required columns
    (landing_root / "sales" / "2026-10-01" / "late.csv").write_text(
        "date,store_id,sku,units\n2026-09-30,2,OJ01,-5\n2026-09-30,2,OJ02,7\n")
    (landing_root / "reviews" / "2026-10-03" / "extra.jsonl").write_text('{"review_id": "x1", "sku": "a"}\n')

    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["retail_ingest"]
    states = {}
    for i in range(DAYS):
        day = START + timedelta(days=i)
        states[day] = str(dag.test(logical_date=datetime(day.year, day.month, day.day, tzinfo=timezone.utc)).state)
    assert [d for d, s in states.items() if "success" not in s] == [date(2026, 10, 3)]
    daily = lake_files(lake_root)
    # a failed task writes an Airflow alert; the import reports the rejection instead
    alerts = [f for f in daily if f.startswith("alerts/")]
    assert len(alerts) == 1 and alerts[0].endswith("validate_reviews.json")
    shutil.rmtree(lake_root)

    assert main(["ingest", "--from", START.isoformat(), "--to", (START + timedelta(days=DAYS - 1)).isoformat()]) == 1
    out = capsys.readouterr().out
    assert "1 drop(s) rejected" in out and "reviews 2026-10-03" in out and "lacks required column(s)" in out
    imported = lake_files(lake_root)

    expected = {k: v for k, v in daily.items() if k not in alerts}
    assert sorted(imported) == sorted(expected)
    assert [k for k in expected if imported[k] != expected[k]] == []
    assert any(k.startswith("quarantine/sales/date=2026-10-01/") for k in imported)
    assert sum(k.startswith("validated/") for k in imported) > DAYS  # several feeds a day
