"""Diagnostics of a run: reconstruction loss by peer stratum, encoder-gradient imbalance, and the
equity of the per-pattern scores.

* **Rec by peer stratum.** ``Rec_m`` is averaged over the training rows that have m, and m's
  generator sees m's peers, so ``Rec_m`` mixes strata that differ in how many peers fed the
  generator. :func:`fit <redcore_lite.trainer.fit>` sums each row's ``||g_m - z_m||^2`` per
  availability pattern on the device (:func:`accumulate_strata`; one host copy per epoch) and
  :func:`rec_strata` turns the sums into ``Rec_m`` per set of present peers. The decomposition is
  exact: ``Rec_m = sum_s n_s Rec_m^(s) / sum_s n_s`` over the strata s (:func:`rec_decomposition`).
* **Gradient imbalance.** The L2 norm of each modality's encoder gradient, before clipping, averaged
  over an epoch's steps (``Result.epochs["grad_<m>"]``); :func:`grad_imbalance` adds max / min.
* **Pattern equity.** :func:`pattern_equity` summarises a per-pattern score table: spread and SD of
  the score over the test patterns, the worst pattern, and each modality's marginal contribution
  (the mean gain from adding m to a non-empty pattern without m).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from .masking import pattern_codes

__all__ = ["strata_buffer", "accumulate_strata", "encoder_grad_norms", "strata_frame",
           "rec_strata", "rec_decomposition", "grad_imbalance", "pattern_equity",
           "marginal_contributions"]


def strata_buffer(num_modalities: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Zeros ``[M + 1, 2^M]``: rows 0..M-1 sum ``||g_m - z_m||^2`` per pattern code, row M counts
    the rows of each pattern (code ``sum_m a_m 2^m``, :func:`redcore_lite.masking.pattern_codes`)."""
    return torch.zeros(num_modalities + 1, 2 ** num_modalities, device=device)


def accumulate_strata(acc: torch.Tensor, rows: torch.Tensor, avail: torch.Tensor) -> None:
    """Add one batch to ``acc`` (from :func:`strata_buffer`), in place, on the device (no sync).

    Args:
        rows: ``[M, B]`` each row's ``||g_m - z_m||^2``, 0 where m is absent; avail: ``[B, M]``.
    """
    codes = pattern_codes(avail)
    acc.index_add_(1, codes, torch.cat([rows.to(acc.dtype), acc.new_ones(1, rows.shape[1])]))


def encoder_grad_norms(groups: Sequence[Sequence[torch.nn.Parameter]]) -> torch.Tensor:
    """``[M]`` the L2 norm of each group's gradients (one group per modality's encoder; a group
    without gradients counts 0). On the device, no sync."""
    norms = []
    for params in groups:
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            norms.append(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0))
        else:
            norms.append(torch.zeros((), device=params[0].device if params else "cpu"))
    return torch.stack(norms).float()


def _names(modalities: Sequence[str], members: Sequence[int]) -> str:
    sep = "" if all(len(m) == 1 for m in modalities) else "+"
    return sep.join(modalities[k] for k in members) or "none"


def strata_frame(sums: Sequence[torch.Tensor] | torch.Tensor, modalities: Sequence[str],
                 epochs: Sequence[int] | None = None) -> pd.DataFrame:
    """The per-epoch buffers as a long table: one row per epoch, modality m and training pattern
    that has m, with ``peers`` (the present peers, ``"none"`` if none), ``num_peers``, ``n`` (rows
    of that pattern in the epoch), ``rec_sum`` and ``rec`` (= rec_sum / n).

    Args:
        sums: the ``[M + 1, 2^M]`` buffer of each epoch (or stacked ``[E, M + 1, 2^M]``).
    """
    num_mod = len(modalities)
    stack = torch.stack(list(sums)) if not isinstance(sums, torch.Tensor) else sums
    if stack.dim() != 3 or stack.shape[1:] != (num_mod + 1, 2 ** num_mod):
        raise ValueError(f"sums: got shape {tuple(stack.shape)}; allowed: [epochs, {num_mod + 1}, "
                         f"{2 ** num_mod}] for {num_mod} modalities")
    arr = stack.double().cpu().numpy()
    epochs = list(range(len(arr))) if epochs is None else list(epochs)
    out = []
    for e, a in zip(epochs, arr):
        for code in range(1, 2 ** num_mod):
            present = [k for k in range(num_mod) if code >> k & 1]
            n = a[num_mod, code]
            if n == 0:
                continue
            for m in present:
                peers = [k for k in present if k != m]
                out.append({"epoch": e, "modality": modalities[m],
                            "pattern": _names(modalities, present), "peers": _names(modalities, peers),
                            "num_peers": len(peers), "n": int(n), "rec_sum": a[m, code],
                            "rec": a[m, code] / n})
    return pd.DataFrame(out, columns=["epoch", "modality", "pattern", "peers", "num_peers", "n",
                                      "rec_sum", "rec"])


def _strata(result: Any) -> pd.DataFrame:
    frame = result.extra.get("rec_strata") if hasattr(result, "extra") else result
    if frame is None or len(frame) == 0:
        raise ValueError("result: has no Rec strata (recorded by fit's eager step since this "
                         "version; not with train.cuda_graph / train.compile); allowed: a Result "
                         "of such a fit, or its extra['rec_strata'] frame")
    return frame


