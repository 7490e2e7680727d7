"""Ranking baselines: popularity (the reference baseline), item-kNN and EASE (fits and
predicts the classic recommender candidates reuse), and ranking by item scores."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from pipeline.datasets import FamilyData, interaction_question, split_interactions

log = logging.getLogger(__name__)

RANKING_COLUMNS = ["customer_id", "rank", "sku", "score"]


def popular_items(
    customers: Sequence[str], seen: dict[str, set[str]], ranked: np.ndarray, counts: np.ndarray, top_k: int
) -> pd.DataFrame:
    """The most popular items not already in each customer's history; score = count.
    Also what the recommender serves a customer it knows nothing about."""
    rows: list[tuple[str, int, str, float]] = []
    for customer in customers:
        have = seen.get(customer, set())
        rank = 0
        for sku, count in zip(ranked, counts):
            if rank == top_k:
                break
            if sku in have:
                continue
            rank += 1
            rows.append((customer, rank, str(sku), float(count)))
    return pd.DataFrame(rows, columns=RANKING_COLUMNS) if rows else empty_ranking()


def empty_ranking() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": pd.Series(dtype=object), "rank": pd.Series(dtype=np.int64),
        "sku": pd.Series(dtype=object), "score": pd.Series(dtype=np.float64),
    })


def popularity(data: FamilyData, hp: Any) -> pd.DataFrame:
    """Most-interacted train items, minus what each holdout customer already has."""
    skus, counts = item_popularity(data.train)
    customers = holdout_customers(data)
    return popular_items(customers, seen_items(interaction_question(data)), skus, counts, hp.top_k)


# Item-kNN's candidate neighbourhood sizes (each item keeps its k most similar items), the
# best on a validation split carved from train; small k cuts the long tail of weak, noisy
# co-occurrences, large k approaches plain cosine kNN. (On the bundled MovieLens-100k the
# validation split prefers 10 to 20: NDCG@10 0.062 / 0.058 against 0.056 at 100.)
KNN_NEIGHBOURS = (10, 20, 50, 100, 200)
KNN_DEFAULT_NEIGHBOURS = 20  # with no customer to validate on
# EASE's candidate L2 weights (Steck 2019 found 200 to 1,000 best on his three data sets)
EASE_LAMBDAS = (10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0)
EASE_DEFAULT_LAMBDA = 500.0  # with no customer to validate on (Steck's MovieLens-20M choice)
# EASE inverts a dense items x items matrix: items^2 float32 memory (100 MB at 5,000 items,
# two or three such matrices at once) and items^3 time: measured on a shared 2-core CPU,
# 0.5 s at MovieLens' 1,682 items, 10 s at 5,000, 70 s at 10,000, and the lambda search
# fits eight times. Only the most popular this many items are modelled; items beyond them
# are never recommended by EASE (a long tail that a top 10 rarely reaches anyway).
EASE_MAX_ITEMS = 5_000
# customers x items scored at once (float64: 32 MB a batch), bounding memory on big catalogs
SCORE_BATCH_CELLS = 4_000_000

# ``ranker(inputs)`` -> a function from one candidate value of a baseline's setting to its
# ranking of ``inputs``' holdout customers; ``fitter(items)`` -> a function from that value
# to the fitted model (what can be computed once per data set, such as EASE's Gram matrix,
# is computed in ``fitter(items)``)
Ranker = Callable[["RankingInputs"], Callable[[float], pd.DataFrame]]
Fitter = Callable[["Interactions"], Callable[[float], "ItemModel"]]


@dataclass(frozen=True)
class Interactions:
    """What an item-item model learns from: the train items (most interacted first, ties:
    first seen first), their counts, and the binary customer x item matrix of train."""

    skus: np.ndarray
    counts: np.ndarray
    train: sparse.csr_matrix

    @staticmethod
    def of_train(train: pd.DataFrame) -> "Interactions":
        skus, counts = item_popularity(train)
        return Interactions(skus, counts, interaction_matrix(train, skus)[1])


@dataclass(frozen=True)
class AskedCustomers:
    """The customers a ranking is asked about (first seen first), their histories as rows
    over a model's items (an empty row: nothing known), and the question's rows."""

    customers: list[str]
    history: sparse.csr_matrix
    question: pd.DataFrame  # interaction_question's columns: the customers' known interactions

    @staticmethod
    def of(question: pd.DataFrame, skus: Sequence[str], customers: Sequence[str] | None = None) -> "AskedCustomers":
        """``question``'s customers (or ``customers``, in that order) over ``skus``; items
        the model does not know are left out of the matrix, not out of the question."""
        ids = question["customer_id"].astype(str)
        customers = list(dict.fromkeys(ids)) if customers is None else [str(c) for c in customers]
        rows = pd.Series(np.arange(len(customers)), index=pd.Index(customers, dtype=object)).reindex(ids)
        cols = pd.Series(np.arange(len(skus)), index=pd.Index(skus, dtype=object)).reindex(question["sku"].astype(str))
        keep = rows.notna().to_numpy() & cols.notna().to_numpy()
        history = sparse.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32),
                                     (rows.to_numpy()[keep].astype(np.int64), cols.to_numpy()[keep].astype(np.int64))),
                                    shape=(len(customers), len(skus)))
        history.sum_duplicates()
        history.data[:] = 1.0
        return AskedCustomers(customers, history, question)


@dataclass(frozen=True)
class RankingInputs(Interactions):
    """What a ranking baseline learns from (train) and is asked (the holdout customers with
    their train history)."""

    asked: AskedCustomers

    @staticmethod
    def of(data: FamilyData) -> "RankingInputs":
        items = Interactions.of_train(data.train)
        asked = AskedCustomers.of(interaction_question(data), items.skus, holdout_customers(data))
        return RankingInputs(items.skus, items.counts, items.train, asked)


@dataclass(frozen=True)
class ItemModel:
    """A fitted item-item model: its items (most interacted first) and their counts, and
    item x item weights over the first ``modelled`` of them; a candidate's score is the sum
    of its weights from the customer's history items."""

    skus: np.ndarray
    counts: np.ndarray
    weights: np.ndarray | sparse.csr_matrix  # modelled x modelled

    @property
    def modelled(self) -> int:
        return int(self.weights.shape[0])

    def scores(self, history: sparse.csr_matrix) -> np.ndarray:
        """Scores over the modelled items of a batch of history rows over them."""
        product = history @ self.weights
        return product.toarray() if sparse.issparse(product) else np.asarray(product)

    def rank(self, asked: AskedCustomers, top_k: int) -> pd.DataFrame:
        return rank_by_scores(self, asked, top_k)


