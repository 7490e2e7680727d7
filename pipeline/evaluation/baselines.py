"""Baselines, each trained or computed on the same training rows and asked the same
question as the model: ``baseline(data, hp) -> predictions`` in the model's output format
(``hp``: the family's training settings).

The reference baselines (majority class, seasonal naive, popularity) are what every
candidate is judged against. The strong ones (TF-IDF + logistic regression, gradient
boosting, EASE, item-kNN) are each a fit and a predict that the classic candidates
(:mod:`pipeline.training.classic`) reuse: a classic candidate is that model fitted on the
training rows, saved and served, answering with the baseline's numbers."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from pipeline.datasets import FamilyData, interaction_question, sales_question, split_interactions
from pipeline.language import script_mix
from pipeline.series import (SERIES_KEY, clean, days_since_epoch, default_season, ffill, infer_period_days,
                             median_prices, series_keys, split_by_key, to_grid)

FORECAST_COLUMNS = ["store_id", "sku", "date", "forecast", "p10", "p50", "p90"]
RANKING_COLUMNS = ["customer_id", "rank", "sku", "score"]

log = logging.getLogger(__name__)


def tfidf_logistic_regression(data: FamilyData, hp: Any = None) -> pd.DataFrame:
    """TF-IDF features and a logistic regression (:func:`fit_tfidf_logistic_regression`),
    trained on the same rows, asked about the holdout's texts."""
    return predict_labels(fit_tfidf_logistic_regression(data.train), data.holdout["text"])


