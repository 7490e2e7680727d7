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
- ``baseline(data, hp) -> predictions``, in the model's output format (and the same for
  each of ``more_baselines``: the gate's baseline is the best of them on the primary metric);
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
TrainHistory`` and the MLflow pyfunc class named here. A family of a kind of task that is
already evaluated (classification, forecasting, ranking) reuses that task's baseline,
scorer, slicer and plot; adding it is one model module plus one record.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable


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

    def pyfunc(self) -> Any:
        """A new instance of the family's MLflow pyfunc class."""
        return getattr(self.module(), self.pyfunc_class)()


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family(
        name="sentiment", model_name="retail-review-sentiment", feeds=("reviews",), consumer="review_insights",
        model_module="pipeline.training.sentiment", pyfunc_class="SentimentModel",
        hyperparameters="pipeline.settings:SentimentTraining", warm_start=False,
        primary_metric="macro_f1",
        build="pipeline.datasets:reviews_dataset",
        question="pipeline.datasets:review_question",
        baseline="pipeline.evaluation.baselines:tfidf_logistic_regression",
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
        more_baselines=("pipeline.evaluation.baselines:gradient_boosting",),
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
        more_baselines=("pipeline.evaluation.baselines:item_knn", "pipeline.evaluation.baselines:ease"),
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