def rec_strata(result: Any, by: str = "peers", epochs: Sequence[int] | slice | None = None
               ) -> pd.DataFrame:
    """Rec of each modality per stratum, pooled (row-weighted) over ``epochs`` (None: all).

    Args:
        result: a :class:`~redcore_lite.trainer.Result` (or its ``extra["rec_strata"]`` frame).
        by: ``"peers"`` (the set of present peers), ``"num_peers"`` (how many) or ``"any_peer"``
            (none / at least one).
    Returns:
        one row per modality and stratum (with ``num_peers`` when ``by="peers"``): ``n`` (rows),
        ``share`` (of m's rows), ``rec``.
    """
    if by not in ("peers", "num_peers", "any_peer"):
        raise ValueError(f"by: got {by!r}; allowed: 'peers', 'num_peers', 'any_peer'")
    f = _strata(result)
    if epochs is not None:
        keep = sorted(f["epoch"].unique())[epochs] if isinstance(epochs, slice) else list(epochs)
        f = f[f["epoch"].isin(keep)]
    f = f.assign(any_peer=np.where(f["num_peers"] > 0, "some", "none"))
    keys = ["modality", by] + (["num_peers"] if by == "peers" else [])
    g = f.groupby(keys, sort=False)[["n", "rec_sum"]].sum().reset_index()
    g["share"] = g["n"] / g.groupby("modality")["n"].transform("sum")
    g["rec"] = g["rec_sum"] / g["n"]
    return g.drop(columns="rec_sum")


def rec_decomposition(result: Any) -> pd.DataFrame:
    """Per epoch and modality: ``rec`` (the row-weighted epoch mean of ``||g_m - z_m||^2``, from the
    strata), ``mean_peers`` (mean number of present peers over m's rows), and ``rec_none`` /
    ``rec_some`` (Rec on m's rows with no peer / with at least one). ``rec`` is exactly
    ``sum_s n_s rec_s / sum_s n_s``."""
    f = _strata(result)
    rows = []
    for (e, m), g in f.groupby(["epoch", "modality"], sort=False):
        n = g["n"].sum()
        none, some = g[g["num_peers"] == 0], g[g["num_peers"] > 0]
        rows.append({"epoch": e, "modality": m, "n": int(n), "rec": g["rec_sum"].sum() / n,
                     "mean_peers": float((g["n"] * g["num_peers"]).sum() / n),
                     "rec_none": none["rec_sum"].sum() / none["n"].sum() if len(none) else np.nan,
                     "rec_some": some["rec_sum"].sum() / some["n"].sum() if len(some) else np.nan})
    return pd.DataFrame(rows)


def grad_imbalance(result: Any) -> pd.DataFrame:
    """Per epoch: each modality's mean encoder gradient norm (before clipping) and ``ratio`` =
    max / min over the modalities (1 = balanced)."""
    mods = list(result.modalities)
    cols = [f"grad_{m}" for m in mods]
    if not set(cols) <= set(result.epochs.columns):
        raise ValueError("result: has no grad_<m> columns in its epochs (recorded by fit's eager "
                         "step since this version); allowed: a Result of such a fit")
    g = result.epochs.set_index("epoch")[cols].set_axis(mods, axis=1)
    return g.assign(ratio=g.max(axis=1) / g.min(axis=1).where(g.min(axis=1) > 0))


def _members(pattern: str, modalities: Sequence[str]) -> frozenset[str]:
    if all(len(m) == 1 for m in modalities):
        return frozenset(pattern)
    return frozenset(pattern.split("+"))


def marginal_contributions(table: pd.DataFrame, modalities: Sequence[str], metric: str = "f1"
                           ) -> pd.Series:
    """Each modality's mean gain ``score(P + m) - score(P)`` over the non-empty patterns P without
    m (for M = 3: two singletons and one pair per modality).

    Args:
        table: per-pattern scores (``Result.test``: a ``pattern`` column, one row per pattern).
    """
    mods = list(modalities)
    rows = table[table["pattern"] != "overall"]
    score = {_members(p, mods): float(v) for p, v in zip(rows["pattern"], rows[metric])}
    out = {}
    for m in mods:
        gains = [score[p | {m}] - s for p, s in score.items() if m not in p and p and p | {m} in score]
        out[m] = float(np.mean(gains)) if gains else np.nan
    return pd.Series(out, name=f"marginal_{metric}")


def pattern_equity(table: pd.DataFrame, modalities: Sequence[str], metric: str = "f1"
                   ) -> dict[str, Any]:
    """Equity of a per-pattern score table: ``spread`` (max - min over the patterns), ``sd``
    (population SD), ``worst`` / ``worst_pattern``, ``best`` / ``best_pattern``, ``mean`` (the
    unweighted mean over the patterns) and ``marginal`` (:func:`marginal_contributions`)."""
    if metric not in table.columns:
        raise ValueError(f"metric: got {metric!r}; allowed: a column of the table "
                         f"({[c for c in table.columns if c != 'pattern']})")
    rows = table[table["pattern"] != "overall"]
    v = rows[metric].to_numpy(float)
    i, j = int(np.argmin(v)), int(np.argmax(v))
    return {"spread": float(v[j] - v[i]), "sd": float(v.std()), "mean": float(v.mean()),
            "worst": float(v[i]), "worst_pattern": rows["pattern"].iloc[i],
            "best": float(v[j]), "best_pattern": rows["pattern"].iloc[j],
            "marginal": marginal_contributions(table, modalities, metric)}
