"""A task that fails in a real DAG run leaves an alert saying which task and why."""

from __future__ import annotations

import os
from datetime import datetime, timezone

from pipeline.lake import Lake
from pipeline.settings import load_settings


def test_a_rejected_drop_fails_its_task_and_writes_an_alert(retail_env, airflow_db, monkeypatch):
    monkeypatch.setenv("RETAIL_TASK_RETRIES", "0")
    from airflow.dag_processing.dagbag import DagBag

    settings = load_settings()
    landing = Lake(settings.landing)
    landing.write_text(landing.uri("reviews", "2026-10-05", "r.jsonl"), '{"review_id": "1", "sku": "a", "text": "ok"}\n')
    dag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["retail_ingest"]
    run = dag.test(logical_date=datetime(2026, 10, 5, tzinfo=timezone.utc))
    assert "failed" in str(run.state)  # the rejected drop fails the run, not only its task

    lake = Lake(settings.lake_uri)
    [uri] = [u for u in lake.list(lake.uri("alerts", "retail_ingest")) if u.endswith("validate_reviews.json")]
    alert = lake.read_json(uri)
    assert alert["kind"] == "task_failed" and alert["task_id"] == "validate_reviews"
    assert "DropRejected" in alert["message"] and "lacks required column(s): created_at" in alert["message"]
    # the feeds without a drop were skipped, not failed: no alert for them
    assert len(lake.list(lake.uri("alerts", "retail_ingest"))) == 1
