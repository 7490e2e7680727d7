"""The whole pipeline through Airflow's dag.test() on a small slice of the real data.

Three daily drops are ingested; each family trains every candidate (a tiny transformer,
its classic models and their blend), the gate chooses one, it is registered and promoted
without anyone forcing it, and the consumers and `mlflow models serve` use the champions
whatever their kind. The forecaster's and the recommender's transformers are asked for a
lift no model reaches, so their classic models (or a blend) must serve: "done when (a)".
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from pipeline.demo_data import DemoLimits, write_demo_drops
from pipeline.lake import Lake
from pipeline.settings import load_settings

START, DAYS = date(2026, 10, 1), 3

pytestmark = pytest.mark.slow


def _test(dag_id: str, day: date | None):  # noqa: ANN202 - the DagRun
    """dag.test() for ``day``; None runs as an Asset event would: without a logical date."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}
    logical = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) if day else None
    return bag.dags[dag_id].test(logical_date=logical)


def _run(dag_id: str, day: date) -> str:
    return str(_test(dag_id, day).state)


# the requests shown in docs/serving.md, one per model
REQUESTS = {
    "sentiment": {"dataframe_records": [{"text": "Great coffee, I will buy it again."},
                                        {"text": "Stale and bitter, a waste of money."}]},
    "forecaster": {"dataframe_records": [
        {"store_id": "2", "sku": "OJ01", "date": "2026-09-12", "units": 8256, "price": 0.06, "promo": 1},
        {"store_id": "2", "sku": "OJ01", "date": "2026-09-19", "units": 6144, "price": 0.06, "promo": 0},
        {"store_id": "2", "sku": "OJ01", "date": "2026-09-26", "units": 3840, "price": 0.06, "promo": 0},
        {"store_id": "2", "sku": "OJ01", "date": "2026-10-03", "units": None, "price": 0.06, "promo": 0},
        {"store_id": "2", "sku": "OJ01", "date": "2026-10-10", "units": None, "price": 0.05, "promo": 1}]},
    "recommender": {"dataframe_records": [
        {"customer_id": "C0001", "sku": "ML0050", "timestamp": "2026-09-30T10:00:00"},
        {"customer_id": "C0001", "sku": "ML0181", "timestamp": "2026-10-01T20:00:00"}], "params": {"top_k": 3}},
}


def mlflow_text(run_id: str, path: str) -> str:
    import mlflow

    return mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")


