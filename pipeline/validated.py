"""The read side of validated data: which partitions exist, reading a range of them, their
lineage, and the latest row per key. Written by :mod:`pipeline.ingest.publish`; everything
that learns from or acts on the data reads it through here."""

from __future__ import annotations

from datetime import date

import pandas as pd

from pipeline import zones
from pipeline.feeds import get_feed
from pipeline.lake import Lake

PARTITION_COLUMN = "_partition"  # the logical date (ISO) of the partition a row was read from


def validated_partitions(
    lake: Lake, feed: str, until: date | None = None, since: date | None = None
) -> dict[date, str]:
    """Logical date -> URI of each validated partition of ``feed`` dated from ``since``
    to ``until`` (both inclusive, either open), in date order."""
    found = {}
    for uri in lake.list(zones.validated_feed(lake, feed)):
        day = zones.partition_date(uri.rsplit("/", 2)[-2])
        if day is not None and (until is None or day <= until) and (since is None or day >= since):
            found[day] = uri
    return dict(sorted(found.items()))


def read_validated(lake: Lake, feed: str, until: date, since: date | None = None) -> pd.DataFrame:
    """The validated partitions of ``feed`` dated up to ``until`` (and from ``since``), each
    row with its partition's date in ``_partition``. FileNotFoundError when there is none."""
    frames = [lake.read_parquet(uri).assign(**{PARTITION_COLUMN: day.isoformat()})
              for day, uri in validated_partitions(lake, feed, until, since).items()]
    if not frames:
        window = f"from {since} to {until}" if since else f"up to {until}"
        raise FileNotFoundError(f"no validated {feed} data {window} in {lake.root}")
    return pd.concat(frames, ignore_index=True)


def latest_by_key(frame: pd.DataFrame, feed: str) -> pd.DataFrame:
    """A later partition replaces an earlier row with the same key (re-sent or corrected);
    a feed without a key is returned as it is."""
    key = list(get_feed(feed).key)
    if not key:
        return frame
    return frame.sort_values(PARTITION_COLUMN, kind="stable").drop_duplicates(key, keep="last")


def read_latest(lake: Lake, feed: str, until: date) -> pd.DataFrame:
    """Every validated row of ``feed`` up to ``until``, the latest per key."""
    return latest_by_key(read_validated(lake, feed, until), feed)


def partition_lineage(lake: Lake, feed: str, until: date) -> list[dict]:
    """For each validated partition up to ``until``: its URI, rows and the sha256 of the
    raw files it came from (from the drop's manifest)."""
    out = []
    for day, uri in validated_partitions(lake, feed, until).items():
        manifest = lake.read_json(zones.manifest(lake, feed, day))
        out.append({"feed": feed, "logical_date": day.isoformat(), "uri": uri,
                    "rows": manifest.get("publish", {}).get("rows_published"),
                    "files": {f["name"]: f["sha256"] for f in manifest["files"]}})
    return out
