"""The closed loop replayed day by day on the bundled real data: monitor, retrain when it is
worth it, probation and rollback.

The bundled data sets are written as drops ending on the last replayed day (reviews arrive
unlabelled and their label follows ``--label-delay`` days later). Day 0 imports the history
and trains the three families; then, for each of ``--days`` days, the pipeline's own steps
run in the order the DAGs run them (no scheduler, for speed): the day's drops are
ingested, each family is monitored (live metrics, probation), each family's retrain
decision is taken and, when it says so, the family is trained, evaluated, gated, registered
and promoted; then the consumers issue the day's predictions with the champions.

On day ``--degrade-on`` a sentiment model trained on shuffled labels is promoted with
``--force`` (as a person overriding the gate would); the probation should roll it back.

Reported (``benchmarks/results/closed_loop.{json,md}``): every decision with its reasons,
the retrains and skips per family, the training time spent against retraining every
week, the rollbacks, and the live metrics per day. Not a test: run on demand, e.g.::

    python benchmarks/closed_loop.py                 # 60 days, the demo profile
    python benchmarks/closed_loop.py --days 20 --degrade-on 8
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import common  # noqa: F401 - the project on sys.path, offline HF

ROOT = common.ROOT


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--start", default="2026-09-01", help="day 0: the history import")
    parser.add_argument("--degrade-on", type=int, default=20, help="day of the forced shuffled-label champion (0: none)")
    parser.add_argument("--label-delay", type=int, default=3)
    parser.add_argument("--workdir", default=str(ROOT / "var" / "replay"))
    parser.add_argument("--config", default=str(ROOT / "config" / "demo.yaml"), help="settings profile")
    parser.add_argument("--name", default="closed_loop", help="results file name")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ.update({
        "RETAIL_CONFIG_FILE": args.config, "RETAIL_LAKE_URI": (work / "lake").as_uri(),
        "RETAIL_MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "RETAIL_MLFLOW_ARTIFACT_URI": (work / "artifacts").as_uri(),
    })
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    from pipeline import registry, steps
    from pipeline.demo_data import write_demo_drops
    from pipeline.families import FAMILIES
    from pipeline.ingest.history import import_history
    from pipeline.lake import lake_from_settings, landing_lake
    from pipeline.settings import load_settings

    settings = load_settings()
    lake = lake_from_settings(settings)
    start = date.fromisoformat(args.start)
    write_demo_drops(landing_lake(settings), start, args.days + 1, label_delay_days=args.label_delay)
    log = logging.getLogger("replay")
    events: list[dict] = []  # one per family and day
    live: list[dict] = []
    trained_runs: set[str] = set()  # a run returned again was reused (same data, settings, code): no training
    started = time.perf_counter()

    def ingest(day: date) -> None:
        result = import_history(landing_lake(settings), lake, settings.ingest, day, day)
        if result.rejected:
            raise SystemExit(f"drops rejected on {day}: {result.rejected}")

    def retrain(family: str, day: date) -> dict:
        """The retrain DAG's chain for one family; what happened and how long it took."""
        from pipeline.datasets import NoData
        from pipeline.ingest.quality import RetrainingHeld
        from pipeline.monitoring.retrain import NotWorthRetraining

        t0 = time.perf_counter()
        try:
            why = steps.check_data(family, day.isoformat())
        except (NoData, NotWorthRetraining) as exc:
            return {"action": "skip", "reason": str(exc), "seconds": time.perf_counter() - t0}
        try:
            dataset = steps.build_dataset(family, day.isoformat())
        except RetrainingHeld as exc:  # the DAG's build_dataset fails until a person acknowledges
            return {"action": "held", "reason": f"{why}; held: {exc}", "seconds": time.perf_counter() - t0}
        outcome = train_and_promote(family, dataset, day)
        return {"action": "retrain", "reason": why, **outcome, "seconds": time.perf_counter() - t0}

    def train_and_promote(family: str, dataset: str, day: date, force_reason: str = "") -> dict:
        import mlflow

        run_id = steps.fine_tune(family, dataset, day.isoformat())
        steps.evaluate(family, dataset, run_id)
        decision = steps.gate(family, run_id)
        version = steps.register(family, run_id, decision)
        if force_reason:
            promoted = registry.promote(settings, family, version, force=True, reason=force_reason, by="replay")
        else:
            promoted = steps.approval(family, version, decision["passed"]) in ("auto", "approved") \
                and steps.promote(family, version)
        reused = run_id in trained_runs
        trained_runs.add(run_id)
        train_seconds = 0.0 if reused else mlflow.get_run(run_id).data.metrics.get("train_seconds", 0.0)
        return {"version": version, "run_id": run_id, "reused_run": reused, "gate_passed": decision["passed"],
                "promoted": bool(promoted), "train_seconds": train_seconds,
                "gate_failures": [f["reason"] for f in decision["failures"]]}

    def consumers(day: date) -> None:
        for family in ("forecaster", "sentiment", "recommender"):  # review insights before recommendations
            if registry.champion_version(settings, family) is None:
                continue
            {"forecaster": steps.inventory_plan, "sentiment": steps.review_insights,
             "recommender": steps.recommendations}[family](day.isoformat())

    ingest(start)
    for family in FAMILIES:
        events.append({"day": 0, "date": start.isoformat(), "family": family, **retrain(family, start)})
    consumers(start)

    for i in range(1, args.days + 1):
        day = start + timedelta(days=i)
        ingest(day)
        for family in FAMILIES:
            record = steps.monitor(family, day.isoformat())
            probation = record.get("probation") or {}
            live.append({"day": i, "date": day.isoformat(), "family": family, "champion": record["champion"],
                         "metric": record["metric"], "live": record["live"].get(record["metric"]),
                         "samples": record["live"]["samples"], "promoted": record["promoted"],
                         "probation": probation.get("status"), "worse_by": (probation.get("evidence") or {}).get("worse_by")})
            if probation.get("status") == "rolled_back" and probation.get("version") == record["champion"]:
                events.append({"day": i, "date": day.isoformat(), "family": family, "action": "rollback",
                               "reason": probation["detail"], "version": probation["version"],
                               "to_version": probation["shadow"]})
        for family in FAMILIES:
            events.append({"day": i, "date": day.isoformat(), "family": family, **retrain(family, day)})
        if i == args.degrade_on:
            events.append({"day": i, "date": day.isoformat(), "family": "sentiment", **degrade(settings, lake, day,
                                                                                                 train_and_promote)})
        consumers(day)
        log.info("replay day %d/%d (%s) done, %.0f s so far", i, args.days, day, time.perf_counter() - started)

    report(args, events, live, time.perf_counter() - started)
    return 0


