"""Importing a history of drops in one process: what the daily ``retail_ingest`` runs would
have done date by date, for the dates that have drops only.

For each date, in order: every feed's drop is landed and validated, then the quality
check runs on each published drop (after the catalog, as in the DAG), so the lake ends as
the daily runs would have left it: raw copies and manifests, validated partitions,
quarantine, reports, drift and holds. Great Expectations and the rest are loaded once; a
day without any drop costs nothing. A rejected drop is reported and the import goes on
with the next (the daily run of that date would have failed, the later ones not).
``ingest.missing_drop`` does not apply: in a history, feeds without a drop on a date
(a weekly feed, say) are the rule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from pipeline import zones
from pipeline.feeds import FEEDS
from pipeline.ingest.land import land_drop
from pipeline.ingest.publish import validate_and_publish
from pipeline.ingest.quality import check_quality
from pipeline.ingest.validate import DropRejected
from pipeline.lake import Lake
from pipeline.settings import IngestSettings

log = logging.getLogger(__name__)


@dataclass
class ImportResult:
    dates: int = 0  # dates with at least one drop
    drops: int = 0
    rows_in: int = 0
    rows_published: int = 0
    rows_quarantined: int = 0
    rejected: list[str] = field(default_factory=list)  # "<feed> <date>: <reason>"
    seconds: float = 0.0
    last_date: date | None = None  # the last date that had a drop

    def summary(self) -> str:
        line = (f"imported {self.drops} drop(s) of {self.dates} date(s) in {self.seconds:.1f} s: "
                f"{self.rows_in:,} rows in, {self.rows_published:,} published, "
                f"{self.rows_quarantined:,} quarantined")
        if self.rejected:
            line += f"; {len(self.rejected)} drop(s) rejected:\n  " + "\n  ".join(self.rejected)
        return line


def drop_dates(landing: Lake, feeds: Sequence[str], start: date | None = None,
               end: date | None = None) -> dict[date, list[str]]:
    """Date -> the feeds (in contract order) with a drop on it, from ``start`` to ``end``."""
    found: dict[date, list[str]] = {}
    for feed in feeds:
        prefix = landing.uri(feed)
        for uri in landing.list(prefix):
            folder = landing.name_in(prefix, uri).split("/", 1)[0]
            try:
                day = date.fromisoformat(folder)
            except ValueError:
                continue  # not a drop folder
            if (start is None or day >= start) and (end is None or day <= end) and feed not in found.get(day, []):
                found.setdefault(day, []).append(feed)
    return dict(sorted(found.items()))


def import_history(landing: Lake, lake: Lake, settings: IngestSettings, start: date | None = None,
                   end: date | None = None, feeds: Sequence[str] | None = None) -> ImportResult:
    """Land, validate and check every drop from ``start`` to ``end`` (default: all there
    are) of ``feeds`` (default: every feed), date by date; log progress with an ETA."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    wanted = [f for f in FEEDS if feeds is None or f in feeds]
    unknown = sorted(set(feeds or ()) - set(FEEDS))
    if unknown:
        raise ValueError(f"unknown feed(s) {unknown}; expected some of {list(FEEDS)}")
    plan = drop_dates(landing, wanted, start, end)
    if not plan:
        raise FileNotFoundError(f"no drops of {', '.join(wanted)} between {start or 'the first'} and "
                                f"{end or 'the last'} date under {landing.root}")
    result = ImportResult(dates=len(plan), last_date=max(plan))
    log.info("importing %d drop(s) on %d date(s), %s to %s", sum(map(len, plan.values())), len(plan),
             min(plan), max(plan))
    started = time.perf_counter()
    for done, (day, day_feeds) in enumerate(plan.items(), start=1):
        published = [feed for feed in day_feeds if _land_and_validate(landing, lake, feed, day, settings, result)]
        for feed in published:
            check_quality(lake, feed, day, settings.drift)
        elapsed = time.perf_counter() - started
        log.info("%s done (%d/%d dates, %s): %s rows in so far, %.0f s, about %.0f s left",
                 day, done, len(plan), ", ".join(day_feeds), f"{result.rows_in:,}", elapsed,
                 elapsed / done * (len(plan) - done))
    result.seconds = time.perf_counter() - started
    log.info(result.summary())
    return result


def _land_and_validate(landing: Lake, lake: Lake, feed: str, day: date, settings: IngestSettings,
                       result: ImportResult) -> bool:
    """True when the drop was published; a rejection is counted and logged."""
    land_drop(landing, lake, feed, day)
    result.drops += 1
    try:
        summary = validate_and_publish(lake, feed, day, settings.max_bad_row_share, settings.chunk_rows)
    except DropRejected as exc:
        publish = lake.read_json(zones.manifest(lake, feed, day)).get("publish", {})
        result.rows_in += publish.get("rows_in", 0)
        result.rows_quarantined += publish.get("rows_quarantined", 0)
        result.rejected.append(f"{feed} {day}: {exc}")
        return False
    result.rows_in += summary.rows_in
    result.rows_published += summary.rows_published
    result.rows_quarantined += summary.rows_quarantined
    return True
