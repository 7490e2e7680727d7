"""Alerts when something goes wrong: a failed task, or a retraining past its deadline.

Each alert is one JSON object in the lake (``alerts/<dag>/<run>/<task>.json``) and an
ERROR line in the log; an Airflow notifier (``settings.alert_notifier``, a dotted class
path such as ``airflow.providers.smtp.notifications.smtp.SmtpNotifier``, with
``alert_notifier_kwargs``) can send it on as well. Nothing here imports Airflow: the
callbacks read the task context as a mapping.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.settings import Settings, load_settings

log = logging.getLogger(__name__)


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]", "_", part)


def write_alert(settings: Settings, kind: str, dag_id: str, run_id: str, task_id: str, message: str,
                details: Mapping[str, Any] | None = None) -> str:
    from pipeline import zones  # pandas (through the lake): not at DAG parse time
    from pipeline.lake import lake_from_settings

    lake = lake_from_settings(settings)
    alert = {"kind": kind, "dag_id": dag_id, "run_id": run_id, "task_id": task_id, "message": message,
             **(details or {})}
    uri = lake.write_json(zones.alert(lake, _safe(dag_id), _safe(run_id), _safe(task_id)), alert)
    log.error("ALERT %s: %s.%s (run %s): %s -> %s", kind, dag_id, task_id, run_id, message, uri)
    return uri


def on_task_failure(context: Mapping[str, Any]) -> None:
    """Airflow ``on_failure_callback``: record which task failed, why, and where its log is."""
    ti, dag_run = context["ti"], context.get("dag_run")
    exception = context.get("exception")
    write_alert(
        load_settings(), "task_failed", ti.dag_id, getattr(dag_run, "run_id", "unknown"), ti.task_id,
        f"{type(exception).__name__}: {exception}" if exception else "the task failed",
        {"try_number": getattr(ti, "try_number", None), "log_url": getattr(ti, "log_url", None),
         "logical_date": str(context.get("logical_date"))},
    )


async def retrain_deadline_missed(**kwargs: Any) -> None:
    """Deadline callback (runs in the triggerer): the retraining run is late."""
    context = kwargs.get("context") or {}
    dag_run = context.get("dag_run") or {}
    run_id = dag_run.get("run_id", "unknown") if isinstance(dag_run, Mapping) else getattr(dag_run, "run_id", "unknown")
    write_alert(load_settings(), "deadline_missed", kwargs.get("dag_id", "retail_retrain"), run_id, "dag",
                f"retraining did not finish within {kwargs.get('hours')} hours of being queued")


def notifier_callbacks(settings: Settings) -> list[Callable[..., Any]]:
    """The configured notifier as a task callback (none when ``alert_notifier`` is empty)."""
    if not settings.alert_notifier:
        return []
    module, _, name = settings.alert_notifier.rpartition(".")
    return [getattr(importlib.import_module(module), name)(**settings.alert_notifier_kwargs)]


def failure_callbacks(settings: Settings) -> list[Callable[..., Any]]:
    """``on_failure_callback`` for every task: the lake alert, plus the configured notifier."""
    return [on_task_failure, *notifier_callbacks(settings)]
