"""DAG parse time per file, as Airflow's DAG processor sees it.

Each file in dags/ is parsed in a fresh Python process that has already imported Airflow
(as the DAG processor has; interpreter start and ``import airflow`` are not counted):

- ``cold``: the first ``DagBag(dag_folder=<file>)`` of the process: the file's own imports
  (``pipeline.*``, ``airflow.sdk`` pieces) load for the first time;
- ``warm``: the same file parsed again ``--repeats`` times in that process (the module
  is executed anew each time, its imports are cached): the median;
- ``serialize``: ``DagSerialization.to_dict`` of the file's DAGs, which the processor
  does after each parse before storing them: the median of the repeats;
- ``airflow import``: for scale, what importing Airflow's DagBag took in that process
  (paid once by the DAG processor, not per file).

Target: each file parses (cold) in under 0.3 s. Run on demand::

    python benchmarks/parse_bench.py [--repeats 5]

Writes benchmarks/results/parse.json and parse.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_results  # noqa: E402 - also puts the project on sys.path
from common import machine as machine_name  # noqa: E402

TARGET_S = 0.3
DAGS = ROOT / "dags"


def measure(dag_file: Path, repeats: int) -> dict:
    """Parse ``dag_file`` once cold, then ``repeats`` times warm (run in its own process)."""
    start = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    airflow_import = time.perf_counter() - start

    def parse() -> tuple[float, DagBag]:
        start = time.perf_counter()
        bag = DagBag(dag_folder=str(dag_file))
        return time.perf_counter() - start, bag

    cold, bag = parse()
    if bag.import_errors:
        raise RuntimeError(f"{dag_file.name}: {bag.import_errors}")
    warm, serialize = [], []
    for _ in range(repeats):
        seconds, bag = parse()
        warm.append(seconds)
        start = time.perf_counter()
        for dag in bag.dags.values():
            DagSerialization.to_dict(dag)
        serialize.append(time.perf_counter() - start)
    return {
        "file": dag_file.name, "dags": sorted(bag.dag_ids), "tasks": sum(len(d.tasks) for d in bag.dags.values()),
        "cold_s": round(cold, 4), "warm_s": round(statistics.median(warm), 4),
        "warm_min_s": round(min(warm), 4), "serialize_s": round(statistics.median(serialize), 4),
        "airflow_stat_s": round(bag.dagbag_stats[0].duration.total_seconds(), 4),
        "airflow_import_s": round(airflow_import, 3),
    }


def child_env(airflow_home: str) -> dict[str, str]:
    """A throwaway AIRFLOW_HOME (nothing written to the project), no example DAGs."""
    env = {**os.environ, "AIRFLOW_HOME": airflow_home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS), "PYTHONPATH": str(ROOT)}
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: the child process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.repeats)))
        return

    results = []
    with tempfile.TemporaryDirectory(prefix="retail-parse-") as home:
        env = child_env(home)
        # Airflow writes its default config on first import: do that once, outside the timings
        subprocess.run([sys.executable, "-c", "import airflow.configuration"], env=env, check=True,
                       capture_output=True)
        for dag_file in sorted(DAGS.glob("*.py")):
            out = subprocess.run([sys.executable, __file__, "--measure", str(dag_file), "--repeats", str(args.repeats)],
                                 capture_output=True, text=True, env=env)
            if out.returncode:
                raise SystemExit(f"{dag_file.name} failed to parse:\n{out.stderr[-3000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result["met"] = result["cold_s"] < TARGET_S
            print(result, flush=True)
            results.append(result)

    machine = machine_name()
    meta = {"date": datetime.date.today().isoformat(), "machine": machine, "target_s": TARGET_S,
            "repeats": args.repeats}
    lines = [f"DAG parse time per file ({meta['date']}, {machine}; Airflow imported first, as in the DAG "
             f"processor; warm and serialize: median of {args.repeats})", "",
             f"| file | DAGs | tasks | cold s | warm s | serialize s | under {TARGET_S} s | (airflow import s) |",
             "|---|---|---:|---:|---:|---:|---|---:|"]
    lines += [f"| {r['file']} | {', '.join(r['dags'])} | {r['tasks']} | {r['cold_s']:.3f} | {r['warm_s']:.3f} | "
              f"{r['serialize_s']:.3f} | {'yes' if r['met'] else 'no'} | {r['airflow_import_s']:.2f} |"
              for r in results]
    write_results("parse", {**meta, "results": results}, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
