"""MLflow connection: tracking and registry URIs, HTTP retries and the experiment, from settings."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

from pipeline.settings import PROJECT_ROOT, Settings, mask_uri_passwords


def mlflow_key(name: str) -> str:
    """``name`` as an MLflow param or metric key, which allow only letters, digits and
    ``_-. :/`` ("recall_*" becomes "recall__", a class "Children's" "Children_s")."""
    return re.sub(r"[^\w\-. :/]", "_", name)


def configure_mlflow(settings: Settings) -> str:
    """Point MLflow at the configured store; create the experiment once. Returns its id."""
    import mlflow

    export_http_settings(settings)
    if settings.mlflow_tracking_uri.startswith("sqlite:///"):
        Path(settings.mlflow_tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    experiment = mlflow.get_experiment_by_name(settings.experiment_name)
    if experiment is None:
        try:
            # empty: the tracking server chooses (mlflow-artifacts:/ when it serves artifacts)
            mlflow.create_experiment(settings.experiment_name, artifact_location=settings.mlflow_artifact_uri or None)
        except mlflow.exceptions.MlflowException:  # created meanwhile by a parallel task
            pass
        experiment = mlflow.get_experiment_by_name(settings.experiment_name)
    mlflow.set_experiment(experiment_id=experiment.experiment_id)
    return experiment.experiment_id


# MLflow's client reads these on every request and retries (with exponential backoff)
# refused connections, timeouts and 429/5xx answers; see mlflow.utils.request_utils
HTTP_ENV = {"max_retries": "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
            "backoff_factor": "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
            "timeout_seconds": "MLFLOW_HTTP_REQUEST_TIMEOUT"}


def export_http_settings(settings: Settings) -> None:
    """Hand ``settings.mlflow_http`` to MLflow's client (those left None keep MLflow's value)."""
    for field, variable in HTTP_ENV.items():
        value = getattr(settings.mlflow_http, field)
        if value is not None:
            os.environ[variable] = str(value)


class TrackingServerUnavailable(RuntimeError):
    """The MLflow tracking server did not answer, even after MLflow's retries."""


@contextlib.contextmanager
def naming_the_tracking_server(settings: Settings) -> Iterator[None]:
    """Turn a network failure that outlived MLflow's retries into one error naming the
    server and the retry settings (MLflow's own message names only the endpoint)."""
    try:
        yield
    except Exception as exc:
        from mlflow.exceptions import MlflowException
        from requests import RequestException

        if not isinstance(exc, MlflowException) or not any(isinstance(e, RequestException) for e in _causes(exc)):
            raise
        retries = {field: os.environ.get(variable, "MLflow's default") for field, variable in HTTP_ENV.items()}
        raise TrackingServerUnavailable(mask_uri_passwords(
            f"the MLflow tracking server {settings.mlflow_tracking_uri} could not be reached "
            f"(retries: {retries}; raise them with RETAIL_MLFLOW_HTTP__MAX_RETRIES / __BACKOFF_FACTOR / "
            f"__TIMEOUT_SECONDS): {exc}")) from exc


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def code_version() -> str:
    """The git commit of the project, or 'unknown' outside a checkout."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# packages whose upgrade changes what the same code and data train
TRAINING_PACKAGES = ("torch", "transformers", "tokenizers", "scikit-learn", "numpy", "pandas", "scipy", "skops")


def _pipeline_imports(module: str) -> set[str]:
    """The ``pipeline`` modules that ``module``'s source imports (at any depth in the file)."""
    import ast

    path = _source(module)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith("pipeline.") and _source(name) is not None:
                found.add(name)
    return found


def _source(module: str) -> Path | None:
    """The source file of a module of this project, or of a family's module elsewhere (a
    plugin, a test); None for a name that is not a module (``pipeline.lake.Lake``)."""
    import importlib.util

    path = PROJECT_ROOT / Path(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    if not module.startswith("pipeline."):
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            return Path(spec.origin)
    return None


def training_code_digest(family: str) -> str:
    """A digest of the code that trains ``family``: the source of its model, candidate and
    dataset modules and of every ``pipeline`` module they import, transitively, plus the versions of
    the packages that train it. Settings are left out (their values have their own digest,
    :meth:`Settings.training_digest`), and so is everything that only evaluates, serves or
    schedules. A change of any of these retrains the family over unchanged data."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    from pipeline.families import get_family

    record = get_family(family)
    # the transformer, every other candidate and the splits they are trained and validated on
    named = (record.build, record.validation, *(f for c in record.candidates for f in (c.fit, c.pyfunc_class)))
    todo = [record.model_module, *dict.fromkeys(name.partition(":")[0] for name in named if name)]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen or module == "pipeline.settings":
            continue
        seen.add(module)
        todo += sorted(_pipeline_imports(module) - seen)
    digest = hashlib.sha256()
    for module in sorted(seen):
        digest.update(module.encode() + b"\0" + _source(module).read_bytes())
    for package in TRAINING_PACKAGES:
        try:
            digest.update(f"{package}=={version(package)}".encode())
        except PackageNotFoundError:
            digest.update(f"{package} missing".encode())
    return digest.hexdigest()[:16]


def run_address(settings: Settings, experiment_id: str, run_id: str) -> str:
    """Where a person opens the run: the server's page, or how to start the local UI."""
    path = f"#/experiments/{experiment_id}/runs/{run_id}"
    if settings.mlflow_tracking_uri.startswith(("http://", "https://")):
        return f"{settings.mlflow_tracking_uri.rstrip('/')}/{path}"
    return f"run {run_id} in {settings.mlflow_tracking_uri} (`make mlflow-ui`, then http://localhost:5000/{path})"
