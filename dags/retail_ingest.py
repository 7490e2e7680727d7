"""
### Retail ingest

Daily, for each feed (sales, reviews, interactions, catalog, and the optional stock and plan):

1. **land** copies `<landing>/<feed>/<logical date>/` into the lake's raw zone with a
   manifest (files, sizes, sha256). A day without a drop is *skipped* (or fails, with
   `ingest.missing_drop: fail`). A file name that could leave the lake is refused.
2. **validate** runs the feed's Great Expectations suite in chunks: good rows are
   published to `validated/<feed>/date=<day>/`, bad rows go to `quarantine/` with every
   rule they broke. A drop that is unreadable, lacks a required column or has too many
   bad rows is quarantined whole and the task fails with the file, column and rule. The
   log ends with a table (rows in / published / quarantined per file and per rule) and
   the address of the HTML validation report in the lake.
3. **check** compares the published drop with the previous window (drift) and the
   catalog (unknown skus). Warnings go to the log; severe drift holds retraining until
   someone runs `python -m pipeline data ack <feed> <date> --reason ...`.

A successful check updates the feed's Asset, which schedules retraining. **summary** ends
the run with one table for the day, and fails it when any drop was rejected.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from pipeline import steps
from pipeline.assets import default_args, validated_asset
from pipeline.feeds import FEEDS
from pipeline.settings import load_settings

settings = load_settings()


@task
def land(feed: str, ds: str | None = None) -> str:
    from pipeline.ingest.land import NoDrop

    try:
        return steps.land(feed, ds)
    except NoDrop as exc:
        raise AirflowSkipException(str(exc)) from exc


@task
def validate(manifest_uri: str, feed: str, ds: str | None = None) -> str:
    return steps.validate(feed, ds)


# all_done: runs whatever happened to the catalog; skips itself when nothing was published
@task(trigger_rule="all_done")
def check(feed: str, ds: str | None = None) -> str:
    from pipeline.ingest.quality import NothingPublished

    try:
        return steps.check_quality(feed, ds)
    except NothingPublished as exc:
        raise AirflowSkipException(str(exc)) from exc


# none_failed: runs when every feed was published or skipped; a failed validate fails
# this task too, and so the DAG run (the checks, all_done, would otherwise hide it)
@task(trigger_rule="none_failed",
      doc_md="The day's table: per feed, rows in, published and quarantined, and the report address.")
def summary(ds: str | None = None) -> dict:
    return steps.ingest_summary(ds)


@dag(
    dag_id="retail_ingest",
    schedule=settings.ingest_schedule,
    start_date=pendulum.parse(settings.start_date),
    catchup=False,
    doc_md=__doc__,
    tags=["retail", "ingest"],
    default_args=default_args(settings, retry_minutes=2),
)
def retail_ingest() -> None:
    validated, checks = {}, {}
    for feed in FEEDS:
        manifest = land.override(
            task_id=f"land_{feed}", doc_md=f"Copy the day's **{feed}** drop into the raw zone with a manifest.")(feed)
        validated[feed] = validate.override(
            task_id=f"validate_{feed}",
            doc_md=f"Validate the **{feed}** drop; publish good rows, quarantine bad rows; returns the report URI.",
        )(manifest, feed)
        checks[feed] = check.override(
            task_id=f"check_{feed}", outlets=[Asset(validated_asset(feed))],
            doc_md=f"Drift of the **{feed}** drop against the previous window; unknown skus; holds.")(feed)
        validated[feed] >> checks[feed]
    for feed in FEEDS:  # unknown skus are judged against the catalog of the same day
        if feed != "catalog":
            validated["catalog"] >> checks[feed]
    [*validated.values(), *checks.values()] >> summary()


retail_ingest()
