"""Fine-tuning throughput: our training loop against the Hugging Face Trainer.

The same MiniLM encoder, the same Amazon fine-food reviews (the 4,000 training rows,
repeated when more are asked for), one epoch; test accuracy on held-out reviews. Every
side trains the same model with the same recipe, the pipeline's: its mean-pool head and
class-weighted loss, learning rate, warmup and weight decay (``SentimentTraining``), so
accuracy is compared at a recipe that learns. Four sides:

- ``trainer_default``: ``Trainer`` at batch 32, its random sampler and AdamW;
- ``trainer_tuned``: batch 128, grouped by length (``train_sampling_strategy``), fused AdamW, bf16 on a GPU;
- ``trainer_grouped``: the pipeline's batch size, grouped by length (the ``group_by_length``
  of older transformers) over the whole epoch, as the Trainer's sampler groups on large
  datasets (on small ones it groups nothing: see ``EpochGroupedSampler``), its default
  AdamW (fused from torch 2.8): the Trainer at the pipeline's settings;
- ``pipeline``: ``pipeline.training.sentiment.fine_tune`` (length-bucketed batches
  collated once up front, bf16 autocast and fused AdamW on a GPU).

Each side's time covers loading the model, tokenising and the epoch. With ``--repeats N``
the sides run N rounds, the order reversed every other round (so no side always runs
first, on a cold or a warm device), and each side's median time and accuracy count.
Where the time goes is measured, not assumed: padding tokens per epoch (tokens in the
batches minus the real ones), and time in forward, backward, gradient clipping, the
optimizer step, and data loading and collation (timers around the model's forward, the
backward call, the optimizer step hooks, the collator and the Trainer's batch fetch).
Tokens per second counts the reviews' real (unpadded) tokens; on a GPU whose bf16 peak
is known, MFU is the model FLOPs per token (6 x parameters outside the embeddings + 12 x
layers x hidden x mean length) times tokens per second over that peak. Run on demand::

    python benchmarks/sft_bench.py                                    # CPU sizes: 1,500 rows
    python benchmarks/sft_bench.py --train-rows 20000 --repeats 3     # the GPU comparison

Writes benchmarks/results/sft_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from common import machine as machine_name  # noqa: E402 - also puts the project on sys.path
from common import RESULTS, write_results  # noqa: E402
from pipeline.datasets import FamilyData  # noqa: E402
from pipeline.demo_data import load_reviews  # noqa: E402
from pipeline.settings import SentimentTraining  # noqa: E402
from pipeline.training import sentiment  # noqa: E402
from pipeline.training.core import RunOptions, seed_everything, select_device  # noqa: E402
from pipeline.encoders.select import resolve_base_model  # noqa: E402

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


class Meter:
    """Where one side's training time goes. Timers sit around the model's forward (module
    hooks), ``Tensor.backward``, ``clip_grad_norm_``, the optimizer step (torch's global
    step hooks), the collator and the Trainer's batch fetch; they count only while a
    side's training loop runs (``active``), so scoring and setup stay out."""

    def __init__(self) -> None:
        self.active = False
        self.t = {"forward": 0.0, "backward": 0.0, "clip": 0.0, "optimizer": 0.0, "data": 0.0, "collate": 0.0}
        self.batches = self.batch_tokens = self.real_tokens = 0
        self._opt_start = self._fwd_start = 0.0

    def count_batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        self.batches += 1
        self.batch_tokens += int(input_ids.numel())
        self.real_tokens += int(attention_mask.sum())

    def timed(self, key: str, fn):
        def wrapper(*args, **kwargs):
            if not self.active:
                return fn(*args, **kwargs)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.t[key] += time.perf_counter() - start
        return wrapper

    def hook_forward(self, module: torch.nn.Module) -> None:
        def pre(*_):
            self._fwd_start = time.perf_counter()

        def post(*_):
            if self.active:
                self.t["forward"] += time.perf_counter() - self._fwd_start
        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)


METER: Meter = Meter()


