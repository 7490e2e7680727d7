"""Review-sentiment classifier: the MiniLM encoder fine-tuned with a classification head.

Follows the BERT review-sentiment recipe: AdamW with weight decay, a linear warmup then
decay, a few epochs at a small learning rate. Batches are bucketed by length and
tokenised once, so no step pays for padding it does not need.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from pipeline.datasets import FamilyData, review_validation
from pipeline.evaluation.metrics import classification_metrics
from pipeline.settings import SentimentTraining, load_settings
from pipeline.training.core import (
    LoopConfig,
    RunOptions,
    TrainHistory,
    augment_tokens,
    cpu_has_fast_bf16,
    run_training,
    seed_everything,
)
from pipeline.encoders.select import resolve_base_model

log = logging.getLogger(__name__)

# "float32" (fp32) or "bfloat16" (bf16) forces the precision the pyfunc scores in; unset or "auto": as below
PRECISION_VARIABLE = "RETAIL_SCORING_PRECISION"
PRECISIONS = ("bfloat16", "float32")
# a vocabulary larger than this (a multilingual one) keeps its pretrained word embeddings
FROZEN_VOCABULARY = 100_000
# max_length 0: the length that this share of the training texts fit in, at most MAX_LENGTH
LENGTH_QUANTILE = 0.95
LENGTH_SAMPLE = 5_000
MAX_LENGTH = 512


def scoring_precision(device: str | torch.device | None = None) -> str:
    """The precision a sentiment pyfunc loaded now scores in on ``device`` of this host
    (None: the device it picks, the GPU when there is one): "bfloat16" on a GPU and on a CPU
    that computes it natively (AMX or AVX512-BF16), else "float32", unless
    RETAIL_SCORING_PRECISION forces one. The labels are nearly always the same (998 of 1,000
    Amazon test reviews in tests/integration/test_scoring_precision.py), but a gate metric can
    move by a row or two, so the evaluation records it."""
    forced = load_settings().scoring_precision  # a value it does not know: a ValueError naming it
    forced = {"bf16": "bfloat16", "fp32": "float32"}.get(forced, forced)
    if forced in PRECISIONS:
        return forced
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "bfloat16" if torch.device(device).type == "cuda" or cpu_has_fast_bf16() else "float32"


# fp32 scoring pads each batch's width up to a multiple of this: at most max_length / 16
# distinct batch shapes, so the allocator reuses its blocks (benchmarks/results/
# scoring_memory_padded_16k.md: peak 974 MB instead of 1,713 MB for 16,000 reviews on 2 CPU
# cores). In fp32 the 1,000 test reviews got the same labels (probabilities within 1.2e-7); in
# bf16 the wider matmuls round differently (3 of 1,000 labels moved on a fresh head, where
# probabilities sit near 0.5), so bf16 scoring keeps each batch at its own width.
SCORING_PAD_MULTIPLE = 16


def _bucketed_batches(
    tokenizer: Any, texts: list[str], labels: list[int] | None, max_length: int, batch_size: int,
    pad_multiple: int = 1,
) -> list[dict[str, torch.Tensor]]:
    """Tokenise once, sort by length, and pad each batch only to its own longest row
    (rounded up to a multiple of ``pad_multiple``; the extra columns are masked out)."""
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    order = np.argsort([len(ids) for ids in encoded], kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in rows)
        width += -width % pad_multiple
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, : len(encoded[i])] = torch.tensor(encoded[i])
            mask[r, : len(encoded[i])] = 1
        batch = {"input_ids": ids, "attention_mask": mask, "row": torch.tensor(rows)}
        if labels is not None:
            batch["labels"] = torch.tensor([labels[i] for i in rows])
        batches.append(batch)
    return batches


def length_from_data(tokenizer: Any, texts: list[str], quantile: float = LENGTH_QUANTILE) -> int:
    """The token length that ``quantile`` of the texts fit in (from a sample of at most
    LENGTH_SAMPLE), at most MAX_LENGTH and the encoder's own limit: longer reviews are cut,
    and batches of short ones stay short (they are padded only to their own longest row)."""
    sample = texts if len(texts) <= LENGTH_SAMPLE else \
        [texts[i] for i in np.random.default_rng(0).choice(len(texts), LENGTH_SAMPLE, replace=False)]
    lengths = [len(ids) for ids in tokenizer(sample, truncation=False, verbose=False)["input_ids"]] or [MAX_LENGTH]
    limit = min(MAX_LENGTH, getattr(tokenizer, "model_max_length", MAX_LENGTH) or MAX_LENGTH)
    length = int(min(limit, max(16, np.ceil(np.quantile(lengths, quantile)))))
    log.info("max_length %d: %.0f%% of %d training texts fit in it (median %d tokens)", length,
             100 * float(np.mean(np.array(lengths) <= length)), len(sample), int(np.median(lengths)))
    return length


class MeanPoolClassifier(torch.nn.Module):
    """The encoder's mean-pooled token states (what the sentence encoder was trained to
    produce) feed a linear head; far quicker to fine-tune than BERT's [CLS] pooler."""

    def __init__(self, encoder: torch.nn.Module, num_labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler.requires_grad_(False)  # unused: the head reads the mean-pooled states
        self.dropout = torch.nn.Dropout(0.1)
        self.head = torch.nn.Linear(encoder.config.hidden_size, num_labels)

    def set_dropout(self, probability: float | None) -> None:
        """Every dropout of the encoder and the head at ``probability`` (None: as loaded)."""
        if probability is not None:
            for module in self.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = probability

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))

    def save(self, folder: Path, tokenizer: Any) -> None:
        from safetensors.torch import save_file

        self.encoder.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(folder / "head.safetensors"))

    @classmethod
    def load(cls, folder: Path, num_labels: int) -> "MeanPoolClassifier":
        from safetensors.torch import load_file
        from transformers import AutoModel

        model = cls(AutoModel.from_pretrained(folder), num_labels)
        model.head.load_state_dict(load_file(str(folder / "head.safetensors")))
        return model


