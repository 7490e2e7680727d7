"""The one training loop shared by the three model families.

AdamW with decoupled weight decay (L2), a linear warmup then linear decay, gradient
clipping, and a progress log line per epoch. Each family supplies its model, its
batches and a function that turns a batch into a loss.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]


@dataclass
class LoopConfig:
    """Hyperparameters of the optimisation itself (kept apart from infrastructure)."""

    epochs: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    max_grad_norm: float = 1.0


@dataclass
class TrainHistory:
    epochs: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    samples: int = 0
    seconds: float = 0.0

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def select_device(requested: str = "auto") -> torch.device:
    """'auto' takes the GPU when there is one; asking for cuda without one is an error."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was requested but no CUDA device is visible")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(requested)


def build_optimizer(
    model: torch.nn.Module, cfg: LoopConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW without decay on biases and norms, linear warmup then linear decay to 0."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.learning_rate,
    )
    warmup = max(1, math.ceil(total_steps * cfg.warmup_ratio))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def to_device(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def run_training(
    model: torch.nn.Module,
    make_batches: Callable[[int], Sequence[Batch]],
    loss_fn: Callable[[torch.nn.Module, Batch], torch.Tensor],
    cfg: LoopConfig,
    device: torch.device,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    label: str = "training",
) -> TrainHistory:
    """Train ``model`` in place for ``cfg.epochs`` epochs.

    ``make_batches(epoch)`` returns that epoch's batches (already collated, so the
    hot loop only moves tensors); ``loss_fn`` returns a scalar loss for one batch.
    """
    model.to(device)
    first = make_batches(0)
    total_steps = max(1, len(first) * cfg.epochs)
    optimizer, scheduler = build_optimizer(model, cfg, total_steps)
    history = TrainHistory()
    start = time.perf_counter()
    report_every = max(1, total_steps // 20)  # about twenty progress lines per run
    for epoch in range(cfg.epochs):
        batches = first if epoch == 0 else make_batches(epoch)
        model.train()
        losses: list[float] = []
        for batch in batches:
            batch = to_device(batch, device)
            loss = loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            history.steps += 1
            history.samples += _batch_size(batch)
            if history.steps % report_every == 0 and history.steps < total_steps:
                elapsed = time.perf_counter() - start
                log.info("%s step %d/%d (epoch %d): loss %.4f, about %.0f s left", label, history.steps,
                         total_steps, epoch + 1, losses[-1], elapsed / history.steps * (total_steps - history.steps))
        history.seconds = time.perf_counter() - start
        stats = {"train_loss": float(np.mean(losses)) if losses else float("nan")}
        history.epochs.append(stats)
        left = history.seconds / (epoch + 1) * (cfg.epochs - epoch - 1)
        log.info(
            "%s epoch %d/%d: loss %.4f, %d steps, %.1f samples/s, about %.0f s left",
            label, epoch + 1, cfg.epochs, stats["train_loss"], len(batches),
            history.samples_per_second, left,
        )
        if on_epoch_end:
            on_epoch_end(epoch, stats)
    return history


def _batch_size(batch: Batch) -> int:
    first = next(iter(batch.values()))
    return int(first.shape[0])

