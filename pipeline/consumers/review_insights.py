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


def negative_jumps(scored: pd.DataFrame, day: date, negative: list[str], min_reviews: int) -> pd.DataFrame:
    """Per sku: the share of negative reviews created on ``day`` against the days before,
    for skus with at least ``min_reviews`` on both sides; ``jump`` = today - before."""
    frame = scored.assign(negative=scored["label"].astype(str).isin(negative),
                          today=pd.to_datetime(scored["created_at"]).dt.date == day)
    sides = frame.groupby(["sku", "today"])["negative"].agg(["mean", "size"]).unstack("today")
    columns = ["sku", "share_today", "share_before", "reviews_today", "reviews_before", "jump"]
    if (True not in sides.columns.get_level_values(1)) or (False not in sides.columns.get_level_values(1)):
        return pd.DataFrame(columns=columns)
    out = pd.DataFrame({
        "share_today": sides[("mean", True)], "share_before": sides[("mean", False)],
        "reviews_today": sides[("size", True)], "reviews_before": sides[("size", False)],
    }).dropna()
    out = out[(out["reviews_today"] >= min_reviews) & (out["reviews_before"] >= min_reviews)]
    out = out.assign(jump=out["share_today"] - out["share_before"]).reset_index()
    return out[columns].astype({"reviews_today": int, "reviews_before": int}).sort_values("jump", ascending=False)


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
    jumps = negative_jumps(scored, day, settings.negative_labels, settings.negative_jump_min_reviews)
    alerts = jumps[jumps["jump"] >= settings.negative_jump_alert]
    write_output(lake, "review_insights", day, "negative_jumps", jumps.assign(alert=jumps["jump"] >= settings.negative_jump_alert))
    for row in alerts.itertuples():
        log.warning("ALERT sku %s: negative share %.0f%% on %s against %.0f%% the days before (%d and %d reviews)",
                    row.sku, 100 * row.share_today, day, 100 * row.share_before, row.reviews_today, row.reviews_before)
    uri = write_output(lake, "review_insights", day, "scored_reviews", scored)
    log.info("scored %d unlabelled reviews from the last %d days with %s v%s -> %s; label shares %s",
             len(scored), LOOKBACK_DAYS, settings.model_name("sentiment"), version, uri,
             scored["label"].value_counts(normalize=True).round(3).to_dict())
    return uri
