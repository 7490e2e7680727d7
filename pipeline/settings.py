"""One typed settings object for the whole pipeline.

Sources, highest priority first: keyword arguments, environment variables with the
``RETAIL_`` prefix (nested fields use ``__``, e.g. ``RETAIL_TRAINING__SENTIMENT__EPOCHS=2``),
a YAML file named by ``RETAIL_CONFIG_FILE`` (or, without it, the profile var/ was last run
with: :func:`config_file`), then the defaults below. Nothing is read at import time: call
:func:`load_settings`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# the profile the project's own var/ was last run with: `make demo` writes the demo profile's
# path here and `make run` writes its own (RETAIL_CONFIG_FILE, or nothing: the production
# defaults), so a command run later on the same var/ (`python -m pipeline models status`)
# reads the settings that trained its models
REMEMBERED_PROFILE = PROJECT_ROOT / "var" / "config_file"


def config_file() -> str | None:
    """The YAML settings file: ``RETAIL_CONFIG_FILE`` when set (empty: none, the production
    defaults), else the profile var/ remembers, else none."""
    if "RETAIL_CONFIG_FILE" in os.environ:
        return os.environ["RETAIL_CONFIG_FILE"] or None
    remembered = REMEMBERED_PROFILE.read_text().strip() if REMEMBERED_PROFILE.is_file() else ""
    return remembered or None


class SentimentTraining(BaseModel):
    """Review-sentiment fine-tune of a pretrained encoder (BERT article: AdamW, linear warmup
    then decay, a few epochs at a small learning rate).

    These defaults are the production profile: every labelled review up to a cap, as long as
    the reviews are, several epochs with early stopping. config/demo.yaml is the demo
    profile that `make demo` and the tests use. benchmarks/results/sentiment_recipe.md has
    what each choice scored."""

    # "auto": the bundled MiniLM for text mostly in Latin script, else the bundled
    # multilingual-e5-small; or a local model folder or a model name in the local HF cache
    base_model: str = "auto"
    max_train_rows: int = 50_000  # the most recent labelled reviews (0: all)
    # 0: the length 95% of the training reviews fit in (at most 512 tokens)
    max_length: int = 0
    # at most this many; the epoch of the best macro-F1 on the latest validation_fraction of
    # the training rows is kept, and training stops after early_stopping_patience epochs without one
    epochs: int = 3
    batch_size: int = 16
    # the top layer's rate (the head's); each layer below learns at layer_decay of the one above
    # (layer-wise decay: the pretrained lower layers move least). Above BERT's usual 2e-5..5e-5:
    # MiniLM is small. On the Amazon reviews: accuracy 0.861 against 0.845 at 1e-4 without decay
    learning_rate: float = 2e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    holdout_fraction: float = 0.2
    # the latest share of the training rows (by time), never trained on: it chooses the blend's
    # weight and, with more than one epoch, judges early stopping
    validation_fraction: float = 0.1
    early_stopping_patience: int = 1
    # augmentation: share of ordinary tokens hidden from attention in each epoch (0: off)
    token_dropout: float = 0.0
    # dropout of the encoder and the head while training; None: the encoder's own (0.1 for MiniLM)
    dropout: float | None = None
    # layer-wise learning-rate decay: each encoder layer learns at this factor of the one above
    # (1: all at learning_rate)
    layer_decay: float = 0.8


class ForecasterTraining(BaseModel):
    """Time-series transformer over all store x sku series, price and promo as covariates."""

    horizon: int = 4  # periods forecast at once
    # the holdout is this many windows of ``horizon`` periods, each asked from its own origin
    # (rolling origins): a decision rests on every series' last evaluation_windows x horizon periods
    evaluation_windows: int = 3
    context_length: int = 12
    max_series: int = 0  # 0: all series
    epochs: int = 10
    batch_size: int = 64
    windows_per_series: int = 8
    # at least this many batches an epoch: a panel of a few long series (a store's departments)
    # would otherwise train for a handful of steps
    min_batches_per_epoch: int = 50
    learning_rate: float = 3e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    d_model: int = 32
    num_samples: int = 50  # sample paths drawn per forecast (quantiles)
    # the quantile the inventory plan orders up to: evaluation scores it (the gate's service-level
    # rule) and the inventory plan uses it; the calibration window before the holdout sets it
    service_level: float = 0.95
    # seasonal-naive baseline; 0: from the sales' period (52 weeks, 7 days, 12 months)
    season_length: int = 0


class RecommenderTraining(BaseModel):
    """Sequence recommender: MiniLM layers, item embeddings from MiniLM title encodings."""

    max_seq_length: int = 50
    num_layers: int = 2
    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    mask_probability: float = 0.2
    top_k: int = 10
    # the evaluation's second view, by time: the last this many days are kept out of training,
    # and the next item each customer chose after that cutoff is scored (0: no such view)
    time_split_days: int = 14


class TrainingSettings(BaseModel):
    model_config = ConfigDict(extra="allow")  # the section of a family with no field of its own

    seed: int = 13
    # processes per training task (data-parallel, see pipeline/training/launch.py):
    # 0 is one per visible GPU when training on CUDA, else one; N > 1 on the CPU runs N gloo ranks
    processes: int = 0
    sentiment: SentimentTraining = SentimentTraining()
    forecaster: ForecasterTraining = ForecasterTraining()
    recommender: RecommenderTraining = RecommenderTraining()


class SliceRule(BaseModel):
    """Per-slice regression rule: of the slices (of ``dimension``) with at least
    ``min_samples`` holdout rows, no more than ``max_regressed_share`` may be worse than
    the champion on ``metric`` by more than ``max_drop``."""

    dimension: str  # "class", "store" or "category" (see pipeline/evaluation/slices.py)
    metric: str
    min_samples: int = 20
    max_drop: float = 0.05
    max_regressed_share: float = 0.25


class GateSettings(BaseModel):
    """Gate rules as data; metric names are those written by the evaluation step (each
    family's primary metric is in its record, :mod:`pipeline.families`).

    The gate chooses among a retrain's candidates (the transformer, the classic models, the
    blend): the best one that passes every rule serves. ``minimums``/``maximums`` are sanity
    floors for every candidate; a name ending in ``*`` applies to every metric with that
    prefix (``recall_*``: the recall of each class). What binds in normal operation is
    relative: strictly better than the best reference baseline (majority class, seasonal
    naive, popularity), ``min_lift_over_baseline`` over the best classic model for a candidate
    that carries a transformer, and the paired bootstrap against the champion. Each floor
    holds for a sane model on short and long, weekly and daily histories: docs/lifecycle.md
    gives the reasoning for each default."""

    minimums: dict[str, dict[str, float]] = {
        # every class is predicted at least sometimes (a collapsed class has recall 0)
        "sentiment": {"recall_*": 0.10},
        "forecaster": {},
        "recommender": {},
    }
    maximums: dict[str, dict[str, float]] = {
        "sentiment": {},
        # 1.0 is what forecasting zero scores: a forecast worse than that is no forecast, on
        # intermittent daily demand too (MASE and bias are not floors: MASE's in-sample naive
        # scale is unstable on histories of about one season, and the median of intermittent
        # demand is legitimately far below its mean)
        "forecaster": {"wape": 1.0},
        "recommender": {},
    }
    # a candidate that carries a transformer (the transformer, the blend) must beat the best
    # classic model (TF-IDF, gradient boosting, EASE / item-kNN) by at least this share of its
    # primary metric to be chosen over it: it costs more to train, serve and watch, and a gain
    # inside a holdout's noise is not worth that. (0.02 on macro-F1 0.80 asks for 0.816; on
    # WAPE 0.30 for at most 0.297.) The classic model serves otherwise. The recommender's
    # transformer costs most against EASE (a closed form fitted in seconds), so its bar is highest.
    min_lift_over_baseline: dict[str, float] = {"sentiment": 0.02, "forecaster": 0.01, "recommender": 0.10}
    # with a champion, a holdout of fewer independent units than this decides nothing ("thin
    # evidence"): the champion stays. Units are the bootstrap's: reviews, series (each scored on
    # evaluation_windows x horizon periods), customers. Without a champion the best candidate
    # is still chosen, and the report says the evidence is thin.
    min_evidence_units: dict[str, int] = {"sentiment": 200, "forecaster": 10, "recommender": 200}
    # forecasts whose service-level quantile is the plan: the holdout share of periods with demand
    # above it may exceed 1 - service level by at most this (or 1.96 standard errors, clustered by
    # period): a plan that promises 5% of stock-outs and delivers 13% is refused. Below it, the
    # plan overstocks: refused only under half the promised rate (one that delivers 1% is; the
    # demo's three rolling windows gave 2.3% to 2.9% for a 5% promise, a quantile on the safe side)
    service_level_tolerance: dict[str, float] = {"forecaster": 0.02}
    # "not worse than the champion": the paired bootstrap's confidence interval of (challenger -
    # champion) on the primary metric, better positive, must not lie wholly below -tolerance; a
    # challenger whose interval spans 0 is a tie and passes. Resampled by holdout unit: reviews,
    # series (a series' weeks move together) or customers.
    champion_tolerance: float = 0.0
    bootstrap_resamples: int = 1000
    confidence_level: float = 0.95
    slices: dict[str, list[SliceRule]] = {
        # per class: no class's recall may fall by more than 0.10 (a share of classes would let
        # one of two classes collapse)
        "sentiment": [SliceRule(dimension="class", metric="recall", min_samples=20, max_drop=0.10,
                                max_regressed_share=0.0)],
        "forecaster": [SliceRule(dimension="store", metric="wape", min_samples=8, max_drop=0.10,
                                 max_regressed_share=0.25)],
        "recommender": [SliceRule(dimension="category", metric="hr_at_10", min_samples=20, max_drop=0.05,
                                  max_regressed_share=0.25)],
    }
    # "manual": a person approves each promotion (python -m pipeline models approve)
    approval: Literal["auto", "manual"] = "auto"
    approval_timeout_hours: float = 72.0


class DriftSettings(BaseModel):
    """Drift of a validated drop against the drops of the previous ``window_days`` days.

    Metrics (see pipeline/ingest/quality.py): ``label_shift`` and ``event_shift`` are total
    variation distances between shares (0 to 1); ``text_length_change``,
    ``units_per_store_change`` and ``price_change`` are relative changes of a median or
    mean (0.5 = 50%); ``unknown_sku_increase`` is the rise of the share of rows whose sku
    is not in the catalog. At ``warn`` the task logs a warning; at ``severe`` retraining of
    the models that use the feed is held until someone acknowledges it
    (``python -m pipeline data ack``). Unknown skus themselves are always a warning.
    """

    window_days: int = 28
    # a drop with fewer rows is not judged for drift: the label shares or the median length of
    # a dozen reviews swing by chance (the retrain decision judges what arrived since a model's
    # training pooled, pipeline/monitoring/retrain.py)
    min_rows: int = 100
    warn: dict[str, float] = {
        "label_shift": 0.10, "text_length_change": 0.5, "units_per_store_change": 0.5,
        "price_change": 0.25, "unknown_sku_increase": 0.05, "event_shift": 0.10,
    }
    severe: dict[str, float] = {
        "label_shift": 0.30, "text_length_change": 2.0, "units_per_store_change": 3.0,
        "price_change": 1.0, "unknown_sku_increase": 0.50, "event_shift": 0.30,
    }


class RetrainRule(BaseModel):
    """When a family is worth retraining (``retrain.rules.<family>``). Each condition that
    fires is a reason; with none, the family's training tasks skip and say why.

    The data conditions compare with the latest trained version (its training window):
    a challenger that failed its gate is not retrained on the same data again. The live
    condition compares the champion's live metric with its promotion-time holdout metric."""

    # the champion's live primary metric is worse than its holdout metric at promotion by more
    # than this share of it (0.10 on macro-F1 0.85: below 0.765; on WAPE 0.40: above 0.44), once
    # at least min_live_samples units were scored, their truth arriving over at least
    # min_live_days days, first to last (one week of sales is one draw, however many series)
    max_live_decay: float = 0.10
    min_live_samples: int = 200
    min_live_days: int = 14
    # new labelled rows of the family's feeds since the latest training window: as many as
    # this share of that version's training rows, or this many rows (0: that test is off)
    min_new_share: float = 0.25
    min_new_rows: int = 0
    # drift of everything the family's feeds published since then, pooled, against the drift
    # window before it, at or past a warn level of ingest.drift (once at least drift_min_rows arrived)
    on_drift_warning: bool = True
    drift_min_rows: int = 200
    # the latest training window is older than this many days (0: no limit)
    max_age_days: int = 35


