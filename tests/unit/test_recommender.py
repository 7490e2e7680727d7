"""Recommender family: MiniLM fine-tune on a tiny inline catalog, pyfunc round trip, scoring."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
mlflow = pytest.importorskip("mlflow")

from transformers import AutoTokenizer, BertModel  # noqa: E402

from pipeline.training.core import RunOptions
from pipeline.datasets import FamilyData, interaction_question, split_interactions  # noqa: E402
from pipeline.evaluation.baselines import popularity  # noqa: E402
from pipeline.evaluation.scoring import ranking_score  # noqa: E402
from pipeline.settings import RecommenderTraining  # noqa: E402
from pipeline.training import recommender as rec  # noqa: E402
from pipeline.encoders.select import resolve_base_model  # noqa: E402

TOP_K = 5
N_CUSTOMERS = 30
TITLES = [
    ("Organic Green Tea 20 Bags", "Tea"), ("Earl Grey Tea 50 Bags", "Tea"),
    ("Chamomile Herbal Tea", "Tea"), ("Espresso Coffee Beans 1kg", "Coffee"),
    ("Decaf Ground Coffee", "Coffee"), ("Instant Coffee Jar", "Coffee"),
    ("Whole Milk 1L", "Dairy"), ("Greek Yogurt Plain", "Dairy"), ("Cheddar Cheese Block", "Dairy"),
    ("Salted Butter 250g", "Dairy"), ("Sourdough Bread Loaf", "Bakery"), ("Butter Croissants 4 Pack", "Bakery"),
    ("Blueberry Muffins", "Bakery"), ("Bananas Bunch", "Fruit"), ("Fuji Apples 6 Pack", "Fruit"),
    ("Seedless Grapes", "Fruit"), ("Navel Oranges", "Fruit"), ("Baby Spinach Bag", "Vegetables"),
    ("Cherry Tomatoes", "Vegetables"), ("Carrots 1kg", "Vegetables"), ("Red Onions", "Vegetables"),
    ("Spaghetti Pasta 500g", "Pantry"), ("Basmati Rice 2kg", "Pantry"), ("Tomato Pasta Sauce", "Pantry"),
    ("Extra Virgin Olive Oil", "Pantry"), ("Rolled Oats", None), ("Peanut Butter Crunchy", "Pantry"),
    ("Dark Chocolate Bar 70%", "Snacks"), ("Salted Potato Chips", "Snacks"), ("Mixed Nuts 200g", "Snacks"),
    ("Sparkling Water 6 Pack", "Drinks"), ("Orange Juice 1L", "Drinks"), ("Cola 12 Cans", "Drinks"),
    ("Laundry Detergent", "Household"), ("Dish Soap Lemon", "Household"), ("Paper Towels 6 Rolls", "Household"),
    ("Toothpaste Mint", "Personal Care"), ("Shampoo Daily Care", "Personal Care"),
    # Two skus that share a title and category: their rows must start out identical.
    ("Whole Milk 1L", "Dairy"), ("Whole Milk 1L", "Dairy"),
]
TWIN_A, TWIN_B = "SKU038", "SKU039"


def _catalog() -> pd.DataFrame:
    return pd.DataFrame({
        "sku": [f"SKU{i:03d}" for i in range(len(TITLES))],
        "title": [t for t, _ in TITLES],
        "category": [c if c is not None else np.nan for _, c in TITLES],
    })


def _interactions() -> pd.DataFrame:
    """Customers walk the catalog in order (a learnable next item) with popular items mixed in."""
    rng = np.random.default_rng(7)
    rows = []
    start = pd.Timestamp("2024-01-01")
    for c in range(N_CUSTOMERS):
        first = int(rng.integers(0, 30))
        items = [(first + step) % 38 for step in range(int(rng.integers(5, 10)))]
        items.insert(1, 0)  # SKU000 is the most popular item
        if c % 2:
            items.insert(2, 1)
        for t, item in enumerate(items):
            rows.append((f"C{c:02d}", f"SKU{item:03d}", start + pd.Timedelta(hours=24 * c + t)))
    return pd.DataFrame(rows, columns=["customer_id", "sku", "timestamp"])


@pytest.fixture(scope="module")
def data() -> FamilyData:
    return split_interactions(_interactions(), _catalog())


@pytest.fixture(scope="module")
def hp() -> RecommenderTraining:
    return RecommenderTraining(num_layers=1, epochs=1, batch_size=8, max_seq_length=8, top_k=TOP_K)


@pytest.fixture(scope="module")
def model_dir(data: FamilyData, hp: RecommenderTraining, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("recommender") / "model_dir"
    history = rec.fine_tune(data, hp, RunOptions(), folder, None, seed=0)
    assert history.steps > 0 and len(history.epochs) == 1
    assert np.isfinite(history.epochs[0]["train_loss"])
    return folder


@pytest.fixture(scope="module")
def untrained_dir(data: FamilyData, hp: RecommenderTraining, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """epochs=0: the model exactly as initialised."""
    folder = tmp_path_factory.mktemp("recommender0") / "model_dir"
    rec.fine_tune(data, hp.model_copy(update={"epochs": 0}), RunOptions(), folder, None, seed=0)
    return folder


@pytest.fixture(scope="module")
def pyfunc(model_dir: Path, data: FamilyData, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("pyfunc") / "recommender"
    question = interaction_question(data)
    signature = mlflow.models.infer_signature(
        question, popularity(data, RecommenderTraining(top_k=TOP_K)), params={"top_k": TOP_K}
    )
    mlflow.pyfunc.save_model(
        str(path), python_model=rec.RecommenderModel(), artifacts={"model_dir": str(model_dir)},
        signature=signature, pip_requirements=["mlflow", "torch", "transformers"],
    )
    return mlflow.pyfunc.load_model(str(path))


def _seen(frame: pd.DataFrame) -> dict[str, set[str]]:
    return {c: set(g) for c, g in frame.groupby("customer_id")["sku"]}


def test_fine_tune_writes_model_dir(model_dir: Path, data: FamilyData, hp: RecommenderTraining) -> None:
    for name in ("model/config.json", "model/model.safetensors", "items.json", "head.safetensors", "recommender.json"):
        assert (model_dir / name).is_file(), name
    items = json.loads((model_dir / "items.json").read_text())
    assert set(items["skus"]) == set(data.catalog["sku"])
    counts = data.train["sku"].value_counts()
    assert items["popularity"][items["skus"].index("SKU000")] == counts["SKU000"]
    config = json.loads((model_dir / "recommender.json").read_text())
    assert config == {"max_seq_length": hp.max_seq_length, "top_k": TOP_K}
    bert = BertModel.from_pretrained(str(model_dir / "model"))
    assert bert.config.num_hidden_layers == 1
    assert bert.get_input_embeddings().weight.shape == (len(items["skus"]) + 2, 384)


def test_item_rows_start_from_title_encodings(untrained_dir: Path, model_dir: Path) -> None:
    skus = json.loads((untrained_dir / "items.json").read_text())["skus"]
    table = BertModel.from_pretrained(str(untrained_dir / "model")).get_input_embeddings().weight.detach()
    row = {sku: table[i + 2] for i, sku in enumerate(skus)}
    assert torch.equal(row[TWIN_A], row[TWIN_B])
    assert not torch.allclose(row["SKU000"], row["SKU001"])
    assert torch.count_nonzero(table[0]) == 0  # pad

    # Independent MiniLM sentence encoding of one item's text: the row is that direction.
    base = resolve_base_model()
    tokenizer = AutoTokenizer.from_pretrained(base)
    encoder = BertModel.from_pretrained(base).eval()
    with torch.inference_mode():
        tokens = tokenizer(["Espresso Coffee Beans 1kg (Coffee)", "Rolled Oats"], padding=True, return_tensors="pt")
        states = encoder(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).float()
        pooled = (states * mask).sum(1) / mask.sum(1)
    cosine = torch.nn.functional.cosine_similarity(pooled, torch.stack([row["SKU003"], row["SKU025"]]))
    assert cosine.min() > 0.999
    # Rescaled to the pretrained table's spread, not unit length.
    pretrained_std = float(encoder.get_input_embeddings().weight.detach().std())
    assert abs(float(table[2:].std()) - pretrained_std) / pretrained_std < 0.05
    # The kept layer is MiniLM's first layer.
    kept = BertModel.from_pretrained(str(untrained_dir / "model")).encoder.layer[0].attention.self.query.weight
    assert torch.equal(kept, encoder.encoder.layer[0].attention.self.query.weight)

    trained = BertModel.from_pretrained(str(model_dir / "model")).get_input_embeddings().weight.detach()
    assert not torch.equal(trained, table)  # training moved the table


def test_warm_start_keeps_rows_and_appends_new_items(
    model_dir: Path, data: FamilyData, hp: RecommenderTraining, tmp_path: Path
) -> None:
    extra = pd.DataFrame({"sku": ["NEW001"], "title": ["Oat Milk 1L"], "category": ["Dairy"]})
    catalog = pd.concat([data.catalog, extra])
    grown = FamilyData(data.train, data.holdout, catalog.reset_index(drop=True))
    rec.fine_tune(grown, hp.model_copy(update={"epochs": 0}), RunOptions(), tmp_path / "warm", model_dir, seed=0)
    old = json.loads((model_dir / "items.json").read_text())["skus"]
    new = json.loads((tmp_path / "warm" / "items.json").read_text())["skus"]
    assert new == old + ["NEW001"]
    before = BertModel.from_pretrained(str(model_dir / "model")).get_input_embeddings().weight
    after = BertModel.from_pretrained(str(tmp_path / "warm" / "model")).get_input_embeddings().weight
    assert torch.equal(after[: len(old) + 2], before)
    assert torch.count_nonzero(after[-1]) > 0


def test_pyfunc_round_trip_ranks_unseen_items(pyfunc, data: FamilyData) -> None:
    question = interaction_question(data)
    assert set(question["customer_id"]) == set(data.holdout["customer_id"])
    out = pyfunc.predict(question)
    assert list(out.columns) == ["customer_id", "rank", "sku", "score"]
    assert set(out["customer_id"]) == set(data.holdout["customer_id"])
    seen = _seen(question)
    vocabulary = set(data.catalog["sku"])
    for customer, group in out.groupby("customer_id"):
        assert group["rank"].tolist() == list(range(1, TOP_K + 1))
        assert group["sku"].is_unique
        assert not set(group["sku"]) & seen[customer]
        assert set(group["sku"]) <= vocabulary
        assert group["score"].is_monotonic_decreasing

    fewer = pyfunc.predict(question, params={"top_k": 2})
    assert fewer.groupby("customer_id")["rank"].max().eq(2).all()
    assert len(fewer) == 2 * len(set(question["customer_id"]))


def test_unknown_history_gets_popularity_fallback(pyfunc, data: FamilyData) -> None:
    question = pd.DataFrame({
        "customer_id": ["NEWBIE", "NEWBIE", "C00"],
        "sku": ["NOPE1", "NOPE2", "SKU000"],
        "timestamp": pd.to_datetime(["2024-03-01", "2024-03-02", "2024-03-01"]),
    })
    out = pyfunc.predict(question)
    newbie = out[out["customer_id"] == "NEWBIE"]
    counts = data.train["sku"].value_counts()
    assert newbie["rank"].tolist() == list(range(1, TOP_K + 1))
    assert counts[newbie["sku"]].tolist() == sorted(counts, reverse=True)[:TOP_K]
    assert newbie["sku"].iloc[0] == "SKU000"
    known = out[out["customer_id"] == "C00"]
    assert len(known) == TOP_K and "SKU000" not in set(known["sku"])


def test_popularity_baseline_excludes_seen_items(data: FamilyData) -> None:
    out = popularity(data, RecommenderTraining(top_k=TOP_K))
    seen = _seen(interaction_question(data))
    assert set(out["customer_id"]) == set(data.holdout["customer_id"])
    counts = data.train["sku"].value_counts()
    for customer, group in out.groupby("customer_id"):
        assert group["rank"].tolist() == list(range(1, TOP_K + 1))
        assert not set(group["sku"]) & seen[customer]
        unseen = counts[~counts.index.isin(seen[customer])]
        assert counts[group["sku"]].tolist() == sorted(unseen, reverse=True)[:TOP_K]
    # Everyone in holdout has bought SKU000, so nobody is offered it.
    assert "SKU000" not in set(out["sku"])


def test_score_hit_rate_and_misses(data: FamilyData) -> None:
    holdout = data.holdout
    n = len(holdout)
    filler = [s for s in data.catalog["sku"] if s not in set(holdout["sku"])][:2]
    first = pd.DataFrame({
        "customer_id": np.repeat(holdout["customer_id"].to_numpy(), 3),
        "rank": np.tile([1, 2, 3], n),
        "sku": np.column_stack([holdout["sku"], [filler[0]] * n, [filler[1]] * n]).ravel(),
        "score": 1.0,
    })
    perfect = ranking_score(first, data, RecommenderTraining(top_k=3))
    assert perfect["hr_at_3"] == 1.0 and perfect["ndcg_at_3"] == pytest.approx(1.0)
    assert perfect["coverage_at_3"] == pytest.approx(len(set(first["sku"])) / len(data.catalog))

    second = first.assign(rank=np.tile([2, 1, 3], n))
    assert ranking_score(second, data, RecommenderTraining(top_k=3))["ndcg_at_3"] == pytest.approx(1 / np.log2(3))

    dropped = first[first["customer_id"] != holdout["customer_id"].iloc[0]]
    assert ranking_score(dropped, data, RecommenderTraining(top_k=3))["hr_at_3"] == pytest.approx((n - 1) / n)
    assert ranking_score(first, data, RecommenderTraining(top_k=1))["hr_at_1"] == 1.0


def test_masking_never_touches_padding_and_poses_next_item() -> None:
    rng = np.random.default_rng(0)
    windows = [np.arange(2, 2 + n) for n in (1, 3, 8, 8)] * 50
    batch = rec._mask_batch(windows, 8, 0.2, rng)
    inputs, labels = batch["input_ids"], batch["labels"]
    masked = labels != -100
    assert torch.all(inputs[masked] == 1)  # the mask item
    assert torch.all(labels[masked] >= 2)  # never pad or mask as a target
    assert not torch.any(masked & (inputs == 0))
    assert masked.any(dim=1).all()
    assert 0.3 < masked[:, -1].float().mean() < 0.9  # the next-item question is asked often
    assert torch.equal(torch.where(masked, labels, inputs)[:, -1], torch.tensor([w[-1] for w in windows]))
