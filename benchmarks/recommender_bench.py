"""The recommender against its baselines (popularity, item-kNN, EASE) on the bundled
MovieLens-100k, scored as the gate scores it.

The split is the pipeline's (``interactions_dataset`` with the default
``RecommenderTraining``: leave-last-out per customer, the last 14 days kept out for the
time-split view); the catalog is MovieLens' own (the demo adds eleven orange-juice items
that nobody rated). The recommender is ``pipeline.training.recommender.fine_tune`` with the
default settings (seed 13, the pipeline's), served through its pyfunc class; each
baseline is the function the gate runs. Reported: HR@10, NDCG@10 and coverage@10 on the
holdout and on the time-split view, seconds for each side, the settings the baselines
chose on their validation split, and whether the target is met: the recommender's HR@10
at least 2x popularity's and above both item-kNN's and EASE's.

Other recipes, for experiments only, as ``--recipe LABEL[:KEY=VALUE,...]`` (repeatable):
keys are ``RecommenderTraining`` fields, ``seed``, and two knobs of the training module that
no setting reaches, patched for that run: ``last_mask_fraction`` (the share of sequences
whose last position is always masked) and ``item_init=random`` (item rows drawn at random,
at the pretrained table's scale, instead of title encodings). Not a test: run it on demand::

    python benchmarks/recommender_bench.py                                # the defaults
    python benchmarks/recommender_bench.py --recipe defaults --recipe e20:epochs=20

With ``--customers N`` only the first N customers are kept, as the end-to-end test's
``DemoLimits(customers=300)`` does (its profile: ``--customers 300 --recipe e2e:batch_size=16``).

Writes benchmarks/results/recommender.json and .md (``recommender_customers<N>.*`` with
``--customers``); every recipe's run is also kept in ``<name>.runs.json`` (by label, the
latest run of a label replacing the earlier one), and the .md lists them all.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator

from common import RESULTS, machine, write_results  # noqa: E402 - also puts the project on sys.path

METRICS = ("hr_at_10", "ndcg_at_10", "coverage_at_10")
BASELINES = ("popularity", "item_knn", "ease")


class LoadSampler:
    """The 1-minute load average every ``every`` seconds while a block runs: the machine
    is shared, and its load is part of every timing."""

    def __init__(self, every: float = 15.0) -> None:
        self.every, self.samples = every, [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, float]:
        return {"min": round(min(self.samples), 2), "max": round(max(self.samples), 2),
                "mean": round(sum(self.samples) / len(self.samples), 2)}


def load_split(hp: Any, customers: int = 0) -> Any:
    """The pipeline's split of MovieLens-100k; of its first ``customers`` customers (by id,
    as the demo's ``DemoLimits.customers`` keeps them) when given."""
    import pandas as pd

    from pipeline.datasets import interactions_dataset
    from pipeline.demo_data import load_movielens

    interactions, catalog = load_movielens()
    if customers:
        interactions = interactions[interactions["customer_id"].isin(
            sorted(interactions["customer_id"].unique())[:customers])]
    interactions = interactions.assign(timestamp=pd.to_datetime(interactions["seconds"], unit="s"))
    return interactions_dataset({"interactions": interactions, "catalog": catalog}, hp)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - started, 2)


def views(data: Any) -> dict[str, Any]:
    """The holdout and, where the split has one, the time-split view."""
    view = data.time_split_view()
    return {"holdout": data, **({"time_split": view} if view is not None else {})}


def timed_scores(predict: Callable[[Any], Any], data: Any, hp: Any) -> tuple[dict[str, dict[str, float]], float, Any]:
    """Scores of ``predict(family_data) -> ranking`` on each view, the seconds of the
    holdout's prediction, and the holdout ranking."""
    from pipeline.evaluation.scoring import ranking_score

    rankings = {}
    for name, view in views(data).items():
        rankings[name], seconds = timed(lambda: predict(view))
        if name == "holdout":
            holdout_s = seconds
    scores = {name: {m: round(ranking_score(r, views(data)[name], hp)[m], 4) for m in METRICS}
              for name, r in rankings.items()}
    return scores, holdout_s, rankings["holdout"]


def run_baselines(data: Any, hp: Any) -> dict[str, dict[str, Any]]:
    from pipeline.evaluation import baselines

    out = {}
    for name in BASELINES:
        fn = getattr(baselines, name)
        scores, seconds, ranking = timed_scores(lambda view: fn(view, hp), data, hp)
        out[name] = {"seconds": seconds, "chosen_on_validation": _jsonable(ranking.attrs.get("chosen_on_validation")),
                     "scores": scores}
    return out


