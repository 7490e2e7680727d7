"""Blends of a family's transformer and its classic model, each a candidate in its own right.

A blend's ``fit(data, hp, model_dir, seed, parts)`` copies its parts' final model folders
into ``model_dir/parts/<name>/`` and chooses the weight on the transformer (the classic
part gets one minus it) from GRID, by the family's primary metric on the family's
validation windows (:attr:`pipeline.families.Family.validation`), never on the holdout:

- the transformer part's final model is asked as it is: it never trained on the windows'
  holdout rows;
- a classic part is refit once on the rows before every window (the first window's
  ``train``, into a temporary folder), then asked each window's question from that
  window's own origin, as the transformer is: both parts stand on the same footing. (A
  refit per forecaster window cost four times as much: 80 of the blend's 86 s on the 7
  Walmart series, 2 CPU cores.)

Ties go to the weight closer to 0.5 (an even blend, the least committed choice).
``blend.json`` records the family, the parts, the weight and every grid point's figure.

The pyfunc classes load their parts as the family's candidate classes and combine their
answers, in exactly the transformer's output format:

- :class:`LabelBlend`: the weighted mean of the class probabilities; label = argmax;
- :class:`ForecastBlend`: the weighted point forecast, its quantiles recalibrated on the
  same validation windows as the classic forecaster's are (residuals of log1p(actual) -
  log1p(blended point), per period and cumulative: :mod:`pipeline.training.classic.forecast`);
- :class:`RankingBlend`: weighted reciprocal-rank fusion of the parts' longer lists.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import mlflow.pyfunc
import numpy as np
import pandas as pd

from pipeline.datasets import FamilyData
from pipeline.evaluation.metrics import best_first
from pipeline.families import FAMILIES, TRANSFORMER
from pipeline.series import SERIES_KEY
from pipeline.training.classic.forecast import point_quantiles, point_residuals
from pipeline.training.forecaster import calibration
from pipeline.training.forecaster.predict import OUTPUT_COLUMNS

log = logging.getLogger(__name__)

GRID = tuple(round(0.1 * i, 1) for i in range(11))  # weights on the transformer part
BLEND_FILE = "blend.json"
PARTS_DIR = "parts"
# reciprocal-rank fusion's constant (Cormack, Clarke and Buettcher 2009): an item's share is
# weight / (RRF_K + rank), so the top of a list counts more without one list's first item
# outweighing everything the other list agrees on
RRF_K = 60
# a ranking part is asked for this many items (at least LONG_LIST_FACTOR x top_k): items
# just below one part's top k can still rise into the blend's
LONG_LIST = 100
LONG_LIST_FACTOR = 5

Predictions = dict[str, pd.DataFrame]  # part name -> its answer to one window's question
Combine = Callable[[list[pd.DataFrame], list[float]], pd.DataFrame]


# ------------------------------------------------------------------ parts


def load_part(family: str, name: str, folder: Path | str) -> Any:
    """The family's pyfunc of candidate ``name``, loaded from ``folder`` (what
    ``mlflow.pyfunc`` would do with ``artifacts={"model_dir": folder}``)."""
    model = FAMILIES[family].pyfunc(name)
    model.load_context(SimpleNamespace(artifacts={"model_dir": str(folder)}))
    return model


def ordered_parts(family: str, parts: dict[str, Path]) -> list[str]:
    """The part names, the transformer first: the weight is on it (two parts, one of them a
    transformer or a classic model)."""
    record = FAMILIES[family]
    if len(parts) != 2:
        raise ValueError(f"a {family} blend combines two parts, got {sorted(parts)}")
    for name in parts:
        if record.candidate(name).kind == "blend":
            raise ValueError(f"a blend cannot be a part of a blend: {name}")
    return sorted(parts, key=lambda name: record.candidate(name).kind != TRANSFORMER.kind)


def copy_parts(parts: dict[str, Path], model_dir: Path) -> None:
    """Each part's final model folder into ``model_dir/parts/<name>/``: the blend serves alone."""
    for name, folder in parts.items():
        target = model_dir / PARTS_DIR / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(folder, target)


