"""Metrics per slice of the holdout, for the gate's slice rules.

Each slicer is ``slicer(predictions, data, hp) -> {dimension: {slice value: {"metric":
value, "n": holdout rows}}}``:
- :func:`by_class`, dimension ``class``: the recall of each true class;
- :func:`by_store`, dimension ``store``: the WAPE of each store's holdout periods (and its
  other forecast metrics beside it);
- :func:`by_category`, dimension ``category``: hit rate at ``hp.top_k`` of the customers
  whose held-out item is in that catalog category.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipeline.datasets import FamilyData
from pipeline.evaluation.scoring import forecast_table, join_forecast, series_scales

SliceTable = dict[str, dict[str, dict[str, float]]]


def _table(values: pd.Series, sizes: pd.Series) -> dict[str, dict[str, float]]:
    return {str(k): {"metric": float(values[k]), "n": int(sizes[k])} for k in values.index}


def by_class(predictions: pd.DataFrame, data: FamilyData, hp: Any = None) -> SliceTable:
    truth = data.holdout["label"].astype(str).to_numpy()
    frame = pd.DataFrame({"label": truth, "hit": truth == predictions["label"].astype(str).to_numpy()})
    grouped = frame.groupby("label")["hit"]
    return {"class": _table(grouped.mean(), grouped.size())}


def by_store(predictions: pd.DataFrame, data: FamilyData, hp: Any) -> SliceTable:
    """Each store's WAPE (``metric``), with its MASE, bias, coverage and exceed share."""
    joined = join_forecast(predictions, data)
    scales = series_scales(data, hp)
    table = {}
    for store, rows in joined.groupby("store_id", sort=True):
        metrics = forecast_table(rows, scales, 1 - hp.service_level)
        table[str(store)] = {"metric": metrics["wape"], "n": len(rows),
                             **{k: metrics[k] for k in ("mase", "bias", "coverage_80", "exceed_share")}}
    return {"store": table}


def by_category(predictions: pd.DataFrame, data: FamilyData, hp: Any) -> SliceTable:
    holdout = data.holdout
    top = predictions[predictions["rank"] <= hp.top_k]
    lists = {str(c): set(g.astype(str)) for c, g in top.groupby("customer_id")["sku"]}
    frame = holdout.assign(customer_id=holdout["customer_id"].astype(str), sku=holdout["sku"].astype(str))
    frame["hit"] = [s in lists.get(c, ()) for c, s in zip(frame["customer_id"], frame["sku"])]
    category = {}
    if data.catalog is not None and "category" in data.catalog:
        category = dict(zip(data.catalog["sku"].astype(str), data.catalog["category"].fillna("unknown").astype(str)))
    frame["category"] = frame["sku"].map(category).fillna("unknown")
    grouped = frame.groupby("category")["hit"]
    return {"category": _table(grouped.mean().astype(np.float64), grouped.size())}
