"""MLflow connection: tracking and registry URIs and the experiment, from settings."""

from __future__ import annotations

import subprocess

from pipeline.settings import PROJECT_ROOT, Settings


def configure_mlflow(settings: Settings) -> str:
    """Point MLflow at the configured store; create the experiment once. Returns its id."""
    import mlflow

    if settings.mlflow_tracking_uri.startswith("sqlite:///"):
        from pathlib import Path

        Path(settings.mlflow_tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    experiment = mlflow.get_experiment_by_name(settings.experiment_name)
    if experiment is None:
        try:
            mlflow.create_experiment(settings.experiment_name, artifact_location=settings.mlflow_artifact_uri)
        except mlflow.exceptions.MlflowException:  # created meanwhile by a parallel task
            pass
        experiment = mlflow.get_experiment_by_name(settings.experiment_name)
    mlflow.set_experiment(experiment_id=experiment.experiment_id)
    return experiment.experiment_id


def code_version() -> str:
    """The git commit of the project, or 'unknown' outside a checkout."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_address(settings: Settings, experiment_id: str, run_id: str) -> str:
    """Where a person opens the run: the server's page, or how to start the local UI."""
    path = f"#/experiments/{experiment_id}/runs/{run_id}"
    if settings.mlflow_tracking_uri.startswith(("http://", "https://")):
        return f"{settings.mlflow_tracking_uri.rstrip('/')}/{path}"
    return f"run {run_id} in {settings.mlflow_tracking_uri} (`make mlflow-ui`, then http://localhost:5000/{path})"