class RetrainSettings(BaseModel):
    """``worth_it``: the retrain DAG trains a family only when a rule fires (or it has no model
    yet, or its training code or settings changed); ``always``: on every run."""

    policy: Literal["worth_it", "always"] = "worth_it"
    rules: dict[str, RetrainRule] = {
        "sentiment": RetrainRule(min_live_samples=200),
        "forecaster": RetrainRule(min_live_samples=100),  # store x sku x period x lead
        "recommender": RetrainRule(min_live_samples=200),  # next items after a served list
    }

    def rule(self, family: str) -> RetrainRule:
        return self.rules.get(family) or RetrainRule()


class MonitorSettings(BaseModel):
    """Live performance of the champions (the ``retail_monitor`` DAG) and the probation of a
    new champion, each scored on the holdout's units (:mod:`pipeline.monitoring.live`): the
    forecaster on realised sales against the forecasts the inventory plan issued, at every
    lead; sentiment on reviews whose label arrived after they were scored; the recommender
    on each customer's next single item against the list served to them before it."""

    window_days: int = 28  # live metrics over the ground truth of the last this many days
    # after a promotion, the previous champion is scored in shadow for this many days; when the
    # new one is worse on the live primary metric by more than probation_margin (a share of the
    # previous one's value) on at least probation_min_samples shared units, it is rolled back
    # (gate.approval manual: proposed, and a person decides), their truth arriving over at
    # least probation_min_days days, first to last
    probation_days: int = 14
    probation_margin: float = 0.05
    probation_min_samples: int = 200
    probation_min_days: int = 7


