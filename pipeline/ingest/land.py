"""Landing -> raw: copy one day's drop of one feed as it came, with a manifest
(``raw/<feed>/<date>/``, see :mod:`pipeline.zones`)."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from datetime import date
from pathlib import Path

from typing import Literal

from pipeline import zones
from pipeline.feeds import FORMATS
from pipeline.lake import Lake

log = logging.getLogger(__name__)


class NoDrop(Exception):
    """Nothing landed for this feed and date (a weekly feed on a day without data, say)."""


class MissingDrop(Exception):
    """No drop for a feed and date while settings say ``ingest.missing_drop: fail``."""


def unsafe_name_reason(name: str) -> str | None:
    """Why a landing file name may not be used as a lake path (None when it is safe).

    Names are relative paths of plain segments: no ``..`` or hidden segments, no absolute
    paths, backslashes, control characters or ``%`` (a file URI would decode it).
    """
    if not name or name.startswith("/") or "\\" in name:
        return "absolute paths and backslashes are not allowed"
    if "%" in name or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "'%' and control characters are not allowed"
    if any(part in ("", ".", "..") or part.startswith(".") for part in name.split("/")):
        return "empty, '.', '..' and hidden path segments are not allowed"
    return None


def land_drop(landing: Lake, lake: Lake, feed: str, day: date,
              missing_drop: Literal["skip", "fail"] = "skip") -> str:
    """Copy ``<landing>/<feed>/<day>/*`` into the raw zone and return the manifest URI.

    Re-running the same day replaces the raw copy, so a late or corrected drop is picked
    up by re-running its date. When the landing folder is empty: :class:`NoDrop` (a skip)
    or, with ``missing_drop="fail"``, :class:`MissingDrop` (a failure).
    A file whose name could escape the lake is not copied under that name: it is kept
    as ``refused/<sha256>`` and listed as refused, and validation rejects the drop.
    Files are streamed through a temporary folder, never held in memory whole.
    """
    source = zones.landing_folder(landing, feed, day)
    files = landing.list(source)
    if not files:
        message = f"no drop for feed {feed!r} on {day} under {source}"
        if missing_drop == "fail":
            raise MissingDrop(f"{message} (settings: ingest.missing_drop=fail)")
        raise NoDrop(message)
    target = zones.raw_folder(lake, feed, day)
    lake.delete_prefix(target)
    entries = []
    with tempfile.TemporaryDirectory(prefix="retail-land-") as tmp:
        for uri in files:
            name = landing.name_in(source, uri)
            local = landing.get_file(uri, Path(tmp) / "file")
            with local.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            entry = {"name": name, "bytes": local.stat().st_size, "sha256": digest,
                     "supported": name.endswith(FORMATS)}
            reason = unsafe_name_reason(name)
            if reason:
                entry.update(refused=f"unsafe file name: {reason}", stored_as=f"refused/{digest}")
                lake.put_file(local, f"{target}/refused/{digest}")
                log.error("%s drop %s: refused file name %r (%s)", feed, day, name, reason)
            else:
                lake.put_file(local, f"{target}/files/{name}")
            entries.append(entry)
    manifest = {"feed": feed, "logical_date": day.isoformat(), "source": source, "files": entries}
    uri = lake.write_json(zones.manifest(lake, feed, day), manifest)  # written last: the drop is complete
    log.info("landed %d file(s), %d bytes for %s %s -> %s",
             len(entries), sum(e["bytes"] for e in entries), feed, day, target)
    return uri

