"""Shared fixtures. Airflow and MLflow get their own stores under a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_HOME = Path(tempfile.mkdtemp(prefix="retail-tests-"))
# before anything imports airflow: its configuration is read once, on first import
os.environ["AIRFLOW_HOME"] = str(_HOME / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
for key in [k for k in os.environ if k.startswith("RETAIL_")]:
    del os.environ[key]  # the tests choose their own settings
# the demo profile, as `make demo` runs (the production defaults train for hours on a CPU);
# a test of the defaults themselves removes it
DEMO_PROFILE = ROOT / "config" / "demo.yaml"
os.environ["RETAIL_CONFIG_FILE"] = str(DEMO_PROFILE)


@pytest.fixture
def retail_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings pointing the lake and MLflow into ``tmp_path``."""
    monkeypatch.setenv("RETAIL_LAKE_URI", (tmp_path / "lake").as_uri())
    monkeypatch.setenv("RETAIL_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("RETAIL_MLFLOW_ARTIFACT_URI", (tmp_path / "artifacts").as_uri())
    return tmp_path


@pytest.fixture
def tiny_training() -> dict[str, str]:
    """Settings for the DAGs end to end in CI: small models that still pass their first gate,
    on the CPU, and no task retries (a failure fails the test now, not after a retry delay)."""
    return {
        "RETAIL_TRAINING__SENTIMENT__MAX_TRAIN_ROWS": "600",
        "RETAIL_TRAINING__SENTIMENT__MAX_LENGTH": "64",
        "RETAIL_TRAINING__SENTIMENT__BATCH_SIZE": "8",
        "RETAIL_TRAINING__FORECASTER__WINDOWS_PER_SERIES": "32",
        "RETAIL_TRAINING__RECOMMENDER__BATCH_SIZE": "16",
        "RETAIL_DEVICE": "cpu",
        "RETAIL_TASK_RETRIES": "0",
    }


@pytest.fixture
def tiny_sentiment_dataset(retail_env: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """64 real reviews to train on and 16 to hold out, dated 2026-10-03, with sizes for a
    fine-tune in a subprocess: 2 epochs of 16 steps, a checkpoint every 3 steps. Returns
    the dataset's lake URI."""
    from pipeline.demo_data import load_reviews
    from pipeline.lake import Lake

    for key, value in {"EPOCHS": "2", "BATCH_SIZE": "4", "MAX_LENGTH": "32", "MAX_TRAIN_ROWS": "0"}.items():
        monkeypatch.setenv(f"RETAIL_TRAINING__SENTIMENT__{key}", value)
    monkeypatch.setenv("RETAIL_CHECKPOINT_EVERY_STEPS", "3")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    reviews = load_reviews().sample(80, random_state=0).assign(created_at="2026-10-01")
    lake = Lake((retail_env / "lake").as_uri())
    dataset = lake.uri("datasets", "sentiment", "date=2026-10-03")
    lake.write_parquet(f"{dataset}/train.parquet", reviews.iloc[:64])
    lake.write_parquet(f"{dataset}/holdout.parquet", reviews.iloc[64:])
    return dataset


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database (SQLite) for dag.test()."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, env=os.environ.copy()
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return _HOME / "airflow"


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """moto's standalone S3 server over HTTP on a free loopback port."""
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    else:
        server.kill()
        pytest.fail("moto_server did not start")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    yield url
    server.terminate()
    server.wait(timeout=10)
