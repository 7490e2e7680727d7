"""History import benchmark: ``python -m pipeline ingest`` over a landing of dated drops,
timed as a user runs it (a fresh process: imports, Great Expectations and all).

Cases:
- ``weekly``: the real Dominick's orange-juice sales as one drop per week (every week of
  the data: 121 drops, 106,139 rows) and the Amazon reviews as 60 daily drops;
- ``demo``: the bundled demo history (``make demo``'s three days of drops);
- ``scaled``: the weekly case with the sales replicated onto more stores up to
  ``--sales-rows`` rows and the reviews repeated (new ids) up to ``--reviews`` rows.

Not a test: run it on demand::

    python benchmarks/import_bench.py [--cases weekly demo scaled] [--sales-rows 1000000] [--reviews 100000]

Writes benchmarks/results/import.json and import.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, write_results  # noqa: E402 - also puts the project on sys.path

REVIEW_DAYS = 60


def write_weekly_history(landing: Path, sales_rows: int = 0, reviews_rows: int = 0) -> dict[str, int]:
    """Sales: a drop per week; reviews: a drop per day over the last REVIEW_DAYS days."""
    import numpy as np
    import pandas as pd

    from pipeline.demo_data import load_orange_juice, load_reviews

    base = load_orange_juice()
    first = pd.Timestamp("2024-01-01")
    base["date"] = first + pd.to_timedelta((base["week"] - base["week"].min()) * 7, unit="D")
    base = base.drop(columns="week")
    copies = max(1, -(-sales_rows // len(base))) if sales_rows else 1
    sales = pd.concat([base.assign(store_id=base["store_id"] + (f"-r{k}" if k else "")) for k in range(copies)])
    if sales_rows:
        sales = sales.head(sales_rows)
    for day, part in sales.groupby("date"):
        folder = landing / "sales" / day.date().isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        part.to_csv(folder / "sales.csv.gz", index=False, compression={"method": "gzip", "mtime": 0})

    reviews = load_reviews()
    if reviews_rows:
        reps = -(-reviews_rows // len(reviews))
        reviews = pd.concat([reviews.assign(review_id=reviews["review_id"].astype(str) + f"-{k}")
                             for k in range(reps)]).head(reviews_rows)
    last = sales["date"].max()
    days = [last - pd.Timedelta(days=REVIEW_DAYS - 1 - i) for i in range(REVIEW_DAYS)]
    chunks = np.array_split(np.arange(len(reviews)), REVIEW_DAYS)
    for day, rows in zip(days, chunks):
        part = reviews.iloc[rows].assign(created_at=day + pd.Timedelta(hours=12))
        folder = landing / "reviews" / day.date().isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        part.to_json(folder / "reviews.jsonl", orient="records", lines=True, date_format="iso")
    return {"sales_drops": sales["date"].nunique(), "sales_rows": len(sales), "review_drops": REVIEW_DAYS,
            "review_rows": len(reviews)}


def write_demo_history(landing: Path) -> dict[str, int]:
    from pipeline.demo_data import write_demo_drops
    from pipeline.lake import Lake
    from pipeline.settings import load_settings

    settings = load_settings()
    start = datetime.date.fromisoformat(settings.demo_start)
    return write_demo_drops(Lake(landing.as_uri()), start, settings.demo_days)


def timed_import(workdir: Path) -> float:
    env = {**os.environ, "RETAIL_LAKE_URI": (workdir / "lake").as_uri(),
           "RETAIL_LANDING_URI": (workdir / "landing").as_uri(), "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pipeline", "ingest"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"import failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    print(done.stdout.strip().splitlines()[-1], flush=True)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["weekly", "demo"], choices=["weekly", "demo", "scaled"])
    parser.add_argument("--sales-rows", type=int, default=1_000_000)
    parser.add_argument("--reviews", type=int, default=100_000)
    args = parser.parse_args()
    rows = []
    for case in args.cases:
        with tempfile.TemporaryDirectory(prefix=f"import-{case}-") as tmp:
            landing = Path(tmp) / "landing"
            if case == "demo":
                written = write_demo_history(landing)
            else:
                written = write_weekly_history(landing, *((args.sales_rows, args.reviews) if case == "scaled" else ()))
            drops = sum(1 for p in landing.glob("*/*") if p.is_dir())
            seconds = timed_import(Path(tmp))
            rows.append({"case": case, "drops": drops, "rows": sum(v for k, v in written.items() if "drops" not in k),
                         "written": written, "seconds": round(seconds, 1)})
            print(f"{case}: {drops} drops in {seconds:.1f} s", flush=True)
    name = machine()
    today = datetime.date.today().isoformat()
    table = [f"History import with `python -m pipeline ingest`, a fresh process each ({today}, {name})", "",
             "| case | drops | rows | seconds | seconds per drop |", "|---|---:|---:|---:|---:|"]
    table += [f"| {r['case']} | {r['drops']} | {r['rows']:,} | {r['seconds']:.1f} | {r['seconds'] / r['drops']:.2f} |"
              for r in rows]
    write_results("import", {"machine": name, "date": today, "runs": rows}, table)
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
