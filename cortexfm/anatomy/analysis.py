"""Barcodes -> anatomy: cell-type classification, continuous features, like-to-like wiring.

All scores are cross-validated; hyper-parameters are chosen in an inner loop (nested CV), so
no score is computed on data that chose the model. Chance levels come from label
permutations, and every analysis is run beside baselines that use no barcode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import pearsonr
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, r2_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

CLASSIFIERS = ("logistic", "random_forest")


def _classifier(kind: str, seed: int) -> GridSearchCV:
    if kind == "logistic":
        model = make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced")
        )
        grid = {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]}
    elif kind == "random_forest":
        model = RandomForestClassifier(
            n_estimators=200, class_weight="balanced", random_state=seed, n_jobs=1
        )
        grid = {"min_samples_leaf": [1, 5, 20]}
    else:
        raise ValueError(f"unknown classifier {kind!r}; choose one of {CLASSIFIERS}")
    inner = StratifiedKFold(3, shuffle=True, random_state=seed)
    return GridSearchCV(model, grid, cv=inner, scoring="balanced_accuracy", n_jobs=1)


@dataclass
class ClassificationResult:
    name: str
    balanced_accuracy: float
    chance: float  # mean balanced accuracy with permuted labels
    chance_sd: float
    confusion: pd.DataFrame  # rows: true type, columns: predicted type (row-normalised)
    n: int


def classify(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    name: str = "barcode",
    kind: str = "logistic",
    folds: int = 5,
    permutations: int = 5,
    seed: int = 0,
) -> ClassificationResult:
    """Nested cross-validated balanced accuracy, confusion matrix and a permutation chance."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(str)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} feature rows but {len(y)} labels")
    classes, counts = np.unique(y, return_counts=True)
    if np.sum(counts >= folds) < 2:
        raise ValueError(
            f"{name}: classifying cell types needs at least 2 types with >= {folds} neurons "
            f"each (for {folds}-fold cross-validation); the table has "
            f"{dict(zip(classes.tolist(), counts.tolist(), strict=True))}"
        )
    if counts.min() < folds:
        keep = np.isin(y, classes[counts >= folds])
        x, y = x[keep], y[keep]
        classes = np.unique(y)
    classes, y = np.unique(y, return_inverse=True)  # integer codes (some estimators need them)
    outer = StratifiedKFold(folds, shuffle=True, random_state=seed)
    predicted = cross_val_predict(_classifier(kind, seed), x, y, cv=outer)
    score = balanced_accuracy_score(y, predicted)
    rng = np.random.default_rng(seed)
    null = []
    for _ in range(permutations):
        shuffled = rng.permutation(y)
        p = cross_val_predict(_classifier(kind, seed), x, shuffled, cv=outer)
        null.append(balanced_accuracy_score(shuffled, p))
    matrix = confusion_matrix(y, predicted, labels=np.arange(len(classes)), normalize="true")
    return ClassificationResult(
        name=name,
        balanced_accuracy=float(score),
        chance=float(np.mean(null)) if null else 1 / len(classes),
        chance_sd=float(np.std(null)) if null else 0.0,
        confusion=pd.DataFrame(matrix, index=classes, columns=classes),
        n=len(y),
    )


def regress(
    features: np.ndarray, targets: pd.DataFrame, *, folds: int = 5, seed: int = 0
) -> pd.DataFrame:
    """Cross-validated ridge regression (alpha chosen inside each training fold) of every
    target column: R^2 and Pearson r of the held-out predictions."""
    x = np.asarray(features, dtype=np.float64)
    rows = []
    for column in targets.columns:
        y = targets[column].to_numpy(dtype=np.float64)
        ok = np.isfinite(y) & np.isfinite(x).all(axis=1)
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
        predicted = cross_val_predict(
            model, x[ok], y[ok], cv=KFold(folds, shuffle=True, random_state=seed)
        )
        rows.append(
            {
                "target": column,
                "r2": float(r2_score(y[ok], predicted)),
                "pearson_r": float(pearsonr(y[ok], predicted)[0]),
                "n": int(ok.sum()),
            }
        )
    return pd.DataFrame(rows)


