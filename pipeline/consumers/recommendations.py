"""Top-K product recommendations per customer from the recommender champion.

Items already in a customer's history are never recommended; a customer without a usable
history gets the most popular items (the champion's own fallback). Items whose share of
negative reviews (from the latest review insights) is at least ``demote_negative_share``
move to the end of each list. ``recommend_one`` is the fast path for one customer.
"""

from __future__ import annotations

import logging
from datetime import date

import pandas as pd

from pipeline import zones
from pipeline.consumers.outputs import answer_with_champion, champion_columns, write_output
from pipeline.lake import lake_from_settings
from pipeline.registry import load_champion
from pipeline.settings import Settings
from pipeline.validated import read_validated

log = logging.getLogger(__name__)


def negative_shares(lake, day: date, min_reviews: int) -> pd.Series:  # noqa: ANN001 - Lake
    """Per sku with at least ``min_reviews`` recent reviews, the share of negative ones, from
    the day's review insights (empty when they have not run)."""
    uri = f"{zones.output_folder(lake, 'review_insights', day)}/sku_negative.parquet"
    if not lake.exists(uri):
        return pd.Series(dtype=float)
    per_sku = lake.read_parquet(uri)
    per_sku = per_sku[per_sku["reviews"] >= min_reviews]
    return per_sku.set_index(per_sku["sku"].astype(str))["negative_share"]


def demote(recs: pd.DataFrame, negative: pd.Series, threshold: float) -> pd.DataFrame:
    """Move poorly reviewed items to the end of each customer's list (ranks renumbered)."""
    if not threshold or negative.empty or recs.empty:
        return recs.assign(demoted=False)
    poor = recs["sku"].astype(str).map(negative).fillna(0.0) >= threshold
    out = recs.assign(demoted=poor).sort_values(["customer_id", "demoted", "rank"], kind="stable")
    out["rank"] = out.groupby("customer_id").cumcount() + 1
    return out.reset_index(drop=True)


def demote_poorly_reviewed(settings: Settings, lake, day: date, recs: pd.DataFrame) -> pd.DataFrame:  # noqa: ANN001
    """``demote`` with the day's review insights and the thresholds from settings."""
    negative = negative_shares(lake, day, settings.negative_jump_min_reviews)
    return demote(recs, negative, settings.demote_negative_share)


def recommend_one(settings: Settings, customer_id: str, day: date, top_k: int | None = None) -> pd.DataFrame:
    """Fast path: one customer's top-K from the champion (popular items for a new customer)."""
    lake = lake_from_settings(settings)
    model, version = load_champion(settings, "recommender")
    history = read_validated(lake, "interactions", day)[["customer_id", "sku", "timestamp"]]
    mine = history[history["customer_id"].astype(str) == str(customer_id)]
    if mine.empty:  # a new customer: an empty history still names them
        mine = pd.DataFrame({"customer_id": [str(customer_id)], "sku": ["__none__"], "timestamp": [pd.Timestamp(day)]})
    recs = model.predict(mine, params={"top_k": top_k or settings.hyperparameters("recommender").top_k})
    return demote_poorly_reviewed(settings, lake, day, recs).assign(
        **champion_columns(settings, lake, "recommender", version, day))


def run_recommendations(settings: Settings, day: date) -> str:
    lake = lake_from_settings(settings)
    model, version = load_champion(settings, "recommender")
    history = read_validated(lake, "interactions", day)[["customer_id", "sku", "timestamp"]]
    top_k = settings.hyperparameters("recommender").top_k
    history = history.sort_values(["customer_id", "timestamp"])

    def served(champion) -> pd.DataFrame:  # noqa: ANN001 - a pyfunc
        return demote_poorly_reviewed(settings, lake, day, champion.predict(history, params={"top_k": top_k}))

    recs, columns = answer_with_champion(settings, lake, "recommender", day, model, version, served,
                                         lambda given: given[["customer_id", "sku", "rank"]])
    recs = recs.assign(**columns)
    uri = write_output(lake, "recommendations", day, "top_k", recs)
    log.info("top-%d recommendations for %d customers from %s v%s -> %s",
             top_k, recs["customer_id"].nunique(), settings.model_name("recommender"), version, uri)
    return uri
