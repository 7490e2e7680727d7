"""Run every benchmark in turn, then report.py: the one command behind `make bench`.

Steps (each a fresh process; a failed step is reported and the others still run):
ingest_bench, sft_bench (``--train-rows 20000 --repeats 3`` when a GPU is visible), scoring_bench, consumers_bench
and demo_stages (both read the state `make demo` left in var/), parse_bench,
scaling_bench, then report.py, which writes benchmarks/RESULTS.md and benchmarks/plots/.
Each step's wall time goes to results/run_all.json. Run on demand::

    python benchmarks/run_all.py                 # everything, full sizes
    python benchmarks/run_all.py --quick         # tiny sizes, into a temporary results folder
    python benchmarks/run_all.py --only parse demo_stages report
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT  # noqa: E402 - also puts the project on sys.path
from common import machine as machine_name  # noqa: E402

HERE = Path(__file__).resolve().parent
# step -> (script, arguments at full size, arguments with --quick)
STEPS: dict[str, tuple[str, list[str], list[str]]] = {
    "ingest": ("ingest_bench.py", [], ["--rows", "20000"]),
    "sft": ("sft_bench.py", [], ["--train-rows", "32", "--test-rows", "32"]),
    "scoring": ("scoring_bench.py", [], ["--reviews", "32"]),
    "consumers": ("consumers_bench.py", [], ["--reviews", "32"]),
    "parse": ("parse_bench.py", [], ["--repeats", "1"]),
    "demo_stages": ("demo_stages.py", [], []),
    "scaling": ("scaling_bench.py", [], ["--quick"]),
    "report": ("report.py", [], []),
}
NEEDS_DEMO = {"consumers": "var/mlflow/mlflow.db", "demo_stages": "var/airflow/airflow.db"}


def gpu_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes; results go to a temporary folder unless BENCH_RESULTS_DIR is set")
    parser.add_argument("--only", nargs="+", choices=list(STEPS), help="run these steps only")
    parser.add_argument("--skip", nargs="+", choices=list(STEPS), default=[])
    args = parser.parse_args()

    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if args.quick and not env.get("BENCH_RESULTS_DIR"):
        env["BENCH_RESULTS_DIR"] = str(Path(tempfile.mkdtemp(prefix="retail-bench-quick-")) / "results")
    results = Path(env.get("BENCH_RESULTS_DIR") or HERE / "results")
    gpu = gpu_visible()

    steps, failed = [], []
    for name, (script, full, quick) in STEPS.items():
        if (args.only and name not in args.only) or name in args.skip:
            continue
        extra = quick if args.quick else full
        if name == "sft" and gpu and not args.quick:
            extra = ["--train-rows", "20000", "--repeats", "3"]  # as benchmarks/gpu_check.sh
        missing = NEEDS_DEMO.get(name)
        if missing and not (ROOT / missing).exists():
            print(f"--- {name}: skipped, {missing} is missing (run `make demo` first)", flush=True)
            steps.append({"step": name, "status": "skipped: no demo state", "seconds": 0.0})
            continue
        command = [sys.executable, str(HERE / script), *extra]
        print(f"--- {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        rc = subprocess.run(command, env=env, cwd=ROOT).returncode
        seconds = round(time.perf_counter() - start, 1)
        status = "ok" if rc == 0 else f"failed (exit {rc})"
        print(f"--- {name}: {status} in {seconds:.0f} s", flush=True)
        steps.append({"step": name, "status": status, "seconds": seconds, "command": " ".join(command[1:])})
        if rc:
            failed.append(name)

    results.mkdir(parents=True, exist_ok=True)
    summary = {"date": datetime.date.today().isoformat(), "machine": machine_name("cuda" if gpu else "cpu"),
               "quick": args.quick, "steps": steps, "total_s": round(sum(s["seconds"] for s in steps), 1)}
    (results / "run_all.json").write_text(json.dumps(summary, indent=2))
    print("\n".join(f"{s['step']:>12}  {s['status']:<24} {s['seconds']:>7.0f} s" for s in steps))
    print(f"{'total':>12}  {'':<24} {summary['total_s']:>7.0f} s   (results in {results})")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
