import pytest

from pipeline.evaluation.gate import GateDecision, evaluate_gate
from pipeline.families import get_family
from pipeline.settings import GateSettings


def gate(family: str, *args, **kwargs) -> GateDecision:  # noqa: ANN002, ANN003
    """The gate with the family's primary metric, as the evaluation step calls it."""
    return evaluate_gate(family, get_family(family).primary_metric, *args, **kwargs)


RULES = GateSettings(
    minimums={"sentiment": {"accuracy": 0.7}, "forecaster": {}, "recommender": {}},
    maximums={"sentiment": {}, "forecaster": {"wape": 0.5}, "recommender": {}},
    champion_tolerance=0.01,
    service_level_tolerance={},  # tested on its own below
)


def test_service_level_rule_refuses_a_plan_that_breaks_its_promise():
    rules = GateSettings(minimums={}, maximums={}, service_level_tolerance={"forecaster": 0.02})
    promised = {"wape": 0.4, "exceed_target": 0.05, "holdout_rows": 3520}
    # more stock-outs than promised: 2 points allowed; fewer: down to half the promise (2.5%)
    for share, passed in ((0.137, False), (0.071, False), (0.066, True), (0.05, True), (0.034, True), (0.026, True),
                          (0.024, False), (0.02, False)):
        d = gate("forecaster", {**promised, "exceed_share": share}, {"wape": 0.5}, None, rules)
        assert d.passed is passed, share
        assert any(f"demand exceeded the planned level in {share:.1%} of 3520" in n for n in d.notes)
    # 176 periods: 1.96 standard errors (3.2 points) allow 7.4%, not 8.5%
    small = {**promised, "holdout_rows": 176}
    assert gate("forecaster", {**small, "exceed_share": 0.074}, {"wape": 0.5}, None, rules).passed
    assert not gate("forecaster", {**small, "exceed_share": 0.085}, {"wape": 0.5}, None, rules).passed
    failed = gate("forecaster", {**promised, "exceed_share": 0.137}, {"wape": 0.5}, None, rules).failures
    assert [(f.rule, f.value, f.threshold) for f in failed] == [("service_level", 0.137, 0.05)]
    assert "the plan promises 5.0%" in failed[0].reason
    # errors clustered by period, where the evaluation gave them, replace the binomial ones:
    # a shock shared by every series in a week makes 13.7% of 3520 rows as likely as 5%
    clustered = {**promised, "exceed_share": 0.137, "exceed_share_se": 0.05}
    assert gate("forecaster", clustered, {"wape": 0.5}, None, rules).passed
    # a forecast without the figures fails the rule rather than passing it
    assert not gate("forecaster", {"wape": 0.4}, {"wape": 0.5}, None, rules).passed
    # families without the rule are not asked for it
    assert gate("sentiment", {"macro_f1": 0.8}, {"macro_f1": 0.7}, None, rules).passed


def test_first_model_passes_when_it_beats_the_baseline():
    d = gate("sentiment", {"accuracy": 0.8, "macro_f1": 0.75}, {"macro_f1": 0.7}, None, RULES)
    assert d.passed and d.first_model and d.failures == []


def test_every_failed_rule_is_returned_with_its_reason():
    d = gate(
        "sentiment", {"accuracy": 0.6, "macro_f1": 0.5}, {"macro_f1": 0.7}, {"macro_f1": 0.8}, RULES
    )
    assert not d.passed
    assert [f.rule for f in d.failures] == ["minimum", "beats_baseline", "not_worse_than_champion"]
    assert "below the minimum" in d.failures[0].reason
    assert d.failures[2].value == 0.5 and d.failures[2].threshold == 0.8


def test_lower_is_better_metrics_and_champion_tolerance():
    # wape 0.41 vs champion 0.40 is within the 0.01 tolerance; baseline 0.45 is beaten
    ok = gate("forecaster", {"wape": 0.41}, {"wape": 0.45}, {"wape": 0.40}, RULES)
    assert ok.passed
    worse = gate("forecaster", {"wape": 0.42}, {"wape": 0.45}, {"wape": 0.40}, RULES)
    assert [f.rule for f in worse.failures] == ["not_worse_than_champion"]
    too_high = gate("forecaster", {"wape": 0.6}, {"wape": 0.5}, None, RULES)
    assert {f.rule for f in too_high.failures} == {"maximum", "beats_baseline"}


def test_a_missing_metric_fails_rather_than_passes():
    d = gate("recommender", {}, {"ndcg_at_10": 0.1}, None, RULES)
    assert not d.passed and d.failures[0].reason == "metric 'ndcg_at_10' was not computed"


# ----------------------------------------------------------------- rules as data, slices

from pipeline.evaluation.report import gate_report  # noqa: E402
from pipeline.settings import SliceRule  # noqa: E402

