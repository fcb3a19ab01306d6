"""Relative advantage (RA) and the upper-level beta update, kept on the training device.

Every iteration: EMA of each observed modality's reconstruction loss, RA from the EMAs, eta growth
every ``growth_every`` iterations, and every ``interval`` iterations a clamp-then-rescale step
``beta <- normalise(max(beta - eta * RA, floor))``. Nothing here reads a value back to the host.

Mode ``"matched"`` (peer-matched RA) is mode ``"ra"`` fed a different signal: the EMA follows each
modality's reconstruction loss on the batch's *complete* rows only (the rows where every peer of
every modality is present), instead of on all rows that have the modality. Why: ``Rec_m`` is
averaged over the rows that have m, and m's generator is fed by m's peers, whose availability
differs by modality (under missing rates (0.2, 0.5, 0.8) a row with A has on average 0.7 present
peers, one with L 1.3), and a generator with no peer present reconstructs several times worse.
Plain RA therefore ranks modalities by how often their peers are present, not by how well they
are reconstructed (``notebooks/03_relative_advantage.ipynb`` measures this with
:func:`redcore_lite.diagnostics.rec_strata`). On complete rows every modality is reconstructed
from the same rows with all its peers, so the comparison is like with like; the price is fewer
rows (a batch without a complete row leaves the EMA unchanged, as an unobserved modality does).
:func:`redcore_lite.losses.compute_losses` computes the signal (``peers="all"``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ._checks import check_choice, check_positive, check_rates
from .config import AdvantageConfig

MODES = ("ra", "fixed", "uniform", "inverse", "matched")  # advantage.mode; "matched": module doc
ADAPTIVE = ("ra", "matched")  # the modes whose beta moves

__all__ = ["MODES", "ADAPTIVE", "check_adaptive",
           "ema_update", "relative_advantage", "beta_step", "initial_beta", "RelativeAdvantage"]


def ema_update(lbar: torch.Tensor, rec: torch.Tensor, observed: torch.Tensor, rho: float) -> torch.Tensor:
    """``Lbar_m <- (1 - rho) Lbar_m + rho Rec_m`` for observed m; unobserved m keep their value."""
    return torch.where(observed, (1 - rho) * lbar + rho * rec, lbar)


def relative_advantage(lbar: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
    """``RA_m = (mean - Lbar_m) / mean`` with ``mean = mean_m Lbar_m``; all zeros when mean = 0.

    Args:
        active: ``[M]`` bool, the modalities the training mask ever observes (None: all). The
            mean runs over them only and the others get RA 0: a never-observed modality's EMA
            stays 0 and would otherwise count as the best reconstructed one.
    """
    if active is None:
        mean = lbar.mean()
        positive = mean > 0
        return torch.where(positive, (mean - lbar) / torch.where(positive, mean, 1.0), 0.0)
    mean = torch.where(active, lbar, 0.0).sum() / active.sum().clamp(min=1)
    positive = mean > 0
    ra = torch.where(positive, (mean - lbar) / torch.where(positive, mean, 1.0), 0.0)
    return torch.where(active, ra, 0.0)


def beta_step(beta: torch.Tensor, ra: torch.Tensor, eta: float | torch.Tensor, floor: float,
              active: torch.Tensor | None = None) -> torch.Tensor:
    """The release's step: ``beta - eta * RA``, floored at ``floor``, then scaled to unit L2 norm
    (over the ``active`` modalities only; the others get beta 0).

    Clamp-then-rescale is not the Euclidean projection onto ``{beta >= floor, ||beta|| = 1}``: the
    rescale can push a floored entry below ``floor`` again (e.g. to 0.06 with floor 0.1).
    """
    b = (beta - eta * ra).clamp(min=floor)
    if active is not None:
        b = torch.where(active, b, 0.0)
    return b / b.norm()


def initial_beta(mode: str, num_modalities: int, rates: Sequence[float] | None = None) -> torch.Tensor:
    """beta at t = 0: ones ("ra", "matched", "fixed"), 1/sqrt(M) ("uniform"), ∝ 1/(1 - r_m) with
    unit norm ("inverse"; needs ``rates``, a rate of 1 counts as 1 - 1e-3)."""
    check_choice(mode, MODES, "advantage.mode")
    if mode in ("ra", "matched", "fixed"):
        return torch.ones(num_modalities)
    if mode == "uniform":
        return torch.full((num_modalities,), 1.0 / math.sqrt(num_modalities))
    if rates is None:
        raise ValueError("rates: got None; allowed: one missing rate per modality (mode 'inverse')")
    r = torch.tensor(check_rates(rates, num_modalities), dtype=torch.float32)
    b = 1.0 / (1.0 - r).clamp(min=1e-3)
    return b / b.norm()


def check_adaptive(config: AdvantageConfig, num_active: int) -> None:
    """Refuse settings under which an adaptive mode ("ra", "matched") silently becomes the
    uniform-beta ablation:

    - ``floor >= 1/sqrt(M)`` (M: the modalities the training mask observes). After the L2
      normalisation the smallest beta is at most 1/sqrt(M), so every modality the update lowers
      is clamped back to at least the uniform value: beta stays at or next to uniform (with
      ``floor >= 1`` it never moves, as beta <= 1), and RA changes nothing.
    - ``eta = 0``: ``beta - 0 * RA`` never moves (growth multiplies 0); the first update only
      normalises beta to uniform.

    Raises:
        ValueError: naming the field, its value, the bound and the ablation to use instead.
    """
    if num_active >= 1 and config.floor >= 1.0 / math.sqrt(num_active):
        raise ValueError(f"advantage.floor: got {config.floor!r} with advantage.mode="
                         f"{config.mode!r} and {num_active} modalities; allowed: a floor below "
                         f"1/sqrt({num_active}) = {1.0 / math.sqrt(num_active):.5f} (at or above "
                         "it the floor holds beta at the uniform value 1/sqrt(M): RA is inert; "
                         "for that ablation use advantage.mode='uniform')")
    if config.eta == 0:
        raise ValueError(f"advantage.eta: got 0 with advantage.mode={config.mode!r}; allowed: "
                         "eta > 0 (with eta 0 beta never moves: RA is inert; for a fixed beta "
                         "use advantage.mode='fixed' or 'uniform')")


class RelativeAdvantage:
    """The upper level's state (Lbar, beta on the device; eta and t on the host) and its step."""

    def __init__(self, config: AdvantageConfig, num_modalities: int, device: torch.device | str = "cpu",
                 rates: Sequence[float] | None = None, active: Sequence[bool] | None = None) -> None:
        """Args:
            rates: missing rates (mode "inverse"); active: ``[M]`` bool, the modalities that
                the training mask ever observes (None: all). The others are left out of RA and
                of beta's norm (their beta is 0: they never have a reconstruction loss)."""
        if not 0.0 < config.rho <= 1.0:
            raise ValueError(f"advantage.rho: got {config.rho!r}; allowed: a number in (0, 1]")
        check_positive(config.interval, "advantage.interval", integer=True)
        check_positive(config.growth_every, "advantage.growth_every", integer=True)
        check_positive(config.eta, "advantage.eta", zero_ok=True)
        check_positive(config.growth, "advantage.growth")
        check_positive(config.floor, "advantage.floor")  # > 0 keeps ||beta|| > 0
        self.config = config
        self.beta = initial_beta(config.mode, num_modalities, rates).to(device)
        self.active = None
        if active is not None and not all(bool(a) for a in active):
            self.active = torch.as_tensor(list(active), dtype=torch.bool, device=device)
            if not bool(self.active.any()):
                raise ValueError("active: got no observed modality; allowed: at least one")
            beta = torch.where(self.active, self.beta, 0.0)
            self.beta = beta if config.mode in ("ra", "matched", "fixed") else beta / beta.norm()
        if config.mode in ADAPTIVE:
            check_adaptive(config, num_modalities if self.active is None else int(self.active.sum()))
        self.lbar = torch.zeros(num_modalities, device=device)
        self.ra = torch.zeros(num_modalities, device=device)
        self.eta = float(config.eta)
        self.t = 0

    def step(self, rec: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """One iteration of the upper level (release order); returns the beta to weight Rec with.

        Args:
            rec: ``[M]`` this batch's reconstruction losses (detached here); observed: ``[M]`` bool.
        """
        c = self.config
        moves = self.schedule()
        self.lbar = ema_update(self.lbar, rec.detach().float(), observed, c.rho)
        self.ra = relative_advantage(self.lbar, self.active)
        if moves:
            self.beta = beta_step(self.beta, self.ra, self.eta, c.floor, self.active)
        return self.beta

    def schedule(self) -> bool:
        """The host's part of a step: grow eta on its schedule, count the step, and say whether
        beta moves at this step (modes "ra" and "matched", every ``interval`` steps). :meth:`step` calls it; a
        CUDA graph step (:class:`redcore_lite.step.StaticStep`) calls it before replaying the device part."""
        c = self.config
        if self.t % c.growth_every == 0:
            self.eta *= c.growth
        moves = c.mode in ADAPTIVE and self.t % c.interval == 0
        self.t += 1
        return moves

    def step_inplace(self, rec: torch.Tensor, observed: torch.Tensor, eta: torch.Tensor,
                     moves: torch.Tensor) -> torch.Tensor:
        """The device part of :meth:`step` with the host's decisions as device scalars (``eta``:
        eta after this step's growth; ``moves``: bool) and the state updated in place, so a CUDA
        graph can replay it. Call :meth:`schedule` first. Returns this step's beta."""
        c = self.config
        lbar = ema_update(self.lbar, rec.detach().float(), observed, c.rho)
        ra = relative_advantage(lbar, self.active)
        beta = torch.where(moves, beta_step(self.beta, ra, eta, c.floor, self.active), self.beta)
        self.lbar.copy_(lbar)
        self.ra.copy_(ra)
        self.beta.copy_(beta)
        return beta

    def state_dict(self) -> dict[str, Any]:
        """Tensors and numbers only (loadable with ``weights_only=True``)."""
        return {"lbar": self.lbar.clone(), "beta": self.beta.clone(), "ra": self.ra.clone(),
                "eta": self.eta, "t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` (tensors move to this state's device)."""
        dev = self.beta.device
        self.lbar, self.beta = state["lbar"].to(dev), state["beta"].to(dev)
        self.ra = state["ra"].to(dev)
        self.eta, self.t = float(state["eta"]), int(state["t"])
