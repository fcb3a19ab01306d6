"""A re-implementation of the authors' release *training step* cost, for same-machine comparison.

This is not used by the library. It reproduces what one release iteration computes for the
IEMOCAP recipe, from the release's description in docs: three Transformer encoders built on
``nn.MultiheadAttention`` (fp32 LayerNorm casts, 4d feed-forward), the two residual autoencoders
the release runs in ``forward`` although no loss uses them (``netAE``, ``netAE_cycle``), three
separate residual cross-modal generators, a fused and three unimodal classifiers, the loss with
its per-step ``.item()`` reads and numpy beta update, and per-network gradient clipping.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class _LN(nn.LayerNorm):
    def forward(self, x):  # the release casts to fp32 and back
        return super().forward(x.float()).to(x.dtype)


class _Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, dropout=0.2, batch_first=True)
        self.ln_1, self.ln_12, self.ln_2, self.ln_22 = _LN(d), _LN(d), _LN(d), _LN(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Dropout(0.1), nn.Linear(4 * d, d))

    def forward(self, x):
        h = self.ln_1(x)
        x = x + self.ln_12(self.attn(h, h, h, need_weights=False)[0])
        return x + self.ln_22(self.mlp(self.ln_2(x)))


class _Encoder(nn.Module):
    def __init__(self, din, d=128, layers=3, heads=8):
        super().__init__()
        self.proj = nn.Linear(din, d)
        self.blocks = nn.Sequential(*[_Block(d, heads) for _ in range(layers)])
        self.muvar = nn.Linear(d, 2 * d)
        self.d = d

    def forward(self, x):
        h = torch.sigmoid(self.blocks(self.proj(x)).mean(1))
        mu, logvar = self.muvar(h).view(-1, 2, self.d).unbind(1)
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu), mu, logvar


def _stack(widths, act_last=False):
    mods = []
    for i in range(len(widths) - 1):
        mods += [nn.Linear(widths[i], widths[i + 1]), nn.LeakyReLU()]
    return nn.Sequential(*(mods if act_last else mods[:-1]))


class _ResidualXE(nn.Module):
    def __init__(self, layers, blocks, din, dout):
        super().__init__()
        self.enc = nn.ModuleList(_stack([din] + layers) for _ in range(blocks))
        self.dec = nn.ModuleList(_stack(layers[::-1] + [din]) for _ in range(blocks))
        self.transition = nn.Sequential(nn.Linear(din, din), nn.ReLU(), nn.Linear(din, dout))

    def forward(self, x):
        x_in, x_out = x, torch.zeros_like(x)
        for e, d in zip(self.enc, self.dec):
            x_in = x_in + x_out
            x_out = d(e(x_in))
        return self.transition(x_in + x_out)


def _cls(din, c, p=0.5):
    return nn.Sequential(nn.Linear(din, 128), nn.ReLU(), nn.Dropout(p), nn.Linear(128, 128),
                         nn.ReLU(), nn.Dropout(p), nn.Linear(128, c))


class ReleaseStep:
    """One release iteration on a batch ``(A, V, L, missing_index [B, 3], label)``."""

    def __init__(self, dims=(130, 342, 1024), num_classes=4, d=128, device="cpu"):
        layers, blocks = [256, 128, 64], 5
        self.nets = nn.ModuleDict({
            "A": _Encoder(dims[0], d), "V": _Encoder(dims[1], d), "L": _Encoder(dims[2], d),
            "AE": _ResidualXE(layers, blocks, 3 * d, 3 * d),
            "AE_cycle": _ResidualXE(layers, blocks, 3 * d, 3 * d),
            "xa": _ResidualXE(layers, blocks, 2 * d, d), "xv": _ResidualXE(layers, blocks, 2 * d, d),
            "xl": _ResidualXE(layers, blocks, 2 * d, d),
            "C": _cls(3 * d, num_classes), "Ca": _cls(d, num_classes), "Cv": _cls(d, num_classes),
            "Cl": _cls(d, num_classes)}).to(device)
        self.opt = torch.optim.Adam(self.nets.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.beta, self.eta, self.it = np.ones(3), 0.1, 0
        self.ema = [0.0, 0.0, 0.0]

    def __call__(self, a, v, l, miss, y):  # noqa: E741 (l: the lexical modality, as in the release)
        n = self.nets
        ia, iv, il = (miss[:, k].float()[:, None] for k in range(3))
        za, mua, lva = n["A"](a * ia[:, :, None])
        zv, muv, lvv = n["V"](v * iv[:, :, None])
        zl, mul, lvl = n["L"](l * il[:, :, None])
        fused = torch.cat([za, zl, zv], -1)
        n["AE_cycle"](n["AE"](fused))  # computed, unused (as in the release)
        ga, gl, gv = n["xa"](torch.cat([zv, zl], -1)), n["xl"](torch.cat([za, zv], -1)), n["xv"](
            torch.cat([za, zl], -1))
        ra, rv, rl = ia * za + (1 - ia) * ga, iv * zv + (1 - iv) * gv, il * zl + (1 - il) * gl
        loss = F.cross_entropy(n["C"](torch.cat([ra, rl, rv], -1)), y)
        loss = loss + sum(F.cross_entropy(n[k](r), y) for k, r in (("Ca", ra), ("Cv", rv), ("Cl", rl)))
        b = a.shape[0]
        for mu, lv, i in ((mua, lva, ia), (muv, lvv, iv), (mul, lvl, il)):
            loss = loss - 0.0008 * ((1 + lv - mu.pow(2) - lv.exp()) * i).sum() / b
        recs = [F.mse_loss(g * i, z * i, reduction="sum") / i.sum()
                for g, z, i in ((ga, za, ia), (gv, zv, iv), (gl, zl, il))]
        vals = [r.item() for r in recs]  # the release's per-step host reads
        self.ema = [0.3 * e + 0.7 * (v if v != 0 else e) for e, v in zip(self.ema, vals)]
        arr = np.array(self.ema)
        ra_ = (arr.mean() - arr) / arr.mean()
        if self.it % 500 == 0:
            self.eta *= 1.5
        if self.it % 3 == 0:
            self.beta = np.maximum(self.beta - self.eta * ra_, 0.1)
            self.beta = self.beta / np.sqrt((self.beta ** 2).sum())
        self.it += 1
        loss = loss + 0.15 * sum(float(bt) * r for bt, r in zip(self.beta, recs))
        self.opt.zero_grad()
        loss.backward()
        for net in n.values():
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        self.opt.step()
        return loss
