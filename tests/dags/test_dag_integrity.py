"""The DAG files parse, are thin, and wire the tasks as designed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
HEAVY = ("torch", "transformers", "mlflow", "great_expectations", "pandas", "sklearn", "boto3")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS))


def test_every_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"retail_ingest", "retail_retrain", "retail_consumers", "retail_monitor"}
    for dag in dagbag.dags.values():
        assert dag.doc_md, f"{dag.dag_id} has no doc_md"
        assert all(t.doc_md for t in dag.tasks), f"a task of {dag.dag_id} has no doc_md"


@pytest.mark.parametrize("dag_file", sorted(p.name for p in DAGS.glob("*.py")))
def test_dag_files_import_nothing_heavy_at_module_level(dag_file):
    """In a fresh interpreter: importing the DAG file loads none of the heavy libraries."""
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('d', {str(DAGS / dag_file)!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_ingest_lands_validates_then_checks_each_feed_and_updates_its_asset(dagbag):
    dag = dagbag.dags["retail_ingest"]
    for feed in ("sales", "reviews", "interactions", "catalog", "stock", "plan"):
        land, validate, check = (dag.get_task(f"{step}_{feed}") for step in ("land", "validate", "check"))
        assert land.downstream_task_ids == {f"validate_{feed}"}
        assert f"check_{feed}" in validate.downstream_task_ids and not validate.outlets
        assert [o.uri for o in check.outlets] == [f"retail://validated/{feed}"]
        assert check.trigger_rule == "all_done"
        if feed != "catalog":  # unknown skus are judged against the same day's catalog
            assert f"check_{feed}" in dag.get_task("validate_catalog").downstream_task_ids
        assert "summary" in validate.downstream_task_ids  # a failed validate fails the run
    assert dag.get_task("summary").trigger_rule == "none_failed"


def test_retrain_chain_per_family(dagbag):
    dag = dagbag.dags["retail_retrain"]
    for family in ("sentiment", "forecaster", "recommender"):
        chain = ["check_data", "build_dataset", "fine_tune", "evaluate", "gate", "register", "approve", "promote"]
        for upstream, downstream in zip(chain, chain[1:]):
            assert f"{downstream}_{family}" in dag.get_task(f"{upstream}_{family}").downstream_task_ids
        assert [o.uri for o in dag.get_task(f"promote_{family}").outlets] == [f"retail://champion/{family}"]
        approve = dag.get_task(f"approve_{family}")  # a person may take days: the slot is freed while waiting
        assert approve.mode == "reschedule" and approve.timeout == 72 * 3600
        assert "summary" in dag.get_task(f"promote_{family}").downstream_task_ids
    assert dag.get_task("summary").trigger_rule == "none_failed"  # a failed family fails the run
    # scheduled weekly or on an update of any feed a family learns from, whichever first
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    condition = dag.timetable.asset_condition
    assert type(condition).__name__ == "AssetAny"
    assert {a.uri for a in condition.objects} == {
        f"retail://validated/{feed}" for feed in ("sales", "reviews", "interactions", "catalog")}


def test_retrain_triggers_only_on_the_feeds_of_the_families_in_use():
    """RETAIL_FAMILIES=["sentiment"]: only a reviews update starts retraining."""
    code = ("import json; from airflow.dag_processing.dagbag import DagBag; "
            "dag = DagBag('dags/retail_retrain.py').dags['retail_retrain']; "
            "print(json.dumps(sorted(a.uri for a in dag.timetable.asset_condition.objects)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=DAGS.parent,
                         env={**os.environ, "RETAIL_FAMILIES": '["sentiment"]', "PYTHONPATH": str(DAGS.parent)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["retail://validated/reviews"]


def test_consumers_run_on_a_new_champion_and_after_each_monitor_run(dagbag):
    dag = dagbag.dags["retail_consumers"]
    assert set(dag.task_ids) == {"inventory_plan", "recommendations", "review_insights"}
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    assert {a.uri for a in dag.timetable.asset_condition.objects} == {
        *(f"retail://champion/{family}" for family in ("sentiment", "forecaster", "recommender")),
        "retail://monitored/champions"}


def test_monitor_runs_on_the_ground_truth_and_tells_the_consumers(dagbag):
    dag = dagbag.dags["retail_monitor"]
    assert {a.uri for a in dag.timetable.asset_condition.objects} == {
        f"retail://validated/{feed}" for feed in ("sales", "reviews", "interactions")}
    for family in ("sentiment", "forecaster", "recommender"):
        assert f"rollback_{family}" in dag.get_task(f"monitor_{family}").downstream_task_ids
        # a rollback moves the champion: the consumers run with the restored one
        assert [o.uri for o in dag.get_task(f"rollback_{family}").outlets] == [f"retail://champion/{family}"]
        assert "summary" in dag.get_task(f"rollback_{family}").downstream_task_ids
    assert [o.uri for o in dag.get_task("summary").outlets] == ["retail://monitored/champions"]
    assert dag.get_task("summary").trigger_rule == "none_failed"


def test_training_tasks_go_to_the_gpu_queue_and_pool(dagbag):
    dag = dagbag.dags["retail_retrain"]
    for family in ("sentiment", "forecaster", "recommender"):
        task = dag.get_task(f"fine_tune_{family}")
        assert (task.queue, task.pool, task.executor_config) == ("gpu", "gpu", {})
        assert dag.get_task(f"evaluate_{family}").queue != "gpu"


@pytest.mark.parametrize("gpus", ["1", "4"])
def test_kubernetes_pod_override_asks_for_the_gpus_of_a_training_task(gpus: str):
    """With gpu_pod_override on (set for the KubernetesExecutor), each training pod asks for
    gpus_per_training_task GPUs (the task then trains in one process per GPU)."""
    code = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"dag = DagBag({str(DAGS)!r}).dags['retail_retrain']\n"
        "pod = dag.get_task('fine_tune_sentiment').executor_config['pod_override']\n"
        "print(pod.spec.containers[0].name, pod.spec.containers[0].resources.limits)\n"
    )
    env = {**os.environ, "RETAIL_GPU_POD_OVERRIDE": "true", "RETAIL_GPUS_PER_TRAINING_TASK": gpus}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == f"base {{'nvidia.com/gpu': '{gpus}'}}"


def test_every_task_alerts_on_failure(dagbag):
    from pipeline.alerts import on_task_failure

    for dag in dagbag.dags.values():
        for task in dag.tasks:
            assert on_task_failure in task.on_failure_callback, (dag.dag_id, task.task_id)
    assert not dagbag.dags["retail_retrain"].deadline  # off by default (see settings)


def test_retraining_deadline_when_configured():
    code = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"[d] = DagBag({str(DAGS)!r}).dags['retail_retrain'].deadline\n"
        "print(d.callback.path, d.interval.total_seconds(), d.callback.kwargs)\n"
    )
    env = {**os.environ, "RETAIL_RETRAIN_DEADLINE_HOURS": "6"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == \
        "pipeline.alerts.retrain_deadline_missed 21600.0 {'dag_id': 'retail_retrain', 'hours': 6.0}"


def test_a_configured_notifier_is_added_to_the_failure_callbacks():
    code = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"dag = DagBag({str(DAGS)!r}).dags['retail_retrain']\n"
        "print([type(c).__name__ for c in dag.get_task('fine_tune_sentiment').on_failure_callback])\n"
    )
    env = {**os.environ, "RETAIL_ALERT_NOTIFIER": "airflow.providers.smtp.notifications.smtp.SmtpNotifier",
           "RETAIL_ALERT_NOTIFIER_KWARGS": '{"to": "ops@example.com", "from_email": "airflow@example.com"}'}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "['function', 'SmtpNotifier']"