def install_timers() -> None:
    """Process-wide timers, read through the current ``METER`` (one per run)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    def opt_pre(*_):
        METER._opt_start = time.perf_counter()

    def opt_post(*_):
        if METER.active:
            METER.t["optimizer"] += time.perf_counter() - METER._opt_start
    register_optimizer_step_pre_hook(opt_pre)
    register_optimizer_step_post_hook(opt_post)
    backward, clip = torch.Tensor.backward, torch.nn.utils.clip_grad_norm_
    torch.Tensor.backward = lambda *a, **k: METER.timed("backward", backward)(*a, **k)
    torch.nn.utils.clip_grad_norm_ = lambda *a, **k: METER.timed("clip", clip)(*a, **k)


def breakdown(meter: Meter, total: float, loop: float) -> dict:
    """The measured split of one run: setup (load, tokenise, up-front collation) and the loop."""
    in_loop = sum(meter.t[k] for k in ("forward", "backward", "clip", "optimizer", "data"))
    return {"setup_s": total - loop, "loop_s": loop, **{f"{k}_s": v for k, v in meter.t.items()},
            "other_loop_s": loop - in_loop, "batches": meter.batches, "batch_tokens": meter.batch_tokens,
            "real_tokens": meter.real_tokens, "padding_tokens": meter.batch_tokens - meter.real_tokens}


class WeightedHead(torch.nn.Module):
    """The pipeline's mean-pool classifier and class-weighted loss, in the shape the
    Trainer trains: ``forward(input_ids, attention_mask, labels)`` returns the loss."""

    def __init__(self, classifier: torch.nn.Module, weights: torch.Tensor) -> None:
        super().__init__()
        self.classifier = classifier
        self.register_buffer("weights", weights)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.classifier(input_ids, attention_mask)
        out = {"logits": logits}
        if labels is not None:  # the same loss as sentiment.fine_tune's
            losses = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")
            out = {"loss": (losses * self.weights[labels]).mean(), "logits": logits}
        return out


TRAINER_SIDES = {  # name -> the TrainingArguments that set it apart (GPU-only ones added in run_trainer)
    "trainer_default": {"per_device_train_batch_size": 32},
    "trainer_tuned": {"per_device_train_batch_size": 128, "train_sampling_strategy": "group_by_length",
                      "optim": "adamw_torch_fused"},
    "trainer_grouped": {"per_device_train_batch_size": None, "train_sampling_strategy": "group_by_length"},
}


def run_trainer(train: pd.DataFrame, test: pd.DataFrame, classes: list[str], side: str, batch_size: int,
                device: torch.device, seed: int) -> dict:
    global METER
    from transformers import AutoModel, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments

    from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

    class EpochGroupedSampler(LengthGroupedSampler):
        """The Trainer's length grouping at its large-dataset setting. Its own sampler sorts
        within mega-batches of min(rows / (4 x batch), 50) batches: below 8 x batch rows
        (here) that is one batch, so its batches are random ones and save no padding
        (measured: ``trainer_tuned``). At 50 batches per mega-batch it groups like the
        pipeline's buckets; the longest batch first, as the Trainer's own."""

        def __iter__(self):
            return iter(get_length_grouped_indices(self.lengths, self.batch_size, mega_batch_mult=50,
                                                   generator=self.generator))

    class TimedTrainer(Trainer):
        def get_batch_samples(self, *args, **kwargs):  # the data loader: sampler, fetch and collation
            return METER.timed("data", super().get_batch_samples)(*args, **kwargs)

        def _get_train_sampler(self, *args, **kwargs):
            sampler = super()._get_train_sampler(*args, **kwargs)
            if side == "trainer_grouped":
                return EpochGroupedSampler(sampler.batch_size, lengths=sampler.lengths, generator=sampler.generator)
            return sampler

    hp = SentimentTraining()
    meter = METER = Meter()
    source = resolve_base_model("")
    start = time.perf_counter()
    seed_everything(seed)
    tokenizer = AutoTokenizer.from_pretrained(source)
    classifier = sentiment.MeanPoolClassifier(AutoModel.from_pretrained(source), len(classes))
    counts = train["label"].value_counts()
    weights = torch.tensor([len(train) / (len(classes) * counts.get(c, 1)) for c in classes], dtype=torch.float32)
    model = WeightedHead(classifier, weights)
    meter.hook_forward(classifier)
    index = {c: i for i, c in enumerate(classes)}
    encoded = tokenizer(train["text"].tolist(), truncation=True, max_length=MAX_LENGTH)
    rows = [{"input_ids": ids, "attention_mask": mask, "labels": index[label]}
            for ids, mask, label in zip(encoded["input_ids"], encoded["attention_mask"], train["label"])]
    collator = DataCollatorWithPadding(tokenizer)

    def collate(features):
        batch = meter.timed("collate", collator)(features)
        if meter.active:
            meter.count_batch(batch["input_ids"], batch["attention_mask"])
        return batch

    extra = dict(TRAINER_SIDES[side])
    extra["per_device_train_batch_size"] = extra["per_device_train_batch_size"] or batch_size
    if side == "trainer_tuned":
        extra["bf16"] = device.type == "cuda"
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, num_train_epochs=1, report_to=[], save_strategy="no",
                                 logging_strategy="no", disable_tqdm=True, seed=seed,
                                 learning_rate=hp.learning_rate, warmup_steps=hp.warmup_ratio,  # < 1: a ratio
                                 weight_decay=hp.weight_decay, use_cpu=device.type == "cpu", **extra)
        trainer = TimedTrainer(model=model, args=args, train_dataset=rows, data_collator=collate)
        loop_start = time.perf_counter()
        meter.active = True
        trainer.train()
        if device.type == "cuda":
            torch.cuda.synchronize()
        meter.active = False
        loop = time.perf_counter() - loop_start
    seconds = time.perf_counter() - start
    model.eval()
    acc = accuracy(classifier, tokenizer, test, classes, device)
    return {"seconds": seconds, "accuracy": acc, "batch_size": extra["per_device_train_batch_size"],
            **breakdown(meter, seconds, loop)}


def run_pipeline(train: pd.DataFrame, test: pd.DataFrame, classes: list[str], batch_size: int,
                 device: torch.device, seed: int) -> dict:
    global METER
    from transformers import AutoTokenizer

    meter = METER = Meter()
    bucketed, run_training = sentiment._bucketed_batches, sentiment.run_training
    loop = {"s": 0.0}

    def timed_bucketed(*args, **kwargs):  # the up-front collation: tokenise, sort, pad
        begin = time.perf_counter()
        batches = bucketed(*args, **kwargs)
        meter.t["collate"] += time.perf_counter() - begin
        for b in batches:
            meter.count_batch(b["input_ids"], b["attention_mask"])
        return batches

    def timed_loop(model, *args, **kwargs):
        meter.hook_forward(model)
        begin = time.perf_counter()
        meter.active = True
        try:
            return run_training(model, *args, **kwargs)
        finally:
            meter.active = False
            loop["s"] = time.perf_counter() - begin

    hp = SentimentTraining(max_length=MAX_LENGTH, batch_size=batch_size, epochs=1, max_train_rows=0)
    data = FamilyData(train.assign(created_at="2026-10-01"), test)
    sentiment._bucketed_batches, sentiment.run_training = timed_bucketed, timed_loop
    try:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            sentiment.fine_tune(data, hp, RunOptions(device, label="pipeline"), Path(tmp), None, seed)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            tokenizer = AutoTokenizer.from_pretrained(Path(tmp) / "model")
            model = sentiment.MeanPoolClassifier.load(Path(tmp) / "model", len(classes)).to(device).eval()
    finally:
        sentiment._bucketed_batches, sentiment.run_training = bucketed, run_training
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        acc = accuracy(model, tokenizer, test, classes, device)
    return {"seconds": seconds, "accuracy": acc, "batch_size": batch_size, **breakdown(meter, seconds, loop["s"])}


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
    parser.add_argument("--from-runs", action="store_true",
                        help="no new runs: tabulate results/sft_<device>.runs.json (what a cut-short run left)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    MAX_LENGTH = args.max_length

    device = select_device(args.device)
    train, test = load_data(args.train_rows, args.test_rows)
    classes = sorted(train["label"].unique())
    install_timers()
    sides = {name: (lambda name=name: run_trainer(train, test, classes, name, args.batch_size, device, args.seed))
             for name in TRAINER_SIDES}
    sides["pipeline"] = lambda: run_pipeline(train, test, classes, args.batch_size, device, args.seed)
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    # every run as it ends: a run cut short keeps the rounds it finished (--from-runs tabulates them)
    runs_file = RESULTS / f"sft_{device.type}.runs.json"
    if args.from_runs:
        runs = json.loads(runs_file.read_text())
    for round_ in range(0 if args.from_runs else args.repeats):
        for name in (list(sides) if round_ % 2 == 0 else list(reversed(sides))):
            load_before = os.getloadavg()[0]
            result = sides[name]()
            result |= {"round": round_ + 1, "load_before": load_before, "load_after": os.getloadavg()[0]}
            runs[name].append(result)
            runs_file.write_text(json.dumps(runs, indent=1))
            print(f"round {round_ + 1}", name, {k: round(v, 4) if isinstance(v, float) else v
                                               for k, v in result.items()}, flush=True)
    repeats = min(len(r) for r in runs.values())

    from transformers import AutoTokenizer

    lengths = [len(ids) for ids in AutoTokenizer.from_pretrained(resolve_base_model(""))(
        train["text"].tolist(), truncation=True, max_length=MAX_LENGTH)["input_ids"]]
    tokens, peak = sum(lengths), bf16_peak(device)
    per_token = flops_per_token(tokens / len(lengths))
    timers = ["setup_s", "loop_s", "forward_s", "backward_s", "clip_s", "optimizer_s", "data_s", "collate_s",
              "other_loop_s"]
    results = {}
    for name, side_runs in runs.items():
        seconds = statistics.median(r["seconds"] for r in side_runs)
        first = side_runs[0]
        results[name] = {"seconds": seconds, "runs_seconds": [r["seconds"] for r in side_runs],
                         "accuracy": statistics.median(r["accuracy"] for r in side_runs),
                         "runs_accuracy": [r["accuracy"] for r in side_runs],
                         "batch_size": first["batch_size"], "samples_per_s": len(train) / seconds,
                         "tokens_per_s": tokens / seconds,
                         "mfu": per_token * tokens / seconds / peak if peak else None,
                         # padding: the same in every run of a side but the random sampler's (median then)
                         **{k: statistics.median(r[k] for r in side_runs)
                            for k in ("batches", "batch_tokens", "real_tokens", "padding_tokens")},
                         "breakdown_median_s": {k: statistics.median(r[k] for r in side_runs) for k in timers},
                         "runs_breakdown_s": [{k: r[k] for k in timers} for r in side_runs],
                         "runs_load_average": [[r.get("load_before"), r.get("load_after")] for r in side_runs]}

    base, tuned = results["trainer_default"], results["trainer_tuned"]
    grouped = results["trainer_grouped"]
    machine = machine_name(device.type)
    meta = {"date": datetime.date.today().isoformat(), "machine": machine, "device": device.type,
            "train_rows": len(train), "test_rows": len(test), "max_length": MAX_LENGTH, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "repeats": repeats, "tokens": tokens,
            "flops_per_token": per_token, "bf16_peak_flops": peak,
            "recipe": {k: getattr(SentimentTraining(), k) for k in ("learning_rate", "warmup_ratio", "weight_decay")}
            | {"head": "mean-pool, class-weighted loss (the pipeline's), every side"}}
    runs_note = f"median of {repeats} runs, order alternating" if repeats > 1 else "one run"
    recipe = meta["recipe"]
    lines = [f"Fine-tuning MiniLM on {len(train):,} Amazon reviews ({tokens:,} real tokens), one epoch, max length "
             f"{MAX_LENGTH}, {runs_note} ({meta['date']}, {machine}); accuracy on {len(test):,} test reviews. "
             f"Every side trains the pipeline's recipe: mean-pool head, class-weighted loss, learning rate "
             f"{recipe['learning_rate']:g}, warmup {recipe['warmup_ratio']:g}, weight decay {recipe['weight_decay']:g}.",
             "",
             "| side | batch | seconds (median) | runs (s) | samples/s | tokens/s | MFU | vs default Trainer | "
             "vs tuned Trainer | vs grouped Trainer | test accuracy (median) | runs |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in results.items():
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        lines.append(f"| {name} | {r['batch_size']} | {r['seconds']:.1f} | "
                     f"{' / '.join(f'{x:.0f}' for x in r['runs_seconds'])} | {r['samples_per_s']:.1f} | "
                     f"{r['tokens_per_s']:,.0f} | {mfu} | {r['samples_per_s'] / base['samples_per_s']:.2f}x | "
                     f"{r['samples_per_s'] / tuned['samples_per_s']:.2f}x | "
                     f"{r['samples_per_s'] / grouped['samples_per_s']:.2f}x | {r['accuracy']:.3f} | "
                     f"{' / '.join(f'{x:.3f}' for x in r['runs_accuracy'])} |")
    if peak is None:
        lines += ["", "MFU: n/a (no known bf16 peak for this device; MFU is stated for GPUs only)."]
    loads = [x for r in results.values() for pair in r["runs_load_average"] for x in pair if x is not None]
    if loads:
        lines += ["", f"The machine was shared with other jobs while this ran (1-minute load average "
                  f"{min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} cores): single runs are noisy, hence "
                  "the alternating order and the medians; the per-run times are in the table."]
    lines += ["", "Where the time goes (median seconds per part over the runs; measured by timers around the "
              "model's forward, `Tensor.backward`, `clip_grad_norm_`, the optimizer's step hooks, the collator "
              "and the Trainer's batch fetch). Setup: loading the model, tokenising and, for the pipeline, its "
              "up-front collation. Data: the Trainer's data loader inside the loop (sampler, fetch, collation); "
              "the pipeline's batches are collated before the loop (collate column). Padding: tokens in the "
              "batches minus the real ones, per epoch.", "",
              "| side | batches | tokens in batches | padding tokens | padding share | setup | loop | forward | "
              "backward | clip | optimizer | data (in loop) | collate | other in loop |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        t = r["breakdown_median_s"]
        lines.append(f"| {name} | {r['batches']:.0f} | {r['batch_tokens']:,.0f} | {r['padding_tokens']:,.0f} | "
                     f"{r['padding_tokens'] / r['batch_tokens']:.0%} | "
                     + " | ".join(f"{t[k]:.1f}" for k in timers) + " |")
    write_results(f"sft_{device.type}", {**meta, "results": results}, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
