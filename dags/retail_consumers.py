"""
### Retail consumers

Runs when any model family gets a new champion. Each task uses the current champion of
its family and writes to `outputs/<consumer>/date=<logical date>/` in the lake (Parquet,
and CSV safe to open in a spreadsheet), every row naming the model version used:

- **inventory_plan** (forecaster): next periods' demand per store x sku with quantiles,
  safety stock for the target service level, reorder point and suggested order;
- **review_insights** (sentiment): recent unlabelled reviews scored; label shares per sku
  and category and day; an alert when a sku's negative share jumps;
- **recommendations** (recommender, after the review insights): top-K products per customer,
  without items they have, poorly reviewed items moved to the end.

A family without a champion yet is skipped.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from pipeline import steps
from pipeline.alerts import failure_callbacks
from pipeline.assets import FAMILIES, champion_asset
from pipeline.settings import load_settings

settings = load_settings()
# Asset-triggered runs have no logical date: they work on the day the run was due.
RUN_DAY = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"
CHAMPION = {family: Asset(champion_asset(family)) for family in FAMILIES}
CONSUMERS = {"inventory_plan": "forecaster", "recommendations": "recommender", "review_insights": "sentiment"}


@dag(
    dag_id="retail_consumers",
    schedule=CHAMPION["forecaster"] | CHAMPION["recommender"] | CHAMPION["sentiment"],
    start_date=pendulum.parse(settings.start_date),
    catchup=False,
    doc_md=__doc__,
    tags=["retail", "consumer"],
    default_args={"retries": settings.task_retries, "on_failure_callback": failure_callbacks(settings)},
)
def retail_consumers() -> None:
    tasks = {}
    for consumer, family in CONSUMERS.items():

        # none_failed: recommendations wait for the review insights (to demote poorly
        # reviewed items) but still run when there is no sentiment champion to score with
        @task(task_id=consumer, trigger_rule="none_failed",
              doc_md=f"Run **{consumer}** with the current {family} champion.")
        def run_consumer(day: str, consumer: str = consumer) -> str:
            try:
                return getattr(steps, consumer)(day)
            except LookupError as exc:  # no champion for this family yet
                raise AirflowSkipException(str(exc)) from exc

        tasks[consumer] = run_consumer(RUN_DAY)
    tasks["review_insights"] >> tasks["recommendations"]


retail_consumers()
