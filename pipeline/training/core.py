"""The one training loop shared by the three model families.

Hyperparameters (:class:`LoopConfig`) are kept apart from infrastructure
(:class:`RunOptions`: device, precision, checkpoints). The loop: AdamW with decoupled
weight decay (L2; none on biases and norms), fused on CUDA; a linear warmup then linear
decay; gradient clipping; bf16 autocast on CUDA; optional early stopping on a validation
loss (the best weights are kept); a checkpoint every N steps and at each epoch end, from
which a killed run resumes at the same step with the same data order.

Each family supplies its model, ``make_batches(epoch)`` (collated up front, and a pure
function of the epoch, so a resumed run sees the same batches) and a loss function.
"""

from __future__ import annotations

import io
import logging
import math
import pickle
import random
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch

from pipeline.training.parallel import all_gather, all_mean, batch_rows, rank_and_world, shard, wrap

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]


@dataclass
class LoopConfig:
    """Hyperparameters of the optimisation itself."""

    epochs: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    max_grad_norm: float = 1.0
    # stop after this many epochs without a better validation loss (0: never stop early)
    early_stopping_patience: int = 0
    # layer-wise learning-rate decay for a pretrained encoder: each layer below the top learns
    # at this factor of the one above it, the embeddings lowest, the new head at the full rate
    # (1: every parameter at the same rate)
    layer_decay: float = 1.0
    # the name the validation value is logged under (lower is better): a loss, or an error rate
    validation_name: str = "val_loss"


