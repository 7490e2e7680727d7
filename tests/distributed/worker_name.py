"""Airflow's `hostname_callable` for the distributed test: both Celery workers run on one
machine, so each task instance records which worker (queue) ran it, e.g. `gpu@host`."""

from __future__ import annotations

import os
import socket


def worker_name() -> str:
    return f"{os.environ.get('RETAIL_TEST_WORKER', 'worker')}@{socket.gethostname()}"
