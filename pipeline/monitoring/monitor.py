"""The daily monitor of one family: its champion's live performance over the rolling window
(and per slice), the previous champion's on the same units while the new one is on
probation, and the probation's outcome: passed, or rolled back (``gate.approval: manual``:
proposed to a person) with the evidence.

Written to ``<lake>/monitoring/live/<family>/date=<day>.json`` (what the retrain decision
and ``python -m pipeline models status`` read), logged as time series on the family's
monitoring run in MLflow (``monitor-<family>``, one step per day) with a plot, and printed
as a table in the task log.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from typing import Any

import pandas as pd

from pipeline import registry, zones
from pipeline.evaluation.metrics import worse_by
from pipeline.families import FAMILIES, Family, get_family
from pipeline.lake import Lake, lake_from_settings
from pipeline.monitoring.issued import VERSION_COLUMN
from pipeline.monitoring.reports import log_to_mlflow, monitor_table, slice_table
from pipeline.settings import Settings
from pipeline.tracking import configure_mlflow

log = logging.getLogger(__name__)


def promotion_metrics(settings: Settings, family: str, version: str) -> dict[str, float]:
    """The holdout metrics a version was registered with (what it was promoted on)."""
    from mlflow import MlflowClient

    tags = MlflowClient().get_model_version(settings.model_name(family), version).tags
    return json.loads(tags.get("metrics") or "{}")


def live_records(lake: Lake, family: str, until: date) -> list[dict[str, Any]]:
    """The family's daily live records up to ``until``, oldest first."""
    records = []
    for uri in lake.list(zones.live_folder(lake, family)):
        day = zones.partition_date(uri.rsplit("/", 1)[-1].removesuffix(".json"))
        if day is not None and day <= until:
            records.append(lake.read_json(uri))
    return records


def latest_live(lake: Lake, family: str, until: date) -> dict[str, Any] | None:
    records = live_records(lake, family, until)
    return records[-1] if records else None


def latest_records(lake: Lake, until: date) -> list[dict[str, Any]]:
    """Each family's latest live record up to ``until`` (families never monitored left out)."""
    return [r for family in FAMILIES if (r := latest_live(lake, family, until))]


def version_metrics(record: Family, units: pd.DataFrame, version: str | None, hp: Any) -> dict[str, float]:
    """The live metrics of ``version``'s rows of ``units`` and how many there are."""
    mine = units[units[VERSION_COLUMN] == version] if version else units.iloc[:0]
    if mine.empty:
        return {"samples": 0}
    metrics = record.function("live_metrics")(mine, hp)
    return {**{k: round(float(v), 6) for k, v in metrics.items()}, "samples": int(len(mine)),
            "span_days": span_days(mine["day"])}


def span_days(days: pd.Series) -> int:
    """The days from the first to the last day truth arrived on, both counted: how long a
    stretch the evidence covers (one week of sales is one draw, however many series it holds)."""
    return int((days.max() - days.min()).days) + 1 if len(days) else 0


# ------------------------------------------------------------------ probation


def _replaced(settings: Settings, family: str, champion: str) -> str | None:
    """The champion that ``champion``'s promotion replaced, when a promotion (not a
    rollback) was the last move of the alias; None otherwise."""
    moves = [e for e in registry.history(settings, family) if e["event"] in ("promoted", "rolled_back")]
    if moves and moves[-1]["event"] == "promoted" and moves[-1]["version"] == champion:
        return moves[-1].get("from_version")
    return None


def probation_shadow(settings: Settings, lake: Lake, family: str, day: date) -> str | None:
    """The version to score in shadow beside the champion on ``day``: the champion it
    replaced, while the new one is on probation (None otherwise). The consumers ask this."""
    champion = registry.champion_version(settings, family)
    if champion is None or not settings.monitor.probation_days:
        return None
    uri = zones.probation(lake, family, champion)
    if lake.exists(uri):
        state = lake.read_json(uri)
        return state["shadow"] if state["status"] == "running" else None
    return _replaced(settings, family, champion)  # promoted since the last monitor run: starting


def _start_probation(settings: Settings, lake: Lake, family: str, champion: str, day: date) -> dict[str, Any]:
    shadow = _replaced(settings, family, champion)
    state = {"family": family, "version": champion, "shadow": shadow, "started": day.isoformat(),
             "ends": (day + timedelta(days=settings.monitor.probation_days)).isoformat(),
             "status": "running" if shadow and settings.monitor.probation_days else "none",
             "detail": "" if shadow else "no previous champion to compare with (or restored by a rollback)"}
    lake.write_json(zones.probation(lake, family, champion), state)
    if state["status"] == "running":
        log.info("%s v%s on probation until %s: v%s is scored in shadow on the same live data",
                 family, champion, state["ends"], shadow)
    return state