SLICED = GateSettings(
    minimums={"sentiment": {"recall_*": 0.5}, "forecaster": {}, "recommender": {"coverage_at_10": 0.05}},
    maximums={"sentiment": {}, "forecaster": {"abs_bias": 0.2, "mase": 1.0}, "recommender": {}},
    slices={"forecaster": [SliceRule(dimension="store", metric="wape", min_samples=10, max_drop=0.05,
                                     max_regressed_share=0.25)]},
    service_level_tolerance={},
)


def stores(**wape_n: tuple[float, int]) -> dict:
    return {"store": {s: {"metric": w, "n": n} for s, (w, n) in wape_n.items()}}


def test_wildcard_minimum_applies_to_each_class():
    d = gate("sentiment", {"macro_f1": 0.8, "recall_great": 0.9, "recall_other": 0.4},
                      {"macro_f1": 0.7}, None, SLICED)
    assert [(f.rule, f.metric) for f in d.failures] == [("minimum", "recall_other")]


def test_maximums_on_bias_and_mase():
    d = gate("forecaster", {"wape": 0.3, "abs_bias": 0.25, "mase": 1.2}, {"wape": 0.5}, None, SLICED)
    assert {(f.rule, f.metric) for f in d.failures} == {("maximum", "abs_bias"), ("maximum", "mase")}


def test_minimum_on_catalog_coverage():
    d = gate("recommender", {"ndcg_at_10": 0.1, "coverage_at_10": 0.01}, {"ndcg_at_10": 0.05}, None, SLICED)
    assert [(f.rule, f.metric) for f in d.failures] == [("minimum", "coverage_at_10")]


def test_slice_rule_fails_when_too_many_slices_regress():
    challenger = stores(a=(0.30, 40), b=(0.50, 40), c=(0.20, 40), d=(0.40, 40))
    champion = stores(a=(0.30, 40), b=(0.35, 40), c=(0.21, 40), d=(0.30, 40))
    d = gate("forecaster", {"wape": 0.30, "abs_bias": 0.0, "mase": 0.5}, {"wape": 0.5},
                      {"wape": 0.31}, SLICED, {"challenger": challenger, "champion": champion})
    [failure] = d.failures
    assert failure.rule == "slice_regression" and failure.value == 0.5 and failure.threshold == 0.25
    assert "2 of 4 store slices (50%)" in failure.reason and "b (0.350 -> 0.500)" in failure.reason


def test_slice_rule_leaves_out_slices_that_are_too_small():
    # store b regresses badly but has 3 rows: left out, and the decision says so
    challenger = stores(a=(0.30, 40), b=(0.90, 3), c=(0.20, 40))
    champion = stores(a=(0.30, 40), b=(0.20, 3), c=(0.21, 40))
    d = gate("forecaster", {"wape": 0.3, "abs_bias": 0.0, "mase": 0.5}, {"wape": 0.5},
                      {"wape": 0.31}, SLICED, {"challenger": challenger, "champion": champion})
    assert d.passed
    assert any("1 store slice(s) under 10 samples left out" in n and ": b" in n for n in d.notes)
    only_small = gate("forecaster", {"wape": 0.3, "abs_bias": 0.0, "mase": 0.5}, {"wape": 0.5},
                               {"wape": 0.31}, SLICED, {"challenger": stores(b=(0.9, 3)), "champion": stores(b=(0.2, 3))})
    assert only_small.passed and any("no slice has 10 samples; not applied" in n for n in only_small.notes)


def test_first_run_says_which_rules_did_not_apply():
    d = gate("forecaster", {"wape": 0.3, "abs_bias": 0.0, "mase": 0.5}, {"wape": 0.5}, None, SLICED,
                      {"challenger": stores(a=(0.9, 40))})
    assert d.passed and d.first_model
    assert "first model of this family: no champion to compare with; champion and slice rules not applied" in d.notes


def test_gate_report_shows_numbers_reasons_and_slices():
    challenger = stores(a=(0.30, 40), b=(0.50, 40))
    champion = stores(a=(0.30, 40), b=(0.35, 40))
    metrics = {"challenger": {"wape": 0.4, "abs_bias": 0.3, "mase": 0.5}, "champion": {"wape": 0.35},
               "baseline": {"wape": 0.6}}
    slices = {"challenger": challenger, "champion": champion, "baseline": stores(a=(0.6, 40), b=(0.6, 40))}
    d = gate("forecaster", metrics["challenger"], metrics["baseline"], metrics["champion"], SLICED, slices)
    report = gate_report(d, metrics, slices, SLICED, {"seasonal_naive": {"wape": 0.7}, "gbm": {"wape": 0.6}})
    assert report.startswith("# Gate FAILED: forecaster")
    # one table: the candidates, the champion, every reference baseline, the floors
    assert "| metric | challenger | champion | baseline gbm | baseline seasonal_naive | minimum | maximum |" in report
    assert "| wape (primary) | 0.4000 | 0.3500 | 0.6000 | 0.7000 | - | - |" in report
    assert "| abs_bias | 0.3000 | - | - | - | - | 0.2000 |" in report
    assert "**not_worse_than_champion**" in report and "**slice_regression**" in report
    assert "| b | 40 | 0.5000 | 0.3500 | 0.6000 | yes |" in report