def parse_recipe(text: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    """``LABEL[:KEY=VALUE,...]`` -> label, RecommenderTraining overrides, module knobs."""
    from pipeline.settings import RecommenderTraining

    label, _, rest = text.partition(":")
    fields = RecommenderTraining.model_fields
    settings, knobs = {}, {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key in fields:
            settings[key] = type(getattr(RecommenderTraining(), key))(value)
        elif key in ("last_mask_fraction", "item_init", "seed"):
            knobs[key] = value
        else:
            raise SystemExit(f"unknown recipe key {key!r} in {text!r}")
    return label, settings, knobs


@contextlib.contextmanager
def patched(knobs: dict[str, str]) -> Iterator[None]:
    """The training module's knobs for one run, restored after it."""
    import torch
    from transformers import AutoConfig

    from pipeline.training import recommender as rec

    def random_rows(texts: list[str], base: str, device: Any) -> torch.Tensor:
        # _build_model rescales the rows to the pretrained table's std
        hidden = AutoConfig.from_pretrained(base).hidden_size
        return torch.randn(len(texts), hidden, generator=torch.Generator().manual_seed(0))

    saved = {"LAST_MASK_FRACTION": rec.LAST_MASK_FRACTION, "encode_titles": rec.encode_titles}
    if "last_mask_fraction" in knobs:
        rec.LAST_MASK_FRACTION = float(knobs["last_mask_fraction"])
    if knobs.get("item_init") == "random":
        rec.encode_titles = random_rows
    try:
        yield
    finally:
        rec.LAST_MASK_FRACTION, rec.encode_titles = saved["LAST_MASK_FRACTION"], saved["encode_titles"]


def run_recipe(data: Any, text: str, seed: int) -> dict[str, Any]:
    from pipeline.datasets import interaction_question
    from pipeline.settings import RecommenderTraining
    from pipeline.training import recommender as rec
    from pipeline.training.core import RunOptions

    label, settings, knobs = parse_recipe(text)
    hp = RecommenderTraining(**settings)
    seed = int(knobs.pop("seed", seed))
    with tempfile.TemporaryDirectory() as tmp, LoadSampler() as load, patched(knobs):
        history, train_s = timed(lambda: rec.fine_tune(data, hp, RunOptions(), Path(tmp), None, seed=seed))
        model = rec.RecommenderModel()
        model.load_context(SimpleNamespace(artifacts={"model_dir": tmp}))
        scores, predict_s, _ = timed_scores(lambda view: model.predict(None, interaction_question(view)), data, hp)
    return {"label": label, "recipe": text, "settings": settings, "knobs": knobs, "hp": hp.model_dump(),
            "seed": seed, "train_s": train_s, "predict_s": predict_s, "steps": history.steps,
            "train_loss": [round(e["train_loss"], 4) for e in history.epochs], "scores": scores,
            "load_1min": load.summary(), "when": datetime.datetime.now().isoformat(timespec="seconds")}


def verdict(scores: dict[str, float], baselines: dict[str, dict[str, Any]]) -> tuple[bool, str]:
    """The target: HR@10 at least 2x popularity's and above both item-kNN's and EASE's."""
    hr = scores["hr_at_10"]
    base = {n: b["scores"]["holdout"]["hr_at_10"] for n, b in baselines.items()}
    checks = [(hr >= 2 * base["popularity"], f"HR@10 {hr:.4f} vs 2x popularity {2 * base['popularity']:.4f}"),
              (hr > base["item_knn"], f"vs item-kNN {base['item_knn']:.4f}"),
              (hr > base["ease"], f"vs EASE {base['ease']:.4f}")]
    met = all(ok for ok, _ in checks)
    return met, ("met" if met else "NOT met") + ": " + "; ".join(
        f"{text} {'ok' if ok else 'missed'}" for ok, text in checks)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return float(value) if hasattr(value, "__float__") and not isinstance(value, (int, str)) else value


def table(results: dict[str, Any]) -> list[str]:
    """The baselines and every recipe run so far, one row each, then each run's verdict."""
    base = results["baselines"]
    lines = [f"The recommender against its baselines on the bundled MovieLens-100k ({results['machine']}, no GPU; "
             f"{results['split']}; `python benchmarks/recommender_bench.py`). The gate's primary metric is "
             "NDCG@10; the target (issue): HR@10 at least 2x popularity and above both item-kNN and EASE. "
             "Seconds: the holdout's ranking for a baseline (its validation search included), training and "
             "the holdout's prediction for the recommender, on a machine shared with other jobs (its load below).",
             "", "| model | settings | holdout HR@10 | holdout NDCG@10 | coverage@10 | time-split HR@10 | "
             "time-split NDCG@10 | seconds | target |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]

    def row(name: str, setting: str, scores: dict[str, dict[str, float]], seconds: str, target: str) -> str:
        h, t = scores["holdout"], scores.get("time_split", {})
        return (f"| {name} | {setting} | {h['hr_at_10']:.4f} | {h['ndcg_at_10']:.4f} | {h['coverage_at_10']:.4f} | "
                f"{t.get('hr_at_10', float('nan')):.4f} | {t.get('ndcg_at_10', float('nan')):.4f} | {seconds} | "
                f"{target} |")

    for name, b in base.items():
        chosen = b["chosen_on_validation"] or {}
        setting = ", ".join(f"{k} {v:g}" for k, v in chosen.items() if not isinstance(v, dict))
        lines.append(row(name, f"{setting} (chosen on validation)" if setting else "-", b["scores"],
                         f"{b['seconds']:.1f}", ""))
    for run in results["runs"].values():
        met, _ = verdict(run["scores"]["holdout"], base)
        lines.append(row(f"recommender: {run['label']}", run["recipe"], run["scores"],
                         f"{run['train_s']:.0f} + {run['predict_s']:.1f}", "met" if met else "not met"))
    lines.append("")
    for run in results["runs"].values():
        _, text = verdict(run["scores"]["holdout"], base)
        lines.append(f"- **{run['label']}** (seed {run['seed']}, {run['when']}): target {text}. 1-minute load "
                     f"average during training {run['load_1min']['min']} to {run['load_1min']['max']} "
                     f"(mean {run['load_1min']['mean']}) on {results['cores']} cores; {run['steps']} steps, "
                     f"train loss by epoch {run['train_loss']}.")
    lines.append("")
    for name in ("item_knn", "ease"):
        chosen = base[name]["chosen_on_validation"] or {}
        figures = next((v for v in chosen.values() if isinstance(v, dict)), {})
        if figures:
            lines.append(f"- {name} validation NDCG@10 by candidate (a leave-last-out split of train; the holdout is "
                         "never read): " + ", ".join(f"{k}: {v:.4f}" for k, v in figures.items()) + ".")
    lines.append(f"- Baselines computed at a 1-minute load average of {results['baselines_load_1min']['min']} to "
                 f"{results['baselines_load_1min']['max']}.")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", action="append", default=[], help="LABEL[:KEY=VALUE,...] (default: defaults)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--customers", type=int, default=0,
                        help="only the first N customers, as the end-to-end test's DemoLimits (0: all); "
                             "writes recommender_customers<N>.*")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: the baselines and the runs already in <name>.runs.json")
    args = parser.parse_args()
    name = f"recommender_customers{args.customers}" if args.customers else "recommender"
    runs_file = RESULTS / f"{name}.runs.json"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch

    from pipeline.settings import RecommenderTraining

    hp = RecommenderTraining()
    data = load_split(hp, args.customers)
    with LoadSampler() as load:
        baselines = run_baselines(data, hp)
    recipes = [] if args.report_only else args.recipe or ["defaults"]
    runs = json.loads(runs_file.read_text()) if runs_file.exists() else {}
    for text in recipes:
        run = run_recipe(data, text, args.seed)
        runs[run["label"]] = run
        RESULTS.mkdir(parents=True, exist_ok=True)
        runs_file.write_text(json.dumps(runs, indent=2))  # after each run: a long series may be cut short
    results = {
        "machine": machine(), "cores": len(os.sched_getaffinity(0)), "torch_threads": torch.get_num_threads(),
        "split": ((f"the first {args.customers} customers: " if args.customers else "")
                  + f"{data.train['customer_id'].nunique()} customers, {data.train['sku'].nunique()} items, "
                  f"{len(data.train):,} train interactions, {len(data.holdout)} leave-last-out holdout customers, "
                  f"{len(data.recent)} in the 14-day time-split view"),
        "baselines_load_1min": load.summary(), "baselines": baselines, "runs": runs,
        "target": {label: verdict(run["scores"]["holdout"], baselines)[1] for label, run in runs.items()},
    }
    lines = table(results)
    write_results(name, results, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
