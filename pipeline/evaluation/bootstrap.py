"""Paired bootstrap of the difference between two models scored on the same holdout.

A metric is computed from additive statistics of holdout units (rows, series or
customers; see the families' ``units`` functions in :mod:`pipeline.evaluation.scoring`):
``statistic(sums) -> value``, where ``sums`` is the per-column sum of the units' stats. A
resample draws units with replacement, the same draw for both models (paired), so what
varies together across the holdout (an easy store, a hard customer) cancels out of the
difference. Units are the level at which errors are independent enough: rows for
reviews, series for forecasts (a series' weeks are correlated), customers for ranking.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]  # sums [..., k] -> metric [...]
Units = tuple[np.ndarray, Statistic]  # stats [n units, k], statistic


# fewer units than this give a percentile interval that moves with the draw: it is said so
MIN_UNITS = 30


def plural(unit: str) -> str:
    """A holdout unit's plural: reviews, customers, series."""
    return unit if unit.endswith("s") else f"{unit}s"


@dataclass(frozen=True)
class Comparison:
    """Challenger minus champion on ``metric``, signed so that positive is better."""

    metric: str
    difference: float
    low: float  # the confidence interval of the difference
    high: float
    level: float
    resamples: int
    units: int
    unit: str

    def verdict(self, tolerance: float) -> str:
        """"worse" when the interval lies below -tolerance, "better" when it lies above
        0, else "no clear difference"."""
        if self.high < -tolerance:
            return "worse"
        return "better" if self.low > 0 else "no clear difference"

    def describe(self) -> str:
        rough = (f"; only {self.units} {plural(self.unit)}: a rough interval (at least {MIN_UNITS} make a "
                 "steady one)") if self.units < MIN_UNITS else ""
        return (f"{self.metric} challenger - champion {self.difference:+.4f} (better is positive), "
                f"{self.level:.0%} interval [{self.low:+.4f}, {self.high:+.4f}] from {self.resamples} paired "
                f"resamples of {self.units} {plural(self.unit)}{rough}")

    def to_dict(self) -> dict:
        return asdict(self)


def paired_bootstrap(metric: str, challenger: Units, champion: Units, *, lower_is_better: bool, unit: str,
                     resamples: int = 1000, level: float = 0.95, seed: int = 0) -> Comparison:
    """Percentile interval of the metric's difference over ``resamples`` paired draws."""
    (mine, mine_stat), (theirs, theirs_stat) = challenger, champion
    if len(mine) != len(theirs):
        raise ValueError(f"paired bootstrap needs the same units: {len(mine)} and {len(theirs)}")
    sign = -1.0 if lower_is_better else 1.0
    n = len(mine)
    point = sign * float(mine_stat(mine.sum(axis=0)) - theirs_stat(theirs.sum(axis=0)))
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    for start in range(0, resamples, 100):  # 100 draws at a time: [100, n] weights, whatever n is
        size = min(100, resamples - start)
        weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(size)]).astype(float)
        diffs[start:start + size] = sign * (mine_stat(weights @ mine) - theirs_stat(weights @ theirs))
    alpha = (1 - level) / 2
    low, high = np.quantile(diffs, [alpha, 1 - alpha])
    return Comparison(metric, point, float(low), float(high), level, resamples, n, unit)


def ratio(numerator: int, denominator: int) -> Statistic:
    """sums[numerator] / sums[denominator] (0 where the denominator is 0)."""
    def statistic(sums: np.ndarray) -> np.ndarray:
        den = sums[..., denominator]
        return np.divide(sums[..., numerator], den, out=np.zeros_like(den, dtype=float), where=den != 0)
    return statistic


def macro_f1(classes: int) -> Statistic:
    """Macro-F1 from sums laid out as [tp, fp, fn] per class (a class with none is 0)."""
    def statistic(sums: np.ndarray) -> np.ndarray:
        counts = sums.reshape(*sums.shape[:-1], classes, 3)
        tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
        den = 2 * tp + fp + fn
        return np.divide(2 * tp, den, out=np.zeros_like(den, dtype=float), where=den != 0).mean(axis=-1)
    return statistic
