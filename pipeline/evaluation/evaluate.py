"""Score challenger, champion and baseline on one holdout; then apply the gate."""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from pipeline.datasets import FamilyData, load_dataset
from pipeline.evaluation.bootstrap import Comparison, paired_bootstrap
from pipeline.evaluation.gate import LOWER_IS_BETTER, ROLES, GateDecision, evaluate_gate
from pipeline.families import Family, get_family
from pipeline.lake import lake_from_settings
from pipeline.registry import champion_version
from pipeline.settings import Settings
from pipeline.tracking import configure_mlflow, mlflow_key, run_address

log = logging.getLogger(__name__)


def evaluate_run(settings: Settings, family: str, dataset_uri: str, run_id: str) -> str:
    """Log ``challenger_*``, ``baseline_*`` and ``champion_*`` metrics to the run; return the run id.
    A run already evaluated on this dataset's holdout keeps its evaluation."""
    import mlflow

    configure_mlflow(settings)
    tags = mlflow.get_run(run_id).data.tags
    if tags.get("evaluation_set_uri") == f"{dataset_uri}/holdout.parquet":
        # a run reused by a re-run over the same data: its evaluation stands as the
        # registered version recorded it (against the champion of that time)
        log.info("run %s was already evaluated on this holdout (against champion %s); keeping that evaluation",
                 run_id, tags.get("champion_version_at_evaluation"))
        return run_id
    data = load_dataset(lake_from_settings(settings), dataset_uri)
    record = get_family(family)
    hp = settings.hyperparameters(family)
    question = record.function("question")(data)
    if question.attrs.get("basis"):
        log.info("%s question: %s", family, question.attrs["basis"])
    model_uri = mlflow.get_run(run_id).data.tags["model_uri"]
    score, slicer = record.function("score"), record.function("slices")
    models = {"challenger": mlflow.pyfunc.load_model(model_uri)}
    champion = champion_version(settings, family)
    if champion is not None:
        uri = f"models:/{settings.model_name(family)}/{champion}"  # the version read above, even if the alias moves
        models["champion"] = mlflow.pyfunc.load_model(uri)
    predictions = {role: model.predict(question) for role, model in models.items()}
    functions = {name.rpartition(":")[2]: name for name in (record.baseline, *record.more_baselines)}
    baselines = {}
    for short, name in functions.items():
        started = time.perf_counter()
        baseline = record.function_named(name)(data, hp)
        baselines[short] = (baseline, score(baseline, data, hp))
        log.info("baseline %s scored in %.1f s", name, time.perf_counter() - started)
    best = min(baselines, key=lambda n: (primary_rank(record.primary_metric, baselines[n][1]), n))
    predictions["baseline"] = baselines[best][0]
    results = {role: score(p, data, hp) if role != "baseline" else baselines[best][1]
               for role, p in predictions.items()}
    slices = {role: slicer(p, data, hp) for role, p in predictions.items()}
    views = {"time_split": _score_view(record, data.time_split_view(), models, functions[best], hp)}
    comparison = None
    if champion is not None:
        comparison = compare_with_champion(record, predictions, data, hp, settings)
        log.info("against champion v%s: %s (%s)", champion, comparison.describe(),
                 comparison.verdict(settings.gate.champion_tolerance))
    with mlflow.start_run(run_id=run_id) as run:
        log.info("MLflow run: %s", run_address(settings, run.info.experiment_id, run_id))
        for role, metrics in results.items():
            mlflow.log_metrics({mlflow_key(f"{role}_{k}"): v for k, v in metrics.items()})
        for view, scores in views.items():
            for role, metrics in (scores or {}).items():
                mlflow.log_metrics({mlflow_key(f"{view}/{role}_{k}"): v for k, v in metrics.items()})
        if comparison is not None:
            mlflow.log_metrics({"vs_champion_difference": comparison.difference,
                                "vs_champion_low": comparison.low, "vs_champion_high": comparison.high})
        for name, (baseline, metrics) in baselines.items():
            mlflow.log_metrics({mlflow_key(f"baselines/{name}/{k}"): v for k, v in metrics.items()})
            # a baseline that picks its own setting on a validation split (EASE's lambda, kNN's k)
            for setting, value in baseline.attrs.get("chosen_on_validation", {}).items():
                if not isinstance(value, dict):
                    mlflow.log_param(mlflow_key(f"baselines/{name}/{setting}"), value)
        # the precision each model scored the holdout in, where the model says (sentiment: bf16
        # on a CPU with native bf16, else fp32): a gate metric can move by a row or two with it
        mlflow.set_tags({f"scoring_precision.{role}": p.attrs["scoring_precision"]
                         for role, p in predictions.items() if "scoring_precision" in p.attrs})
        mlflow.set_tags({"champion_version_at_evaluation": champion or "none", "best_baseline": best,
                         "evaluation_set_uri": f"{dataset_uri}/holdout.parquet",
                         "question_basis": question.attrs.get("basis", "")[:5000]})
        mlflow.log_dict({"champion_version": champion, "best_baseline": best, **results,
                         "baselines": {n: m for n, (_, m) in baselines.items()},
                         "champion_comparison": comparison and comparison.to_dict(),
                         "views": views}, "evaluation/metrics.json")
        mlflow.log_dict(slices, "evaluation/slices.json")
        _log_evaluation_set(data)
        _log_plot(record, data, predictions, hp)
    table = pd.DataFrame({**results, **{f"baseline {n}": m for n, (_, m) in baselines.items()}}).T
    log.info("%s holdout metrics (%d rows):\n%s", family, len(data.holdout), table.to_string(float_format="%.4f"))
    if views["time_split"]:
        log.info("%s by time (the next item after the cutoff of %d customers):\n%s", family, len(data.recent),
                 pd.DataFrame(views["time_split"]).T.to_string(float_format="%.4f"))
    return run_id


