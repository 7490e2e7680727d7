"""Review insights: score the last week's unlabelled reviews with the sentiment champion;
label shares per sku and per catalog category and day; each sku's negative share (used to
demote poorly reviewed items in recommendations); and an alert when a sku's negative share
jumps."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import pandas as pd

from pipeline.consumers.outputs import answer_with_champion, write_output
from pipeline.lake import lake_from_settings
from pipeline.registry import load_champion
from pipeline.settings import Settings
from pipeline.validated import latest_by_key, read_latest, read_validated

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


def label_shares(scored: pd.DataFrame, key: str) -> pd.DataFrame:
    """Reviews and the share of each label per ``key`` (sku or category) and day."""
    shares = (scored.assign(day=pd.to_datetime(scored["created_at"]).dt.date.astype(str))
              .groupby([key, "day", "label"]).size().rename("reviews").reset_index())
    shares["share"] = shares["reviews"] / shares.groupby([key, "day"])["reviews"].transform("sum")
    return shares


def run_review_insights(settings: Settings, day: date) -> str:
    lake = lake_from_settings(settings)
    model, version = load_champion(settings, "sentiment")
    try:
        reviews = read_validated(lake, "reviews", day, since=day - timedelta(days=LOOKBACK_DAYS - 1))
    except FileNotFoundError:  # no recent drop: nothing to score (and an error if there never was one)
        reviews = read_validated(lake, "reviews", day).iloc[:0]
    reviews = latest_by_key(reviews, "reviews")  # a review whose label has arrived is no longer scored
    unlabelled = reviews[reviews["label"].isna()].reset_index(drop=True)

    def labels(given: pd.DataFrame) -> pd.DataFrame:  # what is kept: each review's label
        return pd.DataFrame({"review_id": unlabelled["review_id"], "label": given["label"]})

    predicted, columns = answer_with_champion(settings, lake, "sentiment", day, model, version,
                                              lambda champion: champion.predict(unlabelled[["text"]]), labels)
    scored = pd.concat([unlabelled[["review_id", "sku", "created_at", "text"]], predicted], axis=1).assign(**columns)
    try:
        catalog = read_latest(lake, "catalog", day)
        categories = dict(zip(catalog["sku"].astype(str), catalog["category"].fillna("unknown").astype(str)))
    except FileNotFoundError:
        categories = {}
    scored["category"] = scored["sku"].astype(str).map(categories).fillna("unknown")
    write_output(lake, "review_insights", day, "sku_sentiment", label_shares(scored, "sku").assign(**columns))
    write_output(lake, "review_insights", day, "category_sentiment",
                 label_shares(scored, "category").assign(**columns))
    negative = scored.assign(negative=scored["label"].astype(str).isin(settings.negative_labels))
    per_sku = negative.groupby("sku")["negative"].agg(negative_share="mean", reviews="size").reset_index()
    write_output(lake, "review_insights", day, "sku_negative", per_sku.assign(**columns))
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
