"""A training task killed mid-epoch (SIGKILL) resumes from its checkpoint when it runs
again, in the same MLflow run, and ends with the same number of steps and the weights of
an uninterrupted run: in one process, and in two data-parallel processes (gloo), whose
ranks die with the task. Exact resume is a CPU guarantee (CUDA kernels are not
deterministic unless configured so)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import psutil
import pytest
import torch
from safetensors.torch import load_file

from pipeline.datasets import load_dataset
from pipeline.lake import Lake
from pipeline.settings import load_settings
from pipeline.training import sentiment
from pipeline.training.core import RunOptions
from pipeline.training.launch import launch


DAY = "2026-10-03"  # the date of tiny_sentiment_dataset
TRAIN_CODE = (
    "import logging, sys; logging.basicConfig(level=logging.INFO)\n"
    "from pipeline import steps\n"
    "print('RUN_ID', steps.fine_tune('sentiment', sys.argv[1], sys.argv[2]))\n"
)


def ranks_left() -> list[str]:
    return [" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])
            if "pipeline.training.launch" in " ".join(p.info["cmdline"] or [])]


@pytest.mark.parametrize("processes", [1, 2])
def test_killed_training_resumes_at_its_checkpoint(retail_env: Path, tiny_sentiment_dataset: str,
                                                   monkeypatch: pytest.MonkeyPatch, processes: int):
    dataset = tiny_sentiment_dataset
    monkeypatch.setenv("RETAIL_TRAINING__PROCESSES", str(processes))

    first = subprocess.Popen([sys.executable, "-c", TRAIN_CODE, dataset, DAY], env=os.environ.copy(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    checkpoints: list[Path] = []
    while not checkpoints and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        checkpoints = list((retail_env / "artifacts").rglob("checkpoints/checkpoint.pt"))
    assert checkpoints, f"no checkpoint appeared:\n{first.communicate()[0][-3000:]}"
    if processes > 1:
        assert len(ranks_left()) == processes + 1  # torchrun's agent and its ranks
    first.send_signal(signal.SIGKILL)  # as a lost worker or an OOM kill would
    first.wait()
    deadline = time.monotonic() + 5  # the parent-death signal, not the end of the training
    while ranks_left() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not ranks_left(), "the killed task left training processes behind"
    saved = torch.load(checkpoints[0], weights_only=False)
    saved_step, total = saved["history"]["steps"], saved["total_steps"]
    assert 0 < saved_step < total, "the kill came too late to test a resume"

    second = subprocess.run([sys.executable, "-c", TRAIN_CODE, dataset, DAY], env=os.environ.copy(),
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    run_id = second.stdout.split("RUN_ID")[-1].split()[0]
    assert "resumed from checkpoint" in second.stderr and f"at step {saved_step}/{total}" in second.stderr

    mlflow.set_tracking_uri(os.environ["RETAIL_MLFLOW_TRACKING_URI"])
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["training_processes"] == str(processes)
    assert run.data.metrics["resumed_at_step"] == saved_step
    assert run.data.metrics["train_steps"] == total
    runs = mlflow.search_runs(experiment_ids=[run.info.experiment_id], output_format="list")
    assert [r.info.run_id for r in runs] == [run_id]  # the killed run was continued, not duplicated
    assert not list((retail_env / "artifacts").rglob("checkpoint.pt"))  # removed once the model is logged
    artifacts = {f.path for f in mlflow.MlflowClient().list_artifacts(run_id, "plots")}
    assert "plots/training_curves.png" in artifacts

    # the resumed model is the one an uninterrupted run learns, dropout draws included
    # (the checkpoint carries every rank's RNG state)
    logged = Path(mlflow.artifacts.download_artifacts(artifact_uri=run.data.tags["model_uri"],
                                                      dst_path=str(retail_env / "resumed")))
    resumed = load_file(str(next(logged.rglob("model_dir")) / "model" / "model.safetensors"))
    settings, whole = load_settings(), retail_env / "whole"
    if processes == 1:
        sentiment.fine_tune(load_dataset(Lake((retail_env / "lake").as_uri()), dataset),
                            settings.hyperparameters("sentiment"), RunOptions(), whole, None, settings.training.seed)
    else:
        launch({"family": "sentiment", "dataset_uri": dataset, "model_dir": str(whole), "init_dir": None,
                "seed": settings.training.seed, "checkpoint": None}, processes, torch.device("cpu"))
    uninterrupted = load_file(str(whole / "model" / "model.safetensors"))
    assert resumed.keys() == uninterrupted.keys()
    for key, value in uninterrupted.items():
        torch.testing.assert_close(resumed[key], value, msg=f"{key} differs from an uninterrupted run's")
