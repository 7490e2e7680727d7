import pandas as pd

from pipeline.datasets import split_interactions, split_reviews, split_sales


def test_reviews_split_by_time_and_unlabelled_rows_are_not_trained_on():
    reviews = pd.DataFrame({
        "review_id": [f"r{i}" for i in range(10)], "sku": "s",
        "text": [f"text {i}" for i in range(10)],
        "label": ["good", "bad", None, "good", "bad", "good", "bad", "good", "bad", "good"],
        "created_at": pd.date_range("2026-01-01", periods=10, freq="D")[::-1],  # newest first
    })
    data = split_reviews(reviews, holdout_fraction=0.25, max_train_rows=0)
    assert data.train["label"].notna().all() and len(data.train) + len(data.holdout) == 9
    assert data.train["created_at"].max() < data.holdout["created_at"].min()


def test_sales_hold_out_the_last_periods_of_the_calendar():
    dates = pd.date_range("2026-01-05", periods=10, freq="W-MON")
    sales = pd.concat([
        pd.DataFrame({"store_id": "1", "sku": "a", "date": dates, "units": range(10), "price": 1.0, "promo": 0}),
        pd.DataFrame({"store_id": "2", "sku": "a", "date": dates[:5], "units": 1.0, "price": 1.0, "promo": 0}),
        pd.DataFrame({"store_id": "3", "sku": "a", "date": dates[6:], "units": 1.0, "price": 1.0, "promo": 0}),
    ])
    data = split_sales(sales, horizon=2, min_train_periods=4)
    # one cutoff: the calendar's last 2 weeks, for every series
    assert list(data.holdout["units"]) == [8, 9] and set(data.holdout["date"]) == set(dates[-2:])
    assert data.train["date"].max() < data.holdout["date"].min()
    # store 2 stopped early: trained on, not scored; store 3 has 2 weeks before the cutoff: left out
    assert set(data.train["store_id"]) == {"1", "2"} and set(data.holdout["store_id"]) == {"1"}


def test_interactions_hold_out_each_customers_last_item():
    inter = pd.DataFrame({
        "customer_id": ["c1"] * 4 + ["c2"] * 2,
        "sku": ["a", "b", "c", "d", "a", "b"],
        "timestamp": pd.to_datetime(["2026-01-04", "2026-01-01", "2026-01-02", "2026-01-03", "2026-01-01", "2026-01-02"]),
    })
    catalog = pd.DataFrame({"sku": list("abcd"), "title": list("ABCD")})
    data = split_interactions(inter, catalog, min_history=2)
    assert data.holdout.to_dict("records")[0]["sku"] == "a"  # c1's latest by time
    assert list(data.holdout["customer_id"]) == ["c1"]  # c2 has too little history
    assert len(data.train) == 5 and data.catalog is not None


def test_the_time_split_view_keeps_the_last_days_out_of_training():
    from pipeline.demo_data import load_movielens
    from pipeline.evaluation.baselines import popularity
    from pipeline.evaluation.scoring import ranking_score
    from pipeline.settings import RecommenderTraining

    interactions, catalog = load_movielens()  # real ratings, 1997-09-20 to 1998-04-22
    interactions = interactions.assign(timestamp=pd.to_datetime(interactions["seconds"], unit="s"))
    data = split_interactions(interactions, catalog, time_split_days=14)
    cutoff = interactions["timestamp"].max() - pd.Timedelta(days=14)
    # nothing after the cutoff is trained on or in the leave-last-out holdout
    assert data.train["timestamp"].max() <= cutoff and data.holdout["timestamp"].max() <= cutoff
    assert len(data.train) + len(data.holdout) == (interactions["timestamp"] <= cutoff).sum()
    # the view: the first item after the cutoff of each customer who had a history before it
    recent = data.recent
    assert (recent["timestamp"] > cutoff).all() and recent["customer_id"].is_unique
    assert len(recent) == 71  # 91 customers rated in those 14 days, 71 of them before too
    first = interactions[interactions["timestamp"] > cutoff].sort_values(["customer_id", "timestamp", "sku"])
    assert recent.set_index("customer_id")["sku"].to_dict() == {
        c: s for c, s in first.groupby("customer_id").head(1).set_index("customer_id")["sku"].items()
        if c in set(recent["customer_id"])}
    view = data.time_split_view()
    # asked with the whole history before the cutoff, the leave-last-out item included
    assert len(view.train) == len(data.train) + len(data.holdout)
    scores = ranking_score(popularity(view, RecommenderTraining()), view, RecommenderTraining())
    assert 0 <= scores["hr_at_10"] <= 1 and scores["ndcg_at_10"] <= scores["hr_at_10"]
    # without the setting there is no view, and the split is leave-last-out over everything;
    # nor with a history shorter than twice the window (the last 20 days of the data here)
    plain = split_interactions(interactions, catalog)
    assert plain.recent is None and plain.time_split_view() is None
    assert len(plain.train) + len(plain.holdout) == len(interactions)
    short = interactions[interactions["timestamp"] > interactions["timestamp"].max() - pd.Timedelta(days=20)]
    young = split_interactions(short, catalog, time_split_days=14)
    assert young.recent is None and len(young.train) + len(young.holdout) == len(short)
