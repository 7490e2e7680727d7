"""One training run: fine-tune a family's model and log everything to MLflow."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import tempfile
import time
import warnings
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pipeline import zones
from pipeline.datasets import FamilyData, load_dataset, load_lineage
from pipeline.families import Candidate, Family, candidate_tag, get_family
from pipeline.lake import lake_from_settings
from pipeline.registry import champion_version, version_kind
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.tracking import code_version, configure_mlflow, mlflow_key, run_address, training_code_digest
from pipeline.training.core import Checkpointer, RunOptions, TrainHistory
from pipeline.training.launch import launch, process_count, train_in_process

log = logging.getLogger(__name__)

RUNTIME_PACKAGES = ("torch", "transformers", "pandas", "numpy", "scipy", "scikit-learn", "skops", "safetensors",
                    "tokenizers")


def input_example(family: Family, data: FamilyData, hp: Any) -> pd.DataFrame | tuple[pd.DataFrame, dict]:
    """A small but complete question for the model: whole series / whole histories (two of
    them, by the family's ``example_key``), or the first rows.

    The family's serving parameters ride along so the signature declares them (MLflow
    passes only declared params through to ``predict``)."""
    asked = family.function("windows")(data, hp)[0] if family.windows else data  # one origin's question
    frame = family.function("question")(asked)
    if not family.example_key:
        return frame.head(3)
    key = list(family.example_key)
    first = frame[key].drop_duplicates().head(2)
    example = frame.merge(first, on=key).reset_index(drop=True)
    # an integer column in the signature would refuse a later input with a missing value
    example = example.astype({c: "float64" for c in example.select_dtypes("integer").columns})
    if family.serving_params:
        return example, {name: getattr(hp, name) for name in family.serving_params}
    return example


def champion_model_dir(settings: Settings, family: str, into: Path) -> Path | None:
    """The champion's model folder (for a warm start), or None without a champion or when the
    champion is not a transformer (a classic model or a blend has no weights to start from)."""
    champion = champion_version(settings, family)
    if champion is None:
        return None
    kind = version_kind(settings, family, champion)
    if kind != "transformer":
        log.info("%s champion v%s is a %s model: the transformer starts from its base model", family, champion, kind)
        return None
    return logged_model_dir(f"models:/{settings.model_name(family)}/{champion}", into)


def dataset_digest(data: FamilyData) -> str:
    """A digest of what the model learns from and is judged on (train, holdout, catalog
    and plan: columns, types and every value): a dataset rebuilt from the same validated
    partitions has the same digest, one rebuilt from changed data another."""
    digest = hashlib.sha256()
    for name, frame in (("train", data.train), ("holdout", data.holdout), ("catalog", data.catalog),
                        ("plan", data.plan)):
        if frame is None:
            continue
        digest.update(json.dumps([name, list(map(str, frame.columns)), list(map(str, frame.dtypes))]).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def resume_key(family: str, data: FamilyData, settings: Settings, precision: str, processes: int) -> str:
    """Identifies one training job by what makes its model: the family, the dataset's
    content, the training settings, the training code (with its package versions), the
    precision it computes in (``fp32`` or ``bf16``, as resolved on its device) and its
    number of data-parallel processes (their reductions sum in another order). A retry finds
    the run that did not finish by it; a re-run (or a later date) over the same data with
    the same settings, code and precision finds the run that already logged the model, and
    after an upgrade of the code, or on a bf16 GPU after an fp32 CPU run, the same data
    trains a new one. Not in it: the date (the same data gives the same model) and the
    champion a warm start begins from (else a backfill replaying old dates would train new
    versions of unchanged data)."""
    return (f"{family}|data={dataset_digest(data)}|settings={settings.training_digest(family)}"
            f"|code={training_code_digest(family)}|precision={precision}|processes={processes}")


def _job_runs(settings: Settings, key: str, status: str, order: str, max_results: int) -> list:
    import mlflow

    experiment = mlflow.get_experiment_by_name(settings.experiment_name)
    if experiment is None:
        return []
    return mlflow.search_runs(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"tags.resume_key = '{key}' and attributes.status {status}",
        order_by=[f"attributes.start_time {order}"], max_results=max_results, output_format="list",
    )


def unfinished_run(settings: Settings, key: str) -> str | None:
    """The latest run of this training job that did not finish (killed or failed), if any."""
    runs = _job_runs(settings, key, "!= 'FINISHED'", "DESC", 1)
    return runs[0].info.run_id if runs else None


def finished_run(settings: Settings, key: str) -> str | None:
    """The first run of this training job that finished with every candidate logged, if any."""
    runs = _job_runs(settings, key, "= 'FINISHED'", "ASC", 100)
    return next((run.info.run_id for run in runs if "candidates" in run.data.tags), None)


def checkpointer(settings: Settings, artifact_uri: str, run_id: str) -> Checkpointer:
    """The checkpoint lives in the run's artifact location when the lake code can write
    there (file:// or s3://); otherwise (an MLflow-served artifact store) in the lake."""
    from pipeline.lake import lake_at

    if artifact_uri.startswith(("file:", "s3:")):
        return Checkpointer(lake_at(settings, artifact_uri), f"{artifact_uri}/checkpoints/checkpoint.pt")
    lake = lake_from_settings(settings)
    return Checkpointer(lake, zones.checkpoint(lake, run_id))


def hardware_tags(device: torch.device) -> dict[str, str]:
    tags = {"hardware.cpu_count": str(os.cpu_count()), "hardware.platform": platform.platform(),
            "hardware.torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        tags["hardware.gpu"] = torch.cuda.get_device_name(device)
    return tags


def log_lineage(lineage: list[dict]) -> None:
    """Each validated partition the dataset read, as an MLflow dataset input: its URI as
    source, and a digest of the sha256 of the raw files it was published from."""
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    for entry in lineage:
        digest = hashlib.sha256("".join(sorted(entry["files"].values())).encode()).hexdigest()[:16]
        with warnings.catch_warnings():  # "file" and "" schemes both resolve to the local source
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(entry["uri"])
        name = f"{entry['feed']}/{zones.partition(date.fromisoformat(entry['logical_date']))}"
        dataset = MetaDataset(source=source, name=name, digest=digest)
        mlflow.log_input(dataset, context="training", tags={"rows": str(entry["rows"]),
                                                            "raw_sha256": json.dumps(entry["files"])[:5000]})


def train_model(settings: Settings, family: str, dataset_uri: str, day: date) -> str:
    """Train every candidate of ``family`` (the fine-tuned transformer, its classic models and
    the blend: :class:`pipeline.families.Candidate`) on the dataset at ``dataset_uri``, each
    logged as a model of one MLflow run (tag ``candidate.<name>.model_uri``); return the run id.

    A retry of the same job (same family, dataset content and training settings: see
    :func:`resume_key`) continues the run that did not finish, from its last checkpoint;
    when a run of the job already finished with its model logged, that run is returned
    without training again, so evaluation, registration and promotion act on the same
    run (and model version)."""
    import mlflow

    from pipeline.training.core import select_device

    record = get_family(family)
    configure_mlflow(settings)
    lake = lake_from_settings(settings)
    data = load_dataset(lake, dataset_uri)
    hp = settings.hyperparameters(family)
    device = select_device(settings.device)
    processes = process_count(settings.training.processes, device)
    precision = "bf16" if RunOptions(device, settings.precision).autocast_dtype is not None else "fp32"
    key = resume_key(family, data, settings, precision, processes)
    done = finished_run(settings, key)
    if done:
        log.info("%s for %s: MLflow run %s already trained this model on the same data with the same settings "
                 "(resume_key %s); reusing it, not training again", family, day, done, key)
        return done
    previous = unfinished_run(settings, key)
    with tempfile.TemporaryDirectory() as tmp, \
            mlflow.start_run(run_id=previous, run_name=None if previous else f"{family}-{day}") as run:
        mlflow.set_tags({
            "family": family, "logical_date": day.isoformat(), "code_version": code_version(),
            "training_code": training_code_digest(family), "settings_digest": settings.training_digest(family),
            "dataset_uri": dataset_uri, "resume_key": key, "precision": settings.precision,
            "training_processes": str(processes), **hardware_tags(device),
        })
        if previous:
            log.info("continuing MLflow run %s of this job (it did not finish)", previous)
        else:
            mlflow.log_params({mlflow_key(k): str(v)[:500] for k, v in settings.redacted().items()})
            log_lineage(load_lineage(lake, dataset_uri))
        mlflow.log_metrics({"train_rows": len(data.train), "holdout_rows": len(data.holdout)})
        log.info("MLflow run: %s", run_address(settings, run.info.experiment_id, run.info.run_id))
        logged = mlflow.get_run(run.info.run_id).data.tags  # what a run that did not finish already logged
        folders: dict[str, Path] = {}
        example = input_example(record, data, hp)  # every candidate answers the same question
        for candidate in record.candidates:
            uri = logged.get(candidate_tag(candidate.name))
            if uri:  # logged before the run was interrupted: its folder, for a blend that needs it
                log.info("%s candidate %s was logged before (%s); not training it again", family, candidate.name, uri)
                folders[candidate.name] = logged_model_dir(uri, Path(tmp) / "logged" / candidate.name)
                continue
            folder = Path(tmp) / candidate.name / "model_dir"
            started = time.perf_counter()
            if candidate.kind == "transformer":
                params = _fine_tune(settings, record, data, dataset_uri, device, processes, run, folder, Path(tmp))
            else:
                params = _fit_candidate(record, candidate, data, hp, folder, settings.training.seed, folders)
            seconds = time.perf_counter() - started
            mlflow.log_params({mlflow_key(f"candidates/{candidate.name}/{k}"): str(v)[:500] for k, v in params.items()})
            mlflow.log_metric(mlflow_key(f"candidates/{candidate.name}/train_seconds"), seconds)
            info = mlflow.pyfunc.log_model(
                name="model" if candidate.kind == "transformer" else candidate.name,
                python_model=record.pyfunc(candidate.name),
                artifacts={"model_dir": str(folder)},
                input_example=example,
                code_paths=[str(PROJECT_ROOT / "pipeline")],
                pip_requirements=[f"{p}=={version(p)}" for p in RUNTIME_PACKAGES] + [f"mlflow=={version('mlflow')}"],
            )
            mlflow.set_tags({candidate_tag(candidate.name): info.model_uri, f"candidate.{candidate.name}.kind": candidate.kind})
            if candidate.kind == "transformer":
                mlflow.set_tag("model_uri", info.model_uri)
            folders[candidate.name] = folder
            log.info("%s candidate %s (%s) trained in %.0f s, model %s", family, candidate.name, candidate.kind,
                     seconds, info.model_uri)
        mlflow.set_tag("candidates", ",".join(folders))
        return run.info.run_id


def logged_model_dir(model_uri: str, into: Path) -> Path:
    """The ``model_dir`` artifact of a logged or registered model, downloaded under ``into``."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(into)))
    found = next(local.rglob("model_dir"), None)
    if found is None:
        raise RuntimeError(f"model {model_uri} has no model_dir artifact under {local}")
    return found


def _fit_candidate(record: Family, candidate: Candidate, data: FamilyData, hp: Any, folder: Path, seed: int,
                   folders: dict[str, Path]) -> dict[str, Any]:
    """Train a classic candidate, or fit a blend of the candidates already trained."""
    fit = record.function_named(candidate.fit)
    if candidate.kind == "blend":
        return fit(data, hp, folder, seed, {name: folders[name] for name in candidate.parts})
    return fit(data, hp, folder, seed)


def _fine_tune(settings: Settings, record: Family, data: FamilyData, dataset_uri: str,
               device: torch.device, processes: int, run: Any, model_dir: Path, tmp: Path) -> dict[str, Any]:
    """Fine-tune the transformer into ``model_dir`` (resuming from the run's checkpoint) and log
    its training curves; return the parameters to log with it."""
    import matplotlib.pyplot as plt
    import mlflow

    from pipeline.evaluation.plots import training_curves

    family = record.name
    init_dir = champion_model_dir(settings, family, tmp / "champion") if record.warm_start else None
    mlflow.set_tag("warm_start", "champion" if init_dir else "base")
    checkpoint = checkpointer(settings, run.info.artifact_uri, run.info.run_id)
    if processes > 1:
        history = TrainHistory(**launch({
            "family": family, "dataset_uri": dataset_uri, "model_dir": str(model_dir),
            "init_dir": str(init_dir) if init_dir else None, "seed": settings.training.seed,
            "checkpoint": [checkpoint.lake.root, checkpoint.uri]}, processes, device))
    else:
        history = train_in_process(settings, family, data, device, checkpoint, model_dir, init_dir,
                                   settings.training.seed)
    for epoch, stats in enumerate(history.epochs):
        mlflow.log_metrics(stats, step=epoch + 1)
    mlflow.log_metrics({"train_seconds": history.seconds, "train_steps": history.steps,
                        "train_samples_per_second": history.samples_per_second,
                        "resumed_at_step": history.resumed_at_step})
    if history.epochs:
        figure = training_curves(history.epochs, f"{family}: loss per epoch")
        mlflow.log_figure(figure, "plots/training_curves.png")
        plt.close(figure)
    checkpoint.lake.delete(checkpoint.uri)  # the model is trained: nothing left to resume
    log.info("%s transformer trained in %.0f s (%d steps)", family, history.seconds, history.steps)
    return {"warm_start": "champion" if init_dir else "base"}
