"""Backfills through Airflow's dag.test() on the bundled real data.

- The same 30 days, ingested every day and retrained every Monday, run twice: the lake
  (validated partitions, quarantine, raw manifests) and the registry (runs, versions, their
  tags, aliases) end as they were after the first pass, the promotion history gains only
  refusals of versions that are not the champion, and every row that came in is
  accounted for.
- 60 days ingested by three processes at once, each running its share of the days
  against one shared lake: every drop is accounted for, no partition is half-written and
  no key is published twice.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from pipeline.families import FAMILIES
from pipeline.demo_data import DemoLimits, write_demo_drops
from pipeline.feeds import get_feed
from pipeline.lake import Lake
from pipeline.settings import load_settings

pytestmark = pytest.mark.slow

DEMO_FEEDS = ("sales", "reviews", "interactions", "catalog", "plan")
LIMITS = DemoLimits(stores=4, reviews=900, customers=300)  # as the end-to-end test
# the end-to-end test's tiny settings, smaller still: the forecaster and the recommender are
# trained on every Monday (their data changes each week), the sentiment model once (its
# labelled reviews are all in the first drop)
# no review sent again with its late label inside the replayed days: each key is published
# once, and the labelled reviews are the same on every Monday (late labels: test_closed_loop.py)
NO_LATE_LABELS = 365
TINY = {
    "RETAIL_TRAINING__SENTIMENT__MAX_TRAIN_ROWS": "600",
    "RETAIL_TRAINING__SENTIMENT__MAX_LENGTH": "48",
    "RETAIL_TRAINING__SENTIMENT__BATCH_SIZE": "16",
    "RETAIL_TRAINING__FORECASTER__WINDOWS_PER_SERIES": "32",
    "RETAIL_TRAINING__FORECASTER__EPOCHS": "4",
    "RETAIL_TRAINING__RECOMMENDER__BATCH_SIZE": "16",
    "RETAIL_TRAINING__RECOMMENDER__EPOCHS": "1",
    "RETAIL_DEVICE": "cpu",
    "RETAIL_TASK_RETRIES": "0",  # a failure should fail the test now, not after a retry delay
    # every Monday trains (what is checked is that a re-run reuses each model, not when
    # retraining is worth it: tests/integration/test_closed_loop.py)
    "RETAIL_RETRAIN__POLICY": "always",
}


def _note(line: str) -> None:
    """What the test saw, for the record (pytest -s shows it)."""
    print(f"BACKFILL: {line}", flush=True)


def _dags() -> dict:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    return bag.dags


def _run(dag, day: date) -> str:
    return str(dag.test(logical_date=datetime(day.year, day.month, day.day, tzinfo=timezone.utc)).state)


# ------------------------------------------------------------------ what the lake holds


def _row_hashes(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    return pd.util.hash_pandas_object(frame[columns], index=False)


def _digest(values) -> str:  # noqa: ANN001 - any iterable of ints or strings
    return hashlib.sha256(json.dumps(sorted(str(v) for v in values)).encode()).hexdigest()[:16]


def _key_columns(feed: str, frame: pd.DataFrame) -> list[str]:
    """The feed's key; interactions have none, so the whole row."""
    return list(get_feed(feed).key) or sorted(frame.columns)


def lake_state(lake: Lake) -> dict:
    """Every file in the lake (the registry's history and locks aside), and for every
    validated partition, quarantine file and raw manifest what it holds."""
    state: dict = {"files": [], "validated": {}, "quarantine": {}, "manifests": {}}
    for uri in lake.list(lake.root):
        path = lake.name_in(lake.root, uri)
        if path.startswith(("registry/history/", "registry/locks/")):
            continue
        state["files"].append(path)
        if path.startswith("validated/"):
            feed = path.split("/")[1]
            frame = lake.read_parquet(uri)
            state["validated"][path] = {
                "rows": len(frame),
                "keys": _digest(_row_hashes(frame, _key_columns(feed, frame))),
                "content": _digest(_row_hashes(frame, sorted(frame.columns))),
            }
        elif path.startswith("quarantine/"):
            if path.endswith(".parquet"):
                frame = lake.read_parquet(uri)
                state["quarantine"][path] = {"rows": len(frame), "content": _digest(
                    _row_hashes(frame.astype(str), sorted(frame.columns)))}
            else:
                state["quarantine"][path] = {"sha256": hashlib.sha256(lake.read_bytes(uri)).hexdigest()}
        elif path.startswith("raw/") and path.endswith("/manifest.json"):
            manifest = lake.read_json(uri)
            publish = manifest.get("publish", {})
            state["manifests"][path] = {
                "status": publish.get("status"),
                **{k: publish.get(k) for k in ("rows_in", "rows_published", "rows_quarantined")},
                "files": {f["name"]: f["sha256"] for f in manifest["files"]},
            }
    return state


