"""Data-parallel training (pipeline/training/launch.py) on the CPU over gloo: two
processes learn the weights that one process learns from the same global batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

from pipeline.datasets import load_dataset
from pipeline.lake import Lake
from pipeline.settings import load_settings
from pipeline.training import sentiment
from pipeline.training.core import RunOptions
from pipeline.encoders.select import resolve_base_model
from pipeline.training.launch import launch


def test_two_processes_end_with_the_weights_of_one(retail_env: Path, tiny_sentiment_dataset: str,
                                                   monkeypatch: pytest.MonkeyPatch):
    """MiniLM fine-tuned on 64 real reviews for 2 epochs (24 steps, batches of 5 rows split
    3 + 2 between the ranks, so the loss factors matter) in one process and in two.

    Dropout is off: each process draws its own dropout masks, so with dropout the two runs
    are equivalent in distribution only (measured: the weights differ by 0.93 of the update
    with dropout 0.1, by 1e-4 without). Tolerance: the weights' difference at most 1e-3 of
    the size of the update the training made, and no weight more than 1e-4 apart."""
    monkeypatch.setenv("RETAIL_TRAINING__SENTIMENT__DROPOUT", "0")
    monkeypatch.setenv("RETAIL_TRAINING__SENTIMENT__BATCH_SIZE", "5")
    settings = load_settings()
    data = load_dataset(Lake((retail_env / "lake").as_uri()), tiny_sentiment_dataset)
    one = sentiment.fine_tune(data, settings.hyperparameters("sentiment"), RunOptions(), retail_env / "one", None, 13)
    two = launch({"family": "sentiment", "dataset_uri": tiny_sentiment_dataset, "model_dir": str(retail_env / "two"),
                  "init_dir": None, "seed": 13, "checkpoint": None}, 2, torch.device("cpu"))

    assert one.steps == two["steps"] == 24 and one.samples == two["samples"]
    for mine, theirs in zip(one.epochs, two["epochs"]):  # the ranks' losses averaged into the global one
        assert theirs == pytest.approx(mine, rel=1e-5)
    base = AutoModel.from_pretrained(resolve_base_model()).state_dict()
    a, b = (load_file(str(retail_env / side / "model" / "model.safetensors")) for side in ("one", "two"))
    assert a.keys() == b.keys()
    moved = sum(float((a[k] - base[k]).norm() ** 2) for k in a) ** 0.5
    apart = sum(float((a[k] - b[k]).norm() ** 2) for k in a) ** 0.5
    assert moved > 0.5, "the training hardly moved the weights: the comparison would prove nothing"
    assert apart < 1e-3 * moved, f"two processes ended {apart:.2e} from one (the update was {moved:.2f})"
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
    head_a, head_b = (load_file(str(retail_env / side / "model" / "head.safetensors")) for side in ("one", "two"))
    for key in head_a:
        torch.testing.assert_close(head_a[key], head_b[key], atol=1e-5, rtol=1e-4)


def test_a_failing_rank_fails_the_training_clearly(retail_env: Path, tiny_sentiment_dataset: str):
    with pytest.raises(RuntimeError, match="2-process training failed .* resumes from the last checkpoint"):
        launch({"family": "sentiment", "dataset_uri": tiny_sentiment_dataset + "-missing",
                "model_dir": str(retail_env / "two"), "init_dir": None, "seed": 13, "checkpoint": None},
               2, torch.device("cpu"))
