"""Where the wall time of `make demo` goes: per DAG run, per stage, per task, per family.

Reads what the demo left behind, read-only: Airflow's metadata database
(var/airflow/airflow.db: tables ``dag_run`` and ``task_instance``) and the MLflow store
(var/mlflow/mlflow.db: runs and their ``train_seconds`` metric). Run `make demo` first.

- A DAG run starts at the later of its ``start_date`` and ``run_after`` (``dag.test()``,
  which the demo uses, sets ``start_date`` to the logical date and ``run_after`` to the
  moment it created the run) and ends at its ``end_date``.
- A task's interval is its ``start_date`` .. ``end_date`` (skipped tasks that never ran are
  points; tries before a retry, from ``task_instance_history``, count too). Scheduling
  overhead = (DAG run wall time - time covered by the union of its task intervals) /
  wall time, per DAG run and over all of them; target: under 10%.
- The demo's whole span (first DAG run start to last end) also holds the time between
  DAG runs (scripts/run_dags.py parsing the DAG folder and starting the next
  ``dag.test()``), counted apart.
- Each ``fine_tune_<family>`` task is split with its MLflow run: setup (imports, until
  the run opens), prepare (lineage, champion, data, tokenising: until the loop starts),
  train (the loop's ``train_seconds``), log model (after the loop: the pyfunc, plots).

The demo selected is the last group of DAG runs that followed one another (gaps under
``--max-gap`` seconds). Run on demand::

    python benchmarks/demo_stages.py [--airflow-db var/airflow/airflow.db] [--mlflow-db var/mlflow/mlflow.db]

Writes benchmarks/results/demo_stages.json and .md, and plots/demo_stages.png.
"""

from __future__ import annotations

import argparse
import datetime
import sqlite3
from pathlib import Path
from typing import Any

from common import ROOT, write_results  # noqa: E402 - also puts the project on sys.path
from common import machine as machine_name  # noqa: E402
from pipeline.families import FAMILIES  # noqa: E402
from pipeline.feeds import FEEDS  # noqa: E402

TARGET_SHARE = 0.10
UTC = datetime.timezone.utc


def connect(path: Path) -> sqlite3.Connection:
    """Read-only: the benchmark never writes to the demo's stores."""
    if not path.exists():
        raise SystemExit(f"{path} not found: run `make demo` first")
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    return con


def ts(value: str | None) -> float | None:
    """Airflow's UTC timestamps (text in SQLite) as seconds since the epoch."""
    if not value:
        return None
    return datetime.datetime.fromisoformat(value[:26]).replace(tzinfo=UTC).timestamp()


def iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def covered(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of intervals."""
    total, end = 0.0, float("-inf")
    for lo, hi in sorted(intervals):
        if hi > end:
            total += hi - max(lo, end)
            end = hi
    return total


def split_task_id(task_id: str) -> tuple[str, str]:
    """``fine_tune_sentiment`` -> (``fine_tune``, ``sentiment``); ``inventory_plan`` -> (itself, '')."""
    stage, _, subject = task_id.rpartition("_")
    return (stage, subject) if stage and subject in (*FAMILIES, *FEEDS) else (task_id, "")


def select_demo(runs: list[dict], max_gap: float) -> list[dict]:
    """The last group of DAG runs, each starting within ``max_gap`` s of the previous end."""
    runs = sorted(runs, key=lambda r: r["start"])
    group = runs[-1:]
    for run in reversed(runs[:-1]):
        if group[0]["start"] - run["end"] > max_gap:
            break
        group.insert(0, run)
    return group


def read_dag_runs(con: sqlite3.Connection) -> list[dict]:
    runs = []
    for row in con.execute("SELECT dag_id, run_id, logical_date, state, start_date, end_date, run_after "
                           "FROM dag_run WHERE end_date IS NOT NULL"):
        start = max(t for t in (ts(row["start_date"]), ts(row["run_after"])) if t is not None)
        runs.append({"dag_id": row["dag_id"], "run_id": row["run_id"], "logical_date": row["logical_date"][:10],
                     "state": row["state"], "start": start, "end": ts(row["end_date"])})
    return runs


def read_tasks(con: sqlite3.Connection, run: dict) -> list[dict]:
    tasks = []
    for row in con.execute("SELECT task_id, map_index, state, try_number, start_date, end_date, queued_dttm, "
                           "scheduled_dttm FROM task_instance WHERE dag_id = ? AND run_id = ? ORDER BY start_date",
                           (run["dag_id"], run["run_id"])):
        start, end = ts(row["start_date"]), ts(row["end_date"])
        if start is None or end is None:
            continue
        stage, subject = split_task_id(row["task_id"])
        tasks.append({"task_id": row["task_id"], "stage": stage, "subject": subject, "state": row["state"],
                      "try_number": row["try_number"], "start": start, "end": end,
                      "seconds": round(end - start, 3),
                      "wait_s": round(start - ts(row["scheduled_dttm"]), 3) if row["scheduled_dttm"] else None})
    return tasks


def read_earlier_tries(con: sqlite3.Connection, run: dict) -> list[tuple[float, float]]:
    """Intervals of the tries that failed before a task's last one (task_instance_history)."""
    rows = con.execute("SELECT start_date, end_date FROM task_instance_history WHERE dag_id = ? AND run_id = ? "
                       "AND start_date IS NOT NULL AND end_date IS NOT NULL", (run["dag_id"], run["run_id"]))
    return [(ts(a), ts(b)) for a, b in rows]


def summarise_run(run: dict, tasks: list[dict], earlier: list[tuple[float, float]]) -> dict:
    wall = run["end"] - run["start"]
    busy = covered([(t["start"], t["end"]) for t in tasks] + earlier)
    first = min((t["start"] for t in tasks), default=run["end"])
    return {**run, "wall_s": round(wall, 3), "busy_s": round(busy, 3), "overhead_s": round(wall - busy, 3),
            "overhead_share": round((wall - busy) / wall, 4) if wall else 0.0,
            "first_task_after_s": round(first - run["start"], 3), "earlier_tries": len(earlier), "tasks": tasks}


def read_mlflow_runs(con: sqlite3.Connection, start: float, end: float) -> dict[str, dict]:
    """Per family: the MLflow training run that opened during the demo (the latest one)."""
    found: dict[str, dict] = {}
    for row in con.execute("SELECT r.run_uuid, r.start_time, r.end_time, t.value AS family FROM runs r "
                           "JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'family' "
                           "WHERE r.start_time BETWEEN ? AND ? ORDER BY r.start_time",
                           (int(start * 1000), int(end * 1000))):
        metric = con.execute("SELECT value, timestamp FROM metrics WHERE run_uuid = ? AND key = 'train_seconds' "
                             "ORDER BY timestamp DESC LIMIT 1", (row["run_uuid"],)).fetchone()
        tags = dict(con.execute("SELECT key, value FROM tags WHERE run_uuid = ? AND key IN "
                                "('device', 'hardware.cpu_count', 'hardware.gpu')", (row["run_uuid"],)).fetchall())
        found[row["family"]] = {
            "run_id": row["run_uuid"], "start": row["start_time"] / 1000,
            "end": row["end_time"] / 1000 if row["end_time"] else None,
            "train_s": metric["value"] if metric else None,
            "train_logged_at": metric["timestamp"] / 1000 if metric else None, "hardware": tags,
        }
    return found


def family_split(dag_runs: list[dict], mlflow_runs: dict[str, dict]) -> list[dict]:
    """fine_tune of each family split by its MLflow run; evaluate beside it."""
    tasks = {t["task_id"]: t for run in dag_runs for t in run["tasks"]}
    rows = []
    for family in FAMILIES:
        fine_tune, evaluate = tasks.get(f"fine_tune_{family}"), tasks.get(f"evaluate_{family}")
        if fine_tune is None:
            continue
        row: dict[str, Any] = {"family": family, "fine_tune_s": fine_tune["seconds"],
                               "evaluate_s": evaluate["seconds"] if evaluate else None}
        run = mlflow_runs.get(family)
        if run and run["train_s"] is not None:
            loop_start = run["train_logged_at"] - run["train_s"]
            row.update({
                "setup_s": round(run["start"] - fine_tune["start"], 3),
                "prepare_s": round(loop_start - run["start"], 3),
                "train_s": round(run["train_s"], 3),
                "log_model_s": round(fine_tune["end"] - run["train_logged_at"], 3),
                "mlflow_run_s": round(run["end"] - run["start"], 3) if run["end"] else None,
                "mlflow_run_id": run["run_id"],
            })
        rows.append(row)
    return rows


def stage_totals(dag_runs: list[dict]) -> list[dict]:
    """Seconds per (DAG, stage), summed over runs and subjects, in order of first start."""
    totals: dict[tuple[str, str], dict] = {}
    for run in dag_runs:
        for t in run["tasks"]:
            entry = totals.setdefault((run["dag_id"], t["stage"]), {"dag_id": run["dag_id"], "stage": t["stage"],
                                                                    "seconds": 0.0, "tasks": 0, "first": t["start"]})
            entry["seconds"] += t["seconds"]
            entry["tasks"] += 1
    rows = sorted(totals.values(), key=lambda e: e["first"])
    return [{k: round(v, 3) if k == "seconds" else v for k, v in e.items() if k != "first"} for e in rows]


def analyse(airflow_db: Path, mlflow_db: Path | None, max_gap: float) -> dict:
    con = connect(airflow_db)
    runs = read_dag_runs(con)
    if not runs:
        raise SystemExit(f"{airflow_db} holds no finished DAG run: run `make demo` first")
    dag_runs = [summarise_run(run, read_tasks(con, run), read_earlier_tries(con, run))
                for run in select_demo(runs, max_gap)]
    start, end = dag_runs[0]["start"], max(r["end"] for r in dag_runs)
    wall = end - start
    busy = sum(r["busy_s"] for r in dag_runs)
    span_busy = covered([(t["start"], t["end"]) for r in dag_runs for t in r["tasks"]])
    in_runs = sum(r["wall_s"] for r in dag_runs)
    mlflow_runs = read_mlflow_runs(connect(mlflow_db), start, end) if mlflow_db and mlflow_db.exists() else {}
    hardware = next((r["hardware"] for r in mlflow_runs.values()), {})
    total = {"start": iso(start), "end": iso(end), "wall_s": round(wall, 3), "busy_s": round(busy, 3),
             "in_dag_runs_s": round(in_runs, 3), "between_runs_s": round(wall - in_runs, 3),
             "overhead_in_runs_s": round(in_runs - busy, 3),
             "overhead_share": round((in_runs - busy) / in_runs, 4),
             "overhead_share_with_gaps": round((wall - span_busy) / wall, 4)}
    for run in dag_runs:
        for t in run["tasks"]:
            t["offset_s"] = round(t["start"] - start, 3)
        run["offset_s"] = round(run["start"] - start, 3)
    return {"demo_date": iso(start)[:10], "dag_runs": dag_runs, "total": total, "stages": stage_totals(dag_runs),
            "families": family_split(dag_runs, mlflow_runs), "demo_hardware": hardware}


def table(payload: dict) -> list[str]:
    total, target = payload["total"], payload["target_share"]
    lines = [f"Wall time of the demo's DAG runs by stage (demo run {payload['date']} on {payload['machine']}; "
             f"read from its Airflow and MLflow stores on {payload['measured_on']})", "",
             "| DAG run | logical date | wall s | in tasks s | overhead s | overhead share | first task after s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in payload["dag_runs"]:
        lines.append(f"| {r['dag_id']} | {r['logical_date']} | {r['wall_s']:.1f} | {r['busy_s']:.1f} | "
                     f"{r['overhead_s']:.2f} | {r['overhead_share']:.1%} | {r['first_task_after_s']:.2f} |")
    lines += [f"| all DAG runs | | {total['in_dag_runs_s']:.1f} | {total['busy_s']:.1f} | "
              f"{total['overhead_in_runs_s']:.2f} | **{total['overhead_share']:.1%}** | |", "",
              f"Scheduling overhead {total['overhead_share']:.1%} of the DAG runs' wall time (target under "
              f"{target:.0%}: {'met' if payload['met'] else 'not met'}). From the first DAG run's start to the "
              f"last one's end: {total['wall_s']:.1f} s, of which {total['between_runs_s']:.1f} s between DAG runs "
              f"(scripts/run_dags.py parsing the DAGs and starting the next dag.test); counting that too, "
              f"{total['overhead_share_with_gaps']:.1%}. Not in these stores, so not counted: what `make demo` "
              f"runs before the first DAG run (`airflow db migrate`, `python -m pipeline demo-data`, imports).", "",
              "| DAG | stage | tasks | seconds | share of the span |", "|---|---|---:|---:|---:|"]
    lines += [f"| {s['dag_id']} | {s['stage']} | {s['tasks']} | {s['seconds']:.1f} | "
              f"{s['seconds'] / total['wall_s']:.1%} |" for s in payload["stages"]]
    if payload["families"]:
        lines += ["", "Training tasks split with their MLflow runs (seconds)", "",
                  "| family | fine_tune | setup | prepare | train loop | log model | evaluate | MLflow run |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for f in payload["families"]:
            cells = [f.get(k) for k in ("fine_tune_s", "setup_s", "prepare_s", "train_s", "log_model_s",
                                        "evaluate_s", "mlflow_run_s")]
            lines.append(f"| {f['family']} | " + " | ".join("" if c is None else f"{c:.1f}" for c in cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--airflow-db", type=Path, default=ROOT / "var" / "airflow" / "airflow.db")
    parser.add_argument("--mlflow-db", type=Path, default=ROOT / "var" / "mlflow" / "mlflow.db")
    parser.add_argument("--max-gap", type=float, default=120.0,
                        help="seconds between DAG runs that still belong to one demo")
    args = parser.parse_args()

    payload = analyse(args.airflow_db, args.mlflow_db, args.max_gap)
    hardware = payload["demo_hardware"]
    machine = machine_name()
    if hardware.get("hardware.gpu"):
        machine = f"{hardware['hardware.gpu']} (training), {machine}"
    payload = {"date": payload["demo_date"], "measured_on": datetime.date.today().isoformat(), "machine": machine,
               "target_share": TARGET_SHARE, "met": payload["total"]["overhead_share"] < TARGET_SHARE,
               "sources": {"airflow_db": str(args.airflow_db), "mlflow_db": str(args.mlflow_db)}, **payload}
    lines = table(payload)
    write_results("demo_stages", payload, lines)
    print("\n".join(lines))
    from plots import PLOTS, plot_demo_stages

    print("plot:", plot_demo_stages(payload, PLOTS / "demo_stages.png"))


if __name__ == "__main__":
    main()
