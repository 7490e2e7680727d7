"""The recommender's simple baselines (popularity, item-kNN, EASE) on the real MovieLens-100k
split the pipeline builds, and on tiny inline frames for the edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.datasets import FamilyData, interactions_dataset, split_interactions
from pipeline.demo_data import load_movielens
from pipeline.evaluation.baselines import ranking as baselines
from pipeline.evaluation.baselines.ranking import (EASE_DEFAULT_LAMBDA, EASE_LAMBDAS, KNN_DEFAULT_NEIGHBOURS,
                                                   RankingInputs, choose_on_validation, ease, item_knn, popularity)
from pipeline.evaluation.scoring import ranking_score
from pipeline.families import get_family
from pipeline.settings import RecommenderTraining

HP = RecommenderTraining()  # top_k 10, the 14-day time-split view: the pipeline's defaults


@pytest.fixture(scope="module")
def data() -> FamilyData:
    interactions, catalog = load_movielens()
    interactions = interactions.assign(timestamp=pd.to_datetime(interactions["seconds"], unit="s"))
    return interactions_dataset({"interactions": interactions, "catalog": catalog}, HP)


@pytest.fixture(scope="module")
def rankings(data: FamilyData) -> dict[str, pd.DataFrame]:
    return {f.__name__: f(data, HP) for f in (popularity, item_knn, ease)}


@pytest.fixture(scope="module")
def scores(data: FamilyData, rankings: dict[str, pd.DataFrame]) -> dict[str, dict[str, float]]:
    return {name: ranking_score(r, data, HP) for name, r in rankings.items()}


def test_the_recommender_serves_ease_or_knn_and_is_judged_against_popularity():
    record = get_family("recommender")
    assert [record.baseline, *record.more_baselines] == ["pipeline.evaluation.baselines:popularity"]
    classic = {c.name: c for c in record.candidates if c.kind == "classic"}
    assert set(classic) == {"ease", "item_knn"}
    assert all(callable(record.function_named(c.fit)) for c in classic.values())


def test_knn_and_ease_beat_popularity_on_the_holdout(scores: dict[str, dict[str, float]]):
    # on this split: popularity HR@10 0.052, item-kNN 0.076, EASE 0.095
    for name in ("item_knn", "ease"):
        assert scores[name]["hr_at_10"] > 1.3 * scores["popularity"]["hr_at_10"], (name, scores)
        assert scores[name]["ndcg_at_10"] > scores["popularity"]["ndcg_at_10"], (name, scores)
        assert scores[name]["coverage_at_10"] > scores["popularity"]["coverage_at_10"], (name, scores)


@pytest.mark.parametrize("name", ["item_knn", "ease"])
def test_top_k_unseen_items_for_every_holdout_customer(data: FamilyData, rankings: dict[str, pd.DataFrame],
                                                       name: str):
    out = rankings[name]
    assert list(out.columns) == baselines.RANKING_COLUMNS
    assert list(dict.fromkeys(out["customer_id"])) == list(dict.fromkeys(data.holdout["customer_id"]))
    assert out.groupby("customer_id")["rank"].apply(lambda r: list(r) == list(range(1, HP.top_k + 1))).all()
    assert not out.duplicated(["customer_id", "sku"]).any()
    assert (out.groupby("customer_id")["score"].diff().dropna() <= 0).all()  # best first
    seen = data.train[["customer_id", "sku"]].drop_duplicates().assign(seen=True)
    assert out.merge(seen, on=["customer_id", "sku"], how="left")["seen"].isna().all()


def test_settings_are_chosen_on_validation_carved_from_train(rankings: dict[str, pd.DataFrame]):
    for name, setting, grid in (("ease", "lambda", EASE_LAMBDAS), ("item_knn", "neighbours", baselines.KNN_NEIGHBOURS)):
        chosen = rankings[name].attrs["chosen_on_validation"]
        figures = chosen["ndcg_at_10"]
        assert list(figures) == list(grid)
        assert chosen[setting] == max(figures, key=figures.get)


def test_the_holdout_does_not_influence_the_choice(data: FamilyData, rankings: dict[str, pd.DataFrame]):
    """Every holdout item replaced by the least popular train item: the choice and every
    validation figure stay exactly the same."""
    popular = data.train["sku"].value_counts().index
    perturbed = FamilyData(data.train, data.holdout.assign(sku=popular[-1]), data.catalog)
    grid = (50.0, 500.0, 2000.0)
    lam, figures = choose_on_validation(perturbed, HP, grid, EASE_DEFAULT_LAMBDA,
                                        baselines._ease_ranker(HP.top_k, baselines.EASE_MAX_ITEMS))
    expected = rankings["ease"].attrs["chosen_on_validation"]["ndcg_at_10"]
    assert figures == {c: expected[c] for c in grid}
    assert lam == max(figures, key=figures.get)
    # while the holdout's own scores do move with it
    assert ranking_score(rankings["ease"], perturbed, HP) != ranking_score(rankings["ease"], data, HP)


def test_ease_weights_solve_steck_s_constrained_regression():
    """Column j of B is the ridge regression of item j on the other items (diag(B) = 0)."""
    rng = np.random.default_rng(0)
    x = (rng.random((60, 8)) < 0.3).astype(np.float64)
    gram, lam = x.T @ x, 5.0
    weights = baselines._ease_weights(gram.astype(np.float32), lam)
    assert np.all(np.diag(weights) == 0)
    for j in range(8):
        others = [i for i in range(8) if i != j]
        ridge = np.linalg.solve(gram[np.ix_(others, others)] + lam * np.eye(7), gram[others, j])
        np.testing.assert_allclose(weights[others, j], ridge, atol=1e-4)


def test_the_time_split_view_scores_the_new_baselines(data: FamilyData):
    from pipeline.evaluation.evaluate import _score_view

    view = data.time_split_view()
    scored = _score_view(get_family("recommender"), view, {}, "pipeline.evaluation.baselines:item_knn", HP)
    assert set(scored) == {"baseline"} and 0 < scored["baseline"]["hr_at_10"] <= 1


# ------------------------------------------------------------------ tiny data

T0 = pd.Timestamp("2024-01-01")
CATALOG = pd.DataFrame({"sku": list("abcd"), "title": list("abcd")})


def _frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame([(c, s, T0 + pd.Timedelta(hours=i)) for i, (c, s) in enumerate(rows)],
                        columns=["customer_id", "sku", "timestamp"])


@pytest.fixture
def tiny() -> FamilyData:
    """Three customers of three items each: after the holdout, two train items apiece, too
    few for a validation split carved from train."""
    return split_interactions(_frame([("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "a"), ("u2", "b"),
                                      ("u2", "d"), ("u3", "b"), ("u3", "c"), ("u3", "a")]), CATALOG)


@pytest.mark.parametrize("baseline", [item_knn, ease])
def test_tiny_data_fall_back_to_the_default_setting(tiny: FamilyData, baseline):
    out = baseline(tiny, RecommenderTraining(top_k=3))
    setting, default = ("lambda", EASE_DEFAULT_LAMBDA) if baseline is ease else ("neighbours", KNN_DEFAULT_NEIGHBOURS)
    assert out.attrs["chosen_on_validation"] == {setting: default, "ndcg_at_3": {}}
    # the only train item each has not seen (d is in no train history)
    assert out[["customer_id", "sku"]].to_dict("records") == [
        {"customer_id": "u1", "sku": "c"}, {"customer_id": "u2", "sku": "c"}, {"customer_id": "u3", "sku": "a"}]


@pytest.mark.parametrize("baseline", [item_knn, ease])
def test_a_customer_without_history_gets_the_popular_items(tiny: FamilyData, baseline):
    data = FamilyData(tiny.train, pd.concat([tiny.holdout, _frame([("new", "a")])], ignore_index=True), CATALOG)
    hp = RecommenderTraining(top_k=3)
    out, popular = baseline(data, hp), popularity(data, hp)
    pd.testing.assert_frame_equal(out[out["customer_id"] == "new"].reset_index(drop=True),
                                  popular[popular["customer_id"] == "new"].reset_index(drop=True))


@pytest.mark.parametrize("baseline", [item_knn, ease])
def test_no_train_rows_give_an_empty_ranking(tiny: FamilyData, baseline):
    out = baseline(FamilyData(tiny.train.iloc[:0], tiny.holdout, CATALOG), RecommenderTraining(top_k=3))
    assert out.empty and list(out.columns) == baselines.RANKING_COLUMNS


def test_ease_leaves_items_beyond_its_cap_out(tiny: FamilyData):
    inputs = RankingInputs.of(tiny)
    assert list(inputs.skus) == ["b", "a", "c"]  # most popular first, ties: first seen first
    out = baselines._ease_ranker(3, max_items=2)(inputs)(EASE_DEFAULT_LAMBDA)
    # u1 and u2 have seen both modelled items (b, a): nothing left for them; u3 gets a
    assert out[["customer_id", "sku"]].to_dict("records") == [{"customer_id": "u3", "sku": "a"}]
