"""The CUDA paths of the training loop and the sentiment model: run by benchmarks/gpu_check.sh
on a GPU machine (which sets GPU_CHECK_REQUIRE_CUDA=1, so a missing GPU fails instead of
skipping). Elsewhere, CI included, they skip: CI has no GPU."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from pipeline.training.core import LoopConfig, RunOptions, build_optimizer, pin_batches, run_training, seed_everything

if os.environ.get("GPU_CHECK_REQUIRE_CUDA") and not torch.cuda.is_available():
    raise RuntimeError("GPU_CHECK_REQUIRE_CUDA is set but torch sees no CUDA device")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device (benchmarks/gpu_check.sh runs these on a GPU)")

CUDA = torch.device("cuda")
CFG = LoopConfig(epochs=2, learning_rate=0.05, weight_decay=0.01, warmup_ratio=0.2)


def batches(epoch: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(100 + epoch)
    return [{"x": torch.randn(16, 32, generator=g), "y": torch.randn(16, 1, generator=g)} for _ in range(5)]


def mlp() -> torch.nn.Module:
    seed_everything(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 1))


def test_fused_adamw_and_pinned_batches_on_cuda():
    optimizer, _ = build_optimizer(mlp().to(CUDA), CFG, 10, CUDA)
    assert optimizer.defaults["fused"] is True
    assert all(t.is_pinned() for b in pin_batches(batches(0), CUDA) for t in b.values())


def test_bf16_autocast_trains_on_cuda_and_learns():
    net, seen = mlp(), []
    net[0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))

    def mse(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.mse_loss(model(batch["x"]).float(), batch["y"])

    history = run_training(net, batches, mse, LoopConfig(5, 0.01, 0.0, 0.1), RunOptions(CUDA))
    assert set(seen) == {torch.bfloat16}  # autocast ran the matmuls in bf16 (default precision on CUDA)
    assert next(net.parameters()).dtype == torch.float32 and next(net.parameters()).is_cuda  # fp32 master weights
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]


def test_sentiment_fine_tunes_and_scores_on_cuda(tmp_path: Path):
    from types import SimpleNamespace

    import pandas as pd

    from pipeline.datasets import FamilyData
    from pipeline.demo_data import load_reviews
    from pipeline.settings import SentimentTraining
    from pipeline.training import sentiment

    reviews = load_reviews()
    train, test = reviews.iloc[:1000].assign(created_at="2026-10-01"), reviews.iloc[4000:4300]
    hp = SentimentTraining(max_length=128, batch_size=32, epochs=1, max_train_rows=0)
    history = sentiment.fine_tune(FamilyData(train, test), hp, RunOptions(CUDA), tmp_path, None, 13)
    assert history.steps == 32
    model = sentiment.SentimentModel()
    model.load_context(SimpleNamespace(artifacts={"model_dir": str(tmp_path)}))
    assert model.device.type == "cuda" and model.bf16
    out = model.predict(None, pd.DataFrame({"text": test["text"]}))
    accuracy = float((out["label"].to_numpy() == test["label"].to_numpy()).mean())
    majority = float(test["label"].value_counts(normalize=True).max())
    assert accuracy > majority, (accuracy, majority)
    assert json.loads((tmp_path / "config.json").read_text())["classes"] == sorted(train["label"].unique())


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpus_end_with_the_weights_of_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """NCCL on two GPUs against one GPU, in fp32 (bf16 rounding would differ between the
    two batch shapes) and without dropout. Tolerance: the weights' difference at most 1e-2
    of the update (the CPU test holds 1e-3; cuBLAS picks other kernels for other batch
    shapes, and this bound was set before any GPU run)."""
    from safetensors.torch import load_file

    from pipeline.datasets import load_dataset
    from pipeline.demo_data import load_reviews
    from pipeline.lake import Lake
    from pipeline.settings import load_settings
    from pipeline.training import sentiment
    from pipeline.training.launch import launch

    for key, value in {"LAKE_URI": (tmp_path / "lake").as_uri(), "PRECISION": "fp32", "TRAINING__SENTIMENT__DROPOUT": "0",
                       "TRAINING__SENTIMENT__BATCH_SIZE": "33", "TRAINING__SENTIMENT__EPOCHS": "1",
                       "TRAINING__SENTIMENT__MAX_TRAIN_ROWS": "0"}.items():
        monkeypatch.setenv(f"RETAIL_{key}", value)
    lake = Lake((tmp_path / "lake").as_uri())
    dataset = lake.uri("datasets", "sentiment", "date=2026-10-03")
    reviews = load_reviews().head(700).assign(created_at="2026-10-01")
    lake.write_parquet(f"{dataset}/train.parquet", reviews.iloc[:600])
    lake.write_parquet(f"{dataset}/holdout.parquet", reviews.iloc[600:])
    settings = load_settings()
    sentiment.fine_tune(load_dataset(lake, dataset), settings.hyperparameters("sentiment"),
                        RunOptions(CUDA, precision="fp32"), tmp_path / "one", None, 13)
    launch({"family": "sentiment", "dataset_uri": dataset, "model_dir": str(tmp_path / "two"), "init_dir": None,
            "seed": 13, "checkpoint": None}, 2, CUDA)
    from transformers import AutoModel

    from pipeline.encoders.select import resolve_base_model

    base = AutoModel.from_pretrained(resolve_base_model()).state_dict()
    a, b = (load_file(str(tmp_path / side / "model" / "model.safetensors")) for side in ("one", "two"))
    moved = sum(float((a[k] - base[k]).norm() ** 2) for k in a) ** 0.5
    apart = sum(float((a[k] - b[k]).norm() ** 2) for k in a) ** 0.5
    assert moved > 0.5 and apart < 1e-2 * moved, (apart, moved)