def fit_tfidf_logistic_regression(train: pd.DataFrame) -> Any:
    """A scikit-learn pipeline of TF-IDF features and a logistic regression fitted on
    ``train``'s text and label: word unigrams and bigrams, or character 1- to 3-grams for
    text in a script written without spaces between words (Chinese, Japanese, Korean),
    where a "word" would be a whole sentence."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts = as_texts(train["text"])
    if script_mix(texts).cjk_heavy:
        features = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
    else:
        features = TfidfVectorizer(min_df=2, ngram_range=(1, 2), sublinear_tf=True)
    clf = make_pipeline(features, LogisticRegression(max_iter=1000, class_weight="balanced"))
    return clf.fit(texts, train["label"].astype(str))


def predict_labels(model: Any, texts: pd.Series) -> pd.DataFrame:
    """A fitted text classifier's answer in the sentiment model's format: label (the most
    probable class), score (its probability) and p_<class> for every class."""
    classes = [str(c) for c in model.classes_]
    texts = as_texts(texts)
    probs = model.predict_proba(texts) if len(texts) else np.zeros((0, len(classes)))
    return label_frame(classes, probs)


def majority_class(data: FamilyData, hp: Any = None) -> pd.DataFrame:
    """Every holdout row gets the most frequent training label (ties: the first in sorted
    order), with the training share of each class as its probabilities."""
    shares = data.train["label"].astype(str).value_counts(normalize=True).sort_index()
    probs = np.tile(shares.to_numpy(float), (len(data.holdout), 1))
    return label_frame(shares.index.tolist(), probs)


def label_frame(classes: Sequence[str], probs: np.ndarray) -> pd.DataFrame:
    """label, score and p_<class> columns from class probabilities (rows x classes)."""
    out = pd.DataFrame({f"p_{c}": probs[:, i] for i, c in enumerate(classes)})
    out.insert(0, "score", probs.max(axis=1) if len(probs) else np.zeros(0))
    out.insert(0, "label", np.asarray(classes, dtype=object)[probs.argmax(axis=1)] if len(probs) else [])
    return out


def as_texts(texts: pd.Series) -> pd.Series:
    """Texts as strings, a missing one empty (as the sentiment model reads them)."""
    return texts.fillna("").astype(str)


def seasonal_naive(data: FamilyData, hp: Any) -> pd.DataFrame:
    """Each asked period gets the series' value at the same point of the latest season
    (``hp.season_length`` periods, or by default a year of weekly or monthly data, a week of
    daily data) on its period grid, gaps carrying the last value; or the last value when the
    history is shorter than a season."""
    history, future, period = _question(data)
    season = hp.season_length or default_season(period)
    parts = []
    for past, rows in zip(*_by_series(history, future)):
        if not len(rows):
            continue
        grid = to_grid(past, period)
        units = ffill(np.clip(grid.units, 0, None)) if grid.n else np.zeros(1)
        if grid.n == 0 or grid.n < season:
            values = np.repeat(units[-1], len(rows))
        else:
            pos = _grid_positions(rows["date"], grid, period)  # > n - 1: periods after the history
            back = np.ceil((pos - (grid.n - 1)) / season).clip(min=1).astype(int)
            values = units[pos - season * back]
        parts.append(_forecast_rows(rows, values, values, values))
    return _concat_forecasts(parts)


# HistGradientBoosting on the question's features: one global model, log1p(units) target,
# direct multi-step (the step ahead is a feature); fixed settings a data team would start from.
# (Targets relative to the recent level were tried: WAPE 0.473 against 0.459 on the bundled
# orange-juice data with its plan, so the plain target stays.)
GBM_PARAMS = {"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 31, "min_samples_leaf": 40,
              "l2_regularization": 1.0}
# HistGradientBoostingRegressor bins a categorical feature into at most 255 values
GBM_MAX_CATEGORIES = 255
# a random sample of the (origin, step) rows beyond this: enough for 14 features, and it
# bounds the fit's time and memory for a chain's tens of thousands of series
GBM_MAX_TRAIN_ROWS = 1_000_000
GBM_LONG_MEAN = 13  # periods of the longer rolling mean
GBM_FEATURES = ["step", "lag_1", "lag_2", "lag_3", "lag_4", "mean_4", "mean_13", "seasonal", "price_ratio",
                "promo", "week_sin", "week_cos", "store", "sku"]


def gradient_boosting(data: FamilyData, hp: Any) -> pd.DataFrame:
    """scikit-learn's HistGradientBoostingRegressor on lags, rolling means, the value a
    season back, calendar, price and promo (one global model for all series), asked the
    same question as the forecaster: trained on every origin of the history
    (:func:`fit_gradient_boosting`), then forecasting the asked periods from the end of
    each series' history (:func:`predict_gradient_boosting`)."""
    history, future, period = _question(data)
    if future.empty:
        return _concat_forecasts([])
    horizon = max(1, int(future.groupby(SERIES_KEY).size().max()))
    season = hp.season_length or default_season(period)
    model = fit_gradient_boosting(history, horizon, season, period)
    if model is None:
        return _concat_forecasts([])
    rows, point = predict_gradient_boosting(model, history, future)
    return _forecast_rows(rows, point, point, point)


@dataclass
class GradientBoosting:
    """A fitted gradient-boosting forecaster: the trees and what turns a question into
    their features (``encodings``: per id column, ``{"categories": [...]}`` where the trees
    bin it, else ``{"means": {id: mean target}, "fill": overall mean}``)."""

    model: Any  # sklearn.ensemble.HistGradientBoostingRegressor
    features: list[str]
    encodings: dict[str, dict[str, Any]]
    season: int
    period_days: float
    horizon: int
    # [store, sku, median price] of each training series: the price ratio's reference,
    # whatever history a question passes (a series not in it: its question's median)
    median_prices: list[list] = field(default_factory=list)

    def settings(self) -> dict[str, Any]:
        """Everything but the trees, as plain JSON values."""
        return {"features": self.features, "encodings": self.encodings, "season": self.season,
                "period_days": self.period_days, "horizon": self.horizon, "median_prices": self.median_prices}

    def grid(self, past: pd.DataFrame) -> Any:
        """One series' history on the grid, priced against its training median."""
        if past.empty:
            return to_grid(past, self.period_days)
        return to_grid(past, self.period_days, median_price=self.medians.get(_ids(past)))

    @functools.cached_property
    def medians(self) -> dict[tuple[str, str], float]:
        return {(str(store), str(sku)): float(price) for store, sku, price in self.median_prices}