def _serve_and_ask(model_uri: str, payload: dict) -> list[dict]:
    """Start `mlflow models serve` on a free port, POST one request, stop the server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
           "MLFLOW_TRACKING_URI": os.environ["RETAIL_MLFLOW_TRACKING_URI"]}
    server = subprocess.Popen([f"{bin_dir}/mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
                               "-h", "127.0.0.1", "-p", str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"mlflow models serve did not start: {server.stdout.read()[-3000:]}")
                time.sleep(0.5)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", json.dumps(payload).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())["predictions"]
    finally:
        os.killpg(server.pid, 15)  # the server and its uvicorn worker
        server.wait(timeout=30)


def test_dags_run_end_to_end_on_real_data(retail_env, airflow_db, tiny_training, monkeypatch):
    for key, value in tiny_training.items():
        monkeypatch.setenv(key, value)
    # a transformer must beat the classic model by 500% to serve: it loses, as it would to a
    # stronger classic model on a retailer's data
    monkeypatch.setenv("RETAIL_GATE__MIN_LIFT_OVER_BASELINE",
                       json.dumps({"sentiment": 0.02, "forecaster": 5.0, "recommender": 5.0}))
    settings = load_settings()
    lake = Lake(settings.lake_uri)
    written = write_demo_drops(Lake(settings.landing), START, DAYS, DemoLimits(stores=4, reviews=900, customers=300))
    assert written["sales"] > 0 and written["interactions"] > 0

    days = [date(2026, 10, d) for d in range(1, DAYS + 1)]
    for day in days:
        assert "success" in _run("retail_ingest", day)
    # every row that came in is accounted for in the manifests
    assert set(written) == {"sales", "plan", "reviews", "interactions", "catalog"}
    for feed in written:
        rows = 0
        for uri in lake.list(lake.uri("raw", feed)):
            if uri.endswith("manifest.json"):
                publish = lake.read_json(uri)["publish"]
                assert publish["rows_in"] == publish["rows_published"] + publish["rows_quarantined"]
                rows += publish["rows_in"]
        assert rows == written[feed], feed

    assert "success" in _run("retail_retrain", days[-1])
    from mlflow import MlflowClient

    from pipeline.families import FAMILIES

    client = MlflowClient()
    assert "success" in _run("retail_consumers", days[-1])

    champions, kinds = {}, {}
    for family in ("sentiment", "forecaster", "recommender"):
        mv = client.get_model_version_by_alias(settings.model_name(family), "champion")
        assert mv.tags["gate_passed"] == "true"  # chosen by the gate, promoted by nobody but the DAG
        kinds[family] = mv.tags["model_kind"]
        run = client.get_run(mv.run_id)
        assert run.data.tags["logical_date"] == "2026-10-03"
        assert run.data.tags["chosen_candidate"] == mv.tags["candidate"]
        # every candidate of the family was trained and scored on the same holdout
        names = [c.name for c in FAMILIES[family].candidates]
        assert run.data.tags["candidates"].split(",") == names
        primary = FAMILIES[family].primary_metric
        assert {f"candidates/{n}/{primary}" for n in names} | {f"baseline_{primary}"} <= set(run.data.metrics)
        assert run.data.metrics[f"challenger_{primary}"] == run.data.metrics[f"candidates/{mv.tags['candidate']}/{primary}"]
        assert "candidates/blend/weight" in run.data.params  # chosen on validation, logged
        report = mlflow_text(run.info.run_id, "evaluation/gate_report.md")
        assert f"Chosen: **{mv.tags['candidate']}** ({kinds[family]})" in report
        if family == "sentiment":  # the precision it scored the holdout in, recorded
            assert run.data.tags["scoring_precision.transformer"] in ("bfloat16", "float32")
        if family == "recommender":  # the second view, by time, for every candidate scored
            assert {f"time_split/{n}_hr_at_10" for n in names} | {"time_split/baseline_hr_at_10"} <= set(
                run.data.metrics)
            # EASE's lambda and kNN's k as chosen on validation
            assert {"candidates/ease/lambda", "candidates/item_knn/neighbours"} <= set(run.data.params)
        if family == "forecaster":  # the decision rests on three windows, each from its own origin
            assert run.data.metrics["evidence_windows"] == 3
        champions[family] = mv.version
        # loadable by alias, with a signature
        import mlflow

        info = mlflow.models.get_model_info(f"models:/{settings.model_name(family)}@champion")
        assert info.signature is not None
        # lineage: the validated partitions read, as dataset inputs; hardware; plots
        inputs = {d.dataset.name for d in run.inputs.dataset_inputs}
        expected = {"sentiment": "reviews", "forecaster": "sales", "recommender": "interactions"}[family]
        assert f"{expected}/date=2026-10-01" in inputs, inputs
        assert run.data.tags["hardware.cpu_count"] and run.data.tags["precision"] == "auto"
        plots = {f.path for f in client.list_artifacts(mv.run_id, "plots")}
        figure = {"sentiment": "confusion_matrix", "forecaster": "forecast_vs_actual", "recommender": "recall_at_k"}
        assert {"plots/training_curves.png", f"plots/{figure[family]}.png"} <= plots, plots
    # the transformers were asked for a lift they cannot reach: a classic model or a blend serves
    assert kinds["forecaster"] != "transformer" and kinds["recommender"] != "transformer", kinds

    outputs = {
        "inventory_plan/date=2026-10-03/plan.parquet": "forecaster",
        "recommendations/date=2026-10-03/top_k.parquet": "recommender",
        "review_insights/date=2026-10-03/scored_reviews.parquet": "sentiment",
    }
    for path, family in outputs.items():
        frame = lake.read_parquet(lake.uri("outputs", path))
        assert len(frame) > 0, path
        assert set(frame["model_version"].astype(str)) == {str(champions[family])}, path
        assert set(frame["model_kind"]) == {kinds[family]}, path
        # beside the version, its live metric: none yet (nothing it predicted has come true)
        metric = {"sentiment": "macro_f1", "forecaster": "wape", "recommender": "hr_at_10"}[family]
        assert frame[f"live_{metric}"].isna().all() and (frame["live_samples"] == 0).all(), path
        # what the champion predicted is kept, to be scored when the truth arrives
        kept = lake.read_parquet(lake.uri("monitoring", "issued", family, "date=2026-10-03",
                                          f"v{champions[family]}.parquet"))
        assert len(kept) > 0, family

    # the monitor: every family's champion, no ground truth yet, each figure recorded
    assert "success" in _run("retail_monitor", days[-1])
    for family, version in champions.items():
        live = lake.read_json(lake.uri("monitoring", "live", family, "date=2026-10-03.json"))
        assert live["champion"] == str(version) and live["live"] == {"samples": 0}
        assert live["probation"]["status"] == "none"  # a first champion: nothing to compare with
    monitoring = {r.data.tags["monitoring"] for r in client.search_runs(
        [client.get_experiment_by_name(settings.experiment_name).experiment_id], "tags.monitoring != ''")}
    assert monitoring == set(champions)
    categories = lake.read_parquet(lake.uri("outputs", "review_insights/date=2026-10-03/category_sentiment.parquet"))
    assert set(categories.groupby(["category", "day"])["share"].sum().round(6)) == {1.0}
    backtest = lake.read_json(lake.uri("outputs", "inventory_plan/date=2026-10-03/backtest.json"))
    assert backtest["periods"] > 0 and 0 <= backtest["demand_exceeded_plan"] <= 1
    plan = lake.read_parquet(lake.uri("outputs", "inventory_plan/date=2026-10-03/plan.parquet"))
    assert (plan["reorder_point"] >= plan["lead_time_demand"]).all()
    recs = lake.read_parquet(lake.uri("outputs", "recommendations/date=2026-10-03/top_k.parquet"))
    assert recs.groupby("customer_id").size().max() == settings.training.recommender.top_k

    # online serving: each champion behind MLflow's own server, real HTTP requests
    served = {family: _serve_and_ask(f"models:/{settings.model_name(family)}@champion", REQUESTS[family])
              for family in ("sentiment", "forecaster", "recommender")}
    positive, negative = served["sentiment"]
    assert {positive["label"], negative["label"]} <= {"great", "other"}
    assert positive["p_great"] > negative["p_great"]  # the praise reads as more positive than the complaint
    assert [p["date"][:10] for p in served["forecaster"]] == ["2026-10-03", "2026-10-10"]
    assert all(p["p10"] <= p["p50"] <= p["p90"] and p["forecast"] > 0 for p in served["forecaster"])
    assert [p["rank"] for p in served["recommender"]] == [1, 2, 3]
    assert not {p["sku"] for p in served["recommender"]} & {"ML0050", "ML0181"}  # nothing already seen

    # the fast path for one customer, known and new
    from pipeline.consumers.recommendations import recommend_one

    known = recommend_one(settings, "C0001", days[-1], top_k=5)
    assert known["rank"].tolist() == [1, 2, 3, 4, 5] and set(known["model_version"]) == {str(champions["recommender"])}
    bought = set(lake.read_parquet(lake.uri("validated", "interactions", "date=2026-10-01", "part.parquet"))
                 .query("customer_id == 'C0001'")["sku"])
    assert not set(known["sku"]) & bought
    newcomer = recommend_one(settings, "C9999-new", days[-1], top_k=3)
    assert newcomer["customer_id"].tolist() == ["C9999-new"] * 3  # popular items for a first visit

    from pipeline.report import render_summary

    summary = render_summary(settings, days[-1])
    for family, version in champions.items():
        candidate = client.get_model_version(settings.model_name(family), version).tags["candidate"]
        assert f"{settings.model_name(family)} v{version} [champion] {candidate} ({kinds[family]}) gate passed" in summary

    # a run started by an Asset event has no logical date: the consumers use the day it was due
    asset_run = _test("retail_consumers", None)
    assert "success" in str(asset_run.state) and asset_run.logical_date is None
    due = asset_run.run_after.date().isoformat()
    assert lake.exists(lake.uri("outputs", "recommendations", f"date={due}", "top_k.parquet"))
