"""The MLflow model registry: register every challenger, promote, roll back, approve.

- Every retrain registers one version: the candidate the gate chose (or, when none passed,
  the best one, as failed), tagged with its kind (``model_kind``: transformer, classic or
  blend), gate decision, reasons, data window and metrics. Only a version whose gate
  passed becomes ``champion`` (unless a person forces it with a reason); the former
  champion gets the ``previous`` alias.
- Promotions are serialised by a lock in the lake and checked against the champion the
  version was evaluated against: when another promotion moved the alias in between, the
  version is refused (it was never compared with the new champion).
- With ``gate.approval: manual`` a version is promoted only after someone approves it.
- Every promotion, refusal, rollback and approval is appended to the history: one JSON
  object per event under ``<lake>/registry/history/<family>/`` (never rewritten), and
  summarised in tags on the model version.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from pipeline import zones
from pipeline.families import candidate_tag
from pipeline.lake import Lake, lake_from_settings
from pipeline.settings import Settings
from pipeline.tracking import configure_mlflow

log = logging.getLogger(__name__)
CHAMPION = "champion"
PREVIOUS = "previous"
LOCK_STALE_SECONDS = 600  # a lock older than this was left by a dead process


class PromotionError(Exception):
    """A promotion, rollback or approval that cannot be done; the message says why."""


def _client():  # noqa: ANN202 - MlflowClient, imported lazily
    from mlflow import MlflowClient

    return MlflowClient()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _alias(name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(_client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def champion_version(settings: Settings, family: str) -> str | None:
    """The version behind the ``champion`` alias, or None before the first promotion."""
    return _alias(settings.model_name(family), CHAMPION)


def latest_version(settings: Settings, family: str) -> Any | None:
    """The family's highest registered version (an MLflow ModelVersion, with its tags and
    run id), whether or not its gate passed; None before the first registration."""
    versions = _client().search_model_versions(f"name='{settings.model_name(family)}'")
    return max(versions, key=lambda mv: int(mv.version)) if versions else None


def version_kind(settings: Settings, family: str, version: str) -> str:
    """The kind of model a registered version is: transformer, classic or blend (a version
    registered before candidates existed is a transformer)."""
    tags = _client().get_model_version(settings.model_name(family), version).tags
    return tags.get("model_kind", "transformer")


# ------------------------------------------------------------------ history and lock


def record_event(lake: Lake, family: str, event: dict[str, Any]) -> dict[str, Any]:
    """Append one event to the family's history (a new object; nothing is rewritten)."""
    event = {"family": family, "at": _now(), **event}
    stamp = event["at"].replace(":", "").replace("+", "Z")
    lake.write_json(zones.history_event(lake, family, stamp, event["event"], event.get("version")), event)
    return event


def history(settings: Settings, family: str) -> list[dict[str, Any]]:
    """The family's events, oldest first."""
    lake = lake_from_settings(settings)
    return [lake.read_json(u) for u in lake.list(zones.history_folder(lake, family))]


@contextlib.contextmanager
def registry_lock(lake: Lake, family: str, timeout: float = 60.0) -> Iterator[None]:
    """One alias change at a time per family, across processes and machines."""
    uri = zones.promotion_lock(lake, family)
    deadline = time.monotonic() + timeout
    while not lake.create_exclusive(uri, json.dumps({"at": time.time(), "by": getpass.getuser()}).encode()):
        try:
            held_since = lake.read_json(uri)["at"]
        except Exception:  # released between our two calls
            continue
        if time.time() - held_since > LOCK_STALE_SECONDS:
            log.warning("breaking a stale registry lock on %s (held since %s)", family, held_since)
            lake.delete(uri)
        elif time.monotonic() > deadline:
            raise PromotionError(f"the registry lock on {family} is held; try again later ({uri})")
        time.sleep(0.2)
    try:
        yield
    finally:
        lake.delete(uri)


# ------------------------------------------------------------------ register


