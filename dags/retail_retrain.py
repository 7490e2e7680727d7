"""
### Retail retrain

Runs when a feed that a family in use learns from has been validated and checked, or
weekly, whichever comes first. For each model family (review sentiment, demand
forecaster, recommender):

**check_data** (is the family in use, per the `families` setting, has each of its feeds
validated data, and is it worth retraining: its champion's live performance decayed, enough
new labelled data arrived, drift warned, its data is too old, or its training code or
settings changed? if not, the family is skipped with the reason, spending no training
time) →
**build_dataset** (time-based train / holdout split from validated data; fails without
retrying while severe drift on its feeds is not acknowledged) →
**fine_tune** (every candidate on the same training split: the fine-tuned transformer, the
family's classic models and their blend, chosen on validation windows carved from the
training data; each logged as a model of one MLflow run) → **evaluate** (every candidate,
the champion and the reference baselines on the same holdout; the forecaster's on at least
`evaluation_windows` rolling origins, 3 by default) → **gate** (chooses the best candidate that passes every rule; a
candidate carrying a transformer must beat the best classic model by
`min_lift_over_baseline`; thin evidence keeps the champion) → **register** (the chosen
candidate, tagged with its kind, gate decision, data window and metrics) → **approve** (waits for
a person in `gate.approval: manual` mode) → **promote** (moves the `champion` alias only
when the gate passed, the approval is there and no other promotion moved the champion
since evaluation; skipped otherwise). A promotion updates the family's champion Asset,
which runs its consumer DAG. **summary** ends the run with one table: per family, trained
and promoted or not, or skipped and why.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import (
    Asset,
    AssetAny,
    AssetOrTimeSchedule,
    AsyncCallback,
    CronTriggerTimetable,
    DeadlineAlert,
    DeadlineReference,
    PokeReturnValue,
    dag,
    task,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from pipeline import steps
from pipeline.assets import RUN_DAY, champion_asset, default_args, validated_asset
from pipeline.executors import gpu_executor_config
from pipeline.families import FAMILIES
from pipeline.settings import load_settings

settings = load_settings()


@task(doc_md="Is the family in use (`families` setting), has each of its feeds validated data, and is it "
             "worth retraining (`retrain` settings: live decay, new labelled data, drift, age, a change of "
             "training code or settings)? Skips the family's retraining with the reason when not.")
def check_data(family: str, day: str) -> str:
    from pipeline.datasets import NoData
    from pipeline.monitoring.retrain import NotWorthRetraining

    try:
        return steps.check_data(family, day)
    except (NoData, NotWorthRetraining) as exc:
        raise AirflowSkipException(str(exc)) from exc


@task(doc_md="Train and holdout sets from validated partitions. Fails without retrying while "
             "severe drift on the family's feeds is not acknowledged (`python -m pipeline data holds`); "
             "skips when there is too little data to train and hold out.")
def build_dataset(family: str, day: str, ready: str) -> str:
    from pipeline.datasets import NoData
    from pipeline.ingest.quality import RetrainingHeld

    try:
        return steps.build_dataset(family, day)
    except RetrainingHeld as exc:  # waiting for a person: retrying would not help
        raise AirflowFailException(str(exc)) from exc
    except NoData as exc:
        raise AirflowSkipException(str(exc)) from exc


@task(queue=settings.gpu_queue, pool=settings.gpu_pool, executor_config=gpu_executor_config(settings),
      doc_md="Train every candidate: fine-tune the transformer on the GPU queue and pool (CPU when there is "
             "no GPU; checkpoints as it goes, and a retry resumes from the last one), then the classic models "
             "and the blend. Returns the MLflow run id.")
def fine_tune(family: str, dataset_uri: str, day: str) -> str:
    return steps.fine_tune(family, dataset_uri, day)


@task(doc_md="Score every candidate, the champion and the reference baselines on the same holdout.")
def evaluate(family: str, dataset_uri: str, mlflow_run_id: str) -> str:
    return steps.evaluate(family, dataset_uri, mlflow_run_id)


@task(doc_md="Choose the best candidate that passes every rule; log the decision, the table of every "
             "candidate and every reason.")
def gate(family: str, mlflow_run_id: str) -> dict:
    return steps.gate(family, mlflow_run_id)


@task(doc_md="Register the chosen candidate with its kind and gate decision.")
def register(family: str, mlflow_run_id: str, decision: dict) -> str:
    return steps.register(family, mlflow_run_id, decision)


@task.sensor(mode="reschedule", poke_interval=60, timeout=settings.gate.approval_timeout_hours * 3600,
             doc_md="With `gate.approval: manual`, waits until someone approves or rejects the version "
                    "(`python -m pipeline models approve <family> <version> --reason ...`, after reading "
                    "the gate report in the MLflow run). Passes at once in auto mode or when the gate failed.")
def approve(family: str, version: str, decision: dict) -> PokeReturnValue:
    state = steps.approval(family, version, decision["passed"])
    if state == "rejected":
        raise AirflowSkipException(f"{family} version {version} was rejected at approval")
    if state == "waiting":
        print(f"waiting for approval of {family} version {version}; gate report: "
              f"evaluation/gate_report.md in its MLflow run. Approve with: python -m pipeline models "
              f"approve {family} {version} --reason '...' (or --reject)")
    return PokeReturnValue(is_done=state != "waiting", xcom_value=state)


@task(doc_md="Move the `champion` alias when the gate passed (and, in manual mode, a person approved) "
             "and the champion has not moved since evaluation; skip otherwise.")
def promote(family: str, version: str, approval: str) -> str:
    if not steps.promote(family, version):
        raise AirflowSkipException(f"{family} version {version} not promoted (see the log and "
                                   "`python -m pipeline models history`)")
    return version


# none_failed: after every family was promoted, not promoted or skipped; a failure fails the run
@task(trigger_rule="none_failed",
      doc_md="The run's table: per family, no data (and why), held by drift, or its latest version, gate and champion.")
def summary(day: str) -> dict:
    return steps.retrain_summary(day)


IN_USE = [FAMILIES[name] for name in settings.families] if settings.families is not None else list(FAMILIES.values())
# any update of a feed that a family in use learns from (each family then checks its own data)
FEEDS_IN_USE = list(dict.fromkeys(feed for family in IN_USE for feed in family.feeds))


@dag(
    dag_id="retail_retrain",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(settings.retrain_cron, timezone="UTC"),
        assets=AssetAny(*(Asset(validated_asset(feed)) for feed in FEEDS_IN_USE)),
    ),
    start_date=pendulum.parse(settings.start_date),
    catchup=False,
    max_active_runs=1,
    max_active_tasks=settings.max_parallel_training,
    doc_md=__doc__,
    tags=["retail", "training"],
    default_args=default_args(settings, retry_minutes=5),
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(hours=settings.retrain_deadline_hours),  # serialisable, unlike pendulum's
        callback=AsyncCallback("pipeline.alerts.retrain_deadline_missed",
                               kwargs={"dag_id": "retail_retrain", "hours": settings.retrain_deadline_hours}),
    ) if settings.retrain_deadline_hours else None,
)
def retail_retrain() -> None:
    promoted = []
    for family in FAMILIES:
        ready = check_data.override(task_id=f"check_data_{family}")(family, RUN_DAY)
        dataset = build_dataset.override(task_id=f"build_dataset_{family}")(family, RUN_DAY, ready)
        run_id = fine_tune.override(task_id=f"fine_tune_{family}")(family, dataset, RUN_DAY)
        evaluated = evaluate.override(task_id=f"evaluate_{family}")(family, dataset, run_id)
        decision = gate.override(task_id=f"gate_{family}")(family, evaluated)
        version = register.override(task_id=f"register_{family}")(family, evaluated, decision)
        approval = approve.override(task_id=f"approve_{family}")(family, version, decision)
        promoted.append(promote.override(task_id=f"promote_{family}", outlets=[Asset(champion_asset(family))])(
            family, version, approval))
    promoted >> summary(RUN_DAY)


retail_retrain()
