"""Does review scoring's resident memory grow per distinct batch shape? (see scaling.notes.md)

Loads the sentiment pyfunc (base MiniLM, fresh head, as scaling_bench.py does), runs one
batch of 64 random token ids at each padded width given, twice over, and prints the RSS
in MB after each forward: growth in the first round only means memory kept per shape.
Run it with allocator or oneDNN settings in the environment to compare::

    python benchmarks/scoring_shapes_probe.py bf16 8,16,24,32,40,48,56,64,72,80,88,96,104,112,120,128
    python benchmarks/scoring_shapes_probe.py fp32 8,16,...,128
    MALLOC_MMAP_THRESHOLD_=131072 python benchmarks/scoring_shapes_probe.py bf16 8,16,...,128
    ONEDNN_PRIMITIVE_CACHE_CAPACITY=0 python benchmarks/scoring_shapes_probe.py bf16 8,16,...,128

Prints one JSON line; writes nothing.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import types
from pathlib import Path

import common  # noqa: F401 - puts the project on sys.path, offline Hugging Face
import torch

from pipeline.training.sentiment import SentimentModel
from scaling_bench import sentiment_model_dir

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> int:
    with open("/proc/self/statm") as f:
        return round(int(f.read().split()[1]) * PAGE / 2**20)


def main() -> None:
    bf16 = sys.argv[1] == "bf16"
    widths = [int(w) for w in sys.argv[2].split(",")]
    with tempfile.TemporaryDirectory(prefix="retail-shapes-") as tmp:
        model = SentimentModel()
        model.load_context(types.SimpleNamespace(artifacts={"model_dir": str(sentiment_model_dir(Path(tmp)))}))
        out: dict = {"bf16": bf16, "start": rss_mb()}
        for round_ in range(2):
            seen = []
            for width in widths:
                ids = torch.randint(1000, 20000, (64, width))
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    model.model(ids, torch.ones_like(ids))
                seen.append(rss_mb())
            out[f"round{round_}"] = seen
    print(json.dumps(out))


if __name__ == "__main__":
    main()
