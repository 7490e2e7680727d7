"""Scheduling overhead under a real scheduler, not dag.test().

demo_stages.py measures the overhead of the demo's ``dag.test()`` runs, where one process
runs every task in turn. This script starts Airflow as a deployment runs it, on loopback:
a fresh AIRFLOW_HOME under /tmp, SQLite, the LocalExecutor, and the api-server (the
execution API the task processes report to), scheduler and dag-processor as separate
processes (tests/distributed/cluster.py's way of starting them, without Celery).
It writes one small day of demo drops (4 stores, 900 reviews, 300 customers, as the
distributed test does), then triggers ``retail_ingest`` for that day through the REST API
``--runs`` times (the first run pays for cold caches; each run re-lands the same drop)
and reads the metadata DB once they are done.

Per DAG run, from ``dag_run`` and ``task_instance``:

- queued -> started: ``queued_at`` to the run's ``start_date`` (the scheduler picking it up);
- started -> first task: run ``start_date`` to the earliest task ``start_date``;
- wall: run ``start_date`` to ``end_date`` (as demo_stages.py); also from ``queued_at``;
- in tasks: the union of task intervals (tasks overlap under the LocalExecutor); the
  sum of task durations beside it;
- overhead = wall - union of task intervals; its share of the wall time;
- per task: scheduled -> queued -> started (``scheduled_dttm``, ``queued_dttm``,
  ``start_date``), the median and max over the run's tasks.

Run on demand (7 minutes on a busy 2-core machine, services and dag.test() baseline included)::

    python benchmarks/scheduler_bench.py [--runs 2] [--parallelism 2]

Writes benchmarks/results/scheduler.json and scheduler.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from common import ROOT, write_results  # noqa: E402 - also puts the project on sys.path
from common import machine as machine_name  # noqa: E402
from demo_stages import covered, ts  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "distributed"))
from cluster import BIN, AirflowAPI, Cluster, _checked, free_port, http_ok, wait_until  # noqa: E402

DAG_ID = "retail_ingest"
DAY = date(2026, 10, 1)


def environment(home: Path, api_port: int, parallelism: int) -> dict[str, str]:
    from cryptography.fernet import Fernet

    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RETAIL_", "MLFLOW_"))}
    passwords = home / "airflow-passwords.json"
    passwords.write_text('{"admin": "admin"}')
    api_url = f"http://127.0.0.1:{api_port}"
    return {
        **base,
        "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": api_url,
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        # only the triggered runs: the yearly schedule's one catch-up run is waited out first
        "RETAIL_INGEST_SCHEDULE": "0 0 1 1 *",
        "RETAIL_TASK_RETRIES": "0",
        "RETAIL_LAKE_URI": (home / "lake").as_uri(),
        "RETAIL_MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "RETAIL_MLFLOW_ARTIFACT_URI": (home / "artifacts").as_uri(),
    }


def read_runs(db: Path, run_ids: list[str], dag_test: bool = False) -> list[dict]:
    """Per run, the timings in the module docstring. ``dag_test``: a dag.test() run, whose
    ``start_date`` is its logical date; it starts at ``run_after`` (as in demo_stages.py)."""
    con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    out = []
    for run_id in run_ids:
        run = con.execute("SELECT * FROM dag_run WHERE dag_id = ? AND run_id = ?", (DAG_ID, run_id)).fetchone()
        queued, start, end = ts(run["queued_at"]), ts(run["start_date"]), ts(run["end_date"])
        if dag_test:
            start = max(start, ts(run["run_after"]))
            queued = start  # nothing queues it: the run starts in the calling process
        tasks = []
        for t in con.execute("SELECT task_id, state, start_date, end_date, scheduled_dttm, queued_dttm "
                             "FROM task_instance WHERE dag_id = ? AND run_id = ?", (DAG_ID, run_id)):
            s, e = ts(t["start_date"]), ts(t["end_date"])
            if s is None or e is None:
                continue
            sched, q = ts(t["scheduled_dttm"]), ts(t["queued_dttm"])
            tasks.append({"task_id": t["task_id"], "state": t["state"], "seconds": round(e - s, 3),
                          "start": s, "end": e,
                          "scheduled_to_queued_s": round(q - sched, 3) if q and sched else None,
                          "queued_to_start_s": round(s - q, 3) if q else None})
        busy = covered([(t["start"], t["end"]) for t in tasks])
        wall = end - start
        first = min(t["start"] for t in tasks)

        def stat(key: str, how) -> float | None:
            values = [t[key] for t in tasks if t[key] is not None]
            return round(how(values), 3) if values else None

        out.append({
            "run_id": run_id, "state": run["state"], "tasks_run": len(tasks),
            "queued_to_start_s": round(start - queued, 3), "first_task_after_s": round(first - start, 3),
            "queued_to_first_task_s": round(first - queued, 3),
            "wall_s": round(wall, 3), "wall_from_queued_s": round(end - queued, 3),
            "busy_s": round(busy, 3), "sum_task_s": round(sum(t["seconds"] for t in tasks), 3),
            "overhead_s": round(wall - busy, 3), "overhead_share": round((wall - busy) / wall, 4),
            "overhead_from_queued_share": round((end - queued - busy) / (end - queued), 4),
            "task_queued_to_start_median_s": stat("queued_to_start_s", statistics.median),
            "task_queued_to_start_max_s": stat("queued_to_start_s", max),
            "task_scheduled_to_queued_median_s": stat("scheduled_to_queued_s", statistics.median),
            "tasks": [{k: v for k, v in t.items() if k not in ("start", "end")} for t in tasks],
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2, help="DAG runs of the same day, one after another")
    parser.add_argument("--parallelism", type=int, default=2, help="LocalExecutor slots (core.parallelism)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the dag.test() run of the same DAG and drop for comparison")
    parser.add_argument("--keep", action="store_true", help="keep the AIRFLOW_HOME folder (its path is printed)")
    args = parser.parse_args()

    from pipeline.demo_data import DemoLimits, write_demo_drops
    from pipeline.lake import Lake

    home = Path(tempfile.mkdtemp(prefix="retail-scheduler-"))
    print("home:", home, flush=True)
    cluster = Cluster(home)
    started = time.monotonic()
    try:
        api_port = free_port()
        env = environment(home, api_port, args.parallelism)
        written = write_demo_drops(Lake((home / "lake" / "landing").as_uri()), DAY, 1,
                                   DemoLimits(stores=4, reviews=900, customers=300))
        airflow = str(BIN / "airflow")
        _checked([airflow, "db", "migrate"], env)
        api = cluster.start("api-server", [airflow, "api-server", "--port", str(api_port)], env)
        cluster.start("scheduler", [airflow, "scheduler"], env)
        cluster.start("dag-processor", [airflow, "dag-processor"], env)
        wait_until("airflow api-server", lambda: http_ok(f"http://127.0.0.1:{api_port}/api/v2/monitor/health"),
                   180, cluster.log("api-server"), api)
        client = AirflowAPI(f"http://127.0.0.1:{api_port}", "admin", "admin", cluster)
        client.wait_for_dag(DAG_ID, timeout=300)
        services_up = time.monotonic()
        client.set_paused(DAG_ID, False)
        # the catch-up run the yearly schedule makes on unpausing (no drop that day: tasks skip);
        # waited out so that it does not share the executor with the measured runs
        time.sleep(10)
        for run in client.runs(DAG_ID):
            client.wait_for_run(DAG_ID, run["dag_run_id"], timeout=600)
        run_ids = []
        for k in range(args.runs):
            run_id = client.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                                 {"logical_date": f"{DAY}T00:00:{k:02d}Z"})["dag_run_id"]
            state = client.wait_for_run(DAG_ID, run_id, timeout=900)
            print(f"run {k + 1}: {run_id} {state}", flush=True)
            run_ids.append(run_id)
        finished = time.monotonic()
    except BaseException:
        for name in ("scheduler", "dag-processor", "api-server"):
            if cluster.log(name).exists():
                print(f"----- {name} log (end) -----\n{cluster.log(name).read_text(errors='replace')[-3000:]}")
        raise
    finally:
        cluster.stop()

    # the baseline: the same DAG on the same drop through dag.test() (as the demo runs it),
    # in one process, on the same metadata DB, with the services stopped
    baseline = None
    if args.baseline:
        code = ("import sys, datetime; from airflow.dag_processing.dagbag import DagBag; "
                f"dag = DagBag({str(ROOT / 'dags')!r}).dags[{DAG_ID!r}]; "
                f"r = dag.test(logical_date=datetime.datetime({DAY.year}, {DAY.month}, {DAY.day}, 0, 1, "
                "tzinfo=datetime.timezone.utc)); print('DAGTEST', r.run_id, r.state)")
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
        line = [x for x in out.stdout.splitlines() if x.startswith("DAGTEST")]
        if out.returncode or not line:
            print(f"dag.test baseline failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
        else:
            baseline = line[-1].split()[1]
            print("dag.test baseline:", line[-1], flush=True)

    runs = read_runs(home / "airflow" / "airflow.db", run_ids)
    base_run = read_runs(home / "airflow" / "airflow.db", [baseline], dag_test=True)[0] if baseline else None
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    import airflow

    payload = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_name(), "airflow": airflow.__version__,
        "setup": f"LocalExecutor (parallelism {args.parallelism}), SQLite, api-server + scheduler + "
                 "dag-processor as separate processes, default scheduler settings",
        "dag_id": DAG_ID, "rows_written": written, "services_up_s": round(services_up - started, 1),
        "total_s": round(finished - started, 1),
        "note": "2-core machine shared with other jobs at the time: timings noisy",
        "runs": runs, "dag_test_baseline": base_run,
    }
    lines = [f"Scheduling overhead under a real scheduler ({payload['date']}, {payload['machine']}, Airflow "
             f"{payload['airflow']}; {payload['setup']}; `{DAG_ID}` on one small day of demo drops, "
             f"{len(runs)} run(s) one after another; the machine was shared with other jobs, so timings are noisy)",
             "",
             "| DAG run | state | tasks | queued -> started s | started -> first task s | wall s | in tasks s "
             "(union) | sum of task s | overhead s | overhead share | share from queued | task queued -> "
             "started s (median / max) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = [(f"{k}: {r['run_id']}", r) for k, r in enumerate(runs, 1)]
    if base_run:
        rows.append(("dag.test() of the same drop (baseline)", base_run))
    for name, r in rows:
        lines.append(f"| {name} | {r['state']} | {r['tasks_run']} | {r['queued_to_start_s']:.2f} | "
                     f"{r['first_task_after_s']:.2f} | {r['wall_s']:.1f} | {r['busy_s']:.1f} | "
                     f"{r['sum_task_s']:.1f} | {r['overhead_s']:.2f} | {r['overhead_share']:.1%} | "
                     f"{r['overhead_from_queued_share']:.1%} | {_fmt(r['task_queued_to_start_median_s'])} / "
                     f"{_fmt(r['task_queued_to_start_max_s'])} |")
    lines += ["", "Wall: the run's start to its end; in tasks: the time covered by at least one task (they "
              "overlap under the LocalExecutor); overhead = wall - in tasks; share from queued: the same with "
              "the wall time counted from the trigger (the run's queued_at). A task's interval starts when its "
              "process (forked by the executor) reports running to the execution API, before it parses the "
              "DAG file (about 0.1-0.2 s here, in its log), so that parse counts as task time. A task's queued "
              "-> started includes waiting for one of the executor's slots. The baseline row is the same DAG "
              "on the same drop through dag.test(), one task at a time in one process, as the demo runs it "
              "(its start: the run's run_after, as in demo_stages.py)."]
    write_results("scheduler", payload, lines)
    print("\n".join(lines))


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
