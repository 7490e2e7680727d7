"""Raw -> validated | quarantine for one feed and day, with the row accounting.

The drop is read file by file in chunks (``chunk_rows``), so memory stays bounded
whatever its size. Each chunk is split by the feed's suite; good and bad rows are staged
as local Parquet parts and, once the whole drop has been judged, merged into one object
each and moved into the lake (atomically). The manifest is written last.

Besides the suite's rules, a drop can produce:
- ``malformed_row``: a CSV line with the wrong number of fields (kept as ``_raw_line``);
- ``duplicate_file:<name>``: every row of a file that is a byte-for-byte copy of an
  earlier file of the same drop. These rows do not count toward the bad share;
- ``unique:<key>`` across chunks: a row whose key was already published from an
  earlier chunk (keys are compared by 64-bit hash).
A zero-byte file adds no rows and is reported as a warning; a drop whose every file is
empty is rejected, like one lacking a required column.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import zones
from pipeline.feeds import Feed, get_feed
from pipeline.ingest.readers import Chunk, UnreadableFile, iter_chunks
from pipeline.ingest.report import SAMPLE_ROWS, summary_table, write_validation_report
from pipeline.ingest.validate import (
    DEFAULT_MAX_BAD_SHARE,
    DropRejected,
    ROW_COLUMN,
    RULES_COLUMN,
    SuiteRunner,
    ValidationResult,
    check_bad_share,
    key_rule,
    split_rows,
)
from pipeline.lake import Lake

log = logging.getLogger(__name__)

FILE_COLUMN = "_file"
RAW_LINE_COLUMN = "_raw_line"
DUPLICATE_FILE_RULE = "duplicate_file"


@dataclass
class PublishSummary:
    feed: str
    logical_date: str
    status: str  # "published" or "rejected"
    rows_in: int
    rows_published: int
    rows_quarantined: int
    rule_counts: dict[str, int]
    extra_columns: list[str]
    files: list[dict] = field(default_factory=list)  # per file: name, rows_in, published, quarantined
    warnings: list[str] = field(default_factory=list)
    reason: str = ""
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE
    validated_uri: str | None = None
    quarantine_uri: str | None = None
    report_uri: str | None = None

    @property
    def duplicate_file_rows(self) -> int:
        return sum(n for rule, n in self.rule_counts.items() if rule.startswith(DUPLICATE_FILE_RULE))

    @property
    def bad_share(self) -> float:
        """Share of bad rows, rows of duplicate files left out of both sides."""
        rows = self.rows_in - self.duplicate_file_rows
        return (self.rows_quarantined - self.duplicate_file_rows) / rows if rows else 0.0


def validate_and_publish(
    lake: Lake,
    feed_name: str,
    day: date,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    chunk_rows: int = 500_000,
) -> PublishSummary:
    """Validate the raw drop of ``day`` and publish its good rows.

    Bad rows go to quarantine with every rule they broke; a drop that cannot be read,
    lacks a required column, has a refused file name or too many bad rows is
    quarantined whole (files, rows and a report) and :class:`DropRejected` is raised
    with a message naming the file, column and rule. Re-running a date replaces its
    outputs. rows in = published + quarantined always holds, and is recorded.
    """
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # GX logs hundreds of INFO lines
    feed = get_feed(feed_name)
    folder = zones.raw_folder(lake, feed_name, day)
    manifest_uri = zones.manifest(lake, feed_name, day)
    manifest = lake.read_json(manifest_uri)
    quarantine = zones.quarantine_folder(lake, feed_name, day)
    lake.delete_prefix(quarantine)
    # the date's validated partition stays until its replacement is complete (or the drop is rejected)

    with tempfile.TemporaryDirectory(prefix="retail-validate-") as tmp:
        run = _DropRun(feed, day, Path(tmp), chunk_rows)
        summary = PublishSummary(feed_name, day.isoformat(), "published", 0, 0, 0, {}, [],
                                 max_bad_share=max_bad_share)
        try:
            refused = [e for e in manifest["files"] if e.get("refused")]
            if refused:
                raise DropRejected(f"{refused[0]['refused']} ({len(refused)} file(s) refused)",
                                   file=refused[0]["name"])
            sha_seen: dict[str, str] = {}
            for entry in manifest["files"]:
                duplicate_of = sha_seen.setdefault(entry["sha256"], entry["name"])
                local = lake.get_file(f"{folder}/files/{entry['name']}", Path(tmp) / "input")
                run.add_file(entry["name"], local, None if duplicate_of == entry["name"] else duplicate_of)
            if not run.any_columns:
                raise DropRejected(f"nothing in the drop is readable as {feed_name}: every file is empty "
                                   f"(no header, so none of the required columns {', '.join(feed.required)})",
                                   file=", ".join(e["name"] for e in manifest["files"]),
                                   column=",".join(feed.required))
            run.fill(summary)
            duplicates = summary.duplicate_file_rows  # a file sent twice is not bad data
            check_bad_share(feed_name, summary.rows_quarantined - duplicates, summary.rows_in - duplicates,
                            summary.rule_counts, max_bad_share)
        except (DropRejected, UnreadableFile) as exc:
            rejection = exc if isinstance(exc, DropRejected) else DropRejected(exc.reason, file=exc.file)
            _reject(lake, run, summary, manifest, quarantine, rejection)
            lake.write_json(manifest_uri, {**manifest, "publish": asdict(summary)})
            log.error("drop %s %s rejected whole: %s (report %s)", feed_name, day, rejection, summary.report_uri)
            if rejection is exc:
                raise
            raise rejection from exc

        summary.validated_uri = lake.put_file(run.good.merge(Path(tmp) / "good.parquet"), zones.validated_file(lake, feed_name, day))
        if summary.rows_quarantined:
            summary.quarantine_uri = lake.put_file(run.bad.merge(Path(tmp) / "bad.parquet"), f"{quarantine}/rows.parquet")
        if summary.rows_in != summary.rows_published + summary.rows_quarantined:
            raise AssertionError(f"row accounting broken for {feed_name} {day}: {summary}")
        summary.report_uri = write_validation_report(lake, summary, run.runner.suite, run.bad.head(SAMPLE_ROWS))
    lake.write_json(manifest_uri, {**manifest, "publish": asdict(summary)})
    for warning in summary.warnings:
        log.warning("%s %s: %s", feed_name, day, warning)
    log.info("%s %s published:\n%s\nvalidation report: %s", feed_name, day, summary_table(summary), summary.report_uri)
    return summary


def _reject(lake: Lake, run: _DropRun, summary: PublishSummary, manifest: dict, quarantine: str,
            exc: DropRejected) -> None:
    """Quarantine the whole drop: its files as they came, the rows read so far, a report."""
    day = date.fromisoformat(summary.logical_date)
    lake.delete_prefix(zones.validated_folder(lake, summary.feed, day))  # nothing published
    folder = zones.raw_folder(lake, summary.feed, day)
    stored = {e["name"]: e.get("stored_as") or f"files/{e['name']}" for e in manifest["files"]}
    for path in stored.values():
        lake.put_file(lake.get_file(f"{folder}/{path}", run.tmp / "copy"), f"{quarantine}/{path}")
    run.fill(summary)
    if run.bad.rows:
        lake.put_file(run.bad.merge(run.tmp / "bad.parquet"), f"{quarantine}/rows.parquet")
    # nothing is published: every row that was read is quarantined with the drop
    summary.status, summary.reason = "rejected", str(exc)
    summary.rows_quarantined, summary.rows_published = summary.rows_in, 0
    summary.report_uri = write_validation_report(lake, summary, run.runner.suite, run.bad.head(SAMPLE_ROWS))
    log.error("%s %s rejected:\n%s", summary.feed, summary.logical_date, summary_table(summary))
    lake.write_json(f"{quarantine}/report.json", {**asdict(summary), "file": exc.file, "column": exc.column,
                                                   "files_quarantined": stored})


class _DropRun:
    """The state of one drop being validated: counters, staged outputs, published keys."""

    def __init__(self, feed: Feed, day: date, tmp: Path, chunk_rows: int) -> None:
        self.feed, self.tmp, self.chunk_rows = feed, tmp, chunk_rows
        self.runner = SuiteRunner(feed, day)
        self.good = StagedParquet(tmp / "good")
        self.bad = StagedParquet(tmp / "bad")
        self.rule_counts: Counter[str] = Counter()
        self.files: list[dict] = []
        self.warnings: list[str] = []
        self.extra: list[str] = []
        self._keys: list[np.ndarray] = []  # sorted key hashes of the published rows, per chunk
        self.any_columns = False  # some file had a header (or columns): the drop is readable as the feed

    def add_file(self, name: str, path: Path, duplicate_of: str | None) -> None:
        stats = {"name": name, "rows_in": 0, "published": 0, "quarantined": 0}
        self.files.append(stats)
        if path.stat().st_size == 0:
            self.warnings.append(f"{name}: empty file (0 bytes), no rows")
        for chunk in iter_chunks(path, name, self.chunk_rows):
            self._add_malformed(name, chunk, stats)
            rows = chunk.rows
            if duplicate_of is not None:
                rule = f"{DUPLICATE_FILE_RULE}:{duplicate_of}"
                bad = rows.assign(**{RULES_COLUMN: rule, ROW_COLUMN: np.arange(len(rows)) + stats["rows_in"] + 1})
                self._quarantine(bad, name, stats, Counter({rule: len(rows)}))
                stats["rows_in"] += len(rows)
                continue
            if rows.columns.empty:
                continue
            self.any_columns = True
            try:
                result = split_rows(self.feed, rows, self.runner, file=name)
            except DropRejected:  # the whole drop goes to quarantine: count these rows in it
                stats["rows_in"] += len(rows)
                raise
            result.bad[ROW_COLUMN] += stats["rows_in"]
            self._drop_published_keys(result, stats["rows_in"])
            self.extra += [c for c in result.extra_columns if c not in self.extra]
            good = result.good.astype({c: "str" for c in result.extra_columns})
            self.good.add(good)
            stats["published"] += len(good)
            self._quarantine(result.bad, name, stats, Counter(result.rule_counts))
            stats["rows_in"] += result.rows_in
        if duplicate_of is not None:
            self.warnings.append(f"{name}: same bytes as {duplicate_of}; its {stats['rows_in']} rows quarantined "
                                 f"as {DUPLICATE_FILE_RULE}")
        log.info("%s: %d rows in, %d published, %d quarantined", name, stats["rows_in"], stats["published"],
                 stats["quarantined"])

    def _add_malformed(self, name: str, chunk: Chunk, stats: dict) -> None:
        if chunk.malformed:
            bad = pd.DataFrame({RAW_LINE_COLUMN: chunk.malformed, RULES_COLUMN: "malformed_row", ROW_COLUMN: -1})
            self._quarantine(bad, name, stats, Counter({"malformed_row": len(bad)}))
            stats["rows_in"] += len(bad)

    def _quarantine(self, bad: pd.DataFrame, name: str, stats: dict, rules: Counter[str]) -> None:
        if len(bad):
            self.bad.add(bad.assign(**{FILE_COLUMN: name}).astype("str"))
            stats["quarantined"] += len(bad)
            self.rule_counts.update(rules)

    def _drop_published_keys(self, result: ValidationResult, offset: int) -> None:
        """Move good rows whose key an earlier chunk already published to the bad rows."""
        rule = key_rule(self.feed)
        if rule is None or result.good.empty:
            return
        hashes = pd.util.hash_pandas_object(result.good[list(self.feed.key)], index=False).to_numpy()
        seen = np.zeros(len(hashes), dtype=bool)
        for earlier in self._keys:
            at = np.searchsorted(earlier, hashes).clip(max=len(earlier) - 1)
            seen |= earlier[at] == hashes
        if seen.any():
            moved = result.good[seen].assign(**{RULES_COLUMN: rule, ROW_COLUMN: result.good_rows[seen] + offset})
            result.bad = pd.concat([result.bad, moved.astype("str")], ignore_index=True)
            result.rule_counts[rule] = result.rule_counts.get(rule, 0) + int(seen.sum())
            result.good = result.good[~seen].reset_index(drop=True)
        self._keys.append(np.sort(hashes[~seen]))

    def fill(self, summary: PublishSummary) -> None:
        summary.files, summary.warnings, summary.extra_columns = self.files, self.warnings, self.extra
        summary.rule_counts = dict(self.rule_counts)
        summary.rows_in = sum(f["rows_in"] for f in self.files)
        summary.rows_published = sum(f["published"] for f in self.files)
        summary.rows_quarantined = sum(f["quarantined"] for f in self.files)


class StagedParquet:
    """Frames written as local Parquet parts, merged into one file with all their columns."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.parts: list[Path] = []
        self.rows = 0

    def add(self, frame: pd.DataFrame) -> None:
        if frame.empty and self.parts:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        part = self.folder / f"part-{len(self.parts):05d}.parquet"
        frame.to_parquet(part, index=False)
        self.parts.append(part)
        self.rows += len(frame)

    def head(self, n: int) -> pd.DataFrame | None:
        return pd.read_parquet(self.parts[0]).head(n) if self.parts else None

    def merge(self, path: Path) -> Path:
        """One Parquet file: columns in first-seen order, missing ones null."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        schemas = [pq.read_schema(p) for p in self.parts]
        schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else pa.schema([])
        schema = schema.remove_metadata()
        with pq.ParquetWriter(path, schema) as writer:
            for part in self.parts:
                table = pq.read_table(part)
                columns = [table[n].cast(f.type) if n in table.column_names else pa.nulls(len(table), f.type)
                           for n, f in zip(schema.names, schema)]
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
        return path