def fit_gradient_boosting(history: pd.DataFrame, horizon: int, season: int, period: float,
                          seed: int = 0) -> GradientBoosting | None:
    """The trees trained on every origin t and step h <= ``horizon`` of every series of
    ``history`` (clean, units known) whose target period t + h has a row; log1p(units)
    target, direct multi-step (the step ahead is a feature). None without a row to learn from."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    parts = []
    medians = median_prices(history)
    for past in split_by_key(history, series_keys(history).sort_values(SERIES_KEY, ignore_index=True)):
        grid = to_grid(past, period, median_price=medians.get(_ids(past)))
        if grid.n == 0:
            continue
        level = _log_level(grid)
        observed = ~np.isnan(grid.units)
        for h in range(1, horizon + 1):
            t = np.arange(0, grid.n - h)
            t = t[observed[t + h]]
            if len(t):
                parts.append(_gbm_features(level, grid, period, t, t + h, h, season, *_ids(past))
                             .assign(target=level[t + h]))
    if not parts:
        return None
    train = pd.concat(parts, ignore_index=True)
    if len(train) > GBM_MAX_TRAIN_ROWS:
        train = train.sample(GBM_MAX_TRAIN_ROWS, random_state=seed)
    encodings = _fit_id_encodings(train)
    train = _encode_ids(train, encodings)
    # a feature with no value in training (the value a season back, in histories shorter
    # than a season) is left out: the trees cannot bin it
    features = [f for f in GBM_FEATURES if train[f].notna().any()]
    categorical = [c for c, e in encodings.items() if "categories" in e]
    model = HistGradientBoostingRegressor(categorical_features=categorical, random_state=seed, **GBM_PARAMS)
    model.fit(train[features], train["target"])
    return GradientBoosting(model, features, encodings, season, period, horizon,
                            [[store, sku, price] for (store, sku), price in medians.items()])


def predict_gradient_boosting(model: GradientBoosting, history: pd.DataFrame,
                              future: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The ``future`` rows (clean) of every series with a history, in series then date
    order, and their point forecasts in units, each from the end of its series' history."""
    period = model.period_days
    asked_parts, row_parts = [], []
    for past, rows in zip(*_by_series(history, future)):
        grid = model.grid(past)
        if grid.n == 0 or not len(rows):
            continue
        pos = _grid_positions(rows["date"], grid, period)
        origin = np.full(len(rows), grid.n - 1)
        asked_parts.append(_gbm_features(_log_level(grid), grid, period, origin, pos, pos - origin, model.season,
                                         *_ids(past), price=rows["price"].to_numpy(float),
                                         promo=rows["promo"].to_numpy(float)))
        row_parts.append(rows)
    if not row_parts:
        return future.iloc[:0], np.zeros(0)
    asked = _encode_ids(pd.concat(asked_parts, ignore_index=True), model.encodings)
    point = np.clip(np.expm1(model.model.predict(asked[model.features])), 0, None)
    return pd.concat(row_parts, ignore_index=True), point


def gbm_history_periods(season: int) -> int:
    """The periods of history the features read back from an origin: the longer rolling
    mean, and the value a season back."""
    return max(GBM_LONG_MEAN, season)


def _log_level(grid: Any) -> np.ndarray:
    """log1p of a series' units on its grid, gaps carrying the last value."""
    return np.log1p(ffill(np.clip(grid.units, 0, None)))


def _ids(past: pd.DataFrame) -> tuple[str, str]:
    return str(past["store_id"].iloc[0]), str(past["sku"].iloc[0])


