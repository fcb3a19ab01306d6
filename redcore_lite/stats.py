"""Paired statistics of ablation results: t-intervals, paired t-tests, Holm's correction, and the
per-seed differences of every variant against a baseline (tidy tables of :mod:`redcore_lite.sweep`).

Runs with the same seed share the split, the training mask and the initialisation, so
``baseline - variant`` per seed is a paired difference. ``rc.sweep.<name>`` is the same function.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .grid import BASELINE, SETTING_GROUPS, VARIANTS, _order

__all__ = ["mean_ci", "holm", "paired_p", "WORST", "with_worst", "seed_differences",
           "paired_differences"]


def mean_ci(x: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t-interval ``mean ± t_{(1+c)/2, n-1} * sd / sqrt(n)`` (NaN if n < 2)."""
    from scipy import stats  # a dependency of scikit-learn

    xs = np.asarray(x, dtype=float)
    mean = float(xs.mean()) if len(xs) else float("nan")
    if len(xs) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf((1 + confidence) / 2, len(xs) - 1) * xs.std(ddof=1) / np.sqrt(len(xs)))
    return mean, mean - half, mean + half


WORST = "worst"  # the pseudo-pattern of the lowest per-pattern score of a run (seed_differences)


def with_worst(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` plus, per run, split and metric, a row of pattern ``"worst"``: the lowest value
    over its test availability patterns (``overall`` excluded). A table without per-pattern rows
    is returned as it is."""
    per = table[(table["pattern"] != "overall") & (table["pattern"] != WORST)]
    if per.empty:
        return table
    keys = [c for c in table.columns if c not in ("pattern", "value")]
    worst = per.groupby(keys, sort=False, dropna=False)["value"].min().reset_index()
    return pd.concat([table, worst.assign(pattern=WORST)[table.columns]], ignore_index=True)


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values: the i-th smallest becomes
    ``max_{j <= i} min(1, (m - j + 1) p_(j))`` (1-based j); NaN p-values are left out of the
    family and stay NaN. Rejecting where the adjusted value is below alpha controls the
    family-wise error rate at alpha."""
    ps = np.asarray(p, dtype=float)
    out = np.full(ps.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(ps))
    if len(ok) == 0:
        return out
    order = ok[np.argsort(ps[ok], kind="stable")]
    m = len(order)
    adj = np.minimum(1.0, (m - np.arange(m)) * ps[order])
    out[order] = np.maximum.accumulate(adj)
    return out


def paired_p(x: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test of mean 0 (NaN if n < 2; with SD 0: 1 if the mean
    is 0, else 0). It is below 1 - c exactly when :func:`mean_ci`'s c-interval excludes 0."""
    from scipy import stats

    xs = np.asarray(x, dtype=float)
    if len(xs) < 2:
        return float("nan")
    sd = xs.std(ddof=1)
    if sd == 0:
        return 1.0 if xs.mean() == 0 else 0.0
    t = xs.mean() / (sd / np.sqrt(len(xs)))
    return float(2 * stats.t.sf(abs(t), len(xs) - 1))


def seed_differences(table: pd.DataFrame, baseline: str = BASELINE,
                     metrics: Sequence[str] = ("f1", "wa"), split: str = "test",
                     groups: Mapping[str, Sequence[str]] = SETTING_GROUPS) -> pd.DataFrame:
    """``baseline - variant`` per seed, for every other variant, setting, pattern and metric.

    A setting group (e.g. ``imbalanced``: the six permutations) adds rows that average each seed
    over the group's settings, where every one of them is present. Pattern ``"worst"``
    (:func:`with_worst`): each run's lowest per-pattern score.
    Returns:
        Columns ``setting, seed, pattern, metric, baseline, value, variant, diff`` (``value``: the
        variant's metric; ``diff`` > 0: the baseline is better).
    """
    t = with_worst(table[(table["split"] == split) & table["metric"].isin(metrics)])
    if baseline not in set(t["variant"]):
        raise ValueError(f"baseline: got {baseline!r}; allowed: a variant in the table "
                         f"{sorted(set(t['variant']))}")
    wide = t.pivot_table(index=["setting", "seed", "pattern", "metric"], columns="variant",
                         values="value", aggfunc="first")
    long = [pd.DataFrame(columns=["setting", "seed", "pattern", "metric", "baseline", "value",
                                  "variant", "diff"])]
    for v in [v for v in VARIANTS if v in wide.columns and v != baseline] + \
             sorted(set(wide.columns) - set(VARIANTS)):
        pair = wide[[baseline, v]].dropna().set_axis(["baseline", "value"], axis=1).reset_index()
        long.append(pair.assign(variant=v, diff=pair["baseline"] - pair["value"]))
    d = pd.concat(long, ignore_index=True)
    keys = ["variant", "seed", "pattern", "metric"]
    for name, members in groups.items():
        sub = d[d["setting"].isin(members)]
        full = sub.groupby(keys)["setting"].nunique() == len(members)
        agg = sub.groupby(keys)[["baseline", "value", "diff"]].mean()[full].reset_index()
        d = pd.concat([d, agg.assign(setting=name)], ignore_index=True)
    return _order(d, t["pattern"].unique(), ["setting", "variant", "seed", "pattern", "metric"])


def paired_differences(table: pd.DataFrame, baseline: str = BASELINE,
                       metrics: Sequence[str] = ("f1", "wa"), split: str = "test",
                       confidence: float = 0.95,
                       groups: Mapping[str, Sequence[str]] = SETTING_GROUPS) -> pd.DataFrame:
    """:func:`seed_differences` summarised per setting, variant, pattern and metric.

    Returns:
        One row each with ``n`` (paired seeds), ``baseline_mean``, ``variant_mean``, ``diff``
        (mean of ``baseline - variant``), ``ci_low``, ``ci_high`` (t-interval, :func:`mean_ci`),
        ``wins`` (fraction of seeds where the baseline is better, ties count 1/2),
        ``distinguishable`` (the interval excludes 0), ``p`` (paired t-test, :func:`paired_p`),
        ``p_holm`` (:func:`holm` over the family of the rows with the same metric and the same
        kind of pattern: ``overall``, ``worst``, or the single patterns) and ``holm``
        (``p_holm < 1 - confidence``: distinguishable after the correction).
    """
    d = seed_differences(table, baseline, metrics, split, groups)
    rows = []
    for (s, v, p, m), g in d.groupby(["setting", "variant", "pattern", "metric"], sort=False):
        mean, lo, hi = mean_ci(g["diff"], confidence)
        rows.append({"setting": s, "variant": v, "pattern": p, "metric": m, "n": len(g),
                     "baseline_mean": g["baseline"].mean(), "variant_mean": g["value"].mean(),
                     "diff": mean, "ci_low": lo, "ci_high": hi,
                     "wins": float(((g["diff"] > 0) + 0.5 * (g["diff"] == 0)).mean()),
                     "distinguishable": bool(lo > 0 or hi < 0), "p": paired_p(g["diff"])})
    out = pd.DataFrame(rows, columns=["setting", "variant", "pattern", "metric", "n",
                                      "baseline_mean", "variant_mean", "diff", "ci_low", "ci_high",
                                      "wins", "distinguishable", "p"])
    kind = out["pattern"].where(out["pattern"].isin(["overall", WORST]), "pattern")
    out["p_holm"] = np.nan
    for idx in out.groupby([out["metric"], kind]).groups.values():
        out.loc[idx, "p_holm"] = holm(out.loc[idx, "p"].to_numpy())
    out["holm"] = out["p_holm"] < 1 - confidence
    return out
