"""Score challenger, champion and baseline on one holdout; then apply the gate."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import asdict
from typing import Any, Callable

import pandas as pd

from pipeline.datasets import FamilyData, load_dataset
from pipeline.evaluation.bootstrap import Comparison, paired_bootstrap
from pipeline.evaluation.gate import CandidateResult, Evidence, choose_candidate, rank_by
from pipeline.evaluation.metrics import LOWER_IS_BETTER, best_first
from pipeline.families import Family, candidate_tag, get_family
from pipeline.lake import lake_from_settings
from pipeline.registry import champion_version
from pipeline.settings import Settings
from pipeline.tracking import configure_mlflow, mlflow_key, run_address

log = logging.getLogger(__name__)


def candidate_models(record: Family, tags: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Each of the family's candidates the training run logged: (kind, model URI); a run
    logged with one model only (``model_uri``) is a transformer alone."""
    found = {c.name: (c.kind, tags[candidate_tag(c.name)]) for c in record.candidates if candidate_tag(c.name) in tags}
    if not found and tags.get("model_uri"):
        return {"transformer": ("transformer", tags["model_uri"])}
    return found


def ask(predict: Callable[[FamilyData], pd.DataFrame], windows: list[FamilyData]) -> pd.DataFrame:
    """One model's answers to every window of the holdout (each asked from its own origin)."""
    parts = [predict(window) for window in windows]
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    out.attrs = parts[0].attrs
    return out


def evaluate_run(settings: Settings, family: str, dataset_uri: str, run_id: str) -> str:
    """Score every candidate of the run, the champion and the reference baselines on one
    holdout (the forecaster's: each window from its origin); log each candidate's metrics
    (``candidates/<name>/<metric>``), ``champion_*`` and ``baseline_*``, each candidate's paired
    bootstrap against the champion and against the best other candidate, and the evidence.
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
    windows = record.function("windows")(data, hp) if record.windows else [data]
    question_of = record.function("question")
    basis = question_of(windows[0]).attrs.get("basis", "")
    if basis:
        log.info("%s question: %s", family, basis)
    score, slicer, units_of = record.function("score"), record.function("slices"), record.function("units")
    candidates = candidate_models(record, tags)
    models = {name: mlflow.pyfunc.load_model(uri) for name, (_, uri) in candidates.items()}
    champion = champion_version(settings, family)
    if champion is not None:
        uri = f"models:/{settings.model_name(family)}/{champion}"  # the version read above, even if the alias moves
        models["champion"] = mlflow.pyfunc.load_model(uri)
    predictions = {role: ask(lambda w, m=model: m.predict(question_of(w)), windows) for role, model in models.items()}
    functions = {name.rpartition(":")[2]: name for name in (record.baseline, *record.more_baselines)}
    baselines = {}
    for short, name in functions.items():
        started = time.perf_counter()
        baseline = ask(lambda w, f=record.function_named(name): f(w, hp), windows)
        baselines[short] = (baseline, score(baseline, data, hp))
        log.info("baseline %s scored in %.1f s", name, time.perf_counter() - started)
    best = min(baselines, key=lambda n: (best_first(record.primary_metric, baselines[n][1].get(record.primary_metric)), n))
    predictions["baseline"] = baselines[best][0]
    results = {role: score(p, data, hp) if role != "baseline" else baselines[best][1]
               for role, p in predictions.items()}
    slices = {role: slicer(p, data, hp) for role, p in predictions.items()}
    units = {role: units_of(predictions[role], data, hp) for role in models}
    unit, stats = next(iter(units.values()))
    evidence = Evidence(unit, len(stats[record.primary_metric][0]), len(data.holdout), len(windows))
    ranked = rank_by(record.primary_metric, {name: results[name] for name in candidates})
    compare = functools.partial(_compare, record.primary_metric, units, settings)
    summary = {name: {"kind": kind, "metrics": results[name],
                      "comparison": compare(name, "champion") if champion is not None else None,
                      "vs_runner_up": compare(name, next(o for o in ranked if o != name)) if len(ranked) > 1 else None}
               for name, (kind, _) in candidates.items()}
    views = {"time_split": _score_view(record, data.time_split_view(), models, functions[best], hp)}
    with mlflow.start_run(run_id=run_id) as run:
        log.info("MLflow run: %s", run_address(settings, run.info.experiment_id, run_id))
        for role, metrics in results.items():
            prefix = f"candidates/{role}/" if role in candidates else f"{role}_"
            mlflow.log_metrics({mlflow_key(f"{prefix}{k}"): v for k, v in metrics.items()})
        for view, scores in views.items():
            for role, metrics in (scores or {}).items():
                mlflow.log_metrics({mlflow_key(f"{view}/{role}_{k}"): v for k, v in metrics.items()})
        mlflow.log_metrics({"evidence_units": evidence.units, "evidence_windows": evidence.windows})
        for name, (baseline, metrics) in baselines.items():
            mlflow.log_metrics({mlflow_key(f"baselines/{name}/{k}"): v for k, v in metrics.items()})
        # the precision each model scored the holdout in, where the model says (sentiment: bf16
        # on a CPU with native bf16, else fp32): a gate metric can move by a row or two with it
        mlflow.set_tags({f"scoring_precision.{role}": p.attrs["scoring_precision"]
                         for role, p in predictions.items() if "scoring_precision" in p.attrs})
        mlflow.set_tags({"champion_version_at_evaluation": champion or "none", "best_baseline": best,
                         "evaluation_set_uri": f"{dataset_uri}/holdout.parquet",
                         "question_basis": basis[:5000]})
        mlflow.log_dict({"champion_version": champion, "best_baseline": best, "candidates": summary,
                         "champion": results.get("champion"), "baseline": results["baseline"],
                         "baselines": {n: m for n, (_, m) in baselines.items()}, "evidence": asdict(evidence),
                         "views": views}, "evaluation/metrics.json")
        mlflow.log_dict({"candidates": {name: slices[name] for name in candidates},
                         **{role: slices[role] for role in ("champion", "baseline") if role in slices}},
                        "evaluation/slices.json")
        _log_evaluation_set(data)
        _log_plot(record, data, {"challenger": predictions[ranked[0]], **{
            role: predictions[role] for role in ("champion", "baseline") if role in predictions}}, hp)
    table = pd.DataFrame({**results, **{f"baseline {n}": m for n, (_, m) in baselines.items()}}).T
    log.info("%s holdout metrics (%s):\n%s", family, evidence.describe(), table.to_string(float_format="%.4f"))
    if views["time_split"]:
        log.info("%s by time (the next item after the cutoff of %d customers):\n%s", family, len(data.recent),
                 pd.DataFrame(views["time_split"]).T.to_string(float_format="%.4f"))
    return run_id


def _compare(metric: str, units: dict[str, tuple[str, dict]], settings: Settings, mine: str, theirs: str) -> dict:
    """The paired bootstrap of ``mine`` - ``theirs`` on ``metric`` over the holdout's units."""
    unit, stats = units[mine]
    return paired_bootstrap(metric, stats[metric], units[theirs][1][metric], lower_is_better=metric in LOWER_IS_BETTER,
                            unit=unit, resamples=settings.gate.bootstrap_resamples,
                            level=settings.gate.confidence_level).to_dict()