def _fit_id_encodings(train: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Store and sku as categories where the trees can bin them (at most GBM_MAX_CATEGORIES
    values); an id with more values (a chain's hundreds of stores) becomes the mean training
    target of its value, the overall mean for a value not seen in training."""
    encodings: dict[str, dict[str, Any]] = {}
    for column in ("store", "sku"):
        values = train[column].unique()
        if len(values) <= GBM_MAX_CATEGORIES:
            encodings[column] = {"categories": sorted(str(v) for v in values)}
        else:
            means = train.groupby(column)["target"].mean()
            encodings[column] = {"means": {str(k): float(v) for k, v in means.items()},
                                 "fill": float(train["target"].mean())}
    return encodings


def _encode_ids(frame: pd.DataFrame, encodings: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The id columns of ``frame`` as :func:`_fit_id_encodings` chose (an unknown category:
    missing, which the trees send down their learned branch)."""
    encoded = {}
    for column, encoding in encodings.items():
        if "categories" in encoding:
            encoded[column] = frame[column].astype(pd.CategoricalDtype(encoding["categories"]))
        else:
            encoded[column] = frame[column].map(encoding["means"]).astype(float).fillna(encoding["fill"])
    return frame.assign(**encoded)


def _gbm_features(level: np.ndarray, grid: Any, period: float, origin: np.ndarray, target: np.ndarray,
                  step: np.ndarray | int, season: int, store: str, sku: str, price: np.ndarray | None = None,
                  promo: np.ndarray | None = None) -> pd.DataFrame:
    """Features of forecasting grid position ``target`` from position ``origin`` (log1p units)."""
    cumulative = np.concatenate([[0.0], np.cumsum(level)])

    def lag(k: int) -> np.ndarray:
        return level[np.clip(origin - k, 0, None)]

    def mean(k: int) -> np.ndarray:
        start = np.clip(origin + 1 - k, 0, None)
        return (cumulative[origin + 1] - cumulative[start]) / (origin + 1 - start)

    back = target - season * np.ceil((target - origin) / season).clip(min=1).astype(int)
    seasonal = np.where(back >= 0, level[np.clip(back, 0, None)], np.nan)
    inside = np.clip(target, 0, grid.n - 1)
    if price is None:
        price, promo = grid.price[inside], grid.promo[inside]
    price = np.where(np.isnan(price), grid.price[-1], price)
    days = grid.days[0] + target * period
    year = 2 * np.pi * days / 365.2425
    return pd.DataFrame({
        "step": np.broadcast_to(step, origin.shape).astype(float), "lag_1": lag(0), "lag_2": lag(1),
        "lag_3": lag(2), "lag_4": lag(3), "mean_4": mean(4), "mean_13": mean(GBM_LONG_MEAN), "seasonal": seasonal,
        "price_ratio": np.log(price / grid.median_price), "promo": promo, "week_sin": np.sin(year),
        "week_cos": np.cos(year), "store": store, "sku": sku,
    })


def _question(data: FamilyData) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """The family's question split into history and asked rows, and the grid spacing."""
    question = clean(sales_question(data))
    history = question[question["units"].notna()]
    return history, question[question["units"].isna()], infer_period_days(history)


def _by_series(history: pd.DataFrame, future: pd.DataFrame) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    keys = series_keys(history, future)
    return split_by_key(history, keys), split_by_key(future, keys)


def _grid_positions(dates: pd.Series, grid: Any, period: float) -> np.ndarray:
    """Grid positions of ``dates`` on a series' grid (beyond its end for future dates)."""
    return np.rint((days_since_epoch(dates) - grid.days[0]) / period).astype(int)


def _forecast_rows(rows: pd.DataFrame, forecast: np.ndarray, p10: np.ndarray, p90: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "store_id": rows["store_id"].to_numpy(), "sku": rows["sku"].to_numpy(), "date": rows["date"].to_numpy(),
        "forecast": forecast, "p10": p10, "p50": forecast, "p90": p90,
    })


def _concat_forecasts(parts: list[pd.DataFrame]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in FORECAST_COLUMNS})
    return pd.concat(parts, ignore_index=True)


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
