"""The forecast question must not depend on how much history is passed: evaluation passes
every series' whole history, the inventory plan only ``meta.past_length`` periods of it
(``forecast_input(..., context=...)``). Both forecasters price a question against their
training data's median prices (kept with the model), so on the real orange-juice sales,
whose prices move week to week, the two questions get the same answer."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from pipeline.datasets import FamilyData, split_sales
from pipeline.demo_data import load_orange_juice
from pipeline.series import forecast_input, median_prices
from pipeline.settings import ForecasterTraining
from pipeline.training.classic import forecast as gbm
from pipeline.training.core import RunOptions
from pipeline.training.forecaster import ForecasterModel, fine_tune

HP = ForecasterTraining(horizon=4, context_length=8, epochs=1, batch_size=32, windows_per_series=2, d_model=8,
                        num_samples=20, min_batches_per_epoch=0, evaluation_windows=1)


@pytest.fixture(scope="module")
def sales() -> FamilyData:
    oj = load_orange_juice()
    oj = oj[oj["store_id"].isin(sorted(oj["store_id"].unique())[:2])]
    dates = pd.Timestamp("2026-01-05") + pd.to_timedelta((oj["week"] - oj["week"].min()) * 7, unit="D")
    return split_sales(oj.drop(columns="week").assign(date=dates), horizon=HP.horizon, min_train_periods=8)


def load(cls: type, folder: Path):  # noqa: ANN201
    model = cls()
    model.load_context(SimpleNamespace(artifacts={"model_dir": str(folder)}))
    return model


@pytest.mark.parametrize("kind", ["transformer", "gbm"])
def test_the_answer_does_not_depend_on_how_much_history_is_passed(kind: str, sales: FamilyData, tmp_path: Path):
    if kind == "transformer":
        fine_tune(sales, HP, RunOptions(), tmp_path, None, seed=3)
        model = load(ForecasterModel, tmp_path)
    else:
        gbm.fit(sales, HP, tmp_path, seed=3)
        model = load(gbm.GbmForecasterModel, tmp_path)
    meta = model.meta
    whole = forecast_input(sales.train, horizon=HP.horizon, period_days=meta.period_days)
    context = forecast_input(sales.train, horizon=HP.horizon, period_days=meta.period_days, context=meta.past_length)
    assert len(context) < len(whole)  # the inventory plan's question is much shorter
    # the price level differs between the two: a median of the whole history and of its tail
    tails = median_prices(sales.train.groupby(["store_id", "sku"]).tail(meta.past_length))
    assert sum(abs(tails[k] - v) > 1e-9 for k, v in median_prices(sales.train).items()) >= 5
    answers = [model.predict(None, q, {"service_level": 0.95}) for q in (whole, context)]
    pd.testing.assert_frame_equal(*answers, rtol=1e-5)
