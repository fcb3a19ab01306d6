"""Teaching figures drawn from real objects: the architecture of a built model, the evaluation
patterns, a sweep with its chance line, and the two beta updates (clamp-then-rescale vs projection).

Pure functions like those of :mod:`redcore_lite.plots`: data in, a closed ``Figure`` out (optional
``ax=``). :func:`floored_sphere_projection` is the Euclidean projection the release's beta step is
often mistaken for (notebook 00 compares the two).
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from . import plots
from .config import LossConfig
from .masking import pattern_names
from .model import RedCore

__all__ = ["part_sizes", "architecture", "pattern_grid", "sweep_with_chance",
           "floored_sphere_projection", "beta_updates", "beta_trace", "difference_forest",
           "legend_outside"]


def part_sizes(model: RedCore) -> dict[str, int]:
    """Trainable parameters per part of a :class:`~redcore_lite.model.RedCore`.

    Returns:
        ``{"encoder <m>": ..., "generators": ..., "fused head": ..., "unimodal heads": ...}``
        (encoders by index ``0..M-1``; ``unimodal heads`` is 0 when the model has none).
    """
    def count(module: torch.nn.Module | None) -> int:
        return 0 if module is None else sum(p.numel() for p in module.parameters() if p.requires_grad)

    sizes = {f"encoder {m}": count(enc) for m, enc in enumerate(model.encoders)}
    sizes["generators"] = count(model.generators)
    sizes["fused head"] = count(model.fused_head)
    sizes["unimodal heads"] = count(model.unimodal_heads)
    return sizes


def _box(ax: Axes, x: float, y: float, w: float, h: float, text: str, color: str) -> None:
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.008",
                                facecolor=color, edgecolor="0.25", linewidth=1.0, zorder=2))
    ax.text(x, y, text, ha="center", va="center", fontsize=8.5, zorder=3)


def _arrow(ax: Axes, x0: float, y0: float, x1: float, y1: float, color: str = "0.3",
           style: str = "-") -> None:
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                arrowprops={"arrowstyle": "->", "color": color, "lw": 1.0, "linestyle": style,
                            "shrinkA": 0, "shrinkB": 0})


def architecture(model: RedCore, modalities: Sequence[str], input_dims: Sequence[int],
                 loss: LossConfig | None = None) -> Figure:
    """Block diagram of a built RedCore model, read from the model itself.

    One row per modality: input -> encoder (backbone + VIB head) -> mu, log sigma^2 -> z; the
    generators predict each g_m from the other latents; r_m = a_m z_m + (1 - a_m) g_m feeds the
    unimodal head m and, concatenated, the fused head. Loss terms are written in red next to what
    they act on, with their weights from ``loss`` (default: :class:`LossConfig`).

    Args:
        model: a :class:`~redcore_lite.model.RedCore`; modalities: M names; input_dims: M feature
            sizes (the last dim of each input).
    """
    num_mod = model.num_modalities
    if len(modalities) != num_mod or len(input_dims) != num_mod:
        raise ValueError(f"modalities, input_dims: got {len(modalities)} and {len(input_dims)} "
                         f"entries; allowed: one per modality of the model ({num_mod})")
    loss = loss or LossConfig()
    cfg, d = model.config, model.latent_dim
    sizes = part_sizes(model)
    num_classes = model.fused_head[-1].out_features
    plots.set_theme()
    height = 1.35 * num_mod + 1.6
    fig, ax = plt.subplots(figsize=(13, height))
    ax.set(xlim=(0, 1), ylim=(0, height), xticks=[], yticks=[])
    ax.grid(False)
    for side in ax.spines.values():
        side.set_visible(False)
    rows = [height - 1.0 - 1.35 * m for m in range(num_mod)]
    mid = (rows[0] + rows[-1]) / 2
    red = "#b2182b"
    vib = "VIB" if cfg.vib else "no VIB"
    for m, (name, y) in enumerate(zip(modalities, rows)):
        _box(ax, 0.04, y, 0.065, 0.55, f"$x_{{{name}}}$\n[{input_dims[m]}]", "#f0f0f0")
        _box(ax, 0.15, y, 0.11, 0.75, f"encoder {name}\n{cfg.backbone} → sigmoid\n{vib} head"
             f"\n{sizes[f'encoder {m}']:,} params", "#c6dbef")
        _box(ax, 0.285, y, 0.1, 0.6, f"$\\mu_{{{name}}}, \\log\\sigma^2_{{{name}}}$\n[{d}] each", "#c6dbef")
        _box(ax, 0.39, y, 0.06, 0.5, f"$z_{{{name}}}$", "#9ecae1")
        _box(ax, 0.655, y, 0.135, 0.6, f"$r_{{{name}}} = a_{{{name}}} z_{{{name}}}$\n"
             f"$+ (1 - a_{{{name}}})\\, g_{{{name}}}$", "#fdd0a2")
        _box(ax, 0.8, y, 0.08, 0.5, f"head {name}", "#c7e9c0")
        _arrow(ax, 0.0725, y, 0.095, y)
        _arrow(ax, 0.205, y, 0.235, y)
        _arrow(ax, 0.335, y, 0.36, y)
        _arrow(ax, 0.42, y, 0.4825, mid + (y - mid) * 0.35)  # into the generators
        _arrow(ax, 0.5675, mid + (y - mid) * 0.35, 0.5875, y, color="#8c510a")  # g_m out
        ax.annotate("", xy=(0.5875, y + 0.22), xytext=(0.42, y + 0.22), zorder=1,
                    arrowprops={"arrowstyle": "->", "color": "0.55", "lw": 1.0, "linestyle": "--",
                                "connectionstyle": "arc3,rad=-0.12"})  # z_m straight to r_m
        if m == 0:
            ax.text(0.445, y + 0.5, "$z_m$ where $m$ is present (dashed)", fontsize=7.5, color="0.4")
        _arrow(ax, 0.7225, y, 0.76, y)
        _arrow(ax, 0.7225, y - 0.12, 0.873, mid + (y - mid) * 0.3 - 0.05, color="0.55")  # to fused
        ax.text(0.285, y - 0.45, f"$\\mathrm{{KL}}_{{{name}}}$ · λ = {loss.kl_weight:g}"
                if cfg.vib else "", ha="center", va="center", fontsize=8, color=red)
        ax.text(0.8, y - 0.4, f"$\\mathrm{{CE}}_{{{name}}}$ · {loss.w_unimodal:g}"
                if model.unimodal_heads is not None else "(no unimodal heads)",
                ha="center", va="center", fontsize=8, color=red)
    span = rows[0] - rows[-1] + 0.8
    gen = (f"generators\n$g_m = G_m(z_k,\\ k \\ne m)$\n{cfg.gen_blocks} residual block(s)\n"
           f"{sizes['generators']:,} params")
    _box(ax, 0.525, mid, 0.085, span * 0.7, gen, "#fee6ce")
    ax.text(0.525, rows[-1] - 0.62, f"$w_{{rec}} \\sum_m \\beta_m \\mathrm{{Rec}}_m$ · $w_{{rec}}$ = "
            f"{loss.w_rec:g}\n(Rec$_m$ on present $m$ only)", ha="center", va="center",
            fontsize=8, color=red)
    fused = (f"fused head\nconcat [{num_mod}·{d}]\n→ {num_classes} classes\n"
             f"{sizes['fused head']:,} params")
    _box(ax, 0.925, mid, 0.095, span * 0.55, fused, "#a1d99b")
    ax.text(0.925, mid - span * 0.275 - 0.3, f"$\\mathrm{{CE}}_{{fused}}$ · {loss.w_fused:g}\n"
            "(predictions)", ha="center", va="center", fontsize=8, color=red)
    if model.unimodal_heads is not None:
        ax.text(0.8, rows[-1] - 0.75, f"unimodal heads: {sizes['unimodal heads']:,} params",
                ha="center", va="center", fontsize=7.5, color="0.3")
    total = sum(sizes.values())
    ax.set_title(f"RedCore as built: {num_mod} modalities, d = {d}, {total:,} parameters "
                 "(red: loss terms · their weights)", fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig


def pattern_grid(patterns: torch.Tensor | np.ndarray, modalities: Sequence[str], *,
                 ax: Axes | None = None) -> Figure:
    """The availability patterns as a modalities x patterns grid, columns named ``A``…``AVL``.

    Args:
        patterns: ``[P, M]`` bool (e.g. :func:`~redcore_lite.masking.eval_patterns`).
    """
    pats = torch.as_tensor(np.asarray(patterns)).bool()
    if pats.ndim != 2 or pats.shape[1] != len(modalities):
        raise ValueError(f"patterns: got shape {tuple(pats.shape)}; allowed: [P, {len(modalities)}]")
    own = ax is None
    plots.set_theme()
    fig, ax = plots._canvas(ax, (0.8 * len(pats) + 1.5, 0.45 * len(modalities) + 1.3))
    ax.imshow(pats.t().float().numpy(), aspect="auto", cmap="Blues", vmin=-0.25, vmax=1.0,
              interpolation="nearest")
    ax.set_xticks(range(len(pats)), pattern_names(pats, modalities))
    ax.set_yticks(range(len(modalities)), list(modalities))
    ax.set_xticks(np.arange(len(pats) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(modalities) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.grid(which="major", visible=False)
    ax.tick_params(which="minor", length=0)
    ax.set(xlabel="availability pattern (the modalities a test sample keeps)", ylabel="modality",
           title=f"the {len(pats)} evaluation patterns (dark = present)")
    if own:
        fig.tight_layout()
        plt.close(fig)
    return fig


def sweep_with_chance(table: pd.DataFrame, x: str, y: str, *, chance: float, unit: str | None = None,
                      logx: bool = False, title: str = "", xlabel: str = "", ylabel: str = "",
                      ax: Axes | None = None) -> Figure:
    """:func:`redcore_lite.plots.sweep` with a dashed chance line, a title and the legend outside
    the data (below the axes)."""
    own = ax is None
    plots.set_theme()
    fig, ax = plots._canvas(ax, (6.5, 3.8))
    plots.sweep(table, x, y, unit=unit, logx=logx, ax=ax)
    ax.axhline(chance, color="0.3", linestyle="--", linewidth=1.2, label=f"chance ({chance:.3f})")
    if unit is not None:
        ax.plot([], [], color="grey", alpha=0.5, marker=".", label=f"one {unit}")
    ax.set(title=title, xlabel=xlabel or x, ylabel=ylabel or y)
    ax.set_ylim(min(chance, float(table[y].min())) - 0.05, max(float(table[y].max()), chance) + 0.05)
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)
    if own:
        fig.tight_layout()
        plt.close(fig)
    return fig


def floored_sphere_projection(v: torch.Tensor, floor: float, tol: float = 1e-12) -> torch.Tensor:
    """Euclidean projection of ``v`` onto ``{beta : beta_m >= floor, ||beta||_2 = 1}``.

    On the unit sphere ``||beta - v||^2 = 1 - 2 <beta, v> + ||v||^2``, so the projection maximises
    ``<beta, v>``; its KKT conditions give ``beta = max(floor, s v)`` with the scale ``s > 0`` that
    makes ``||beta|| = 1`` (scale, *then* clamp; found by bisection, the norm grows with ``s``).

    Args:
        v: ``[M]``; floor: in ``[0, 1/sqrt(M))`` so that the set is not empty.
    Returns:
        ``[M]`` float64.
    """
    v = torch.as_tensor(v, dtype=torch.float64)
    num = v.numel()
    if not 0.0 <= floor < 1.0 / num ** 0.5:
        raise ValueError(f"floor: got {floor!r}; allowed: a number in [0, 1/sqrt(M)) = "
                         f"[0, {1.0 / num ** 0.5:.4f}) for M = {num}")
    if not bool((v > 0).any()):
        raise ValueError(f"v: got {v.tolist()}; allowed: a vector with at least one positive entry")
    lo, hi = 0.0, 1.0
    while float(torch.clamp(hi * v, min=floor).norm()) < 1.0:
        hi *= 2.0
    while hi - lo > tol * hi:
        s = (lo + hi) / 2
        lo, hi = (s, hi) if float(torch.clamp(s * v, min=floor).norm()) < 1.0 else (lo, s)
    return torch.clamp(hi * v, min=floor)


def beta_updates(v: torch.Tensor, floor: float, modalities: Sequence[str], *,
                 ax: Axes | None = None) -> Figure:
    """Bars of the release's clamp-then-rescale of ``v`` and of the Euclidean projection, with the
    floor as a dashed line (where the first ends below it, the gap is visible)."""
    v = torch.as_tensor(v, dtype=torch.float64)
    clamped = v.clamp(min=floor)
    release = clamped / clamped.norm()
    proj = floored_sphere_projection(v, floor)
    own = ax is None
    plots.set_theme()
    fig, ax = plots._canvas(ax, (6.5, 3.4))
    pos, width = np.arange(len(modalities)), 0.38
    for k, (vals, name) in enumerate(((release, "release: clamp, then rescale"),
                                       (proj, "projection: scale, then clamp"))):
        bars = ax.bar(pos + (k - 0.5) * width, vals.numpy(), width, label=name, color=f"C{k}")
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.axhline(floor, color="#b2182b", linestyle="--", linewidth=1.2, label=f"floor {floor:g}")
    ax.set_xticks(pos, list(modalities))
    ax.set(ylabel="β after the update", ylim=(0, 1.12),
           title=f"one β update of v = {np.round(v.numpy(), 3).tolist()}")
    ax.legend(fontsize="small", loc="upper right")
    if own:
        fig.tight_layout()
        plt.close(fig)
    return fig


def beta_trace(beta: torch.Tensor | np.ndarray, modalities: Sequence[str], floor: float, *,
               ax: Axes | None = None) -> Figure:
    """beta per training step, one colour per modality, with the floor and the region below it.

    Args:
        beta: ``[T, M]`` (e.g. ``Result.beta()``); modalities: M names; floor: ``advantage.floor``.
    """
    b = np.asarray(beta.cpu() if isinstance(beta, torch.Tensor) else beta, dtype=float)
    if b.ndim != 2 or b.shape[1] != len(modalities):
        raise ValueError(f"beta: got shape {b.shape}; allowed: [T, {len(modalities)}]")
    own = ax is None
    plots.set_theme()
    fig, ax = plots._canvas(ax, (7.5, 3.6))
    steps = np.arange(len(b))
    for m, name in enumerate(modalities):
        ax.plot(steps, b[:, m], color=f"C{m}", linewidth=1.1, label=f"β {name}")
    ax.axhspan(0, floor, color="#b2182b", alpha=0.12, label=f"below the floor {floor:g}")
    ax.axhline(floor, color="#b2182b", linestyle="--", linewidth=1.0)
    ax.set(xlabel="training step", ylabel="β after the step", ylim=(0, 1.05),
           title=f"β per step: {int((b < floor - 1e-6).any(1).sum())} of {len(b)} steps below the floor")
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(modalities) + 1,
              frameon=False)
    if own:
        fig.tight_layout()
        plt.close(fig)
    return fig


def difference_forest(diffs: pd.DataFrame, metric: str = "f1", *, baseline: str = "RedCore",
                      ax: Axes | None = None) -> Figure:
    """Paired differences ``baseline - variant`` per pattern with their confidence intervals, on
    an axis scaled to the differences (not to 0-1), with the zero line.

    Args:
        diffs: rows of :func:`redcore_lite.sweep.paired_differences` (``variant``, ``pattern``,
            ``metric``, ``diff``, ``ci_low``, ``ci_high``, ``n``); metric: which metric to draw.
    """
    part = diffs[diffs["metric"] == metric]
    if part.empty:
        raise ValueError(f"metric: got {metric!r}; allowed: one of {sorted(set(diffs['metric']))}")
    patterns = list(dict.fromkeys(part["pattern"]))
    variants = list(dict.fromkeys(part["variant"]))
    own = ax is None
    plots.set_theme()
    fig, ax = plots._canvas(ax, (7, 0.42 * len(patterns) * max(1, len(variants) / 1.5) + 1.6))
    step = 0.7 / max(len(variants), 1)
    for k, variant in enumerate(variants):
        rows = part[part["variant"] == variant].set_index("pattern").reindex(patterns)
        y = np.arange(len(patterns)) + (k - (len(variants) - 1) / 2) * step
        err = np.vstack([rows["diff"] - rows["ci_low"], rows["ci_high"] - rows["diff"]])
        ax.errorbar(rows["diff"], y, xerr=err, fmt="o", color=f"C{k}", capsize=3, markersize=5,
                    label=f"{baseline} − {variant}")
    ax.axvline(0, color="0.3", linewidth=1.0)
    ax.set_yticks(range(len(patterns)), patterns)
    ax.invert_yaxis()
    n = int(part["n"].min())
    ax.set(xlabel=f"paired difference in {metric} (mean over {n} seeds, 95% t-interval)",
           ylabel="pattern", title=f"{metric}: {baseline} minus each variant (right of 0: {baseline} better)")
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.18 - 0.6 / len(patterns)),
              ncol=len(variants), frameon=False)
    if own:
        fig.tight_layout()
        plt.close(fig)
    return fig


def legend_outside(fig: Figure, width: float = 1.8) -> Figure:
    """Move every legend of ``fig`` into a margin right of all its axes (so that no legend covers
    data or a neighbouring panel), widen the figure by ``width`` inches, and return it.

    For the closed figures of :mod:`redcore_lite.plots`: ``legend_outside(rc.plots.lines(...))``.
    """
    legends = []
    for ax in fig.axes:
        old = ax.get_legend()
        if old is not None:
            handles, labels = ax.get_legend_handles_labels()
            legends.append((ax, handles, labels, old.get_title().get_text()))
            old.remove()
    if not legends:
        return fig
    w, h = fig.get_size_inches()
    fig.set_size_inches(w + width, h)
    right = w / (w + width)
    fig.tight_layout(rect=(0, 0, right, 1))
    for ax, handles, labels, title in legends:
        top = ax.get_position().y1
        fig.legend(handles, labels, title=title or None, loc="upper left", bbox_to_anchor=(right, top),
                   fontsize="small", title_fontsize="small", frameon=False)
    return fig
