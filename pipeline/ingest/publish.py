"""Raw -> validated | quarantine for one feed and day, with the row accounting."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import date

import pandas as pd

from pipeline.feeds import get_feed
from pipeline.ingest.land import raw_folder, read_file
from pipeline.ingest.validate import DropRejected, normalise_columns, validate_frame
from pipeline.lake import Lake

log = logging.getLogger(__name__)


@dataclass
class PublishSummary:
    feed: str
    logical_date: str
    rows_in: int
    rows_published: int
    rows_quarantined: int
    rule_counts: dict[str, int]
    extra_columns: list[str]
    validated_uri: str
    quarantine_uri: str | None


def validated_uri(lake: Lake, feed: str, day: date) -> str:
    return lake.uri("validated", feed, f"date={day.isoformat()}", "part.parquet")


def quarantine_folder(lake: Lake, feed: str, day: date) -> str:
    return lake.uri("quarantine", feed, f"date={day.isoformat()}")


def validate_and_publish(lake: Lake, feed_name: str, day: date, max_bad_share: float) -> PublishSummary:
    """Validate the raw drop of ``day`` and publish its good rows.

    Bad rows go to quarantine with the rules they broke; a drop that cannot be read,
    lacks a required column or has too many bad rows is quarantined whole (with a
    report) and :class:`DropRejected` is raised. rows in = published + quarantined.
    """
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # GX logs hundreds of INFO lines
    feed = get_feed(feed_name)
    folder = raw_folder(lake, feed_name, day)
    manifest_uri = f"{folder}/manifest.json"
    manifest = lake.read_json(manifest_uri)
    quarantine = quarantine_folder(lake, feed_name, day)
    lake.delete_prefix(quarantine)
    lake.delete_prefix(lake.uri("validated", feed_name, f"date={day.isoformat()}"))

    frames, sources = [], []
    try:
        for entry in manifest["files"]:
            try:
                frame = read_file(entry["name"], lake.read_bytes(f"{folder}/files/{entry['name']}"))
            except Exception as exc:  # any reader error means the drop cannot be trusted
                raise DropRejected(f"cannot be read: {exc}", file=entry["name"]) from exc
            frames.append(normalise_columns(frame, entry["name"]))
            sources += [entry["name"]] * len(frame)
        raw = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        result = validate_frame(feed, raw, day, max_bad_share)
    except DropRejected as exc:
        report = {"feed": feed_name, "logical_date": day.isoformat(), "status": "rejected",
                  "reason": str(exc), "file": exc.file, "column": exc.column,
                  "files": [e["name"] for e in manifest["files"]],
                  "rows_in": len(sources), "rows_published": 0, "rows_quarantined": len(sources)}
        for entry in manifest["files"]:  # the whole drop, as it came, beside its report
            lake.write_bytes(f"{quarantine}/files/{entry['name']}", lake.read_bytes(f"{folder}/files/{entry['name']}"))
        if exc.result is not None and len(exc.result.bad):
            lake.write_parquet(f"{quarantine}/rows.parquet", _with_source(exc.result.bad, sources))
        lake.write_json(f"{quarantine}/report.json", report)
        lake.write_json(manifest_uri, {**manifest, "publish": report})
        log.error("drop %s %s rejected whole: %s (report %s/report.json)", feed_name, day, exc, quarantine)
        raise

    out_uri = lake.write_parquet(validated_uri(lake, feed_name, day), result.good)
    quarantine_uri = None
    if len(result.bad):
        quarantine_uri = lake.write_parquet(f"{quarantine}/rows.parquet", _with_source(result.bad, sources))
    summary = PublishSummary(
        feed=feed_name, logical_date=day.isoformat(), rows_in=result.rows_in,
        rows_published=len(result.good), rows_quarantined=len(result.bad),
        rule_counts=result.rule_counts, extra_columns=result.extra_columns,
        validated_uri=out_uri, quarantine_uri=quarantine_uri,
    )
    if summary.rows_in != summary.rows_published + summary.rows_quarantined:
        raise AssertionError(f"row accounting broken for {feed_name} {day}: {summary}")
    lake.write_json(manifest_uri, {**manifest, "publish": {"status": "published", **asdict(summary)}})
    log.info(
        "%s %s: %d rows in, %d published, %d quarantined %s%s",
        feed_name, day, summary.rows_in, summary.rows_published, summary.rows_quarantined,
        summary.rule_counts or "", f"; extra columns kept: {summary.extra_columns}" if summary.extra_columns else "",
    )
    return summary


def _with_source(bad: pd.DataFrame, sources: list[str]) -> pd.DataFrame:
    """Bad rows as strings, each with the file it came from (``_row`` is 1-based)."""
    return bad.assign(_file=[sources[int(i) - 1] for i in bad["_row"]]).astype(str)


def read_validated(lake: Lake, feed: str, until: date) -> pd.DataFrame:
    """All validated partitions of ``feed`` with a date up to ``until`` (inclusive)."""
    frames = []
    for uri in lake.list(lake.uri("validated", feed)):
        part = uri.rsplit("/", 2)[-2]
        if part.startswith("date=") and date.fromisoformat(part[5:]) <= until:
            frames.append(lake.read_parquet(uri).assign(_partition=part[5:]))
    if not frames:
        raise FileNotFoundError(f"no validated {feed} data up to {until} in {lake.root}")
    return pd.concat(frames, ignore_index=True)
