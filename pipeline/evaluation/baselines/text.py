"""Classification baselines: TF-IDF + logistic regression (a fit and a predict the classic
sentiment candidate reuses) and the majority class (the reference baseline)."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import pandas as pd

from pipeline.datasets import FamilyData
from pipeline.language import script_mix

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
