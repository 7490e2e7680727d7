"""The promotion gate: a pure function over metrics that returns every failed rule."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from pipeline.evaluation.bootstrap import Comparison
from pipeline.settings import GateSettings, SliceRule

ROLES = ("challenger", "champion", "baseline")  # the models scored on each holdout
LOWER_IS_BETTER = {"wape", "mase", "abs_bias"}
# role -> dimension -> slice value -> {"metric": value, "n": holdout rows}
Slices = dict[str, dict[str, dict[str, dict[str, float]]]]


@dataclass(frozen=True)
class Failure:
    rule: str
    metric: str
    value: float | None
    threshold: float | None
    reason: str


@dataclass(frozen=True)
class GateDecision:
    family: str
    passed: bool
    primary_metric: str
    failures: list[Failure] = field(default_factory=list)
    first_model: bool = False
    notes: list[str] = field(default_factory=list)  # what was checked, or left out, and why

    def to_dict(self) -> dict:
        return {**asdict(self), "failures": [asdict(f) for f in self.failures]}

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [f"gate {verdict} for {self.family} on {self.primary_metric}"
                 + (" (first model: no champion yet)" if self.first_model else "")]
        lines += [f"  - {f.rule}: {f.reason}" for f in self.failures]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def better(metric: str, a: float, b: float) -> bool:
    """True when ``a`` is strictly better than ``b`` for this metric."""
    return a < b if metric in LOWER_IS_BETTER else a > b


def _expand(limits: dict[str, float], metrics: dict[str, float]) -> list[tuple[str, float]]:
    """``recall_*`` becomes one limit per computed metric with that prefix."""
    out = []
    for name, limit in limits.items():
        if name.endswith("*"):
            out += [(m, limit) for m in sorted(metrics) if m.startswith(name[:-1])]
        else:
            out.append((name, limit))
    return out


def worse_by(metric: str, value: float, reference: float) -> float:
    """How much worse ``value`` is than ``reference`` (negative when better)."""
    return value - reference if metric in LOWER_IS_BETTER else reference - value


def _slice_rule(rule: SliceRule, challenger: dict, champion: dict, failures: list[Failure], notes: list[str]) -> None:
    mine, theirs = challenger.get(rule.dimension, {}), champion.get(rule.dimension, {})
    small = sorted(v for v, s in mine.items() if s["n"] < rule.min_samples)
    if small:
        notes.append(f"{len(small)} {rule.dimension} slice(s) under {rule.min_samples} samples left out of the "
                     f"{rule.metric} slice rule: {', '.join(small[:10])}")
    eligible = sorted(v for v, s in mine.items() if s["n"] >= rule.min_samples and v in theirs)
    if not eligible:
        notes.append(f"slice rule {rule.metric} by {rule.dimension}: no slice has {rule.min_samples} samples; not applied")
        return
    regressed = [v for v in eligible
                 if worse_by(rule.metric, mine[v]["metric"], theirs[v]["metric"]) > rule.max_drop]
    share = len(regressed) / len(eligible)
    notes.append(f"slice rule {rule.metric} by {rule.dimension}: {len(regressed)} of {len(eligible)} slices "
                 f"regressed by more than {rule.max_drop}")
    if share > rule.max_regressed_share:
        examples = ", ".join(f"{v} ({theirs[v]['metric']:.3f} -> {mine[v]['metric']:.3f})" for v in regressed[:5])
        failures.append(Failure(
            "slice_regression", f"{rule.metric} by {rule.dimension}", share, rule.max_regressed_share,
            f"{len(regressed)} of {len(eligible)} {rule.dimension} slices ({share:.0%}) are worse than the champion "
            f"by more than {rule.max_drop} {rule.metric} (limit {rule.max_regressed_share:.0%}): {examples}"))


def _beats_baseline(primary: str, mine: float, base: float, lift: float, failures: list[Failure],
                    notes: list[str]) -> None:
    """Strictly better than the best baseline, and by at least ``lift`` of its value."""
    required = base * (1 - lift) if primary in LOWER_IS_BETTER else base * (1 + lift)
    gain = -worse_by(primary, mine, base) / abs(base) if base else float("inf")
    notes.append(f"{primary} {mine:.4f} against the best baseline's {base:.4f}: {gain:+.1%} "
                 f"(at least {lift:.0%} better asked)")
    if not better(primary, mine, base) or better(primary, required, mine):
        failures.append(Failure("beats_baseline", primary, mine, required,
                                f"{primary} {mine:.4f} does not beat the baseline's {base:.4f} by {lift:.0%} "
                                f"(needs {required:.4f}; it is {gain:+.1%})"))


def _not_worse_than_champion(primary: str, mine: float, champ: float, tolerance: float,
                             comparison: Comparison | None, failures: list[Failure], notes: list[str]) -> None:
    if comparison is None:  # a run evaluated before the bootstrap: the point values
        allowed = champ + tolerance if primary in LOWER_IS_BETTER else champ - tolerance
        notes.append("champion comparison on the point values (no bootstrap interval was logged)")
        if better(primary, allowed, mine):
            failures.append(Failure("not_worse_than_champion", primary, mine, champ,
                                    f"{primary} {mine:.4f} is worse than the champion's {champ:.4f} "
                                    f"beyond the tolerance {tolerance}"))
        return
    verdict = comparison.verdict(tolerance)
    notes.append(f"champion comparison: {verdict}: {comparison.describe()}")
    if verdict == "worse":
        failures.append(Failure(
            "not_worse_than_champion", primary, mine, champ,
            f"{primary} {mine:.4f} is worse than the champion's {champ:.4f}: the {comparison.level:.0%} interval "
            f"of the difference [{comparison.low:+.4f}, {comparison.high:+.4f}] lies below -{tolerance}"))


def evaluate_gate(
    family: str,
    primary: str,
    challenger: dict[str, float],
    baseline: dict[str, float],
    champion: dict[str, float] | None,
    rules: GateSettings,
    slices: Slices | None = None,
    comparison: Comparison | None = None,
) -> GateDecision:
    """Check the challenger against fixed thresholds, its service-level calibration, the
    best baseline (by ``min_lift_over_baseline``), the champion (by ``comparison``, the
    paired bootstrap of the primary metric; without one, the point values and the
    tolerance) and the champion slice by slice; return every failed rule.

    With no champion (the first run) only the thresholds and the baseline apply, and the
    decision says so (``first_model``). ``primary`` is the family's primary metric.
    """
    failures: list[Failure] = []
    notes: list[str] = []

    def value(metrics: dict[str, float], name: str, rule: str) -> float | None:
        if name not in metrics:
            failures.append(Failure(rule, name, None, None, f"metric {name!r} was not computed"))
            return None
        return float(metrics[name])

    for name, minimum in _expand(rules.minimums.get(family, {}), challenger):
        v = value(challenger, name, "minimum")
        if v is not None and v < minimum:
            failures.append(Failure("minimum", name, v, minimum, f"{name} {v:.4f} is below the minimum {minimum:.4f}"))
    for name, maximum in _expand(rules.maximums.get(family, {}), challenger):
        v = value(challenger, name, "maximum")
        if v is not None and v > maximum:
            failures.append(Failure("maximum", name, v, maximum, f"{name} {v:.4f} is above the maximum {maximum:.4f}"))

    tolerance = rules.service_level_tolerance.get(family)
    if tolerance is not None:
        share = value(challenger, "exceed_share", "service_level")
        target = value(challenger, "exceed_target", "service_level")
        if share is not None and target is not None:
            # a small holdout's share is noisy: the allowance is the tolerance or 1.96 binomial
            # standard errors of a holdout this size, whichever is larger
            n = challenger.get("holdout_rows") or 0
            allowed = max(tolerance, 1.96 * math.sqrt(target * (1 - target) / n)) if n else tolerance
            notes.append(f"service level: demand exceeded the planned level in {share:.1%} of {int(n)} holdout "
                         f"periods (target {target:.1%} +- {allowed:.1%})")
            if abs(share - target) > allowed:
                failures.append(Failure(
                    "service_level", "exceed_share", share, target,
                    f"demand exceeded the planned level (the service-level quantile) in {share:.1%} of holdout "
                    f"periods; the plan promises {target:.1%}, and more than {allowed:.1%} off is refused"))

    mine = value(challenger, primary, "beats_baseline")
    base = value(baseline, primary, "beats_baseline")
    if mine is not None and base is not None:
        _beats_baseline(primary, mine, base, rules.min_lift_over_baseline.get(family, 0.0), failures, notes)
    if champion is None:
        notes.append("first model of this family: no champion to compare with; champion and slice rules not applied")
    else:
        champ = value(champion, primary, "not_worse_than_champion")
        if mine is not None and champ is not None:
            _not_worse_than_champion(primary, mine, champ, rules.champion_tolerance, comparison, failures, notes)
        for rule in rules.slices.get(family, []):
            _slice_rule(rule, (slices or {}).get("challenger", {}), (slices or {}).get("champion", {}), failures, notes)
    return GateDecision(family, not failures, primary, failures, first_model=champion is None, notes=notes)