class IngestSettings(BaseModel):
    # a drop with a larger share of bad rows is quarantined whole
    max_bad_row_share: float = 0.05
    # rows validated at a time: bounds memory on large drops
    chunk_rows: int = 500_000
    # a feed without a drop for the date: "skip" the day or "fail" the run
    missing_drop: Literal["skip", "fail"] = "skip"
    drift: DriftSettings = DriftSettings()


class S3ClientSettings(BaseModel):
    """The lake's S3 client (botocore): throttling and 5xx answers are retried with backoff,
    a call that stalls times out and is retried; after ``max_attempts`` the error names the URI."""

    retry_mode: Literal["legacy", "standard", "adaptive"] = "standard"
    max_attempts: int = 5  # the first try included
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 60.0


class MlflowHttpSettings(BaseModel):
    """Retries of MLflow's HTTP client against a tracking server (exported as MLflow's own
    ``MLFLOW_HTTP_REQUEST_*`` variables; None leaves MLflow's value: 7 retries, backoff
    factor 2, so about 4 minutes of waiting, and 120 s per request)."""

    max_retries: int | None = None
    backoff_factor: int | None = None  # seconds: waits of 0, 2x, 4x, ... this, at most 120
    timeout_seconds: int | None = None


class Settings(BaseSettings):
    """Everything configurable. Defaults give the embedded single-machine setup."""

    model_config = SettingsConfigDict(
        env_prefix="RETAIL_", env_nested_delimiter="__", extra="ignore"
    )

    # data lake: file:///abs/path or s3://bucket/prefix
    lake_uri: str = (PROJECT_ROOT / "var" / "lake").as_uri()
    # where drops land; empty means <lake_uri>/landing
    landing_uri: str = ""
    s3_endpoint_url: str = ""
    s3: S3ClientSettings = S3ClientSettings()
    ingest: IngestSettings = IngestSettings()

    mlflow_tracking_uri: str = "sqlite:///" + str(PROJECT_ROOT / "var" / "mlflow" / "mlflow.db")
    # where new experiments keep artifacts; empty: the tracking server decides (served artifacts)
    mlflow_artifact_uri: str = (PROJECT_ROOT / "var" / "mlflow" / "artifacts").as_uri()
    mlflow_http: MlflowHttpSettings = MlflowHttpSettings()
    experiment_name: str = "retail-mlops"
    # registered model name per family, to override the name in its record (pipeline/families.py)
    model_names: dict[str, str] = {}

    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    # the precision a sentiment pyfunc scores in (RETAIL_SCORING_PRECISION): auto is bf16 on a GPU
    # and on a CPU with native bf16, else fp32 (pipeline.training.sentiment.scoring_precision)
    scoring_precision: Literal["auto", "fp32", "bf16", "float32", "bfloat16"] = "auto"
    # where converted encoders are cached (RETAIL_ENCODER_CACHE); empty: var/cache/encoders
    encoder_cache: str = ""
    # training checkpoints (with optimizer, scheduler and RNG state) every N steps and at
    # each epoch end, in the MLflow run's artifact location; a retried task resumes from it
    checkpoint_every_steps: int = 100
    # training tasks go to this Celery queue and Airflow pool (see pipeline/executors.py)
    gpu_queue: str = "gpu"
    gpu_pool: str = "gpu"
    gpu_pool_slots: int = 1
    # under the KubernetesExecutor: training pods ask for gpus_per_training_task nvidia.com/gpu
    gpu_pod_override: bool = False
    gpus_per_training_task: int = 1
    ingest_schedule: str = "@daily"
    retrain_cron: str = "0 3 * * 1"  # weekly, Monday 03:00, unless fresh data comes first
    # the DAGs' start: a run for an earlier logical date (a history, a backfill) would run no
    # task at all, so it lies well before any data (catchup is off: nothing runs for the past)
    start_date: str = "2000-01-01"
    task_retries: int = 1  # Airflow retries of a failed task
    # a failed task writes an alert to <lake>/alerts/; this Airflow notifier (a dotted class
    # path, e.g. airflow.providers.smtp.notifications.smtp.SmtpNotifier) sends it on too
    alert_notifier: str = ""
    alert_notifier_kwargs: dict[str, Any] = {}
    # a retraining run still going this long after it was queued raises a deadline alert
    # (0: none). Off by default: Airflow 3.3.2's dag.test(), which the embedded demo uses,
    # fails on a DAG with a DeadlineAlert; set it where a scheduler runs the DAGs.
    retrain_deadline_hours: float = 0.0
    # training tasks that may run at once; each uses every core, so 1 on a small machine
    max_parallel_training: int = 1

    # demo data: the bundled real data sets re-based onto this calendar
    demo_start: str = "2026-10-01"
    demo_days: int = 3
    # then this many live days: the drops after the models were trained, so that the monitor
    # has ground truth to score the champions on (labels of reviews follow 3 days late)
    demo_live_days: int = 7

    # the model families this retailer uses; None: every family whose feeds have validated data
    families: list[str] | None = None
    training: TrainingSettings = TrainingSettings()
    gate: GateSettings = GateSettings()
    retrain: RetrainSettings = RetrainSettings()
    monitor: MonitorSettings = MonitorSettings()
    # review insights: labels that count as negative, and the jump in a sku's negative share
    # (last day against the days before, at least this many reviews on each side) that alerts
    negative_labels: list[str] = ["negative", "other"]
    negative_jump_alert: float = 0.3
    negative_jump_min_reviews: int = 5
    # recommendations: items with at least this share of negative reviews go to the end (0: off)
    demote_negative_share: float = 0.5
    # an order placed now arrives after the lead time and must last until the next order can
    # arrive: it covers lead time + review period (periods of the forecaster's grid)
    inventory_lead_time_periods: int = 1
    inventory_review_period_periods: int = 1

    @field_validator("families")
    @classmethod
    def _known_families(cls, names: list[str] | None) -> list[str] | None:
        from pipeline.families import get_family

        for name in names or ():
            get_family(name)  # a ValueError naming the known families
        return names

    @field_validator("scoring_precision", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.strip().lower() or "auto" if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)

    @property
    def landing(self) -> str:
        return self.landing_uri or self.lake_uri.rstrip("/") + "/landing"

    def model_name(self, family: str) -> str:
        from pipeline.families import get_family

        return self.model_names.get(family) or get_family(family).model_name

    def hyperparameters(self, family: str) -> BaseModel:
        """``training.<family>``, typed by the family's record (a family added without a field
        here still reads its section of the YAML file or ``RETAIL_TRAINING__<FAMILY>__...``)."""
        from pipeline.families import get_family

        hp_class = get_family(family).function("hyperparameters")
        value = getattr(self.training, family, None)
        return value if isinstance(value, hp_class) else hp_class(**(value or {}))

    def training_digest(self, family: str) -> str:
        """A digest of the family's training settings and the seed."""
        import hashlib
        import json

        payload = {"seed": self.training.seed, family: self.hyperparameters(family).model_dump(mode="json")}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def redacted(self) -> dict[str, Any]:
        """The resolved settings as a flat dict, safe to log: values under secret-looking
        names (password, secret, token, ...key), the notifier's keyword arguments and
        passwords inside URIs (``scheme://user:password@host``) are masked."""
        return {key: _mask(key, value) for key, value in _flatten(self.model_dump()).items()}


