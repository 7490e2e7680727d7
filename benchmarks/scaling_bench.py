"""Scaling: ingestion, training and scoring at 1x, 4x and 16x the bundled data.

Four stages, each size measured in a fresh process (its time excludes the imports; its
peak memory, max RSS, is the whole process's):

- ``ingest``: land, validate and publish one sales drop: the Dominick's orange-juice
  sales (106,139 rows) replicated onto more stores, as in ingest_bench.py;
- ``train_forecaster``: the demand forecaster's fine-tune (``pipeline.training.forecaster``)
  on the 913 store x sku series replicated onto more stores (``--epochs``, default 2:
  the demo trains 10; the work per epoch is what scales);
- ``score_forecaster``: the model just trained at that size forecasts the holdout
  periods of every series (the question the evaluate step asks, through the pyfunc code);
- ``score_reviews``: the sentiment pyfunc's ``predict`` (``SentimentModel``: bucketed
  batches of 64, bf16 where the CPU has it) over the 1,000 bundled test reviews repeated.
  Its head is untrained (the base MiniLM with a fresh head): the speed is the same as a
  champion's, and no `make demo` is needed.

For each stage: time and peak memory per size and the growth exponent between sizes,
log(t_b / t_a) / log(b / a): 1 is linear; above 1.15 is flagged super-linear. Sizes may
be fractions for a quick check. Run on demand::

    python benchmarks/scaling_bench.py                      # 1x, 4x, 16x
    python benchmarks/scaling_bench.py --quick              # 0.05x and 0.2x, one epoch

Writes benchmarks/results/scaling.json and scaling.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from common import write_results  # noqa: E402 - also puts the project on sys.path
from common import machine as machine_name  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.datasets import FamilyData

SUPER_LINEAR = 1.15
OJ_ROWS = 106_139  # bayesm's orangeJuice: 83 stores x 11 brands, weekly
TEST_REVIEWS = 1000  # the bundled reviews after the first 4,000 (those the demo scores)
STAGES = {
    "ingest": ("sales rows", "land + validate + publish of one sales CSV drop"),
    "train_forecaster": ("series", "forecaster fine-tune"),
    "score_forecaster": ("series", "forecaster: forecast the holdout periods of every series"),
    "score_reviews": ("reviews", "sentiment pyfunc predict"),
}
# what a stage's time is made of, for reading the exponents
GROWS = {
    "ingest": "per-row parsing, expectation checks and Parquet writes (chunks of 500,000 rows), and the "
              "duplicate-key index; fixed: the expectation suite's setup",
    "train_forecaster": "steps per epoch (windows_per_series x series / batch) and the panel built once; "
                        "fixed: model set-up; the store embedding table grows with the stores",
    "score_forecaster": "the panel of every series, generate() per 128 series, one small frame per series "
                        "for the output; fixed: loading the model",
    "score_reviews": "tokenising and batches of 64 (same length mix at every size); fixed: loading the model",
}


def peak_rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def replicated_sales(scale: float) -> pd.DataFrame:
    """The OJ sales on ``scale`` x the 913 series: stores copied as ``<store>-r<k>``."""
    import pandas as pd

    from ingest_bench import orange_juice_sales

    base = orange_juice_sales()
    copies = [base.assign(store_id=base["store_id"] + f"-r{k}") for k in range(math.ceil(scale))]
    sales = pd.concat(copies, ignore_index=True)
    series = round(scale * len(base[["store_id", "sku"]].drop_duplicates()))
    return sales.merge(sales[["store_id", "sku"]].drop_duplicates().head(max(1, series)), on=["store_id", "sku"])


def forecaster_data(scale: float) -> FamilyData:
    from pipeline.datasets import split_sales
    from pipeline.settings import ForecasterTraining

    hp = ForecasterTraining()
    return split_sales(replicated_sales(scale), hp.horizon, hp.context_length)


def run_ingest(scale: float, workdir: Path, epochs: int) -> dict:
    from ingest_bench import measure, write_drop

    write_drop(workdir / "landing", round(scale * OJ_ROWS))
    result = measure(workdir, chunk_rows=500_000)
    return {"items": result["rows"], "seconds": result["total_s"],
            "detail": {k: result[k] for k in ("land_s", "validate_publish_s", "rows_per_s")}}


def run_train_forecaster(scale: float, workdir: Path, epochs: int) -> dict:
    from pipeline.settings import ForecasterTraining
    from pipeline.training import forecaster
    from pipeline.training.core import RunOptions, select_device

    data = forecaster_data(scale)
    start = time.perf_counter()
    history = forecaster.fine_tune(data, ForecasterTraining(epochs=epochs), RunOptions(select_device("auto")),
                                   workdir / f"forecaster-{scale:g}", None, seed=13)
    seconds = time.perf_counter() - start
    series = len(data.train[["store_id", "sku"]].drop_duplicates())
    return {"items": series, "seconds": round(seconds, 3),
            "detail": {"loop_s": round(history.seconds, 3), "steps": history.steps, "epochs": epochs,
                       "train_rows": len(data.train)}}


def run_score_forecaster(scale: float, workdir: Path, epochs: int) -> dict:
    from pipeline.datasets import sales_question
    from pipeline.training import forecaster

    folder = workdir / f"forecaster-{scale:g}"
    if not folder.exists():
        raise SystemExit(f"no model at {folder}: score_forecaster runs after train_forecaster")
    data = forecaster_data(scale)
    question = sales_question(data)
    model = forecaster.ForecasterModel()
    start = time.perf_counter()
    model.load_context(types.SimpleNamespace(artifacts={"model_dir": str(folder)}))
    loaded = time.perf_counter()
    out = model.predict(None, question)
    seconds = time.perf_counter() - loaded
    series = len(out[["store_id", "sku"]].drop_duplicates())
    return {"items": series, "seconds": round(seconds, 3),
            "detail": {"load_s": round(loaded - start, 3), "rows_in": len(question), "rows_out": len(out)}}


def sentiment_model_dir(workdir: Path) -> Path:
    """The base MiniLM with a fresh two-class head, saved as the sentiment pyfunc expects."""
    folder = workdir / "sentiment"
    if (folder / "config.json").exists():
        return folder
    from transformers import AutoModel, AutoTokenizer

    from pipeline.settings import SentimentTraining
    from pipeline.encoders.select import resolve_base_model
    from pipeline.training.sentiment import MeanPoolClassifier

    source = resolve_base_model("")
    classes = ["great", "other"]
    (folder / "model").mkdir(parents=True, exist_ok=True)
    MeanPoolClassifier(AutoModel.from_pretrained(source), len(classes)).save(
        folder / "model", AutoTokenizer.from_pretrained(source))
    (folder / "config.json").write_text(json.dumps({"classes": classes,
                                                    "max_length": SentimentTraining().max_length}))
    return folder


def run_score_reviews(scale: float, workdir: Path, epochs: int) -> dict:
    import pandas as pd

    from pipeline.demo_data import load_reviews
    from pipeline.training.sentiment import SentimentModel

    texts = load_reviews()["text"].iloc[-TEST_REVIEWS:].tolist()
    n = max(1, round(scale * len(texts)))
    frame = pd.DataFrame({"text": (texts * math.ceil(n / len(texts)))[:n]})
    model = SentimentModel()
    start = time.perf_counter()
    model.load_context(types.SimpleNamespace(artifacts={"model_dir": str(sentiment_model_dir(workdir))}))
    loaded = time.perf_counter()
    model.predict(None, frame.head(16))  # warm up, as consumers_bench.py does
    warm = time.perf_counter()
    model.predict(None, frame)
    seconds = time.perf_counter() - warm
    return {"items": n, "seconds": round(seconds, 3),
            "detail": {"load_s": round(loaded - start, 3), "bf16": model.bf16}}


RUNNERS: dict[str, Callable[[float, Path, int], dict]] = {
    "ingest": run_ingest, "train_forecaster": run_train_forecaster,
    "score_forecaster": run_score_forecaster, "score_reviews": run_score_reviews,
}


def exponents(rows: list[dict], key: str) -> list[float | None]:
    """Growth exponent from each size to the next: log(y_b / y_a) / log(x_b / x_a)."""
    out: list[float | None] = [None]
    for a, b in zip(rows, rows[1:]):
        ok = a[key] > 0 and b[key] > 0 and b["scale"] != a["scale"]
        out.append(round(math.log(b[key] / a[key]) / math.log(b["scale"] / a["scale"]), 3) if ok else None)
    return out


def measure_child(stage: str, scale: float, workdir: Path, epochs: int) -> dict:
    """One stage at one size in this process; the numbers as one JSON line."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    result = RUNNERS[stage](scale, workdir, epochs)
    return {**result, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 4, 16],
                        help="multiples of the bundled data (fractions allowed)")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--epochs", type=int, default=2, help="forecaster epochs at every size")
    parser.add_argument("--quick", action="store_true", help="sizes 0.05 and 0.2, one epoch: a check that it runs")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite scaling.md from the scaling.json already there")
    parser.add_argument("--child", nargs=3, metavar=("STAGE", "SCALE", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stage, scale, workdir = args.child
        print(json.dumps(measure_child(stage, float(scale), Path(workdir), args.epochs)))
        return
    if args.render:
        from common import RESULTS

        payload = json.loads((RESULTS / "scaling.json").read_text())
        write_results("scaling", payload, table(payload))
        print("\n".join(table(payload)))
        return
    if args.quick:
        args.sizes, args.epochs = [0.05, 0.2], 1
    if "score_forecaster" in args.stages and "train_forecaster" not in args.stages:
        parser.error("score_forecaster needs train_forecaster (it scores the model trained at each size)")
    sizes = sorted(args.sizes)

    stages: dict[str, list[dict]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="retail-scaling-") as tmp:
        for stage in [s for s in STAGES if s in args.stages]:
            rows = []
            for scale in sizes:
                workdir = Path(tmp) / f"{stage}-{scale:g}" if stage == "ingest" else Path(tmp)
                workdir.mkdir(parents=True, exist_ok=True)
                t0 = time.perf_counter()
                out = subprocess.run([sys.executable, __file__, "--child", stage, str(scale), str(workdir),
                                      "--epochs", str(args.epochs)], capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(f"{stage} at {scale:g}x failed:\n{out.stderr[-3000:]}")
                row = {"scale": scale, **json.loads(out.stdout.strip().splitlines()[-1]),
                       "process_s": round(time.perf_counter() - t0, 2)}
                row["per_second"] = round(row["items"] / row["seconds"], 1) if row["seconds"] else None
                print(stage, row, flush=True)
                rows.append(row)
                if stage == "ingest":  # its drop and lake are not needed again
                    shutil.rmtree(workdir)
            for row, t_exp, m_exp in zip(rows, exponents(rows, "seconds"), exponents(rows, "peak_rss_mb")):
                row["time_exponent"], row["memory_exponent"] = t_exp, m_exp
                row["super_linear"] = t_exp is not None and t_exp > SUPER_LINEAR
            stages[stage] = rows

    import torch

    machine = machine_name("cuda" if torch.cuda.is_available() else "cpu")
    meta = {"date": datetime.date.today().isoformat(), "machine": machine, "sizes": sizes, "epochs": args.epochs,
            "super_linear_above": SUPER_LINEAR, "wall_s": round(time.perf_counter() - started, 1)}
    lines = table({**meta, "stages": stages})
    write_results("scaling", {**meta, "stages": stages}, lines)
    print("\n".join(lines))


def table(payload: dict) -> list[str]:
    """scaling.md from scaling.json's contents."""
    stages, threshold = payload["stages"], payload.get("super_linear_above", SUPER_LINEAR)
    flagged = [f"{s} ({r['scale']:g}x: exponent {r['time_exponent']})" for s, rows in stages.items()
               for r in rows if r["super_linear"]]
    lines = [f"Scaling with data size ({payload['date']}, {payload['machine']}; each size in a fresh process; "
             f"forecaster {payload['epochs']} epoch(s))", "",
             "| stage | size | items | seconds | items/s | time exponent | peak RSS MB | memory exponent |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for stage, rows in stages.items():
        unit = STAGES[stage][0]
        for r in rows:
            flag = " **super-linear**" if r["super_linear"] else ""
            lines.append(f"| {stage} | {r['scale']:g}x | {r['items']:,} {unit} | {r['seconds']:.2f} | "
                         f"{r['per_second'] or 0:,.0f} | {_fmt(r['time_exponent'])}{flag} | {r['peak_rss_mb']:,} | "
                         f"{_fmt(r['memory_exponent'])} |")

    def largest(key: str) -> str:
        steps = [(r[key], stage, prev["scale"], r["scale"]) for stage, rows in stages.items()
                 for prev, r in zip(rows, rows[1:]) if r[key] is not None]
        if not steps:
            return "not measured"
        value, stage, a, b = max(steps)
        return f"{value:.2f} ({stage}, {a:g}x to {b:g}x)"

    lines += ["", "Exponent: log(t_b / t_a) / log(b / a) from the previous size; 1 is linear, "
              f"above {threshold} is flagged super-linear: "
              f"{', '.join(flagged) if flagged else 'none'}. With a few sizes and one run each, an exponent is "
              "measured, not proven: every stage's time grows at most "
              f"with exponent {largest('time_exponent')} between the sizes measured, and its peak memory at "
              f"most with exponent {largest('memory_exponent')}.", ""]
    lines += [f"- {stage}: {STAGES[stage][1]}; grows with size: {GROWS[stage]}." for stage in stages]
    return lines


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
