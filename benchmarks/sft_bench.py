"""Fine-tuning throughput: our training loop against the Hugging Face Trainer, one run.

The same MiniLM encoder, the same Amazon fine-food reviews (the 4,000 training rows,
repeated when more are asked for), max length 256, one epoch; test accuracy on held-out
reviews. Three sides, measured one after the other in this process:

- ``trainer_default``: ``Trainer`` with its defaults and batch 32;
- ``trainer_tuned``: batch 128, grouped by length (``train_sampling_strategy``), fused AdamW, bf16 on a GPU;
- ``pipeline``: ``pipeline.training.sentiment.fine_tune`` (length-bucketed batches
  collated once up front, bf16 autocast and fused AdamW on a GPU).

Each side's time covers loading the model, tokenising and the epoch. Run on demand::

    python benchmarks/sft_bench.py                       # CPU sizes: 1,500 rows
    python benchmarks/sft_bench.py --train-rows 20000    # the GPU comparison

Writes benchmarks/results/sft_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from common import machine as machine_name  # noqa: E402 - also puts the project on sys.path
from common import write_results  # noqa: E402
from pipeline.datasets import FamilyData  # noqa: E402
from pipeline.demo_data import load_reviews  # noqa: E402
from pipeline.settings import SentimentTraining  # noqa: E402
from pipeline.training import sentiment  # noqa: E402
from pipeline.training.core import RunOptions, select_device  # noqa: E402
from pipeline.training.encoder import resolve_base_model  # noqa: E402

MAX_LENGTH = 256


def load_data(train_rows: int, test_rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    reviews = load_reviews()
    train, test = reviews.iloc[:4000], reviews.iloc[4000:].head(test_rows)
    repeats = -(-train_rows // len(train))
    train = pd.concat([train] * repeats, ignore_index=True).sample(frac=1.0, random_state=0).head(train_rows)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def accuracy(logits_fn, tokenizer, test: pd.DataFrame, classes: list[str], device: torch.device) -> float:
    """Test accuracy with the same bucketed inference for every side."""
    batches = sentiment._bucketed_batches(tokenizer, test["text"].tolist(), None, MAX_LENGTH, 64)
    predicted = np.zeros(len(test), dtype=int)
    with torch.inference_mode():
        for batch in batches:
            logits = logits_fn(batch["input_ids"].to(device), batch["attention_mask"].to(device))
            predicted[batch["row"].numpy()] = logits.float().argmax(-1).cpu().numpy()
    return float(np.mean(np.asarray(classes)[predicted] == test["label"].to_numpy()))


def run_trainer(train: pd.DataFrame, test: pd.DataFrame, classes: list[str], tuned: bool,
                device: torch.device, seed: int) -> dict:
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer, TrainingArguments)

    source = resolve_base_model("")
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=len(classes))
    index = {c: i for i, c in enumerate(classes)}
    encoded = tokenizer(train["text"].tolist(), truncation=True, max_length=MAX_LENGTH)
    rows = [{"input_ids": ids, "attention_mask": mask, "labels": index[label]}
            for ids, mask, label in zip(encoded["input_ids"], encoded["attention_mask"], train["label"])]
    extra = {"per_device_train_batch_size": 128, "train_sampling_strategy": "group_by_length", "optim": "adamw_torch_fused",
             "bf16": device.type == "cuda"} if tuned else {"per_device_train_batch_size": 32}
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, num_train_epochs=1, report_to=[], save_strategy="no",
                                 logging_strategy="no", disable_tqdm=True, seed=seed,
                                 use_cpu=device.type == "cpu", **extra)
        trainer = Trainer(model=model, args=args, train_dataset=rows,
                          data_collator=DataCollatorWithPadding(tokenizer))
        trainer.train()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.eval()
    acc = accuracy(lambda i, m: model(input_ids=i, attention_mask=m).logits, tokenizer, test, classes, device)
    return {"seconds": seconds, "accuracy": acc, "batch_size": extra["per_device_train_batch_size"]}


def run_pipeline(train: pd.DataFrame, test: pd.DataFrame, classes: list[str], batch_size: int,
                 device: torch.device, seed: int) -> dict:
    from transformers import AutoTokenizer

    hp = SentimentTraining(max_length=MAX_LENGTH, batch_size=batch_size, epochs=1, max_train_rows=0)
    data = FamilyData(train.assign(created_at="2026-10-01"), test)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        sentiment.fine_tune(data, hp, RunOptions(device, label="pipeline"), Path(tmp), None, seed)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        tokenizer = AutoTokenizer.from_pretrained(Path(tmp) / "model")
        model = sentiment.MeanPoolClassifier.load(Path(tmp) / "model", len(classes)).to(device).eval()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            acc = accuracy(model, tokenizer, test, classes, device)
    return {"seconds": seconds, "accuracy": acc, "batch_size": batch_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-rows", type=int, default=1500)
    parser.add_argument("--test-rows", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64, help="the pipeline loop's batch size")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    device = select_device(args.device)
    train, test = load_data(args.train_rows, args.test_rows)
    classes = sorted(train["label"].unique())
    sides = {
        "trainer_default": lambda: run_trainer(train, test, classes, False, device, args.seed),
        "trainer_tuned": lambda: run_trainer(train, test, classes, True, device, args.seed),
        "pipeline": lambda: run_pipeline(train, test, classes, args.batch_size, device, args.seed),
    }
    results = {}
    for name, run in sides.items():
        result = run()
        result["samples_per_s"] = len(train) / result["seconds"]
        results[name] = result
        print(name, {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}, flush=True)

    base, tuned = results["trainer_default"], results["trainer_tuned"]
    machine = machine_name(device.type)
    meta = {"date": datetime.date.today().isoformat(), "machine": machine, "device": device.type,
            "train_rows": len(train), "test_rows": len(test), "max_length": MAX_LENGTH, "torch": torch.__version__}
    lines = [f"Fine-tuning MiniLM on {len(train):,} Amazon reviews, one epoch, max length {MAX_LENGTH} "
             f"({meta['date']}, {machine}); accuracy on {len(test):,} test reviews", "",
             "| side | batch | seconds | samples/s | vs default Trainer | vs tuned Trainer | test accuracy |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['batch_size']} | {r['seconds']:.1f} | {r['samples_per_s']:.1f} | "
                     f"{r['samples_per_s'] / base['samples_per_s']:.2f}x | "
                     f"{r['samples_per_s'] / tuned['samples_per_s']:.2f}x | {r['accuracy']:.3f} |")
    write_results(f"sft_{device.type}", {**meta, "results": results}, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