def register(settings: Settings, family: str, run_id: str, decision: dict) -> str:
    """Register the run's model (gate passed or not) and tag it with the gate decision,
    its reasons, the data window and the holdout metrics.

    The tags travel with the version in one request, so no version exists without them,
    and a re-run (a retry after the tracking server went away) returns the version already
    registered for the run rather than adding a second one."""
    import mlflow

    configure_mlflow(settings)
    name = settings.model_name(family)
    run = mlflow.get_run(run_id)
    metrics = {k[len("challenger_"):]: round(v, 6) for k, v in run.data.metrics.items() if k.startswith("challenger_")}
    tags = {
        "gate_passed": str(decision["passed"]).lower(),
        "gate_reasons": json.dumps([f["reason"] for f in decision["failures"]])[:5000],
        "gate_first_model": str(decision.get("first_model", False)).lower(),
        "run_id": run_id,
        "data_window": f"validated data up to {run.data.tags.get('logical_date')}",
        "dataset_uri": run.data.tags.get("dataset_uri", ""),
        "evaluated_against": run.data.tags.get("champion_version_at_evaluation", "none"),
        "metrics": json.dumps(metrics)[:5000],
    }
    candidate = decision.get("candidate") or "transformer"
    tags.update({"candidate": candidate, "model_kind": decision.get("kind") or "transformer"})
    registered = _client().search_model_versions(f"name = '{name}' and tags.run_id = '{run_id}'")
    if registered:
        version = str(min(int(mv.version) for mv in registered))
        log.info("%s version %s was already registered for run %s", name, version, run_id)
        return version
    model_uri = run.data.tags.get(candidate_tag(candidate)) or run.data.tags["model_uri"]
    version = str(mlflow.register_model(model_uri, name, tags={"family": family, **tags}).version)
    log.info("registered %s version %s: candidate %s (%s), gate %s", name, version, candidate, tags["model_kind"],
             "passed" if decision["passed"] else "failed")
    return version


# ------------------------------------------------------------------ approve


def approval_state(settings: Settings, family: str, version: str) -> str | None:
    """'approved', 'rejected', or None while nobody has decided."""
    lake = lake_from_settings(settings)
    uri = zones.approval(lake, family, version)
    return lake.read_json(uri)["decision"] if lake.exists(uri) else None


def approval_for_promotion(settings: Settings, family: str, version: str, gate_passed: bool) -> str:
    """Where the version stands before promotion: 'not_needed' (gate failed: nothing to
    approve), 'auto' (``gate.approval: auto``), or the manual state: 'approved',
    'rejected' or 'waiting'."""
    if not gate_passed:
        return "not_needed"
    if settings.gate.approval == "auto":
        return "auto"
    return approval_state(settings, family, version) or "waiting"


def approve(settings: Settings, family: str, version: str, approved: bool, reason: str, by: str | None = None) -> dict:
    """Record a person's approval (or rejection) of a version for promotion."""
    configure_mlflow(settings)
    name = settings.model_name(family)
    tags = _client().get_model_version(name, version).tags  # raises when the version does not exist
    if not reason.strip():
        raise PromotionError("an approval or rejection needs a reason")
    lake = lake_from_settings(settings)
    decision = "approved" if approved else "rejected"
    event = record_event(lake, family, {"event": decision, "model": name, "version": version,
                                        "run_id": tags.get("run_id"), "by": by or getpass.getuser(), "reason": reason})
    lake.write_json(zones.approval(lake, family, version), {**event, "decision": decision})
    _client().set_model_version_tag(name, version, "approval", f"{decision} by {event['by']}: {reason}"[:5000])
    log.info("%s version %s %s by %s: %s", name, version, decision, event["by"], reason)
    return event


# ------------------------------------------------------------------ promote, rollback


