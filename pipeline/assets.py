"""What the DAG files share, as plain values (no Airflow import here): the names of the
Assets that link the DAGs, the day a run works on, and the tasks' default arguments."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pipeline.alerts import failure_callbacks
from pipeline.settings import Settings

# Asset-triggered runs have no logical date: they work on the day the run was due.
RUN_DAY = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"


def validated_asset(feed: str) -> str:
    """Updated each time a feed's drop is published and its quality checked."""
    return f"retail://validated/{feed}"


def champion_asset(family: str) -> str:
    """Updated each time a family's champion alias moves."""
    return f"retail://champion/{family}"


def monitored_asset() -> str:
    """Updated each time the monitor scored the champions: the consumers then issue the day's
    predictions (kept to be scored when the truth arrives)."""
    return "retail://monitored/champions"


def default_args(settings: Settings, retry_minutes: float | None = None) -> dict[str, Any]:
    """Retries (``task_retries``, ``retry_minutes`` apart) and the failure alerts."""
    args: dict[str, Any] = {"retries": settings.task_retries, "on_failure_callback": failure_callbacks(settings)}
    if retry_minutes is not None:
        args["retry_delay"] = timedelta(minutes=retry_minutes)
    return args
