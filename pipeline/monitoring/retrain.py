"""Retrain when it is worth it: the facts about a family on a day, and a pure decision.

:func:`decide` returns every condition that fired (each a reason to retrain) and, when none
did, the reason to skip, naming each condition with its figure and threshold. The data
conditions are judged against the latest trained version (a challenger that failed its gate
is not retrained on the same data again); live decay against the champion's metric at
promotion. :func:`retrain_decision` gathers the facts from the lake and the registry,
decides, and records the decision at ``<lake>/monitoring/decisions/<family>/date=<day>.json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

from pipeline import zones
from pipeline.evaluation.metrics import worse_by
from pipeline.families import get_family
from pipeline.lake import Lake, lake_from_settings
from pipeline.settings import DriftSettings, RetrainRule, Settings

log = logging.getLogger(__name__)


class NotWorthRetraining(Exception):
    """No retrain condition fired; the message gives each with its figure."""


@dataclass(frozen=True)
class RetrainFacts:
    """What the decision reads about one family on one day."""

    family: str
    day: date
    latest_version: str | None = None  # the latest registered version (None: never trained)
    trained_until: date | None = None  # its training window's end (the logical date it trained on)
    trained_rows: int = 0  # its training rows
    new_rows: int = 0  # labelled rows of the family's feed that arrived after trained_until
    drift: tuple[str, ...] = ()  # drift past the warn level of what arrived after trained_until
    code_changed: bool = False  # the training code (or its packages) differs from the latest version's
    settings_changed: bool = False  # the family's training settings differ
    champion: str | None = None
    metric: str = ""  # its direction: pipeline.evaluation.metrics.LOWER_IS_BETTER
    promoted_value: float | None = None  # the champion's holdout metric at promotion
    live_value: float | None = None  # its live metric over the window
    live_samples: int = 0
    live_days: int = 0  # the days from the first to the last its samples' truth arrived on
    live_day: date | None = None  # the day of that live record


@dataclass
class RetrainDecision:
    family: str
    day: str
    retrain: bool
    reasons: list[str] = field(default_factory=list)  # the conditions that fired
    checks: list[str] = field(default_factory=list)  # every condition, fired or not, with its figure

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons if self.retrain else self.checks)


def decide(facts: RetrainFacts, rule: RetrainRule, policy: str = "worth_it") -> RetrainDecision:
    """Retrain or skip, with every condition that fired (and each one's figure)."""
    decision = RetrainDecision(facts.family, facts.day.isoformat(), retrain=False)

    def check(fired: bool, text: str) -> None:
        decision.checks.append(text)
        if fired:
            decision.reasons.append(text)

    if facts.latest_version is None or facts.trained_until is None:
        check(True, "no trained version yet")
        decision.retrain = True
        return decision
    v = f"v{facts.latest_version}"
    check(facts.code_changed, f"training code {'changed' if facts.code_changed else 'unchanged'} since {v}")
    check(facts.settings_changed, f"training settings {'changed' if facts.settings_changed else 'unchanged'} since {v}")

    needed = [n for n in (rule.min_new_rows, round(rule.min_new_share * facts.trained_rows) if rule.min_new_share else 0)
              if n > 0]
    threshold = min(needed) if needed else None
    share = f" ({facts.new_rows / facts.trained_rows:.0%} of its {facts.trained_rows:,} training rows)" \
        if facts.trained_rows else ""
    check(threshold is not None and facts.new_rows >= threshold,
          f"{facts.new_rows:,} new labelled rows since {v}'s data (up to {facts.trained_until}){share}; "
          f"threshold {threshold:,}" if threshold is not None else f"{facts.new_rows:,} new rows (no threshold)")

    if rule.on_drift_warning:
        check(bool(facts.drift), "drift since then: " + "; ".join(facts.drift) if facts.drift
              else f"no drift warning since {facts.trained_until}")

    age = (facts.day - facts.trained_until).days
    check(bool(rule.max_age_days) and age >= rule.max_age_days,
          f"{v}'s data is {age} days old (max {rule.max_age_days})" if rule.max_age_days else f"{v}'s data is {age} days old")

    if facts.champion is None:
        check(False, "no champion: no live performance")
    elif facts.live_value is None or facts.promoted_value is None:
        check(False, f"champion v{facts.champion}: no live {facts.metric} yet")
    else:
        decay = worse_by(facts.metric, facts.live_value, facts.promoted_value, relative=True)
        enough = facts.live_samples >= rule.min_live_samples and facts.live_days >= rule.min_live_days
        check(enough and decay > rule.max_live_decay,
              f"champion v{facts.champion} live {facts.metric} {facts.live_value:.4g} on {facts.live_samples:,} "
              f"samples over {facts.live_days} days against {facts.promoted_value:.4g} at promotion: "
              f"{100 * decay:+.1f}% worse (threshold {100 * rule.max_live_decay:g}%"
              + ("" if enough else f"; judged from {rule.min_live_samples:,} samples over {rule.min_live_days} days")
              + ")")
    if policy == "always":
        decision.reasons.append("retrain.policy is always")
    decision.retrain = bool(decision.reasons)
    return decision


# ------------------------------------------------------------------ the facts


def new_labelled_rows(lake: Lake, family: str, after: date, until: date) -> int:
    """Rows of the family's first feed published after ``after`` up to ``until`` (with its
    label column filled, when the family has one)."""
    from pipeline.validated import validated_partitions

    record = get_family(family)
    count = 0
    for day, uri in validated_partitions(lake, record.feeds[0], until).items():
        if day <= after:
            continue
        frame = lake.read_parquet(uri)
        count += int(frame[record.label_column].notna().sum()) if record.label_column in frame else len(frame)
    return count


def drift_since(lake: Lake, feeds: tuple[str, ...], after: date, until: date, drift: DriftSettings,
                min_rows: int) -> tuple[str, ...]:
    """Drift of everything the family's feeds published after ``after`` (up to ``until``),
    pooled, against the ``drift.window_days`` before it: the ingest check's metrics at or
    past their warn level. Pooled, not drop by drop: a day's few reviews swing a share by
    chance. Fewer than ``min_rows`` new rows are not judged."""
    import pandas as pd

    from pipeline.ingest.quality import DRIFT_METRICS
    from pipeline.validated import validated_partitions

    found = []
    for feed in feeds:
        parts = validated_partitions(lake, feed, until)
        new = [uri for day, uri in parts.items() if day > after]
        old = [uri for day, uri in parts.items() if after - timedelta(days=drift.window_days) < day <= after]
        if not new or not old or not DRIFT_METRICS.get(feed):
            continue
        current = pd.concat([lake.read_parquet(uri) for uri in new], ignore_index=True)
        if len(current) < min_rows:
            continue
        reference = pd.concat([lake.read_parquet(uri) for uri in old], ignore_index=True)
        for name, metric in DRIFT_METRICS[feed].items():
            value = metric(current, reference) if len(current) and len(reference) else None
            if value is not None and name in drift.warn and abs(value) >= drift.warn[name]:
                found.append(f"{feed}: {name}={value:+.4g} over {len(current):,} rows since {after} against the "
                             f"{drift.window_days} days before (warning at {drift.warn[name]:g})")
    return tuple(found)


def retrain_facts(settings: Settings, family: str, day: date) -> RetrainFacts:
    from mlflow import MlflowClient

    from pipeline.monitoring.monitor import latest_live, promotion_metrics
    from pipeline.registry import champion_version, latest_version
    from pipeline.tracking import configure_mlflow, training_code_digest

    configure_mlflow(settings)
    record = get_family(family)
    lake = lake_from_settings(settings)
    latest = latest_version(settings, family)
    base = {"family": family, "day": day, "metric": record.live_metric}
    if latest is None:
        return RetrainFacts(**base)
    run = MlflowClient().get_run(latest.run_id)
    trained_until = date.fromisoformat(run.data.tags["logical_date"])
    champion = champion_version(settings, family)
    live = latest_live(lake, family, day)
    live_value = None
    if champion and live and live.get("champion") == champion:
        live_value = live["live"].get(record.live_metric)
    return RetrainFacts(
        **base, latest_version=str(latest.version), trained_until=trained_until,
        trained_rows=int(run.data.metrics.get("train_rows", 0)),
        new_rows=new_labelled_rows(lake, family, trained_until, day),
        drift=drift_since(lake, record.feeds, trained_until, day, settings.ingest.drift,
                          settings.retrain.rule(family).drift_min_rows),
        code_changed=run.data.tags.get("training_code") != training_code_digest(family),
        settings_changed=run.data.tags.get("settings_digest") != settings.training_digest(family),
        champion=champion,
        promoted_value=promotion_metrics(settings, family, champion).get(record.live_metric) if champion else None,
        live_value=live_value, live_samples=int(live["live"].get("samples", 0)) if live_value is not None else 0,
        live_days=int(live["live"].get("span_days", 0)) if live_value is not None else 0,
        live_day=date.fromisoformat(live["day"]) if live_value is not None else None,
    )


def retrain_decision(settings: Settings, family: str, day: date) -> RetrainDecision:
    """Decide and record; raises nothing (the caller skips on ``retrain`` False)."""
    facts = retrain_facts(settings, family, day)
    decision = decide(facts, settings.retrain.rule(family), settings.retrain.policy)
    lake = lake_from_settings(settings)
    payload = {**asdict(decision), "facts": json.loads(json.dumps(asdict(facts), default=str))}
    lake.write_json(zones.retrain_decision(lake, family, day), payload)
    _log_to_monitoring_run(settings, family, day, decision.retrain, payload)
    log.info("%s on %s: %s: %s", family, day, "retrain" if decision.retrain else "skip", decision.summary)
    return decision


def _log_to_monitoring_run(settings: Settings, family: str, day: date, retrain: bool, payload: dict) -> None:
    """Beside the live figures of the day, on the family's monitoring run (when the monitor
    has made one): ``retrain`` 1 or 0 at the day's step, and the decision with its facts."""
    import mlflow

    from pipeline.monitoring.reports import day_stamp, monitoring_run
    from pipeline.tracking import configure_mlflow

    run_id = monitoring_run(configure_mlflow(settings), family)
    if run_id is None:
        return
    client = mlflow.MlflowClient()
    client.log_metric(run_id, "retrain", float(retrain), timestamp=day_stamp(day), step=day.toordinal())
    client.log_dict(run_id, payload, f"decisions/{zones.partition(day)}.json")


def recorded_decision(lake: Lake, family: str, day: date) -> dict[str, Any] | None:
    uri = zones.retrain_decision(lake, family, day)
    return lake.read_json(uri) if lake.exists(uri) else None
