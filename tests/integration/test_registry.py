"""Promotion on a real MLflow registry (SQLite): first run, refusal, forced promotion,
rollback, manual approval, the history, and two promotions racing."""

from __future__ import annotations

import multiprocessing
import time

import mlflow
import pytest

from pipeline import registry, steps
from pipeline.__main__ import main
from pipeline.lake import Lake, lake_from_settings
from pipeline.settings import load_settings
from pipeline.tracking import configure_mlflow

FAMILY = "forecaster"


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        return model_input


def new_version(passed: bool = True, evaluated_against: str | None = None) -> str:
    """A registered version as the retrain DAG leaves it: a run with a model, gate decided."""
    settings = load_settings()
    configure_mlflow(settings)
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=Echo())
        mlflow.set_tags({"model_uri": info.model_uri, "logical_date": "2026-10-03",
                         "champion_version_at_evaluation": evaluated_against or "none"})
        mlflow.log_metrics({"challenger_wape": 0.4, "baseline_wape": 0.6})
    failures = [] if passed else [{"reason": "wape 0.95 is above the maximum 0.9"}]
    return registry.register(settings, FAMILY, run.info.run_id, {"passed": passed, "failures": failures})


def aliases() -> tuple[str | None, str | None]:
    name = load_settings().model_name(FAMILY)
    return registry._alias(name, "champion"), registry._alias(name, "previous")


def events() -> list[tuple[str, str]]:
    return [(e["event"], e["version"]) for e in registry.history(load_settings(), FAMILY)]


def test_first_promotion_then_refusal_then_forced(retail_env):
    settings = load_settings()
    v1 = new_version()
    assert registry.promote(settings, FAMILY, v1)  # the first run: no champion yet
    assert aliases() == (v1, None)
    tags = mlflow.MlflowClient().get_model_version(settings.model_name(FAMILY), v1).tags
    assert tags["promotion"] == "gate" and tags["promoted_from"] == "none" and tags["gate_passed"] == "true"
    assert tags["data_window"] == "validated data up to 2026-10-03" and '"wape": 0.4' in tags["metrics"]

    v2 = new_version(passed=False, evaluated_against=v1)
    assert not registry.promote(settings, FAMILY, v2)
    assert aliases() == (v1, None)
    with pytest.raises(registry.PromotionError, match="needs a reason"):
        registry.promote(settings, FAMILY, v2, force=True)
    assert main(["models", "promote", FAMILY, v2, "--force", "--reason", "holiday model", "--by", "ana"]) == 0
    assert aliases() == (v2, v1)
    tags = mlflow.MlflowClient().get_model_version(settings.model_name(FAMILY), v2).tags
    assert (tags["promotion"], tags["promoted_by"], tags["promotion_reason"]) == ("forced", "ana", "holiday model")
    history = registry.history(settings, FAMILY)
    assert [(e["event"], e.get("kind")) for e in history] == [("promoted", "gate"), ("refused", None), ("promoted", "forced")]
    assert "gate failed" in history[1]["reason"] and history[2]["from_version"] == v1


def test_rollback_restores_the_previous_champion_in_one_command(retail_env, capsys):
    settings = load_settings()
    v1 = new_version()
    registry.promote(settings, FAMILY, v1)
    v2 = new_version(evaluated_against=v1)
    registry.promote(settings, FAMILY, v2)
    v3 = new_version(evaluated_against=v2)
    registry.promote(settings, FAMILY, v3)
    assert aliases() == (v3, v2)

    assert main(["models", "rollback", FAMILY, "--reason", "stock-outs in store 12", "--by", "ops"]) == 0
    assert aliases() == (v2, v1)  # the champion before v2 is the new previous
    tags = mlflow.MlflowClient().get_model_version(settings.model_name(FAMILY), v3).tags
    assert "by ops: stock-outs in store 12" in tags["rolled_back"]
    # v3 was evaluated against v2, the champion again: a re-run of v3's DAG run must not undo
    # the rollback, and re-running it twice records the refusal once
    assert not registry.promote(settings, FAMILY, v3) and not registry.promote(settings, FAMILY, v3)
    assert aliases() == (v2, v1)
    refusals = [e for e in registry.history(settings, FAMILY) if e["event"] == "refused"]
    assert len(refusals) == 1 and "rolled back" in refusals[0]["reason"]
    registry.rollback(settings, FAMILY, "again")
    assert aliases() == (v1, None)
    with pytest.raises(registry.PromotionError, match="no previous champion"):
        registry.rollback(settings, FAMILY, "once more")
    main(["models", "history", FAMILY])
    out = capsys.readouterr().out
    assert f"rolled_back v{v2} (from v{v3}) by ops: stock-outs in store 12" in out


