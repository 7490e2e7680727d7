"""
### Retail consumers

Runs when any model family gets a new champion (promoted or rolled back), and each day
after the monitor scored the champions. Each task uses the current champion of its family
and writes to `outputs/<consumer>/date=<logical date>/` in the lake (Parquet, and CSV safe
to open in a spreadsheet), every row naming the model version used and its live metric.
What each champion predicted is kept to be scored when the truth arrives; during a
probation the previous champion's predictions are kept beside it, in shadow:

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
from airflow.sdk import Asset, AssetAny, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from pipeline import steps
from pipeline.assets import RUN_DAY, champion_asset, default_args, monitored_asset
from pipeline.families import FAMILIES
from pipeline.settings import load_settings

settings = load_settings()
# each consumer's step; the family whose champion it uses is in its record (pipeline/families.py)
CONSUMER_STEPS = {
    "inventory_plan": steps.inventory_plan,
    "recommendations": steps.recommendations,
    "review_insights": steps.review_insights,
}


# none_failed: recommendations wait for the review insights (to demote poorly
# reviewed items) but still run when there is no sentiment champion to score with
@task(trigger_rule="none_failed")
def run_consumer(consumer: str, day: str) -> str:
    try:
        return CONSUMER_STEPS[consumer](day)
    except LookupError as exc:  # no champion for this family yet
        raise AirflowSkipException(str(exc)) from exc


@dag(
    dag_id="retail_consumers",
    # a new champion of any family with a consumer, or a monitor run
    schedule=AssetAny(*(Asset(champion_asset(name)) for name, family in FAMILIES.items() if family.consumer),
                      Asset(monitored_asset())),
    start_date=pendulum.parse(settings.start_date),
    catchup=False,
    doc_md=__doc__,
    tags=["retail", "consumer"],
    default_args=default_args(settings),
)
def retail_consumers() -> None:
    tasks = {
        family.consumer: run_consumer.override(
            task_id=family.consumer, doc_md=f"Run **{family.consumer}** with the current {name} champion.",
        )(family.consumer, RUN_DAY)
        for name, family in FAMILIES.items() if family.consumer
    }
    tasks["review_insights"] >> tasks["recommendations"]


retail_consumers()
