"""The README's `make airflow-ui`, run exactly as written from a plain shell (the virtual
environment not on PATH): the UI answers, the scheduler heartbeats, a user logs in and
sees the three DAGs, and it stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _json(url: str, body: dict | None = None, token: str = "") -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=5) as answer:
        return json.loads(answer.read())


def test_make_airflow_ui_from_a_plain_shell(tmp_path: Path) -> None:
    port, password = free_port(), "a-test-password"
    (tmp_path / "passwords.json").write_text(json.dumps({"admin": password}))
    venv_bin = str(ROOT / ".venv" / "bin")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p) != Path(venv_bin))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV"))},
           "PATH": path, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__API__PORT": str(port),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "passwords.json"),
           "RETAIL_LAKE_URI": (tmp_path / "lake").as_uri()}
    log = tmp_path / "make.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["make", "airflow-ui"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        health = wait_for("a scheduler heartbeat", lambda: (h := _json(f"{base}/api/v2/monitor/health"))
                        ["scheduler"]["status"] == "healthy" and h, proc, log, 240)
        assert health["scheduler"]["latest_scheduler_heartbeat"]
        token = _json(f"{base}/auth/token", {"username": "admin", "password": password})["access_token"]
        dag_ids = lambda: {d["dag_id"] for d in _json(f"{base}/api/v2/dags", token=token)["dags"]}  # noqa: E731
        dags = wait_for("the three DAGs", lambda: dag_ids()
                      >= {"retail_ingest", "retail_retrain", "retail_consumers"}, proc, log, 240)
        assert dags
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
