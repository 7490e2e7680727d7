"""
### Retail monitor

Runs when sales, reviews or interactions have been validated: the ground truth of the
predictions the consumers issued. For each model family:

**monitor** scores what the champion predicted (kept when the consumers issued it) against
the truth that arrived in the rolling window (`monitor.window_days`): the forecaster's WAPE,
bias and interval coverage per store on realised sales; sentiment on reviews whose label
came later; the recommender's hit rate on each customer's next interactions. While a new
champion is on probation (`monitor.probation_days`), the champion it replaced is scored in
shadow on the same data; when the new one is worse by more than `monitor.probation_margin`
on enough units it is rolled back (history and alert with the evidence; with
`gate.approval: manual` the rollback is proposed and a person decides). Figures go to the
family's `monitor-<family>` MLflow run (time series and plot) and the task log.
**rollback** updates the family's champion Asset when a rollback happened (the consumers
then run with the restored champion) and tells the configured notifier. **summary** prints the table of every family.

The retrain DAG reads these figures to decide whether a family is worth retraining.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, AssetAny, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from pipeline import steps
from pipeline.alerts import notifier_callbacks
from pipeline.assets import RUN_DAY, champion_asset, default_args, monitored_asset, validated_asset
from pipeline.families import FAMILIES
from pipeline.settings import load_settings

settings = load_settings()
# the feeds whose rows are some family's ground truth (each family's first feed)
TRUTH_FEEDS = list(dict.fromkeys(family.feeds[0] for family in FAMILIES.values()))


@task(doc_md="Live performance of the champion over the rolling window; the probation check.")
def monitor(family: str, day: str) -> dict:
    return steps.monitor(family, day)


# a rollback is news: the configured notifier (settings.alert_notifier) is told, as of a failure
@task(on_success_callback=notifier_callbacks(settings),
      doc_md="Tells the consumers (and the configured notifier) that the champion changed, when the monitor "
             "rolled it back; skips otherwise.")
def rollback(family: str, record: dict) -> str:
    probation = record.get("probation") or {}
    if probation.get("status") != "rolled_back" or probation.get("version") != record["champion"]:
        raise AirflowSkipException(f"{family}: no rollback")
    return f"{family}: rolled back from v{probation['version']} to v{probation['shadow']}"


@task(trigger_rule="none_failed", outlets=[Asset(monitored_asset())],
      doc_md="The day's table: per family, the champion's metric at promotion and live, and its probation.")
def summary(day: str) -> str:
    return steps.monitor_summary(day)


@dag(
    dag_id="retail_monitor",
    schedule=AssetAny(*(Asset(validated_asset(feed)) for feed in TRUTH_FEEDS)),
    start_date=pendulum.parse(settings.start_date),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["retail", "monitoring"],
    default_args=default_args(settings),
)
def retail_monitor() -> None:
    done = []
    for family in FAMILIES:
        record = monitor.override(task_id=f"monitor_{family}")(family, RUN_DAY)
        done.append(rollback.override(task_id=f"rollback_{family}", outlets=[Asset(champion_asset(family))])(
            family, record))
    done >> summary(RUN_DAY)


retail_monitor()
