"""Sequence recommender: a BERT4Rec-style fine-tune of the pretrained MiniLM encoder.

The first ``num_layers`` MiniLM layers read a customer's latest items (left-padded, time
order). The word-embedding table is replaced by an item table (pad=0, mask=1, then one row
per sku) initialised from MiniLM sentence encodings of the item titles, so items with
similar titles start close together. Training is masked-item prediction; scores are the
dot product of the output state with the same (tied) item table plus a per-item bias.
Serving appends a mask after the history and ranks items at that position.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import mlflow
import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, BertModel

from pipeline.datasets import FamilyData, interaction_validation
from pipeline.evaluation.baselines import empty_ranking, popular_items, seen_items
from pipeline.settings import RecommenderTraining
from pipeline.training.core import Batch, LoopConfig, RunOptions, TrainHistory, run_training, seed_everything
from pipeline.encoders.select import resolve_base_model

log = logging.getLogger(__name__)

PAD, MASK = 0, 1
N_SPECIAL = 2
IGNORE = -100
MODEL_SUBDIR = "model"
ITEMS_FILE = "items.json"
HEAD_FILE = "head.safetensors"
CONFIG_FILE = "recommender.json"
# Share of training sequences whose last position is always masked: that is exactly the
# question asked at serving time (history, then a mask), which random masking alone rarely
# poses.
LAST_MASK_FRACTION = 0.5
TITLE_BATCH = 128
TITLE_MAX_LENGTH = 48
PREDICT_BATCH = 256


# ---------------------------------------------------------------------------- model


class ItemScorer(torch.nn.Module):
    """BertModel over item ids; logits = hidden @ item_table.T + bias (tied weights)."""

    def __init__(self, bert: BertModel, bias: torch.Tensor) -> None:
        super().__init__()
        self.bert = bert
        if getattr(bert, "pooler", None) is not None:
            bert.pooler.requires_grad_(False)  # unused: items are scored from the token states
        self.bias = torch.nn.Parameter(bias.clone().float())

    @property
    def item_table(self) -> torch.Tensor:
        return self.bert.get_input_embeddings().weight

    def hidden(self, input_ids: torch.Tensor) -> torch.Tensor:
        attention_mask = (input_ids != PAD).long()
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.item_table.T + self.bias

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The masked-item loss: cross-entropy of the masked positions' items."""
        selected = labels != IGNORE
        return torch.nn.functional.cross_entropy(self.logits(self.hidden(input_ids)[selected]), labels[selected])


