import subprocess
import sys
from pathlib import Path

from pipeline.settings import load_settings


def test_defaults_give_the_embedded_setup():
    s = load_settings()
    assert s.lake_uri.startswith("file://") and s.mlflow_tracking_uri.startswith("sqlite:///")
    assert s.landing == s.lake_uri + "/landing"
    assert s.device == "auto"


def test_environment_overrides_nested_fields(monkeypatch):
    monkeypatch.setenv("RETAIL_TRAINING__SENTIMENT__EPOCHS", "3")
    monkeypatch.setenv("RETAIL_LANDING_URI", "s3://bucket/landing")
    s = load_settings()
    assert s.training.sentiment.epochs == 3 and s.landing == "s3://bucket/landing"


def test_yaml_file_is_read_and_environment_wins(tmp_path, monkeypatch):
    config = tmp_path / "retail.yaml"
    config.write_text("device: cpu\ngate:\n  champion_tolerance: 0.02\ntraining:\n  seed: 7\n")
    monkeypatch.setenv("RETAIL_CONFIG_FILE", str(config))
    monkeypatch.setenv("RETAIL_TRAINING__SEED", "9")
    s = load_settings()
    assert s.device == "cpu" and s.gate.champion_tolerance == 0.02 and s.training.seed == 9


def test_redacted_settings_are_flat():
    flat = load_settings().redacted()
    assert flat["training.sentiment.learning_rate"] == 1e-4  # the demo profile's (the tests run with it)


def test_importing_settings_has_no_side_effects(tmp_path):
    code = "import pipeline.settings, os; print(os.listdir('.'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(__import__('pathlib').Path(__file__).parents[2])})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_demo_profile_is_small_and_the_defaults_are_for_production(monkeypatch):
    demo = load_settings().training.sentiment  # the tests run with the demo profile, as make demo does
    assert (demo.max_train_rows, demo.max_length, demo.epochs, demo.learning_rate) == (2000, 128, 1, 1e-4)
    monkeypatch.setenv("RETAIL_TRAINING__SENTIMENT__EPOCHS", "2")  # the environment wins over the file
    mixed = load_settings().training.sentiment
    assert (mixed.max_train_rows, mixed.epochs) == (2000, 2)
    assert load_settings().training.forecaster.epochs == 10  # sections the file leaves out keep their defaults

    monkeypatch.delenv("RETAIL_TRAINING__SENTIMENT__EPOCHS")
    monkeypatch.delenv("RETAIL_CONFIG_FILE")
    production = load_settings().training.sentiment
    assert production.max_train_rows >= 10 * demo.max_train_rows and production.max_length == 0  # from the data
    assert production.epochs > 1 and production.early_stopping_patience >= 1 and production.base_model == "auto"
    assert Path(__file__).parents[2].joinpath("config", "demo.yaml").is_file()