MASK = "***"
# a name holding password or secret, or ending in one of these words (api_token, aws_secret_access_key)
_SECRET_NAME = re.compile(r"passw(or)?d|secret|(^|[_-])(token|key|apikey|pass|pwd|auth|authorization|credentials?)$",
                          re.I)
# notifier kwargs often carry a webhook address or a token under a name of the notifier's choosing
_UNLOGGED = ("alert_notifier_kwargs.",)
_URI_PASSWORD = re.compile(r"(://[^/:@\s]*):[^/@\s]*@")


def mask_uri_passwords(text: str) -> str:
    """``scheme://user:password@host`` becomes ``scheme://user:***@host``, anywhere in ``text``."""
    return _URI_PASSWORD.sub(rf"\1:{MASK}@", text)


def _mask(key: str, value: Any) -> Any:
    if key.startswith(_UNLOGGED) or _SECRET_NAME.search(key.rsplit(".", 1)[-1]):
        return MASK
    return mask_uri_passwords(value) if isinstance(value, str) else value


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def load_settings(**overrides: Any) -> Settings:
    """Read settings from overrides, environment and the optional YAML file."""
    return Settings(**overrides)


def load_settings_landing(landing: str | None) -> Settings:
    """The settings with a command line's ``--landing`` (when given) as the landing URI of
    this process and of every step it runs: the environment carries it, so a DAG task that
    loads its own settings reads it too (``python -m pipeline`` and scripts/run_dags.py)."""
    if landing:
        os.environ["RETAIL_LANDING_URI"] = landing
    return load_settings()