# ------------------------------------------------- relative to the baseline and the champion

from pipeline.evaluation.bootstrap import Comparison  # noqa: E402


def test_the_challenger_must_beat_the_best_baseline_by_the_family_lift():
    rules = GateSettings(minimums={}, maximums={}, service_level_tolerance={})  # default lifts: 2%, 1%, 10%
    assert rules.min_lift_over_baseline == {"sentiment": 0.02, "forecaster": 0.01, "recommender": 0.10}
    small = gate("sentiment", {"macro_f1": 0.77}, {"macro_f1": 0.76}, None, rules)  # +1.3%
    [failure] = small.failures
    assert (failure.rule, failure.threshold) == ("beats_baseline", pytest.approx(0.7752))
    assert "by 2%" in failure.reason and "+1.3%" in failure.reason
    assert gate("sentiment", {"macro_f1": 0.78}, {"macro_f1": 0.76}, None, rules).passed
    # lower is better: WAPE 0.455 is 1.1% under 0.46, 0.458 only 0.4%
    assert gate("forecaster", {"wape": 0.455}, {"wape": 0.46}, None, rules).passed
    assert not gate("forecaster", {"wape": 0.458}, {"wape": 0.46}, None, rules).passed
    assert not gate("recommender", {"ndcg_at_10": 0.105}, {"ndcg_at_10": 0.1}, None, rules).passed
    # a documented example beside the real checks above, not a check of its own: the figures
    # of one demo run (benchmarks/DEMO.md) against the bars they cleared then
    assert gate("sentiment", {"macro_f1": 0.8057}, {"macro_f1": 0.7617}, None, rules).passed
    assert gate("forecaster", {"wape": 0.4175}, {"wape": 0.4588}, None, rules).passed
    assert gate("recommender", {"ndcg_at_10": 0.08}, {"ndcg_at_10": 0.0254}, None, rules).passed


def test_default_class_rule_refuses_one_class_collapsing_of_two():
    rules = GateSettings(minimums={}, maximums={})
    classes = lambda **r: {"class": {c: {"metric": v, "n": 300} for c, v in r.items()}}  # noqa: E731
    slices = {"challenger": classes(great=0.97, other=0.70), "champion": classes(great=0.90, other=0.85)}
    d = gate("sentiment", {"macro_f1": 0.82}, {"macro_f1": 0.76}, {"macro_f1": 0.82}, rules, slices)
    [failure] = d.failures
    assert failure.rule == "slice_regression" and "1 of 2 class slices" in failure.reason
    assert "other (0.850 -> 0.700)" in failure.reason
    fine = {"challenger": classes(great=0.97, other=0.80), "champion": classes(great=0.90, other=0.85)}
    assert gate("sentiment", {"macro_f1": 0.82}, {"macro_f1": 0.76}, {"macro_f1": 0.82}, rules, fine).passed


def comparison(low: float, high: float) -> Comparison:
    return Comparison("macro_f1", (low + high) / 2, low, high, 0.95, 1000, 995, "review")


def test_champion_rule_reads_the_bootstrap_interval():
    rules = GateSettings(minimums={}, maximums={}, champion_tolerance=0.005)
    args = ("sentiment", {"macro_f1": 0.80}, {"macro_f1": 0.70}, {"macro_f1": 0.81}, rules, None)
    # point value worse by 0.01, but the interval spans 0: a tie, it passes and says so
    tie = gate(*args, comparison(-0.03, 0.01))
    assert tie.passed and any("champion comparison: no clear difference" in n and "[-0.0300, +0.0100]" in n
                              for n in tie.notes)
    worse = gate(*args, comparison(-0.03, -0.006))
    [failure] = worse.failures
    assert failure.rule == "not_worse_than_champion" and "[-0.0300, -0.0060] lies below -0.005" in failure.reason
    assert gate(*args, comparison(-0.03, -0.004)).passed  # within the tolerance
    better = gate("sentiment", {"macro_f1": 0.85}, {"macro_f1": 0.70}, {"macro_f1": 0.81}, rules, None,
                  comparison(0.01, 0.07))
    assert better.passed and any("champion comparison: better" in n for n in better.notes)
    # a run evaluated without an interval falls back to the point values
    assert [f.rule for f in gate(*args).failures] == ["not_worse_than_champion"]
    report = gate_report(tie, {"challenger": {"macro_f1": 0.8}, "champion": {"macro_f1": 0.81},
                               "baseline": {"macro_f1": 0.7}}, {}, rules)
    assert "95% interval [-0.0300, +0.0100] from 1000 paired resamples of 995 reviews" in report
