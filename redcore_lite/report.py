"""The ablation report: paired differences of every variant against the baseline as a markdown
text and a CSV table (``redcore-lite report``; ``rc.sweep.report`` is the same function).

The table is checked first (a ValueError naming the column and row): values finite and in
[0, 1], at least one variant paired with the baseline. :func:`report_paths` gives the two files
of a report stem; both are replaced together, only once the report is made.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

import numpy as np

from ._files import atomic_write_many
from .grid import BASELINE, SETTING_GROUPS
from .stats import WORST, paired_differences

__all__ = ["report", "report_paths", "check_table"]


def _mark(row: pd.Series) -> str:
    return ("*" if row["distinguishable"] else "") + ("†" if row["holm"] else "")


def _fmt(row: pd.Series) -> str:
    return f"{row['diff']:+.3f}{_mark(row)} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


def report_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The markdown and CSV files of the report stem ``path``: ``path.md`` and ``path.csv``
    (a ``.md`` or ``.csv`` ending of ``path`` is dropped first; any other suffix is kept, so
    ``s.json`` gives ``s.json.md`` and ``s.json.csv``)."""
    path = Path(path)
    if path.suffix.lower() in (".md", ".csv"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".md"), path.with_name(path.name + ".csv")


def check_table(table: pd.DataFrame, baseline: str = BASELINE, source: str = "table") -> None:
    """Raise a ValueError unless ``table`` can be reported: the columns of a sweep table, every
    ``value`` a finite number in [0, 1] (row and column named), and at least one variant other
    than ``baseline`` with a test run of the same setting and seed (``source`` names the table)."""
    need = ["variant", "setting", "seed", "split", "pattern", "metric", "value"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"{source}: has no column(s) {missing}; allowed: a table of the columns "
                         f"{need} (rc.sweep.load_table)")
    value = pd.to_numeric(table["value"], errors="coerce").astype(float).to_numpy()
    wrong = ~((value >= 0) & (value <= 1))
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0])
        got = table["value"].iloc[row]
        raise ValueError(f"{source}: row {table.index[row]!r}, column value: got "
                         f"{got.item() if isinstance(got, np.generic) else got!r}; allowed: a "
                         "number in [0, 1]")
    test = table[table["split"] == "test"]
    variants = sorted(map(str, set(test["variant"])))
    if baseline not in variants:
        raise ValueError(f"baseline: got {baseline!r}; allowed: a variant with test runs in "
                         f"{source} {variants}")
    runs = test[["variant", "setting", "seed"]].drop_duplicates()
    ours = runs[runs["variant"] == baseline][["setting", "seed"]]
    paired = runs[runs["variant"] != baseline].merge(ours, on=["setting", "seed"])
    if paired.empty:
        raise ValueError(f"{source}: no run of another variant has a {baseline!r} run of the same "
                         f"setting and seed to be compared with (variants: {variants}); allowed: "
                         f"a sweep of {baseline!r} and at least one other variant, e.g. "
                         f"--variants {baseline} no_ra")


def report(table: pd.DataFrame, path: str | os.PathLike | None = None, title: str = "Ablations",
           baseline: str = BASELINE, confidence: float = 0.95,
           source: str = "table") -> tuple[pd.DataFrame, str]:
    """Paired differences of every variant against ``baseline`` as a table and a markdown report.

    Args:
        table: tidy results (:func:`load_table`), checked by :func:`check_table`; path: if
            given, the report stem: both files of :func:`report_paths` are written together.
        source: what ``table`` is, named in errors (the CLI: the results file).
    Returns:
        The :func:`paired_differences` frame (macro-F1 and WA, test split) and the markdown text.
    """
    check_table(table, baseline, source)
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
        md, csv = report_paths(path)
        atomic_write_many({md: text, csv: diffs.to_csv(index=False, float_format="%.5f")})
    return diffs, text