class Checkpointer:
    """One checkpoint file at a lake URI (local or S3), replaced atomically each time."""

    def __init__(self, lake: Any, uri: str) -> None:
        self.lake, self.uri = lake, uri

    def save(self, state: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "checkpoint.pt"
            torch.save(state, path)
            self.lake.put_file(path, self.uri)

    def load(self) -> dict[str, Any] | None:
        if not self.lake.exists(self.uri):
            return None
        # weights_only: tensors and plain containers, never code, even from a tampered lake
        try:
            return torch.load(io.BytesIO(self.lake.read_bytes(self.uri)), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise RuntimeError(f"checkpoint at {self.uri} holds more than tensors and plain values (written by an "
                               f"older version, or not by this pipeline): remove it to start over ({exc})") from exc


@dataclass
class RunOptions:
    """Infrastructure flags: where and how a training runs, not what it learns."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    checkpoint: Checkpointer | None = None
    checkpoint_every_steps: int = 0  # 0: only at each epoch end
    label: str = "training"

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        if self.precision == "bf16" or (self.precision == "auto" and self.device.type == "cuda"):
            return torch.bfloat16
        return None


@dataclass
class TrainHistory:
    epochs: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    samples: int = 0
    seconds: float = 0.0
    resumed_at_step: int = 0  # 0: started from scratch
    stopped_early: bool = False

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cpu_has_fast_bf16() -> bool:
    """AMX or AVX512-BF16 on this CPU: bf16 matrix products run natively (measured here:
    2.6x the fp32 scoring speed, and 998 of 1,000 labels the same in
    tests/integration/test_scoring_precision.py)."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def select_device(requested: str = "auto") -> torch.device:
    """'auto' takes the GPU when there is one; asking for cuda without one is an error."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was requested but no CUDA device is visible")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(requested)


def build_optimizer(
    model: torch.nn.Module, cfg: LoopConfig, total_steps: int, device: torch.device | None = None
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW without decay on biases and norms (fused on CUDA), linear warmup then decay to 0;
    with ``cfg.layer_decay`` below 1, lower encoder layers learn more slowly (:func:`lr_scale`)."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    layers = 1 + max((_layer_index(name) for name, _ in named), default=-1)
    groups: dict[tuple[bool, float], list[torch.nn.Parameter]] = {}
    for name, param in named:
        no_decay = param.ndim < 2 or "norm" in name.lower()
        groups.setdefault((no_decay, lr_scale(name, layers, cfg.layer_decay)), []).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": params, "weight_decay": 0.0 if no_decay else cfg.weight_decay, "lr": cfg.learning_rate * scale}
         for (no_decay, scale), params in sorted(groups.items(), key=lambda item: item[0])],
        lr=cfg.learning_rate,
        fused=device is not None and device.type == "cuda",
    )
    warmup = max(1, math.ceil(total_steps * cfg.warmup_ratio))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


_LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def _layer_index(name: str) -> int:
    """The encoder layer a parameter belongs to (``...layer.3...``), -1 for none."""
    match = _LAYER.search(name)
    return int(match.group(1)) if match else -1


def lr_scale(name: str, layers: int, decay: float) -> float:
    """The learning-rate factor of parameter ``name`` under layer-wise decay: ``decay`` to the
    power of its distance from the top (layer i of ``layers``: layers - i; the embeddings:
    layers + 1; anything outside the encoder's layers and embeddings, such as the head: 0)."""
    if decay == 1.0:
        return 1.0
    index = _layer_index(name)
    if index >= 0:
        return decay ** (layers - index)
    return decay ** (layers + 1) if "embeddings" in name else 1.0


def pin_batches(batches: Sequence[Batch], device: torch.device) -> list[Batch]:
    """Page-lock batches once up front so copies to the GPU can overlap compute."""
    if device.type != "cuda":
        return list(batches)
    return [{k: v.pin_memory() for k, v in b.items()} for b in batches]


def to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _rng_state() -> dict[str, Any]:
    # numpy's key as a list: a checkpoint holds only what torch.load(weights_only=True) reads
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [kind, key.tolist(), pos, has_gauss, gauss],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(key, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def run_training(
    model: torch.nn.Module,
    make_batches: Callable[[int], Sequence[Batch]],
    loss_fn: Callable[[torch.nn.Module, Batch], torch.Tensor],
    cfg: LoopConfig,
    run: RunOptions,
    validate: Callable[[torch.nn.Module], float] | None = None,
) -> TrainHistory:
    """Train ``model`` in place for ``cfg.epochs`` epochs (fewer if it stops early).

    ``make_batches(epoch)`` returns that epoch's batches, already collated, so the hot
    loop only moves tensors; ``loss_fn`` returns a scalar loss for one batch;
    ``validate`` (optional) returns a validation value after each epoch, lower is better (a loss or
    an error rate, logged as ``cfg.validation_name``); the epoch with the lowest is kept. With
    ``run.checkpoint``, the run starts from the checkpoint when there is one.
    """
    device, label = run.device, run.label
    rank, world = rank_and_world()
    model.to(device)

    def prepare(batches: Sequence[Batch]) -> list[tuple[Batch, int, float]]:
        """(this rank's share of the batch, the global batch's rows, the loss factor)."""
        parts = [shard(b, rank, world) if world > 1 else (b, 1.0) for b in batches]
        pinned = pin_batches([part for part, _ in parts], device)
        return [(p, batch_rows(b), factor) for p, b, (_, factor) in zip(pinned, batches, parts)]

    first = prepare(make_batches(0))
    steps_per_epoch = len(first)
    total_steps = max(1, steps_per_epoch * cfg.epochs)
    optimizer, scheduler = build_optimizer(model, cfg, total_steps, device)
    history = TrainHistory()
    best: dict[str, Any] = {"loss": math.inf, "state": None, "epoch": -1}
    start_epoch, skip, resumed_losses = 0, 0, []

    saved = run.checkpoint.load() if run.checkpoint else None
    if saved is not None:
        if saved["total_steps"] != total_steps:
            raise RuntimeError(f"checkpoint at {run.checkpoint.uri} is for {saved['total_steps']} steps, "
                               f"this run has {total_steps}: remove it to start over")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        # one RNG state per rank (a list) after a data-parallel run; dropout draws follow it
        states = saved["rng"] if isinstance(saved["rng"], list) else [saved["rng"]]
        _set_rng_state(states[rank] if rank < len(states) else states[0])
        history = TrainHistory(**saved["history"])
        best = saved["best"]
        start_epoch, skip, resumed_losses = saved["epoch"], saved["step_in_epoch"], saved["epoch_losses"]
        history.resumed_at_step = history.steps
        if history.stopped_early:
            start_epoch = cfg.epochs
        log.info("%s: resumed from checkpoint %s at step %d/%d (epoch %d)",
                 label, run.checkpoint.uri, history.steps, total_steps, start_epoch + 1)

    net = wrap(model, device)  # after loading: DDP starts every rank from rank 0's weights

    def checkpoint(epoch: int, step_in_epoch: int, losses: list[float]) -> None:
        if run.checkpoint is None:
            return
        rng = all_gather(_rng_state()) if world > 1 else _rng_state()
        if rank != 0:
            return
        run.checkpoint.save({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "rng": rng, "history": asdict(history), "best": best, "epoch": epoch,
            "step_in_epoch": step_in_epoch, "epoch_losses": losses, "total_steps": total_steps,
            "config": asdict(cfg),
        })
        log.info("%s: checkpoint at step %d -> %s", label, history.steps, run.checkpoint.uri)

    started = time.perf_counter() - history.seconds
    report_every = max(1, total_steps // 20)  # about twenty progress lines per run
    autocast = run.autocast_dtype
    for epoch in range(start_epoch, cfg.epochs):
        batches = first if epoch == 0 else prepare(make_batches(epoch))
        model.train()
        losses: list[float] = resumed_losses if skip else []
        for step_in_epoch, (batch, rows, factor) in enumerate(batches):
            if step_in_epoch < skip:
                continue
            batch = to_device(batch, device)
            with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                loss = loss_fn(net, batch)
            if world > 1:
                loss = loss * factor  # DDP's gradient average is then the global batch's
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            history.steps += 1
            history.samples += rows
            history.seconds = time.perf_counter() - started
            if history.steps % report_every == 0 and history.steps < total_steps:
                rate = history.seconds / max(1, history.steps - history.resumed_at_step)
                log.info("%s step %d/%d (epoch %d): loss %.4f, about %.0f s left", label, history.steps,
                         total_steps, epoch + 1, losses[-1], rate * (total_steps - history.steps))
            if run.checkpoint_every_steps and history.steps % run.checkpoint_every_steps == 0 \
                    and step_in_epoch + 1 < len(batches):
                checkpoint(epoch, step_in_epoch + 1, losses)
        skip = 0
        stats = {"train_loss": all_mean(float(np.mean(losses)) if losses else float("nan"))}
        if validate is not None:
            model.eval()
            with torch.no_grad(), torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                # every rank validates the same weights; the mean keeps their stopping decisions equal
                stats[cfg.validation_name] = all_mean(float(validate(model)))
            if stats[cfg.validation_name] < best["loss"]:
                best = {"loss": stats[cfg.validation_name], "epoch": epoch,
                        "state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}}
        history.epochs.append(stats)
        history.seconds = time.perf_counter() - started
        left = history.seconds / (epoch + 1) * (cfg.epochs - epoch - 1)
        log.info("%s epoch %d/%d: %s, %d steps, %.1f samples/s, about %.0f s left", label, epoch + 1, cfg.epochs,
                 ", ".join(f"{k} {v:.4f}" for k, v in stats.items()), len(batches), history.samples_per_second, left)
        if validate is not None and cfg.early_stopping_patience and epoch - best["epoch"] >= cfg.early_stopping_patience:
            history.stopped_early = True
            log.info("%s: no better %s for %d epochs: stopping early", label, cfg.validation_name,
                     cfg.early_stopping_patience)
        checkpoint(epoch + 1, 0, [])
        if history.stopped_early:
            break
    if best["state"] is not None and best["epoch"] != len(history.epochs) - 1:
        model.load_state_dict(best["state"])
        log.info("%s: kept the weights of epoch %d (best %s %.4f)", label, best["epoch"] + 1, cfg.validation_name,
                 best["loss"])
    return history


def augment_tokens(batch: Batch, probability: float, generator: torch.Generator, special_ids: Sequence[int]) -> Batch:
    """Token dropout: hide a random ``probability`` share of the ordinary tokens from
    attention (their mask set to 0). Works on collated tensors, so batches stay collated
    once up front; each epoch draws its own mask from ``generator``."""
    if probability <= 0:
        return batch
    ids, mask = batch["input_ids"], batch["attention_mask"]
    ordinary = mask.bool() & ~torch.isin(ids, torch.tensor(list(special_ids), dtype=ids.dtype))
    drop = (torch.rand(ids.shape, generator=generator) < probability) & ordinary
    return {**batch, "attention_mask": mask.masked_fill(drop, 0)}