def assert_every_row_accounted_for(lake: Lake, written: dict[str, int], landed: dict[str, list[date]]) -> None:
    """For every (feed, day) that had a drop: a manifest with rows in = published +
    quarantined; per feed, rows in = rows written; each validated partition whole (as
    many rows as its manifest published) and no key published twice, within a partition
    or across them; no temporary file left anywhere."""
    for feed, days in landed.items():
        rows_in = 0
        keys: Counter[int] = Counter()
        for day in days:
            manifest_uri = lake.uri("raw", feed, day.isoformat(), "manifest.json")
            assert lake.exists(manifest_uri), f"{feed} {day}: a drop landed but no raw manifest"
            publish = lake.read_json(manifest_uri)["publish"]
            assert publish["status"] == "published", (feed, day, publish["status"])
            assert publish["rows_in"] == publish["rows_published"] + publish["rows_quarantined"], (feed, day, publish)
            rows_in += publish["rows_in"]
            partition = lake.read_parquet(lake.uri("validated", feed, f"date={day.isoformat()}", "part.parquet"))
            assert len(partition) == publish["rows_published"], f"{feed} {day}: partition not whole"
            keys.update(_row_hashes(partition, _key_columns(feed, partition)).tolist())
        assert rows_in == written[feed], (feed, rows_in, written[feed])
        repeated = sum(n - 1 for n in keys.values() if n > 1)
        assert repeated == 0, f"{feed}: {repeated} key(s) published more than once"
    hidden = [p for p in Path(lake.root.removeprefix("file://")).rglob(".*")]
    assert hidden == [], f"temporary files left in the lake: {hidden[:5]}"


def add_bad_rows(landing: Lake, day: date) -> dict[str, int]:
    """Rows that break the feeds' rules, added to the day's drops of reviews and sales (the
    history drops: far below the share of bad rows that rejects a whole drop). They must
    end in quarantine, the same way each time. Returns the rows added per feed."""
    reviews_uri = landing.uri("reviews", day.isoformat(), "reviews.jsonl")
    bad_reviews = [
        {"review_id": "BAD-blank", "sku": "OJ01", "text": " ", "label": None, "created_at": f"{day}T10:00:00"},
        {"review_id": "BAD-future", "sku": "OJ01", "text": "written after the drop", "label": None,
         "created_at": f"{day + timedelta(days=3)}T10:00:00"},
    ]
    data = landing.read_bytes(reviews_uri).rstrip(b"\n") + b"\n"
    landing.write_bytes(reviews_uri, data + "".join(json.dumps(r) + "\n" for r in bad_reviews).encode())
    sales_uri = landing.uri("sales", day.isoformat(), "sales.csv.gz")
    sales = pd.read_csv(io.BytesIO(landing.read_bytes(sales_uri)), dtype=str, compression="gzip")
    bad_sales = pd.DataFrame({"date": [day.isoformat()] * 2, "store_id": ["999", "999"], "sku": ["OJ01", "OJ02"],
                              "units": ["-5", "-1"], "price": ["0.05", "0.05"], "promo": ["0", "0"]})
    landing.write_bytes(sales_uri, _csv_gz(pd.concat([sales, bad_sales[sales.columns]])))
    return {"reviews": len(bad_reviews), "sales": len(bad_sales)}


