"""What the monitor shows: the monitoring table and the per-slice table for task logs and
``models status``, the probation's label, and the family's monitoring run in MLflow (one
step per day, the day's record, the plot of the live metric)."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any

import pandas as pd

from pipeline import zones
from pipeline.settings import Settings
from pipeline.tables import text_table
from pipeline.tracking import configure_mlflow, mlflow_key

MONITORING_TAG = "monitoring"  # on the per-family monitoring run: the family (no training run has it)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def monitor_table(records: list[dict[str, Any]]) -> str:
    """One row per family: champion, its metric at promotion and live, the probation."""
    rows = []
    for r in records:
        live, probation = r["live"], r.get("probation") or {}
        shadow = (probation.get("evidence") or {}).get("shadow") or {}
        rows.append([
            r["family"], f"v{r['champion']}" if r["champion"] else "none", r["metric"], _fmt(r["promoted"]),
            _fmt(live.get(r["metric"])), live.get("samples", 0),
            f"{100 * r['decay']:+.1f}%" if "decay" in r else "-",
            f"v{shadow['version']}: {_fmt(shadow.get(r['metric']))} ({shadow.get('samples', 0)})" if shadow else "-",
            probation_label(probation),
        ])
    return text_table(["family", "champion", "metric", "at promotion", "live", "samples", "worse by",
                       "shadow (samples)", "probation"], rows)


def probation_label(probation: dict[str, Any] | None) -> str:
    """A probation record as one cell: its status, and its end while it runs."""
    probation = probation or {}
    status = probation.get("status", "-")
    return f"{status} until {probation['ends']}" if status == "running" else status


def slice_table(record: dict[str, Any]) -> str:
    names = sorted({k for m in record["slices"].values() for k in m if k != "samples"})
    return text_table(["slice", "samples", *names], [[name, m["samples"], *(_fmt(m.get(k)) for k in names)]
                                                      for name, m in sorted(record["slices"].items())])


def day_stamp(day: date) -> int:
    """Midnight UTC of ``day`` in milliseconds: the timestamp of its figures in MLflow."""
    return int(datetime.combine(day, time(), timezone.utc).timestamp() * 1000)


def monitoring_run(experiment_id: str, family: str) -> str | None:
    import mlflow

    runs = mlflow.search_runs(experiment_ids=[experiment_id], filter_string=f"tags.{MONITORING_TAG} = '{family}'",
                              max_results=1, output_format="list")
    return runs[0].info.run_id if runs else None


def log_to_mlflow(settings: Settings, family: str, day: date, out: dict[str, Any],
                  records: list[dict[str, Any]]) -> None:
    """Today's figures as one step of the family's monitoring run; the record as an
    artifact; the plot of every day so far (``records``: the family's live records)."""
    import matplotlib.pyplot as plt
    import mlflow

    experiment_id = configure_mlflow(settings)
    run_id = monitoring_run(experiment_id, family)
    metric = out["metric"]
    values = {f"live_{k}": v for k, v in out["live"].items() if isinstance(v, (int, float))}
    if out["champion"]:
        values["champion_version"] = int(out["champion"])
    if out["promoted"] is not None:
        values[f"promoted_{metric}"] = out["promoted"]
    shadow = ((out.get("probation") or {}).get("evidence") or {}).get("shadow") or {}
    if metric in shadow:
        values[f"shadow_{metric}"], values["shadow_samples"] = shadow[metric], shadow["samples"]
    stamp = day_stamp(day)
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else f"monitor-{family}",
                          tags=None if run_id else {MONITORING_TAG: family, "family": family}):
        mlflow.log_metrics({mlflow_key(k): float(v) for k, v in values.items()}, step=day.toordinal(), timestamp=stamp)
        mlflow.log_dict(out, f"live/{zones.partition(day)}.json")
        figure = live_plot(records, metric)
        mlflow.log_figure(figure, f"plots/live_{metric}.png")
        plt.close(figure)


def live_plot(records: list[dict[str, Any]], metric: str) -> Any:
    """The champion's live metric per day, its metric at promotion, the shadow's during a
    probation, and a marker where the champion changed."""
    from pipeline.evaluation.plots import new_figure

    fig, ax = new_figure(8, 4)
    days = [pd.Timestamp(r["day"]) for r in records]
    ax.plot(days, [r["live"].get(metric) for r in records], marker="o", label=f"champion, live {metric}")
    ax.step(days, [r["promoted"] for r in records], where="post", linestyle="--", label="champion at promotion")
    shadow = [(((r.get("probation") or {}).get("evidence") or {}).get("shadow") or {}).get(metric) for r in records]
    if any(v is not None for v in shadow):
        ax.plot(days, shadow, marker="x", linestyle=":", label="previous champion in shadow")
    for before, after in zip(records, records[1:]):
        if before["champion"] != after["champion"]:
            ax.axvline(pd.Timestamp(after["day"]), color="grey", alpha=0.5)
            ax.annotate(f"v{after['champion']}", (pd.Timestamp(after["day"]), ax.get_ylim()[1]), fontsize=8)
    ax.set_title(f"{records[-1]['family'] if records else ''}: live {metric}")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
