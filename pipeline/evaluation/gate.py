"""The promotion gate: a pure function over metrics that returns every failed rule."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pipeline.settings import GateSettings

LOWER_IS_BETTER = {"wape", "mase", "abs_bias"}


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

    def to_dict(self) -> dict:
        return {**asdict(self), "failures": [asdict(f) for f in self.failures]}

    def summary(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [f"gate {verdict} for {self.family} on {self.primary_metric}"
                 + (" (first model: no champion yet)" if self.first_model else "")]
        lines += [f"  - {f.rule}: {f.reason}" for f in self.failures]
        return "\n".join(lines)


def better(metric: str, a: float, b: float) -> bool:
    """True when ``a`` is strictly better than ``b`` for this metric."""
    return a < b if metric in LOWER_IS_BETTER else a > b


def evaluate_gate(
    family: str,
    challenger: dict[str, float],
    baseline: dict[str, float],
    champion: dict[str, float] | None,
    rules: GateSettings,
) -> GateDecision:
    """Check the challenger against fixed thresholds, the baseline and the champion.

    With no champion (the first run) only the thresholds and the baseline apply.
    """
    primary = rules.primary_metric[family]
    failures: list[Failure] = []

    def value(metrics: dict[str, float], name: str, rule: str) -> float | None:
        if name not in metrics:
            failures.append(Failure(rule, name, None, None, f"metric {name!r} was not computed"))
            return None
        return float(metrics[name])

    for name, minimum in rules.minimums.get(family, {}).items():
        v = value(challenger, name, "minimum")
        if v is not None and v < minimum:
            failures.append(Failure("minimum", name, v, minimum, f"{name} {v:.4f} is below the minimum {minimum:.4f}"))
    for name, maximum in rules.maximums.get(family, {}).items():
        v = value(challenger, name, "maximum")
        if v is not None and v > maximum:
            failures.append(Failure("maximum", name, v, maximum, f"{name} {v:.4f} is above the maximum {maximum:.4f}"))

    mine = value(challenger, primary, "beats_baseline")
    base = value(baseline, primary, "beats_baseline")
    if mine is not None and base is not None and not better(primary, mine, base):
        failures.append(Failure("beats_baseline", primary, mine, base,
                                f"{primary} {mine:.4f} does not beat the baseline's {base:.4f}"))
    if champion is not None:
        champ = value(champion, primary, "not_worse_than_champion")
        if mine is not None and champ is not None:
            tol = rules.champion_tolerance
            allowed = champ + tol if primary in LOWER_IS_BETTER else champ - tol
            if better(primary, allowed, mine):
                failures.append(Failure("not_worse_than_champion", primary, mine, champ,
                                        f"{primary} {mine:.4f} is worse than the champion's {champ:.4f} "
                                        f"beyond the tolerance {tol}"))
    return GateDecision(family, not failures, primary, failures, first_model=champion is None)
