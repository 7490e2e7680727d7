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
                "kind": mv.tags.get("model_kind", "transformer"), "candidate": mv.tags.get("candidate", "transformer"),
                "metric": metric, "challenger": metrics.get(f"challenger_{metric}"),
                "baseline": metrics.get(f"baseline_{metric}"), "champion_before": metrics.get(f"champion_{metric}"),
                "reasons": mv.tags.get("gate_reasons", ""),
            })
    return sorted(rows, key=lambda r: (r["family"], r["version"]))


def retrain_summary(settings: Settings, day: date) -> dict[str, dict[str, str]]:
    """Per family, where its retraining of ``day`` stands: no data (and why), held by drift,
    not worth retraining (every condition with its figure), or its latest version, gate
    decision and champion. Logged as a table; returned."""
    import logging

    from pipeline.datasets import missing_data
    from pipeline.ingest.quality import open_holds
    from pipeline.tables import text_table
    from pipeline.monitoring.retrain import recorded_decision
    from pipeline.registry import champion_version, latest_version

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
        decision = recorded_decision(lake, family, day)
        if decision and not decision["retrain"]:
            out[family] = {"status": "not worth retraining", "detail": "; ".join(decision["checks"])}
            continue
        latest = latest_version(settings, family)
        champion = champion_version(settings, family)
        if latest is None:
            out[family] = {"status": "not registered", "detail": "no version yet (see the task logs)"}
            continue
        gate = "passed" if latest.tags.get("gate_passed") == "true" else "failed: " + latest.tags.get("gate_reasons", "")
        out[family] = {"status": "champion" if champion == str(latest.version) else "not promoted",
                       "detail": f"latest v{latest.version} (gate {gate}; {latest.tags.get('data_window', '')}), "
                                 f"champion {'v' + champion if champion else 'none'}"}
    logging.getLogger(__name__).info("retraining of %s:\n%s", day, text_table(
        ["family", "status", "detail"], [[f, v["status"], v["detail"]] for f, v in out.items()]))
    return out


def latest_data_day(settings: Settings) -> date | None:
    """The date of the latest validated partition of any feed: "today" for the lake."""
    from pipeline.feeds import FEEDS
    from pipeline.validated import validated_partitions

    lake = lake_from_settings(settings)
    days = [max(found) for feed in FEEDS if (found := validated_partitions(lake, feed))]
    return max(days) if days else None


def champion_status(settings: Settings, day: date) -> list[dict]:
    """Per family as of ``day``: the champion, its metric at promotion and live, its age,
    the labelled data that arrived since its training, its probation, and every retrain
    condition with its figure (what would fire next)."""
    from pipeline.monitoring.monitor import latest_live
    from pipeline.monitoring.reports import probation_label
    from pipeline.monitoring.retrain import decide, retrain_facts
    from pipeline.registry import version_kind

    configure_mlflow(settings)
    lake = lake_from_settings(settings)
    rows = []
    for family in FAMILIES:
        facts = retrain_facts(settings, family, day)
        decision = decide(facts, settings.retrain.rule(family), settings.retrain.policy)
        live = latest_live(lake, family, day) or {}
        rows.append({
            "family": family, "champion": facts.champion, "metric": facts.metric,
            "kind": version_kind(settings, family, facts.champion) if facts.champion else None,
            "at_promotion": facts.promoted_value, "live": facts.live_value, "live_samples": facts.live_samples,
            "live_day": facts.live_day, "latest_version": facts.latest_version, "trained_until": facts.trained_until,
            "age_days": (day - facts.trained_until).days if facts.trained_until else None,
            "new_rows": facts.new_rows, "probation": probation_label(live.get("probation")),
            "retrain": decision.retrain, "checks": decision.checks,
        })
    return rows


def render_champion_status(rows: list[dict], day: date) -> str:
    lines = [f"Champions as of {day}:"]
    for r in rows:
        if r["champion"] is None:
            lines.append(f"  {r['family']}: no champion" + (f" (latest v{r['latest_version']})" if r["latest_version"] else ""))
        else:
            live = (f"{fmt_metric(r['live'])} on {r['live_samples']:,} samples (to {r['live_day']})"
                    if r["live"] is not None else "no ground truth yet")
            lines.append(f"  {r['family']}: v{r['champion']} ({r['kind']})  {r['metric']} at promotion {fmt_metric(r['at_promotion'])}, "
                         f"live {live}; probation: {r['probation']}")
        if r["trained_until"]:
            lines.append(f"    latest training v{r['latest_version']} on data up to {r['trained_until']} "
                         f"({r['age_days']} days ago); {r['new_rows']:,} new labelled rows since")
        lines.append(f"    next retrain: {'WOULD RETRAIN now' if r['retrain'] else 'not yet'}; conditions:")
        lines += [f"      - {check}" for check in r["checks"]]
    return "\n".join(lines)


def render_summary(settings: Settings, day: date) -> str:
    lines = ["Registered models (the candidate each retrain chose, its kind, and its primary holdout metric "
             "against the best reference baseline):"]
    for r in model_rows(settings):
        lines.append(
            f"  {r['model']} v{r['version']} [{r['aliases']}] {r['candidate']} ({r['kind']}) gate {r['gate']}: {r['metric']} "
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
