"""Simple baselines every challenger must beat, each trained or computed on the same
training rows and asked the same question as the model: ``baseline(data, hp) ->
predictions`` in the model's output format (``hp``: the family's training settings)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from pipeline.datasets import FamilyData, interaction_question
from pipeline.series import clean, default_season, ffill, infer_period_days, series_keys, split_by_key, to_grid

FORECAST_COLUMNS = ["store_id", "sku", "date", "forecast", "p10", "p50", "p90"]
RANKING_COLUMNS = ["customer_id", "rank", "sku", "score"]


def tfidf_logistic_regression(data: FamilyData, hp: Any = None) -> pd.DataFrame:
    """TF-IDF features and a logistic regression, trained on the same rows."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    clf = make_pipeline(TfidfVectorizer(min_df=2, ngram_range=(1, 2), sublinear_tf=True),
                        LogisticRegression(max_iter=1000, class_weight="balanced"))
    clf.fit(data.train["text"].astype(str), data.train["label"].astype(str))
    probs = clf.predict_proba(data.holdout["text"].astype(str))
    out = pd.DataFrame({f"p_{c}": probs[:, i] for i, c in enumerate(clf.classes_)})
    out.insert(0, "score", probs.max(axis=1))
    out.insert(0, "label", clf.classes_[probs.argmax(axis=1)])
    return out


def seasonal_naive(data: FamilyData, hp: Any) -> pd.DataFrame:
    """Each holdout period gets the value a season earlier (``hp.season_length`` periods, or
    by default a year of weekly or monthly data, a week of daily data) on the series' period
    grid, gaps carrying the last value; or the last value when the history is shorter."""
    history = clean(data.train)
    history = history[history["units"].notna()]
    future = clean(data.holdout)
    period_days = infer_period_days(history)
    season = hp.season_length or default_season(period_days)
    keys = series_keys(history, future)
    parts = []
    for rows, past in zip(split_by_key(future, keys), split_by_key(history, keys)):
        k = len(rows)
        if not k:
            continue
        units = to_grid(past, period_days).units
        n = len(units)
        steps = np.arange(k)  # future step h = steps + 1
        if n == 0:
            values = np.zeros(k)
        else:
            units = ffill(np.clip(units, 0, None))
            values = np.repeat(units[-1], k) if n < season else units[n - season + steps % season]
        values = np.clip(values, 0, None)
        parts.append(pd.DataFrame({
            "store_id": rows["store_id"].to_numpy(), "sku": rows["sku"].to_numpy(), "date": rows["date"].to_numpy(),
            "forecast": values, "p10": values, "p50": values, "p90": values,
        }))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in FORECAST_COLUMNS})
    return pd.concat(parts, ignore_index=True)


def popular_items(
    customers: Sequence[str], seen: dict[str, set[str]], ranked: np.ndarray, counts: np.ndarray, top_k: int
) -> pd.DataFrame:
    """The most popular items not already in each customer's history; score = count.
    Also what the recommender serves a customer it knows nothing about."""
    rows: list[tuple[str, int, str, float]] = []
    for customer in customers:
        have = seen.get(customer, set())
        rank = 0
        for sku, count in zip(ranked, counts):
            if rank == top_k:
                break
            if sku in have:
                continue
            rank += 1
            rows.append((customer, rank, str(sku), float(count)))
    return pd.DataFrame(rows, columns=RANKING_COLUMNS) if rows else empty_ranking()


def empty_ranking() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": pd.Series(dtype=object), "rank": pd.Series(dtype=np.int64),
        "sku": pd.Series(dtype=object), "score": pd.Series(dtype=np.float64),
    })


def popularity(data: FamilyData, hp: Any) -> pd.DataFrame:
    """Most-interacted train items, minus what each holdout customer already has."""
    counts = data.train["sku"].astype(str).value_counts(sort=False)
    counts = counts.sort_values(ascending=False, kind="stable")  # ties: first seen first
    history = interaction_question(data)
    seen = {str(c): set(g.astype(str)) for c, g in history.groupby("customer_id", sort=False)["sku"]}
    customers = [str(c) for c in dict.fromkeys(data.holdout["customer_id"])]
    return popular_items(
        customers, seen, counts.index.to_numpy(dtype=object), counts.to_numpy(dtype=np.float64), hp.top_k
    )
