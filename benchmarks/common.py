"""What the benchmark scripts share: the project on sys.path, offline Hugging Face, the
machine's name for every figure, and where results are written (``BENCH_RESULTS_DIR``,
default benchmarks/results/)."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or ROOT / "benchmarks" / "results").resolve()
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded at run time
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def machine(device_type: str = "cpu") -> str:
    """The name a figure carries: the GPU, or the CPU and its cores."""
    if device_type == "cuda":
        import torch

        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return f"{platform.machine()} CPU, {len(os.sched_getaffinity(0))} cores"


def write_results(name: str, payload: dict[str, Any], table: list[str]) -> None:
    """``results/<name>.json`` (everything) and ``results/<name>.md`` (the table)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2))
    (RESULTS / f"{name}.md").write_text("\n".join(table) + "\n")
