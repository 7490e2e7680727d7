"""A readable summary of the registry and the consumer outputs (printed after a run)."""

from __future__ import annotations

from datetime import date

from pipeline import zones
from pipeline.evaluation.report import fmt_metric
from pipeline.families import FAMILIES
from pipeline.lake import lake_from_settings
from pipeline.settings import Settings
from pipeline.tracking import configure_mlflow


def model_rows(settings: Settings) -> list[dict]:
    """One row per registered version: gate decision, primary metric vs baseline, aliases."""
    from mlflow import MlflowClient

    configure_mlflow(settings)
    client = MlflowClient()
    rows = []
    for family, record in FAMILIES.items():
        name = settings.model_name(family)
        metric = record.primary_metric
        for found in client.search_model_versions(f"name='{name}'"):
            mv = client.get_model_version(name, found.version)  # search results leave out aliases
            metrics = client.get_run(mv.run_id).data.metrics
            rows.append({
                "family": family, "model": name, "version": int(mv.version),
                "aliases": ",".join(mv.aliases) or "-", "gate": "passed" if mv.tags.get("gate_passed") == "true" else "failed",
                "metric": metric, "challenger": metrics.get(f"challenger_{metric}"),
                "baseline": metrics.get(f"baseline_{metric}"), "champion_before": metrics.get(f"champion_{metric}"),
                "reasons": mv.tags.get("gate_reasons", ""),
            })
    return sorted(rows, key=lambda r: (r["family"], r["version"]))


def render_summary(settings: Settings, day: date) -> str:
    lines = ["Registered models (primary holdout metric: challenger vs baseline):"]
    for r in model_rows(settings):
        lines.append(
            f"  {r['model']} v{r['version']} [{r['aliases']}] gate {r['gate']}: {r['metric']} "
            f"{fmt_metric(r['challenger'])} vs baseline {fmt_metric(r['baseline'])} (champion before: {fmt_metric(r['champion_before'])})"
            + (f" reasons: {r['reasons']}" if r["gate"] == "failed" else "")
        )
    lake = lake_from_settings(settings)
    lines.append(f"Consumer outputs for {day}:")
    for consumer in sorted(record.consumer for record in FAMILIES.values() if record.consumer):
        files = lake.list(zones.output_folder(lake, consumer, day))
        lines.append(f"  {consumer}: " + (", ".join(files) if files else "none"))
    lines.append(f"MLflow: {settings.mlflow_tracking_uri}   lake: {settings.lake_uri}")
    return "\n".join(lines)
