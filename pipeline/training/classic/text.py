"""TF-IDF + logistic regression as a sentiment candidate: the reference baseline's model
(:func:`pipeline.evaluation.baselines.fit_tfidf_logistic_regression`) fitted on the
training reviews and served with the sentiment model's output (label, score, p_<class>)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from pipeline.datasets import FamilyData
from pipeline.evaluation.baselines.text import fit_tfidf_logistic_regression, predict_labels
from pipeline.training.classic.store import dump_sklearn, load_sklearn, write_json

MODEL_FILE = "tfidf.skops"
SETTINGS_FILE = "tfidf.json"
# types the pipeline holds beyond skops' defaults (scikit-learn estimators, numpy, builtins)
TRUSTED_TYPES: list[str] = []


def fit(data: FamilyData, hp: Any, model_dir: Path, seed: int) -> dict[str, Any]:
    """Fit on ``data.train`` (the logistic regression's solver is deterministic: ``seed`` is
    not needed) and write ``model_dir``; the features chosen for the script of the text."""
    model = fit_tfidf_logistic_regression(data.train)
    features = model.steps[0][1]
    settings = {"analyzer": features.analyzer, "ngram_range": "{}-{}".format(*features.ngram_range)}
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    dump_sklearn(model, model_dir / MODEL_FILE)
    write_json(model_dir / SETTINGS_FILE, {**settings, "classes": [str(c) for c in model.classes_]})
    return settings


class TfidfSentimentModel(mlflow.pyfunc.PythonModel):
    """pyfunc: a frame with a ``text`` column in; label, score and p_<class> out."""

    def load_context(self, context: Any) -> None:
        self.model = load_sklearn(Path(context.artifacts["model_dir"]) / MODEL_FILE, TRUSTED_TYPES)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return predict_labels(self.model, model_input["text"])