def validation_predictions(family: str, windows: list[FamilyData], hp: Any, seed: int, parts: dict[str, Path],
                           params: dict[str, Any] | None) -> list[Predictions]:
    """Every part's answer to every window's question (the family's ``question``). The
    windows are in time order: the first window's ``train`` is before all of them."""
    record = FAMILIES[family]
    question = record.function("question")
    answers: list[Predictions] = [{} for _ in windows]
    for name, folder in parts.items():
        candidate = record.candidate(name)
        if candidate.kind == TRANSFORMER.kind:
            # its final model never trained on a window's holdout rows: asked as it is
            model = load_part(family, name, folder)
            for answer, window in zip(answers, windows):
                answer[name] = model.predict(None, question(window), params)
            continue
        with tempfile.TemporaryDirectory(prefix=f"blend-{name}-") as tmp:
            record.function_named(candidate.fit)(windows[0], hp, Path(tmp), seed)  # reads its train only
            model = load_part(family, name, tmp)
            for answer, window in zip(answers, windows):
                answer[name] = model.predict(None, question(window), params)
    return answers


# ------------------------------------------------------------------ the weight


def pooled(windows: list[FamilyData]) -> FamilyData:
    """The windows as one question to score: their holdout rows together (they are
    disjoint), the first window's train (the earliest origin)."""
    first = windows[0]
    holdout = pd.concat([w.holdout for w in windows], ignore_index=True)
    return FamilyData(first.train, holdout, first.catalog, first.plan)


def grid_figures(family: str, windows: list[FamilyData], answers: list[Predictions], names: list[str],
                 hp: Any, combine: Combine) -> dict[float, float]:
    """The primary metric of the blend at every weight of GRID, over all windows pooled."""
    record = FAMILIES[family]
    score, metric = record.function("score"), record.primary_metric
    data = pooled(windows)
    figures = {}
    for weight in GRID:
        blended = [combine([answer[n] for n in names], [weight, 1.0 - weight]) for answer in answers]
        figures[weight] = float(score(pd.concat(blended, ignore_index=True), data, hp)[metric])
    return figures


def choose_weight(figures: dict[float, float], metric: str) -> float:
    """The weight of the best figure; among equal figures the one closest to 0.5; 0.5
    without any figure (no validation window)."""
    if not figures:
        return 0.5
    def loss(weight: float) -> float:
        return best_first(metric, figures[weight])

    best = min(loss(w) for w in figures)
    tied = [w for w in figures if loss(w) == best or math.isclose(loss(w), best, rel_tol=1e-9, abs_tol=1e-12)]
    return min(tied, key=lambda w: (abs(w - 0.5), w))


def fit_blend(family: str, data: FamilyData, hp: Any, model_dir: Path, seed: int, parts: dict[str, Path],
              combine: Combine, params: dict[str, Any] | None = None,
              ) -> tuple[dict[str, Any], list[FamilyData], list[Predictions]]:
    """Copy the parts, choose the weight on the validation windows, write ``blend.json``;
    the record written, the windows and the parts' answers (for what a family adds)."""
    model_dir = Path(model_dir)
    names = ordered_parts(family, parts)
    copy_parts(parts, model_dir)
    record = FAMILIES[family]
    windows = record.function("validation")(data, hp)
    answers = validation_predictions(family, windows, hp, seed, parts, params) if windows else []
    figures = grid_figures(family, windows, answers, names, hp, combine) if windows else {}
    weight = choose_weight(figures, record.primary_metric)
    if figures:
        log.info("%s blend: weight %.1f on %s, chosen on %d validation window(s) of %d rows (%s: %s)",
                 family, weight, names[0], len(windows), sum(len(w.holdout) for w in windows),
                 record.primary_metric, ", ".join(f"{w:.1f}: {v:.4f}" for w, v in figures.items()))
    else:
        log.warning("%s blend: no validation window to choose on; weight %.1f", family, weight)
    blend = {
        "family": family, "parts": names, "weight": weight, "weights": dict(zip(names, (weight, 1.0 - weight))),
        "metric": record.primary_metric, "validation": {f"{w:.1f}": v for w, v in figures.items()},
        "windows": len(windows), "validation_rows": sum(len(w.holdout) for w in windows),
    }
    write_blend(model_dir, blend)
    return blend, windows, answers


