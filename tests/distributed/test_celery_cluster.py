"""The distributed setup for real, on one machine: Airflow's CeleryExecutor on PostgreSQL and
Redis with two Celery workers (queues `default` and `gpu`), the MLflow tracking server on
PostgreSQL with basic auth and its artifacts in S3 (moto's server over HTTP), and the lake
and the landing zone in the same S3. The DAGs are triggered through Airflow's REST API,
as a scheduler client or another system would.

Only settings differ from the embedded default; see docs/deployment.md.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from cluster import ROOT, AirflowAPI, Cluster, free_port

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

BUCKET = "retail"
START, DAYS = date(2026, 10, 1), 3
CLUSTER_SETTINGS = {
    # only the runs the test triggers: no scheduled run for today once a DAG is unpaused
    "RETAIL_INGEST_SCHEDULE": "0 0 1 1 *",
    "RETAIL_RETRAIN_CRON": "0 0 1 1 *",
    # the `gpu` pool keeps trainings one at a time; evaluation and the rest may overlap
    "RETAIL_MAX_PARALLEL_TRAINING": "3",
}
FAMILIES = ("sentiment", "forecaster", "recommender")


def _status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _clean_environment() -> dict[str, str]:
    """This process's environment without the Airflow and pipeline settings the other tests use."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RETAIL_", "MLFLOW_"))}


