"""Metrics per slice of the holdout, for the gate's slice rules.

``slice_metrics(family, predictions, data)`` returns dimension -> slice value ->
``{"metric": value, "n": holdout rows}``:
- sentiment, ``class``: the recall of each true class;
- forecaster, ``store``: the WAPE of each store's holdout periods;
- recommender, ``category``: hit rate at K of the customers whose held-out item is in
  that catalog category.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.datasets import FamilyData

SliceTable = dict[str, dict[str, dict[str, float]]]


def _table(values: pd.Series, sizes: pd.Series) -> dict[str, dict[str, float]]:
    return {str(k): {"metric": float(values[k]), "n": int(sizes[k])} for k in values.index}


def slice_metrics(family: str, predictions: pd.DataFrame, data: FamilyData, top_k: int = 10) -> SliceTable:
    holdout = data.holdout
    if family == "sentiment":
        frame = pd.DataFrame({"label": holdout["label"].astype(str).to_numpy(),
                              "hit": holdout["label"].astype(str).to_numpy() == predictions["label"].astype(str).to_numpy()})
        grouped = frame.groupby("label")["hit"]
        return {"class": _table(grouped.mean(), grouped.size())}
    if family == "forecaster":
        keys = ["store_id", "sku", "date"]
        actual = holdout[keys + ["units"]].assign(date=lambda f: pd.to_datetime(f["date"]).astype("datetime64[ns]"))
        preds = predictions[keys + ["forecast"]].assign(date=lambda f: pd.to_datetime(f["date"]).astype("datetime64[ns]"))
        for frame in (actual, preds):
            frame["store_id"], frame["sku"] = frame["store_id"].astype(str), frame["sku"].astype(str)
        joined = actual.merge(preds, on=keys, how="left")
        joined["abs_error"] = (joined["forecast"] - joined["units"]).abs()
        sums = joined.groupby("store_id")[["abs_error", "units"]].sum()
        wape = sums["abs_error"] / sums["units"].clip(lower=1e-9)
        return {"store": _table(wape, joined.groupby("store_id").size())}
    if family == "recommender":
        top = predictions[predictions["rank"] <= top_k]
        lists = {str(c): set(g.astype(str)) for c, g in top.groupby("customer_id")["sku"]}
        frame = holdout.assign(customer_id=holdout["customer_id"].astype(str), sku=holdout["sku"].astype(str))
        frame["hit"] = [s in lists.get(c, ()) for c, s in zip(frame["customer_id"], frame["sku"])]
        category = {}
        if data.catalog is not None and "category" in data.catalog:
            category = dict(zip(data.catalog["sku"].astype(str), data.catalog["category"].fillna("unknown").astype(str)))
        frame["category"] = frame["sku"].map(category).fillna("unknown")
        grouped = frame.groupby("category")["hit"]
        return {"category": _table(grouped.mean().astype(np.float64), grouped.size())}
    raise ValueError(f"unknown model family {family!r}")
