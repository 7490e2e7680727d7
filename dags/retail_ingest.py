"""
### Retail ingest

Daily, for each feed (sales, reviews, interactions, catalog):

1. **land** copies `<landing>/<feed>/<logical date>/` into the lake's raw zone with a
   manifest (files, sizes, sha256). A day without a drop is *skipped*, not failed.
2. **validate** runs the feed's Great Expectations suite: good rows are published to
   `validated/<feed>/date=<day>/`, bad rows go to `quarantine/` with the rule each broke.
   A drop that is unreadable, lacks a required column or has too many bad rows is
   quarantined whole and the task fails with the reason.

A successful validate updates the feed's Asset, which schedules retraining.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from pipeline import steps
from pipeline.assets import FEEDS, validated_asset
from pipeline.settings import load_settings

settings = load_settings()
VALIDATED = {feed: Asset(validated_asset(feed)) for feed in FEEDS}


@dag(
    dag_id="retail_ingest",
    schedule=settings.ingest_schedule,
    start_date=pendulum.parse(settings.start_date),
    catchup=False,
    doc_md=__doc__,
    tags=["retail", "ingest"],
    default_args={"retries": settings.task_retries, "retry_delay": pendulum.duration(minutes=2)},
)
def retail_ingest() -> None:
    for feed in FEEDS:

        @task(task_id=f"land_{feed}", doc_md=f"Copy the day's **{feed}** drop into the raw zone with a manifest.")
        def land(feed: str = feed, ds: str | None = None) -> str:
            from pipeline.ingest.land import NoDrop

            try:
                return steps.land(feed, ds)
            except NoDrop as exc:
                raise AirflowSkipException(str(exc)) from exc

        @task(
            task_id=f"validate_{feed}",
            outlets=[VALIDATED[feed]],
            doc_md=f"Validate the **{feed}** drop; publish good rows, quarantine bad rows.",
        )
        def validate(manifest_uri: str, feed: str = feed, ds: str | None = None) -> str:
            return steps.validate(feed, ds)

        validate(land())


retail_ingest()
