"""Cross-modal generators: G_m predicts modality m's latent from the other modalities' latents.

All M generators share one shape, so they run as one batched computation: every linear layer is a
:class:`StackedLinear` holding M weight matrices applied with one ``baddbmm``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["StackedLinear", "ResidualGenerators", "others_index", "gather_others"]


class StackedLinear(nn.Module):
    """M independent linear layers applied at once: ``[M, B, in] -> [M, B, out]``."""

    def __init__(self, num: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(num, 1, out_features))
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default initialisation
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


def _mlp(num: int, widths: list[int], act: type[nn.Module]) -> nn.Sequential:
    """Stacked linear layers with ``act`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(StackedLinear(num, widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def others_index(num_modalities: int) -> torch.Tensor:
    """``[M, M-1]`` long: row m lists every modality k != m in order."""
    return torch.tensor([[k for k in range(num_modalities) if k != m] for m in range(num_modalities)])


def gather_others(z: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Generator inputs: ``z: [M, B, d]`` -> ``[M, B, (M-1) * d]``, row m = concat of z_k, k != m."""
    num_mod, b, d = z.shape
    return z[index].permute(0, 2, 1, 3).reshape(num_mod, b, (num_mod - 1) * d)


class ResidualGenerators(nn.Module):
    """The release's residual cross-modal generator (``ResidualXE``), one per modality.

    Each of ``blocks`` blocks is an autoencoder (encoder ``in -> layers`` with LeakyReLU, decoder
    back to ``in`` with ReLU); block i's input is the sum of block i-1's input and output. A
    transition ``Linear(in, in) - ReLU - Linear(in, d)`` maps ``x_in + x_out`` to the latent size.
    """

    def __init__(self, num_modalities: int, d: int, layers: tuple[int, ...], blocks: int) -> None:
        super().__init__()
        if num_modalities < 2:
            raise ValueError(f"num_modalities: got {num_modalities}; allowed: >= 2")
        n, din = num_modalities, (num_modalities - 1) * d
        widths = list(layers)
        self.encoders = nn.ModuleList(_mlp(n, [din] + widths, nn.LeakyReLU) for _ in range(blocks))
        self.decoders = nn.ModuleList(_mlp(n, widths[::-1] + [din], nn.ReLU) for _ in range(blocks))
        self.transition = _mlp(n, [din, din, d], nn.ReLU)
        self.index: torch.Tensor
        self.register_buffer("index", others_index(n), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Generate every modality's latent from the others: ``z: [M, B, d] -> g: [M, B, d]``."""
        return self.generate(gather_others(z, self.index))

    def generate(self, x_in: torch.Tensor) -> torch.Tensor:
        """The generators on prepared inputs: ``x_in: [M, R, (M-1) * d] -> [M, R, d]``."""
        x_out: torch.Tensor | None = None  # block 0 adds nothing (the release adds a zero tensor)
        for enc, dec in zip(self.encoders, self.decoders):
            if x_out is not None:
                x_in = x_in + x_out
            x_out = dec(enc(x_in))
        assert x_out is not None, "gen_blocks >= 1 (build_model checks it)"
        return self.transition(x_in + x_out)
