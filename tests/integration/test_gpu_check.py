"""benchmarks/gpu_check.sh: its dry run (the CPU part at tiny sizes) passes and writes its
tables; without CUDA and without --dry-run it stops at once and says why."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BENCH_RESULTS_DIR": str(tmp_path)}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=900)


def test_dry_run_runs_every_step_on_the_cpu(tmp_path: Path):
    result = run(tmp_path, "--dry-run")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    summary = (tmp_path / "gpu_check_cpu.md").read_text()
    for step in ("CUDA paths (tests/gpu)", "fine-tuning vs HF Trainer", "review scoring vs transformers.pipeline"):
        assert f"| {step}" in summary and "FAILED" not in summary, summary
    assert "4 skipped" in result.stdout  # the CUDA tests are collected, and skip without CUDA
    sft = (tmp_path / "sft_cpu.md").read_text()
    assert "median of 2 runs, order alternating" in sft
    assert all(f"| {side} |" in sft for side in ("trainer_default", "trainer_tuned", "pipeline"))
    assert "Against the peer's best setting here" in (tmp_path / "scoring_cpu.md").read_text()
    assert summary in result.stdout  # the summary table is printed too
    assert not list(tmp_path.glob("*_cuda.*"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_stops_and_says_why(tmp_path: Path):
    result = run(tmp_path)
    assert result.returncode == 3
    assert "torch sees no CUDA device" in result.stderr and "--dry-run" in result.stderr
    assert not list(tmp_path.iterdir())  # nothing was run or written
