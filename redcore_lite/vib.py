"""Encoders with a variational information bottleneck (VIB) head.

An encoder maps one modality's input to ``mu`` and ``logvar`` of a Gaussian latent. Backbones: an
MLP for vector features ``[B, D]`` and the release's Transformer for frame sequences ``[B, T, D]``
(padding masked in attention and pooling unless ``mask_padding=False``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Dropout, dropout

__all__ = ["kl_divergence", "reparameterize", "MLPBackbone", "TransformerBackbone", "VIBEncoder"]


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the last dim.

    Args:
        mu, logvar: ``[..., d]``.
    Returns:
        ``[...]``: ``0.5 * sum(mu^2 + exp(logvar) - 1 - logvar)``.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Sample ``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` (global torch RNG)."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


class MLPBackbone(nn.Module):
    """Two-layer MLP for vector features: ``[B, D] -> [B, d]``."""

    def __init__(self, input_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x)


class _Block(nn.Module):
    """The release's attention block: pre-norm, plus a LayerNorm on each residual branch."""

    def __init__(self, d: int, heads: int, attn_dropout: float, ff_dropout: float,
                 fast: bool = False) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"num_heads: got {heads}; allowed: a divisor of latent_dim={d}")
        self.heads, self.attn_dropout, self.fast = heads, attn_dropout, fast
        self.ln_1, self.ln_12, self.ln_2, self.ln_22 = (nn.LayerNorm(d) for _ in range(4))
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.fc = nn.Linear(d, 4 * d)
        self.proj = nn.Linear(4 * d, d)
        self.drop = Dropout(ff_dropout, quantised=True, fast=fast)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None,
                frames: torch.Tensor | None = None, shape: tuple[int, int] | None = None) -> torch.Tensor:
        """``x: [B, T, d]``; ``attn_bias: [B, 1, 1, T]`` additive (0 or -inf), or None.

        Packed form: ``x: [N, d]`` holds only the valid frames, ``frames: [N]`` their positions
        in the flattened ``[B * T]`` batch and ``shape = (B, T)``. The per-frame layers then skip
        the padding; attention runs on the padded ``[B, T]`` layout, where padded keys are masked,
        so the valid frames' values are the padded computation's.
        """
        qkv = self.qkv(self.ln_1(x))
        if frames is not None:  # back to the padded layout for attention
            assert shape is not None, "shape: (B, T) is required with frames"
            (b, t), d = shape, x.shape[-1]
            qkv = qkv.new_zeros(b * t, qkv.shape[-1]).index_copy(0, frames, qkv)
        else:
            b, t, d = x.shape
        q, k, v = qkv.view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        p = self.attn_dropout if self.training else 0.0
        if p > 0 and self.fast and x.device.type == "cpu":  # the math path, faster CPU dropout
            scores = q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5
            if attn_bias is not None:
                scores = scores + attn_bias
            a = dropout(scores.softmax(-1), p, True, quantised=True) @ v
        else:
            mask = None if attn_bias is None else attn_bias.to(q.dtype)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        a = a.transpose(1, 2).reshape(b, t, d)
        if frames is not None:
            a = a.reshape(b * t, d).index_select(0, frames)
        x = x + self.ln_12(self.out(a))
        return x + self.ln_22(self.proj(self.drop(F.relu(self.fc(self.ln_2(x))))))


def _attn_bias(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``valid: [B, T]`` bool -> additive attention bias ``[B, 1, 1, T]`` (0, or -inf at padding)."""
    return torch.zeros(valid.shape, dtype=dtype, device=valid.device).masked_fill(
        ~valid, float("-inf"))[:, None, None, :]


class TransformerBackbone(nn.Module):
    """Release Transformer: linear projection, blocks (no positional encoding), mean pool.

    ``[B, T, D]`` and lengths ``[B]`` -> ``[B, d]``. ``fast`` (``model.cpu_speedups``): on a CPU,
    the per-frame layers on the valid frames only and the faster dropout masks.
    """

    def __init__(self, input_dim: int, d: int, layers: int, heads: int, attn_dropout: float,
                 ff_dropout: float, mask_padding: bool = True, fast: bool = False) -> None:
        super().__init__()
        self.mask_padding, self.fast = mask_padding, fast
        self.proj = nn.Linear(input_dim, d)
        blocks = [_Block(d, heads, attn_dropout, ff_dropout, fast) for _ in range(layers)]
        self.blocks = nn.ModuleList(blocks)
        proj_std, attn_std, fc_std = (d ** -0.5) * ((2 * layers) ** -0.5), d ** -0.5, (2 * d) ** -0.5
        for blk in blocks:  # the release's initialisation
            nn.init.normal_(blk.qkv.weight, std=attn_std)
            nn.init.normal_(blk.out.weight, std=proj_std)
            nn.init.normal_(blk.fc.weight, std=fc_std)
            nn.init.normal_(blk.proj.weight, std=proj_std)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        valid = bias = None
        if self.mask_padding and lengths is not None:
            valid = torch.arange(x.shape[1], device=x.device) < lengths[:, None]  # [B, T]
            if self.fast and x.device.type == "cpu" and not torch.compiler.is_compiling():
                return self._packed(x, valid)
        h = self.proj(x)
        if valid is not None:
            bias = _attn_bias(valid, h.dtype)
        for blk in self.blocks:
            h = blk(h, bias)
        if valid is None:
            return h.mean(1)
        w = valid.to(h.dtype)[..., None]
        return (h * w).sum(1) / w.sum(1).clamp(min=1.0)

    def _packed(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` with padding masked, on the valid frames only (``fast`` on a CPU: the per-frame layers
        are most of a step, and a quarter of the frames of a typical batch are padding). The
        same values as the padded computation, up to rounding; the frame count is read on the
        host, which costs nothing on a CPU (a GPU keeps the padded, sync-free form)."""
        b, t = valid.shape
        frames = valid.reshape(-1).nonzero().squeeze(1)  # [N] valid positions in [B * T]
        h = self.proj(x.reshape(b * t, -1).index_select(0, frames))  # [N, d]
        bias = _attn_bias(valid, h.dtype)
        for blk in self.blocks:
            h = blk(h, bias, frames, (b, t))
        pooled = h.new_zeros(b, h.shape[-1]).index_add_(0, frames.div(t, rounding_mode="floor"), h)
        return pooled / valid.sum(1, keepdim=True).clamp(min=1).to(h.dtype)


class VIBEncoder(nn.Module):
    """Backbone, then the release VIB head: sigmoid, ``Linear(d, 2d)`` split into mu and logvar.

    With ``vib=False`` the head is ``Linear(d, d)`` giving mu only (logvar is returned as None).
    """

    def __init__(self, backbone: nn.Module, d: int, vib: bool = True) -> None:
        super().__init__()
        self.backbone, self.vib, self.d = backbone, vib, d
        self.head = nn.Linear(d, 2 * d if vib else d)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return ``mu: [B, d]`` and ``logvar: [B, d]`` (None without VIB)."""
        return self.split(self.packed(x, lengths))

    def packed(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The head's output before the split: ``[..., 2d]`` (``[..., d]`` without VIB)."""
        return self.head(torch.sigmoid(self.backbone(x, lengths)))

    def split(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``h`` from :meth:`packed` -> ``(mu, logvar)`` views (logvar None without VIB)."""
        if not self.vib:
            return h, None
        return h[..., : self.d], h[..., self.d:]
