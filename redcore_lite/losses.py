"""The lower-level (network) loss: cross-entropies, masked KL and masked reconstruction.

    L = w_fused CE(fused) + w_uni sum_m CE(head_m) + sum_m KL_m + w_rec sum_m beta_m Rec_m
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import LossConfig
from .model import RedCoreOutput
from .vib import kl_divergence

__all__ = ["masked_kl", "reconstruction_loss", "complete_rows", "LossTerms", "network_terms",
           "advantage_input", "weigh_reconstruction", "compute_losses"]


def masked_kl(mu: torch.Tensor, logvar: torch.Tensor, avail: torch.Tensor, weight: float) -> torch.Tensor:
    """KL_m = weight * (1/B) * sum over samples with modality m present of KL(q || N(0, I)).

    Args:
        mu, logvar: ``[M, B, d]``; avail: ``[B, M]``; weight: lambda.
    Returns:
        ``[M]``.
    """
    kl = kl_divergence(mu, logvar)  # [M, B]
    return weight * (kl * avail.t().to(kl.dtype)).sum(1) / kl.shape[1]


def reconstruction_loss(generated: torch.Tensor, z: torch.Tensor, avail: torch.Tensor,
                        rows: bool = False) -> tuple[torch.Tensor, ...]:
    """Rec_m = sum over present samples of ||g_m - z_m||^2 / n_m; n_m = 0 is "no observation".

    The target z is not detached (release behaviour). A modality absent from the whole batch gets
    loss 0 and ``observed = False`` (the release divides 0 by 0 there and poisons beta with NaN).

    Args:
        generated, z: ``[M, B, d]``; avail: ``[B, M]``.
        rows: also return each row's term ``||g_m - z_m||^2`` (0 where m is absent), ``[M, B]``
            (what :mod:`redcore_lite.diagnostics` sums per availability pattern).
    Returns:
        rec ``[M]`` and observed ``[M]`` bool (and the rows' terms).
    """
    a = avail.t().to(z.dtype)  # [M, B]
    sq = (generated - z).pow(2).sum(-1)  # [M, B]
    n = a.sum(1)
    per_row = sq * a
    rec = per_row.sum(1) / n.clamp(min=1.0)
    return (rec, n > 0, per_row) if rows else (rec, n > 0)


@dataclass
class LossTerms:
    """Every term of one step's loss, as device tensors (no host sync)."""

    total: torch.Tensor  # []
    ce_fused: torch.Tensor  # []
    ce_unimodal: torch.Tensor  # [M] (zeros without unimodal heads)
    kl: torch.Tensor  # [M] (zeros without VIB)
    rec: torch.Tensor  # [M]
    observed: torch.Tensor  # [M] bool
    rows: torch.Tensor | None = None  # [M, B] each row's detached ||g_m - z_m||^2 (0 where absent)
    grad_norm: torch.Tensor | None = None  # [M] encoder gradient norms (set by step.train_step)

    def history_row(self, *state: torch.Tensor) -> torch.Tensor:
        """One row of the training history, on the device: loss, fused CE, then per modality
        CE, KL, Rec, observed, followed by ``state`` (the trainer passes beta, RA and Lbar)."""
        return torch.cat([self.total.detach()[None], self.ce_fused.detach()[None],
                          self.ce_unimodal.detach(), self.kl.detach(), self.rec.detach(),
                          self.observed.float(), *state])


def _weighted(w: float, x: torch.Tensor) -> torch.Tensor:
    """``w * x``, without an operation when w = 1 (the same value: 1.0 * x is exactly x)."""
    return x if w == 1.0 else w * x


BetaSource = torch.Tensor | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def complete_rows(avail: torch.Tensor) -> torch.Tensor:
    """``avail`` restricted to the complete rows (every modality present): ``[B, M]`` bool. The
    peer-matched signal of advantage mode "matched" is Rec on these rows."""
    a = avail.bool()
    return a & a.all(1, keepdim=True)


def network_terms(out: RedCoreOutput, y: torch.Tensor, avail: torch.Tensor,
                  config: LossConfig) -> LossTerms:
    """Every term of the lower-level loss for the network's output, before beta is known.

    ``total`` holds ``w_fused CE(fused) + w_uni sum_m CE(head_m) + sum_m KL_m`` (no reconstruction
    term yet); :func:`weigh_reconstruction` adds ``w_rec sum_m beta_m Rec_m``. A training step
    computes these terms, lets the upper level move beta from this batch's Rec
    (:func:`advantage_input`), then weighs Rec with the new beta, as the release does.
    """
    num_mod = out.z.shape[0]
    ce_fused = F.cross_entropy(out.logits.float(), y)
    if out.unimodal_logits is not None:
        uni = out.unimodal_logits.float()
        ce_uni = F.cross_entropy(uni.reshape(-1, uni.shape[-1]), y.repeat(num_mod),
                                 reduction="none").view(num_mod, -1).mean(1)
    else:
        ce_uni = ce_fused.new_zeros(num_mod)
    if out.logvar is not None:
        kl = masked_kl(out.mu.float(), out.logvar.float(), avail, config.kl_weight)
    else:
        kl = ce_fused.new_zeros(num_mod)
    rec, observed, per_row = reconstruction_loss(out.generated.float(), out.z.float(), avail, True)
    base = _weighted(config.w_fused, ce_fused) + _weighted(config.w_unimodal, ce_uni.sum()) + kl.sum()
    return LossTerms(base, ce_fused, ce_uni, kl, rec, observed, per_row.detach())


def advantage_input(out: RedCoreOutput, avail: torch.Tensor, terms: LossTerms, peers: str = "any"
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """What the upper level reads: ``(rec [M], observed [M] bool)``.

    ``peers="any"``: the loss's own Rec (every row that has the modality; RedCore);
    ``"all"``: Rec over the complete rows only (:func:`complete_rows`; advantage mode "matched").
    """
    if peers == "all":
        rec, observed = reconstruction_loss(out.generated.float().detach(), out.z.float().detach(),
                                            complete_rows(avail))
        return rec, observed
    if peers != "any":
        raise ValueError(f"peers: got {peers!r}; allowed: 'any' or 'all'")
    return terms.rec, terms.observed


def weigh_reconstruction(terms: LossTerms, beta: torch.Tensor, config: LossConfig) -> LossTerms:
    """``terms`` (from :func:`network_terms`) with ``w_rec sum_m beta_m Rec_m`` added to ``total``."""
    return dataclasses.replace(terms, total=terms.total + _weighted(config.w_rec, (beta * terms.rec).sum()))


def compute_losses(out: RedCoreOutput, y: torch.Tensor, avail: torch.Tensor, beta: BetaSource,
                   config: LossConfig, peers: str = "any") -> LossTerms:
    """The full lower-level loss (:func:`network_terms`, then :func:`weigh_reconstruction`).

    Args:
        out: the model's output; y: ``[B]`` labels; avail: ``[B, M]``.
        beta: ``[M]`` weights, or a function ``(rec, observed) -> beta`` called once the
            reconstruction losses are known (with :func:`advantage_input` of ``peers``).
        peers: what the function ``beta`` is given: ``"any"`` (Rec over every row that has the
            modality, the loss's own Rec; RedCore) or ``"all"`` (Rec over the complete rows only,
            :func:`complete_rows`; advantage mode "matched"). The loss always uses the first.
    """
    if peers not in ("any", "all"):
        raise ValueError(f"peers: got {peers!r}; allowed: 'any' or 'all'")
    terms = network_terms(out, y, avail, config)
    if callable(beta):
        beta = beta(*advantage_input(out, avail, terms, peers))
    return weigh_reconstruction(terms, beta, config)
