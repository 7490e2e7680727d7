from pipeline.evaluation.gate import evaluate_gate
from pipeline.settings import GateSettings

RULES = GateSettings(
    minimums={"sentiment": {"accuracy": 0.7}, "forecaster": {}, "recommender": {}},
    maximums={"sentiment": {}, "forecaster": {"wape": 0.5}, "recommender": {}},
    champion_tolerance=0.01,
)


def test_first_model_passes_when_it_beats_the_baseline():
    d = evaluate_gate("sentiment", {"accuracy": 0.8, "macro_f1": 0.75}, {"macro_f1": 0.7}, None, RULES)
    assert d.passed and d.first_model and d.failures == []


def test_every_failed_rule_is_returned_with_its_reason():
    d = evaluate_gate(
        "sentiment", {"accuracy": 0.6, "macro_f1": 0.5}, {"macro_f1": 0.7}, {"macro_f1": 0.8}, RULES
    )
    assert not d.passed
    assert [f.rule for f in d.failures] == ["minimum", "beats_baseline", "not_worse_than_champion"]
    assert "below the minimum" in d.failures[0].reason
    assert d.failures[2].value == 0.5 and d.failures[2].threshold == 0.8


def test_lower_is_better_metrics_and_champion_tolerance():
    # wape 0.41 vs champion 0.40 is within the 0.01 tolerance; baseline 0.45 is beaten
    ok = evaluate_gate("forecaster", {"wape": 0.41}, {"wape": 0.45}, {"wape": 0.40}, RULES)
    assert ok.passed
    worse = evaluate_gate("forecaster", {"wape": 0.42}, {"wape": 0.45}, {"wape": 0.40}, RULES)
    assert [f.rule for f in worse.failures] == ["not_worse_than_champion"]
    too_high = evaluate_gate("forecaster", {"wape": 0.6}, {"wape": 0.5}, None, RULES)
    assert {f.rule for f in too_high.failures} == {"maximum", "beats_baseline"}


def test_a_missing_metric_fails_rather_than_passes():
    d = evaluate_gate("recommender", {}, {"ndcg_at_10": 0.1}, None, RULES)
    assert not d.passed and d.failures[0].reason == "metric 'ndcg_at_10' was not computed"