def item_knn(data: FamilyData, hp: Any, neighbours: Sequence[int] = KNN_NEIGHBOURS) -> pd.DataFrame:
    """Item-based top-N (Deshpande and Karypis 2004): cosine similarity between the item
    columns of the binary customer x item matrix of train, each item keeping its k most
    similar items (k from ``neighbours``, chosen on validation: :func:`choose_on_validation`);
    a candidate's score is the sum of its similarities to the customer's history items."""
    return _fit_chosen(data, hp, "neighbours", neighbours, KNN_DEFAULT_NEIGHBOURS, knn_fitter())


def ease(data: FamilyData, hp: Any, lambdas: Sequence[float] = EASE_LAMBDAS,
         max_items: int = EASE_MAX_ITEMS) -> pd.DataFrame:
    """EASE (Steck 2019), a closed-form linear item-item model over the binary customer x
    item matrix of train (its ``max_items`` most popular items), its L2 weight chosen from
    ``lambdas`` on validation (:func:`choose_on_validation`), then refitted on all of train."""
    return _fit_chosen(data, hp, "lambda", lambdas, EASE_DEFAULT_LAMBDA, ease_fitter(max_items))


def _fit_chosen(data: FamilyData, hp: Any, setting: str, candidates: Sequence[float], default: float,
                fitter: Fitter) -> pd.DataFrame:
    """The ranking of the model fitted at the candidate chosen on validation; the choice and
    every candidate's validation NDCG in ``attrs["chosen_on_validation"]``."""
    model, chosen = fit_on_validation(data, hp, setting, candidates, default, fitter)
    out = model.rank(RankingInputs.of(data).asked, hp.top_k)
    out.attrs["chosen_on_validation"] = chosen
    return out


