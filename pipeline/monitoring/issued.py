"""Predictions as they were issued, kept to be scored when the ground truth arrives.

Each consumer keeps, per day and model version, the few columns its family's live scoring
needs (forecasts per store x sku x period with their quantiles, the label given to each
review, the list served to each customer), whether the version is the champion or the
previous champion scored in shadow during a probation.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from pipeline import zones
from pipeline.lake import Lake

ISSUED_COLUMN = "issued"  # the day the prediction was made
VERSION_COLUMN = "version"


def keep_issued(lake: Lake, family: str, day: date, version: str, frame: pd.DataFrame) -> str:
    """Keep ``frame`` as what ``version`` predicted on ``day`` (a re-run replaces it)."""
    return lake.write_parquet(zones.issued_file(lake, family, day, version), frame.reset_index(drop=True))


def read_issued(lake: Lake, family: str, until: date, since: date | None = None) -> pd.DataFrame:
    """Every kept prediction of ``family`` issued from ``since`` to ``until``, with the
    ``issued`` day and the ``version`` that made it (empty without any)."""
    frames = []
    for uri in lake.list(zones.issued_feed(lake, family)):
        folder, name = uri.rsplit("/", 2)[-2:]
        day = zones.partition_date(folder)
        if day is None or day > until or (since is not None and day < since) or not name.endswith(".parquet"):
            continue
        version = name[1:-len(".parquet")]
        frames.append(lake.read_parquet(uri).assign(**{ISSUED_COLUMN: pd.Timestamp(day), VERSION_COLUMN: version}))
    if not frames:
        return pd.DataFrame({ISSUED_COLUMN: pd.Series(dtype="datetime64[ns]"), VERSION_COLUMN: pd.Series(dtype=str)})
    out = pd.concat(frames, ignore_index=True)
    return out.astype({ISSUED_COLUMN: "datetime64[ns]"})  # the unit the truth's dates are in
