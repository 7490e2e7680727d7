"""Enough evidence, on Walmart's real weekly sales of 7 departments: the first retrain serves
the best candidate although 7 series are fewer than the 10 a decision needs (a retailer is
never left with nothing), and says so; the next retrain, on a week more of sales, decides
nothing on so thin a holdout: the champion stays. Every decision rests on three windows,
each asked from its own origin."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from pipeline import registry, steps
from pipeline.__main__ import main
from pipeline.demo_data import load_walmart_weekly
from pipeline.lake import Lake
from pipeline.settings import load_settings

pytestmark = pytest.mark.slow
FIRST = date(2026, 10, 3)


def test_a_thin_holdout_keeps_the_champion(retail_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"FAMILIES": '["forecaster"]', "DEVICE": "cpu", "TRAINING__FORECASTER__EPOCHS": "2",
                       "TRAINING__FORECASTER__WINDOWS_PER_SERIES": "32"}.items():
        monkeypatch.setenv(f"RETAIL_{key}", value)
    sales, _ = load_walmart_weekly()
    # the last week lands a week after the rest: two drops, two retrains
    sales["date"] = sales["date"] + (pd.Timestamp(FIRST + timedelta(days=7)) - sales["date"].max())
    landing = Lake(load_settings().landing)
    second = FIRST + timedelta(days=7)
    for day, rows in ((FIRST, sales[sales["date"].dt.date <= FIRST]), (second, sales[sales["date"].dt.date > FIRST])):
        landing.write_bytes(landing.uri("sales", day.isoformat(), "sales.csv"), rows.to_csv(index=False).encode())
    settings = load_settings()

    def retrain(day: date) -> tuple[str, dict]:
        assert main(["ingest", "--from", day.isoformat(), "--to", day.isoformat()]) == 0
        dataset = steps.build_dataset("forecaster", day.isoformat())
        run_id = steps.evaluate("forecaster", dataset, steps.fine_tune("forecaster", dataset, day.isoformat()))
        decision = steps.gate("forecaster", run_id)
        version = steps.register("forecaster", run_id, decision)
        steps.promote("forecaster", version)
        return version, decision

    first, decision = retrain(FIRST)
    assert decision["passed"] and decision["first_model"]
    assert decision["evidence"] == {"unit": "series", "units": 7, "rows": 7 * 12, "windows": 3}
    assert any(n.startswith("thin evidence: 7 series (84 holdout rows asked from 3 origins), fewer than 10")
               for n in decision["notes"]), decision["notes"]
    assert registry.champion_version(settings, "forecaster") == first

    later, decision = retrain(second)
    assert later != first and not decision["passed"]
    assert [f["rule"] for f in decision["failures"]] == ["thin_evidence"]
    assert registry.champion_version(settings, "forecaster") == first  # the champion stays
    report = mlflow.artifacts.load_text(
        f"runs:/{mlflow.MlflowClient().get_model_version(settings.model_name('forecaster'), later).run_id}"
        "/evaluation/gate_report.md")
    assert "Evidence: 7 series (84 holdout rows asked from 3 origins)." in report
    assert "the champion stays" in report