def write_blend(model_dir: Path, blend: dict[str, Any]) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / BLEND_FILE).write_text(json.dumps(blend, indent=2))


def run_params(blend: dict[str, Any]) -> dict[str, Any]:
    """What the run logs: the weight, and what it was chosen on."""
    params: dict[str, Any] = {"weight": blend["weight"], "validation_windows": blend["windows"]}
    figure = blend["validation"].get(f"{blend['weight']:.1f}")
    if figure is not None:
        params[f"validation_{blend['metric']}"] = round(figure, 6)
    return params


def like(frame: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the columns, order and dtypes of ``reference`` (a part's answer): the
    blend answers in exactly its parts' format."""
    if not len(frame):
        return reference.iloc[:0].copy()
    frame = frame[list(reference.columns)].astype(reference.dtypes.to_dict())
    frame.columns = reference.columns
    return frame


class Blend(mlflow.pyfunc.PythonModel):
    """A blend's parts (loaded as the family's candidates) and their weights."""

    def load_context(self, context: Any) -> None:
        folder = Path(context.artifacts["model_dir"])
        self.config = json.loads((folder / BLEND_FILE).read_text())
        names = self.config["parts"]
        self.parts = {n: load_part(self.config["family"], n, folder / PARTS_DIR / n) for n in names}
        self.weights = [float(self.config["weights"][n]) for n in names]

    def answers(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None) -> list[pd.DataFrame]:
        return [part.predict(context, model_input, params) for part in self.parts.values()]


# ------------------------------------------------------------------ labels


def combine_labels(frames: list[pd.DataFrame], weights: list[float]) -> pd.DataFrame:
    """The weighted mean of the parts' class probabilities (a class a part does not know
    has probability 0 there); label = the most probable class, score = its probability."""
    columns = list(dict.fromkeys(c for f in frames for c in f.columns if c.startswith("p_")))
    probs = sum(w * f.reindex(columns=columns).fillna(0.0).to_numpy(float) for f, w in zip(frames, weights))
    probs = np.asarray(probs, dtype=float).reshape(len(frames[0]), len(columns))
    out = pd.DataFrame({c: probs[:, i] for i, c in enumerate(columns)})
    classes = np.asarray([c[len("p_"):] for c in columns], dtype=object)
    out.insert(0, "score", probs.max(axis=1) if len(out) else np.zeros(0))
    out.insert(0, "label", classes[probs.argmax(axis=1)] if len(out) else np.zeros(0, dtype=object))
    out = like(out, frames[0])
    out.attrs.update(frames[0].attrs)  # e.g. the transformer's scoring precision
    return out


def fit_label_blend(data: FamilyData, hp: Any, model_dir: Path, seed: int, parts: dict[str, Path]) -> dict[str, Any]:
    """The sentiment blend: its weight chosen on the latest training reviews."""
    blend, _, _ = fit_blend("sentiment", data, hp, model_dir, seed, parts, combine_labels)
    return run_params(blend)


class LabelBlend(Blend):
    """pyfunc: a frame with a ``text`` column in; label, score and p_<class> out."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return combine_labels(self.answers(context, model_input, params), self.weights)


# ------------------------------------------------------------------ forecasts

KEYS = [*SERIES_KEY, "date"]


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """The join keys typed alike whatever the part wrote (store and sku as text)."""
    return frame.assign(store_id=frame["store_id"].astype(str), sku=frame["sku"].astype(str),
                        date=pd.to_datetime(frame["date"]).astype("datetime64[ns]"))


def combine_columns(frames: list[pd.DataFrame], weights: list[float], columns: list[str]) -> pd.DataFrame:
    """The first part's rows (keys typed alike) with the weighted mean of ``columns``; where
    another part has no row, the first part's value stands in for it."""
    out = _keyed(frames[0])[KEYS].reset_index(drop=True)
    first = _keyed(frames[0])[columns].to_numpy(float)
    total = weights[0] * first
    for frame, weight in zip(frames[1:], weights[1:]):
        other = out.merge(_keyed(frame)[[*KEYS, *columns]], on=KEYS, how="left", validate="one_to_one")
        values = other[columns].to_numpy(float)
        total = total + weight * np.where(np.isnan(values), first, values)
    out[columns] = total
    return out


def blend_points(frames: list[pd.DataFrame], weights: list[float]) -> pd.DataFrame:
    """Keys, the weighted point forecast and the weighted cumulative point forecast, in
    series and date order (what :func:`point_residuals` and :func:`point_quantiles` take)."""
    out = combine_columns(frames, weights, ["forecast", "cum_forecast"])
    return out.sort_values(KEYS, kind="stable").reset_index(drop=True)


def forecast_residuals(windows: list[FamilyData], answers: list[Predictions], names: list[str],
                       weights: list[float], horizon: int) -> dict[str, list[list[float]]]:
    """log1p(actual) - log1p(blended point) of every window's asked rows with a truth, per
    kind (period, cumulative from the window's first period) and step ahead."""
    residuals: dict[str, list[list[float]]] = {kind: [[] for _ in range(horizon)] for kind in calibration.KINDS}
    for window, answer in zip(windows, answers):
        point = blend_points([answer[n] for n in names], weights)
        for kind, steps in point_residuals(point, window.holdout, horizon).items():
            for h, z in enumerate(steps):
                residuals[kind][h] += z
    return residuals


def forecast_table(residuals: dict[str, list[list[float]]]) -> dict | None:
    """The calibration table of the residuals; None when too few to calibrate."""
    try:
        return calibration.fit(residuals)
    except ValueError as exc:
        log.warning("blend quantiles left as the parts' weighted quantiles: %s", exc)
        return None


def combine_forecasts(frames: list[pd.DataFrame], weights: list[float], table: dict | None,
                      service_level: float) -> pd.DataFrame:
    """The weighted point forecast (``forecast`` = ``p50``, ``cum_forecast``) with its
    quantiles at the calibrated residuals, as the classic forecaster serves its point
    (:func:`point_quantiles`); without a table, the parts' weighted quantiles."""
    if not len(frames[0]):
        return frames[0]
    if table is None:
        out = combine_columns(frames, weights, [c for c in OUTPUT_COLUMNS if c not in KEYS])
    else:
        out = point_quantiles(blend_points(frames, weights), table, service_level)
    # the first part's rows, keys as it wrote them, in its order
    values = [c for c in OUTPUT_COLUMNS if c not in KEYS]
    out = _keyed(frames[0])[KEYS].reset_index(drop=True).merge(out, on=KEYS, how="left")
    out = pd.concat([frames[0][KEYS].reset_index(drop=True), out[values].clip(lower=0.0)], axis=1)
    return like(out, frames[0])


def fit_forecast_blend(data: FamilyData, hp: Any, model_dir: Path, seed: int,
                       parts: dict[str, Path]) -> dict[str, Any]:
    """The forecaster's blend: its weight chosen on the calibration windows (WAPE of the
    point forecast), then its quantiles calibrated on the same windows."""
    params = {"service_level": hp.service_level}
    blend, windows, answers = fit_blend("forecaster", data, hp, model_dir, seed, parts, _points_only, params)
    weights = [blend["weights"][n] for n in blend["parts"]]
    residuals = forecast_residuals(windows, answers, blend["parts"], weights, hp.horizon)
    blend["calibration"] = forecast_table(residuals) if windows else None
    write_blend(Path(model_dir), blend)
    return run_params(blend)


def _points_only(frames: list[pd.DataFrame], weights: list[float]) -> pd.DataFrame:
    """What the weight is judged on: the weighted point forecast."""
    return blend_points(frames, weights)


class ForecastBlend(Blend):
    """pyfunc: history rows with units, future rows without; the forecaster's output.
    ``meta`` is the transformer part's (the inventory plan reads its period and horizon)."""

    def load_context(self, context: Any) -> None:
        super().load_context(context)
        # the transformer's (the first part's): its period, horizon and past length
        self.meta = next((p.meta for p in self.parts.values() if hasattr(p, "meta")), None)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        level = float((params or {}).get("service_level", 0.95))
        return combine_forecasts(self.answers(context, model_input, params), self.weights,
                                 self.config.get("calibration"), level)


# ------------------------------------------------------------------ rankings


def long_list(top_k: int) -> int:
    """How many items a part is asked for."""
    return max(LONG_LIST, LONG_LIST_FACTOR * top_k)


def fuse_rankings(frames: list[pd.DataFrame], weights: list[float], top_k: int) -> pd.DataFrame:
    """Weighted reciprocal-rank fusion: an item's score is the sum over parts of
    weight / (RRF_K + its rank there); the ``top_k`` best per customer (an item only a part
    of weight 0 ranks is left out; ties go to the heavier part's order)."""
    shares = []
    for i, (frame, weight) in enumerate(zip(frames, weights)):
        shares.append(pd.DataFrame({
            "customer_id": frame["customer_id"].astype(str).to_numpy(object),
            "sku": frame["sku"].astype(str).to_numpy(object), "part": i,
            "rank": frame["rank"].to_numpy(float), "share": weight / (RRF_K + frame["rank"].to_numpy(float)),
        }))
    long = pd.concat(shares, ignore_index=True)
    if long.empty:
        return like(pd.DataFrame(columns=frames[0].columns), frames[0])
    customers = list(dict.fromkeys(c for frame in frames for c in frame["customer_id"].astype(str)))
    ranks = long.pivot_table(index=["customer_id", "sku"], columns="part", values="rank", aggfunc="min")
    fused = long.groupby(["customer_id", "sku"])["share"].sum().to_frame("score").join(ranks).reset_index()
    fused = fused[fused["score"] > 0]
    heavy = int(np.argmax(weights))
    order = [heavy] + [i for i in range(len(frames)) if i != heavy]
    position = pd.Series(np.arange(len(customers)), index=pd.Index(customers, dtype=object))
    fused = fused.assign(position=position[fused["customer_id"]].to_numpy(), neg=-fused["score"],
                         **{f"r{i}": fused[i].fillna(np.inf) if i in fused else np.inf for i in order})
    fused = fused.sort_values(["position", "neg", *(f"r{i}" for i in order)], kind="stable")
    fused["rank"] = fused.groupby("position").cumcount() + 1
    out = fused[fused["rank"] <= top_k][["customer_id", "rank", "sku", "score"]].reset_index(drop=True)
    return like(out, frames[0])


def fit_ranking_blend(data: FamilyData, hp: Any, model_dir: Path, seed: int,
                      parts: dict[str, Path]) -> dict[str, Any]:
    """The recommender's blend: its weight chosen on each training customer's last training
    interaction (leave-last-out of train)."""
    def combine(frames: list[pd.DataFrame], weights: list[float]) -> pd.DataFrame:
        return fuse_rankings(frames, weights, hp.top_k)

    blend, _, _ = fit_blend("recommender", data, hp, model_dir, seed, parts, combine,
                            {"top_k": long_list(hp.top_k)})
    blend["top_k"] = hp.top_k
    write_blend(Path(model_dir), blend)
    return run_params(blend)


class RankingBlend(Blend):
    """pyfunc: customer_id, sku, timestamp of histories in; customer_id, rank, sku, score
    out (a customer with no known history gets what the parts give them: popular items)."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        top_k = int((params or {}).get("top_k") or self.config.get("top_k", 10))
        frames = self.answers(context, model_input, {**(params or {}), "top_k": long_list(top_k)})
        return fuse_rankings(frames, self.weights, top_k)
