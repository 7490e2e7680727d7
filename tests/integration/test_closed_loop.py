"""The closed loop on a real lake, a real MLflow registry and real Airflow: a new champion
on probation is scored against the one it replaced on the same late-labelled reviews and
rolled back (or, in manual mode, proposed for a rollback) when it disappoints, passes when it
does not; a family with nothing new is skipped by the retrain DAG without any training run;
a change of training settings or code makes it worth retraining again."""

from __future__ import annotations

import io
import json
import os
from datetime import date, datetime, timezone
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline import registry, steps, zones
from pipeline.__main__ import main
from pipeline.demo_data import load_reviews
from pipeline.ingest.history import import_history
from pipeline.lake import Lake, lake_from_settings
from pipeline.monitoring.issued import keep_issued
from pipeline.monitoring.monitor import monitor_family, probation_shadow
from pipeline.monitoring.reports import MONITORING_TAG
from pipeline.settings import load_settings
from pipeline.tracking import configure_mlflow, training_code_digest

FAMILY = "sentiment"
DAY1, DAY2, DAY3 = date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        return model_input


def new_version(evaluated_against: str | None, macro_f1: float = 0.80, logical_date: str = "2026-09-30") -> str:
    """A registered sentiment version as the retrain DAG leaves it: a training run (tags of
    the code and settings that trained it, its training rows) with a model, gate passed."""
    settings = load_settings()
    configure_mlflow(settings)
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=Echo())
        mlflow.set_tags({"model_uri": info.model_uri, "logical_date": logical_date, "resume_key": run.info.run_id,
                         "training_code": training_code_digest(FAMILY),
                         "settings_digest": settings.training_digest(FAMILY),
                         "champion_version_at_evaluation": evaluated_against or "none"})
        mlflow.log_metrics({"challenger_macro_f1": macro_f1, "train_rows": 400})
    return registry.register(settings, FAMILY, run.info.run_id, {"passed": True, "failures": []})


