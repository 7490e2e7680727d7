"""Run the retail DAGs end to end with Airflow's ``dag.test()`` over a range of dates.

For each day: ``retail_ingest``; then, on the last day, ``retail_retrain`` and
``retail_consumers`` (in a scheduler these follow from the Asset events; ``dag.test``
runs one DAG at a time, so this script plays the scheduler's part). Exits non-zero when
a DAG run fails.
Usage: ``python scripts/run_dags.py [--start YYYY-MM-DD] [--days N] [--landing URI]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.settings import load_settings  # noqa: E402


def run(dag_id: str, day: date) -> float:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(ROOT / "dags")).dags[dag_id]
    logical = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    started = time.perf_counter()
    print(f"==> {dag_id} for {day}", flush=True)
    dag_run = dag.test(logical_date=logical)
    seconds = time.perf_counter() - started
    state = str(getattr(dag_run, "state", "unknown"))
    print(f"<== {dag_id} for {day}: {state} in {seconds:.0f} s", flush=True)
    if "success" not in state:
        raise SystemExit(f"{dag_id} for {day} ended {state}; see the task logs above")
    return seconds


def main() -> int:
    settings = load_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--start", default=settings.demo_start)
    parser.add_argument("--days", type=int, default=settings.demo_days)
    parser.add_argument("--landing", help="landing URI to ingest from (default: the settings' landing)")
    args = parser.parse_args()
    if args.landing:  # the tasks read their settings from the environment
        os.environ["RETAIL_LANDING_URI"] = args.landing
    first = date.fromisoformat(args.start)
    days = [first + timedelta(days=i) for i in range(args.days)]
    timings = {}
    for day in days:
        timings[f"retail_ingest {day}"] = run("retail_ingest", day)
    timings["retail_retrain"] = run("retail_retrain", days[-1])
    timings["retail_consumers"] = run("retail_consumers", days[-1])

    from pipeline.report import render_summary

    print("\n" + render_summary(settings, days[-1]))
    print("\nWall time per DAG run: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
          + f"; total {sum(timings.values()):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
