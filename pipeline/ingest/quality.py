"""After a drop is published: drift against the previous window, unknown skus, holds.

For feed F and day D the reference is every validated partition of F dated in
``[D - window_days, D)``; unknown skus are judged against the whole catalog published
up to D. Results go to ``<lake>/quality/<F>/date=<D>/drift.json``. A metric past its
severe threshold writes a *hold* (``quality/holds/<F>/date=<D>.json``): retraining of
the models that read F refuses to run until the hold is acknowledged
(``quality/acks/<F>/date=<D>.json``, written by ``python -m pipeline data ack``). An
acknowledgement survives re-runs of the date; a re-run whose drift is no longer severe
removes the hold.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd

from pipeline import zones
from pipeline.feeds import FEEDS
from pipeline.tables import text_table
from pipeline.lake import Lake
from pipeline.settings import DriftSettings
from pipeline.validated import validated_partitions

log = logging.getLogger(__name__)


class NothingPublished(Exception):
    """The feed has no validated partition for the date (no drop, or a rejected one)."""


class RetrainingHeld(Exception):
    """Severe drift that nobody acknowledged yet: retraining waits."""


@dataclass
class QualityReport:
    feed: str
    logical_date: str
    rows: int
    reference_dates: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    severe: list[str] = field(default_factory=list)
    uri: str = ""


# ------------------------------------------------------------------ the metrics


def _shares(values: pd.Series) -> pd.Series:
    return values.dropna().astype(str).value_counts(normalize=True)


def total_variation(current: pd.Series, reference: pd.Series) -> float | None:
    """Half the L1 distance between the category shares (0: same mix, 1: disjoint)."""
    a, b = _shares(current), _shares(reference)
    if a.empty or b.empty:
        return None
    return float(0.5 * a.sub(b, fill_value=0).abs().sum())


def relative_change(current: float, reference: float) -> float | None:
    if not np.isfinite(current) or not np.isfinite(reference) or reference == 0:
        return None
    return float(current / reference - 1)


def _units_per_store(sales: pd.DataFrame) -> float:
    return float(sales.groupby(["store_id", "date"])["units"].sum().mean()) if len(sales) else float("nan")


def _median(series: pd.Series) -> float:
    values = series.dropna()
    return float(values.median()) if len(values) else float("nan")


# metric name -> f(current, reference) for each feed; None means "cannot be computed"
DriftMetric = Callable[[pd.DataFrame, pd.DataFrame], "float | None"]
DRIFT_METRICS: dict[str, dict[str, DriftMetric]] = {
    "reviews": {
        "label_shift": lambda cur, ref: total_variation(cur["label"], ref["label"]),
        "text_length_change": lambda cur, ref: relative_change(
            _median(cur["text"].str.len()), _median(ref["text"].str.len())),
    },
    "sales": {
        "units_per_store_change": lambda cur, ref: relative_change(_units_per_store(cur), _units_per_store(ref)),
        "price_change": lambda cur, ref: relative_change(_median(cur["price"]), _median(ref["price"])),
    },
    "interactions": {
        "event_shift": lambda cur, ref: total_variation(cur["event"].fillna("purchase"), ref["event"].fillna("purchase")),
    },
    "catalog": {},
    "stock": {},
    "plan": {},
}


# ------------------------------------------------------------------ the check


def check_quality(lake: Lake, feed: str, day: date, settings: DriftSettings) -> QualityReport:
    """Compute the drift metrics and the unknown-sku share of the day's published drop."""
    uri = zones.validated_file(lake, feed, day)
    if not lake.exists(uri):
        raise NothingPublished(f"no validated {feed} partition for {day}: nothing to check")
    current = lake.read_parquet(uri)
    partitions = validated_partitions(lake, feed)
    window = sorted(d for d in partitions if day - timedelta(days=settings.window_days) <= d < day)
    report = QualityReport(feed, day.isoformat(), len(current), [d.isoformat() for d in window])

    reference = pd.concat([lake.read_parquet(partitions[d]) for d in window], ignore_index=True) \
        if window else pd.DataFrame()
    if len(current) < settings.min_rows:
        log.info("%s %s: %d rows, fewer than ingest.drift.min_rows (%d): too few to judge drift on",
                 feed, day, len(current), settings.min_rows)
    elif len(reference) and len(current):
        for name, metric in DRIFT_METRICS[feed].items():
            value = metric(current, reference)
            if value is not None:
                report.metrics[name] = round(value, 4)
    elif not window:
        log.info("%s %s: no validated drop in the previous %d days: drift not computed",
                 feed, day, settings.window_days)
    if feed != "catalog" and "sku" in current and len(current):
        _check_skus(lake, feed, day, current, reference, report)

    for name, value in report.metrics.items():
        size = abs(value)
        if size >= settings.severe.get(name, float("inf")):
            report.severe.append(f"{name}={value:+.4g} (severe at {settings.severe[name]:g})")
        elif size >= settings.warn.get(name, float("inf")):
            report.warnings.append(f"{name}={value:+.4g} (warning at {settings.warn[name]:g})")
    report.uri = lake.write_json(zones.drift_report(lake, feed, day), asdict(report))
    _update_hold(lake, report, day)
    _log(report)
    return report