def drop_reviews(landing: Lake, day: date, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.to_json(buffer, orient="records", lines=True, date_format="iso")
    landing.write_bytes(f"{zones.landing_folder(landing, 'reviews', day)}/reviews.jsonl", buffer.getvalue())


@pytest.fixture
def late_labels(retail_env: Path, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    """80 real reviews dropped unlabelled on day 1, their labels arriving on day 2."""
    monkeypatch.setenv("RETAIL_MONITOR__PROBATION_MIN_SAMPLES", "40")
    monkeypatch.setenv("RETAIL_MONITOR__PROBATION_MIN_DAYS", "1")  # every label arrives on day 2
    settings = load_settings()
    reviews = load_reviews().sample(80, random_state=3).reset_index(drop=True)
    reviews = reviews.assign(review_id=[f"R{i:03d}" for i in range(80)], sku="OJ01", created_at="2026-10-01T09:00:00")
    landing = Lake(settings.landing)
    drop_reviews(landing, DAY1, reviews.assign(label=None))
    drop_reviews(landing, DAY2, reviews)
    assert not import_history(landing, lake_from_settings(settings), settings.ingest, DAY1, DAY2).rejected
    return reviews


def predictions(reviews: pd.DataFrame, wrong_share: float, seed: int) -> pd.DataFrame:
    """The reviews' true labels with ``wrong_share`` of them swapped for another class."""
    classes = sorted(reviews["label"].unique())
    wrong = np.random.default_rng(seed).random(len(reviews)) < wrong_share
    labels = [classes[(classes.index(t) + 1) % len(classes)] if w else t for t, w in zip(reviews["label"], wrong)]
    return pd.DataFrame({"review_id": reviews["review_id"], "label": labels})


def promote_two(settings) -> tuple[str, str]:  # noqa: ANN001
    v1 = new_version(None)
    assert registry.promote(settings, FAMILY, v1)
    v2 = new_version(v1)
    assert registry.promote(settings, FAMILY, v2)
    return v1, v2


def on_probation(reviews: pd.DataFrame, new_wrong: float):  # noqa: ANN201 - (settings, lake, v1, v2)
    """v1 then v2 promoted; what the review-insights consumer keeps on day 1: v2's labels
    (``new_wrong`` of them wrong) and, while v2 is on probation, v1's in shadow (10% wrong)."""
    settings = load_settings()
    lake = lake_from_settings(settings)
    v1, v2 = promote_two(settings)
    assert probation_shadow(settings, lake, FAMILY, DAY1) == v1
    keep_issued(lake, FAMILY, DAY1, v2, predictions(reviews, new_wrong, seed=1))
    keep_issued(lake, FAMILY, DAY1, v1, predictions(reviews, 0.10, seed=2))
    return settings, lake, v1, v2


def test_a_champion_worse_than_the_one_it_replaced_is_rolled_back_with_the_evidence(late_labels, capsys):
    settings, lake, v1, v2 = on_probation(late_labels, new_wrong=0.60)

    record = monitor_family(settings, FAMILY, DAY2)
    assert record["champion"] == v2 and record["live"]["samples"] == 80
    assert record["probation"]["status"] == "rolled_back"
    assert registry.champion_version(settings, FAMILY) == v1  # the registry's rollback
    rolled = [e for e in registry.history(settings, FAMILY) if e["event"] == "rolled_back"]
    assert len(rolled) == 1 and rolled[0]["version"] == v1 and rolled[0]["from_version"] == v2
    evidence = rolled[0]["evidence"]
    assert rolled[0]["by"] == "monitor" and evidence["samples"] == 80
    assert evidence["champion"]["macro_f1"] < evidence["shadow"]["macro_f1"]
    assert evidence["worse_by"] > settings.monitor.probation_margin
    tags = mlflow.MlflowClient().get_model_version(settings.model_name(FAMILY), v2).tags
    assert "on probation" in tags["rolled_back"]
    alert = lake.read_json(zones.alert(lake, "retail_monitor", DAY2.isoformat(), f"probation_{FAMILY}"))
    assert alert["kind"] == "rollback" and alert["evidence"]["samples"] == 80

    # explainable from the monitoring run: the day's figures as a step, the record, the plot
    runs = mlflow.search_runs(filter_string=f"tags.{MONITORING_TAG} = '{FAMILY}'", output_format="list",
                              search_all_experiments=True)
    assert len(runs) == 1 and "resume_key" not in runs[0].data.tags  # not a training run
    client = mlflow.MlflowClient()
    [point] = client.get_metric_history(runs[0].info.run_id, "live_macro_f1")
    assert point.step == DAY2.toordinal() and point.value == pytest.approx(record["live"]["macro_f1"])
    [shadow_point] = client.get_metric_history(runs[0].info.run_id, "shadow_macro_f1")
    assert shadow_point.value == pytest.approx(evidence["shadow"]["macro_f1"])
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id, "plots")}
    assert artifacts == {"plots/live_macro_f1.png"}

    # the day after: the restored champion is not put on probation against the one rolled back
    again = monitor_family(settings, FAMILY, DAY3)
    assert again["champion"] == v1 and again["probation"]["status"] == "none"
    assert len([e for e in registry.history(settings, FAMILY) if e["event"] == "rolled_back"]) == 1
    assert probation_shadow(settings, lake, FAMILY, DAY3) is None
    # a re-run of the retrain DAG cannot promote the rolled-back version again
    assert not registry.promote(settings, FAMILY, v2)
    # the retrain decision of the day sits beside the live figures on the monitoring run
    from pipeline.monitoring.retrain import NotWorthRetraining

    with pytest.raises(NotWorthRetraining, match="80 new labelled rows since v2's data"):
        steps.check_data(FAMILY, DAY3.isoformat())
    [decided] = client.get_metric_history(runs[0].info.run_id, "retrain")
    assert (decided.step, decided.value) == (DAY3.toordinal(), 0.0)
    assert "decisions/date=2026-10-03.json" in {a.path for a in client.list_artifacts(runs[0].info.run_id, "decisions")}

    # the status a person reads: the champion's metric at promotion and live, its training,
    # and every retrain condition with its figure
    capsys.readouterr()
    assert main(["models", "status", "--date", DAY3.isoformat()]) == 0
    out = capsys.readouterr().out
    live_f1 = again["live"]["macro_f1"]
    assert f"sentiment: v{v1} (transformer)  macro_f1 at promotion 0.8" in out
    assert f"live {live_f1:.4f} on 80 samples (to {DAY3})" in out, out
    assert f"latest training v{v2} on data up to 2026-09-30 (3 days ago)" in out, out
    assert "forecaster: no champion" in out and "- no trained version yet" in out


