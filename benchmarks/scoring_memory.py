"""Where review scoring's memory goes as the number of reviews grows.

scaling_bench.py measured the sentiment pyfunc's peak RSS at 1,103 MB for 1,000 reviews,
1,617 MB for 4,000 and 2,865 MB for 16,000. This script splits that peak by phase, each
size in a fresh process, with RSS sampled every 5 ms by a thread (/proc/self/statm):

- ``loaded``: after imports and ``load_context`` (the base MiniLM, fresh head);
- ``tokenised``: after ``_bucketed_batches`` over every text (what ``predict`` does first:
  the whole input tokenised and padded up front), and the bytes of the padded tensors;
- ``predict``: the peak during ``SentimentModel.predict`` over the whole frame (as
  scaling_bench.py runs it), and the RSS after it returns;
- ``chunked``: the peak of the same predict called on slices of ``--chunk`` reviews (the
  same results; what tokenising a slice at a time would give), in its own process;
- ``padded``: ``predict`` over the whole frame with each batch's padded width rounded up
  to a multiple of ``--pad-multiple`` tokens (``_bucketed_batches`` wrapped here, the
  pipeline's code unchanged): at most max_length / multiple distinct batch shapes.

Run on demand::

    python benchmarks/scoring_memory.py [--sizes 1000 4000 16000] [--modes phases chunked padded]
    python benchmarks/scoring_memory.py --sizes 8000 --env MALLOC_MMAP_THRESHOLD_=131072 --name scoring_memory_mmap

Writes benchmarks/results/<name>.json and .md (default name scoring_memory).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

from common import write_results  # noqa: E402 - also puts the project on sys.path
from common import machine as machine_name  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


class RSS:
    """Samples this process's resident set every ``period`` s; ``peak`` since the last ``mark``."""

    def __init__(self, period: float = 0.005) -> None:
        self.period, self.peak, self._stop = period, 0, False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def now() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE

    def _run(self) -> None:
        while not self._stop:
            self.peak = max(self.peak, self.now())
            time.sleep(self.period)

    def mark(self) -> int:
        """The peak since the last mark, in MB; restarts the peak from the current RSS."""
        peak = max(self.peak, self.now())
        self.peak = self.now()
        return round(peak / 2**20)


def child(n: int, mode: str, chunk: int, workdir: Path, pad_multiple: int = 16) -> dict:
    import pandas as pd
    import torch

    from pipeline.demo_data import load_reviews
    from pipeline.training.sentiment import SentimentModel, _bucketed_batches
    from scaling_bench import TEST_REVIEWS, sentiment_model_dir

    if mode == "padded":
        import pipeline.training.sentiment as sentiment

        plain = sentiment._bucketed_batches

        def padded(tokenizer, texts, labels, max_length, batch_size):
            batches = plain(tokenizer, texts, labels, max_length, batch_size)
            for b in batches:
                rows, width = b["input_ids"].shape
                extra = -width % pad_multiple
                if extra:
                    b["input_ids"] = torch.cat([b["input_ids"], torch.full((rows, extra), tokenizer.pad_token_id,
                                                                           dtype=torch.long)], dim=1)
                    b["attention_mask"] = torch.cat([b["attention_mask"], torch.zeros((rows, extra),
                                                                                      dtype=torch.long)], dim=1)
            return batches

        sentiment._bucketed_batches = padded
    rss = RSS()
    texts = load_reviews()["text"].iloc[-TEST_REVIEWS:].tolist()
    frame = pd.DataFrame({"text": (texts * math.ceil(n / len(texts)))[:n]})
    model = SentimentModel()
    model.load_context(types.SimpleNamespace(artifacts={"model_dir": str(sentiment_model_dir(workdir))}))
    model.predict(None, frame.head(16))  # warm up, as scaling_bench.py does
    out: dict = {"n": n, "mode": mode, "bf16": model.bf16, "threads": torch.get_num_threads()}
    out["loaded_mb"] = rss.mark()
    start = time.perf_counter()
    if mode == "phases":
        batches = _bucketed_batches(model.tokenizer, frame["text"].tolist(), None, model.config["max_length"], 64)
        out["tokenised_peak_mb"] = rss.mark()
        out["tokenised_mb"] = round(rss.now() / 2**20)
        out["padded_tensor_mb"] = round(sum(t.numel() * t.element_size() for b in batches for t in b.values())
                                        / 2**20, 1)
        out["batches"] = len(batches)
        out["widths"] = len({b["input_ids"].shape[1] for b in batches})
        del batches
        out["after_del_mb"] = round(rss.now() / 2**20)
        rss.mark()
        start = time.perf_counter()
        model.predict(None, frame)
    elif mode == "padded":
        model.predict(None, frame)
    else:  # chunked: the same predict on slices of ``chunk`` reviews
        parts = [model.predict(None, frame.iloc[i:i + chunk]) for i in range(0, len(frame), chunk)]
        pd.concat(parts, ignore_index=True)
    out["seconds"] = round(time.perf_counter() - start, 2)
    out["predict_peak_mb"] = rss.mark()
    out["after_predict_mb"] = round(rss.now() / 2**20)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--modes", nargs="+", default=["phases", "chunked"], choices=["phases", "chunked", "padded"])
    parser.add_argument("--pad-multiple", type=int, default=16)
    parser.add_argument("--child", nargs=3, metavar=("N", "MODE", "WORKDIR"), help=argparse.SUPPRESS)
    parser.add_argument("--env", nargs="*", default=[], help="VAR=value for the measured processes")
    parser.add_argument("--name", default="scoring_memory", help="results/<name>.json and .md")
    args = parser.parse_args()
    if args.child:
        n, mode, workdir = args.child
        print(json.dumps(child(int(n), mode, args.chunk, Path(workdir), args.pad_multiple)))
        return
    env = {**os.environ, **dict(e.split("=", 1) for e in args.env)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="retail-scoring-mem-") as tmp:
        for n in args.sizes:
            for mode in args.modes:
                res = subprocess.run([sys.executable, __file__, "--child", str(n), mode, tmp, "--chunk",
                                      str(args.chunk), "--pad-multiple", str(args.pad_multiple)], capture_output=True, text=True, env=env)
                if res.returncode:
                    raise SystemExit(f"{n} {mode} failed:\n{res.stderr[-3000:]}")
                row = json.loads(res.stdout.strip().splitlines()[-1])
                print(row, flush=True)
                rows.append(row)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine_name(), "chunk": args.chunk, "env": args.env,
            "note": "2-core machine shared with other jobs: timings noisy, RSS not affected by the others"}
    lines = [f"Review scoring's resident memory by phase ({meta['date']}, {meta['machine']}; each row a fresh "
             f"process, RSS sampled every 5 ms{'; ' + ' '.join(args.env) if args.env else ''})", "",
             "| reviews | how | loaded MB | tokenised MB (padded tensors MB) | predict peak MB | after predict MB "
             "| seconds |", "|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        how = {"phases": "predict(all)", "chunked": f"predict per {args.chunk}",
               "padded": f"predict(all), widths rounded up to {args.pad_multiple}"}[r["mode"]]
        tok = f"{r['tokenised_mb']:,} ({r['padded_tensor_mb']})" if r["mode"] == "phases" else ""
        lines.append(f"| {r['n']:,} | {how} | {r['loaded_mb']:,} | {tok} | {r['predict_peak_mb']:,} | "
                     f"{r['after_predict_mb']:,} | {r['seconds']} |")
    write_results(args.name, {**meta, "rows": rows}, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