def _csv_gz(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_csv(buffer, index=False, compression={"method": "gzip", "mtime": 0})
    return buffer.getvalue()


def _landed(landing: Lake, days: list[date]) -> dict[str, list[date]]:
    """The days each demo feed had a drop for (sales are weekly: not every day)."""
    return {feed: [d for d in days if landing.list(landing.uri(feed, d.isoformat()))] for feed in DEMO_FEEDS}


# ------------------------------------------------------------------ what the registry holds


def registry_state(settings) -> dict:  # noqa: ANN001
    from mlflow import MlflowClient

    from pipeline.registry import history

    client = MlflowClient()
    experiment = client.get_experiment_by_name(settings.experiment_name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000) if experiment else []
    state: dict = {"runs": sorted(r.info.run_id for r in runs), "models": {}, "history": {}}
    for family in FAMILIES:
        name = settings.model_name(family)
        versions = client.search_model_versions(f"name = '{name}'")
        aliases = client.get_registered_model(name).aliases if versions else {}
        state["models"][family] = {
            "versions": {mv.version: {"run_id": mv.run_id, "tags": dict(mv.tags)} for mv in versions},
            "aliases": {alias: str(version) for alias, version in aliases.items()},
        }
        state["history"][family] = history(settings, family)
    return state


# ------------------------------------------------------------------ 30 days, twice


def test_a_30_day_backfill_run_twice_ends_in_the_same_state(retail_env, airflow_db, monkeypatch):
    for key, value in TINY.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    lake, landing = Lake(settings.lake_uri), Lake(settings.landing)
    start = date(2026, 10, 1)
    days = [start + timedelta(days=i) for i in range(30)]
    mondays = [d for d in days if d.weekday() == 0]  # settings.retrain_cron: Mondays 03:00
    assert settings.retrain_cron == "0 3 * * 1" and len(mondays) == 4
    written = write_demo_drops(landing, start, len(days), LIMITS, label_delay_days=NO_LATE_LABELS)
    bad = add_bad_rows(landing, start)
    written = {feed: rows + bad.get(feed, 0) for feed, rows in written.items()}
    landed = _landed(landing, days)
    _note(f"rows written {written}; drops per feed {({f: len(d) for f, d in landed.items()})}; "
          f"retraining on {[d.isoformat() for d in mondays]}")
    dags = _dags()

    def backfill(label: str) -> None:
        started = time.perf_counter()
        ingest_seconds = retrain_seconds = 0.0
        for day in days:
            t0 = time.perf_counter()
            assert "success" in _run(dags["retail_ingest"], day), f"{label}: retail_ingest {day}"
            ingest_seconds += time.perf_counter() - t0
            if day in mondays:
                t0 = time.perf_counter()
                assert "success" in _run(dags["retail_retrain"], day), f"{label}: retail_retrain {day}"
                retrain_seconds += time.perf_counter() - t0
        _note(f"{label}: {time.perf_counter() - started:.0f} s (ingest of {len(days)} days {ingest_seconds:.0f} s, "
              f"{len(mondays)} retrainings {retrain_seconds:.0f} s)")

    backfill("first pass")
    lake_before, registry_before = lake_state(lake), registry_state(settings)
    assert_every_row_accounted_for(lake, written, landed)
    versions = {f: sorted(m["versions"], key=int) for f, m in registry_before["models"].items()}
    _note(f"after the first pass: {len(lake_before['files'])} lake files, {len(lake_before['validated'])} validated "
          f"partitions, {len(lake_before['quarantine'])} quarantine files, {len(registry_before['runs'])} MLflow runs, "
          f"versions {versions}, aliases {({f: m['aliases'] for f, m in registry_before['models'].items()})}, "
          f"history {({f: [(e['event'], e['version']) for e in h] for f, h in registry_before['history'].items()})}")
    assert {p: q["rows"] for p, q in lake_before["quarantine"].items() if p.endswith("rows.parquet")} == {
        f"quarantine/{feed}/date={start}/rows.parquet": rows for feed, rows in bad.items()}
    assert any(e["event"] == "promoted" for h in registry_before["history"].values() for e in h)
    # new versions only where the data changed: the labelled reviews are the same on every
    # Monday, the sales and the interactions are not
    assert {f: len(v) for f, v in versions.items()} == {"sentiment": 1, "forecaster": 4, "recommender": 4}

    backfill("second pass")
    lake_after, registry_after = lake_state(lake), registry_state(settings)
    assert_every_row_accounted_for(lake, written, landed)

    # the lake: the same files, partitions, quarantine and manifests
    assert lake_after["files"] == lake_before["files"]
    for part in ("validated", "quarantine", "manifests"):
        assert lake_after[part] == lake_before[part], part
    # the registry: no new run, no new version, the same tags and aliases
    assert registry_after["runs"] == registry_before["runs"], "the second pass trained again"
    assert registry_after["models"] == registry_before["models"]
    # the history: nothing rewritten, nothing promoted or rolled back; the only events a
    # second pass may add are refusals of versions that are not the champion, because the
    # champion moved after they were evaluated (or their gate failed): the re-run of an old
    # date asks to promote its version again, and the registry says no and records it
    added = {}
    for family in FAMILIES:
        before, after = registry_before["history"][family], registry_after["history"][family]
        assert after[:len(before)] == before, family
        added[family] = after[len(before):]
        champion = registry_after["models"][family]["aliases"].get("champion")
        for event in added[family]:
            assert event["event"] == "refused" and event["version"] != champion, event
            assert "champion moved" in event["reason"] or event["reason"].startswith("gate failed"), event
    _note("history added by the second pass: " + json.dumps(
        {f: [(e["event"], e["version"], e["reason"][:80]) for e in events] for f, events in added.items()}))


# ------------------------------------------------------------------ 60 days, three processes at once

WORKER = """
import json, os, sys, time
from datetime import datetime, timezone
from airflow.dag_processing.dagbag import DagBag

dag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["retail_ingest"]
for day in sys.argv[1:]:
    started = time.time()
    state = dag.test(logical_date=datetime.fromisoformat(day).replace(tzinfo=timezone.utc)).state
    print("LOAD-RUN " + json.dumps({"day": day, "state": str(state), "start": started, "end": time.time()}), flush=True)
"""


def test_a_60_day_backfill_by_three_processes_at_once_accounts_for_every_drop(retail_env, airflow_db, monkeypatch):
    start, workers = date(2026, 9, 1), 3
    days = [start + timedelta(days=i) for i in range(60)]
    monkeypatch.setenv("RETAIL_START_DATE", start.isoformat())
    monkeypatch.setenv("RETAIL_TASK_RETRIES", "0")
    settings = load_settings()
    lake, landing = Lake(settings.lake_uri), Lake(settings.landing)
    written = write_demo_drops(landing, start, len(days), LIMITS, label_delay_days=NO_LATE_LABELS)
    bad = add_bad_rows(landing, start)
    written = {feed: rows + bad.get(feed, 0) for feed, rows in written.items()}
    landed = _landed(landing, days)
    _note(f"60 days: rows written {written}; drops per feed {({f: len(d) for f, d in landed.items()})}")

    # each process its own Airflow metadata database (a copy of the migrated one: SQLite
    # takes one writer at a time), all of them one lake; days dealt round robin, so
    # neighbouring days run at the same time, as a scheduler's backfill would run them
    started = time.perf_counter()
    procs = []
    for i in range(workers):
        home = retail_env / f"airflow-{i}"
        home.mkdir()
        shutil.copy(airflow_db / "airflow.db", home / "airflow.db")
        env = {**os.environ, "AIRFLOW_HOME": str(home),
               "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}"}
        share = [d.isoformat() for d in days[i::workers]]
        log = (retail_env / f"worker-{i}.log").open("w")
        procs.append((subprocess.Popen([sys.executable, "-c", WORKER, *share], env=env, stdout=log,
                                       stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2]), log))
    try:
        for proc, _ in procs:
            proc.wait(timeout=1200)
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
            log.close()
    seconds = time.perf_counter() - started

    runs = []
    for i, (proc, _) in enumerate(procs):
        output = (retail_env / f"worker-{i}.log").read_text(errors="replace")
        assert proc.returncode == 0, output[-4000:]
        runs += [json.loads(line.split("LOAD-RUN ", 1)[1]) for line in output.splitlines() if "LOAD-RUN " in line]
    assert sorted(r["day"] for r in runs) == [d.isoformat() for d in days]
    failed = [r for r in runs if "success" not in r["state"]]
    assert failed == [], failed
    # several runs were active at once: the most that overlapped at any run's start
    overlap = max(sum(1 for o in runs if o["start"] <= r["start"] < o["end"]) for r in runs)
    assert overlap >= 2
    _note(f"60 days by {workers} processes: {seconds:.0f} s wall, {len(runs)} runs, up to {overlap} at once, "
          f"run time per day {min(r['end'] - r['start'] for r in runs):.1f}-{max(r['end'] - r['start'] for r in runs):.1f} s")

    assert_every_row_accounted_for(lake, written, landed)
    manifests = [u for u in lake.list(lake.uri("raw")) if u.endswith("/manifest.json")]
    assert len(manifests) == sum(len(d) for d in landed.values())  # no manifest without a drop
    quarantined = sum(lake.read_json(u)["publish"]["rows_quarantined"] for u in manifests)
    assert quarantined == sum(bad.values())
    _note(f"60 days: {len(manifests)} drops, {sum(written.values())} rows in, {quarantined} quarantined")