def promote(settings: Settings, family: str, version: str, *, force: bool = False, reason: str = "",
            by: str | None = None) -> bool:
    """Make ``version`` the champion; the former champion becomes ``previous``.

    Refused (returns False, and the refusal is recorded once) when the gate failed, when a
    manual approval is missing, when the version was rolled back, or when the champion
    moved after this version was evaluated. ``force`` (with a ``reason``) overrides the gate and the approval and is
    recorded as forced. The ``champion`` alias moves after ``previous`` and before the
    history event and the ``promoted_at`` tag: a re-run after a promotion cut short (the
    tracking server went away) finishes its record.
    """
    configure_mlflow(settings)
    if force and not reason.strip():
        raise PromotionError("a forced promotion needs a reason")
    name = settings.model_name(family)
    client = _client()
    lake = lake_from_settings(settings)
    who = by or getpass.getuser()
    with registry_lock(lake, family):
        tags = client.get_model_version(name, version).tags
        current = champion_version(settings, family)
        unrecorded = current == version
        if unrecorded:
            if "promoted_at" in tags:
                return True
            current = _alias(name, PREVIOUS)  # set before the alias moved
        evidence = {"model": name, "version": version, "run_id": tags.get("run_id"), "by": who,
                    "gate_passed": tags.get("gate_passed") == "true", "gate_reasons": tags.get("gate_reasons"),
                    "metrics": tags.get("metrics"), "from_version": current}
        refusal = None
        if not force and not unrecorded:
            evaluated_against = tags.get("evaluated_against", "none")
            if tags.get("gate_passed") != "true":
                refusal = f"gate failed: {tags.get('gate_reasons')}"
            elif settings.gate.approval == "manual" and (state := approval_state(settings, family, version)) != "approved":
                refusal = f"waiting for approval (state: {state or 'none'})"
            elif tags.get("rolled_back"):  # a re-run of its DAG run must not undo the rollback
                refusal = f"rolled back ({tags['rolled_back']}); only a forced promotion brings it back"
            elif evaluated_against != (current or "none"):
                refusal = (f"the champion moved from {evaluated_against} to {current} after this version was "
                           "evaluated: it was never compared with the new champion; retrain or re-evaluate")
        if refusal:
            mine = [e for e in history(settings, family) if e.get("version") == version]
            if not (mine and mine[-1]["event"] == "refused" and mine[-1].get("reason") == refusal):
                record_event(lake, family, {"event": "refused", **evidence, "reason": refusal})  # once, not per re-run
            log.info("%s version %s not promoted: %s", name, version, refusal)
            return False
        if not unrecorded:
            if current is not None:
                client.set_registered_model_alias(name, PREVIOUS, current)
            client.set_registered_model_alias(name, CHAMPION, version)
        kind = "forced" if force else ("approved" if settings.gate.approval == "manual" else "gate")
        last = history(settings, family)[-1:] if unrecorded else []
        if last and last[0]["event"] == "promoted" and last[0]["version"] == version:
            event = last[0]  # recorded before the cut
        else:
            event = record_event(lake, family, {"event": "promoted", "kind": kind, **evidence,
                                                "reason": reason or "gate passed"})
        # promoted_at last: with it the record is whole
        for key, value in {"promoted_by": who, "promotion": kind, "promoted_from": current or "none",
                           "promotion_reason": event["reason"], "promoted_at": event["at"]}.items():
            client.set_model_version_tag(name, version, key, value[:5000])
    log.info("%s: champion is now version %s (was %s; %s)", name, version, current or "none", kind)
    return True


def rollback(settings: Settings, family: str, reason: str, by: str | None = None,
             evidence: dict[str, Any] | None = None) -> str:
    """Put the ``previous`` champion back; return its version. The rolled-back version
    is tagged with why, and the event is recorded (with the ``evidence``, when a monitor
    rolled it back)."""
    configure_mlflow(settings)
    if not reason.strip():
        raise PromotionError("a rollback needs a reason")
    name = settings.model_name(family)
    client = _client()
    lake = lake_from_settings(settings)
    who = by or getpass.getuser()
    with registry_lock(lake, family):
        current, previous = champion_version(settings, family), _alias(name, PREVIOUS)
        if previous is None:
            raise PromotionError(f"{name} has no previous champion to roll back to")
        client.set_registered_model_alias(name, CHAMPION, previous)
        # the champion before ``previous`` becomes the new previous, if the history knows one
        earlier = next((e["from_version"] for e in reversed(history(settings, family))
                        if e["event"] == "promoted" and e["version"] == previous
                        and e.get("from_version") and e["from_version"] != current), None)
        if earlier:
            client.set_registered_model_alias(name, PREVIOUS, earlier)
        else:
            client.delete_registered_model_alias(name, PREVIOUS)
        event = record_event(lake, family, {"event": "rolled_back", "model": name, "version": previous,
                                            "from_version": current, "by": who, "reason": reason,
                                            **({"evidence": evidence} if evidence else {})})
        if current is not None:
            client.set_model_version_tag(name, current, "rolled_back", f"{event['at']} by {who}: {reason}"[:5000])
    log.info("%s: rolled back from version %s to %s (%s)", name, current, previous, reason)
    return previous


def load_champion(settings: Settings, family: str):  # noqa: ANN201 - (PyFuncModel, version)
    """Load the current champion as a pyfunc, pinned to its version number. Only a
    registered model name is accepted: never a run, a file or any other URI."""
    name = settings.model_name(family)
    if ":" in name or "/" in name:
        raise ValueError(f"{name!r} is not a registered model name: consumers load only models:/<name>@champion")
    configure_mlflow(settings)
    version = champion_version(settings, family)
    if version is None:
        raise LookupError(f"{name} has no champion yet: run the retrain DAG first")
    return load_version(settings, family, version), version


def load_version(settings: Settings, family: str, version: str):  # noqa: ANN201 - PyFuncModel
    """Load one registered version of the family's model as a pyfunc."""
    import mlflow

    configure_mlflow(settings)
    return mlflow.pyfunc.load_model(f"models:/{settings.model_name(family)}/{version}")
