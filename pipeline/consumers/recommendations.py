"""Top-K product recommendations per customer from the recommender champion."""

from __future__ import annotations

import logging
from datetime import date

from pipeline.consumers.outputs import write_output
from pipeline.ingest.publish import read_validated
from pipeline.lake import lake_from_settings
from pipeline.registry import load_champion
from pipeline.settings import Settings

log = logging.getLogger(__name__)


def run_recommendations(settings: Settings, day: date) -> str:
    lake = lake_from_settings(settings)
    model, version = load_champion(settings, "recommender")
    history = read_validated(lake, "interactions", day)[["customer_id", "sku", "timestamp"]]
    top_k = settings.training.recommender.top_k
    recs = model.predict(history.sort_values(["customer_id", "timestamp"]), params={"top_k": top_k})
    recs = recs.assign(model_name=settings.model_name("recommender"), model_version=version)
    uri = write_output(lake, "recommendations", day, "top_k", recs)
    log.info("top-%d recommendations for %d customers from %s v%s -> %s",
             top_k, recs["customer_id"].nunique(), settings.model_name("recommender"), version, uri)
    return uri
