"""The metric functions on small cases worked out by hand."""

import numpy as np
import pytest

from pipeline.evaluation.metrics import classification_metrics, forecast_metrics, ranking_metrics


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
    m = forecast_metrics([10.0, 10.0], [12.0, 6.0], naive_mae=2.0)
    assert m["wape"] == pytest.approx(6 / 20) and m["bias"] == pytest.approx(-2 / 20)
    assert m["mase"] == pytest.approx(3.0 / 2.0)


def test_ranking_metrics_by_hand():
    m = ranking_metrics([["x", "y"], ["y", "z"]], ["y", "q"], k=2, catalog_size=4)
    assert m["hr_at_2"] == 0.5
    assert m["ndcg_at_2"] == pytest.approx(0.5 / np.log2(3))
    assert m["coverage_at_2"] == 0.75
