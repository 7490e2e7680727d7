"""EASE and item-kNN as recommender candidates: the reference baselines' item-item models
(:mod:`pipeline.evaluation.baselines`), their setting chosen on a validation split carved
from ``data.train`` as the baselines choose it, refitted on all of it, and served with the
recommender's output (customer_id, rank, sku, score; ``params["top_k"]``).

A model folder holds ``items.json`` (the items, most interacted first, their counts and
the setting chosen) and the item x item weights as ``weights.npz``: a dense array
(``numpy.savez``, EASE) or a sparse matrix (``scipy.sparse.save_npz``, item-kNN); neither
is read with pickle."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import mlflow.pyfunc
import numpy as np
import pandas as pd
from scipy import sparse

from pipeline.datasets import FamilyData
from pipeline.evaluation.baselines.ranking import (EASE_DEFAULT_LAMBDA, EASE_LAMBDAS, EASE_MAX_ITEMS, KNN_DEFAULT_NEIGHBOURS,
                                                   KNN_NEIGHBOURS, AskedCustomers, Fitter, ItemModel, ease_fitter,
                                                   fit_on_validation, knn_fitter)
from pipeline.training.classic.store import read_json, write_json

ITEMS_FILE = "items.json"
WEIGHTS_FILE = "weights.npz"


def fit_ease(data: FamilyData, hp: Any, model_dir: Path, seed: int) -> dict[str, Any]:
    """EASE, lambda chosen on validation (closed form: ``seed`` is not needed)."""
    return _fit(data, hp, Path(model_dir), "lambda", EASE_LAMBDAS, EASE_DEFAULT_LAMBDA, ease_fitter(EASE_MAX_ITEMS))


def fit_item_knn(data: FamilyData, hp: Any, model_dir: Path, seed: int) -> dict[str, Any]:
    """Item-kNN, the number of neighbours chosen on validation (no randomness)."""
    return _fit(data, hp, Path(model_dir), "neighbours", KNN_NEIGHBOURS, KNN_DEFAULT_NEIGHBOURS, knn_fitter())


def _fit(data: FamilyData, hp: Any, model_dir: Path, setting: str, candidates: Sequence[float], default: float,
         fitter: Fitter) -> dict[str, Any]:
    model, chosen = fit_on_validation(data, hp, setting, candidates, default, fitter)
    save_item_model(model, model_dir, {"top_k": hp.top_k, setting: chosen[setting]})
    return {setting: chosen[setting]}


def save_item_model(model: ItemModel, model_dir: Path, config: dict[str, Any]) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    items = {"skus": [str(s) for s in model.skus], "counts": [float(c) for c in model.counts], **config}
    write_json(model_dir / ITEMS_FILE, items)
    if sparse.issparse(model.weights):
        sparse.save_npz(model_dir / WEIGHTS_FILE, sparse.csr_matrix(model.weights))
    else:
        np.savez(model_dir / WEIGHTS_FILE, weights=np.asarray(model.weights))


def load_item_model(model_dir: Path) -> tuple[ItemModel, dict[str, Any]]:
    """The model in ``model_dir`` and its config (top_k, the chosen setting)."""
    items = read_json(model_dir / ITEMS_FILE)
    with np.load(model_dir / WEIGHTS_FILE) as arrays:  # allow_pickle stays False
        dense = "weights" in arrays.files
        weights = arrays["weights"] if dense else None
    if not dense:
        weights = sparse.load_npz(model_dir / WEIGHTS_FILE).tocsr()
    skus = np.asarray(items.pop("skus"), dtype=object)
    counts = np.asarray(items.pop("counts"), dtype=np.float64)
    return ItemModel(skus, counts, weights), items


class ItemModelPyfunc(mlflow.pyfunc.PythonModel):
    """Top-k unseen items per customer by an item-item model's scores of their history;
    the most popular items for a customer with no known item."""

    def load_context(self, context: Any) -> None:
        self.model, config = load_item_model(Path(context.artifacts["model_dir"]))
        self.top_k = int(config["top_k"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        top_k = int((params or {}).get("top_k") or self.top_k)
        question = model_input[["customer_id", "sku", "timestamp"]]
        return self.model.rank(AskedCustomers.of(question, self.model.skus), top_k)


class EaseModel(ItemModelPyfunc):
    """EASE (Steck 2019), written by :func:`fit_ease`."""


class ItemKnnModel(ItemModelPyfunc):
    """Item-kNN (Deshpande and Karypis 2004), written by :func:`fit_item_knn`."""