def fit_on_validation(data: FamilyData, hp: Any, setting: str, candidates: Sequence[float], default: float,
                      fitter: Fitter) -> tuple[ItemModel, dict[str, Any]]:
    """The model at the candidate chosen on validation (:func:`choose_on_validation`),
    refitted on all of ``data.train``, and the choice: ``{setting: value, "ndcg_at_<k>":
    {candidate: validation NDCG}}``."""
    value, figures = choose_on_validation(data, hp, candidates, default, ranker_of(fitter, hp.top_k), setting)
    return fitter(Interactions.of_train(data.train))(value), {setting: value, f"ndcg_at_{hp.top_k}": figures}


def choose_on_validation(data: FamilyData, hp: Any, candidates: Sequence[float], default: float,
                         ranker: Ranker, setting: str = "setting") -> tuple[float, dict[float, float]]:
    """The candidate of the best NDCG at ``hp.top_k`` (the gate's primary metric) on a
    leave-last-out split of ``data.train`` (each train customer's last train interaction
    held out, by the rule of the real split), and every candidate's validation NDCG. The
    holdout is never read. Ties go to the larger candidate; with no customer to validate
    on, ``default``."""
    from pipeline.evaluation.scoring import ranking_score

    catalog = data.catalog if data.catalog is not None else pd.DataFrame(columns=["sku", "title"])
    validation = split_interactions(data.train, catalog)
    if validation.holdout.empty:
        log.info("%s %g, the default: no customer to validate on", setting, default)
        return default, {}
    metric = f"ndcg_at_{hp.top_k}"
    rank = ranker(RankingInputs.of(validation))
    figures = {c: ranking_score(rank(c), validation, hp)[metric] for c in candidates}
    best = max(figures, key=lambda c: (figures[c], c))
    log.info("%s %g chosen on %d validation customers (%s: %s)", setting, best, len(validation.holdout), metric,
             ", ".join(f"{c:g}: {v:.4f}" for c, v in figures.items()))
    return best, figures


def ranker_of(fitter: Fitter, top_k: int) -> Ranker:
    """The ranking of the holdout customers by the model fitted at each setting value."""

    def ranker(inputs: RankingInputs) -> Callable[[float], pd.DataFrame]:
        fit = fitter(inputs)
        return lambda value: fit(value).rank(inputs.asked, top_k)
    return ranker


def knn_fitter() -> Fitter:
    """Item-kNN for a number of neighbours."""

    def fitter(items: Interactions) -> Callable[[float], ItemModel]:
        return lambda neighbours: ItemModel(items.skus, items.counts, _cosine_neighbours(items.train, int(neighbours)))
    return fitter


def ease_fitter(max_items: int = EASE_MAX_ITEMS) -> Fitter:
    """EASE for a lambda, over the ``max_items`` most popular items; the Gram matrix is
    computed once for all lambdas."""

    def fitter(items: Interactions) -> Callable[[float], ItemModel]:
        modelled = items.train[:, :max_items]  # the columns are in popularity order
        gram = np.asarray((modelled.T @ modelled).toarray(), dtype=np.float32)
        return lambda lam: ItemModel(items.skus, items.counts, _ease_weights(gram, lam))
    return fitter


def _ease_ranker(top_k: int, max_items: int) -> Ranker:
    return ranker_of(ease_fitter(max_items), top_k)


def _ease_weights(gram: np.ndarray, lam: float) -> np.ndarray:
    """B = I - P diag(1 / diag(P)), P = (X^T X + lambda I)^-1, so diag(B) = 0 (Steck 2019,
    eq. 8): off the diagonal, B_ij = -P_ij / P_jj. (numpy's general inverse: on a 2-core
    CPU several times faster than scipy's Cholesky-based potri of the same matrix.)"""
    p = gram.copy()
    p[np.diag_indices_from(p)] += np.float32(lam)
    p = np.linalg.inv(p)
    p /= -np.diag(p)
    np.fill_diagonal(p, 0.0)
    return p


