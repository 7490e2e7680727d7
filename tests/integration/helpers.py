"""What the integration tests that start Airflow or compare lakes share."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lake_files(root: Path) -> dict[str, bytes]:
    """Every file under a local lake, by its path in the lake."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def wait_for(what: str, check: Callable[[], T], proc: subprocess.Popen, log: Path, seconds: float) -> T:
    """Poll ``check`` until it returns something true; fail with the process's output when
    it exits, prints a traceback or ``seconds`` pass first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            found = check()
            if found:
                return found
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline or "Traceback" in log.read_text():
            raise AssertionError(f"{what}: not seen (exit {proc.poll()}); the output:\n{log.read_text()[-4000:]}")
        time.sleep(1)
