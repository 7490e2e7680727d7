"""Ingestion benchmark: land, validate and publish one sales drop of N rows.

The drop is the real Dominick's orange-juice sales (bayesm), replicated onto more
stores until it has N rows, written as one CSV file. Each size is measured in a fresh
process, so its peak memory (max RSS) is its own. Not a test: run it on demand::

    python benchmarks/ingest_bench.py --rows 1000000 10000000

Writes benchmarks/results/ingest.json and ingest.md (appending nothing: each run replaces them).
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from common import machine as machine_name  # noqa: E402 - also puts the project on sys.path
from common import write_results  # noqa: E402
if TYPE_CHECKING:
    import pandas as pd

DAY = datetime.date(2026, 10, 1)


def orange_juice_sales() -> pd.DataFrame:
    """The real OJ sales (106,139 rows) as the sales feed's columns, weeks from 2024-01-01."""
    import pandas as pd

    from pipeline.demo_data import load_orange_juice

    base = load_orange_juice()
    weeks = base["week"] - base["week"].min()
    base["date"] = (pd.Timestamp("2024-01-01") + pd.to_timedelta(weeks * 7, unit="D")).dt.strftime("%Y-%m-%d")
    return base[["date", "store_id", "sku", "units", "price", "promo"]]


def write_drop(landing: Path, rows: int) -> Path:
    """The OJ sales replicated onto stores ``<store>-r<k>`` up to ``rows`` rows, as CSV."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    base = orange_juice_sales()
    path = landing / "sales" / DAY.isoformat() / "sales.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    written, replica = 0, 0
    with pacsv.CSVWriter(path, pa.Schema.from_pandas(base, preserve_index=False)) as writer:
        while written < rows:
            part = base.head(rows - written).assign(store_id=lambda f: f["store_id"] + f"-r{replica}")
            writer.write_table(pa.Table.from_pandas(part, preserve_index=False))
            written += len(part)
            replica += 1
    return path


def measure(workdir: Path, chunk_rows: int) -> dict:
    """Land and validate the drop under ``workdir`` (run in its own process)."""
    import resource

    from pipeline.ingest.land import land_drop
    from pipeline.ingest.publish import validate_and_publish
    from pipeline.lake import Lake

    landing, lake = Lake((workdir / "landing").as_uri()), Lake((workdir / "lake").as_uri())
    start = time.perf_counter()
    land_drop(landing, lake, "sales", DAY)
    landed = time.perf_counter()
    summary = validate_and_publish(lake, "sales", DAY, 0.05, chunk_rows)
    done = time.perf_counter()
    return {
        "rows": summary.rows_in, "published": summary.rows_published,
        "quarantined": summary.rows_quarantined,
        "land_s": round(landed - start, 2), "validate_publish_s": round(done - landed, 2),
        "total_s": round(done - start, 2),
        "rows_per_s": round(summary.rows_in / (done - start)),
        "validate_rows_per_s": round(summary.rows_in / (done - landed)),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--chunk-rows", type=int, default=500_000)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: the child process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.chunk_rows)))
        return

    results = []
    for rows in args.rows:
        with tempfile.TemporaryDirectory(prefix="retail-bench-") as tmp:
            drop = write_drop(Path(tmp) / "landing", rows)
            mb = drop.stat().st_size / 1e6
            out = subprocess.run([sys.executable, __file__, "--measure", tmp, "--chunk-rows", str(args.chunk_rows)],
                                 capture_output=True, text=True, check=True)
            result = {**json.loads(out.stdout.strip().splitlines()[-1]), "csv_mb": round(mb, 1)}
            print(result, flush=True)
            results.append(result)

    machine = machine_name()
    meta = {"date": datetime.date.today().isoformat(), "machine": machine, "chunk_rows": args.chunk_rows}
    lines = [f"Ingestion of one sales CSV drop ({meta['date']}, {machine}, chunks of {args.chunk_rows:,} rows)", "",
             "| rows | CSV MB | land s | validate+publish s | total s | rows/s | peak RSS MB |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['rows']:,} | {r['csv_mb']} | {r['land_s']} | {r['validate_publish_s']} | {r['total_s']} | "
              f"{r['rows_per_s']:,} | {r['peak_rss_mb']:,} |" for r in results]
    write_results("ingest", {**meta, "results": results}, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
