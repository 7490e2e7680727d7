"""Review scoring throughput on one device: the sentiment pyfunc against ``transformers.pipeline``.

Needs no registry: a sentiment model folder is built from the bundled MiniLM encoder with
a fresh two-class head (the speed does not depend on the head's weights) and scored through
the pyfunc's own ``predict`` (length-sorted batches of 64, bf16 on a GPU or a CPU with
native bf16; RETAIL_SCORING_PRECISION=float32 forces fp32), once before the peers and once
after. The peer is ``transformers.pipeline("text-classification")`` over the same
encoder with a sequence-classification head, at its default (batch 1) and at batch sizes
16, 64 and 256, in fp32 and in bf16; the ratio that counts is against the best of them,
all measured in this run on the same texts (Amazon fine-food reviews, repeated to
``--reviews``). Run on demand::

    python benchmarks/scoring_bench.py [--reviews 5000]

Writes benchmarks/results/scoring_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import torch

from common import machine as machine_name  # noqa: E402 - also puts the project on sys.path
from common import write_results  # noqa: E402
from pipeline.demo_data import load_reviews  # noqa: E402
from pipeline.encoders.select import resolve_base_model  # noqa: E402
from pipeline.training.sentiment import MeanPoolClassifier, SentimentModel  # noqa: E402

PEER_BATCHES = (1, 16, 64, 256)


def timed(score, texts: list[str]) -> float:  # noqa: ANN001
    """Seconds to score ``texts``, after a warm-up (kernels, allocator) on a few of them."""
    score(texts[:16])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    score(texts)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def pipeline_model(folder: Path) -> SentimentModel:
    from transformers import AutoModel, AutoTokenizer

    source = resolve_base_model("")
    MeanPoolClassifier(AutoModel.from_pretrained(source), 2).save(folder / "model", AutoTokenizer.from_pretrained(source))
    (folder / "config.json").write_text(json.dumps({"classes": ["negative", "positive"], "max_length": 256}))
    model = SentimentModel()
    model.load_context(SimpleNamespace(artifacts={"model_dir": str(folder)}))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=5000)
    args = parser.parse_args()
    from transformers import pipeline

    texts = load_reviews()["text"].astype(str).tolist()
    texts = (texts * (args.reviews // len(texts) + 1))[: args.reviews]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ours = pipeline_model(Path(tmp))

        def score_ours() -> float:
            return timed(lambda t: ours.predict(None, pd.DataFrame({"text": t})), texts)

        # before and after the peers, so load from other processes on a shared machine
        # falls on both sides; the figure is the mean of the two
        ours_runs = [score_ours()]
        source = resolve_base_model("")
        peers = []
        for dtype in (torch.float32, torch.bfloat16):
            peer = pipeline("text-classification", model=source, tokenizer=source, device=device, dtype=dtype,
                            truncation=True, max_length=256)
            for batch in PEER_BATCHES:
                seconds = timed(lambda t: peer(t, batch_size=batch), texts)
                peers.append({"how": f"transformers.pipeline, batch_size={batch}"
                                     f"{', bfloat16' if dtype != torch.float32 else ''}", "seconds": seconds})
                print(peers[-1], flush=True)
            del peer
        ours_runs.append(score_ours())
        rows.append({"how": f"sentiment pyfunc (sorted batches of 64, {ours.scoring_precision})",
                     "seconds": sum(ours_runs) / len(ours_runs), "runs_s": [round(x, 3) for x in ours_runs]})
        rows += peers
    for row in rows:
        row["per_second"] = len(texts) / row["seconds"]
    ours_row, peers = rows[0], rows[1:]
    best = max(peers, key=lambda r: r["per_second"])
    machine = machine_name(device.type)
    meta = {"date": datetime.date.today().isoformat(), "machine": machine, "device": device.type,
            "reviews": len(texts), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "scoring_precision": ours.scoring_precision, "load_average": [round(x, 1) for x in os.getloadavg()],
            "best_peer": best["how"],
            "vs_best_peer": ours_row["per_second"] / best["per_second"]}
    lines = [f"Review scoring, {len(texts):,} Amazon reviews, max length 256 ({meta['date']}, {machine})", "",
             "| how | seconds | reviews/s | pyfunc vs this |", "|---|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['how']} | {row['seconds']:.2f} | {row['per_second']:.1f} | "
                     f"{ours_row['per_second'] / row['per_second']:.2f}x |")
    lines += ["", f"Against the peer's best setting here ({best['how']}): {meta['vs_best_peer']:.2f}x. "
              f"The pyfunc ran before and after the peers ({', '.join(f'{x:.2f}' for x in ours_runs)} s; the "
              f"table has their mean); load average at the end {meta['load_average'][0]} on "
              f"{os.cpu_count()} CPUs."]
    write_results(f"scoring_{device.type}", {**meta, "results": rows}, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
