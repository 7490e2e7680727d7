"""The README's `make airflow-ui`, run exactly as written from a plain shell (the virtual
environment not on PATH): the UI answers, the scheduler heartbeats, a user logs in and
sees the three DAGs, and it stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _json(url: str, body: dict | None = None, token: str = "") -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=5) as answer:
        return json.loads(answer.read())


def _until(what: str, check, proc: subprocess.Popen, log: Path, seconds: float = 240):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + seconds
    while True:
        try:
            found = check()
            if found:
                return found
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline or "Traceback" in log.read_text():
            raise AssertionError(f"{what}: not seen (make exited {proc.poll()}); its output:\n"
                                 f"{log.read_text()[-4000:]}")
        time.sleep(1)


def test_make_airflow_ui_from_a_plain_shell(tmp_path: Path) -> None:
    port, password = _free_port(), "a-test-password"
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
        health = _until("a scheduler heartbeat", lambda: (h := _json(f"{base}/api/v2/monitor/health"))
                        ["scheduler"]["status"] == "healthy" and h, proc, log)
        assert health["scheduler"]["latest_scheduler_heartbeat"]
        token = _json(f"{base}/auth/token", {"username": "admin", "password": password})["access_token"]
        dags = _until("the three DAGs", lambda: {d["dag_id"] for d in _json(f"{base}/api/v2/dags", token=token)["dags"]}
                      >= {"retail_ingest", "retail_retrain", "retail_consumers"}, proc, log)
        assert dags
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
