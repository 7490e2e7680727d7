"""Writing consumer outputs: Parquet for machines, CSV for people (safe to open in a spreadsheet)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from pipeline import zones
from pipeline.lake import Lake

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with a quote."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v
            )
    return out


def write_output(lake: Lake, consumer: str, day: date, name: str, frame: pd.DataFrame) -> str:
    """Write ``name``.parquet and ``name``.csv; return the Parquet URI."""
    folder = zones.output_folder(lake, consumer, day)
    # CRLF rows (RFC 4180): a cell holding a bare CR is then quoted, so it cannot end the row
    # early and start a new one with a formula ("ok\r=cmd|...")
    text = neutralise_formulas(frame).to_csv(index=False, lineterminator="\r\n")
    lake.write_bytes(f"{folder}/{name}.csv", text.encode("utf-8"))
    return lake.write_parquet(f"{folder}/{name}.parquet", frame)
