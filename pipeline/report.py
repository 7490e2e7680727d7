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


def retrain_summary(settings: Settings, day: date) -> dict[str, dict[str, str]]:
    """Per family, where its retraining of ``day`` stands: no data (and why), held by drift,
    or its latest version, gate decision and champion. Logged as a table; returned."""
    import logging

    from mlflow import MlflowClient

    from pipeline.datasets import missing_data
    from pipeline.ingest.quality import open_holds
    from pipeline.ingest.report import text_table
    from pipeline.registry import champion_version

    configure_mlflow(settings)
    lake = lake_from_settings(settings)
    out: dict[str, dict[str, str]] = {}
    for family, record in FAMILIES.items():
        reason = missing_data(lake, family, day, settings.families)
        holds = [] if reason else open_holds(lake, record.feeds, day)
        if reason or holds:
            out[family] = {"status": "no data" if reason else "held by drift", "detail": reason or "; ".join(
                f"{h['feed']} {h['logical_date']}" for h in holds)}
            continue
        name = settings.model_name(family)
        versions = MlflowClient().search_model_versions(f"name='{name}'")
        champion = champion_version(settings, family)
        if not versions:
            out[family] = {"status": "not registered", "detail": "no version yet (see the task logs)"}
            continue
        latest = max(versions, key=lambda v: int(v.version))
        gate = "passed" if latest.tags.get("gate_passed") == "true" else "failed: " + latest.tags.get("gate_reasons", "")
        out[family] = {"status": "champion" if champion == str(latest.version) else "not promoted",
                       "detail": f"latest v{latest.version} (gate {gate}; {latest.tags.get('data_window', '')}), "
                                 f"champion {'v' + champion if champion else 'none'}"}
    logging.getLogger(__name__).info("retraining of %s:\n%s", day, text_table(
        ["family", "status", "detail"], [[f, v["status"], v["detail"]] for f, v in out.items()]))
    return out


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
