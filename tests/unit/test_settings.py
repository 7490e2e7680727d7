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
    # set and empty: the production defaults, whatever profile this checkout's var/ remembers
    monkeypatch.setenv("RETAIL_CONFIG_FILE", "")
    production = load_settings().training.sentiment
    assert production.max_train_rows >= 10 * demo.max_train_rows and production.max_length == 0  # from the data
    assert production.epochs > 1 and production.early_stopping_patience >= 1 and production.base_model == "auto"
    assert Path(__file__).parents[2].joinpath("config", "demo.yaml").is_file()


def test_a_command_on_the_demos_var_reads_the_demos_profile(tmp_path):
    """After `make demo`, `python -m pipeline ...` in a plain shell (no RETAIL_CONFIG_FILE)
    reads the profile the demo trained with, which var/config_file remembers; `make run`
    leaves it empty: the production defaults."""
    import os
    import shutil
    import subprocess
    import sys

    from pipeline.settings import PROJECT_ROOT

    shutil.copytree(PROJECT_ROOT / "pipeline", tmp_path / "pipeline",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "var").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIL_") and k != "PYTHONPATH"}
    ask = [sys.executable, "-c", "from pipeline.settings import load_settings as s; "
                                 "print(s().training.sentiment.epochs)"]

    def epochs(**extra: str) -> str:
        return subprocess.run(ask, cwd=tmp_path, env={**env, **extra}, capture_output=True, text=True,
                              check=True).stdout.strip()

    assert epochs() == "3"  # nothing remembered: the production defaults
    (tmp_path / "var" / "config_file").write_text(str(PROJECT_ROOT / "config" / "demo.yaml") + "\n")
    assert epochs() == "1"  # the demo profile, as `make demo` left it
    assert epochs(RETAIL_CONFIG_FILE="") == "3"  # an explicit choice wins
    (tmp_path / "var" / "config_file").write_text("\n")  # what `make run` leaves
    assert epochs() == "3"
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert 'echo "$${RETAIL_CONFIG_FILE:-$(CURDIR)/config/demo.yaml}" > var/config_file' in makefile


def test_landing_flag_works_one_way_for_the_cli_and_the_steps_it_runs(tmp_path, monkeypatch):
    """``--landing`` sets the landing URI of the process: the command itself and every step
    that loads its own settings afterwards (a DAG task under scripts/run_dags.py) read it."""
    from pipeline.__main__ import main
    from pipeline.settings import load_settings

    monkeypatch.delenv("RETAIL_LANDING_URI", raising=False)
    monkeypatch.setenv("RETAIL_LAKE_URI", (tmp_path / "lake").as_uri())
    landing = (tmp_path / "elsewhere").as_uri()
    assert main(["demo-data", "--landing", landing, "--days", "1", "--stores", "1", "--reviews", "20",
                 "--customers", "3"]) == 0
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == [
        "catalog", "interactions", "plan", "reviews", "sales"]
    assert not (tmp_path / "lake" / "landing").exists()
    assert load_settings().landing == landing  # what a step run after it reads
