"""Evaluation of a trained model: fused logits under every availability pattern or under each
sample's own observed pattern, the per-pattern WA / UA / macro-F1 table, the overall scores the
trainer selects epochs by, and the latent-collapse check (latent spread against the posterior SD).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch

from ._checks import check_choice
from .data import MultimodalData
from .masking import eval_patterns, pattern_codes, pattern_names
from .metrics import confusion_metrics, grouped_metrics, pattern_confusion, pattern_metrics
from .model import RedCore

__all__ = ["predict_logits", "predict_observed", "EVAL_PROTOCOLS", "evaluate", "overall_scores",
           "latent_spread", "COLLAPSE_RATIO", "collapse_warning", "LatentCollapseWarning"]


def predict_logits(model: RedCore, data: MultimodalData, patterns: torch.Tensor,
                   batch_size: int = 1024) -> torch.Tensor:
    """Fused logits ``[P, N, C]`` of every sample of ``data`` under every pattern (eval mode)."""
    was_training = model.training
    model.eval()
    chunks = []
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)), device=data.labels.device)
        xs, lens = data.inputs(idx)
        chunks.append(model.predict_patterns(xs, lens, patterns).float())
    model.train(was_training)
    return torch.cat(chunks, dim=1)


def predict_observed(model: RedCore, data: MultimodalData, batch_size: int = 1024) -> torch.Tensor:
    """Fused logits ``[N, C]`` of every sample under its own observed pattern (eval mode).

    Samples are grouped by pattern and each group goes through :meth:`RedCore.predict_patterns`
    with that one pattern, so a sample's logits are those of the every-pattern protocol's row
    for its pattern.
    """
    codes = pattern_codes(data.observed.cpu())
    num_mod = len(data.modalities)
    out: torch.Tensor | None = None
    was_training = model.training
    model.eval()
    for code in torch.unique(codes).tolist():
        rows = torch.nonzero(codes == code).flatten()
        pattern = torch.tensor([[bool(code >> m & 1) for m in range(num_mod)]])
        for start in range(0, len(rows), batch_size):
            idx = rows[start:start + batch_size].to(data.labels.device)
            xs, lens = data.inputs(idx)
            logits = model.predict_patterns(xs, lens, pattern)[0].float()
            if out is None:
                out = logits.new_zeros(len(data), logits.shape[-1])
            out[idx] = logits
    model.train(was_training)
    assert out is not None
    return out


EVAL_PROTOCOLS = ("auto", "observed", "patterns")


def _protocol(data: MultimodalData, protocol: str) -> str:
    check_choice(protocol, EVAL_PROTOCOLS, "protocol")
    if protocol == "auto":
        return "patterns" if data.complete else "observed"
    return protocol


def _observed_table(model: RedCore, data: MultimodalData, batch_size: int) -> pd.DataFrame:
    num_mod = len(data.modalities)
    patterns = eval_patterns(num_mod)
    pcodes = pattern_codes(patterns).tolist()
    group = torch.tensor([pcodes.index(c) for c in pattern_codes(data.observed.cpu()).tolist()])
    logits = predict_observed(model, data, batch_size)
    return grouped_metrics(data.labels.cpu().numpy(), logits.cpu().numpy(), group.numpy(),
                           pattern_names(patterns, data.modalities))


def evaluate(model: RedCore, data: MultimodalData, batch_size: int = 1024,
             protocol: str = "auto") -> pd.DataFrame:
    """WA / UA / macro-F1 per availability pattern and overall.

    Args:
        protocol: ``"patterns"``: every sample under every pattern (:func:`pattern_metrics`;
            with observed holes, only the complete samples); ``"observed"``: every sample once,
            under its own observed pattern, one row per pattern that occurs (``n`` = its samples);
            ``"auto"`` (default): ``"observed"`` when ``data`` has observed holes, else
            ``"patterns"``.
    Returns:
        Columns ``pattern, n, wa, ua, f1``, one row per pattern plus ``"overall"``.
    """
    data = data.coerced()[0]  # float32 features, int64 labels (fit notes the conversion)
    if _protocol(data, protocol) == "observed":
        return _observed_table(model, data, batch_size)
    if not data.complete:
        assert data.mask is not None  # not complete: a mask with a False
        full = torch.nonzero(data.mask.all(1).cpu()).flatten()
        if len(full) == 0:
            return pd.DataFrame({"pattern": pd.Series(dtype=str), "n": pd.Series(dtype=int),
                                 **{k: pd.Series(dtype=float) for k in ("wa", "ua", "f1")}})
        data = data.subset(full.to(data.labels.device))
    patterns = eval_patterns(len(data.modalities))
    logits = predict_logits(model, data, patterns, batch_size)
    return pattern_metrics(data.labels.cpu().numpy(), logits.cpu().numpy(),
                           pattern_names(patterns, data.modalities))


def overall_scores(model: RedCore, data: MultimodalData, batch_size: int = 1024) -> dict[str, float]:
    """The ``overall`` row of :func:`evaluate` (the default protocol), without the whole table."""
    if not data.complete:
        logits = predict_observed(model, data, batch_size)
        y = data.labels.cpu().numpy()
        cm = pattern_confusion(y, logits[None].cpu().numpy())[-1]
        return {k: float(v) for k, v in confusion_metrics(cm).items()}
    logits = predict_logits(model, data, eval_patterns(len(data.modalities)), batch_size)
    cm = pattern_confusion(data.labels.cpu().numpy(), logits.cpu().numpy())[-1]
    return {k: float(v) for k, v in confusion_metrics(cm).items()}


def latent_spread(model: RedCore, data: MultimodalData, batch_size: int = 1024) -> torch.Tensor:
    """How far apart the encoders place different samples, against the posterior's own width.

    Every modality of every sample is encoded (eval mode, no missing input); with observed
    holes, a modality's statistics use only the samples that have it.

    Returns:
        ``[2, M]``: row 0 the between-sample standard deviation of ``mu`` (per latent dim, averaged
        over dims); row 1 the mean posterior standard deviation ``exp(logvar / 2)`` (NaN without
        VIB). A spread far below the posterior SD means the latents have collapsed: every input
        gets nearly the same code, which zeroes the reconstruction loss (a constant is trivially
        predictable from the other modalities) and carries no class information.
    """
    was_training = model.training
    model.eval()
    mus, sds = [], []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(data)), device=data.labels.device)
            mu, logvar = model.encode(*data.inputs(idx))
            mus.append(mu.float())
            if logvar is not None:
                sds.append((0.5 * logvar.float()).exp().mean(-1))  # [M, b]
    model.train(was_training)
    mu = torch.cat(mus, dim=1)  # [M, N, d]
    if data.complete:
        spread = mu.std(dim=1, unbiased=False).mean(-1)
        post = torch.cat(sds, dim=1).mean(1) if sds else torch.full_like(spread, float("nan"))
        return torch.stack([spread, post]).cpu()
    assert data.mask is not None  # not complete: a mask with a False
    have = data.mask.t().to(mu.device)  # [M, N]
    sd = torch.cat(sds, dim=1) if sds else None
    spread = torch.stack([mu[m, have[m]].std(dim=0, unbiased=False).mean() for m in range(len(mu))])
    post = (torch.stack([sd[m, have[m]].mean() for m in range(len(mu))]) if sd is not None
            else torch.full_like(spread, float("nan")))
    return torch.stack([spread, post]).cpu()


class LatentCollapseWarning(RuntimeWarning):
    """Issued by :func:`~redcore_lite.trainer.fit` when the selected epoch's latents have collapsed (also in
    ``Result.warnings``)."""


COLLAPSE_RATIO = 0.1  # a modality's latents count as collapsed when spread < this x posterior SD


def collapse_warning(row: dict[str, Any], mods: Sequence[str], ratio: float = COLLAPSE_RATIO
                     ) -> str | None:
    """A message when ``row`` (an epoch row with ``spread_m`` and ``post_sd_m``) shows collapsed
    latents for some modality (between-sample spread of mu < ``ratio`` x the posterior SD), else
    None. Without VIB (no posterior SD) a spread below 1e-3 counts."""
    bad = []
    for m in mods:
        if f"spread_{m}" not in row:  # an epoch row from a checkpoint written before this check
            continue
        spread, post = row[f"spread_{m}"], row[f"post_sd_{m}"]
        limit = 1e-3 if math.isnan(post) else ratio * post
        if spread < limit:
            bad.append(f"{m} (spread {spread:.2g}, posterior SD {post:.2g})")
    if not bad:
        return None
    return (f"latent collapse at epoch {row['epoch']}: the between-sample spread of mu is below "
            f"{ratio:g} x the posterior SD for " + ", ".join(bad) + ". These encoders give nearly "
            "every input the same code (collapsed, or not trained enough), which zeroes the "
            "reconstruction loss but carries almost no class information; expect scores near "
            "chance where these modalities matter. Check model.init ('release' is the authors' "
            "initialisation), the learning rate, the epochs and loss.w_rec (benchmarks/RESULTS.md, "
            "release parity).")