def degrade(settings, lake, day: date, train_and_promote) -> dict:  # noqa: ANN001
    """A sentiment model trained on shuffled labels, promoted with --force."""
    import numpy as np

    from pipeline import steps

    t0 = time.perf_counter()
    folder = steps.build_dataset("sentiment", day.isoformat())
    shuffled = folder.rstrip("/") + "-shuffled"
    for name in ("holdout.parquet", "lineage.json"):
        lake.write_bytes(f"{shuffled}/{name}", lake.read_bytes(f"{folder}/{name}"))
    train = lake.read_parquet(f"{folder}/train.parquet")
    train["label"] = np.random.default_rng(0).permutation(train["label"].to_numpy())
    lake.write_parquet(f"{shuffled}/train.parquet", train)
    outcome = train_and_promote("sentiment", shuffled, day,
                                force_reason="replay: a model trained on shuffled labels, forced on purpose")
    return {"action": "forced_degraded", "reason": "trained on shuffled labels, promoted with --force", **outcome,
            "seconds": time.perf_counter() - t0}


def report(args: argparse.Namespace, events: list[dict], live: list[dict], seconds: float) -> None:
    families = sorted({e["family"] for e in events})
    weekly = args.days // 7  # retrains a weekly cron would have run after day 0
    table = [f"# Closed loop: {args.days} days replayed on the bundled data", "",
             f"Machine: {common.machine()}. Profile: `{Path(args.config).name}`. Wall time {seconds / 60:.0f} min. "
             f"Command: `python benchmarks/closed_loop.py --days {args.days} --degrade-on {args.degrade_on}`.", "",
             "| family | retrains (model reused) | skips | training s (retrains) | weekly cron would retrain | "
             "training s saved (est.) | rollbacks |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    summary = {}
    for family in families:
        mine = [e for e in events if e["family"] == family and e["day"] > 0]
        retrains = [e for e in mine if e["action"] == "retrain"]
        skips = [e for e in mine if e["action"] == "skip"]
        rollbacks = [e for e in mine if e["action"] == "rollback"]
        first = next(e for e in events if e["family"] == family and e["day"] == 0)
        reused = [e for e in retrains if e.get("reused_run")]
        per_retrain = [e["train_seconds"] for e in retrains + [first] if e.get("train_seconds")]
        mean = sum(per_retrain) / len(per_retrain) if per_retrain else 0.0
        saved = (weekly - len(retrains)) * mean
        summary[family] = {"retrains": len(retrains), "reused": len(reused), "skips": len(skips), "rollbacks": len(rollbacks),
                           "train_seconds": sum(e.get("train_seconds", 0.0) for e in retrains),
                           "mean_train_seconds": mean, "weekly_retrains": weekly, "saved_seconds_estimate": saved,
                           "skip_reasons": Counter(_kind(e["reason"]) for e in skips)}
        table.append(f"| {family} | {len(retrains)} ({len(reused)}) | {len(skips)} | {summary[family]['train_seconds']:.0f} | "
                     f"{weekly} | {saved:.0f} | {len(rollbacks)} |")
    table += ["", "Training seconds saved: (weekly retrains - retrains) x the family's mean training seconds "
              "in this replay (day 0 included). A retrain whose data, settings and code were those of a finished run "
              "reuses that run's model (no training, 0 s).", "", "## Every retrain, forced promotion and rollback", "",
              "| day | family | action | version | gate | promoted | train s | reason |", "|---:|---|---|---|---|---|---:|---|"]
    for e in events:
        if e["action"] != "skip":
            gate = "" if "gate_passed" not in e else "passed" if e["gate_passed"] else "failed"
            table.append(f"| {e['day']} | {e['family']} | {e['action']}{' (reused)' if e.get('reused_run') else ''} | "
                         f"{e.get('version', '')} | {gate} | {e.get('promoted', '')} | {e.get('train_seconds', 0):.0f} | "
                         f"{e['reason'][:400]} |")
    table += ["", "## Skips: the first reason of each kind per family", ""]
    for family in families:
        shown = set()
        for e in events:
            if e["family"] == family and e["action"] == "skip" and _kind(e["reason"]) not in shown:
                shown.add(_kind(e["reason"]))
                table.append(f"- day {e['day']} {family}: {e['reason'][:600]}")
    table += ["", "## Live primary metric of the champion, every 5 days", "",
              "| day | family | champion | metric | at promotion | live | samples | probation |",
              "|---:|---|---|---|---:|---:|---:|---|"]
    for row in live:
        if row["day"] % 5 == 0 or row["probation"] in ("rolled_back",):
            table.append(f"| {row['day']} | {row['family']} | v{row['champion']} | {row['metric']} | "
                         f"{_f(row['promoted'])} | {_f(row['live'])} | {row['samples']} | {row['probation'] or '-'} |")
    common.write_results(args.name, {"machine": common.machine(), "days": args.days, "seconds": seconds,
                                     "summary": summary, "events": events, "live": live}, table)
    print("\n".join(table))


def _kind(reason: str) -> str:
    return "not worth retraining" if "not worth retraining" in reason else reason.split(":")[0]


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    sys.exit(main())
