"""Small building blocks shared by the encoders and heads."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["dropout", "Dropout"]


def dropout(x: torch.Tensor, p: float, training: bool, quantised: bool = False,
            fast: bool = True) -> torch.Tensor:
    """Inverted dropout: zero each element with probability p, scale the rest by 1/(1 - p).

    ``fast=False``: :func:`torch.nn.functional.dropout` on every device (the reference). With
    ``fast`` on CPU the keep-mask comes from ``rand_like`` (about twice as fast as ``bernoulli_``). With
    ``quantised=True`` it comes from 16-bit slices of 64-bit random integers, four elements per
    draw (twice as fast again; used inside the Transformer, whose attention maps are large), so p
    is rounded to a multiple of 1/65536 and the scale uses the rounded p (the output stays
    unbiased). On other devices this is :func:`torch.nn.functional.dropout`. Uses the global
    torch RNG, so it follows the seed.
    """
    if not training or p == 0.0:
        return x
    if not fast or x.device.type != "cpu":
        return F.dropout(x, p, True)
    if not quantised:
        return x * (torch.rand_like(x) >= p).to(x.dtype).mul_(1.0 / (1.0 - p))
    k = round(p * 65536)  # drop when a uniform 16-bit value falls below k
    n = x.numel()
    bits = torch.randint(-2 ** 63, 2 ** 63 - 1, ((n + 3) // 4,), dtype=torch.int64)
    bits = bits.view(torch.int16)[:n].view(x.shape)
    keep = (bits >= k - 32768).to(x.dtype).mul_(65536.0 / (65536 - k))
    return x * keep


class Dropout(nn.Module):
    """:func:`dropout` as a module (a drop-in for ``nn.Dropout``)."""

    def __init__(self, p: float, quantised: bool = False, fast: bool = False) -> None:
        super().__init__()
        self.p, self.quantised, self.fast = p, quantised, fast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training, self.quantised, self.fast)

    def extra_repr(self) -> str:
        return f"p={self.p}, quantised={self.quantised}, fast={self.fast}"
