"""The ablation report: paired differences of every variant against the baseline as a markdown
text and a CSV table (``redcore-lite report``; ``rc.sweep.report`` is the same function).
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ._files import atomic_write_text
from .grid import BASELINE, SETTING_GROUPS
from .stats import WORST, paired_differences

__all__ = ["report"]


def _mark(row: pd.Series) -> str:
    return ("*" if row["distinguishable"] else "") + ("†" if row["holm"] else "")


def _fmt(row: pd.Series) -> str:
    return f"{row['diff']:+.3f}{_mark(row)} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


def report(table: pd.DataFrame, path: str | os.PathLike | None = None, title: str = "Ablations",
           baseline: str = BASELINE, confidence: float = 0.95) -> tuple[pd.DataFrame, str]:
    """Paired differences of every variant against ``baseline`` as a table and a markdown report.

    Args:
        table: tidy results (:func:`load_table`); path: if given, ``path.md`` and ``path.csv`` are
            written atomically.
    Returns:
        The :func:`paired_differences` frame (macro-F1 and WA, test split) and the markdown text.
    """
    diffs = paired_differences(table, baseline, ("f1", "wa"), "test", confidence)
    pct = f"{confidence:.0%}"
    lo, hi = diffs["n"].min(), diffs["n"].max()
    n = f"{lo}–{hi}" if lo != hi else str(lo)
    lines = [f"# {title}", "",
             f"Test split. Each number is **{baseline} minus variant** (positive: {baseline} is "
             f"better), the mean over {n} paired seeds, with a {pct} t-interval in brackets; "
             "`*` marks a difference distinguishable from zero (the interval excludes 0), `†` one "
             "that stays so after Holm's correction for multiple comparisons (paired t-tests, "
             f"family-wise error {1 - confidence:.0%} within each family: one metric and either "
             "the overall rows, the worst-pattern rows or the per-pattern rows; `p_holm` in the "
             "CSV). *worst pattern*: each run's lowest per-pattern F1, paired like the others. *wins*: "
             f"fraction of seeds where {baseline} is better (ties count 1/2). "
             + "".join(f"`{g}` averages each seed over {', '.join(m)} first. " for g, m in
                       SETTING_GROUPS.items() if g in set(diffs["setting"]))
             + "Without the correction about "
             f"{1 - confidence:.0%} of truly null comparisons exclude 0 by chance.",
             "", "## Overall (every test pattern pooled)", "",
             (f"| setting | variant | {baseline} F1 | variant F1 | ΔF1 [{pct} CI] | wins F1 | "
              f"ΔWA [{pct} CI] | wins WA | worst pattern: {baseline} F1 | ΔF1 worst [{pct} CI] |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    ov = diffs[diffs["pattern"] == "overall"].set_index(["setting", "variant", "metric"])
    wo = diffs[diffs["pattern"] == WORST].set_index(["setting", "variant", "metric"])
    for s, v in dict.fromkeys((s, v) for s, v, _ in ov.index):
        f, w = ov.loc[(s, v, "f1")], ov.loc[(s, v, "wa")]
        x = wo.loc[(s, v, "f1")] if (s, v, "f1") in wo.index else None
        worst = ("– | –" if x is None else f"{x['baseline_mean']:.3f} | {_fmt(x)}")
        lines.append(f"| {s} | {v} | {f['baseline_mean']:.3f} | {f['variant_mean']:.3f} | "
                     f"{_fmt(f)} | {f['wins']:.2f} | {_fmt(w)} | {w['wins']:.2f} | {worst} |")
    lines += ["", "## Which overall differences are distinguishable from zero", ""]
    for metric, label in (("f1", "macro-F1"), ("wa", "WA")):
        o = diffs[(diffs["pattern"] == "overall") & (diffs["metric"] == metric)]
        for verdict, mask in ((f"{baseline} better", o["ci_low"] > 0),
                              (f"{baseline} worse", o["ci_high"] < 0),
                              ("not distinguishable", ~o["distinguishable"])):
            items = ", ".join(f"{v} ({s}, {d:+.3f})" for s, v, d in
                              o[mask][["setting", "variant", "diff"]].itertuples(index=False))
            lines.append(f"- {label}, {verdict}: {items or 'none'}")
        held = ", ".join(f"{v} ({s}, {d:+.3f})" for s, v, d in
                         o[o["holm"]][["setting", "variant", "diff"]].itertuples(index=False))
        lines.append(f"- {label}, distinguishable after Holm's correction ({len(o)} comparisons): "
                     f"{held or 'none'}")
    f1 = diffs[diffs["metric"] == "f1"]
    pats = list(dict.fromkeys(f1["pattern"]))
    lines += ["", ("## Per test pattern (ΔF1; `*` = distinguishable from zero, `†` = after Holm; "
                   "`worst`: each run's lowest per-pattern F1)"), "",
              "| setting | variant | " + " | ".join(pats) + " |", "|---|---|" + "---|" * len(pats)]
    cells = f1.assign(cell=[f"{r['diff']:+.3f}{_mark(r)}" for _, r in f1.iterrows()])
    wide = cells.pivot(index=["setting", "variant"], columns="pattern", values="cell")
    for s, v in dict.fromkeys(zip(f1["setting"], f1["variant"])):
        lines.append(f"| {s} | {v} | " + " | ".join(wide.loc[(s, v), pats]) + " |")
    text = "\n".join(lines) + "\n"
    if path is not None:
        path = Path(path)
        atomic_write_text(path.with_suffix(".md"), text)
        atomic_write_text(path.with_suffix(".csv"), diffs.to_csv(index=False, float_format="%.5f"))
    return diffs, text
