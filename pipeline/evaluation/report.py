"""The gate report a person reads before approving: Markdown with one table of every
candidate, the champion and the reference baselines, the choice and every reason, the
slices, plus a bar chart of the gated metrics."""

from __future__ import annotations

from typing import Any

from pipeline.evaluation.gate import ROLES, Evidence, GateDecision, Slices
from pipeline.evaluation.metrics import worse_by
from pipeline.settings import GateSettings

MAX_SLICE_ROWS = 30


def fmt_metric(value: float | None) -> str:
    """Four decimals; a count (a whole number above 1, such as holdout rows) without them."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) > 1 else f"{value:.4f}"


def gated_metrics(decision: GateDecision, rules: GateSettings, challenger: dict[str, float]) -> list[str]:
    names = [decision.primary_metric]
    for limits in (rules.minimums.get(decision.family, {}), rules.maximums.get(decision.family, {})):
        for name in limits:
            found = [m for m in sorted(challenger) if m.startswith(name[:-1])] if name.endswith("*") else [name]
            names += [m for m in found if m not in names]
    return names


def gate_report(decision: GateDecision, by_role: dict[str, dict[str, float]], slices: Slices,
                rules: GateSettings, baselines: dict[str, dict[str, float]] | None = None,
                candidates: dict[str, dict[str, float]] | None = None) -> str:
    """One table of every candidate, the champion and every reference baseline on every
    metric, which candidate was chosen and why, then the rules, slices and notes.
    ``by_role``: the chosen (or registered) candidate as ``challenger``, the champion and the
    best reference baseline; ``candidates``: every candidate's metrics by name."""
    verdict = "PASSED" if decision.passed else "FAILED"
    chosen = decision.candidate if decision.passed else None
    lines = [f"# Gate {verdict}: {decision.family}", ""]
    if chosen:
        lines += [f"Chosen: **{chosen}** ({decision.kind}), on {decision.primary_metric}.", ""]
    elif decision.candidate:
        lines += [f"No candidate chosen; {decision.candidate} ({decision.kind}) is registered as failed.", ""]
    if decision.evidence:
        lines += [f"Evidence: {Evidence(**decision.evidence).describe()}.", ""]
    if decision.first_model:
        lines += ["First model of this family: there is no champion, so the champion and slice rules do not "
                  "apply.", ""]
    candidates = candidates or {"challenger": by_role["challenger"]}
    columns = {**{f"{n}{' (chosen)' if n == chosen else ''}": m for n, m in candidates.items()},
               "champion": by_role.get("champion", {}),
               **{f"baseline {n}".strip(): m for n, m in sorted((baselines or {"": by_role.get("baseline", {})}).items())}}
    lines += [f"| metric | {' | '.join(columns)} | minimum | maximum |",
              "|---|" + "---:|" * (len(columns) + 2)]
    mins, maxs = rules.minimums.get(decision.family, {}), rules.maximums.get(decision.family, {})
    every = sorted({m for metrics in candidates.values() for m in metrics})
    gated = gated_metrics(decision, rules, by_role["challenger"])
    for name in [m for m in gated if m in every] + [m for m in every if m not in gated]:
        low = mins.get(name, next((v for k, v in mins.items() if k.endswith("*") and name.startswith(k[:-1])), None))
        high = maxs.get(name, next((v for k, v in maxs.items() if k.endswith("*") and name.startswith(k[:-1])), None))
        row = [fmt_metric(metrics.get(name)) for metrics in columns.values()]
        marker = " (primary)" if name == decision.primary_metric else ""
        lines.append(f"| {name}{marker} | {' | '.join(row)} | {fmt_metric(low)} | {fmt_metric(high)} |")
    if decision.candidates:
        lines += ["", "## Candidates", ""]
        for name, verdict_of in decision.candidates.items():
            reasons = "; ".join(verdict_of["failures"]) or "every rule passed"
            lines.append(f"- **{name}** ({verdict_of['kind']}): {reasons}")
    lines += ["", "## Failed rules", ""]
    lines += [f"- **{f.rule}** ({f.metric}): {f.reason}" for f in decision.failures] or ["- none"]
    for rule in rules.slices.get(decision.family, []):
        mine = slices.get("challenger", {}).get(rule.dimension, {})
        theirs = slices.get("champion", {}).get(rule.dimension, {})
        base = slices.get("baseline", {}).get(rule.dimension, {})

        def loss(v: str) -> float:  # how much worse than the champion; slices without one last
            return worse_by(rule.metric, mine[v]["metric"], theirs[v]["metric"]) if v in theirs else float("-inf")

        shown = sorted(mine, key=lambda v: (-loss(v), -mine[v]["n"]))[:MAX_SLICE_ROWS]
        more = f"; the {len(shown)} that lost most, of {len(mine)}" if len(shown) < len(mine) else ""
        lines += ["", f"## Slices: {rule.metric} by {rule.dimension} (at least {rule.min_samples} rows; "
                      f"regressed = worse than the champion by more than {rule.max_drop}{more})", "",
                  "| slice | rows | challenger | champion | baseline | regressed |", "|---|---:|---:|---:|---:|---|"]
        for value in shown:
            ch, cp = mine[value], theirs.get(value)
            regressed = "-" if cp is None or ch["n"] < rule.min_samples else (
                "yes" if loss(value) > rule.max_drop else "no")
            lines.append(f"| {value} | {ch['n']} | {fmt_metric(ch['metric'])} | {fmt_metric(cp and cp['metric'])} | "
                         f"{fmt_metric(base.get(value, {}).get('metric'))} | {regressed} |")
    if decision.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in decision.notes]]
    lines += ["", "![gated metrics](gate.png)"]
    return "\n".join(lines) + "\n"


def gate_chart(decision: GateDecision, by_role: dict[str, dict[str, float]]) -> Any:
    """Grouped bars: challenger, champion and baseline on each metric the gate read."""
    import numpy as np

    from pipeline.evaluation.plots import new_figure

    names = [n for n in sorted(by_role["challenger"]) if not n.endswith("_rows")][:12]
    fig, ax = new_figure(8.0, 4.0)
    width = 0.27
    x = np.arange(len(names))
    for i, role in enumerate(ROLES):
        values = [by_role.get(role, {}).get(n, np.nan) for n in names]
        ax.bar(x + (i - 1) * width, values, width, label=role)
    ax.set_xticks(x, names, rotation=40, ha="right", fontsize=8)
    ax.set_title(f"{decision.family}: gate {'passed' if decision.passed else 'FAILED'}")
    ax.legend()
    fig.tight_layout()
    return fig
