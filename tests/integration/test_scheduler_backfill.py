"""`airflow backfill create` under a real scheduler (LocalExecutor, the embedded SQLite
setup that `make airflow-ui` starts) fills the lake exactly as the history import does:
days without drops are skips, at most one backfill run is active at a time."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path

import pytest
from helpers import free_port, lake_files, wait_for

from pipeline.demo_data import DemoLimits, write_demo_drops
from pipeline.lake import Lake

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
FIRST, LAST = date(2026, 10, 1), date(2026, 10, 4)  # drops on the 1st to the 3rd, none on the 4th


class Api:
    def __init__(self, base: str) -> None:
        self.base, self.token = base, ""

    def call(self, path: str, body: dict | None = None) -> dict:
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers = {"Content-Type": "application/json", **auth}
        data = json.dumps(body).encode() if body is not None else None
        with urllib.request.urlopen(urllib.request.Request(self.base + path, data=data, headers=headers),
                                    timeout=10) as answer:
            return json.loads(answer.read())


def test_scheduler_backfill_fills_the_lake_as_the_import_does(tmp_path: Path) -> None:
    lake_root, landing_root = tmp_path / "lake", tmp_path / "landing"
    write_demo_drops(Lake(landing_root.as_uri()), FIRST, 3, DemoLimits(stores=4, reviews=900, customers=300))
    port, password = free_port(), "a-test-password"
    (tmp_path / "passwords.json").write_text(json.dumps({"admin": password}))
    bin_dir = str(Path(sys.executable).parent)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RETAIL_"))},
           "PATH": bin_dir + os.pathsep + os.environ["PATH"], "PYTHONPATH": str(ROOT),
           "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
           "AIRFLOW__API__PORT": str(port), "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "passwords.json"),
           "RETAIL_LAKE_URI": lake_root.as_uri(), "RETAIL_LANDING_URI": landing_root.as_uri(),
           "RETAIL_TASK_RETRIES": "0"}
    airflow = f"{bin_dir}/airflow"
    log = tmp_path / "standalone.log"
    with log.open("w") as out:
        server = subprocess.Popen([airflow, "standalone"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    api = Api(f"http://127.0.0.1:{port}")
    try:
        wait_for("a healthy scheduler", lambda: api.call("/api/v2/monitor/health")["scheduler"]["status"] == "healthy",
              server, log, 240)
        api.token = api.call("/auth/token", {"username": "admin", "password": password})["access_token"]
        wait_for("retail_ingest parsed", lambda: api.call("/api/v2/dags/retail_ingest"), server, log, 240)
        def cli(*args: str) -> None:
            """The CLI, tried three times: it shares the SQLite database with the running
            scheduler and API server (one CI run saw `backfill create` fail once, its
            message not kept then); every failed try's output is printed."""
            for attempt in range(3):
                done = subprocess.run([airflow, *args], env=env, capture_output=True, text=True)
                if done.returncode == 0:
                    return
                print(f"airflow {' '.join(args)} (try {attempt + 1}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
                time.sleep(5)
            raise AssertionError(f"airflow {' '.join(args)} failed three times (output above)")

        cli("dags", "unpause", "retail_ingest")
        cli("backfill", "create", "--dag-id", "retail_ingest", "--from-date", FIRST.isoformat(),
            "--to-date", LAST.isoformat(), "--max-active-runs", "1")
        most_running = 0

        def finished() -> list[dict] | None:
            nonlocal most_running
            runs = api.call("/api/v2/dags/retail_ingest/dagRuns?run_type=backfill")["dag_runs"]
            most_running = max(most_running, sum(r["state"] == "running" for r in runs))
            return runs if len(runs) == 4 and all(r["state"] in ("success", "failed") for r in runs) else None

        runs = wait_for("the backfill runs finished", finished, server, log, 900)
        assert {r["logical_date"][:10]: r["state"] for r in runs} == {
            f"2026-10-0{d}": "success" for d in range(1, 5)}
        assert most_running <= 1
        empty_day = next(r for r in runs if r["logical_date"].startswith("2026-10-04"))
        tasks = api.call(f"/api/v2/dags/retail_ingest/dagRuns/{empty_day['dag_run_id']}/taskInstances")
        assert {t["task_id"]: t["state"] for t in tasks["task_instances"] if t["task_id"].startswith("land_")} == {
            f"land_{feed}": "skipped" for feed in ("sales", "reviews", "interactions", "catalog", "stock", "plan")}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)

    backfilled = lake_files(lake_root)
    assert any(k.startswith("validated/reviews/date=2026-10-03/") for k in backfilled)
    shutil.rmtree(lake_root)
    done = subprocess.run([sys.executable, "-m", "pipeline", "ingest", "--from", FIRST.isoformat(), "--to",
                           LAST.isoformat()], env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    imported = lake_files(lake_root)
    assert sorted(backfilled) == sorted(imported)
    assert [k for k in imported if imported[k] != backfilled[k]] == []
