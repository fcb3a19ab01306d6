"""The ablation grid: the variants, the missing-rate settings and the setting groups a sweep
crosses, and the canonical order of its tables.

:mod:`redcore_lite.sweep` runs the grid (``rc.sweep.VARIANTS`` etc. are these objects);
:mod:`redcore_lite.stats` and :mod:`redcore_lite.report` order their rows by it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

__all__ = ["BASELINE", "VARIANTS", "SETTINGS", "DEFAULT_SETTINGS", "SETTING_GROUPS", "METRICS"]

BASELINE = "redcore"
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {  # name -> config override (see method doc)
    "redcore": {},  # RedCore: adaptive beta from the relative advantage
    "no_ra": {"advantage": {"mode": "fixed"}},  # beta fixed at 1
    "uniform": {"advantage": {"mode": "uniform"}},  # beta fixed at 1/sqrt(M) (unit norm)
    "inverse": {"advantage": {"mode": "inverse"}},  # beta ∝ 1/(1 - r_m), unit norm, fixed
    "no_vib": {"model": {"vib": False}},  # deterministic encoder, no KL
    "no_rec": {"loss": {"w_rec": 0.0}},  # no cross-modal reconstruction (generators untrained)
    "zero_imp": {"model": {"imputation": "zero"}},  # zeros for missing latents (late fusion)
    "no_heads": {"model": {"unimodal_heads": False}},  # no per-modality classifiers
    "complete": {"train": {"complete_only": True}},  # train on complete samples only
    "redraw": {"mask": {"redraw_each_epoch": True}},  # release protocol: masks move every epoch
    "matched": {"advantage": {"mode": "matched"}},  # peer-matched RA: Rec on complete rows only
}
_PERMS = {"imb_258": (0.2, 0.5, 0.8), "imb_285": (0.2, 0.8, 0.5), "imb_528": (0.5, 0.2, 0.8),
          "imb_582": (0.5, 0.8, 0.2), "imb_825": (0.8, 0.2, 0.5), "imb_852": (0.8, 0.5, 0.2)}
SETTINGS: dict[str, tuple[float, ...]] = {  # name -> missing rate per modality (M = 3)
    "none": (0.0, 0.0, 0.0), "balanced": (0.5, 0.5, 0.5), **_PERMS, "large": (0.7, 0.7, 0.7)}
DEFAULT_SETTINGS = ("balanced", "imb_258", "large")  # what run_sweep and the CLI run by default
SETTING_GROUPS: dict[str, tuple[str, ...]] = {"imbalanced": tuple(_PERMS)}  # pooled per seed
METRICS = ("wa", "ua", "f1")


def _order(frame: pd.DataFrame, patterns: Sequence[str], by: Sequence[str]) -> pd.DataFrame:
    """Sort by the registries' order (variant, setting), split, the given pattern order, metric."""
    cats = {"variant": list(VARIANTS), "setting": list(SETTINGS) + list(SETTING_GROUPS),
            "split": ["val", "test"], "pattern": list(patterns), "metric": list(METRICS)}
    keys = {c: frame[c].map({v: i for i, v in enumerate(cats[c])}).fillna(len(cats[c]))
            if c in cats else frame[c] for c in by}
    idx = pd.DataFrame(keys).sort_values(list(by), kind="stable").index
    return frame.loc[idx].reset_index(drop=True)
