"""The model families: one record each, and the only place where a stage learns what
differs from one family to the next. Every stage asks this table; none branches on a
family's name.

Functions (and the hyperparameter class) are named ``"module:name"`` and imported when first used, so the DAG files
can read the table (names, feeds, consumers) without importing pandas or torch.
Signatures, the same for every family (``hp``: the family's training settings,
``settings.training.<family>``):

- ``build(frames: {feed: DataFrame}, hp) -> FamilyData``: train/holdout split of the
  family's validated feeds (the latest row per key);
- ``question(data) -> DataFrame``: what any model of the family is asked about the holdout;
- ``baseline(data, hp) -> predictions``, in the model's output format: a reference
  baseline every candidate must beat (majority class, seasonal naive, popularity; the same
  for each of ``more_baselines``: the gate's baseline is the best of them on the primary
  metric). Never registered: the models that may serve are the ``candidates``;
- ``score(predictions, data, hp) -> {metric: value}``;
- ``slices(predictions, data, hp) -> {dimension: {value: {"metric", "n"}}}``;
- ``units(predictions, data, hp) -> (unit, {metric: (stats, statistic)})``: the primary
  metric as additive statistics per holdout unit, for the paired bootstrap against the
  champion (:mod:`pipeline.evaluation.bootstrap`);
- ``plot(predictions by role, data, hp) -> (name, matplotlib Figure)``;
- ``live_units(lake, day, since, hp) -> DataFrame``: every prediction a model version
  issued (kept by the consumer, :mod:`pipeline.monitoring.issued`) whose ground truth
  arrived from ``since`` to ``day``, one row per version and unit (columns ``version``,
  ``unit``, ``day``: when the truth arrived, optional ``slice``, and what ``live_metrics``
  needs);
- ``live_metrics(units, hp) -> {metric: value}``, ``live_metric`` among them: the live
  primary metric, named as the holdout metric it is compared with.

The model module provides ``fine_tune(data, hp, run, model_dir, init_dir, seed) ->
TrainHistory`` and the MLflow pyfunc class named here: the transformer candidate. Every
retrain also trains the family's other ``candidates`` (classic models, a blend; see
:class:`Candidate`), and the gate chooses among them. A family of a kind of task that is
already evaluated (classification, forecasting, ranking) reuses that task's baseline,
scorer, slicer and plot; adding it is one model module plus one record.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable


@dataclass(frozen=True)
class Candidate:
    """One kind of model a family trains at every retrain, on the same training split.

    - ``transformer``: the fine-tuned transformer (the family's ``model_module`` and
      ``pyfunc_class``; ``fit`` and ``pyfunc_class`` stay empty);
    - ``classic``: ``fit(data, hp, model_dir, seed) -> {param: value}`` trains on
      ``data.train`` (and ``data.catalog`` / ``data.plan``) and writes ``model_dir`` in safe
      formats only (JSON, numpy without pickle, safetensors, skops with a fixed list of
      trusted types); the returned parameters (settings it chose) are logged with the run;
    - ``blend``: ``fit(data, hp, model_dir, seed, parts) -> {param: value}`` combines the
      candidates named in ``parts`` (``parts``: name -> their final model folders), its
      weight chosen on the family's ``validation`` windows, never on the holdout.

    Every candidate's ``pyfunc_class`` (``"module:Class"``) reads ``artifacts["model_dir"]``
    and answers the family's question in the family's output format, so consumers, the
    monitor and ``mlflow models serve`` do not know which kind serves."""

    name: str  # unique in the family; the MLflow model's name in the run
    kind: str  # "transformer", "classic" or "blend"
    fit: str = ""
    pyfunc_class: str = ""
    parts: tuple[str, ...] = ()  # a blend's candidates


KINDS = ("transformer", "classic", "blend")


def candidate_tag(name: str) -> str:
    """The training run's tag that holds candidate ``name``'s model URI."""
    return f"candidate.{name}.model_uri"
TRANSFORMER = Candidate("transformer", "transformer")


@dataclass(frozen=True)
class Family:
    name: str
    model_name: str  # in the MLflow registry (settings.model_names overrides it)
    feeds: tuple[str, ...]  # validated feeds it learns from: lineage, drift holds, retraining triggers
    model_module: str  # fine_tune() and the pyfunc class
    pyfunc_class: str
    hyperparameters: str  # the pydantic class of its training settings, ``training.<name>``
    warm_start: bool  # continue from the champion's weights rather than the base model
    primary_metric: str  # what the gate compares with the baseline and the champion
    build: str
    question: str
    baseline: str
    score: str
    slices: str
    units: str
    plot: str
    # columns that pick whole series / histories for the logged input example (empty: first rows)
    example_key: tuple[str, ...] = ()
    # training settings passed to the pyfunc as MLflow params (declared in its signature)
    serving_params: tuple[str, ...] = ()
    consumer: str = ""  # the consumer task that runs on its champion (see dags/retail_consumers.py)
    optional_feeds: tuple[str, ...] = ()  # read into ``build``'s frames when they have validated data
    # further baselines, reported beside ``baseline``; the gate compares with the best of them all
    more_baselines: tuple[str, ...] = ()
    # live performance (pipeline/monitoring): see the module docstring
    live_units: str = ""
    live_metrics: str = ""
    live_metric: str = ""
    # a column of the first feed whose empty rows are not ground truth (reviews waiting for a
    # label): they do not count as new labelled data for retraining
    label_column: str = ""
    # every model trained at a retrain (see Candidate); the gate chooses among them
    candidates: tuple[Candidate, ...] = (TRANSFORMER,)
    # ``validation(data, hp) -> [FamilyData]``: windows carved from ``data.train`` by time (each
    # window's ``train`` the rows before it, its ``holdout`` the rows to predict); the
    # transformer never trains on their holdout rows, and blends choose their weight on them
    validation: str = ""
    # ``windows(data, hp) -> [FamilyData]``: the holdout as the windows every model is asked
    # about, each from its own origin (rolling origins); empty: the holdout as one question
    windows: str = ""

    def function(self, field: str) -> Callable[..., Any]:
        """The function named by ``field`` (``build``, ``question``, ``baseline``, ...)."""
        return self.function_named(getattr(self, field))

    @staticmethod
    def function_named(name: str) -> Callable[..., Any]:
        """The function ``"module:name"``."""
        module, _, attr = name.partition(":")
        return getattr(importlib.import_module(module), attr)

    def module(self) -> ModuleType:
        return importlib.import_module(self.model_module)

    def pyfunc(self, candidate: str = TRANSFORMER.name) -> Any:
        """A new instance of a candidate's MLflow pyfunc class (the transformer's by default)."""
        chosen = self.candidate(candidate)
        if chosen.kind == "transformer":
            return getattr(self.module(), self.pyfunc_class)()
        return self.function_named(chosen.pyfunc_class)()

    def candidate(self, name: str) -> Candidate:
        for candidate in self.candidates:
            if candidate.name == name:
                return candidate
        raise ValueError(f"{self.name} has no candidate {name!r}; expected one of "
                         f"{[c.name for c in self.candidates]}")


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family(
        name="sentiment", model_name="retail-review-sentiment", feeds=("reviews",), consumer="review_insights",
        model_module="pipeline.training.sentiment", pyfunc_class="SentimentModel",
        hyperparameters="pipeline.settings:SentimentTraining", warm_start=False,
        primary_metric="macro_f1",
        build="pipeline.datasets:reviews_dataset",
        question="pipeline.datasets:review_question",
        baseline="pipeline.evaluation.baselines:majority_class",
        candidates=(
            TRANSFORMER,
            Candidate("tfidf", "classic", fit="pipeline.training.classic.text:fit",
                      pyfunc_class="pipeline.training.classic.text:TfidfSentimentModel"),
            Candidate("blend", "blend", fit="pipeline.training.blend:fit_label_blend",
                      pyfunc_class="pipeline.training.blend:LabelBlend", parts=("transformer", "tfidf")),
        ),
        validation="pipeline.datasets:review_validation",
        score="pipeline.evaluation.scoring:classification_score",
        units="pipeline.evaluation.scoring:classification_units",
        slices="pipeline.evaluation.slices:by_class",
        plot="pipeline.evaluation.plots:confusion_matrix_plot",
        live_units="pipeline.monitoring.live:review_units", live_metrics="pipeline.monitoring.live:review_metrics",
        live_metric="macro_f1", label_column="label",
    ),
    Family(
        name="forecaster", model_name="retail-demand-forecaster", feeds=("sales",), consumer="inventory_plan",
        optional_feeds=("plan",),
        model_module="pipeline.training.forecaster", pyfunc_class="ForecasterModel",
        hyperparameters="pipeline.settings:ForecasterTraining", warm_start=True,
        primary_metric="wape",
        build="pipeline.datasets:sales_dataset",
        question="pipeline.datasets:sales_question",
        baseline="pipeline.evaluation.baselines:seasonal_naive",
        candidates=(
            TRANSFORMER,
            Candidate("gbm", "classic", fit="pipeline.training.classic.forecast:fit",
                      pyfunc_class="pipeline.training.classic.forecast:GbmForecasterModel"),
            Candidate("blend", "blend", fit="pipeline.training.blend:fit_forecast_blend",
                      pyfunc_class="pipeline.training.blend:ForecastBlend", parts=("transformer", "gbm")),
        ),
        validation="pipeline.datasets:sales_validation", windows="pipeline.datasets:forecast_windows",
        score="pipeline.evaluation.scoring:forecast_score",
        units="pipeline.evaluation.scoring:forecast_units",
        slices="pipeline.evaluation.slices:by_store",
        plot="pipeline.evaluation.plots:forecast_plot",
        live_units="pipeline.monitoring.live:forecast_units", live_metrics="pipeline.monitoring.live:forecast_metrics_live",
        live_metric="wape",
        example_key=("store_id", "sku"),
        serving_params=("service_level",),
    ),
    Family(
        name="recommender", model_name="retail-recommender", feeds=("interactions", "catalog"),
        consumer="recommendations", model_module="pipeline.training.recommender", pyfunc_class="RecommenderModel",
        hyperparameters="pipeline.settings:RecommenderTraining", warm_start=False,
        primary_metric="ndcg_at_10",
        build="pipeline.datasets:interactions_dataset",
        question="pipeline.datasets:interaction_question",
        baseline="pipeline.evaluation.baselines:popularity",
        candidates=(
            TRANSFORMER,
            Candidate("ease", "classic", fit="pipeline.training.classic.ranking:fit_ease",
                      pyfunc_class="pipeline.training.classic.ranking:EaseModel"),
            Candidate("item_knn", "classic", fit="pipeline.training.classic.ranking:fit_item_knn",
                      pyfunc_class="pipeline.training.classic.ranking:ItemKnnModel"),
            Candidate("blend", "blend", fit="pipeline.training.blend:fit_ranking_blend",
                      pyfunc_class="pipeline.training.blend:RankingBlend", parts=("transformer", "ease")),
        ),
        validation="pipeline.datasets:interaction_validation",
        score="pipeline.evaluation.scoring:ranking_score",
        units="pipeline.evaluation.scoring:ranking_units",
        slices="pipeline.evaluation.slices:by_category",
        plot="pipeline.evaluation.plots:recall_at_k_plot",
        live_units="pipeline.monitoring.live:recommendation_units",
        live_metrics="pipeline.monitoring.live:recommendation_metrics", live_metric="hr_at_10",
        example_key=("customer_id",),
        serving_params=("top_k",),
    ),
)}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; expected one of {sorted(FAMILIES)}") from None
