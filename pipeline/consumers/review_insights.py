"""Review insights: score unlabelled reviews with the sentiment champion, shares per sku."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import pandas as pd

from pipeline.consumers.outputs import write_output
from pipeline.ingest.publish import read_validated
from pipeline.lake import lake_from_settings
from pipeline.registry import load_champion
from pipeline.settings import Settings

log = logging.getLogger(__name__)
LOOKBACK_DAYS = 7


def run_review_insights(settings: Settings, day: date) -> str:
    lake = lake_from_settings(settings)
    model, version = load_champion(settings, "sentiment")
    reviews = read_validated(lake, "reviews", day)
    recent = pd.to_datetime(reviews["_partition"]) > pd.Timestamp(day - timedelta(days=LOOKBACK_DAYS))
    unlabelled = reviews[recent & reviews["label"].isna()].reset_index(drop=True)
    scored = pd.concat(
        [unlabelled[["review_id", "sku", "created_at", "text"]], model.predict(unlabelled[["text"]])], axis=1
    ).assign(model_name=settings.model_name("sentiment"), model_version=version)
    shares = (
        scored.assign(day=pd.to_datetime(scored["created_at"]).dt.date.astype(str))
        .groupby(["sku", "day", "label"]).size().rename("reviews").reset_index()
    )
    shares["share"] = shares["reviews"] / shares.groupby(["sku", "day"])["reviews"].transform("sum")
    write_output(lake, "review_insights", day, "sku_sentiment", shares.assign(model_version=version))
    uri = write_output(lake, "review_insights", day, "scored_reviews", scored)
    log.info("scored %d unlabelled reviews from the last %d days with %s v%s -> %s; label shares %s",
             len(scored), LOOKBACK_DAYS, settings.model_name("sentiment"), version, uri,
             scored["label"].value_counts(normalize=True).round(3).to_dict())
    return uri
