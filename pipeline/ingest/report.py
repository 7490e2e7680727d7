"""Validation reports a person can read: a text table for the task log, and an HTML page
(plus its JSON) per feed and date under ``<lake>/reports/<feed>/date=<day>/``.

Every value from a drop is HTML-escaped: review text is shown, never interpreted.
"""

from __future__ import annotations

import html
from dataclasses import asdict
from datetime import date
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline import zones
from pipeline.lake import Lake
from pipeline.tables import text_table

if TYPE_CHECKING:
    from pipeline.ingest.publish import PublishSummary

SAMPLE_ROWS = 20
MAX_CELL = 200


def summary_table(summary: PublishSummary) -> str:
    """Rows in, published and quarantined per file, then the rows per broken rule."""
    files = [[f["name"], f["rows_in"], f["published"], f["quarantined"]] for f in summary.files]
    files.append(["TOTAL", summary.rows_in, summary.rows_published, summary.rows_quarantined])
    out = text_table(["file", "rows in", "published", "quarantined"], files)
    if summary.rule_counts:
        rules = sorted(summary.rule_counts.items(), key=lambda kv: -kv[1])
        out += "\n\n" + text_table(["rule", "rows"], [list(r) for r in rules])
    return out


def day_summary(lake: Lake, day: Any) -> dict[str, dict[str, Any]]:
    """Per feed, what the day's ingestion did (from the manifests), logged as a table."""
    import logging

    from pipeline.feeds import FEEDS

    out: dict[str, dict[str, Any]] = {}
    for feed in FEEDS:
        uri = zones.manifest(lake, feed, day)
        publish = lake.read_json(uri).get("publish", {}) if lake.exists(uri) else {}
        out[feed] = {"status": publish.get("status", "no drop" if not lake.exists(uri) else "not validated"),
                     **{k: publish.get(k, 0) for k in ("rows_in", "rows_published", "rows_quarantined")},
                     "report": publish.get("report_uri") or "-"}
    rows = [[f, v["status"], v["rows_in"], v["rows_published"], v["rows_quarantined"], v["report"]]
            for f, v in out.items()]
    logging.getLogger(__name__).info("ingestion of %s:\n%s", day, text_table(
        ["feed", "status", "rows in", "published", "quarantined", "report"], rows))
    return out


def write_validation_report(lake: Lake, summary: PublishSummary, suite: Any, sample: pd.DataFrame | None) -> str:
    """Write validation.json and validation.html for the drop; return the HTML's URI."""
    folder = zones.report_folder(lake, summary.feed, date.fromisoformat(summary.logical_date))
    expectations = [
        {"rule": e.meta["rule"], "expectation": e.expectation_type,
         "kwargs": {k: v for k, v in e.configuration.kwargs.items() if k != "result_format"}}
        for e in suite.expectations
    ]
    lake.write_json(f"{folder}/validation.json", {**asdict(summary), "expectations": expectations})
    return lake.write_text(f"{folder}/validation.html", _html(summary, expectations, sample))


def _esc(value: Any) -> str:
    text = str(value)
    return html.escape(text if len(text) <= MAX_CELL else text[:MAX_CELL] + "…")


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(summary: PublishSummary, expectations: list[dict], sample: pd.DataFrame | None) -> str:
    status = summary.status.upper() + (f": {summary.reason}" if summary.reason else "")
    overview = _table(["rows in", "published", "quarantined", "bad share", "limit"], [[
        summary.rows_in, summary.rows_published, summary.rows_quarantined,
        f"{summary.bad_share:.2%}", f"{summary.max_bad_share:.2%}"]])
    files = _table(["file", "rows in", "published", "quarantined"],
                   [[f["name"], f["rows_in"], f["published"], f["quarantined"]] for f in summary.files])
    counts = summary.rule_counts
    rules = _table(["rule", "Great Expectations expectation", "arguments", "rows failed"],
                   [[e["rule"], e["expectation"], e["kwargs"], counts.get(e["rule"], 0)] for e in expectations]
                   + [[r, "(pipeline)", "", n] for r, n in counts.items()
                      if r not in {e["rule"] for e in expectations}])
    parts = [
        f"<h1>{_esc(summary.feed)} drop of {_esc(summary.logical_date)}</h1>",
        f"<p class='{_esc(summary.status)}'><b>{_esc(status)}</b></p>",
        overview, "<h2>Files</h2>", files, "<h2>Rules</h2>", rules,
    ]
    if summary.warnings:
        parts += ["<h2>Warnings</h2><ul>", *(f"<li>{_esc(w)}</li>" for w in summary.warnings), "</ul>"]
    if summary.extra_columns:
        parts.append(f"<p>Extra columns kept: {_esc(', '.join(summary.extra_columns))}</p>")
    if sample is not None and len(sample):
        parts += [f"<h2>Quarantined rows (first {min(len(sample), SAMPLE_ROWS)})</h2>",
                  _table(list(sample.columns), sample.head(SAMPLE_ROWS).values.tolist())]
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.rejected{color:#b00}"
             ".published{color:#070}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(summary.feed)} "
            f"{_esc(summary.logical_date)}</title><style>{style}</style></head><body>{''.join(parts)}</body></html>")
