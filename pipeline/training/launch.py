"""Data-parallel training: one process per GPU (or N CPU processes over gloo), from the same code.

The training task (:mod:`pipeline.training.job`) stays the one process that talks to MLflow.
When it is to train in more than one process (:func:`process_count`) it writes a job file
and runs ``torchrun --standalone --nproc-per-node N -m pipeline.training.launch worker
job.json`` (through :func:`launch`). Each rank builds the same batches (a pure function of
the epoch and the seed), the shared loop (:func:`pipeline.training.core.run_training`)
gives each rank its share of every global batch (:func:`pipeline.training.parallel.shard`)
and DistributedDataParallel averages the gradients, so ``batch_size`` stays the global
batch: the same settings learn the same model in one process or eight. Rank 0 alone writes
checkpoints and the model folder; the task then logs that folder to MLflow exactly as
after a single-process run.

A killed task takes its ranks with it (the parent-death signal on Linux), and its retry
resumes from the last checkpoint like a single-process run.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def process_count(requested: int, device: torch.device) -> int:
    """Training processes for one task: ``requested`` (settings ``training.processes``), or
    with 0 one per visible GPU when training on CUDA and one on the CPU."""
    visible = torch.cuda.device_count() if device.type == "cuda" else 0
    if requested < 0:
        raise ValueError(f"training.processes must be 0 (automatic) or more, not {requested}")
    if requested and device.type == "cuda" and requested > visible:
        raise RuntimeError(f"training.processes={requested} asks for one GPU per process, "
                           f"but {visible} {'is' if visible == 1 else 'are'} visible")
    return requested or max(1, visible)


def _die_with_parent() -> None:
    """Linux: receive SIGKILL when the parent dies (a killed task takes its ranks with it)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the call
        os._exit(1)


def train_in_process(settings: Any, family: str, data: Any, device: torch.device, checkpoint: Any,
                     model_dir: Path, init_dir: Path | None, seed: int) -> Any:
    """Fine-tune ``family``'s transformer in this process (one rank of several, or alone):
    the family's ``fine_tune`` with its training settings and the run's infrastructure flags.
    Returns its TrainHistory."""
    from pipeline.families import get_family
    from pipeline.training.core import RunOptions

    options = RunOptions(device, settings.precision, checkpoint, settings.checkpoint_every_steps, label=family)
    return get_family(family).module().fine_tune(data, settings.hyperparameters(family), options, model_dir,
                                                 init_dir, seed)


def launch(job: dict[str, Any], processes: int, device: torch.device) -> dict[str, Any]:
    """Run one training in ``processes`` ranks; return the history rank 0 wrote.

    ``job``: family, dataset_uri, model_dir, init_dir (or None), checkpoint ([lake root,
    uri] or None) and seed. The ranks read the same settings as this process (environment and
    ``RETAIL_CONFIG_FILE``). Their log lines are passed on to this process's log."""
    with tempfile.TemporaryDirectory(prefix="retail-ddp-") as tmp:
        spec = Path(tmp) / "job.json"
        history_file = Path(tmp) / "history.json"
        spec.write_text(json.dumps({**job, "history_file": str(history_file), "device": device.type}))
        # the ranks import this package however this process found it
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        if device.type == "cpu":  # share the cores among the ranks instead of each taking all
            env["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // processes))
        command = [sys.executable, "-m", "pipeline.training.launch", "agent", str(processes), str(spec)]
        log.info("%s: training in %d processes (%s, torchrun --standalone)", job["family"], processes,
                 "one per GPU, NCCL" if device.type == "cuda" else "CPU, gloo")
        with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.info("%s", line.rstrip())
        if proc.returncode != 0 or not history_file.exists():
            raise RuntimeError(f"{job['family']}: {processes}-process training failed (exit {proc.returncode}); "
                               f"the ranks' log lines are above. A retry resumes from the last checkpoint.")
        return json.loads(history_file.read_text())


def _agent(processes: int, spec: str) -> None:
    from torch.distributed.run import main as torchrun

    _die_with_parent()
    torchrun(["--standalone", f"--nproc-per-node={processes}", "-m", "pipeline.training.launch", "worker", spec])


def _worker(spec_path: str) -> None:
    """One rank: join the process group, train, and (rank 0) write the model and history."""
    _die_with_parent()
    job = json.loads(Path(spec_path).read_text())
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"[rank {rank}] %(name)s: %(message)s", stream=sys.stdout)
    if job["device"] == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None)
    try:
        from pipeline.datasets import load_dataset
        from pipeline.lake import lake_at, lake_from_settings
        from pipeline.settings import load_settings
        from pipeline.training.core import Checkpointer

        settings = load_settings()
        data = load_dataset(lake_from_settings(settings), job["dataset_uri"])
        root, uri = job["checkpoint"] or (None, None)
        checkpoint = Checkpointer(lake_at(settings, root), uri) if uri else None
        with tempfile.TemporaryDirectory() as scratch:
            model_dir = Path(job["model_dir"]) if rank == 0 else Path(scratch)
            init_dir = Path(job["init_dir"]) if job["init_dir"] else None
            history = train_in_process(settings, job["family"], data, device, checkpoint, model_dir, init_dir,
                                       job["seed"])
        if rank == 0:
            Path(job["history_file"]).write_text(json.dumps(asdict(history)))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    if sys.argv[1:2] == ["agent"]:
        _agent(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1:2] == ["worker"]:
        _worker(sys.argv[2])
    else:
        sys.exit("usage: python -m pipeline.training.launch agent N job.json | worker job.json")
