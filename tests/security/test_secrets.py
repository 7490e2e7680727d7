"""No secret reaches a log, an MLflow param or tag, or the lake.

The pipeline runs with real credentials in play: an S3 lake (moto's server) signed with
``AWS_SECRET_ACCESS_KEY``, an MLflow tracking server behind MLflow's basic-auth app that
only answers with ``MLFLOW_TRACKING_PASSWORD``, and a token among the alert notifier's
keyword arguments (``RETAIL_ALERT_NOTIFIER_KWARGS``). The ingest DAG runs through
``dag.test()``, then a tiny fine-tune, evaluation, gate, registration and promotion. Then
every task log line, every MLflow param and tag (runs, model versions), the tracking
server's own database, the run artifacts and every object in the lake are searched for
the secret values."""

from __future__ import annotations

import json
import logging
import os
import secrets
import urllib.error
import urllib.request
from datetime import date, datetime, timezone

import boto3
import pytest
from mlflow import MlflowClient

from faults import MlflowServer
from pipeline import steps
from pipeline.demo_data import DemoLimits, write_demo_drops
from pipeline.lake import Lake
from pipeline.settings import MASK, load_settings

DAY = date(2026, 10, 1)
TINY = {
    "RETAIL_TRAINING__SENTIMENT__MAX_TRAIN_ROWS": "200",
    "RETAIL_TRAINING__SENTIMENT__MAX_LENGTH": "32",
    "RETAIL_TRAINING__SENTIMENT__BATCH_SIZE": "16",
    "RETAIL_DEVICE": "cpu",
    "RETAIL_TASK_RETRIES": "0",
}


def test_redacted_settings_mask_secret_names_uri_passwords_and_notifier_arguments():
    settings = load_settings(
        mlflow_tracking_uri="postgresql+psycopg2://mlflow:pg-s3cret@db:5432/mlflow",
        s3_endpoint_url="https://minio:mi-s3cret@minio.internal:9000",
        alert_notifier_kwargs={"to": "ops@example.com", "webhook_url": "https://hooks.example/T0/B0/wh-s3cret"},
    )
    flat = settings.redacted()
    assert not [k for k, v in flat.items() if "s3cret" in str(v)], flat
    assert flat["mlflow_tracking_uri"] == f"postgresql+psycopg2://mlflow:{MASK}@db:5432/mlflow"
    assert flat["alert_notifier_kwargs.webhook_url"] == MASK
    assert flat["training.sentiment.token_dropout"] == 0.0  # a word like "token" inside a name is not a secret
    assert settings.mlflow_tracking_uri.endswith("pg-s3cret@db:5432/mlflow")  # the settings themselves keep it


@pytest.mark.slow
def test_no_secret_in_task_logs_mlflow_or_the_lake(retail_env, airflow_db, s3_endpoint, tmp_path, monkeypatch,
                                                   capfd, caplog):
    secret = {name: f"{name.lower()}-{secrets.token_hex(12)}"
              for name in ("AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_PASSWORD", "NOTIFIER_TOKEN")}
    server = MlflowServer(tmp_path / "mlflow-server", admin_password=secret["MLFLOW_TRACKING_PASSWORD"])
    server.folder.mkdir()
    server.start()
    try:
        bucket = "secrets-lake"
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "retail-pipeline")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret["AWS_SECRET_ACCESS_KEY"])
        boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
        monkeypatch.setenv("RETAIL_LAKE_URI", f"s3://{bucket}/lake")
        monkeypatch.setenv("RETAIL_S3_ENDPOINT_URL", s3_endpoint)
        monkeypatch.setenv("RETAIL_MLFLOW_TRACKING_URI", server.url)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", secret["MLFLOW_TRACKING_PASSWORD"])
        monkeypatch.setenv("RETAIL_ALERT_NOTIFIER_KWARGS",
                           json.dumps({"to": "ops@example.com", "webhook_token": secret["NOTIFIER_TOKEN"]}))
        for key, value in TINY.items():
            monkeypatch.setenv(key, value)
        caplog.set_level(logging.INFO)
        with pytest.raises(urllib.error.HTTPError, match="401"):  # the password is really needed
            urllib.request.urlopen(f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)

        settings = load_settings()
        write_demo_drops(Lake(settings.landing, s3_endpoint), DAY, 1, DemoLimits(stores=2, reviews=400, customers=50))
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["retail_ingest"]
        ingest = dag.test(logical_date=datetime(DAY.year, DAY.month, DAY.day, tzinfo=timezone.utc))
        assert "success" in str(ingest.state)
        dataset = steps.build_dataset("sentiment", DAY.isoformat())
        run_id = steps.evaluate("sentiment", dataset, steps.fine_tune("sentiment", dataset, DAY.isoformat()))
        decision = steps.gate("sentiment", run_id)
        version = steps.register("sentiment", run_id, decision)
        steps.promote("sentiment", version)

        client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
        assert runs and runs[0].data.params["alert_notifier_kwargs.webhook_token"] == MASK  # logged, masked
        recorded = [json.dumps({"params": r.data.params, "tags": r.data.tags}) for r in runs]
        name = settings.model_name("sentiment")
        recorded += [json.dumps(mv.tags) for mv in client.search_model_versions(f"name = '{name}'")]
    finally:
        server.kill()

    out, err = capfd.readouterr()
    logs = out + err + caplog.text
    assert "retail_ingest" in logs and "published" in logs and "MLflow run" in logs  # the logs were captured
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    lake_objects = [s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
                    for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len(lake_objects) > 20
    places: dict[str, bytes] = {
        "task logs (stdout)": out.encode(), "task logs (stderr)": err.encode(), "pipeline log": caplog.text.encode(),
        "MLflow params and tags": "\n".join(recorded).encode(),
        **{f"file {p}": p.read_bytes() for p in (airflow_db / "logs").rglob("*") if p.is_file()},
        **{f"file {p}": p.read_bytes() for p in server.folder.rglob("*") if p.is_file()},  # the server's database
        **{f"file {p}": p.read_bytes() for p in (retail_env / "artifacts").rglob("*") if p.is_file()},
        **{f"lake object {i}": body for i, body in enumerate(lake_objects)},
    }
    leaks = [(where, name) for where, data in places.items() for name, value in secret.items()
             if value.encode() in data]
    assert leaks == []
