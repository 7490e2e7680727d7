"""Adding a model family is one module plus one record. This file is that module: a
product-category classifier (catalog title -> category) with its split, its question, its
training and its pyfunc; its record reuses the classification baseline, scorer, slicer and
plot. It goes through the same steps as the bundled families, on a real MLflow store and a
real catalog drop, with nothing changed in pipeline/."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
import pytest
from pydantic import BaseModel

from pipeline import families, steps
from pipeline.datasets import FamilyData
from pipeline.demo_data import load_movielens
from pipeline.lake import Lake
from pipeline.training.core import RunOptions, TrainHistory

DAY = date(2026, 10, 1)


class CategoryTraining(BaseModel):
    holdout_fraction: float = 0.25


def build(frames: dict[str, pd.DataFrame], hp: CategoryTraining) -> FamilyData:
    rows = frames["catalog"].sort_values("sku").rename(columns={"title": "text", "category": "label"})
    rows = rows[["sku", "text", "label"]].reset_index(drop=True)
    n_holdout = int(len(rows) * hp.holdout_fraction)
    return FamilyData(rows.iloc[:-n_holdout].reset_index(drop=True), rows.iloc[-n_holdout:].reset_index(drop=True))


def question(data: FamilyData) -> pd.DataFrame:
    return data.holdout[["text"]].reset_index(drop=True)


def fine_tune(data: FamilyData, hp: CategoryTraining, run: RunOptions, model_dir: Path,
              init_dir: Path | None, seed: int) -> TrainHistory:
    """The commonest category of each title word (a model small enough to read)."""
    votes: dict[str, Counter] = {}
    for text, label in zip(data.train["text"], data.train["label"]):
        for word in str(text).lower().split():
            votes.setdefault(word, Counter())[label] += 1
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "words.json").write_text(json.dumps({
        "words": {w: c.most_common(1)[0][0] for w, c in votes.items()},
        "default": data.train["label"].mode()[0],
    }))
    return TrainHistory(epochs=[{"train_loss": 0.0}], steps=1, samples=len(data.train), seconds=0.01)


class CategoryModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        self.table = json.loads((Path(context.artifacts["model_dir"]) / "words.json").read_text())

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        words, default = self.table["words"], self.table["default"]
        labels = [next((words[w] for w in str(t).lower().split() if w in words), default)
                  for t in model_input["text"]]
        return pd.DataFrame({"label": labels})


RECORD = families.Family(
    name="category", model_name="retail-category", feeds=("catalog",),
    model_module=__name__, pyfunc_class="CategoryModel", hyperparameters=f"{__name__}:CategoryTraining",
    warm_start=False, primary_metric="accuracy",
    build=f"{__name__}:build", question=f"{__name__}:question",
    baseline="pipeline.evaluation.baselines:tfidf_logistic_regression",
    score="pipeline.evaluation.scoring:classification_score",
    units="pipeline.evaluation.scoring:classification_units",
    slices="pipeline.evaluation.slices:by_class",
    plot="pipeline.evaluation.plots:confusion_matrix_plot",
)


def test_a_family_added_as_one_module_and_one_record_goes_through_every_step(
    retail_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(families.FAMILIES, "category", RECORD)
    monkeypatch.setenv("RETAIL_TRAINING__CATEGORY__HOLDOUT_FRACTION", "0.2")  # its settings section, read as typed
    _, catalog = load_movielens()
    lake = Lake((retail_env / "lake").as_uri())
    landing = lake.uri("landing", "catalog", DAY.isoformat(), "catalog.csv")
    lake.write_bytes(landing, catalog.to_csv(index=False).encode())
    steps.land("catalog", DAY.isoformat())
    steps.validate("catalog", DAY.isoformat())

    dataset = steps.build_dataset("category", DAY.isoformat())
    assert dataset.endswith("/datasets/category/date=2026-10-01")
    holdout = lake.read_parquet(f"{dataset}/holdout.parquet")
    assert len(holdout) == int(len(catalog) * 0.2)
    assert [e["feed"] for e in lake.read_json(f"{dataset}/lineage.json")] == ["catalog"]

    run_id = steps.evaluate("category", dataset, steps.fine_tune("category", dataset, DAY.isoformat()))
    decision = steps.gate("category", run_id)
    version = steps.register("category", run_id, decision)

    run = mlflow.get_run(run_id)
    assert run.data.tags["family"] == "category" and run.data.tags["warm_start"] == "base"
    # its training code, found outside the pipeline package, is in the run's digest
    from pipeline.tracking import training_code_digest

    assert run.data.tags["training_code"] == training_code_digest("category")
    for role in ("challenger", "baseline"):
        assert 0.0 < run.data.metrics[f"{role}_accuracy"] <= 1.0
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "plots")}
    assert "plots/confusion_matrix.png" in artifacts
    assert decision["primary_metric"] == "accuracy"
    registered = mlflow.MlflowClient().get_model_version("retail-category", version)
    assert registered.tags["gate_passed"] == str(decision["passed"]).lower()
    # the registered model answers the family's question
    answer = mlflow.pyfunc.load_model(f"models:/retail-category/{version}").predict(holdout[["text"]])
    assert len(answer) == len(holdout) and answer["label"].isin(catalog["category"]).all()
