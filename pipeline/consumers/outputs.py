"""Writing consumer outputs: Parquet for machines, CSV for people (safe to open in a
spreadsheet), each row naming the champion's version and its live metric; and keeping what
was predicted (with the previous champion's predictions in shadow during a probation) to be
scored when the truth arrives."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from typing import Any

import pandas as pd

from pipeline import zones
from pipeline.families import get_family
from pipeline.lake import Lake
from pipeline.settings import Settings

log = logging.getLogger(__name__)

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


def champion_columns(settings: Settings, lake: Lake, family: str, version: str, day: date) -> dict[str, Any]:
    """The columns every output row carries: the model, its version and kind (transformer,
    classic or blend), and the version's live primary metric from the latest monitor run up
    to ``day`` (NaN and 0 samples before any)."""
    from pipeline.monitoring.monitor import latest_live
    from pipeline.registry import version_kind

    metric = get_family(family).live_metric
    live = latest_live(lake, family, day)
    value = live["live"].get(metric) if live and live["champion"] == version else None
    return {"model_name": settings.model_name(family), "model_version": version,
            "model_kind": version_kind(settings, family, version), f"live_{metric}": float("nan") if value is None else value,
            "live_samples": 0 if value is None else int(live["live"]["samples"])}


def answer_with_champion(settings: Settings, lake: Lake, family: str, day: date, model: Any, version: str,
                         answer: Callable[[Any], pd.DataFrame],
                         kept: Callable[[pd.DataFrame], pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """What every consumer does with its champion (loaded by :func:`pipeline.registry.load_champion`):
    its answer (``answer(model)``), what of it is kept to be scored later (``kept``; the
    shadow's answer too while the champion is on probation), and the columns every output
    row carries (:func:`champion_columns`)."""
    predictions = answer(model)
    keep_predictions(settings, lake, family, day, version, kept(predictions), lambda shadow: kept(answer(shadow)))
    return predictions, champion_columns(settings, lake, family, version, day)


def keep_predictions(settings: Settings, lake: Lake, family: str, day: date, version: str, issued: pd.DataFrame,
                     predict: Callable[[Any], pd.DataFrame]) -> str | None:
    """Keep what the champion ``version`` issued on ``day``; while it is on probation, also
    ask the champion it replaced (``predict(model)``) and keep that. Returns the shadow's
    version, if any."""
    from pipeline.monitoring.issued import keep_issued
    from pipeline.monitoring.monitor import probation_shadow
    from pipeline.registry import load_version

    keep_issued(lake, family, day, version, issued)
    shadow = probation_shadow(settings, lake, family, day)
    if shadow:
        keep_issued(lake, family, day, shadow, predict(load_version(settings, family, shadow)))
        log.info("%s v%s is on probation: v%s's predictions for %s kept in shadow", family, version, shadow, day)
    return shadow
