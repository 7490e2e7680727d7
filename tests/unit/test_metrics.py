"""The metric functions on small cases worked out by hand."""

import numpy as np
import pytest

from pipeline.evaluation.metrics import classification_metrics, forecast_metrics, mase, naive_scale, ranking_metrics


def test_classification_metrics_by_hand():
    m = classification_metrics(["a", "b", "a", "b"], ["a", "a", "a", "b"])
    assert m["accuracy"] == 0.75
    assert m["recall_a"] == 1.0 and m["recall_b"] == 0.5
    assert m["f1_a"] == pytest.approx(0.8) and m["f1_b"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)


def test_macro_f1_counts_a_label_only_the_model_predicted():
    """A label that is never true but predicted has F1 0 and pulls macro-F1 down; it gets
    no recall entry (there is no such class to recall)."""
    m = classification_metrics(["a", "a"], ["a", "c"])
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert "recall_c" not in m and m["recall_a"] == 0.5


def test_forecast_metrics_by_hand():
    m = forecast_metrics([10.0, 10.0], [12.0, 6.0])
    assert m["wape"] == pytest.approx(6 / 20) and m["bias"] == pytest.approx(-2 / 20)


def test_mase_scales_each_series_by_its_seasonal_naive_error():
    # season 2: pairs (1, 3) and (3, 8); the pair across the missing period is not counted
    assert naive_scale(np.array([1.0, np.nan, 3.0, 4.0, 8.0]), season=2) == pytest.approx(3.5)
    # shorter than a season: lag 1
    assert naive_scale(np.array([1.0, 2.0, 4.0]), season=52) == pytest.approx(1.5)
    assert naive_scale(np.array([5.0]), season=52) == 0.0
    # per series, then the mean; a series with no scale is left out
    value, used = mase([[1.0, 1.0], [2.0], [9.0]], [1.0, 4.0, 0.0])
    assert value == pytest.approx((1.0 + 0.5) / 2) and used == 2


def test_ranking_metrics_by_hand():
    m = ranking_metrics([["x", "y"], ["y", "z"]], ["y", "q"], k=2, catalog_size=4)
    assert m["hr_at_2"] == 0.5
    assert m["ndcg_at_2"] == pytest.approx(0.5 / np.log2(3))
    assert m["coverage_at_2"] == 0.75


def test_a_shared_shock_widens_the_service_level_standard_error():
    import numpy as np

    from pipeline.evaluation.metrics import clustered_share_se

    # 20 weeks x 50 series; in 2 weeks every series exceeds the plan, in the others none
    weeks = np.repeat(np.arange(20), 50)
    together = np.isin(weeks, [3, 11])
    se = clustered_share_se(together, weeks)
    # the same as a binomial over the 20 weeks (0.1 of them), with the C / (C - 1) factor
    assert se == pytest.approx(np.sqrt(0.1 * 0.9 / 20 * 20 / 19), rel=1e-9)
    # the same 10% spread evenly over the weeks: far less uncertain
    spread = np.tile(np.arange(50) < 5, 20)
    assert clustered_share_se(spread, weeks) < se / 5
    assert np.isnan(clustered_share_se(together[:50], weeks[:50]))  # one week: no estimate