@contextlib.contextmanager
def _quiet_load_report() -> Iterator[None]:
    """Dropping the upper layers is intended; transformers reports them as unexpected keys."""
    logger = logging.getLogger("transformers.modeling_utils")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def encode_titles(texts: Sequence[str], base_model: str, device: torch.device) -> torch.Tensor:
    """MiniLM sentence embeddings (mean pooling over tokens, L2-normalised), shape (n, hidden)."""
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    encoder = BertModel.from_pretrained(base_model).to(device).eval()
    # Batches of similar length waste little compute on padding.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.zeros(len(texts), encoder.config.hidden_size)
    with torch.inference_mode():
        for start in range(0, len(order), TITLE_BATCH):
            rows = order[start : start + TITLE_BATCH]
            tokens = tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True,
                max_length=TITLE_MAX_LENGTH, return_tensors="pt",
            ).to(device)
            states = encoder(**tokens).last_hidden_state
            weights = tokens["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            out[rows] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu()
    return out


def _item_texts(skus: Sequence[str], catalog: pd.DataFrame | None) -> list[str]:
    """Title, plus category when known; the sku itself for items missing from the catalog."""
    titles: dict[str, str] = {}
    if catalog is not None and len(catalog):
        cat = catalog.drop_duplicates("sku").set_index("sku")
        categories = cat["category"] if "category" in cat else pd.Series(index=cat.index, dtype=object)
        for sku, title, category in zip(cat.index, cat["title"], categories.reindex(cat.index)):
            text = str(title) if pd.notna(title) and str(title).strip() else str(sku)
            if pd.notna(category) and str(category).strip():
                text = f"{text} ({category})"
            titles[str(sku)] = text
    return [titles.get(sku, sku) for sku in skus]


def _vocabulary(data: FamilyData, known: Sequence[str]) -> list[str]:
    """Known skus keep their rows (warm start); new catalog or train skus are appended."""
    seen = set(known)
    candidates: set[str] = set(data.train["sku"].astype(str))
    if data.catalog is not None:
        candidates |= set(data.catalog["sku"].astype(str))
    return list(known) + sorted(candidates - seen)


def _build_model(
    data: FamilyData, hp: RecommenderTraining, device: torch.device, init_dir: Path | None
) -> tuple[ItemScorer, list[str]]:
    base = resolve_base_model(getattr(hp, "base_model", ""))
    if init_dir is not None:
        bert = BertModel.from_pretrained(str(Path(init_dir) / MODEL_SUBDIR))
        known = json.loads((Path(init_dir) / ITEMS_FILE).read_text())["skus"]
        old_bias = load_file(str(Path(init_dir) / HEAD_FILE))["bias"]
        if bert.config.num_hidden_layers != hp.num_layers:
            log.warning(
                "warm start keeps the %d layers of %s (settings ask for %d)",
                bert.config.num_hidden_layers, init_dir, hp.num_layers,
            )
    else:
        with _quiet_load_report():
            bert = BertModel.from_pretrained(base, num_hidden_layers=hp.num_layers)
        log.info("fine-tuning the first %d MiniLM layers of %s", hp.num_layers, base)
        known, old_bias = [], torch.zeros(N_SPECIAL)
    skus = _vocabulary(data, known)
    old_table = bert.get_input_embeddings().weight.detach()
    table = torch.zeros(len(skus) + N_SPECIAL, old_table.shape[1])
    if init_dir is not None:
        table[: len(known) + N_SPECIAL] = old_table[: len(known) + N_SPECIAL]
        target_std = float(old_table[N_SPECIAL:].std())
    else:
        # The pretrained [MASK] token is a sensible start for the mask item.
        mask_token = AutoTokenizer.from_pretrained(base).mask_token_id
        table[MASK] = old_table[mask_token]
        target_std = float(old_table.std())
    new = skus[len(known) :]
    if new:
        started = time.perf_counter()
        encoded = encode_titles(_item_texts(new, data.catalog), base, device)
        # Unit vectors are ~1/sqrt(hidden) per coordinate; the layers expect the scale of
        # the table they were pretrained with.
        encoded = encoded * (target_std / max(float(encoded.std()), 1e-12))
        table[len(known) + N_SPECIAL :] = encoded
        log.info("encoded %d item titles in %.1f s", len(new), time.perf_counter() - started)
    embedding = torch.nn.Embedding.from_pretrained(table, freeze=False, padding_idx=PAD)
    bert.set_input_embeddings(embedding)
    bert.config.vocab_size = table.shape[0]
    bert.config.pad_token_id = PAD
    bias = torch.zeros(table.shape[0])
    bias[N_SPECIAL : len(old_bias)] = old_bias[N_SPECIAL:]
    return ItemScorer(bert, bias), skus


# ------------------------------------------------------------------------- training


def _histories(frame: pd.DataFrame, index: dict[str, int]) -> dict[str, np.ndarray]:
    """Each customer's item ids in time order (unknown skus dropped)."""
    ordered = frame.sort_values(["customer_id", "timestamp"], kind="stable")
    ids = ordered["sku"].astype(str).map(index)
    ordered = ordered.assign(item=ids).dropna(subset=["item"])
    return {
        str(customer): group.to_numpy(dtype=np.int64)
        for customer, group in ordered.groupby("customer_id", sort=False)["item"]
    }


def _windows(histories: dict[str, np.ndarray], length: int, rng: np.random.Generator) -> list[np.ndarray]:
    """About one pass over every customer's history: the latest window, then random crops
    so long histories are seen in full (ceil(n / length) windows per customer)."""
    windows = []
    for items in histories.values():
        n = len(items)
        windows.append(items[-length:])
        for _ in range(math.ceil(n / length) - 1):
            end = int(rng.integers(2, n + 1))
            windows.append(items[max(0, end - length) : end])
    return windows


def _mask_batch(
    windows: Sequence[np.ndarray], length: int, probability: float, rng: np.random.Generator
) -> Batch:
    ids = np.full((len(windows), length), PAD, dtype=np.int64)
    for row, items in enumerate(windows):
        ids[row, length - len(items) :] = items
    real = ids != PAD
    masked = real & (rng.random(ids.shape) < probability)
    masked[:, -1] |= rng.random(len(windows)) < LAST_MASK_FRACTION
    # Every sequence must teach something.
    none = ~masked.any(axis=1)
    masked[none, -1] = True
    labels = np.where(masked, ids, IGNORE)
    inputs = np.where(masked, MASK, ids)
    return {"input_ids": torch.from_numpy(inputs), "labels": torch.from_numpy(labels)}


def _masked_item_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    return model(batch["input_ids"], batch["labels"])  # through forward: DDP's hooks see it


def fine_tune(
    data: FamilyData,
    hp: RecommenderTraining,
    run: RunOptions,
    model_dir: Path,
    init_dir: Path | None,
    seed: int,
) -> TrainHistory:
    """Fine-tune MiniLM as a masked-item model and write everything the pyfunc needs.

    Each training customer's last training interaction that the family's validation window
    holds out (:func:`pipeline.datasets.interaction_validation`) is not trained on, so blends
    can choose their weight on it; the items' rows and popularity come from all of train."""
    seed_everything(seed)
    model_dir = Path(model_dir)
    model, skus = _build_model(data, hp, run.device, Path(init_dir) if init_dir else None)
    index = {sku: i + N_SPECIAL for i, sku in enumerate(skus)}
    windows = interaction_validation(data, hp)
    histories = _histories(windows[0].train if windows else data.train, index)
    length = hp.max_seq_length
    log.info(
        "recommender: %d items, %d customers, %d interactions, %d layers",
        len(skus), len(histories), sum(map(len, histories.values())), model.bert.config.num_hidden_layers,
    )

    def make_batches(epoch: int) -> list[Batch]:
        rng = np.random.default_rng([seed, epoch])
        windows = _windows(histories, length, rng)
        order = rng.permutation(len(windows))
        return [
            _mask_batch([windows[i] for i in order[s : s + hp.batch_size]], length, hp.mask_probability, rng)
            for s in range(0, len(order), hp.batch_size)
        ]

    cfg = LoopConfig(
        epochs=hp.epochs, learning_rate=hp.learning_rate,
        weight_decay=hp.weight_decay, warmup_ratio=hp.warmup_ratio,
    )
    history = run_training(model, make_batches, _masked_item_loss, cfg, run)
    _save(model, skus, data, hp, model_dir)
    return history


def _save(model: ItemScorer, skus: list[str], data: FamilyData, hp: RecommenderTraining, model_dir: Path) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").eval()
    model.bert.save_pretrained(str(model_dir / MODEL_SUBDIR))
    save_file({"bias": model.bias.detach().contiguous()}, str(model_dir / HEAD_FILE))
    counts = data.train["sku"].astype(str).value_counts()
    items = {"skus": skus, "popularity": [int(counts.get(sku, 0)) for sku in skus]}
    (model_dir / ITEMS_FILE).write_text(json.dumps(items))
    config = {"max_seq_length": hp.max_seq_length, "top_k": hp.top_k}
    (model_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2))