def fine_tune(
    data: FamilyData, hp: SentimentTraining, run: RunOptions, model_dir: Path,
    init_dir: Path | None, seed: int,
) -> TrainHistory:
    """Fine-tune the encoder (or ``init_dir``'s model) on labelled reviews; save to ``model_dir``.

    The latest ``hp.validation_fraction`` of the training rows (the family's validation
    window, :func:`pipeline.datasets.review_validation`) are never trained on: blends choose
    their weight on them, and with more than one epoch they choose the epoch (the best
    epoch's weights are kept)."""
    from transformers import AutoModel, AutoTokenizer

    seed_everything(seed)
    classes = sorted(data.train["label"].astype(str).unique())
    if len(classes) < 2:
        raise ValueError(f"sentiment training needs at least two label values, got {classes}")
    windows = review_validation(data, hp)
    train, val = (windows[0].train, windows[0].holdout) if windows else (data.train, data.train.iloc[:0])
    texts = train["text"].astype(str).tolist()
    if init_dir is not None:
        if json.loads((init_dir / "config.json").read_text())["classes"] != classes:
            raise ValueError("the warm-start model was trained on other label values")
        tokenizer = AutoTokenizer.from_pretrained(init_dir / "model")
        model = MeanPoolClassifier.load(init_dir / "model", len(classes))
    else:
        source = resolve_base_model(hp.base_model, texts)
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = MeanPoolClassifier(AutoModel.from_pretrained(source), len(classes))
    embeddings = model.encoder.get_input_embeddings()
    if embeddings.num_embeddings > FROZEN_VOCABULARY:
        # a multilingual vocabulary's embeddings are most of the model (96 M of 118 M weights in
        # multilingual-e5-small) and a retailer's reviews touch few of its rows: left as
        # pretrained, they cost the optimizer nothing
        embeddings.requires_grad_(False)
        log.info("word embeddings frozen: %s tokens in the vocabulary", f"{embeddings.num_embeddings:,}")
    model.set_dropout(hp.dropout)
    max_length = hp.max_length or length_from_data(tokenizer, texts)
    index = {c: i for i, c in enumerate(classes)}

    def collate(frame: pd.DataFrame) -> list[dict[str, torch.Tensor]]:
        return _bucketed_batches(tokenizer, frame["text"].astype(str).tolist(),
                                 [index[c] for c in frame["label"].astype(str)], max_length, hp.batch_size)

    # one epoch has no epoch to choose: its validation rows are not scored
    batches, val_batches = collate(train), collate(val) if len(val) and hp.epochs > 1 else []
    val_truth = val["label"].astype(str).tolist()

    def epoch_batches(epoch: int) -> list[dict[str, torch.Tensor]]:
        # a pure function of the epoch: a run resumed from a checkpoint sees the same order
        generator = torch.Generator().manual_seed(seed * 1_000 + epoch)
        order = torch.randperm(len(batches), generator=generator).tolist()
        return [augment_tokens(batches[i], hp.token_dropout, generator, tokenizer.all_special_ids) for i in order]

    # inverse-frequency class weights keep a short fine-tune from settling on the majority class
    counts = train["label"].astype(str).value_counts()
    weights = torch.tensor([len(train) / (len(classes) * counts.get(c, 1)) for c in classes], dtype=torch.float32)

    def loss_fn(net: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # the mean over rows of the weighted losses: data-parallel ranks average to the same value
        logits = net(batch["input_ids"], batch["attention_mask"])
        losses = torch.nn.functional.cross_entropy(logits.float(), batch["labels"], reduction="none")
        return (losses * weights.to(logits.device)[batch["labels"]]).mean()

    def validate(net: torch.nn.Module) -> float:
        """1 - macro-F1 of the validation rows: the gate's metric, not the loss, picks the epoch
        (the loss of a model growing more confident rises while its labels still improve)."""
        predicted = np.zeros(len(val), dtype=np.int64)
        for batch in val_batches:
            logits = net(batch["input_ids"].to(run.device), batch["attention_mask"].to(run.device))
            predicted[batch["row"].numpy()] = logits.argmax(-1).cpu().numpy()
        return 1.0 - classification_metrics(val_truth, [classes[i] for i in predicted])["macro_f1"]

    cfg = LoopConfig(hp.epochs, hp.learning_rate, hp.weight_decay, hp.warmup_ratio,
                     early_stopping_patience=hp.early_stopping_patience, layer_decay=hp.layer_decay,
                     validation_name="val_error")
    history = run_training(model, epoch_batches, loss_fn, cfg, run, validate if val_batches else None)
    model_dir.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save(model_dir / "model", tokenizer)
    (model_dir / "config.json").write_text(json.dumps({"classes": classes, "max_length": max_length}))
    return history


class SentimentModel(mlflow.pyfunc.PythonModel):
    """pyfunc: a frame with a ``text`` column in; label, score and p_<class> out (the
    frame's ``attrs["scoring_precision"]`` says which precision scored it)."""

    def load_context(self, context: Any) -> None:
        from transformers import AutoTokenizer

        folder = Path(context.artifacts["model_dir"])
        self.config = json.loads((folder / "config.json").read_text())
        self.tokenizer = AutoTokenizer.from_pretrained(folder / "model")
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = MeanPoolClassifier.load(folder / "model", len(self.config["classes"])).to(self.device).eval()
        # bf16 on a GPU, and on a CPU that computes it natively: far faster, nearly always the same labels
        self.scoring_precision = scoring_precision(self.device)

    @property
    def bf16(self) -> bool:
        return self.scoring_precision == "bfloat16"

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        texts = model_input["text"].fillna("").astype(str).tolist()
        classes = self.config["classes"]
        probs = np.zeros((len(texts), len(classes)), dtype=np.float32)
        # no text (a day without unlabelled reviews): nothing to tokenise, an empty answer
        batches = _bucketed_batches(self.tokenizer, texts, None, self.config["max_length"], 64,
                                    1 if self.bf16 else SCORING_PAD_MULTIPLE) if texts else []
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            for batch in batches:
                logits = self.model(batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device))
                probs[batch["row"].numpy()] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        out = pd.DataFrame({f"p_{c}": probs[:, i] for i, c in enumerate(classes)})
        out.insert(0, "score", probs.max(axis=1) if len(texts) else np.zeros(0))
        out.insert(0, "label", [classes[i] for i in probs.argmax(axis=1)] if len(texts) else [])
        out.attrs["scoring_precision"] = self.scoring_precision
        return out

