"""The MLflow tracking server goes down: a real `mlflow server` process, killed (SIGKILL)
and started again by the test, sometimes behind a proxy that cuts it off right after a
chosen request. MLflow's client retries with backoff (settings ``mlflow_http``), then the
step fails with an error naming the server; the registry is never left half-written, and
a re-run completes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import mlflow
import pytest
from mlflow import MlflowClient

from faults import Fault, FaultyProxy
from pipeline import registry, steps
from pipeline.settings import load_settings
from pipeline.tracking import HTTP_ENV, TrackingServerUnavailable, configure_mlflow

pytestmark = pytest.mark.slow  # each test starts MLflow servers (about 10 s each here) and trains or registers
FAMILY = "forecaster"
DAY = "2026-10-03"
GATE_TAGS = {"gate_passed", "gate_reasons", "gate_first_model", "run_id", "data_window", "dataset_uri",
             "evaluated_against", "metrics"}
TRAIN_CODE = (
    "import logging, sys; logging.basicConfig(level=logging.INFO)\n"
    "from pipeline import steps\n"
    "print('RUN_ID', steps.fine_tune('sentiment', sys.argv[1], sys.argv[2]))\n"
)


def mlflow_retries(monkeypatch, max_retries: int, backoff_factor: int, timeout_seconds: int) -> None:
    """Set the pipeline's MLflow HTTP settings; configure_mlflow exports them as MLflow's
    variables, which monkeypatch then restores (or removes) after the test."""
    for variable in HTTP_ENV.values():
        monkeypatch.setenv(variable, "")  # remembers the value before the test ...
        monkeypatch.delenv(variable)  # ... and unsets it for the test
    for field, value in (("MAX_RETRIES", max_retries), ("BACKOFF_FACTOR", backoff_factor),
                         ("TIMEOUT_SECONDS", timeout_seconds)):
        monkeypatch.setenv(f"RETAIL_MLFLOW_HTTP__{field}", str(value))


@pytest.fixture
def quick_retries(monkeypatch) -> None:
    """Two retries, 2 s apart at most, 5 s per request: a dead server is reported in seconds."""
    mlflow_retries(monkeypatch, 2, 1, 5)


def use_server(monkeypatch, url: str) -> None:
    monkeypatch.setenv("RETAIL_MLFLOW_TRACKING_URI", url)


def client(url: str) -> MlflowClient:
    return MlflowClient(tracking_uri=url, registry_uri=url)


def test_training_outlives_the_server_and_resumes_in_the_same_run(retail_env, tiny_sentiment_dataset, mlflow_server,
                                                                    quick_retries, monkeypatch):
    """The server dies mid-training: the task fails naming the server once training needs
    MLflow again; with the server back, the retry continues the same run from the
    checkpoint and finishes it."""
    use_server(monkeypatch, mlflow_server.url)
    dataset = tiny_sentiment_dataset

    first = subprocess.Popen([sys.executable, "-c", TRAIN_CODE, dataset, DAY], env=os.environ.copy(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not list((retail_env / "artifacts").rglob("checkpoint.pt")) and first.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    mlflow_server.kill()  # mid-training: the loop goes on, the next MLflow call finds no server
    output = first.communicate(timeout=300)[0]
    assert first.returncode != 0, output[-3000:]
    assert f"TrackingServerUnavailable: the MLflow tracking server {mlflow_server.url} could not be reached" in output
    assert "'max_retries': '2'" in output and "Connection refused" in output

    mlflow_server.start()
    second = subprocess.run([sys.executable, "-c", TRAIN_CODE, dataset, DAY], env=os.environ.copy(),
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    run_id = second.stdout.split("RUN_ID")[-1].split()[0]
    assert "continuing MLflow run" in second.stderr and "resumed from checkpoint" in second.stderr
    run = client(mlflow_server.url).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags.get("model_uri")
    resumed = re.search(r"resumed from checkpoint \S+ at step (\d+)/(\d+)", second.stderr)
    at_step, total = int(resumed[1]), int(resumed[2])
    assert run.data.metrics["resumed_at_step"] == at_step > 0  # the work done before the outage was kept
    assert run.data.metrics["train_steps"] == total  # and every step ran once: none lost, none repeated
    runs = client(mlflow_server.url).search_runs([run.info.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]  # the interrupted run was finished, not duplicated
    assert not list((retail_env / "artifacts").rglob("checkpoint.pt"))


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        return model_input


def trained_run(evaluated_against: str = "none") -> str:
    """A finished run as fine_tune and evaluate leave it: a logged model, tags, metrics."""
    configure_mlflow(load_settings())
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=Echo())
        mlflow.set_tags({"model_uri": info.model_uri, "logical_date": DAY, "dataset_uri": "file:///d",
                         "champion_version_at_evaluation": evaluated_against})
        mlflow.log_metrics({"challenger_wape": 0.4, "baseline_wape": 0.6})
    return run.info.run_id


PASSED = {"passed": True, "failures": []}


def nth(n: int, predicate: Callable[[str, str], bool]) -> Callable[[str, str], bool]:
    """True from the ``n``-th request matching ``predicate`` on."""
    count = 0

    def check(method: str, path: str) -> bool:
        nonlocal count
        count += predicate(method, path)
        return count >= n

    return check


def test_registration_and_promotion_are_never_half_done(retail_env, mlflow_server, quick_retries, monkeypatch):
    name = load_settings().model_name(FAMILY)
    use_server(monkeypatch, mlflow_server.url)
    run1 = trained_run()

    # 1. the server is down when registration starts: a clear error, after the retries
    mlflow_server.kill()
    started = time.monotonic()
    with pytest.raises(TrackingServerUnavailable, match=f"tracking server {mlflow_server.url} could not be reached"):
        steps.register(FAMILY, run1, PASSED)
    assert time.monotonic() - started >= 2  # MLflow retried with backoff before giving up
    mlflow_server.start()
    assert client(mlflow_server.url).search_model_versions(f"name = '{name}'") == []

    # 2. cut off right after the server created the version (its answer lost): the version
    # already has all its tags, and the re-run returns it instead of registering another
    proxy = FaultyProxy(mlflow_server.url)
    try:
        use_server(monkeypatch, proxy.url)
        proxy.set(Fault(times=10**6, armed_by=lambda method, path: path.endswith("/model-versions/create")))
        with pytest.raises(TrackingServerUnavailable, match=f"tracking server {proxy.url} could not be reached"):
            steps.register(FAMILY, run1, PASSED)
        [version] = client(mlflow_server.url).search_model_versions(f"name = '{name}'")
        assert GATE_TAGS <= set(version.tags) and version.tags["run_id"] == run1
        proxy.set(Fault())
        assert steps.register(FAMILY, run1, PASSED) == version.version
        assert len(client(mlflow_server.url).search_model_versions(f"name = '{name}'")) == 1
        assert steps.promote(FAMILY, version.version)
        v1 = version.version

        # 3. a second version's promotion cut off after `previous` moved, before `champion`:
        # the champion has not moved; the re-run promotes it whole
        use_server(monkeypatch, mlflow_server.url)
        v2 = steps.register(FAMILY, trained_run(evaluated_against=v1), PASSED)
        use_server(monkeypatch, proxy.url)
        alias_set = lambda method, path: method == "POST" and path.endswith("/registered-models/alias")  # noqa: E731
        proxy.set(Fault(times=10**6, armed_by=nth(1, alias_set)))
        with pytest.raises(TrackingServerUnavailable):
            steps.promote(FAMILY, v2)
        assert client(mlflow_server.url).get_model_version_by_alias(name, "champion").version == v1
        proxy.set(Fault())
        assert steps.promote(FAMILY, v2)

        # 4. a third version's promotion cut off after `champion` moved: the re-run finishes
        # its record (history event and tags) without recording it twice
        use_server(monkeypatch, mlflow_server.url)
        v3 = steps.register(FAMILY, trained_run(evaluated_against=v2), PASSED)
        use_server(monkeypatch, proxy.url)
        proxy.set(Fault(times=10**6, armed_by=nth(2, alias_set)))
        with pytest.raises(TrackingServerUnavailable):
            steps.promote(FAMILY, v3)
        assert client(mlflow_server.url).get_model_version_by_alias(name, "champion").version == v3
        assert "promoted_at" not in client(mlflow_server.url).get_model_version(name, v3).tags
        proxy.set(Fault())
        assert steps.promote(FAMILY, v3)
    finally:
        proxy.close()

    mlflow_client = client(mlflow_server.url)
    assert mlflow_client.get_model_version_by_alias(name, "champion").version == v3
    assert mlflow_client.get_model_version_by_alias(name, "previous").version == v2
    for version, before in ((v1, "none"), (v2, v1), (v3, v2)):
        tags = mlflow_client.get_model_version(name, version).tags
        assert GATE_TAGS <= set(tags) and tags["promoted_from"] == before and tags["promoted_at"], version
    events = [(e["event"], e["version"], e["from_version"]) for e in registry.history(load_settings(), FAMILY)]
    assert events == [("promoted", v1, None), ("promoted", v2, v1), ("promoted", v3, v2)]


def test_a_short_outage_is_ridden_out_by_the_retries(retail_env, mlflow_server, monkeypatch):
    """The server is down for as long as it takes to restart it (seconds); MLflow's retries
    (here 6, backoff factor 2: up to about two minutes) carry the registration through."""
    mlflow_retries(monkeypatch, 6, 2, 10)
    use_server(monkeypatch, mlflow_server.url)
    run = trained_run()
    mlflow_server.kill()
    restart = threading.Timer(2.0, mlflow_server.start)
    restart.start()
    started = time.monotonic()
    try:
        version = steps.register(FAMILY, run, PASSED)
    finally:
        restart.join()
    assert time.monotonic() - started > 2  # it waited for the server
    tags = client(mlflow_server.url).get_model_version(load_settings().model_name(FAMILY), version).tags
    assert GATE_TAGS <= set(tags) and tags["run_id"] == run
