"""The benchmark figures, one function each. Every figure carries its machine and date.

Written to ``BENCH_PLOTS_DIR`` (default: ``plots/`` beside the results folder, i.e.
benchmarks/plots/).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from common import RESULTS  # noqa: E402

PLOTS = Path(os.environ.get("BENCH_PLOTS_DIR") or RESULTS.parent / "plots").resolve()
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _save(fig: Figure, path: Path, *sources: dict[str, Any]) -> Path:
    """Footnote each figure with the machine and date of every result it shows."""
    seen = dict.fromkeys(f"{s.get('machine', 'machine unknown')}, {s.get('date', 'date unknown')}" for s in sources)
    fig.text(0.01, 0.005, "measured on " + "; ".join(seen), fontsize=7, color="0.35", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bars(ax: Any, labels: list[str], values: list[float], ratios: list[str], title: str, unit: str) -> None:
    ax.barh(labels, values, color=[COLORS[i % len(COLORS)] for i in range(len(values))])
    for y, (v, r) in enumerate(zip(values, ratios)):
        ax.text(v, y, f" {v:,.0f} {r}" if v >= 100 else f" {v:.1f} {r}", va="center", fontsize=8)
    ax.set_xlim(0, max(values) * 1.35)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(unit)


def plot_throughput(sft: dict | None, consumers: dict | None, ingest: dict | None, path: Path) -> Path | None:
    """Our code against its peer, measured in one run on one machine: fine-tuning against
    the HF Trainer, review scoring against transformers.pipeline; ingestion against its target."""
    panels = [p for p in (sft, consumers, ingest) if p]
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.6 * len(panels)), squeeze=False)
    axes = list(axes[:, 0])
    if sft:
        base = sft["results"]["trainer_default"]["samples_per_s"]
        names = list(sft["results"])
        values = [sft["results"][n]["samples_per_s"] for n in names]
        _bars(axes.pop(0), names, values, [f"({v / base:.2f}x)" for v in values],
              f"Fine-tuning MiniLM, {sft['train_rows']:,} reviews, {sft['device']}: vs the default HF Trainer",
              "samples per second")
    if consumers:
        reviews = [r for r in consumers["results"] if r["what"] == "reviews scored"]
        base = next(r["per_second"] for r in reviews if "defaults" in r["how"])
        values = [r["per_second"] for r in reviews]
        labels = ["pipeline: sentiment pyfunc" if "champion" in r["how"] else
                  r["how"].replace("transformers.pipeline('text-classification')", "HF pipeline") for r in reviews]
        _bars(axes.pop(0), labels, values, [f"({v / base:.1f}x)" for v in values],
              "Review scoring: vs transformers.pipeline with its defaults", "reviews per second")
    if ingest:
        ax = axes.pop(0)
        rows = ingest["results"]
        _bars(ax, [f"{r['rows']:,} rows" for r in rows], [r["validate_rows_per_s"] for r in rows],
              [""] * len(rows), "Sales validation + publish: vs the target (1 M rows in 10 s)", "rows per second")
        ax.axvline(100_000, color="red", linestyle="--", linewidth=1)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_xlim(0, max(150_000, *[r["validate_rows_per_s"] for r in rows]) * 1.35)
    return _save(fig, path, *panels)


def plot_scaling(scaling: dict, path: Path) -> Path:
    """Time and peak memory against data size, log-log, with a linear guide per stage."""
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, (stage, rows) in enumerate(scaling["stages"].items()):
        color = COLORS[i % len(COLORS)]
        x = [r["scale"] for r in rows]
        for ax, key in ((ax_t, "seconds"), (ax_m, "peak_rss_mb")):
            y = [r[key] for r in rows]
            ax.plot(x, y, "o-", color=color, label=stage)
            if key == "seconds":  # the linear guide through the smallest size
                ax.plot(x, [y[0] * s / x[0] for s in x], ":", color=color, linewidth=1)
    sizes = sorted({r["scale"] for rows in scaling["stages"].values() for r in rows})
    for ax, label in ((ax_t, "seconds (dotted: linear from the smallest size)"), (ax_m, "peak RSS, MB")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sizes, [f"{s:g}x" for s in sizes])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.3g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("size, multiple of the bundled data")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.set_title("Time against size", fontsize=10)
    ax_m.set_title("Peak memory against size", fontsize=10)
    ax_t.legend(fontsize=7)
    return _save(fig, path, scaling)


def plot_demo_stages(demo: dict, path: Path) -> Path:
    """Gantt of the demo: one row per DAG run, its tasks coloured by stage; below, the
    seconds per stage with the scheduling overhead and the gaps between runs."""
    runs = demo["dag_runs"]
    stages = list(dict.fromkeys(s["stage"] for s in demo["stages"]))
    palette = matplotlib.colormaps["tab20"].colors
    color = {s: palette[i % len(palette)] for i, s in enumerate(stages)}
    fig, (ax_g, ax_s) = plt.subplots(2, 1, figsize=(11, 3 + 0.35 * len(runs) + 0.18 * len(stages)),
                                     gridspec_kw={"height_ratios": [len(runs) + 1, 2 + len(stages) / 4]})
    for y, run in enumerate(runs):
        ax_g.barh(y, run["wall_s"], left=run["offset_s"], color="0.92", edgecolor="0.6")
        for t in run["tasks"]:
            ax_g.barh(y, max(t["seconds"], 0.05), left=t["offset_s"], color=color[t["stage"]], height=0.6,
                      edgecolor="white" if t["seconds"] > 2 else color[t["stage"]], linewidth=0.4)
    ax_g.set_yticks(range(len(runs)), [f"{r['dag_id']} {r['logical_date']}" for r in runs], fontsize=8)
    ax_g.invert_yaxis()
    ax_g.set_xlabel("seconds since the first DAG run started (grey: the DAG run, white inside grey: overhead)")
    ax_g.set_title(f"make demo: {demo['total']['wall_s']:.0f} s; scheduling overhead "
                   f"{demo['total']['overhead_share']:.1%} of the DAG runs' time", fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=color[s]) for s in stages]
    ax_g.legend(handles, stages, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))

    per_stage: dict[str, float] = {}
    for s in demo["stages"]:
        per_stage[s["stage"]] = per_stage.get(s["stage"], 0.0) + s["seconds"]
    per_stage["scheduling overhead"] = demo["total"]["overhead_in_runs_s"]
    per_stage["between DAG runs"] = demo["total"]["between_runs_s"]
    names = list(per_stage)
    ax_s.barh(names, [per_stage[n] for n in names], color=[color.get(n, "0.5") for n in names])
    for y, n in enumerate(names):
        ax_s.text(per_stage[n], y, f" {per_stage[n]:.1f} s", va="center", fontsize=7)
    ax_s.invert_yaxis()
    ax_s.tick_params(axis="y", labelsize=7)
    ax_s.set_xlabel("seconds per stage, all DAG runs")
    return _save(fig, path, demo)


def plot_parse(parse: dict, path: Path) -> Path:
    """Parse time per DAG file: cold, warm and serialisation, against the 0.3 s target."""
    rows = parse["results"]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.6 * len(rows)))
    height = 0.25
    for k, (key, label) in enumerate((("cold_s", "cold (first parse)"), ("warm_s", "warm (median)"),
                                      ("serialize_s", "serialize (median)"))):
        ax.barh([i + (k - 1) * height for i in range(len(rows))], [r[key] for r in rows], height=height, label=label)
    ax.axvline(parse["target_s"], color="red", linestyle="--", linewidth=1, label=f"target {parse['target_s']} s")
    ax.set_yticks(range(len(rows)), [r["file"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title("DAG parse time per file", fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path, parse)
