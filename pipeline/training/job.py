"""One training run: fine-tune a family's model and log everything to MLflow."""

from __future__ import annotations

import importlib
import logging
import tempfile
from datetime import date
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import pandas as pd

from pipeline.datasets import FamilyData, load_dataset
from pipeline.lake import lake_from_settings
from pipeline.registry import champion_version
from pipeline.assets import FAMILIES
from pipeline.settings import PROJECT_ROOT, Settings
from pipeline.tracking import code_version, configure_mlflow, run_address

log = logging.getLogger(__name__)

PYFUNC_CLASS = {"sentiment": "SentimentModel", "forecaster": "ForecasterModel", "recommender": "RecommenderModel"}
# families that continue from the current champion's weights rather than the base model
WARM_START = {"forecaster"}
RUNTIME_PACKAGES = ("torch", "transformers", "pandas", "numpy", "scikit-learn", "safetensors", "tokenizers")


def family_module(family: str) -> ModuleType:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")
    return importlib.import_module(f"pipeline.training.{family}")


def input_example(family: str, data: FamilyData, settings: Settings) -> pd.DataFrame | tuple[pd.DataFrame, dict]:
    """A small but complete question for the model: whole series / whole histories.

    The recommender's example carries its ``top_k`` parameter so the signature declares it
    (MLflow passes only declared params through to ``predict``)."""
    frame = family_module(family).model_input(data)
    key = {"forecaster": ["store_id", "sku"], "recommender": ["customer_id"]}.get(family)
    if key is None:
        return frame.head(3)
    first = frame[key].drop_duplicates().head(2)
    example = frame.merge(first, on=key).reset_index(drop=True)
    # an integer column in the signature would refuse a later input with a missing value
    example = example.astype({c: "float64" for c in example.select_dtypes("integer").columns})
    if family == "recommender":
        return example, {"top_k": settings.training.recommender.top_k}
    return example


def champion_model_dir(settings: Settings, family: str, into: Path) -> Path | None:
    """Download the champion's model folder (for a warm start), or None without a champion."""
    import mlflow

    if champion_version(settings, family) is None:
        return None
    local = Path(mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{settings.model_name(family)}@champion", dst_path=str(into)))
    found = next(local.rglob("model_dir"), None)
    if found is None:
        raise RuntimeError(f"champion of {family} has no model_dir artifact under {local}")
    return found


def train_model(settings: Settings, family: str, dataset_uri: str, day: date) -> str:
    """Fine-tune ``family`` on the dataset at ``dataset_uri``; return the MLflow run id."""
    import mlflow

    from pipeline.training.core import select_device

    module = family_module(family)
    configure_mlflow(settings)
    data = load_dataset(lake_from_settings(settings), dataset_uri)
    hp = getattr(settings.training, family)
    device = select_device(settings.device)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name=f"{family}-{day}") as run:
        mlflow.set_tags({
            "family": family, "logical_date": day.isoformat(), "code_version": code_version(),
            "dataset_uri": dataset_uri, "device": str(device),
        })
        mlflow.log_params({k: str(v)[:500] for k, v in settings.redacted().items()})
        mlflow.log_metrics({"train_rows": len(data.train), "holdout_rows": len(data.holdout)})
        init_dir = champion_model_dir(settings, family, Path(tmp) / "champion") if family in WARM_START else None
        mlflow.set_tag("warm_start", "champion" if init_dir else "base")
        log.info("MLflow run: %s", run_address(settings, run.info.experiment_id, run.info.run_id))
        model_dir = Path(tmp) / "model_dir"
        history = module.fine_tune(data, hp, device, model_dir, init_dir, settings.training.seed)
        for epoch, stats in enumerate(history.epochs):
            mlflow.log_metrics(stats, step=epoch + 1)
        mlflow.log_metrics({"train_seconds": history.seconds, "train_steps": history.steps,
                            "train_samples_per_second": history.samples_per_second})
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=getattr(module, PYFUNC_CLASS[family])(),
            artifacts={"model_dir": str(model_dir)},
            input_example=input_example(family, data, settings),
            code_paths=[str(PROJECT_ROOT / "pipeline")],
            pip_requirements=[f"{p}=={version(p)}" for p in RUNTIME_PACKAGES] + [f"mlflow=={version('mlflow')}"],
        )
        mlflow.set_tag("model_uri", info.model_uri)
        log.info("%s trained in %.0f s (%d steps), model %s", family, history.seconds, history.steps, info.model_uri)
        return run.info.run_id
