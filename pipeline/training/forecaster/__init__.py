"""Demand forecaster: a global time-series transformer over every store x sku series.

One ``transformers.TimeSeriesTransformerForPrediction`` learns from all series at once.
The target is log1p(units); price and promo are time-varying covariates known in the
future (the planned price and promo of the periods asked about); store and sku are static
categorical features, with index 0 kept for ones the model never saw. Forecasts are
sample paths from the model's Student-t head, turned back into units with expm1.

Series live on a regular grid of periods (the typical spacing of the data): a missing
period inside a history is carried forward with observed mask 0, and a history shorter
than one window is padded at the start the same way, so the scaler and the loss ignore
both. Future periods are taken in order, one grid step each.

Modules: ``panel`` (metadata and the padded grid of every series, with features),
``model`` (the network, and a warm start from the champion), ``train`` (windows and
``fine_tune``), ``predict`` (forecasts and the MLflow pyfunc). The series grid itself and
the question the model answers are in :mod:`pipeline.series`; the baseline and the
scoring in :mod:`pipeline.evaluation`.
"""

from pipeline.training.forecaster.panel import ForecasterMeta
from pipeline.training.forecaster.predict import ForecasterModel
from pipeline.training.forecaster.train import fine_tune

__all__ = ["ForecasterMeta", "ForecasterModel", "fine_tune"]