def _cosine_neighbours(matrix: sparse.csr_matrix, neighbours: int) -> sparse.csr_matrix:
    """Items x items: row i holds item i's ``neighbours`` most similar other items (cosine
    of the binary columns; only positive similarities), built a block of rows at a time."""
    n = matrix.shape[1]
    k = min(neighbours, n - 1)
    if k < 1:
        return sparse.csr_matrix((n, n), dtype=np.float32)
    inverse_norm = 1.0 / np.sqrt(np.maximum(np.asarray(matrix.sum(axis=0)).ravel(), 1.0))
    columns = matrix.T.tocsr()
    rows, cols, values = [], [], []
    block = max(1, SCORE_BATCH_CELLS // n)
    for start in range(0, n, block):
        stop = min(n, start + block)
        sim = (columns[start:stop] @ matrix).toarray() * inverse_norm[start:stop, None] * inverse_norm[None, :]
        sim[np.arange(stop - start), np.arange(start, stop)] = 0.0
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        kept = np.take_along_axis(sim, top, axis=1)
        positive = kept > 0
        rows.append(np.repeat(np.arange(start, stop), k)[positive.ravel()])
        cols.append(top[positive])
        values.append(kept[positive])
    return sparse.csr_matrix((np.concatenate(values).astype(np.float32),
                              (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def rank_by_scores(model: ItemModel, asked: AskedCustomers, top_k: int) -> pd.DataFrame:
    """Top ``top_k`` items per asked customer by ``model.scores`` of their history over
    the modelled items, history items excluded and ties going to the more popular (the
    columns are in popularity order). A customer with no history among those items gets
    the most popular items (``popular_items``), as the recommender serves a customer it
    knows nothing about."""
    modelled = model.modelled
    history = asked.history[:, :modelled]
    customers = np.asarray(asked.customers, dtype=object)
    scored = history.getnnz(axis=1) > 0
    k = min(top_k, modelled)
    parts = []
    batch = max(1, SCORE_BATCH_CELLS // max(1, modelled))
    for start in range(0, len(customers), batch):
        keep_rows = scored[start:start + batch]
        rows = history[start:start + batch][keep_rows]
        if rows.shape[0] == 0:
            continue
        scores = np.asarray(model.scores(rows), dtype=np.float64)
        scores[rows.nonzero()] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        values = np.take_along_axis(scores, top, axis=1).ravel()
        found = np.isfinite(values)
        parts.append(pd.DataFrame({
            "customer_id": np.repeat(customers[start:start + batch][keep_rows], k)[found],
            "rank": np.tile(np.arange(1, k + 1), rows.shape[0])[found],
            "sku": model.skus[top].ravel()[found], "score": values[found],
        }))
    unknown = customers[~scored].tolist()
    if unknown:
        question = asked.question[asked.question["customer_id"].astype(str).isin(set(unknown))]
        parts.append(popular_items(unknown, seen_items(question), model.skus, model.counts, top_k))
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_ranking()
    out = pd.concat(parts, ignore_index=True)
    position = pd.Series(np.arange(len(customers)), index=pd.Index(customers, dtype=object))
    out = out.iloc[np.lexsort((out["rank"].to_numpy(), position[out["customer_id"]].to_numpy()))]
    return out.reset_index(drop=True)


def item_popularity(train: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Train items most interacted first (ties: first seen first) and their counts."""
    counts = train["sku"].astype(str).value_counts(sort=False)
    counts = counts.sort_values(ascending=False, kind="stable")
    return counts.index.to_numpy(dtype=object), counts.to_numpy(dtype=np.float64)


def interaction_matrix(frame: pd.DataFrame, skus: Sequence[str]) -> tuple[list[str], sparse.csr_matrix]:
    """The customers of ``frame`` (first seen first) and their binary customer x item
    matrix over ``skus`` (every item of ``frame``; float32, a repeated interaction counts once)."""
    customer_ids = frame["customer_id"].astype(str)
    customers = list(dict.fromkeys(customer_ids))
    rows = pd.Series(np.arange(len(customers)), index=pd.Index(customers, dtype=object))[customer_ids]
    cols = pd.Series(np.arange(len(skus)), index=pd.Index(skus, dtype=object))[frame["sku"].astype(str)]
    matrix = sparse.csr_matrix((np.ones(len(frame), dtype=np.float32), (rows.to_numpy(), cols.to_numpy())),
                               shape=(len(customers), len(skus)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return customers, matrix


def holdout_customers(data: FamilyData) -> list[str]:
    """The holdout's customers, first seen first."""
    return [str(c) for c in dict.fromkeys(data.holdout["customer_id"])]


def seen_items(history: pd.DataFrame) -> dict[str, set[str]]:
    """The items each customer of ``history`` already has."""
    return {str(c): set(g.astype(str)) for c, g in history.groupby("customer_id", sort=False)["sku"]}
