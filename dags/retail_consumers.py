"""
### Retail consumers

Runs when any model family gets a new champion. Each task uses the current champion of
its family and writes to `outputs/<consumer>/date=<logical date>/` in the lake (Parquet,
and CSV safe to open in a spreadsheet), every row naming the model version used:

- **inventory_plan** (forecaster): next periods' demand per store x sku with quantiles,
  safety stock for the target service level, reorder point and suggested order;
- **recommendations** (recommender): top-K products per customer, without items they have;
- **review_insights** (sentiment): recent unlabelled reviews scored, shares per sku and day.

A family without a champion yet is skipped.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from pipeline import steps
from pipeline.assets import FAMILIES, champion_asset
from pipeline.alerts import failure_callbacks
from pipeline.alerts import failure_callbacks
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
    for consumer, family in CONSUMERS.items():

        @task(task_id=consumer, doc_md=f"Run **{consumer}** with the current {family} champion.")
        def run_consumer(day: str, consumer: str = consumer) -> str:
            try:
                return getattr(steps, consumer)(day)
            except LookupError as exc:  # no champion for this family yet
                raise AirflowSkipException(str(exc)) from exc

        run_consumer(RUN_DAY)


retail_consumers()