def _score_view(record: Family, view: FamilyData | None, models: dict[str, Any], baseline: str,
                hp: object) -> dict[str, dict[str, float]] | None:
    """Challenger, champion and the best baseline (the function ``baseline``) scored on a
    second holdout (None without one): the same models, asked the view's question."""
    if view is None:
        return None
    question = record.function("question")(view)
    score = record.function("score")
    scores = {role: score(model.predict(question), view, hp) for role, model in models.items()}
    scores["baseline"] = score(record.function_named(baseline)(view, hp), view, hp)
    return scores


def compare_with_champion(record: Family, predictions: dict[str, pd.DataFrame], data: FamilyData, hp: object,
                          settings: Settings) -> Comparison:
    """The paired bootstrap of challenger - champion on the primary metric over the holdout's units."""
    units = record.function("units")
    unit, mine = units(predictions["challenger"], data, hp)
    _, theirs = units(predictions["champion"], data, hp)
    metric = record.primary_metric
    return paired_bootstrap(metric, mine[metric], theirs[metric], lower_is_better=metric in LOWER_IS_BETTER,
                            unit=unit, resamples=settings.gate.bootstrap_resamples,
                            level=settings.gate.confidence_level)


def primary_rank(metric: str, metrics: dict[str, float]) -> float:
    """Sort key: the best value of ``metric`` first, a baseline without it last."""
    value = metrics.get(metric)
    if value is None:
        return float("inf")
    return value if metric in LOWER_IS_BETTER else -value


def _log_evaluation_set(data: FamilyData) -> None:
    """The frozen holdout every role was scored on, kept with the run."""
    import tempfile
    from pathlib import Path

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "holdout.parquet"
        data.holdout.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), "evaluation")


def _log_plot(family: Family, data: FamilyData, predictions: dict[str, pd.DataFrame], hp: object) -> None:
    """The family's holdout figure, as plots/<name>.png in the run."""
    import matplotlib.pyplot as plt
    import mlflow

    name, fig = family.function("plot")(predictions, data, hp)
    mlflow.log_figure(fig, f"plots/{name}.png")
    plt.close(fig)


def gate_run(settings: Settings, family: str, run_id: str) -> dict:
    """Apply the gate to the run's logged metrics and slices; log the decision, its
    reasons and a report; return the decision as a dict."""
    import matplotlib.pyplot as plt
    import mlflow

    from pipeline.evaluation.report import gate_chart, gate_report

    configure_mlflow(settings)
    metrics = mlflow.get_run(run_id).data.metrics
    by_role = {
        role: {k[len(role) + 1:]: v for k, v in metrics.items() if k.startswith(role + "_")} for role in ROLES
    }
    slices = mlflow.artifacts.load_dict(f"runs:/{run_id}/evaluation/slices.json")
    evaluation = mlflow.artifacts.load_dict(f"runs:/{run_id}/evaluation/metrics.json")
    baselines = evaluation.get("baselines")
    decision: GateDecision = evaluate_gate(
        family, get_family(family).primary_metric, by_role["challenger"], by_role["baseline"],
        by_role["champion"] or None, settings.gate, slices,
        Comparison(**evaluation["champion_comparison"]) if evaluation.get("champion_comparison") else None,
    )
    report = gate_report(decision, by_role, slices, settings.gate, baselines)
    with mlflow.start_run(run_id=run_id):
        mlflow.set_tags({"gate_passed": str(decision.passed).lower(),
                         "gate_reasons": "; ".join(f.reason for f in decision.failures) or "all rules passed"})
        mlflow.log_dict(decision.to_dict(), "evaluation/gate.json")
        mlflow.log_text(report, "evaluation/gate_report.md")
        figure = gate_chart(decision, by_role)
        mlflow.log_figure(figure, "evaluation/gate.png")
        plt.close(figure)
    log.info("%s\n\n%s", decision.summary(), report)
    return decision.to_dict()
