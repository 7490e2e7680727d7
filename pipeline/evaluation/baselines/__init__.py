"""Baselines, each trained or computed on the same training rows and asked the same
question as the model: ``baseline(data, hp) -> predictions`` in the model's output format
(``hp``: the family's training settings).

The reference baselines (majority class, seasonal naive, popularity) are what every
candidate is judged against. The strong ones (TF-IDF + logistic regression, gradient
boosting, EASE, item-kNN) are each a fit and a predict that the classic candidates
(:mod:`pipeline.training.classic`) reuse: a classic candidate is that model fitted on the
training rows, saved and served, answering with the baseline's numbers.

Split by kind of task: :mod:`.text` (classification), :mod:`.forecast`, :mod:`.ranking`.
The families' records name them as ``pipeline.evaluation.baselines:<name>``."""

from pipeline.evaluation.baselines.forecast import (FORECAST_COLUMNS, GradientBoosting, fit_gradient_boosting,
                                                    gbm_history_periods, gradient_boosting, predict_gradient_boosting,
                                                    seasonal_naive)
from pipeline.evaluation.baselines.ranking import (RANKING_COLUMNS, AskedCustomers, Interactions, ItemModel,
                                                   RankingInputs, choose_on_validation, ease, ease_fitter,
                                                   empty_ranking, fit_on_validation, holdout_customers,
                                                   interaction_matrix, item_knn, item_popularity, knn_fitter,
                                                   popular_items, popularity, rank_by_scores, seen_items)
from pipeline.evaluation.baselines.text import (fit_tfidf_logistic_regression, majority_class, predict_labels,
                                                tfidf_logistic_regression)

__all__ = [
    "FORECAST_COLUMNS", "GradientBoosting", "fit_gradient_boosting", "gbm_history_periods", "gradient_boosting",
    "predict_gradient_boosting", "seasonal_naive", "RANKING_COLUMNS", "AskedCustomers", "Interactions", "ItemModel",
    "RankingInputs", "choose_on_validation", "ease", "ease_fitter", "empty_ranking", "fit_on_validation",
    "holdout_customers", "interaction_matrix", "item_knn", "item_popularity", "knn_fitter", "popular_items",
    "popularity", "rank_by_scores", "seen_items", "fit_tfidf_logistic_regression", "majority_class",
    "predict_labels", "tfidf_logistic_regression",
]
