"""The lake's map: where every zone keeps what, built in one place.

```
<landing>/<feed>/<YYYY-MM-DD>/                  drops as the retailer writes them (the feed contract)
raw/<feed>/<YYYY-MM-DD>/                        the drop as it came: files/, refused/, manifest.json
validated/<feed>/date=<day>/part.parquet        the drop's good rows
quarantine/<feed>/date=<day>/                   bad rows (rows.parquet), a rejected drop's files, report.json
reports/<feed>/date=<day>/                      validation report (HTML + JSON)
quality/<feed>/date=<day>/drift.json            drift of the drop against the previous window
quality/holds|acks/<feed>/date=<day>.json       severe-drift holds on retraining, and their acknowledgements
datasets/<family>/date=<day>/                   train, holdout (and catalog) sets with their lineage
outputs/<consumer>/date=<day>/                  consumer outputs (Parquet + CSV)
registry/history/<family>/, locks/, approvals/  the registry's append-only history, promotion locks, approvals
alerts/<dag>/<run>/<task>.json                  one alert per failed task
checkpoints/<run id>/checkpoint.pt              training checkpoints when MLflow's artifact store is served
monitoring/issued/<family>/date=<day>/v<N>.parquet  predictions a version issued, kept to be scored later
monitoring/live/<family>/date=<day>.json        the champion's live performance (and its shadow's)
monitoring/decisions/<family>/date=<day>.json   retrain or skip, with every reason
monitoring/probation/<family>/v<N>.json         a new champion's probation: start, end, outcome
```

A logical date is written ``date=YYYY-MM-DD`` in every zone the pipeline partitions
(:func:`partition`); landing and raw keep the contract's plain ``YYYY-MM-DD`` folders.
Every function returns a URI; none touches storage.
"""

from __future__ import annotations

from datetime import date

from pipeline.lake import Lake

PARTITION_PREFIX = "date="


def partition(day: date) -> str:
    """The folder name of a logical date in a partitioned zone."""
    return f"{PARTITION_PREFIX}{day.isoformat()}"


def partition_date(name: str) -> date | None:
    """The logical date of a partition folder (or ``date=...json`` file) name; None for other names."""
    if not name.startswith(PARTITION_PREFIX):
        return None
    return date.fromisoformat(name[len(PARTITION_PREFIX):len(PARTITION_PREFIX) + 10])


# ------------------------------------------------------------------ ingestion


def landing_folder(landing: Lake, feed: str, day: date) -> str:
    return landing.uri(feed, day.isoformat())


def raw_folder(lake: Lake, feed: str, day: date) -> str:
    return lake.uri("raw", feed, day.isoformat())


def manifest(lake: Lake, feed: str, day: date) -> str:
    return f"{raw_folder(lake, feed, day)}/manifest.json"


def validated_feed(lake: Lake, feed: str) -> str:
    """The folder holding every validated partition of ``feed``."""
    return lake.uri("validated", feed)


def validated_folder(lake: Lake, feed: str, day: date) -> str:
    return lake.uri("validated", feed, partition(day))


def validated_file(lake: Lake, feed: str, day: date) -> str:
    return f"{validated_folder(lake, feed, day)}/part.parquet"


def quarantine_folder(lake: Lake, feed: str, day: date) -> str:
    return lake.uri("quarantine", feed, partition(day))


def report_folder(lake: Lake, feed: str, day: date) -> str:
    return lake.uri("reports", feed, partition(day))


def drift_report(lake: Lake, feed: str, day: date) -> str:
    return lake.uri("quality", feed, partition(day), "drift.json")


def holds_folder(lake: Lake, feed: str) -> str:
    return lake.uri("quality", "holds", feed)


def hold(lake: Lake, feed: str, day: date) -> str:
    return f"{holds_folder(lake, feed)}/{partition(day)}.json"


def ack(lake: Lake, feed: str, day: date) -> str:
    return lake.uri("quality", "acks", feed, f"{partition(day)}.json")


# ------------------------------------------------------------------ models and consumers


def dataset_folder(lake: Lake, family: str, day: date) -> str:
    return lake.uri("datasets", family, partition(day))


def output_folder(lake: Lake, consumer: str, day: date) -> str:
    return lake.uri("outputs", consumer, partition(day))


def history_folder(lake: Lake, family: str) -> str:
    return lake.uri("registry", "history", family)


def history_event(lake: Lake, family: str, stamp: str, event: str, version: object) -> str:
    return f"{history_folder(lake, family)}/{stamp}-{event}-v{version}.json"


def promotion_lock(lake: Lake, family: str) -> str:
    return lake.uri("registry", "locks", f"{family}.lock")


def approval(lake: Lake, family: str, version: object) -> str:
    return lake.uri("registry", "approvals", family, f"v{version}.json")


def alert(lake: Lake, dag_id: str, run_id: str, task_id: str) -> str:
    return lake.uri("alerts", dag_id, run_id, f"{task_id}.json")


def checkpoint(lake: Lake, run_id: str) -> str:
    return lake.uri("checkpoints", run_id, "checkpoint.pt")


# ------------------------------------------------------------------ monitoring


def issued_file(lake: Lake, family: str, day: date, version: object) -> str:
    """The predictions one model version issued on ``day`` (kept to be scored later)."""
    return lake.uri("monitoring", "issued", family, partition(day), f"v{version}.parquet")


def issued_feed(lake: Lake, family: str) -> str:
    return lake.uri("monitoring", "issued", family)


def live_record(lake: Lake, family: str, day: date) -> str:
    """The family's live performance as of ``day`` (written by the monitor)."""
    return lake.uri("monitoring", "live", family, f"{partition(day)}.json")


def live_folder(lake: Lake, family: str) -> str:
    return lake.uri("monitoring", "live", family)


def retrain_decision(lake: Lake, family: str, day: date) -> str:
    """Whether the retrain run of ``day`` trained the family, and every reason."""
    return lake.uri("monitoring", "decisions", family, f"{partition(day)}.json")


def probation(lake: Lake, family: str, version: object) -> str:
    """A champion's probation: when it started (the first monitored day) and how it ended."""
    return lake.uri("monitoring", "probation", family, f"v{version}.json")