def test_no_rollback_on_evidence_from_too_short_a_stretch_of_days(late_labels, monkeypatch):
    """80 worse labels that all arrived on one day: one draw, not enough to act on."""
    monkeypatch.setenv("RETAIL_MONITOR__PROBATION_MIN_DAYS", "2")
    settings, lake, v1, v2 = on_probation(late_labels, new_wrong=0.60)
    probation = monitor_family(settings, FAMILY, DAY2)["probation"]
    assert probation["status"] == "running" and probation["evidence"]["span_days"] == 1
    assert probation["evidence"]["worse_by"] > settings.monitor.probation_margin  # worse, but not judged yet
    assert registry.champion_version(settings, FAMILY) == v2


def test_in_manual_mode_the_rollback_is_proposed_and_waits_for_a_person(late_labels, monkeypatch):
    settings, lake, v1, v2 = on_probation(late_labels, new_wrong=0.60)
    monkeypatch.setenv("RETAIL_GATE__APPROVAL", "manual")
    settings = load_settings()
    for _ in range(2):  # proposed once, however many runs see it
        record = monitor_family(settings, FAMILY, DAY2)
    assert record["probation"]["status"] == "running" and record["probation"]["proposed"] == DAY2.isoformat()
    assert registry.champion_version(settings, FAMILY) == v2
    proposed = [e for e in registry.history(settings, FAMILY) if e["event"] == "rollback_proposed"]
    assert len(proposed) == 1 and proposed[0]["to_version"] == v1 and proposed[0]["evidence"]["samples"] == 80
    alert = lake.read_json(zones.alert(lake, "retail_monitor", DAY2.isoformat(), f"probation_{FAMILY}"))
    assert "waiting for a person" in alert["message"]
    assert main(["models", "rollback", FAMILY, "--reason", "confirmed the monitor's evidence", "--by", "ana"]) == 0
    assert registry.champion_version(settings, FAMILY) == v1


def test_a_champion_as_good_as_the_one_it_replaced_passes_its_probation(late_labels, monkeypatch):
    monkeypatch.setenv("RETAIL_MONITOR__PROBATION_DAYS", "1")
    settings, lake, v1, v2 = on_probation(late_labels, new_wrong=0.10)
    assert monitor_family(settings, FAMILY, DAY2)["probation"]["status"] == "running"
    record = monitor_family(settings, FAMILY, DAY3)
    assert record["probation"]["status"] == "passed" and record["probation"]["evidence"]["samples"] == 80
    assert registry.champion_version(settings, FAMILY) == v2
    events = [e["event"] for e in registry.history(settings, FAMILY)]
    assert "rolled_back" not in events and events[-1] == "probation_passed"
    assert probation_shadow(settings, lake, FAMILY, DAY3) is None  # no more shadow predictions


def _run(dag_id: str, day: date):  # noqa: ANN202 - the DagRun
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    return bag.dags[dag_id].test(logical_date=datetime(day.year, day.month, day.day, tzinfo=timezone.utc))