# -------------------------------------------------------------------------- serving


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """Top-k next items per customer from their history; popularity when nothing is known."""

    def load_context(self, context: Any) -> None:
        folder = Path(context.artifacts["model_dir"])
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        bert = BertModel.from_pretrained(str(folder / MODEL_SUBDIR))
        bias = load_file(str(folder / HEAD_FILE))["bias"]
        self.model = ItemScorer(bert, bias).to(self.device).eval()
        items = json.loads((folder / ITEMS_FILE).read_text())
        self.skus = np.asarray(items["skus"], dtype=object)
        self.index = {sku: i + N_SPECIAL for i, sku in enumerate(items["skus"])}
        popularity = np.asarray(items["popularity"], dtype=np.float64)
        self.popular = np.argsort(-popularity, kind="stable")  # positions in self.skus
        self.popularity = popularity
        config = json.loads((folder / CONFIG_FILE).read_text())
        self.max_seq_length = int(config["max_seq_length"])
        self.top_k = int(config["top_k"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        top_k = int((params or {}).get("top_k") or self.top_k)
        frame = model_input[["customer_id", "sku", "timestamp"]].copy()
        frame["customer_id"] = frame["customer_id"].astype(str)
        frame["sku"] = frame["sku"].astype(str)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"])
        customers = list(dict.fromkeys(frame["customer_id"]))
        histories = _histories(frame, self.index)
        seen = seen_items(frame)
        known = [c for c in customers if len(histories.get(c, ())) > 0]
        parts = []
        for start in range(0, len(known), PREDICT_BATCH):
            parts.append(self._rank_batch(known[start : start + PREDICT_BATCH], histories, top_k))
        unknown = [c for c in customers if len(histories.get(c, ())) == 0]
        if unknown:
            parts.append(popular_items(unknown, seen, self.skus[self.popular], self.popularity[self.popular], top_k))
        if not parts:
            return empty_ranking()
        out = pd.concat(parts, ignore_index=True)
        order = {c: i for i, c in enumerate(customers)}
        out = out.sort_values(["customer_id", "rank"], key=lambda s: s.map(order) if s.name == "customer_id" else s)
        return out.reset_index(drop=True)

    def _rank_batch(self, customers: list[str], histories: dict[str, np.ndarray], top_k: int) -> pd.DataFrame:
        length = self.max_seq_length
        ids = np.full((len(customers), length), PAD, dtype=np.int64)
        for row, customer in enumerate(customers):
            items = histories[customer][-(length - 1) :] if length > 1 else histories[customer][:0]
            ids[row, length - 1 - len(items) : length - 1] = items
        ids[:, -1] = MASK
        with torch.inference_mode():
            inputs = torch.from_numpy(ids).to(self.device)
            scores = self.model.logits(self.model.hidden(inputs)[:, -1]).float()
            scores[:, :N_SPECIAL] = -torch.inf
            # Everything in the customer's history (also beyond the window) is excluded.
            rows = [np.full(len(histories[c]), r) for r, c in enumerate(customers)]
            cols = [histories[c] for c in customers]
            scores[torch.from_numpy(np.concatenate(rows)), torch.from_numpy(np.concatenate(cols))] = -torch.inf
            k = min(top_k, scores.shape[1] - N_SPECIAL)
            values, positions = scores.topk(k, dim=1)
        values, positions = values.cpu().numpy(), positions.cpu().numpy()
        keep = np.isfinite(values)
        return pd.DataFrame({
            "customer_id": np.repeat(np.asarray(customers, dtype=object), k)[keep.ravel()],
            "rank": np.tile(np.arange(1, k + 1), len(customers))[keep.ravel()],
            "sku": self.skus[(positions - N_SPECIAL).clip(min=0)].ravel()[keep.ravel()],
            "score": values.ravel()[keep.ravel()].astype(np.float64),
        })