def check_probation(settings: Settings, lake: Lake, record: Family, champion: str, units: pd.DataFrame,
                    day: date, hp: Any) -> dict[str, Any]:
    """Compare the champion on probation with the champion it replaced on the units both
    were scored on since it started; roll it back (or propose it) when it is worse by more
    than the margin on enough units; pass it when the probation ends."""
    uri = zones.probation(lake, record.name, champion)
    state = lake.read_json(uri) if lake.exists(uri) else _start_probation(settings, lake, record.name, champion, day)
    if state["status"] != "running":
        return state
    cfg, metric, shadow = settings.monitor, record.live_metric, state["shadow"]
    since = units[units["day"] >= pd.Timestamp(state["started"])]
    mine, theirs = since[since[VERSION_COLUMN] == champion], since[since[VERSION_COLUMN] == shadow]
    shared = set(mine["unit"]) & set(theirs["unit"])
    mine, theirs = mine[mine["unit"].isin(shared)], theirs[theirs["unit"].isin(shared)]
    ours, before = version_metrics(record, mine, champion, hp), version_metrics(record, theirs, shadow, hp)
    evidence = {"metric": metric, "samples": len(shared), "min_samples": cfg.probation_min_samples,
                "span_days": ours.get("span_days", 0), "min_days": cfg.probation_min_days,
                "margin": cfg.probation_margin, "window": [state["started"], day.isoformat()],
                "champion": {"version": champion, **ours}, "shadow": {"version": shadow, **before}}
    if shared:
        evidence["worse_by"] = round(worse_by(metric, ours[metric], before[metric], relative=True), 6)
    state["evidence"] = evidence
    enough = len(shared) >= cfg.probation_min_samples and ours.get("span_days", 0) >= cfg.probation_min_days
    worse = enough and evidence.get("worse_by", 0.0) > cfg.probation_margin
    if worse:
        reason = (f"on probation, live {metric} {ours[metric]:.4g} against {before[metric]:.4g} for v{shadow} on "
                  f"the same {len(shared)} units over {ours['span_days']} days since {state['started']}: worse by "
                  f"{100 * evidence['worse_by']:.1f}% (margin {100 * cfg.probation_margin:g}%)")
        _roll_back_or_propose(settings, lake, record.name, champion, state, reason, day)
    elif day >= date.fromisoformat(state["ends"]):
        state["status"] = "passed"
        state["detail"] = (f"not worse than v{shadow} by more than {100 * cfg.probation_margin:g}% on "
                           f"{len(shared)} shared units over {ours.get('span_days', 0)} days (at least "
                           f"{cfg.probation_min_samples} over {cfg.probation_min_days} days needed to act)")
        registry.record_event(lake, record.name, {"event": "probation_passed", "version": champion,
                                                  "by": "monitor", "reason": state["detail"], "evidence": evidence})
    lake.write_json(uri, state)
    return state


def _roll_back_or_propose(settings: Settings, lake: Lake, family: str, champion: str, state: dict[str, Any],
                          reason: str, day: date) -> None:
    from pipeline.alerts import write_alert

    evidence = state["evidence"]
    if settings.gate.approval == "manual":
        if state.get("proposed"):
            return
        state["proposed"] = day.isoformat()
        state["detail"] = reason
        registry.record_event(lake, family, {"event": "rollback_proposed", "version": champion,
                                             "to_version": state["shadow"], "by": "monitor", "reason": reason,
                                             "evidence": evidence})
        message = (f"{family} v{champion}: {reason}. Roll back with `python -m pipeline models rollback {family} "
                   "--reason ...` (gate.approval is manual: waiting for a person)")
    else:
        registry.rollback(settings, family, reason, by="monitor", evidence=evidence)
        state["status"], state["detail"] = "rolled_back", reason
        message = f"{family} v{champion} rolled back to v{state['shadow']}: {reason}"
    write_alert(settings, "rollback", "retail_monitor", day.isoformat(), f"probation_{family}", message,
                {"family": family, "evidence": evidence})


# ------------------------------------------------------------------ the daily run


def monitor_family(settings: Settings, family: str, day: date) -> dict[str, Any]:
    """Score the family's kept predictions whose ground truth arrived in the window ending
    on ``day``; check the probation; record, log to MLflow and print. Returns the record."""
    record = get_family(family)
    lake = lake_from_settings(settings)
    configure_mlflow(settings)
    hp = settings.hyperparameters(family)
    since = day - timedelta(days=settings.monitor.window_days - 1)
    if record.live_units:
        units = record.function("live_units")(lake, day, since, hp)
    else:  # a family whose record names no live scoring: its champion is not watched
        log.warning("%s: no live_units in its family record: nothing to score", family)
        units = pd.DataFrame(columns=[VERSION_COLUMN, "unit", "day", "slice"])
    champion = registry.champion_version(settings, family)
    metric = record.live_metric
    out: dict[str, Any] = {"family": family, "day": day.isoformat(), "window": [since.isoformat(), day.isoformat()],
                           "metric": metric, "champion": champion, "promoted": None, "live": {"samples": 0},
                           "slices": {}, "versions": {}, "probation": None}
    for version in sorted(units[VERSION_COLUMN].unique(), key=int):
        out["versions"][version] = version_metrics(record, units, version, hp)
    if champion is not None:
        out["promoted"] = promotion_metrics(settings, family, champion).get(metric)
        out["live"] = out["versions"].get(champion, {"samples": 0})
        mine = units[units[VERSION_COLUMN] == champion]
        out["slices"] = {str(name): version_metrics(record, rows, champion, hp)
                         for name, rows in mine.groupby("slice") if name != ""}
        if out["live"]["samples"] and out["promoted"] is not None:
            out["decay"] = round(worse_by(metric, out["live"][metric], out["promoted"], relative=True), 6)
        out["probation"] = check_probation(settings, lake, record, champion, units, day, hp)
    out["uri"] = lake.write_json(zones.live_record(lake, family, day), out)
    log_to_mlflow(settings, family, day, out, live_records(lake, family, day))
    log.info("live performance of %s on %s (ground truth from %s):\n%s", family, day, since,
             monitor_table([out]))
    if out["slices"]:
        log.info("per %s:\n%s", "slice", slice_table(out))
    return out
