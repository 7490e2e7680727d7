"""Real services on loopback for the distributed test: PostgreSQL and Redis from Debian's
packages, moto's S3 server, the MLflow tracking server with basic auth, and Airflow's
api-server, scheduler, dag-processor and two Celery workers.

Every process writes its log under the cluster's folder; `Cluster.stop()` ends them all.
Nothing here is a mock: the pieces talk over TCP as they would on separate machines.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(what: str, check: Callable[[], bool], timeout: float, log: Path | None = None,
               process: subprocess.Popen | None = None) -> None:
    """Poll ``check`` until it is true; fail naming ``what`` with the end of its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, subprocess.CalledProcessError):
            pass
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    state = f"exited {process.returncode}" if process is not None and process.poll() is not None else "timed out"
    raise RuntimeError(f"{what} did not come up ({state}):\n{tail}")


def http_ok(url: str, headers: dict[str, str] | None = None) -> bool:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
        return response.status == 200


def _checked(argv: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n"
                           f"{result.stdout[-3000:]}{result.stderr[-3000:]}")


def _as_postgres() -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class Cluster:
    home: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    commands: dict[str, tuple[list[str], dict[str, str] | None]] = field(default_factory=dict)
    pg_data: Path | None = None

    def log(self, name: str) -> Path:
        return self.home / "logs" / f"{name}.log"

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        self.log(name).parent.mkdir(parents=True, exist_ok=True)
        with self.log(name).open("ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env or os.environ.copy(),
                                       cwd=ROOT, start_new_session=True)
        self.processes[name] = process
        self.commands[name] = (argv, env)
        return process

    def crash_and_restart(self, name: str) -> None:
        """SIGKILL a service (no chance to clean up), then start it again as before."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self.start(name, *self.commands[name])

    def assert_alive(self) -> None:
        """Fail at once, with its log, when a service has died (rather than at a wait's timeout)."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = self.log(name).read_text(errors="replace")[-4000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def stop(self, name: str | None = None) -> None:
        names = [name] if name else list(reversed(self.processes))
        for key in names:
            process = self.processes.pop(key)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        if name is None and self.pg_data is not None:
            subprocess.run([*_as_postgres(), str(PG_BIN / "pg_ctl"), "-D", str(self.pg_data / "data"),
                            "-m", "fast", "stop"], capture_output=True)
            shutil.rmtree(self.pg_data, ignore_errors=True)
            self.pg_data = None

    # --- services ----------------------------------------------------------------------

    def postgres(self, databases: list[str]) -> str:
        """A fresh PostgreSQL cluster with ``databases``; returns the DSN prefix (no database)."""
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError("PostgreSQL 15 is not installed (Debian package postgresql: `make services`)")
        # its own folder in /tmp: the `postgres` user cannot enter pytest's private folders
        self.pg_data = Path(tempfile.mkdtemp(prefix="retail-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.pg_data, "postgres")
        port = free_port()
        _checked([*_as_postgres(), str(PG_BIN / "initdb"), "-D", str(self.pg_data / "data"), "-U", "retail",
                  "--auth=trust", "-E", "UTF8"])
        _checked([*_as_postgres(), str(PG_BIN / "pg_ctl"), "-D", str(self.pg_data / "data"), "-w", "-l",
                  str(self.pg_data / "postgres.log"), "-o",
                  f"-p {port} -k {self.pg_data} -c listen_addresses=127.0.0.1 -c max_connections=200", "start"])
        for database in databases:
            _checked(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "retail", "-d", "postgres",
                      "-c", f"CREATE DATABASE {database}"])
        return f"postgresql+psycopg2://retail@127.0.0.1:{port}"

    def redis(self) -> str:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server: `make services`)")
        port = free_port()
        process = self.start("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--dir", str(self.home)])
        wait_until("redis", lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                                                   text=True).stdout.strip() == "PONG", 30, self.log("redis"), process)
        return f"redis://127.0.0.1:{port}/0"

    def mlflow(self, backend: str, auth_db: str, artifacts: str, env: dict[str, str]) -> str:
        """The tracking server: Postgres backend store, served artifacts in S3, basic auth."""
        port = free_port()
        config = self.home / "basic_auth.ini"
        config.write_text("[mlflow]\ndefault_permission = READ\n"
                          f"database_uri = {auth_db}\nadmin_username = admin\n"
                          "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                          # without it every request re-hashes the password (PBKDF2): seconds of CPU a task
                          "auth_cache_ttl_seconds = 60\n")
        env = {**env, "MLFLOW_AUTH_CONFIG_PATH": str(config), "PATH": f"{BIN}{os.pathsep}{env['PATH']}",
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # GenAI job runners: seven idle processes
        process = self.start("mlflow", [str(BIN / "mlflow"), "server", "--backend-store-uri", backend,
                                        "--artifacts-destination", artifacts, "--serve-artifacts",
                                        "--app-name", "basic-auth", "--host", "127.0.0.1", "--port", str(port),
                                        "--workers", "1"], env)
        url = f"http://127.0.0.1:{port}"
        wait_until("mlflow server", lambda: http_ok(url + "/health"), 180, self.log("mlflow"), process)
        return url

    def airflow(self, env: dict[str, str]) -> None:
        """Migrate, create the `gpu` pool, start api-server, scheduler, dag-processor, workers."""
        airflow = str(BIN / "airflow")
        for argv in ([airflow, "db", "migrate"],
                     [airflow, "pools", "set", "gpu", "1", "model training (GPU when there is one)"]):
            _checked(argv, env)
        port = int(env["AIRFLOW__API__PORT"])
        api = self.start("api-server", [airflow, "api-server", "--port", str(port)], env)
        self.start("scheduler", [airflow, "scheduler"], env)
        self.start("dag-processor", [airflow, "dag-processor"], env)
        for queue, concurrency in (("default", "2"), ("gpu", "1")):
            worker_env = {**env, "RETAIL_TEST_WORKER": queue,
                          "PYTHONPATH": f"{env['PYTHONPATH']}{os.pathsep}{Path(__file__).parent}",
                          "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_name.worker_name",
                          "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
            self.start(f"worker-{queue}", [airflow, "celery", "worker", "--queues", queue, "--concurrency",
                                           concurrency, "--celery-hostname", f"{queue}@%h"], worker_env)
        wait_until("airflow api-server", lambda: http_ok(f"http://127.0.0.1:{port}/api/v2/monitor/health"),
                   180, self.log("api-server"), api)


class AirflowAPI:
    """Airflow's REST API (v2) with a token from /auth/token, as a client program uses it."""

    def __init__(self, base: str, username: str, password: str, cluster: Cluster) -> None:
        self.base = base
        self.cluster = cluster
        token = self.call("POST", "/auth/token", {"username": username, "password": password}, auth=False)
        self.headers = {"Authorization": f"Bearer {token['access_token']}"}

    def call(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> dict:
        headers = {"Content-Type": "application/json", **(self.headers if auth else {})}
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{method} {path}: {error.code} {error.read()[:2000]!r}") from error

    def wait_for_dag(self, dag_id: str, timeout: float) -> None:
        def parsed() -> bool:
            self.cluster.assert_alive()
            try:
                return bool(self.call("GET", f"/api/v2/dags/{dag_id}"))
            except RuntimeError as error:
                if ": 404 " in str(error):
                    return False
                raise

        wait_until(f"DAG {dag_id} parsed", parsed, timeout)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str, logical_date: str) -> str:
        run = self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": logical_date})
        return run["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """The run's final state ('success' or 'failed'); raises when it is still going at ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return state
            self.cluster.assert_alive()
            time.sleep(3)
        raise RuntimeError(f"{dag_id} {run_id} still running after {timeout:.0f} s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=200")["task_instances"]

    def runs(self, dag_id: str) -> list[dict]:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
