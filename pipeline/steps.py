"""One function per pipeline step, with plain arguments (names, ISO dates, URIs, run ids).

DAG tasks and the command line call these and nothing else; each loads the settings,
does its work through the modules below it, and returns a small reference.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import date
from typing import ParamSpec, TypeVar

from pipeline.settings import load_settings

P = ParamSpec("P")
R = TypeVar("R")


def _day(logical_date: str) -> date:
    return date.fromisoformat(logical_date[:10])


def _tracking_step(step: Callable[P, R]) -> Callable[P, R]:
    """A step that talks to MLflow: when the tracking server stays unreachable through
    MLflow's retries, it fails with one error naming the server."""

    @functools.wraps(step)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        from pipeline.tracking import naming_the_tracking_server

        with naming_the_tracking_server(load_settings()):
            return step(*args, **kwargs)

    return run


def land(feed: str, logical_date: str) -> str:
    """Copy the day's drop into the raw zone. Without a drop: NoDrop (a skip) or
    MissingDrop (a failure), as ``ingest.missing_drop`` says."""
    from pipeline.ingest.land import land_drop
    from pipeline.lake import lake_from_settings, landing_lake

    settings = load_settings()
    return land_drop(landing_lake(settings), lake_from_settings(settings), feed, _day(logical_date),
                     settings.ingest.missing_drop)


def validate(feed: str, logical_date: str) -> str:
    """Validate the raw drop; publish good rows, quarantine bad ones; return the report URI."""
    from pipeline.ingest.publish import validate_and_publish
    from pipeline.lake import lake_from_settings

    settings = load_settings()
    summary = validate_and_publish(lake_from_settings(settings), feed, _day(logical_date),
                                   settings.ingest.max_bad_row_share, settings.ingest.chunk_rows)
    return summary.report_uri


def ingest_summary(logical_date: str) -> dict:
    """Log the day's table (per feed: status, rows in / published / quarantined); return it."""
    from pipeline.ingest.report import day_summary
    from pipeline.lake import lake_from_settings

    return day_summary(lake_from_settings(load_settings()), _day(logical_date))


def check_quality(feed: str, logical_date: str) -> str:
    """Drift and unknown skus of the published drop; raises NothingPublished without one."""
    from pipeline.ingest.quality import check_quality as check
    from pipeline.lake import lake_from_settings

    settings = load_settings()
    return check(lake_from_settings(settings), feed, _day(logical_date), settings.ingest.drift).uri


@_tracking_step
def check_data(family: str, logical_date: str) -> str:
    """Whether the family is in use, has validated data on each of its feeds and is worth
    retraining (``retrain`` settings); raises NoData or NotWorthRetraining with the reason
    when not (its retraining is then skipped, spending no training time)."""
    from pipeline.datasets import NoData, missing_data
    from pipeline.lake import lake_from_settings
    from pipeline.monitoring.retrain import NotWorthRetraining, retrain_decision

    settings = load_settings()
    reason = missing_data(lake_from_settings(settings), family, _day(logical_date), settings.families)
    if reason:
        raise NoData(f"{family}: {reason}")
    decision = retrain_decision(settings, family, _day(logical_date))
    if not decision.retrain:
        raise NotWorthRetraining(f"{family}: not worth retraining: {decision.summary}")
    return f"{family}: retrain ({decision.summary})"


@_tracking_step
def monitor(family: str, logical_date: str) -> dict:
    """The champion's live performance, and its probation (a rollback when it disappoints)."""
    from pipeline.monitoring.monitor import monitor_family

    return monitor_family(load_settings(), family, _day(logical_date))


def monitor_summary(logical_date: str) -> str:
    """The day's monitoring table, every family (logged; returned)."""
    from pipeline.lake import lake_from_settings
    from pipeline.monitoring.monitor import latest_records
    from pipeline.monitoring.reports import monitor_table

    table = monitor_table(latest_records(lake_from_settings(load_settings()), _day(logical_date)))
    logging.getLogger(__name__).info("live performance of the champions on %s:\n%s", logical_date, table)
    return table


def retrain_summary(logical_date: str) -> dict:
    """Log the run's table (per family: trained, gated, promoted, or why not); return it."""
    from pipeline.report import retrain_summary as summary

    return summary(load_settings(), _day(logical_date))


def build_dataset(family: str, logical_date: str) -> str:
    """Train and holdout sets; raises RetrainingHeld while severe drift on the family's
    feeds is not acknowledged, NoData when there is too little to train and hold out."""
    from pipeline.datasets import build_dataset as build
    from pipeline.families import get_family
    from pipeline.ingest.quality import ensure_not_held
    from pipeline.lake import lake_from_settings

    settings = load_settings()
    lake = lake_from_settings(settings)
    ensure_not_held(lake, get_family(family).feeds, _day(logical_date))
    return build(lake, family, _day(logical_date), settings.hyperparameters(family))


@_tracking_step
def fine_tune(family: str, dataset_uri: str, logical_date: str) -> str:
    from pipeline.training.job import train_model

    return train_model(load_settings(), family, dataset_uri, _day(logical_date))


@_tracking_step
def evaluate(family: str, dataset_uri: str, run_id: str) -> str:
    from pipeline.evaluation.evaluate import evaluate_run

    return evaluate_run(load_settings(), family, dataset_uri, run_id)


@_tracking_step
def gate(family: str, run_id: str) -> dict:
    from pipeline.evaluation.evaluate import gate_run

    return gate_run(load_settings(), family, run_id)


@_tracking_step
def register(family: str, run_id: str, decision: dict) -> str:
    from pipeline.registry import register as register_version

    return register_version(load_settings(), family, run_id, decision)


@_tracking_step
def approval(family: str, version: str, gate_passed: bool) -> str:
    """'not_needed', 'auto', 'approved', 'rejected' or 'waiting' (see the registry)."""
    from pipeline.registry import approval_for_promotion

    return approval_for_promotion(load_settings(), family, version, gate_passed)


@_tracking_step
def promote(family: str, version: str) -> bool:
    from pipeline.registry import promote as promote_version

    return promote_version(load_settings(), family, version, by="airflow")


@_tracking_step
def inventory_plan(logical_date: str) -> str:
    from pipeline.consumers.inventory import run_inventory_plan

    return run_inventory_plan(load_settings(), _day(logical_date))


@_tracking_step
def recommendations(logical_date: str) -> str:
    from pipeline.consumers.recommendations import run_recommendations

    return run_recommendations(load_settings(), _day(logical_date))


@_tracking_step
def review_insights(logical_date: str) -> str:
    from pipeline.consumers.review_insights import run_review_insights

    return run_review_insights(load_settings(), _day(logical_date))
