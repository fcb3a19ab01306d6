"""Classification metrics (scikit-learn): WA = accuracy, UA = macro recall, F1 = macro-F1."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, recall_score

__all__ = ["classification_metrics", "pattern_metrics"]


def classification_metrics(y: np.ndarray, y_hat: np.ndarray) -> dict[str, float]:
    """WA, UA and macro-F1 of predictions.

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


def pattern_metrics(y: np.ndarray, logits: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """Metrics per availability pattern and overall (every sample under every pattern).

    Args:
        y: ``[N]`` labels; logits: ``[P, N, C]``; names: P pattern names.
    Returns:
        One row per pattern plus ``"overall"``, columns ``pattern, n, wa, ua, f1``.
    """
    y = np.asarray(y)
    pred = np.asarray(logits).argmax(-1)  # [P, N]
    rows = [{"pattern": name, "n": len(y), **classification_metrics(y, pred[p])}
            for p, name in enumerate(names)]
    rows.append({"pattern": "overall", "n": pred.size,
                 **classification_metrics(np.tile(y, len(names)), pred.reshape(-1))})
    return pd.DataFrame(rows)
