"""The paired bootstrap against the champion: its point difference is the logged metrics'
difference, and its interval separates a real gap from holdout noise (real data)."""

import numpy as np
import pytest

from pipeline.datasets import FamilyData, split_interactions, split_sales
from pipeline.demo_data import load_movielens, load_reviews, load_walmart_weekly
from pipeline.evaluation.baselines import gradient_boosting, popularity, seasonal_naive, tfidf_logistic_regression
from pipeline.evaluation.bootstrap import paired_bootstrap, ratio
from pipeline.evaluation.scoring import (
    classification_score,
    classification_units,
    forecast_score,
    forecast_units,
    join_forecast,
    ranking_score,
    ranking_units,
)
from pipeline.settings import ForecasterTraining, RecommenderTraining


@pytest.fixture(scope="module")
def reviews() -> tuple[FamilyData, FamilyData]:
    """Real Amazon reviews: the 1,000 test rows held out; models trained on 2,000 and on 100 rows."""
    frame = load_reviews().rename(columns={"review": "text"})
    holdout = frame.iloc[4000:].reset_index(drop=True)
    return FamilyData(frame.iloc[:2000], holdout), FamilyData(frame.iloc[:100], holdout)


def compare(units_a, units_b, metric: str, **kwargs):  # noqa: ANN001, ANN003
    (unit, a), (_, b) = units_a, units_b
    return paired_bootstrap(metric, a[metric], b[metric], unit=unit, **{"lower_is_better": False, **kwargs})


def test_point_difference_is_the_scored_difference_and_a_real_gap_is_found(reviews):
    large, small = reviews
    strong, weak = tfidf_logistic_regression(large), tfidf_logistic_regression(small)
    for metric in ("macro_f1", "accuracy"):
        c = compare(classification_units(strong, large), classification_units(weak, small), metric)
        scored = classification_score(strong, large)[metric] - classification_score(weak, small)[metric]
        assert c.difference == pytest.approx(scored, abs=1e-12)
        assert c.units == 1000 and c.unit == "review"
        # 2,000 training rows against 100: macro-F1 0.785 against 0.671 (interval of the
        # difference [+0.081, +0.149]); accuracy +0.079 [+0.049, +0.111]
        assert c.low > 0 and c.verdict(0.0) == "better"
        assert compare(classification_units(weak, small), classification_units(strong, large), metric).verdict(0.0) \
            == "worse"


def test_the_same_model_is_a_tie_and_equal_models_mostly_tie(reviews):
    large, _ = reviews
    preds = tfidf_logistic_regression(large)
    same = compare(classification_units(preds, large), classification_units(preds, large), "macro_f1")
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
    # two models that each get a random 20% of the same 1,000 real labels wrong: equal in
    # truth, so the 95% interval should span 0 about 95% of the time
    truth = large.holdout["label"].astype(str).to_numpy()
    other = {"great": "other", "other": "great"}
    spans = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        a, b = truth.copy(), truth.copy()
        for pred in (a, b):
            flip = rng.random(len(truth)) < 0.2
            pred[flip] = [other[v] for v in pred[flip]]
        c = compare(classification_units(_labels(a), large), classification_units(_labels(b), large), "macro_f1",
                    resamples=300, seed=seed)
        spans += c.low <= 0 <= c.high
    assert spans >= 34, spans  # 40 x 0.95 = 38 expected; 34 allows for the draw


def _labels(values: np.ndarray):  # noqa: ANN202
    import pandas as pd

    return pd.DataFrame({"label": values})


def test_forecast_units_resample_series_and_give_the_scored_wape():
    sales, plan = load_walmart_weekly()
    data = split_sales(sales, horizon=8, min_train_periods=24, plan=plan)
    hp = ForecasterTraining(horizon=8)
    naive, boosted = seasonal_naive(data, hp), gradient_boosting(data, hp)
    c = paired_bootstrap("wape", forecast_units(boosted, data)[1]["wape"], forecast_units(naive, data)[1]["wape"],
                         lower_is_better=True, unit="series")
    scored = forecast_score(naive, data, hp)["wape"] - forecast_score(boosted, data, hp)["wape"]
    assert c.difference == pytest.approx(scored, abs=1e-12)  # positive: the better one's WAPE is lower
    assert c.units == 7  # 7 departments: the series, not their 56 weeks, are resampled
    # a department's weeks move together: resampling the 56 weeks as if independent claims
    # more certainty than resampling the 7 series does; here it would call boosting better
    rows = {name: join_forecast(p, data) for name, p in (("boosted", boosted), ("naive", naive))}
    weeks = {name: (np.column_stack([(j["units"] - j["forecast"]).abs(), j["units"]]).astype(float),
                    forecast_units(p, data)[1]["wape"][1]) for (name, j), p in zip(rows.items(), (boosted, naive))}
    by_week = paired_bootstrap("wape", weeks["boosted"], weeks["naive"], lower_is_better=True, unit="week")
    assert by_week.difference == pytest.approx(c.difference, abs=1e-12)  # the same point, other units
    assert by_week.units == 56
    assert c.high - c.low > by_week.high - by_week.low
    assert (c.verdict(0.0), by_week.verdict(0.0)) == ("no clear difference", "better")
    # 7 units make a rough interval, and the comparison says so; 56 do not
    assert "only 7 series: a rough interval" in c.describe() and "rough" not in by_week.describe()


def test_ranking_units_give_the_scored_hit_rate_and_ndcg():
    interactions, catalog = load_movielens()
    interactions = interactions.assign(timestamp=interactions["seconds"].astype("datetime64[s]"))
    data = split_interactions(interactions, catalog)
    hp = RecommenderTraining(top_k=10)
    preds = popularity(data, hp)
    unit, stats = ranking_units(preds, data, hp)
    scored = ranking_score(preds, data, hp)
    for metric in ("hr_at_10", "ndcg_at_10"):
        matrix, statistic = stats[metric]
        assert statistic(matrix.sum(axis=0)) == pytest.approx(scored[metric], abs=1e-12)
    assert unit == "customer" and len(stats["hr_at_10"][0]) == len(data.holdout) == 943


def test_ratio_of_an_empty_denominator_is_zero():
    assert ratio(0, 1)(np.array([3.0, 0.0])) == 0.0
