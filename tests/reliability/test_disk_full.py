"""The lake's disk full: a real full file system (a 2 MB tmpfs mounted for the test). A
write that does not fit fails with ENOSPC naming the file; the partition already there
stays whole and readable, and no temporary file is left behind.

Mounting needs root, or passwordless sudo for a normal user (the tmpfs then belongs to that
user: uid/gid mount options). Without either the tests skip, saying why; with
CI_REQUIRE_ROOT set (.ci/run sets it) they fail instead."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import steps
from pipeline.validated import read_validated
from pipeline.lake import Lake

DAY1, DAY2 = date(2026, 10, 1), date(2026, 10, 2)
HEADER = "date,store_id,sku,units,price,promo\n"


def _as_root() -> list[str]:
    """Nothing as root; `sudo -n` (never a password prompt) otherwise."""
    return [] if os.geteuid() == 0 else ["sudo", "-n"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs owned by the user running the tests: a file system that really fills up."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    options = f"size=2m,mode=0700,uid={os.getuid()},gid={os.getgid()}"
    argv = [*_as_root(), "mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)]
    try:
        mounted = subprocess.run(argv, capture_output=True, text=True)
        error = (mounted.stderr.strip() or f"exit status {mounted.returncode}") if mounted.returncode else ""
    except FileNotFoundError as exc:  # no sudo (or mount) installed
        error = str(exc)
    if error:
        how = "as root" if os.geteuid() == 0 else "with passwordless sudo (`sudo -n`)"
        reason = f"cannot mount a tmpfs {how}: `{' '.join(argv)}`: {error}"
        if os.environ.get("CI_REQUIRE_ROOT"):
            pytest.fail(f"{reason} (CI_REQUIRE_ROOT makes this a failure)")
        pytest.skip(reason)
    try:
        stat = mount_point.stat()
        assert (stat.st_uid, stat.st_gid) == (os.getuid(), os.getgid()) and os.access(mount_point, os.W_OK), \
            f"the tmpfs is not writable by uid {os.getuid()}: owner {stat.st_uid}:{stat.st_gid}"
        assert os.statvfs(mount_point).f_blocks * os.statvfs(mount_point).f_frsize == 2 << 20  # really the tmpfs
        yield mount_point
    finally:
        subprocess.run([*_as_root(), "umount", "-l", str(mount_point)], check=True)


def fill(disk: Path) -> Path:
    """Write a filler file until not one more byte fits."""
    filler = disk / "filler.bin"
    with open(filler, "ab", buffering=0) as handle:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            while True:
                try:
                    handle.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    return filler


def hidden_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.is_file()]


def test_a_write_that_does_not_fit_names_the_file_and_keeps_the_old_one(small_disk):
    lake = Lake((small_disk / "lake").as_uri())
    day1 = pd.DataFrame({"sku": ["a", "b"], "units": [1.0, 2.0]})
    first = lake.write_parquet(lake.uri("validated", "sales", "date=2026-10-01", "part.parquet"), day1)
    filler = fill(small_disk)

    big = pd.DataFrame({"sku": [f"s{i}" for i in range(20_000)], "units": np.arange(20_000, dtype=float)})
    second = lake.uri("validated", "sales", "date=2026-10-02", "part.parquet")
    with pytest.raises(OSError) as raised:
        lake.write_parquet(second, big)
    assert raised.value.errno == errno.ENOSPC
    assert "No space left on device" in str(raised.value) and raised.value.filename == second[len("file://"):]
    with pytest.raises(OSError, match="No space left on device") as again:  # replacing a partition
        lake.write_parquet(first, big)
    assert again.value.filename == first[len("file://"):]

    assert lake.list(lake.uri("validated")) == [first]  # no half-written day 2
    pd.testing.assert_frame_equal(lake.read_parquet(first), day1)  # day 1 whole, not replaced
    assert hidden_files(small_disk / "lake") == []  # no temporary file left behind

    filler.unlink()  # room again: the same write goes through
    lake.write_parquet(second, big)
    pd.testing.assert_frame_equal(lake.read_parquet(second), big)


def sales_drop(landing: Lake, day: date, stores: int) -> None:
    rows = "".join(f"{day - pd.Timedelta(days=3)},{s},OJ{s % 11:02d},{s},0.05,0\n" for s in range(stores))
    landing.write_text(landing.uri("sales", day.isoformat(), "sales.csv"), HEADER + rows)


def test_ingestion_on_a_full_disk_fails_clearly_and_loses_nothing(small_disk, tmp_path, monkeypatch):
    monkeypatch.setenv("RETAIL_LAKE_URI", (small_disk / "lake").as_uri())
    monkeypatch.setenv("RETAIL_LANDING_URI", (tmp_path / "landing").as_uri())  # drops on another disk
    landing, lake = Lake((tmp_path / "landing").as_uri()), Lake((small_disk / "lake").as_uri())
    sales_drop(landing, DAY1, 500)
    steps.land("sales", DAY1.isoformat())
    steps.validate("sales", DAY1.isoformat())
    published = read_validated(lake, "sales", DAY1)
    assert len(published) == 500

    sales_drop(landing, DAY2, 20_000)
    steps.land("sales", DAY2.isoformat())
    filler = fill(small_disk)
    day2_partition = small_disk / "lake" / "validated" / "sales" / f"date={DAY2}" / "part.parquet"
    with pytest.raises(OSError, match="No space left on device") as raised:
        steps.validate("sales", DAY2.isoformat())
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(day2_partition)
    # a re-run of day 1 on the full disk: its published partition stays until a new one is complete
    with pytest.raises(OSError, match="No space left on device"):
        steps.validate("sales", DAY1.isoformat())

    # readers see day 1 as it was and no trace of day 2; nothing temporary is left
    pd.testing.assert_frame_equal(read_validated(lake, "sales", DAY2), published)
    assert not day2_partition.exists() and hidden_files(small_disk / "lake") == []
    manifest = lake.read_json(lake.uri("raw", "sales", DAY2.isoformat(), "manifest.json"))
    assert "publish" not in manifest  # not recorded as published

    filler.unlink()  # room again: re-running the day publishes it whole
    steps.validate("sales", DAY2.isoformat())
    publish = lake.read_json(lake.uri("raw", "sales", DAY2.isoformat(), "manifest.json"))["publish"]
    assert publish["rows_in"] == publish["rows_published"] + publish["rows_quarantined"] == 20_000
    assert len(read_validated(lake, "sales", DAY2)) == 500 + publish["rows_published"]
