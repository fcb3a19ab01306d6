"""Classification metrics: WA = accuracy, UA = macro recall, F1 = macro-F1.

:func:`classification_metrics` calls scikit-learn. :func:`pattern_metrics`, run every epoch on
every pattern, computes the same numbers from one batched confusion matrix (tests check that it
equals scikit-learn's to the last digit that matters).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, recall_score

__all__ = ["classification_metrics", "confusion_metrics", "pattern_confusion", "pattern_metrics",
           "grouped_metrics"]


def classification_metrics(y: np.ndarray, y_hat: np.ndarray) -> dict[str, float]:
    """WA, UA and macro-F1 of predictions (scikit-learn).

    Args:
        y, y_hat: ``[N]`` integer labels and predictions.
    Returns:
        ``wa`` (accuracy), ``ua`` (mean recall over the classes present in y, i.e. balanced
        accuracy) and ``f1`` (macro-F1 over the classes in y or y_hat, scikit-learn's default).
    """
    y, y_hat = np.asarray(y), np.asarray(y_hat)
    return {
        "wa": float(accuracy_score(y, y_hat)),
        "ua": float(recall_score(y, y_hat, average="macro", labels=np.unique(y), zero_division=0)),
        "f1": float(f1_score(y, y_hat, average="macro", zero_division=0)),
    }


def confusion_metrics(cm: np.ndarray) -> dict[str, np.ndarray]:
    """WA, UA and macro-F1 from confusion matrices ``cm: [..., C, C]`` (rows = true class).

    Same definitions as :func:`classification_metrics`: UA averages recall over the classes
    present in the truth; F1 averages over the classes present in the truth or the predictions.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    true, pred = cm.sum(-1), cm.sum(-2)
    n = true.sum(-1)
    in_true, in_any = true > 0, (true + pred) > 0
    recall = np.divide(tp, true, out=np.zeros_like(tp), where=in_true)
    f1 = np.divide(2 * tp, true + pred, out=np.zeros_like(tp), where=in_any)
    return {"wa": tp.sum(-1) / n,
            "ua": recall.sum(-1) / in_true.sum(-1),
            "f1": f1.sum(-1) / in_any.sum(-1)}


def pattern_confusion(y: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Confusion matrices ``[P + 1, C, C]`` of every pattern's predictions and, last, of all pooled.

    Args:
        y: ``[N]`` labels; logits: ``[P, N, C]``.
    """
    y = np.asarray(y).astype(np.int64)
    logits = np.asarray(logits)
    num_pat, n, c = logits.shape
    c = max(c, int(y.max()) + 1)
    pred = logits.argmax(-1)  # [P, N]
    codes = (np.arange(num_pat)[:, None] * c + y[None, :]) * c + pred
    cm = np.bincount(codes.ravel(), minlength=num_pat * c * c).reshape(num_pat, c, c)
    return np.concatenate([cm, cm.sum(0, keepdims=True)])  # + overall


def pattern_metrics(y: np.ndarray, logits: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """Metrics per availability pattern and overall (every sample under every pattern).

    Args:
        y: ``[N]`` labels; logits: ``[P, N, C]``; names: P pattern names.
    Returns:
        One row per pattern plus ``"overall"``, columns ``pattern, n, wa, ua, f1``.
    """
    num_pat, n = np.shape(logits)[:2]
    m = confusion_metrics(pattern_confusion(y, logits))
    return pd.DataFrame({"pattern": [*names, "overall"], "n": [n] * num_pat + [num_pat * n],
                         "wa": m["wa"], "ua": m["ua"], "f1": m["f1"]})


def grouped_metrics(y: np.ndarray, logits: np.ndarray, groups: np.ndarray,
                    names: Sequence[str]) -> pd.DataFrame:
    """Metrics per group of samples (each sample scored once) and overall.

    What evaluation by *observed* pattern reports: every sample is predicted under its own
    availability pattern, and the table has one row per pattern that occurs.

    Args:
        y: ``[N]`` labels; logits: ``[N, C]``; groups: ``[N]`` group index in ``0..G-1``;
        names: G group names (groups without a sample are left out).
    Returns:
        One row per non-empty group plus ``"overall"``, columns ``pattern, n, wa, ua, f1``.
    """
    y = np.asarray(y).astype(np.int64)
    logits, groups = np.asarray(logits), np.asarray(groups).astype(np.int64)
    num_groups = len(names)
    c = max(logits.shape[-1], int(y.max(initial=0)) + 1)
    codes = (groups * c + y) * c + logits.argmax(-1)
    cm = np.bincount(codes, minlength=num_groups * c * c).reshape(num_groups, c, c)
    counts = np.bincount(groups, minlength=num_groups)
    keep = np.flatnonzero(counts > 0)
    m = confusion_metrics(np.concatenate([cm[keep], cm.sum(0, keepdims=True)]))
    return pd.DataFrame({"pattern": [names[int(k)] for k in keep] + ["overall"],
                         "n": [int(counts[k]) for k in keep] + [int(len(y))],
                         "wa": m["wa"], "ua": m["ua"], "f1": m["f1"]})