def _score_view(record: Family, view: FamilyData | None, models: dict[str, Any], baseline: str,
                hp: object) -> dict[str, dict[str, float]] | None:
    """Every candidate, the champion and the best baseline (the function ``baseline``) scored
    on a second holdout (None without one): the same models, asked the view's question."""
    if view is None:
        return None
    question = record.function("question")(view)
    score = record.function("score")
    scores = {role: score(model.predict(question), view, hp) for role, model in models.items()}
    scores["baseline"] = score(record.function_named(baseline)(view, hp), view, hp)
    return scores


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
    """Choose among the run's evaluated candidates (:func:`choose_candidate`); log the
    decision, its reasons, the report and the chosen candidate's metrics as ``challenger_*``;
    return the decision as a dict."""
    import matplotlib.pyplot as plt
    import mlflow

    from pipeline.evaluation.report import gate_chart, gate_report

    configure_mlflow(settings)
    evaluation = mlflow.artifacts.load_dict(f"runs:/{run_id}/evaluation/metrics.json")
    slices = mlflow.artifacts.load_dict(f"runs:/{run_id}/evaluation/slices.json")
    candidates = {
        name: CandidateResult(c["kind"], c["metrics"], slices["candidates"].get(name, {}),
                              *(Comparison(**c[k]) if c.get(k) else None for k in ("comparison", "vs_runner_up")))
        for name, c in evaluation["candidates"].items()}
    decision = choose_candidate(family, get_family(family).primary_metric, candidates, evaluation["baseline"],
                                evaluation.get("champion"), settings.gate, Evidence(**evaluation["evidence"]),
                                slices.get("champion"))
    chosen = decision.candidate
    by_role = {"challenger": candidates[chosen].metrics if chosen else {}, "champion": evaluation.get("champion") or {},
               "baseline": evaluation["baseline"]}
    report = gate_report(decision, by_role, {"challenger": slices["candidates"].get(chosen, {}), **slices},
                         settings.gate, evaluation.get("baselines"), {n: c.metrics for n, c in candidates.items()})
    with mlflow.start_run(run_id=run_id):
        if chosen:
            mlflow.log_metrics({mlflow_key(f"challenger_{k}"): v for k, v in candidates[chosen].metrics.items()})
        mlflow.set_tags({"gate_passed": str(decision.passed).lower(),
                         "gate_reasons": "; ".join(f.reason for f in decision.failures)[:5000] or "all rules passed",
                         "chosen_candidate": chosen or "none", "model_kind": decision.kind or "none"})
        mlflow.log_dict(decision.to_dict(), "evaluation/gate.json")
        mlflow.log_text(report, "evaluation/gate_report.md")
        figure = gate_chart(decision, by_role)
        mlflow.log_figure(figure, "evaluation/gate.png")
        plt.close(figure)
    log.info("%s\n\n%s", decision.summary(), report)
    return decision.to_dict()
