"""Landing -> raw: copy one day's drop of one feed as it came, with a manifest.

Lake zones (all under the lake root, partitioned by feed and logical date):
``raw/<feed>/<date>/`` the files as they came + ``manifest.json``;
``validated/<feed>/date=<date>/part.parquet``; ``quarantine/<feed>/date=<date>/``.
"""

from __future__ import annotations

import hashlib
import io
import logging
from datetime import date

import pandas as pd

from pipeline.feeds import FORMATS
from pipeline.lake import Lake

log = logging.getLogger(__name__)


class NoDrop(Exception):
    """Nothing landed for this feed and date (a weekly feed on a day without data, say)."""


def raw_folder(lake: Lake, feed: str, day: date) -> str:
    return lake.uri("raw", feed, day.isoformat())


def land_drop(landing: Lake, lake: Lake, feed: str, day: date) -> str:
    """Copy ``<landing>/<feed>/<day>/*`` into the raw zone and return the manifest URI.

    Re-running the same day replaces the raw copy, so a late or corrected drop is picked
    up by re-running its date. Raises :class:`NoDrop` when the landing folder is empty.
    """
    source = landing.uri(feed, day.isoformat())
    files = landing.list(source)
    if not files:
        raise NoDrop(f"no drop for feed {feed!r} on {day} under {source}")
    target = raw_folder(lake, feed, day)
    lake.delete_prefix(target)
    entries = []
    for uri in files:
        name = uri[len(source):].lstrip("/")
        data = landing.read_bytes(uri)
        lake.write_bytes(f"{target}/files/{name}", data)
        entries.append(
            {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
             "supported": name.endswith(FORMATS)}
        )
    manifest = {"feed": feed, "logical_date": day.isoformat(), "source": source, "files": entries}
    uri = lake.write_json(f"{target}/manifest.json", manifest)
    log.info("landed %d file(s), %d bytes for %s %s -> %s",
             len(entries), sum(e["bytes"] for e in entries), feed, day, target)
    return uri


def read_file(name: str, data: bytes) -> pd.DataFrame:
    """Read one drop file into a frame of raw values (strings, None for missing)."""
    buffer = io.BytesIO(data)
    if name.endswith(".parquet"):
        frame = pd.read_parquet(buffer)
    elif name.endswith(".jsonl"):
        frame = pd.read_json(buffer, lines=True, dtype=False, convert_dates=False)
    elif name.endswith((".csv", ".csv.gz")):
        frame = pd.read_csv(buffer, dtype=str, keep_default_na=False, na_values=[""],
                            compression="gzip" if name.endswith(".gz") else None)
    else:
        raise ValueError(f"unsupported format for {name}; expected one of {', '.join(FORMATS)}")
    return frame.astype(object).where(frame.notna(), None).map(
        lambda v: v if v is None or isinstance(v, str) else str(v)
    )
