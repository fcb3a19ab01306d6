"""What a fit produces: the per-epoch event its callbacks receive and the :class:`Result`."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from .config import Config
from .model import RedCore

__all__ = ["EpochEnd", "Result", "history_columns"]


@dataclass
class EpochEnd:
    """What a callback receives after each epoch."""

    epoch: int  # 0-based index of the finished epoch
    metrics: dict[str, float]  # this epoch's row of Result.epochs
    beta: np.ndarray  # [M] beta at the end of the epoch


@dataclass
class Result:
    """Everything a run produced. ``model`` holds the weights of the selected (best-val) epoch."""

    config: Config
    modalities: tuple[str, ...]
    history: pd.DataFrame  # one row per training step: every loss term, beta, RA, EMA, eta, lr
    epochs: pd.DataFrame  # one row per epoch: lr, mean loss, validation WA/UA/F1
    val: pd.DataFrame  # per-pattern validation metrics at the selected epoch
    test: pd.DataFrame  # per-pattern test metrics at the selected epoch
    best_epoch: int
    model: RedCore
    train_mask: torch.Tensor  # [N_train, M] bool, the mask of the last epoch (observed & simulated)
    # extra["data"]: the data's description (Splits.describe()); extra["mask"]: which kind of
    # training mask the run used (mask_kind) and its mechanism; extra["rec_strata"]: Rec by
    # availability pattern and epoch (redcore_lite.diagnostics.strata_frame)
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what the run found wrong (latent collapse)
    observed_mask: torch.Tensor | None = None  # [N_train, M] bool, the data's own holes (or None)
    # with train.eval_complete and observed holes in val/test: the complete rows of each split
    # under every availability pattern (the per-pattern protocol of data without holes)
    val_complete: pd.DataFrame | None = None
    test_complete: pd.DataFrame | None = None

    def beta(self) -> pd.DataFrame:
        """Per-step beta, one column per modality."""
        return self.history[[f"beta_{m}" for m in self.modalities]].set_axis(self.modalities, axis=1)

    def diagnostics(self) -> pd.DataFrame:
        """One row per epoch: the training means of the fused CE and of each ``rec_m``, the
        validation F1, and each modality's latent spread and posterior SD (the collapse check).
        What :func:`redcore_lite.plots.latent_collapse` draws."""
        cols = ["ce_fused", *(f"rec_{m}" for m in self.modalities)]
        means = self.history.groupby("epoch")[cols].mean()
        cols = ["val_f1", *(f"{k}_{m}" for k in ("spread", "post_sd") for m in self.modalities)]
        return means.join(self.epochs.set_index("epoch")[cols])


def history_columns(mods: Sequence[str]) -> list[str]:
    """The names of a training step's history row (:meth:`LossTerms.history_row
    <redcore_lite.losses.LossTerms.history_row>` followed by beta, RA and the EMA)."""
    cols = ["loss", "ce_fused"]
    for key in ("ce", "kl", "rec", "observed", "beta", "ra", "lbar"):
        cols += [f"{key}_{m}" for m in mods]
    return cols
