"""The MLflow model registry: register every challenger, move the ``champion`` alias."""

from __future__ import annotations

import json
import logging

from pipeline.settings import Settings
from pipeline.tracking import configure_mlflow

log = logging.getLogger(__name__)
CHAMPION = "champion"
PREVIOUS = "previous"


def _client():  # noqa: ANN202 - MlflowClient, imported lazily
    from mlflow import MlflowClient

    return MlflowClient()


def champion_version(settings: Settings, family: str) -> str | None:
    """The version behind the ``champion`` alias, or None before the first promotion."""
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_model_version_by_alias(settings.model_name(family), CHAMPION).version
    except MlflowException:
        return None


def register(settings: Settings, family: str, run_id: str, decision: dict) -> str:
    """Register the run's model (gate passed or not) and tag it with the gate decision."""
    import mlflow

    configure_mlflow(settings)
    name = settings.model_name(family)
    model_uri = mlflow.get_run(run_id).data.tags["model_uri"]
    version = mlflow.register_model(model_uri, name, tags={"family": family}).version
    client = _client()
    client.set_model_version_tag(name, version, "gate_passed", str(decision["passed"]).lower())
    reasons = [f["reason"] for f in decision["failures"]]
    client.set_model_version_tag(name, version, "gate_reasons", json.dumps(reasons)[:5000])
    client.set_model_version_tag(name, version, "run_id", run_id)
    log.info("registered %s version %s (gate %s)", name, version, "passed" if decision["passed"] else "failed")
    return version


def promote(settings: Settings, family: str, version: str) -> bool:
    """Make ``version`` the champion if its gate passed; the former champion becomes ``previous``.

    Returns whether the alias moved.
    """
    configure_mlflow(settings)
    name = settings.model_name(family)
    client = _client()
    tags = client.get_model_version(name, version).tags
    if tags.get("gate_passed") != "true":
        log.info("%s version %s not promoted: gate failed %s", name, version, tags.get("gate_reasons"))
        return False
    former = champion_version(settings, family)
    if former == version:
        return True
    if former is not None:
        client.set_registered_model_alias(name, PREVIOUS, former)
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "promoted_from", former or "none")
    log.info("%s: champion is now version %s (was %s)", name, version, former or "none")
    return True


def load_champion(settings: Settings, family: str):  # noqa: ANN201 - (PyFuncModel, version)
    """Load the current champion as a pyfunc, pinned to its version number."""
    import mlflow

    configure_mlflow(settings)
    version = champion_version(settings, family)
    if version is None:
        raise LookupError(f"{settings.model_name(family)} has no champion yet: run the retrain DAG first")
    return mlflow.pyfunc.load_model(f"models:/{settings.model_name(family)}/{version}"), version
