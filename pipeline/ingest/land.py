"""Landing -> raw: copy one day's drop of one feed as it came, with a manifest.

Lake zones (all under the lake root, partitioned by feed and logical date):
``raw/<feed>/<date>/`` the files as they came + ``manifest.json``;
``validated/<feed>/date=<date>/part.parquet``; ``quarantine/<feed>/date=<date>/``.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from datetime import date
from pathlib import Path

from pipeline.feeds import FORMATS
from pipeline.lake import Lake

log = logging.getLogger(__name__)


class NoDrop(Exception):
    """Nothing landed for this feed and date (a weekly feed on a day without data, say)."""


def raw_folder(lake: Lake, feed: str, day: date) -> str:
    return lake.uri("raw", feed, day.isoformat())


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


def land_drop(landing: Lake, lake: Lake, feed: str, day: date) -> str:
    """Copy ``<landing>/<feed>/<day>/*`` into the raw zone and return the manifest URI.

    Re-running the same day replaces the raw copy, so a late or corrected drop is picked
    up by re-running its date. Raises :class:`NoDrop` when the landing folder is empty.
    A file whose name could escape the lake is not copied under that name: it is kept
    as ``refused/<sha256>`` and listed as refused, and validation rejects the drop.
    Files are streamed through a temporary folder, never held in memory whole.
    """
    source = landing.uri(feed, day.isoformat())
    files = landing.list(source)
    if not files:
        raise NoDrop(f"no drop for feed {feed!r} on {day} under {source}")
    target = raw_folder(lake, feed, day)
    lake.delete_prefix(target)
    entries = []
    with tempfile.TemporaryDirectory(prefix="retail-land-") as tmp:
        for uri in files:
            name = landing.name_in(source, uri)
            local = landing.get_file(uri, Path(tmp) / "file")
            digest = _sha256(local)
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
    uri = lake.write_json(f"{target}/manifest.json", manifest)  # written last: the drop is complete
    log.info("landed %d file(s), %d bytes for %s %s -> %s",
             len(entries), sum(e["bytes"] for e in entries), feed, day, target)
    return uri


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
