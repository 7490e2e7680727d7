"""The promotion gate: a pure function over metrics that returns every failed rule."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from pipeline.evaluation.bootstrap import Comparison, plural
from pipeline.evaluation.metrics import LOWER_IS_BETTER, best_first, better, worse_by
from pipeline.settings import GateSettings, SliceRule

ROLES = ("challenger", "champion", "baseline")  # the models scored on each holdout
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
    # the candidate to register (the chosen one; when none passed, the best on the primary
    # metric, registered as failed), its kind, every candidate's verdict, and the evidence
    candidate: str | None = None
    kind: str = ""
    candidates: dict[str, dict] = field(default_factory=dict)
    evidence: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**asdict(self), "failures": [asdict(f) for f in self.failures]}

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [f"gate {verdict} for {self.family} on {self.primary_metric}"
                 + (f": {self.candidate} ({self.kind})" if self.candidate else "")
                 + (" (first model: no champion yet)" if self.first_model else "")]
        lines += [f"  - {f.rule}: {f.reason}" for f in self.failures]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _expand(limits: dict[str, float], metrics: dict[str, float]) -> list[tuple[str, float]]:
    """``recall_*`` becomes one limit per computed metric with that prefix."""
    out = []
    for name, limit in limits.items():
        if name.endswith("*"):
            out += [(m, limit) for m in sorted(metrics) if m.startswith(name[:-1])]
        else:
            out.append((name, limit))
    return out


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
    gain = -worse_by(primary, mine, base, relative=True) if base else float("inf")
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
            # a small holdout's share is noisy: the allowance is the tolerance or 1.96 standard
            # errors, whichever is larger; the errors clustered by period where the evaluation
            # gave them (a week's shock hits every series), else binomial over the rows
            n = challenger.get("holdout_rows") or 0
            se = challenger.get("exceed_share_se")
            if se is None or math.isnan(se):
                se = math.sqrt(target * (1 - target) / n) if n else 0.0
            allowed = max(tolerance, 1.96 * se)
            # more stock-outs than promised break the plan's promise; fewer cost stock, not sales:
            # on that side a plan is refused only below half the promised rate (a quantile that
            # errs a point or two on the safe side in the holdout's own seasons still serves)
            safe_side = max(allowed, target / 2)
            notes.append(f"service level: demand exceeded the planned level in {share:.1%} of {int(n)} holdout "
                         f"periods (target {target:.1%}, from {target - safe_side:.1%} to {target + allowed:.1%})")
            if share - target > allowed:
                failures.append(Failure(
                    "service_level", "exceed_share", share, target,
                    f"demand exceeded the planned level (the service-level quantile) in {share:.1%} of holdout "
                    f"periods; the plan promises {target:.1%}, and more than {allowed:.1%} above it is refused"))
            elif target - share > safe_side:
                failures.append(Failure(
                    "service_level", "exceed_share", share, target,
                    f"demand exceeded the planned level (the service-level quantile) in only {share:.1%} of holdout "
                    f"periods; the plan promises {target:.1%}: it overstocks, and under {target - safe_side:.1%} "
                    "is refused"))

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


# ------------------------------------------------------------------ choosing among candidates


@dataclass(frozen=True)
class Evidence:
    """What a decision rests on: the holdout's independent units (reviews, series or
    customers: the bootstrap's), its rows and the forecast origins it was asked from."""

    unit: str
    units: int
    rows: int
    windows: int = 1

    def describe(self) -> str:
        origins = f" asked from {self.windows} origins" if self.windows > 1 else ""
        return f"{self.units:,} {plural(self.unit)} ({self.rows:,} holdout rows{origins})"


@dataclass(frozen=True)
class CandidateResult:
    """One candidate's holdout figures: its kind, metrics, slices (dimension -> value ->
    {"metric", "n"}), its paired bootstrap against the champion (if there is one) and
    against the best other candidate (if there is another)."""

    kind: str
    metrics: dict[str, float]
    slices: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    comparison: Comparison | None = None
    vs_runner_up: Comparison | None = None


