"""The retrain decision (:func:`pipeline.monitoring.retrain.decide`): each condition fires
at its threshold and not just below it, a skip names every figure against its threshold,
and every condition that fired is a reason.

The facts start "quiet" (a trained version on the same code and settings, few new rows,
no drift, young data, a champion live close to its promotion-time metric) and each test
changes one of them."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from pipeline.monitoring.retrain import RetrainDecision, RetrainFacts, decide
from pipeline.settings import RetrainRule

TRAINED_UNTIL = date(2026, 10, 1)
RULE = RetrainRule()  # the defaults: 10% live decay on 200 samples, 25% new rows, drift on, 35 days


def facts(**changes: Any) -> RetrainFacts:
    """Quiet facts: nothing should fire under :data:`RULE`."""
    quiet = dict(
        family="sentiment", day=TRAINED_UNTIL + timedelta(days=10), latest_version="3",
        trained_until=TRAINED_UNTIL, trained_rows=1000, new_rows=10, drift=(),
        code_changed=False, settings_changed=False, champion="3", metric="macro_f1",
        promoted_value=0.85, live_value=0.84, live_samples=500, live_days=20, live_day=TRAINED_UNTIL + timedelta(days=9),
    )
    return RetrainFacts(**{**quiet, **changes})


def rule(**changes: Any) -> RetrainRule:
    return RULE.model_copy(update=changes)


def fired(decision: RetrainDecision, *words: str) -> list[str]:
    """The reasons that mention every one of ``words``."""
    return [r for r in decision.reasons if all(w in r for w in words)]


def checked(decision: RetrainDecision, *words: str) -> list[str]:
    return [c for c in decision.checks if all(w in c for w in words)]


def test_quiet_facts_do_not_retrain():
    decision = decide(facts(), RULE)
    assert decision.retrain is False
    assert decision.reasons == []
    assert decision.family == "sentiment" and decision.day == (TRAINED_UNTIL + timedelta(days=10)).isoformat()


# ------------------------------------------------------------------ no model, code, settings


@pytest.mark.parametrize("changes", [{"latest_version": None}, {"trained_until": None},
                                     {"latest_version": None, "trained_until": None, "champion": None}])
def test_without_a_trained_version_it_retrains(changes: dict[str, Any]):
    decision = decide(facts(**changes), RULE)
    assert decision.retrain is True
    assert fired(decision, "no trained version")


def test_with_a_trained_version_that_reason_is_absent():
    decision = decide(facts(), RULE)
    assert not checked(decision, "no trained version")


@pytest.mark.parametrize("field, words", [("code_changed", "training code"), ("settings_changed", "training settings")])
@pytest.mark.parametrize("changed", [True, False])
def test_changed_training_code_or_settings(field: str, words: str, changed: bool):
    decision = decide(facts(**{field: changed}), RULE)
    assert decision.retrain is changed
    assert bool(fired(decision, words, "v3")) is changed
    # fired or not, the condition is checked and says which way it went
    # the whole phrase: "changed" alone would also match "unchanged"
    assert checked(decision, f"{words} {'changed' if changed else 'unchanged'} since v3")
    assert not checked(decision, f"{words} {'unchanged' if changed else 'changed'} since v3")


# ------------------------------------------------------------------ new labelled rows


@pytest.mark.parametrize("new_rows, fires", [(249, False), (250, True), (400, True)])
def test_new_rows_as_a_share_of_the_training_rows(new_rows: int, fires: bool):
    # 25% of 1,000 training rows: 250
    decision = decide(facts(new_rows=new_rows, trained_rows=1000), rule(min_new_share=0.25, min_new_rows=0))
    assert decision.retrain is fires
    assert bool(fired(decision, f"{new_rows:,} new labelled rows", "threshold 250")) is fires
    assert checked(decision, f"{new_rows:,} new labelled rows", "threshold 250")


@pytest.mark.parametrize("new_rows, fires", [(99, False), (100, True)])
def test_new_rows_by_count(new_rows: int, fires: bool):
    decision = decide(facts(new_rows=new_rows, trained_rows=1000), rule(min_new_share=0.0, min_new_rows=100))
    assert decision.retrain is fires
    assert bool(fired(decision, f"{new_rows} new labelled rows", "threshold 100")) is fires


def test_the_smaller_of_the_two_thresholds_applies():
    # share: 250 of 1,000 rows; count: 100 -> 100 new rows are enough
    decision = decide(facts(new_rows=100, trained_rows=1000), rule(min_new_share=0.25, min_new_rows=100))
    assert decision.retrain is True and fired(decision, "threshold 100")
    # count 400 is above the share's 250 -> 250 are enough
    decision = decide(facts(new_rows=250, trained_rows=1000), rule(min_new_share=0.25, min_new_rows=400))
    assert decision.retrain is True and fired(decision, "threshold 250")


def test_a_count_of_zero_turns_the_count_test_off():
    many = facts(new_rows=1_000_000, trained_rows=1000)
    decision = decide(many, rule(min_new_share=0.0, min_new_rows=0))
    assert decision.retrain is False
    assert checked(decision, "no threshold") and not fired(decision, "new")
    # the share alone still applies with the count off
    assert decide(many, rule(min_new_share=0.25, min_new_rows=0)).retrain is True


# ------------------------------------------------------------------ drift


def test_a_drift_warning_since_the_training_window_fires():
    warning = "sales 2026-10-05: units_mean_shift=+0.31 (warning at 0.2)"
    decision = decide(facts(drift=(warning,)), RULE)
    assert decision.retrain is True
    assert fired(decision, warning)


def test_no_drift_warning_does_not_fire():
    decision = decide(facts(drift=()), RULE)
    assert decision.retrain is False
    assert checked(decision, "no drift warning", TRAINED_UNTIL.isoformat())


def test_on_drift_warning_off_ignores_drift():
    decision = decide(facts(drift=("reviews 2026-10-05: text_length_shift=+0.5 (severe at 0.4)",)),
                      rule(on_drift_warning=False))
    assert decision.retrain is False
    assert not checked(decision, "drift")


# ------------------------------------------------------------------ age


@pytest.mark.parametrize("age, fires", [(34, False), (35, True), (60, True)])
def test_max_age(age: int, fires: bool):
    decision = decide(facts(day=TRAINED_UNTIL + timedelta(days=age)), rule(max_age_days=35))
    assert decision.retrain is fires
    assert bool(fired(decision, f"{age} days old", "max 35")) is fires


def test_max_age_zero_is_no_limit():
    decision = decide(facts(day=TRAINED_UNTIL + timedelta(days=1000)), rule(max_age_days=0))
    assert decision.retrain is False
    assert checked(decision, "1000 days old") and not checked(decision, "max")


# ------------------------------------------------------------------ live decay


@pytest.mark.parametrize("live, fires", [
    (0.74, True),   # 12.9% below 0.85
    (0.78, False),  # 8.2% below
    (0.95, False),  # better
])
def test_live_decay_of_a_higher_is_better_metric(live: float, fires: bool):
    decision = decide(facts(metric="macro_f1", promoted_value=0.85, live_value=live,
                            live_samples=500), rule(max_live_decay=0.10, min_live_samples=200))
    assert decision.retrain is fires
    assert bool(fired(decision, "live macro_f1", "at promotion")) is fires


@pytest.mark.parametrize("live, fires", [
    (0.46, True),   # 15% above 0.40
    (0.42, False),  # 5% above
    (0.30, False),  # better (lower)
])
def test_live_decay_of_a_lower_is_better_metric(live: float, fires: bool):
    decision = decide(facts(family="forecaster", metric="wape", promoted_value=0.40,
                            live_value=live, live_samples=500), rule(max_live_decay=0.10, min_live_samples=200))
    assert decision.retrain is fires
    assert bool(fired(decision, "live wape", "at promotion")) is fires


@pytest.mark.parametrize("metric, live", [("macro_f1", 0.375), ("wape", 0.625)])
def test_live_decay_exactly_at_the_threshold_does_not_fire(metric: str, live: float):
    # 25% worse than 0.5 exactly (in binary too): "worse by more than" the threshold is needed
    decision = decide(facts(metric=metric, promoted_value=0.5, live_value=live, live_samples=500),
                      rule(max_live_decay=0.25))
    assert decision.retrain is False
    assert checked(decision, "+25.0% worse")


@pytest.mark.parametrize("samples, days, fires", [(199, 20, False), (200, 20, True), (5000, 13, False), (5000, 14, True)])
def test_live_decay_needs_enough_live_samples_over_enough_days(samples: int, days: int, fires: bool):
    """Many samples from one week of sales are still one week: both minimums must be met."""
    decision = decide(facts(promoted_value=0.85, live_value=0.5, live_samples=samples, live_days=days),
                      rule(min_live_samples=200, min_live_days=14))
    assert decision.retrain is fires
    assert bool(fired(decision, "live macro_f1")) is fires
    assert bool(checked(decision, "judged from 200 samples over 14 days")) is not fires


@pytest.mark.parametrize("changes, words", [
    ({"live_value": None, "live_samples": 0}, "no live macro_f1 yet"),
    ({"promoted_value": None}, "no live macro_f1 yet"),
    ({"champion": None, "live_value": None, "promoted_value": None}, "no champion"),
])
def test_without_a_live_value_live_decay_does_not_fire(changes: dict[str, Any], words: str):
    decision = decide(facts(**changes), RULE)
    assert decision.retrain is False
    assert checked(decision, words)


# ------------------------------------------------------------------ the decision as a whole


def test_a_skip_names_each_figure_and_its_threshold():
    quiet = facts(new_rows=12, trained_rows=1000, day=TRAINED_UNTIL + timedelta(days=9), live_value=0.83,
                  live_samples=321)
    decision = decide(quiet, RULE)
    assert decision.retrain is False
    summary = decision.summary
    assert "12 new labelled rows" in summary and "threshold 250" in summary
    assert "9 days old (max 35)" in summary
    assert "no drift warning" in summary
    assert "training code unchanged" in summary and "training settings unchanged" in summary
    assert "live macro_f1 0.83 on 321 samples over 20 days against 0.85" in summary and "threshold 10%" in summary
    assert summary == "; ".join(decision.checks)


def test_every_condition_that_fired_is_a_reason():
    decision = decide(facts(code_changed=True, new_rows=600, drift=("sales 2026-10-04: units drift",),
                            day=TRAINED_UNTIL + timedelta(days=40), live_value=0.6), RULE)
    assert decision.retrain is True
    for words in ("training code changed", "600 new labelled rows", "sales 2026-10-04: units drift",
                  "40 days old", "live macro_f1"):
        assert len(fired(decision, words)) == 1, (words, decision.reasons)
    assert len(decision.reasons) == 5
    assert not fired(decision, "training settings")  # the one that did not fire
    assert decision.summary == "; ".join(decision.reasons)


def test_policy_always_retrains_when_nothing_fired():
    assert decide(facts(), RULE, policy="worth_it").retrain is False
    decision = decide(facts(), RULE, policy="always")
    assert decision.retrain is True
    assert fired(decision, "always")
    # the conditions are still checked, none of them fired
    assert checked(decision, "training code unchanged")
    assert len(decision.reasons) == 1


def test_policy_always_keeps_the_conditions_that_fired():
    decision = decide(facts(settings_changed=True), RULE, policy="always")
    assert fired(decision, "training settings changed") and fired(decision, "always")

