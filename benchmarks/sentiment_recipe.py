"""What each sentiment recipe scores on the bundled Amazon reviews: the data set's 4,000
training reviews (the latest share of them judges early stopping, as in the pipeline) and
its 1,000 test reviews, against TF-IDF + logistic regression trained on the same 4,000.

Each call trains one recipe (the production defaults of ``SentimentTraining`` changed by
``--set name=value``) and adds a row to results/sentiment_recipe.json and .md, so the
table grows run by run and the chosen defaults rest on it:

    python benchmarks/sentiment_recipe.py --name production
    python benchmarks/sentiment_recipe.py --name "lr 5e-5" --set learning_rate=5e-5
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from common import RESULTS, machine, write_results

import pandas as pd

from pipeline.datasets import FamilyData
from pipeline.demo_data import load_reviews
from pipeline.evaluation.baselines import tfidf_logistic_regression
from pipeline.evaluation.metrics import classification_metrics
from pipeline.settings import SentimentTraining
from pipeline.training import sentiment
from pipeline.training.core import RunOptions

NAME = "sentiment_recipe"


def amazon() -> FamilyData:
    """The data set's own split, the training reviews in their file order (the pipeline's
    validation share is the last of them)."""
    frame = load_reviews()
    is_test = frame["review_id"].str.startswith("AFF-te-")
    return FamilyData(frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True))


def parse_value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def render(rows: list[dict]) -> list[str]:
    """The Markdown table of every recipe run so far."""
    table = [
        f"# Sentiment recipes on the bundled Amazon reviews ({machine()}, no GPU)",
        "",
        "4,000 training reviews unless the recipe says fewer (the latest 10% judge early stopping when epochs > 1), "
        "1,000 test reviews; TF-IDF + logistic regression trained on the same rows. "
        "`python benchmarks/sentiment_recipe.py --name NAME --set FIELD=VALUE ...`; load: the 1-minute load "
        "average on 2 cores when the run started and ended (other jobs shared the machine above 1, which slows "
        "a run: compare the seconds of rows with a low load only). Notes: sentiment_recipe.notes.md.",
        "",
        "| recipe | reviews | learning rate | layer decay | max length | epochs (max) | accuracy | macro-F1 "
        "| TF-IDF accuracy | vs TF-IDF | s per 1,000 reviews per epoch | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        hp = r["settings"]
        table.append(
            f"| {r['name']} | {r.get('train_rows', 4000):,} | {hp['learning_rate']:g} | {hp.get('layer_decay', 1.0):g} "
            f"| {r['max_length']} | {r['epochs_run']} ({hp['epochs']}) | {r['accuracy']:.3f} "
            f"| {r['macro_f1']:.3f} | {r['baseline_accuracy']:.3f} | {100 * (r['accuracy'] - r['baseline_accuracy']):+.1f} pts "
            f"| {r['seconds_per_1000_reviews_per_epoch']:.0f} | {r['load_average'][0]:.1f} to {r['load_average'][1]:.1f} |")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="the recipe's row in the table")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="SentimentTraining fields changed from the defaults")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--train-rows", type=int, default=0,
                        help="train on the latest N training reviews only (a timing row; 0: all 4,000)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    changes = dict(item.split("=", 1) for item in args.set)
    hp = SentimentTraining(**{k: parse_value(v) for k, v in changes.items()})
    data = amazon()
    if args.train_rows:
        data = FamilyData(data.train.iloc[-args.train_rows:].reset_index(drop=True), data.holdout)
    truth = data.holdout["label"].astype(str)
    baseline = classification_metrics(truth, tfidf_logistic_regression(data)["label"])

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        started = time.perf_counter()
        history = sentiment.fine_tune(data, hp, RunOptions(), folder, None, seed=args.seed)
        seconds = time.perf_counter() - started
        model = sentiment.SentimentModel()
        model.load_context(SimpleNamespace(artifacts={"model_dir": str(folder)}))
        config = json.loads((folder / "config.json").read_text())
        scored = model.predict(None, data.holdout[["text"]])
    metrics = classification_metrics(truth, scored["label"])
    epochs = len(history.epochs)
    trained_rows = history.samples / max(1, epochs)
    row = {
        "name": args.name, "changes": changes, "train_rows": len(data.train), "settings": hp.model_dump(), "max_length": config["max_length"],
        "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
        "baseline_accuracy": baseline["accuracy"], "baseline_macro_f1": baseline["macro_f1"],
        "epochs_run": epochs, "stopped_early": history.stopped_early, "epochs": history.epochs,
        "train_rows_per_epoch": trained_rows, "seconds": seconds,
        "seconds_per_1000_reviews_per_epoch": history.seconds / max(1, history.samples) * 1000,
        "majority_share": float(truth.value_counts(normalize=True).iloc[0]),
        "machine": machine(), "load_average": [load_before, os.getloadavg()[0]],
        "date": time.strftime("%Y-%m-%d"),
    }
    path = RESULTS / f"{NAME}.json"
    rows = [r for r in (json.loads(path.read_text())["rows"] if path.exists() else []) if r["name"] != args.name]
    rows.append(row)
    table = render(rows)
    write_results(NAME, {"rows": rows}, table)
    print("\n".join(table))


if __name__ == "__main__":
    if sys.argv[1:] == ["--render"]:  # the table again from the JSON (after editing a row's name)
        saved = json.loads((RESULTS / f"{NAME}.json").read_text())
        write_results(NAME, saved, render(saved["rows"]))
    else:
        main()
