"""The forecaster's network: a ``transformers.TimeSeriesTransformerForPrediction`` sized
from settings, or the champion's, grown to new stores and skus, for a warm start."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd
import torch
from transformers import TimeSeriesTransformerConfig, TimeSeriesTransformerForPrediction

from pipeline.settings import ForecasterTraining
from pipeline.training.forecaster.panel import N_DYNAMIC_FEATURES, N_TIME_FEATURES, ForecasterMeta

log = logging.getLogger(__name__)

MODEL_SUBDIR = "model"
DISTRIBUTION = "student_t"
# log1p(units) sits far from 0, so each window is centred and scaled (the mean scaler
# would squash every history to values near 1)
TARGET_SCALING = "std"
DROPOUT = 0.1
LAYERDROP = 0.1
N_LAYERS = 2
N_HEADS = 2
MAX_EMBEDDING_DIM = 16
# The tensors here are tiny (batch 64 x 20 periods x d_model 32): a second intra-op thread
# gains little, and on a busy 2-core worker (other tasks running) it made training steps
# 10x slower and prediction 8x slower, the threads waiting on each other. So CPU work runs
# on one thread.
CPU_THREADS = 1


@contextmanager
def cpu_threads(device: torch.device) -> Iterator[None]:
    """Limit torch's intra-op threads to CPU_THREADS for the block (CPU only), then restore."""
    before = torch.get_num_threads()
    if device.type == "cpu" and before > CPU_THREADS:
        torch.set_num_threads(CPU_THREADS)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def new_model(meta: ForecasterMeta, hp: ForecasterTraining) -> TimeSeriesTransformerForPrediction:
    cardinality = [len(meta.stores) + 1, len(meta.skus) + 1]
    config = TimeSeriesTransformerConfig(
        prediction_length=meta.horizon,
        context_length=meta.context_length,
        lags_sequence=list(meta.lags),
        distribution_output=DISTRIBUTION,
        scaling=TARGET_SCALING,
        num_time_features=N_TIME_FEATURES,
        num_dynamic_real_features=N_DYNAMIC_FEATURES,
        num_static_categorical_features=2,
        cardinality=cardinality,
        embedding_dimension=[min(MAX_EMBEDDING_DIM, (c + 1) // 2) for c in cardinality],
        d_model=hp.d_model,
        encoder_layers=N_LAYERS,
        decoder_layers=N_LAYERS,
        encoder_attention_heads=N_HEADS,
        decoder_attention_heads=N_HEADS,
        encoder_ffn_dim=2 * hp.d_model,
        decoder_ffn_dim=2 * hp.d_model,
        dropout=DROPOUT,
        encoder_layerdrop=LAYERDROP,
        decoder_layerdrop=LAYERDROP,
        num_parallel_samples=hp.num_samples,
    )
    return TimeSeriesTransformerForPrediction(config)


def grow_embeddings(model: TimeSeriesTransformerForPrediction, sizes: list[int]) -> None:
    """Add rows for stores or skus that are new since the warm-start model was saved."""
    embedders = model.model.embedder.embedders
    for k, size in enumerate(sizes):
        old = embedders[k]
        if size <= old.num_embeddings:
            continue
        new = torch.nn.Embedding(size, old.embedding_dim)
        with torch.no_grad():
            new.weight.normal_(0.0, model.config.init_std)
            new.weight[: old.num_embeddings] = old.weight
        embedders[k] = new
    model.config.cardinality = [e.num_embeddings for e in embedders]


def warm_start(
    init_dir: Path, history: pd.DataFrame, hp: ForecasterTraining, lags: list[int]
) -> tuple[TimeSeriesTransformerForPrediction, ForecasterMeta] | None:
    """The champion's model and metadata, vocabularies extended; None if incompatible."""
    old = ForecasterMeta.load(init_dir)
    model = TimeSeriesTransformerForPrediction.from_pretrained(init_dir / MODEL_SUBDIR)
    wanted = (hp.context_length, hp.horizon, lags, hp.d_model)
    found = (old.context_length, old.horizon, list(old.lags), model.config.d_model)
    if wanted != found:
        log.warning(
            "warm start skipped: %s holds context/horizon/lags/d_model %s, settings ask for %s",
            init_dir, found, wanted,
        )
        return None
    # keep the champion's indices and covariate scaling so its weights keep their meaning
    stores = old.stores + sorted(set(history["store_id"]) - set(old.stores))
    skus = old.skus + sorted(set(history["sku"]) - set(old.skus))
    meta = ForecasterMeta(
        stores=stores, skus=skus, context_length=old.context_length, horizon=old.horizon,
        lags=list(old.lags), period_days=old.period_days, price_log_mean=old.price_log_mean,
        price_log_std=old.price_log_std, num_samples=hp.num_samples,
    )
    grow_embeddings(model, [len(stores) + 1, len(skus) + 1])
    model.config.num_parallel_samples = hp.num_samples
    log.info(
        "warm start from %s (%d new stores, %d new skus)",
        init_dir, len(stores) - len(old.stores), len(skus) - len(old.skus),
    )
    return model, meta
