"""PNG figures logged with each run: training curves, a confusion matrix, forecasts
against actuals, and recall at K. Each function returns a matplotlib Figure."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipeline.datasets import FamilyData


def new_figure(width: float = 6.0, height: float = 4.0, rows: int = 0) -> tuple[Any, Any]:
    """A figure and its axes (a column of ``rows`` axes when rows > 0)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a worker
    import matplotlib.pyplot as plt

    if rows:
        fig, axes = plt.subplots(rows, 1, figsize=(width, height), dpi=100, squeeze=False)
        return fig, axes[:, 0]
    return plt.subplots(figsize=(width, height), dpi=100)


def training_curves(epochs: list[dict[str, float]], title: str) -> Any:
    """Train (and validation) loss per epoch."""
    fig, ax = new_figure()
    for key in sorted({k for e in epochs for k in e}):
        ax.plot(range(1, len(epochs) + 1), [e.get(key, np.nan) for e in epochs], marker="o", label=key)
    ax.set(xlabel="epoch", ylabel="loss", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def confusion_matrix(y_true: list[str], y_pred: list[str], title: str) -> Any:
    """Counts of holdout rows per (true, predicted) class."""
    classes = sorted(set(y_true) | set(y_pred))
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=int)
    for t, p in zip(y_true, y_pred):
        counts[index[t], index[p]] += 1
    fig, ax = new_figure(4.5, 4.0)
    ax.imshow(counts, cmap="Blues")
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, str(n), ha="center", va="center", color="black")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes,
           xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return fig


def forecast_vs_actual(train: pd.DataFrame, holdout: pd.DataFrame, forecast: pd.DataFrame, series: int = 4,
                       history: int = 20) -> Any:
    """The largest ``series`` store x sku series: recent history, holdout actuals, and
    the forecast with its 10-90% band."""
    volume = holdout.groupby(["store_id", "sku"])["units"].sum().sort_values(ascending=False)
    keys = list(volume.index[:series])
    fig, axes = new_figure(8.0, 2.2 * max(1, len(keys)), rows=max(1, len(keys)))
    for ax, (store, sku) in zip(axes, keys):
        past = train[(train["store_id"] == store) & (train["sku"] == sku)].sort_values("date").tail(history)
        future = holdout[(holdout["store_id"] == store) & (holdout["sku"] == sku)].sort_values("date")
        pred = forecast[(forecast["store_id"].astype(str) == str(store)) & (forecast["sku"].astype(str) == str(sku))]
        pred = pred.assign(date=pd.to_datetime(pred["date"])).sort_values("date")
        ax.plot(pd.to_datetime(past["date"]), past["units"], color="grey", label="history")
        ax.plot(pd.to_datetime(future["date"]), future["units"], color="black", marker="o", label="actual")
        ax.plot(pred["date"], pred["forecast"], color="tab:blue", marker="x", label="forecast")
        ax.fill_between(pred["date"], pred["p10"], pred["p90"], color="tab:blue", alpha=0.2, label="10-90%")
        ax.set_title(f"store {store}, {sku}", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def recall_at_k(rankings: dict[str, pd.DataFrame], holdout: pd.DataFrame, max_k: int) -> Any:
    """Share of holdout customers whose held-out item is in the top K, K = 1..max_k,
    for each set of rankings (challenger, baseline, ...)."""
    targets = dict(zip(holdout["customer_id"].astype(str), holdout["sku"].astype(str)))
    fig, ax = new_figure()
    ks = np.arange(1, max_k + 1)
    for role, ranked in rankings.items():
        ranked = ranked.assign(customer_id=ranked["customer_id"].astype(str), sku=ranked["sku"].astype(str))
        hit_rank = ranked[ranked["sku"] == ranked["customer_id"].map(targets)].groupby("customer_id")["rank"].min()
        ranks = hit_rank.reindex(list(targets)).to_numpy(float)
        ax.plot(ks, [(ranks <= k).mean() for k in ks], marker="o", label=role)
    ax.set(xlabel="K", ylabel="recall at K", title="held-out item in the top K")
    ax.legend()
    fig.tight_layout()
    return fig


# The family's holdout figure: ``plot(predictions by role, data, hp) -> (name, figure)``,
# logged as plots/<name>.png.


def confusion_matrix_plot(predictions: dict[str, pd.DataFrame], data: FamilyData, hp: Any = None) -> tuple[str, Any]:
    return "confusion_matrix", confusion_matrix(
        data.holdout["label"].astype(str).tolist(), predictions["challenger"]["label"].astype(str).tolist(),
        "challenger on the holdout")


def forecast_plot(predictions: dict[str, pd.DataFrame], data: FamilyData, hp: Any = None) -> tuple[str, Any]:
    return "forecast_vs_actual", forecast_vs_actual(data.train, data.holdout, predictions["challenger"])


def recall_at_k_plot(predictions: dict[str, pd.DataFrame], data: FamilyData, hp: Any) -> tuple[str, Any]:
    return "recall_at_k", recall_at_k(predictions, data.holdout, hp.top_k)