# -- connectivity -------------------------------------------------------------------------------


def pair_table(
    barcodes: np.ndarray,
    positions: np.ndarray,
    somas: np.ndarray,
    connections: pd.DataFrame,
    *,
    max_distance_um: float = 300.0,
    negatives_per_positive: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """Connected pairs plus sampled unconnected pairs (same soma-distance range), with
    ``barcode_similarity`` (cosine), ``position_similarity`` (minus readout-position distance)
    and ``distance_um`` (soma distance). Rows of ``connections`` index the neuron arrays."""
    rng = np.random.default_rng(seed)
    n = len(barcodes)
    b = barcodes / np.maximum(np.linalg.norm(barcodes, axis=1, keepdims=True), 1e-12)
    connected = set(zip(connections.pre.to_numpy(), connections.post.to_numpy(), strict=True))
    pos = [(i, j) for i, j in connected if i != j]
    neg = []
    tries = 0
    while len(neg) < negatives_per_positive * len(pos) and tries < 200 * max(1, len(pos)):
        tries += 1
        i, j = rng.integers(n, size=2)
        if i == j or (i, j) in connected:
            continue
        if np.linalg.norm(somas[i] - somas[j]) <= max_distance_um:
            neg.append((int(i), int(j)))
    pairs = np.array(pos + neg, dtype=np.int64).reshape(-1, 2)
    i, j = pairs[:, 0], pairs[:, 1]
    return pd.DataFrame(
        {
            "pre": i,
            "post": j,
            "connected": np.r_[np.ones(len(pos)), np.zeros(len(neg))].astype(int),
            "barcode_similarity": (b[i] * b[j]).sum(1),
            "position_similarity": -np.linalg.norm(positions[i] - positions[j], axis=1),
            "distance_um": np.linalg.norm(somas[i] - somas[j], axis=1),
        }
    )


def connectivity_scores(pairs: pd.DataFrame, *, folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Cross-validated AUC of logistic models of connection: distance alone, distance +
    barcode similarity, distance + readout-position similarity, and all three."""
    sets = {
        "distance": ["distance_um"],
        "distance + barcode": ["distance_um", "barcode_similarity"],
        "distance + position": ["distance_um", "position_similarity"],
        "distance + barcode + position": [
            "distance_um",
            "barcode_similarity",
            "position_similarity",
        ],
    }
    y = pairs.connected.to_numpy()
    rows = []
    for name, columns in sets.items():
        x = pairs[columns].to_numpy(dtype=np.float64)
        x = np.c_[x, x[:, :1] ** 2]  # distance enters quadratically (a Gaussian fall-off)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        p = cross_val_predict(
            model,
            x,
            y,
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
            method="predict_proba",
        )[:, 1]
        rows.append(
            {
                "model": name,
                "auc": float(roc_auc_score(y, p)),
                "pairs": len(y),
                "connected": int(y.sum()),
            }
        )
    # barcode similarity alone among pairs at a matched distance: within-distance-bin AUC
    bins = pd.qcut(pairs.distance_um, 5, duplicates="drop")
    aucs = [
        roc_auc_score(g.connected, g.barcode_similarity)
        for _, g in pairs.groupby(bins, observed=True)
        if g.connected.nunique() == 2
    ]
    rows.append(
        {
            "model": "barcode within distance bins",
            "auc": float(np.mean(aucs)),
            "pairs": len(y),
            "connected": int(y.sum()),
        }
    )
    return pd.DataFrame(rows)


def probability_by_decile(pairs: pd.DataFrame, column: str = "barcode_similarity") -> pd.DataFrame:
    """Connection probability (among the sampled pairs) per decile of a similarity."""
    deciles = pd.qcut(pairs[column], 10, labels=False, duplicates="drop")
    grouped = pairs.groupby(deciles)
    return pd.DataFrame(
        {
            "decile": grouped.size().index + 1,
            "similarity_mean": grouped[column].mean().to_numpy(),
            "connection_probability": grouped.connected.mean().to_numpy(),
            "pairs": grouped.size().to_numpy(),
        }
    )