@pytest.mark.slow
def test_with_nothing_new_the_retrain_dag_skips_without_a_training_run(late_labels, airflow_db, monkeypatch):
    monkeypatch.setenv("RETAIL_FAMILIES", json.dumps([FAMILY]))
    settings = load_settings()
    configure_mlflow(settings)
    v1 = new_version(None, logical_date=DAY2.isoformat())  # trained on everything there is
    assert registry.promote(settings, FAMILY, v1)
    runs_before = {r.info.run_id for r in mlflow.search_runs(search_all_experiments=True, output_format="list")}

    dag_run = _run("retail_retrain", DAY3)
    assert "success" in str(dag_run.state)
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    for task in ("check_data", "build_dataset", "fine_tune", "evaluate", "register", "promote"):
        assert states[f"{task}_{FAMILY}"] == "skipped", (task, states)
    runs_after = {r.info.run_id for r in mlflow.search_runs(search_all_experiments=True, output_format="list")}
    assert runs_after == runs_before  # no training run, not even one started
    lake = lake_from_settings(settings)
    assert not lake.list(lake.uri("datasets"))  # nothing built either
    decision = lake.read_json(zones.retrain_decision(lake, FAMILY, DAY3))
    assert decision["retrain"] is False and not decision["reasons"]
    from pipeline.report import retrain_summary

    assert states["summary"] == "success"
    summary = retrain_summary(settings, DAY3)
    assert summary[FAMILY]["status"] == "not worth retraining"
    assert f"0 new labelled rows since v{v1}'s data (up to {DAY2}) (0% of its 400 training rows); threshold 100" \
        in summary[FAMILY]["detail"]
    assert f"v{v1}'s data is 1 days old (max 35)" in summary[FAMILY]["detail"]

    # a change of the family's training settings, or of its training code, is worth a retrain
    monkeypatch.setenv("RETAIL_TRAINING__SENTIMENT__EPOCHS", "2")
    assert "training settings changed since v1" in steps.check_data(FAMILY, DAY3.isoformat())
    monkeypatch.delenv("RETAIL_TRAINING__SENTIMENT__EPOCHS")
    run_id = mlflow.MlflowClient().get_model_version(settings.model_name(FAMILY), v1).run_id
    mlflow.MlflowClient().set_tag(run_id, "training_code", "trained-by-an-older-release")
    reason = steps.check_data(FAMILY, DAY3.isoformat())
    assert "training code changed since v1" in reason and "settings changed" not in reason


def test_new_labelled_rows_and_pooled_drift_since_the_training_window(late_labels, monkeypatch):
    """The facts behind two conditions, from the published partitions: labels that arrived
    after the training window count as new labelled rows (unlabelled ones do not), and drift
    is judged on everything published since, pooled, against the window before it."""
    from pipeline.monitoring.retrain import drift_since, new_labelled_rows

    settings = load_settings()
    lake = lake_from_settings(settings)
    assert new_labelled_rows(lake, FAMILY, DAY1, DAY2) == 80  # the labels of day 2
    assert new_labelled_rows(lake, FAMILY, date(2026, 9, 30), DAY1) == 0  # day 1 brought none
    assert new_labelled_rows(lake, FAMILY, DAY2, DAY2) == 0
    # the same reviews again: no drift, however few rows are asked for
    assert drift_since(lake, ("reviews",), DAY1, DAY2, settings.ingest.drift, min_rows=1) == ()

    # day 3: 300 of the shortest real reviews (the text length halves, and more)
    real = load_reviews()
    short = real.assign(length=real["text"].str.len()).nsmallest(300, "length").drop(columns="length")
    short = short.assign(review_id=[f"S{i:03d}" for i in range(300)], sku="OJ01", created_at="2026-10-03T09:00:00")
    drop_reviews(Lake(settings.landing), DAY3, short)
    assert not import_history(Lake(settings.landing), lake, settings.ingest, DAY3, DAY3).rejected
    drift = drift_since(lake, ("reviews",), DAY2, DAY3, settings.ingest.drift, min_rows=200)
    assert len(drift) == 1 and drift[0].startswith("reviews: text_length_change=-0.") and "over 300 rows" in drift[0]
    assert drift_since(lake, ("reviews",), DAY2, DAY3, settings.ingest.drift, min_rows=301) == ()  # too few to judge
    assert new_labelled_rows(lake, FAMILY, DAY2, DAY3) == 300
