"""Every candidate of a retrain and the model the gate serves, on the real data sets the
project has, through the pipeline's own training, evaluation and gate (issue 29's targets).

Each case builds the family's dataset the way ``build_dataset`` does, writes it into a
temporary lake, then runs the same functions as the retrain DAG's tasks:
``train_model`` (every candidate), ``evaluate_run`` and ``gate_run``, against a temporary
MLflow store, with no champion. It reports every candidate's and reference baseline's
primary metric, the served candidate, the blend's weight (chosen on validation) and what
each candidate cost to train. Not a test: run it on demand::

    python benchmarks/candidates_bench.py [--cases oj walmart amazon ...] [--profile demo|production]

Writes benchmarks/results/candidates_<profile>.json and .md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any, Callable

from common import ROOT, machine, write_results  # noqa: E402 - also puts the project on sys.path

DAY = date(2026, 10, 3)


def oj_frames(plan: bool) -> dict[str, Any]:
    import pandas as pd

    from pipeline.demo_data import load_orange_juice

    sales = load_orange_juice()
    sales["date"] = pd.Timestamp("2026-10-03") - pd.to_timedelta((sales["week"].max() - sales["week"]) * 7, unit="D")
    sales = sales.drop(columns="week")
    return {"sales": sales, **({"plan": sales.drop(columns="units")} if plan else {})}


def walmart_frames() -> dict[str, Any]:
    from pipeline.demo_data import load_walmart_weekly

    sales, plan = load_walmart_weekly()
    return {"sales": sales, "plan": plan}


def cdnow_frames() -> dict[str, Any]:
    from pipeline.demo_data import load_cdnow_daily

    return {"sales": load_cdnow_daily().assign(promo=0.0)}


def amazon_frames() -> dict[str, Any]:
    import pandas as pd

    from pipeline.demo_data import load_reviews

    reviews = load_reviews()  # 4,000 training then 1,000 testing reviews: the holdout is the testing ones
    return {"reviews": reviews.assign(created_at=pd.Timestamp("2026-01-01") + pd.to_timedelta(range(len(reviews)),
                                                                                                unit="min"))}


def chinese_frames() -> dict[str, Any]:
    import importlib.util

    import pandas as pd

    spec = importlib.util.spec_from_file_location("chinese_bench", ROOT / "benchmarks" / "chinese_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data, _ = module.news(0, 200)
    reviews = pd.concat([data.train, data.holdout], ignore_index=True)
    reviews["created_at"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(range(len(reviews)), unit="min")
    return {"reviews": reviews.assign(review_id=[f"zh-{i}" for i in range(len(reviews))], sku="news")}


def movielens_frames() -> dict[str, Any]:
    import pandas as pd

    from pipeline.demo_data import load_movielens

    interactions, catalog = load_movielens()
    return {"interactions": interactions.assign(timestamp=pd.to_datetime(interactions["seconds"], unit="s")),
            "catalog": catalog}


# case -> (family, frames, settings that differ from the profile)
CASES: dict[str, tuple[str, Callable[[], dict[str, Any]], dict[str, str]]] = {
    "oj": ("forecaster", lambda: oj_frames(plan=True), {}),
    "oj_no_plan": ("forecaster", lambda: oj_frames(plan=False), {}),
    "walmart": ("forecaster", walmart_frames, {"RETAIL_TRAINING__FORECASTER__HORIZON": "8"}),
    "cdnow_daily": ("forecaster", cdnow_frames, {}),
    "amazon": ("sentiment", amazon_frames, {}),
    "chinese": ("sentiment", chinese_frames, {}),
    "movielens": ("recommender", movielens_frames, {}),
}


def run_case(name: str, profile: str) -> dict[str, Any]:
    import mlflow

    from pipeline import zones
    from pipeline.evaluation.evaluate import evaluate_run, gate_run
    from pipeline.families import get_family
    from pipeline.lake import Lake
    from pipeline.settings import load_settings
    from pipeline.training.job import train_model

    family, frames_of, overrides = CASES[name]
    record = get_family(family)
    with tempfile.TemporaryDirectory() as tmp:
        env = {"RETAIL_LAKE_URI": Path(tmp, "lake").as_uri(),
               "RETAIL_MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
               "RETAIL_MLFLOW_ARTIFACT_URI": Path(tmp, "artifacts").as_uri(), "RETAIL_DEVICE": "cpu", **overrides}
        if profile == "demo":
            env["RETAIL_CONFIG_FILE"] = str(ROOT / "config" / "demo.yaml")
        os.environ.update(env)
        settings = load_settings()
        hp = settings.hyperparameters(family)
        data = record.function("build")(frames_of(), hp)
        lake = Lake(settings.lake_uri)
        folder = zones.dataset_folder(lake, family, DAY)
        for part in ("train", "holdout", "catalog", "plan", "recent"):
            if getattr(data, part) is not None:
                lake.write_parquet(f"{folder}/{part}.parquet", getattr(data, part))
        started = time.perf_counter()
        run_id = train_model(settings, family, folder, DAY)
        trained = time.perf_counter() - started
        evaluate_run(settings, family, folder, run_id)
        decision = gate_run(settings, family, run_id)
        evaluation = mlflow.artifacts.load_dict(f"runs:/{run_id}/evaluation/metrics.json")
        run = mlflow.get_run(run_id)
        for key in env:
            os.environ.pop(key, None)
    metric = record.primary_metric
    return {
        "family": family, "metric": metric, "train_rows": len(data.train), "holdout_rows": len(data.holdout),
        "evidence": evaluation["evidence"], "served": decision["candidate"], "kind": decision["kind"],
        "passed": decision["passed"], "reasons": [f["reason"] for f in decision["failures"]],
        "candidates": {n: c["metrics"][metric] for n, c in evaluation["candidates"].items()},
        "baselines": {n: m[metric] for n, m in evaluation["baselines"].items()},
        "blend_weight": run.data.params.get("candidates/blend/weight"),
        "train_seconds": {n: round(run.data.metrics[f"candidates/{n}/train_seconds"], 1)
                          for n in evaluation["candidates"]},
        "wall_seconds": round(trained, 1), "notes": decision["notes"],
    }


def table(results: dict[str, Any], where: str, profile: str) -> list[str]:
    lines = [f"Every candidate and the served model on the holdout the gate uses ({where}, {profile} profile, "
             "no champion; `python benchmarks/candidates_bench.py --profile " + profile + "`). The primary "
             "metric: macro-F1 and HR/NDCG higher is better, WAPE lower is better.", "",
             "| case | metric | transformer | classic | blend (weight) | best reference | served | blend beats both "
             "| served >= best reference | extra training s (classic + blend) |",
             "|---|---|---:|---:|---:|---:|---|---|---|---:|"]
    for name, r in results.items():
        lower = r["metric"] == "wape"
        c = r["candidates"]
        classic = {n: v for n, v in c.items() if n not in ("transformer", "blend")}
        best_classic = (min if lower else max)(classic.values())
        reference = (min if lower else max)(r["baselines"].values())
        served = c[r["served"]] if r["passed"] else None
        beats = (c["blend"] < min(c["transformer"], best_classic)) if lower else (
            c["blend"] > max(c["transformer"], best_classic))
        at_least = served is not None and (served <= reference if lower else served >= reference)
        extra = sum(s for n, s in r["train_seconds"].items() if n != "transformer")
        lines.append(f"| {name} | {r['metric']} | {c['transformer']:.4f} | "
                     f"{' / '.join(f'{n} {v:.4f}' for n, v in classic.items())} | {c['blend']:.4f} "
                     f"({r['blend_weight']}) | {reference:.4f} | "
                     f"{(r['served'] + ' ' + format(served, '.4f')) if served is not None else 'none'} | "
                     f"{'yes' if beats else 'no'} | {'yes' if at_least else 'NO'} | {extra:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--profile", choices=["demo", "production"], default="production")
    args = parser.parse_args()
    results, where = {}, machine()
    for name in args.cases:  # the files are rewritten after every case: a long run keeps what it finished
        results[name] = run_case(name, args.profile)
        print(name, results[name]["candidates"], "served:", results[name]["served"], flush=True)
        lines = table(results, where, args.profile)
        write_results(f"candidates_{args.profile}", {"machine": where, "profile": args.profile, "cases": results},
                      lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