def test_manual_approval(retail_env, monkeypatch):
    monkeypatch.setenv("RETAIL_GATE__APPROVAL", "manual")
    settings = load_settings()
    v1 = new_version()
    assert steps.approval(FAMILY, v1, gate_passed=True) == "waiting"
    assert not registry.promote(settings, FAMILY, v1)
    assert main(["models", "approve", FAMILY, v1, "--reason", "report reviewed", "--by", "lead"]) == 0
    assert steps.approval(FAMILY, v1, gate_passed=True) == "approved"
    assert registry.promote(settings, FAMILY, v1) and aliases() == (v1, None)

    v2 = new_version(evaluated_against=v1)
    main(["models", "approve", FAMILY, v2, "--reject", "--reason", "store 5 looks wrong"])
    assert steps.approval(FAMILY, v2, gate_passed=True) == "rejected"
    assert not registry.promote(settings, FAMILY, v2) and aliases() == (v1, None)
    assert steps.approval(FAMILY, new_version(passed=False), gate_passed=False) == "not_needed"
    assert [e for e, _ in events()] == ["refused", "approved", "promoted", "rejected", "refused"]


def _race(version: str, start_at: float, queue) -> None:  # noqa: ANN001 - a multiprocessing queue
    time.sleep(max(0.0, start_at - time.time()))
    queue.put((version, registry.promote(load_settings(), FAMILY, version)))


def test_two_promotions_at_once_leave_consistent_aliases(retail_env):
    settings = load_settings()
    v1 = new_version()
    registry.promote(settings, FAMILY, v1)
    # two retraining runs, both evaluated against v1, finish together
    v2, v3 = new_version(evaluated_against=v1), new_version(evaluated_against=v1)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + 3.0
    procs = [ctx.Process(target=_race, args=(v, start_at, queue)) for v in (v2, v3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    outcome = dict(queue.get(timeout=5) for _ in procs)
    winners = [v for v, moved in outcome.items() if moved]
    assert len(winners) == 1, outcome
    loser = ({v2, v3} - set(winners)).pop()
    assert aliases() == (winners[0], v1)
    refused = [e for e in registry.history(settings, FAMILY) if e["event"] == "refused"]
    assert [e["version"] for e in refused] == [loser]
    assert "the champion moved" in refused[0]["reason"]


def test_the_registry_lock_is_exclusive(tmp_path):
    lake = Lake(tmp_path.as_uri())
    with registry.registry_lock(lake, FAMILY):
        with pytest.raises(registry.PromotionError, match="lock on forecaster is held"):
            with registry.registry_lock(lake, FAMILY, timeout=0.5):
                pass
    with registry.registry_lock(lake, FAMILY, timeout=0.5):  # released after use
        pass


def test_lock_and_history_on_s3(s3_endpoint, monkeypatch, tmp_path):
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="registry-lake")
    lake = Lake("s3://registry-lake/lake", s3_endpoint)
    assert lake.create_exclusive(lake.uri("x.lock"), b"1") and not lake.create_exclusive(lake.uri("x.lock"), b"2")
    registry.record_event(lake, FAMILY, {"event": "promoted", "version": "1"})
    registry.record_event(lake, FAMILY, {"event": "rolled_back", "version": "0"})
    monkeypatch.setenv("RETAIL_LAKE_URI", lake.root)
    monkeypatch.setenv("RETAIL_S3_ENDPOINT_URL", s3_endpoint)
    assert [e["event"] for e in registry.history(load_settings(), FAMILY)] == ["promoted", "rolled_back"]
    assert lake_from_settings(load_settings()).root == lake.root