def _check_skus(lake: Lake, feed: str, day: date, current: pd.DataFrame, reference: pd.DataFrame,
                report: QualityReport) -> None:
    """Referential check against the catalog published up to ``day``: a warning with
    examples, the share as a metric, and its rise over the reference window as drift."""
    known = {sku for uri in validated_partitions(lake, "catalog", day).values() for sku in lake.read_parquet(uri)["sku"]}
    if not known:
        log.warning("%s %s: no catalog published yet: skus not checked", feed, day)
        return
    unknown = ~current["sku"].isin(known)
    report.metrics["unknown_sku_share"] = round(float(unknown.mean()), 4)
    if len(reference):
        before = float((~reference["sku"].isin(known)).mean())
        report.metrics["unknown_sku_increase"] = round(float(unknown.mean()) - before, 4)
    if unknown.any():
        sample = ", ".join(map(str, current.loc[unknown, "sku"].drop_duplicates().head(5)))
        report.warnings.append(f"{int(unknown.sum())} row(s) with skus missing from the catalog (e.g. {sample})")


def _update_hold(lake: Lake, report: QualityReport, day: date) -> None:
    target = zones.hold(lake, report.feed, day)
    if report.severe:
        lake.write_json(target, {"feed": report.feed, "logical_date": report.logical_date,
                                 "severe": report.severe, "metrics": report.metrics, "report": report.uri})
    elif lake.exists(target):
        lake.delete(target)
        log.info("%s %s: drift no longer severe; hold removed", report.feed, day)


def _log(report: QualityReport) -> None:
    rows = [[name, f"{value:+.4f}"] for name, value in report.metrics.items()]
    table = text_table(["metric", "value"], rows) if rows else "(no metrics)"
    log.info("%s %s: %d rows; reference window %s\n%s", report.feed, report.logical_date, report.rows,
             ", ".join(report.reference_dates) or "(none)", table)
    for warning in report.warnings:
        log.warning("%s %s: %s", report.feed, report.logical_date, warning)
    for severe in report.severe:
        log.error("%s %s SEVERE drift: %s; retraining on this feed is held until acknowledged: "
                  "python -m pipeline data ack %s %s --reason '...'",
                  report.feed, report.logical_date, severe, report.feed, report.logical_date)


# ------------------------------------------------------------------ holds


def all_holds(lake: Lake, feeds: tuple[str, ...] = tuple(FEEDS)) -> list[dict]:
    """Every hold on ``feeds``, each with ``acknowledged`` (the acknowledgement or None)."""
    holds = []
    for feed in feeds:
        for uri in lake.list(zones.holds_folder(lake, feed)):
            hold = lake.read_json(uri)
            ack = zones.ack(lake, feed, date.fromisoformat(hold["logical_date"]))
            holds.append({**hold, "acknowledged": lake.read_json(ack) if lake.exists(ack) else None})
    return holds


def open_holds(lake: Lake, feeds: tuple[str, ...], until: date) -> list[dict]:
    """Holds on ``feeds`` dated up to ``until`` that nobody has acknowledged."""
    return [h for h in all_holds(lake, feeds)
            if not h["acknowledged"] and date.fromisoformat(h["logical_date"]) <= until]


def ensure_not_held(lake: Lake, feeds: tuple[str, ...], until: date) -> None:
    holds = open_holds(lake, feeds, until)
    if holds:
        lines = [f"{h['feed']} {h['logical_date']}: {'; '.join(h['severe'])}" for h in holds]
        first = holds[0]
        raise RetrainingHeld(
            "retraining held by severe drift that is not acknowledged:\n  " + "\n  ".join(lines)
            + f"\nlook at the drift report ({first['report']}), then acknowledge with: "
            f"python -m pipeline data ack {first['feed']} {first['logical_date']} --reason '...'")


def acknowledge(lake: Lake, feed: str, day: date, reason: str, by: str | None = None) -> str:
    """Record that someone looked at the day's severe drift and lets retraining go on."""
    if not lake.exists(zones.hold(lake, feed, day)):
        raise ValueError(f"no hold on {feed} {day}; `python -m pipeline data holds` lists them")
    if not reason.strip():
        raise ValueError("an acknowledgement needs a reason")
    return lake.write_json(zones.ack(lake, feed, day), {
        "feed": feed, "logical_date": day.isoformat(), "reason": reason, "by": by or getpass.getuser(),
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