def rank_by(primary: str, metrics: dict[str, dict[str, float]]) -> list[str]:
    """Names best first on ``primary`` (a model without the metric last; ties by name)."""
    return sorted(metrics, key=lambda name: (best_first(primary, metrics[name].get(primary)), name))


def choose_candidate(
    family: str,
    primary: str,
    candidates: dict[str, CandidateResult],
    baseline: dict[str, float],
    champion: dict[str, float] | None,
    rules: GateSettings,
    evidence: Evidence,
    champion_slices: dict | None = None,
) -> GateDecision:
    """The best candidate that passes every rule of :func:`evaluate_gate` (floors, the service
    level, strictly better than the best reference baseline, not worse than the champion,
    slices), or none; the decision names it (``chosen``) and its ``kind``.

    A candidate that carries a transformer (``transformer`` or ``blend``) is chosen over the
    best passing classic model only when it beats it by ``min_lift_over_baseline``: what it
    costs to train and serve. With a champion, a holdout of fewer than
    ``min_evidence_units`` units decides nothing ("thin evidence"): the champion stays. The
    winner's paired bootstrap against the best other candidate is reported in the notes."""
    floors = rules.model_copy(update={"min_lift_over_baseline": {**rules.min_lift_over_baseline, family: 0.0}})
    per_candidate = {
        name: evaluate_gate(family, primary, c.metrics, baseline, champion, floors,
                            {"challenger": c.slices, "champion": champion_slices or {}}, c.comparison)
        for name, c in candidates.items()}
    ranked = rank_by(primary, {name: c.metrics for name, c in candidates.items()})
    passing = [name for name in ranked if per_candidate[name].passed]
    notes = [f"evidence: {evidence.describe()}"]
    lift = rules.min_lift_over_baseline.get(family, 0.0)
    classic = next((name for name in passing if candidates[name].kind == "classic"), None)
    chosen = None
    for name in passing:
        if candidates[name].kind != "classic" and classic is not None:
            mine, theirs = candidates[name].metrics[primary], candidates[classic].metrics[primary]
            gain = -worse_by(primary, mine, theirs, relative=True) if theirs else float("inf")
            if gain < lift:
                notes.append(f"{name} ({candidates[name].kind}) {primary} {mine:.4f} beats the classic {classic}'s "
                             f"{theirs:.4f} by {gain:+.1%}, less than the {lift:.0%} a transformer must earn: "
                             f"the classic model serves")
                continue
            notes.append(f"{name} ({candidates[name].kind}) beats the classic {classic} by {gain:+.1%} "
                         f"(at least {lift:.0%} asked)")
        chosen = name
        break
    failures: list[Failure] = []
    minimum = rules.min_evidence_units.get(family, 0)
    if champion is not None and evidence.units < minimum:
        failures.append(Failure("thin_evidence", primary, float(evidence.units), float(minimum),
                                f"thin evidence: the holdout has {evidence.describe()}, fewer than the "
                                f"{minimum} {plural(evidence.unit)} a decision needs; the champion stays"))
        chosen = None
    elif evidence.units < minimum:
        notes.append(f"thin evidence: {evidence.describe()}, fewer than {minimum}; chosen anyway, as there is "
                     "no champion to keep")
    if chosen is None and not failures:
        failures = [Failure(f.rule, f.metric, f.value, f.threshold, f"{name}: {f.reason}")
                    for name in ranked for f in per_candidate[name].failures]
        if not candidates:
            failures.append(Failure("no_candidate", primary, None, None, "no candidate was evaluated"))
    if chosen is not None and candidates[chosen].vs_runner_up is not None:
        notes.append(f"{chosen} against the best other candidate: {candidates[chosen].vs_runner_up.describe()}")
    registered = chosen or (ranked[0] if ranked else None)
    if registered is not None:
        notes += [f"{registered}: {n}" for n in per_candidate[registered].notes]
    return GateDecision(
        family, chosen is not None, primary, failures, first_model=champion is None, notes=notes,
        candidate=registered, kind=candidates[registered].kind if registered else "",
        candidates={name: {"kind": candidates[name].kind, "passed": per_candidate[name].passed,
                           "failures": [f.reason for f in per_candidate[name].failures]} for name in ranked},
        evidence=asdict(evidence))
