"""Fine-tuning throughput: our training loop against the Hugging Face Trainer.

The same MiniLM encoder, the same Amazon fine-food reviews (the 4,000 training rows,
repeated when more are asked for), max length 256, one epoch; test accuracy on held-out
reviews. Three sides:

- ``trainer_default``: ``Trainer`` with its defaults and batch 32;
- ``trainer_tuned``: batch 128, grouped by length (``train_sampling_strategy``), fused AdamW, bf16 on a GPU;
- ``pipeline``: ``pipeline.training.sentiment.fine_tune`` (length-bucketed batches
  collated once up front, bf16 autocast and fused AdamW on a GPU).

Each side's time covers loading the model, tokenising and the epoch. With ``--repeats N``
the sides run N rounds, the order reversed every other round (so no side always runs
first, on a cold or a warm device), and each side's median time counts. Tokens per second
counts the reviews' real (unpadded) tokens; on a GPU whose bf16 peak is known, MFU is the
model FLOPs per token (6 x parameters outside the embeddings + 12 x layers x hidden x
mean length) times tokens per second over that peak. Run on demand::

    python benchmarks/sft_bench.py                                    # CPU sizes: 1,500 rows
    python benchmarks/sft_bench.py --train-rows 20000 --repeats 3     # the GPU comparison

Writes benchmarks/results/sft_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import statistics
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

MAX_LENGTH = 256  # --max-length changes it (the GPU check's dry run uses less)
# dense bf16 peak FLOP/s of the GPU (the vendors' data sheets, without sparsity), by name
BF16_PEAK = {"H200": 989e12, "H100 SXM": 989e12, "H100 80GB HBM3": 989e12, "H100 PCIe": 756e12, "H100 NVL": 835e12,
             "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12}


def bf16_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in BF16_PEAK.items() if key in name), None)


def flops_per_token(mean_length: float) -> float:
    """Training FLOPs per token of the MiniLM encoder: 6 N (N: parameters outside the
    embeddings) + 12 L H S (attention scores over S tokens)."""
    from transformers import AutoConfig, AutoModel

    source = resolve_base_model("")
    config = AutoConfig.from_pretrained(source)
    model = AutoModel.from_pretrained(source)
    dense = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    return 6 * dense + 12 * config.num_hidden_layers * config.hidden_size * mean_length


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
    global MAX_LENGTH
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-rows", type=int, default=1500)
    parser.add_argument("--test-rows", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64, help="the pipeline loop's batch size")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the three sides, order alternating")
    parser.add_argument("--max-length", type=int, default=MAX_LENGTH)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    MAX_LENGTH = args.max_length

    device = select_device(args.device)
    train, test = load_data(args.train_rows, args.test_rows)
    classes = sorted(train["label"].unique())
    sides = {
        "trainer_default": lambda: run_trainer(train, test, classes, False, device, args.seed),
        "trainer_tuned": lambda: run_trainer(train, test, classes, True, device, args.seed),
        "pipeline": lambda: run_pipeline(train, test, classes, args.batch_size, device, args.seed),
    }
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for round_ in range(args.repeats):
        for name in (list(sides) if round_ % 2 == 0 else list(reversed(sides))):
            result = sides[name]()
            runs[name].append(result)
            print(f"round {round_ + 1}", name, {k: round(v, 4) if isinstance(v, float) else v
                                               for k, v in result.items()}, flush=True)

    from transformers import AutoTokenizer

    lengths = [len(ids) for ids in AutoTokenizer.from_pretrained(resolve_base_model(""))(
        train["text"].tolist(), truncation=True, max_length=MAX_LENGTH)["input_ids"]]
    tokens, peak = sum(lengths), bf16_peak(device)
    per_token = flops_per_token(tokens / len(lengths))
    results = {}
    for name, side_runs in runs.items():
        seconds = statistics.median(r["seconds"] for r in side_runs)
        results[name] = {"seconds": seconds, "runs_seconds": [r["seconds"] for r in side_runs],
                         "accuracy": statistics.median(r["accuracy"] for r in side_runs),
                         "batch_size": side_runs[0]["batch_size"], "samples_per_s": len(train) / seconds,
                         "tokens_per_s": tokens / seconds,
                         "mfu": per_token * tokens / seconds / peak if peak else None}

    base, tuned = results["trainer_default"], results["trainer_tuned"]
    machine = machine_name(device.type)
    meta = {"date": datetime.date.today().isoformat(), "machine": machine, "device": device.type,
            "train_rows": len(train), "test_rows": len(test), "max_length": MAX_LENGTH, "torch": torch.__version__,
            "repeats": args.repeats, "tokens": tokens, "flops_per_token": per_token, "bf16_peak_flops": peak}
    runs_note = f"median of {args.repeats} runs, order alternating" if args.repeats > 1 else "one run"
    lines = [f"Fine-tuning MiniLM on {len(train):,} Amazon reviews ({tokens:,} tokens), one epoch, max length "
             f"{MAX_LENGTH}, {runs_note} ({meta['date']}, {machine}); accuracy on {len(test):,} test reviews", "",
             "| side | batch | seconds | samples/s | tokens/s | MFU | vs default Trainer | vs tuned Trainer | test accuracy |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        lines.append(f"| {name} | {r['batch_size']} | {r['seconds']:.1f} | {r['samples_per_s']:.1f} | "
                     f"{r['tokens_per_s']:,.0f} | {mfu} | {r['samples_per_s'] / base['samples_per_s']:.2f}x | "
                     f"{r['samples_per_s'] / tuned['samples_per_s']:.2f}x | {r['accuracy']:.3f} |")
    if peak is None:
        lines += ["", "MFU: n/a (no known bf16 peak for this device; MFU is stated for GPUs only)."]
    write_results(f"sft_{device.type}", {**meta, "results": results}, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