def test_celery_cluster_runs_the_dags_on_both_workers(tmp_path: Path, s3_endpoint: str, tiny_training: dict,
                                                       monkeypatch, capsys):
    import boto3

    secret = {name: f"{name}-{secrets.token_hex(12)}" for name in ("aws", "mlflow_admin", "mlflow_pipeline",
                                                                     "airflow_admin", "jwt")}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "retail-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret["aws"])  # moto accepts any key; the scan below looks for it
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=BUCKET)

    cluster = Cluster(tmp_path)
    started = time.monotonic()
    # a CI timeout's SIGTERM should still stop the services (the finally below)
    on_sigterm = signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    try:
        base = _clean_environment()
        postgres = cluster.postgres(["airflow", "mlflow", "mlflow_auth"])
        broker = cluster.redis()
        mlflow_url = cluster.mlflow(
            f"{postgres}/mlflow", f"{postgres}/mlflow_auth", f"s3://{BUCKET}/mlflow",
            {**base, "MLFLOW_AUTH_ADMIN_PASSWORD": secret["mlflow_admin"], "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
             "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)})

        # MLflow lets no one in anonymously; the pipeline gets its own user, not the admin
        assert _status(f"{mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1") == 401
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", secret["mlflow_admin"])
        from mlflow.server import get_app_client

        get_app_client("basic-auth", tracking_uri=mlflow_url).create_user("pipeline", secret["mlflow_pipeline"])

        from pipeline.demo_data import DemoLimits, write_demo_drops
        from pipeline.lake import Lake

        written = write_demo_drops(Lake(f"s3://{BUCKET}/landing", s3_endpoint), START, DAYS,
                                   DemoLimits(stores=4, reviews=900, customers=300))

        api_port = free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        passwords = tmp_path / "airflow-passwords.json"
        passwords.write_text(f'{{"admin": "{secret["airflow_admin"]}"}}')
        from cryptography.fernet import Fernet

        env = {
            **base, **tiny_training, **CLUSTER_SETTINGS,
            "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{postgres}/airflow",
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{postgres}/airflow",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": api_url,
            "AIRFLOW__API_AUTH__JWT_SECRET": secret["jwt"],
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AWS_ACCESS_KEY_ID": "retail-test", "AWS_SECRET_ACCESS_KEY": secret["aws"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "RETAIL_LAKE_URI": f"s3://{BUCKET}/lake",
            "RETAIL_LANDING_URI": f"s3://{BUCKET}/landing",
            "RETAIL_S3_ENDPOINT_URL": s3_endpoint,
            "RETAIL_MLFLOW_TRACKING_URI": mlflow_url,
            "RETAIL_MLFLOW_ARTIFACT_URI": "",  # the server keeps artifacts (mlflow-artifacts:/ -> S3)
            "MLFLOW_TRACKING_USERNAME": "pipeline", "MLFLOW_TRACKING_PASSWORD": secret["mlflow_pipeline"],
        }
        cluster.airflow(env)

        # Airflow's API, too, wants a login
        assert _status(f"{api_url}/api/v2/dags") == 401
        api = AirflowAPI(api_url, "admin", secret["airflow_admin"], cluster)
        for dag_id in ("retail_ingest", "retail_retrain", "retail_consumers"):
            api.wait_for_dag(dag_id, timeout=300)
        api.set_paused("retail_ingest", False)
        api.set_paused("retail_consumers", False)

        days = [date(2026, 10, d) for d in range(1, DAYS + 1)]
        ingest_runs = [api.trigger("retail_ingest", f"{day}T00:00:00Z") for day in days]
        for run_id in ingest_runs:
            assert api.wait_for_run("retail_ingest", run_id, timeout=900) == "success", run_id
        ingested = time.monotonic()

        retrain_run = api.trigger("retail_retrain", f"{days[-1]}T00:00:00Z")
        api.set_paused("retail_retrain", False)
        # the scheduler crashes while a training task runs on the gpu worker; once restarted it
        # adopts the running tasks and the run completes, each model registered once
        deadline = time.monotonic() + 900
        while not (running := {ti["task_id"]: ti["try_number"]
                               for ti in api.task_instances("retail_retrain", retrain_run)
                               if ti["task_id"].startswith("fine_tune_") and ti["state"] == "running"}):
            assert time.monotonic() < deadline, "no training task started"
            cluster.assert_alive()
            time.sleep(2)
        assert set(running.values()) == {1}, running  # their first try when the scheduler dies
        cluster.crash_and_restart("scheduler")
        assert api.wait_for_run("retail_retrain", retrain_run, timeout=1800) == "success"
        trained = time.monotonic()
        # the tasks running at the crash were adopted, not re-run: still their first and only try
        after_crash = {ti["task_id"]: (ti["state"], ti["try_number"])
                       for ti in api.task_instances("retail_retrain", retrain_run) if ti["task_id"] in running}
        assert after_crash == {task_id: ("success", 1) for task_id in running}, after_crash
        for task_id in running:
            tries = api.call("GET", f"/api/v2/dags/retail_retrain/dagRuns/{retrain_run}/taskInstances/{task_id}/tries")
            assert [t["try_number"] for t in tries["task_instances"]] == [1], (task_id, tries)

        # the promotions updated the champion Assets, which ran the consumers
        consumer_runs = []
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            consumer_runs = api.runs("retail_consumers")
            if consumer_runs and all(r["state"] in ("success", "failed") for r in consumer_runs):
                break
            cluster.assert_alive()
            time.sleep(5)
        assert consumer_runs and {r["state"] for r in consumer_runs} == {"success"}, consumer_runs
        assert {r["run_type"] for r in consumer_runs} == {"asset_triggered"}

        # where each task ran: training on the gpu worker, everything else on the default one
        placement = {}
        for dag_id, run_ids in (("retail_ingest", ingest_runs), ("retail_retrain", [retrain_run]),
                                ("retail_consumers", [r["dag_run_id"] for r in consumer_runs])):
            for run_id in run_ids:
                for ti in api.task_instances(dag_id, run_id):
                    if ti["state"] == "success" and ti["hostname"]:
                        placement[(dag_id, run_id, ti["task_id"])] = (ti["hostname"].split("@")[0], ti["queue"])
        for (dag_id, _, task_id), (worker, queue) in placement.items():
            expected = "gpu" if task_id.startswith("fine_tune_") else "default"
            assert (worker, queue) == (expected, expected), (dag_id, task_id, worker, queue)
        assert {f"fine_tune_{family}" for family in FAMILIES} <= {task for (_, _, task) in placement}
        spread = Counter(worker for worker, _ in placement.values())
        assert spread["gpu"] == len(FAMILIES) and spread["default"] > 0
        for queue in ("default", "gpu"):  # and each worker's own log shows it took tasks
            assert "execute_workload" in cluster.log(f"worker-{queue}").read_text(errors="replace"), queue

        # a champion per family in the MLflow registry behind the server, artifacts in S3
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)
        from pipeline.settings import load_settings

        settings = load_settings()
        champions = {family: client.get_model_version_by_alias(settings.model_name(family), "champion")
                     for family in FAMILIES}
        assert all(mv.tags["gate_passed"] == "true" for mv in champions.values())
        for family in FAMILIES:  # nothing registered twice across the scheduler's crash
            assert len(client.search_model_versions(f"name = '{settings.model_name(family)}'")) == 1, family
        stored = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="mlflow/").get("Contents", [])]
        assert any(key.endswith("MLmodel") for key in stored), stored[:20]
        lake_keys = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="lake/")
                     for o in page.get("Contents", [])}
        for feed in ("sales", "reviews", "interactions", "catalog", "plan"):  # the first drop holds every feed
            assert f"lake/validated/{feed}/date=2026-10-01/part.parquet" in lake_keys, feed
        rows_in = 0
        lake = Lake(f"s3://{BUCKET}/lake", s3_endpoint)
        for key in sorted(k for k in lake_keys if k.startswith("lake/raw/sales/") and k.endswith("manifest.json")):
            rows_in += lake.read_json(f"s3://{BUCKET}/{key}")["publish"]["rows_in"]
        assert rows_in == written["sales"]
        assert any(k.startswith("lake/outputs/inventory_plan/") for k in lake_keys)

        # no secret in any task log, MLflow param or tag
        logs = [p for p in (tmp_path / "airflow" / "logs").rglob("*") if p.is_file()]
        assert len(logs) >= len(placement)
        leaked = [(str(path), name) for path in logs for name, value in secret.items()
                  if value in path.read_text(errors="replace")]
        experiment = client.get_experiment_by_name(settings.experiment_name)
        for run in client.search_runs([experiment.experiment_id], max_results=500):
            text = repr(run.data.params) + repr(run.data.tags)
            leaked += [(run.info.run_id, name) for name, value in secret.items() if value in text]
        assert leaked == []

        finished = time.monotonic()
        with capsys.disabled():
            print(f"\ndistributed test: services up and ingest {ingested - started:.0f} s, retrain "
                  f"{trained - ingested:.0f} s, consumers {finished - trained:.0f} s, total {finished - started:.0f} s")
            print("tasks per worker (hostname recorded by Airflow): "
                  + ", ".join(f"{worker}: {count}" for worker, count in sorted(spread.items())))
            for (dag_id, run_id, task_id), (worker, _) in sorted(placement.items()):
                if dag_id == "retail_retrain":
                    print(f"  {dag_id} {task_id:<28} ran on {worker} worker")
    except BaseException:
        for name in ("scheduler", "worker-default", "worker-gpu", "api-server", "dag-processor", "mlflow"):
            if cluster.log(name).exists():
                print(f"----- {name} log (end) -----\n{cluster.log(name).read_text(errors='replace')[-3000:]}")
        raise
    finally:
        cluster.stop()
        signal.signal(signal.SIGTERM, on_sigterm)
