"""Run the retail pipeline end to end on the embedded setup, playing the scheduler's part.

Two ways in:
- daily (``make demo``): ``retail_ingest`` through Airflow's ``dag.test()`` for each day,
  then ``retail_retrain`` and ``retail_consumers`` on the last day (a scheduler starts
  those two from the Asset events; ``dag.test`` runs one DAG at a time); then the live
  days (``--live-days``, default ``demo_live_days``): their drops imported in one process,
  and ``retail_monitor``, ``retail_retrain`` and ``retail_consumers`` on the last of them,
  which ends with the monitoring table (the champions scored on what they predicted);
- ``--history`` (``make run``): the whole history of drops imported in one process
  (``python -m pipeline ingest``: only the dates that have drops), then the same two DAGs
  on the last drop's date.
Exits non-zero when a DAG run fails or a drop is rejected.

Usage: ``python scripts/run_dags.py [--history] [--start YYYY-MM-DD] [--days N | --end YYYY-MM-DD] [--landing URI]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.settings import load_settings, load_settings_landing  # noqa: E402


def run(dag_id: str, day: date) -> float:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    dag = DagBag(str(ROOT / "dags")).dags[dag_id]
    logical = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    started_at, started = datetime.now(timezone.utc), time.perf_counter()
    print(f"==> {dag_id} for {day}", flush=True)
    dag_run = dag.test(logical_date=logical)
    seconds = time.perf_counter() - started
    # dag.test() starts a run "at" its logical date (weeks ago for a history): record when
    # it really started, so the UI shows the run's real duration
    with create_session() as session:
        session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == dag_run.run_id).update(
            {DagRun.start_date: started_at}, synchronize_session=False)
        ran = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id,
                                                 TaskInstance.run_id == dag_run.run_id).count()
    state = str(getattr(dag_run, "state", "unknown"))
    print(f"<== {dag_id} for {day}: {state} in {seconds:.0f} s", flush=True)
    if "success" not in state:
        raise SystemExit(f"{dag_id} for {day} ended {state}; see the task logs above")
    if not ran:
        raise SystemExit(f"{dag_id} for {day} ran no task: is {day} before the DAGs' start_date?")
    return seconds


def import_history(start: date | None, end: date | None) -> date:
    """``python -m pipeline ingest`` in this process; the last date that had a drop."""
    from pipeline.ingest.history import import_history as run_import
    from pipeline.lake import lake_from_settings, landing_lake

    settings = load_settings()
    result = run_import(landing_lake(settings), lake_from_settings(settings), settings.ingest, start, end)
    print(result.summary(), flush=True)
    if result.rejected:
        raise SystemExit(f"{len(result.rejected)} drop(s) rejected (see above); fix or remove them and run again")
    return result.last_date


def main() -> int:
    settings = load_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", action="store_true", help="import every drop in one process, then train")
    parser.add_argument("--start", help="first date (default: the demo's, or with --history the first drop's)")
    parser.add_argument("--days", type=int, help="number of days from --start")
    parser.add_argument("--end", help="last date (default: the demo's last day, or with --history the last drop's)")
    parser.add_argument("--landing", help="landing URI to ingest from (default: the settings' landing)")
    parser.add_argument("--live-days", type=int, default=settings.demo_live_days,
                        help="daily mode: days after training to ingest, then monitor (default: %(default)s)")
    args = parser.parse_args()
    load_settings_landing(args.landing)  # the tasks read their settings from the environment
    start = date.fromisoformat(args.start) if args.start else None
    end = date.fromisoformat(args.end) if args.end else None
    if start and args.days:
        end = start + timedelta(days=args.days - 1)
    timings = {}
    if args.history:
        started = time.perf_counter()
        last = import_history(start, end)
        timings["history import"] = time.perf_counter() - started
    else:
        first = start or date.fromisoformat(settings.demo_start)
        last = end or first + timedelta(days=(args.days or settings.demo_days) - 1)
        for i in range((last - first).days + 1):
            day = first + timedelta(days=i)
            timings[f"retail_ingest {day}"] = run("retail_ingest", day)
    timings["retail_retrain"] = run("retail_retrain", last)
    timings["retail_consumers"] = run("retail_consumers", last)
    if not args.history and args.live_days:
        started = time.perf_counter()
        last = import_history(last + timedelta(days=1), last + timedelta(days=args.live_days))
        timings["live days import"] = time.perf_counter() - started
        for dag_id in ("retail_monitor", "retail_retrain", "retail_consumers"):
            timings[f"{dag_id} {last}"] = run(dag_id, last)

    from pipeline.lake import lake_from_settings
    from pipeline.monitoring.monitor import latest_records
    from pipeline.monitoring.reports import monitor_table
    from pipeline.report import render_summary

    print("\n" + render_summary(settings, last))
    if not args.history and args.live_days:
        print(f"\nLive performance of the champions on {last} (python -m pipeline models status for more):\n"
              + monitor_table(latest_records(lake_from_settings(settings), last)))
    print("\nWall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
          + f"; total {sum(timings.values()):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
