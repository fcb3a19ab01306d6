"""Pure plot functions: data in, a closed matplotlib ``Figure`` out.

Every function takes an optional ``ax=`` (or ``axes=``) to draw into; without one it makes its own
figure and closes it before returning, so a notebook cell shows it exactly once and a widget can
redraw it. The seaborn theme is set once, on the first plot (:func:`set_theme`). Notebooks should
ask for PNG figures (``%config InlineBackend.figure_formats = ["png"]``): SVG embeds a date.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .masking import pattern_counts

__all__ = ["set_theme", "mask_heatmap", "availability_bars", "pattern_histogram", "mask_overview",
           "lines", "histograms", "latent_projection", "advantage_dynamics", "pattern_bars", "sweep",
           "latent_collapse", "missing_by_class", "rec_by_peers", "grad_norms", "pattern_equity"]

_THEMED = False
_LABELS = {"beta": "β (weight of Rec_m)", "ra": "relative advantage RA_m",
           "lbar": "EMA of Rec_m (L̄_m)", "rec": "Rec_m", "kl": "KL_m", "ce": "CE of head m"}


def set_theme(force: bool = False) -> None:
    """Set the seaborn theme (white grid, notebook context) once per process, or again with ``force``."""
    global _THEMED
    if _THEMED and not force:
        return
    sns.set_theme(context="notebook", style="whitegrid", palette="deep")
    plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80, "figure.autolayout": False,
                         "svg.hashsalt": "redcore_lite"})
    _THEMED = True


def _figure_of(ax: Axes) -> Figure:
    """The figure that holds ``ax``."""
    fig = ax.get_figure(root=True)
    if fig is None:
        raise ValueError("ax: an Axes on no figure; allowed: axes made by plt.subplots or fig.add_subplot")
    return fig


def _canvas(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    """The figure and axes to draw on: the caller's ``ax`` or a new figure."""
    set_theme()
    if ax is not None:
        return _figure_of(ax), ax
    fig, ax = plt.subplots(figsize=size)
    return fig, ax


def _done(fig: Figure, own: bool) -> Figure:
    """Tidy the layout and close a figure this module created (the caller's stays open)."""
    if own:
        fig.tight_layout()
        plt.close(fig)
    return fig


def _bool_np(avail: torch.Tensor | np.ndarray) -> np.ndarray:
    return np.asarray(avail.cpu() if isinstance(avail, torch.Tensor) else avail).astype(bool)


def mask_heatmap(avail: torch.Tensor | np.ndarray, modalities: Sequence[str], *,
                 max_samples: int = 80, ax: Axes | None = None) -> Figure:
    """Availability mask as a modalities x samples grid (dark = present, light = missing).

    Args:
        avail: ``[N, M]`` bool, True where present; modalities: M names.
        max_samples: show the first this many samples.
    """
    own = ax is None
    fig, ax = _canvas(ax, (8, 2.2))
    a = _bool_np(avail)[:max_samples].T.astype(float)
    ax.imshow(a, aspect="auto", cmap="Blues", vmin=-0.25, vmax=1.0, interpolation="nearest")
    ax.set_yticks(range(len(modalities)), list(modalities))
    ax.set_xlabel(f"sample (first {a.shape[1]})")
    ax.set_title("availability mask (dark = present, light = missing)")
    ax.grid(False)
    return _done(fig, own)


def availability_bars(avail: torch.Tensor | np.ndarray, modalities: Sequence[str],
                      rates: Sequence[float] | None = None, *, ax: Axes | None = None) -> Figure:
    """Fraction of samples that have each modality; black ticks mark the requested ``1 - r_m``.

    Args:
        avail: ``[N, M]`` bool; modalities: M names; rates: requested missing rates (optional).
    """
    own = ax is None
    fig, ax = _canvas(ax, (3.5, 2.8))
    frac = _bool_np(avail).mean(0)
    ax.bar(list(modalities), frac, color=sns.color_palette("deep", len(modalities)))
    if rates is not None:
        ax.scatter(list(modalities), 1 - np.asarray(rates, float), marker="_", s=900, color="black",
                   zorder=3, label="requested 1 - r")
        ax.legend(loc="upper right", fontsize="small")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction present")
    ax.set_title("availability per modality")
    return _done(fig, own)


def pattern_histogram(avail: torch.Tensor | Mapping[str, torch.Tensor], modalities: Sequence[str],
                      *, normalise: bool = True, ax: Axes | None = None) -> Figure:
    """Samples per availability pattern (``none`` = lost everything); a dict of masks gives groups.

    Args:
        avail: ``[N, M]`` bool, or ``{label: [N, M]}`` to compare several masks side by side.
        normalise: fractions of N instead of counts.
    """
    own = ax is None
    fig, ax = _canvas(ax, (5.5, 2.8))
    masks = avail if isinstance(avail, Mapping) else {"mask": avail}
    frames = []
    for label, a in masks.items():
        counts = pattern_counts(torch.as_tensor(_bool_np(a)), modalities)
        value = counts / counts.sum() if normalise else counts
        frames.append(pd.DataFrame({"pattern": counts.index, "value": value.to_numpy(), "mask": label}))
    table = pd.concat(frames, ignore_index=True)
    sns.barplot(table, x="pattern", y="value", hue="mask" if len(masks) > 1 else None, ax=ax,
                legend=len(masks) > 1)
    ax.set_ylabel("fraction of samples" if normalise else "samples")
    ax.set_title("availability patterns")
    _tilt_long_names(ax, table["pattern"])
    return _done(fig, own)


def _tilt_long_names(ax: Axes, names: Sequence[str]) -> None:
    """Rotate the x tick labels when pattern names are long (``"fou+kar+pix"``), so they stay apart."""
    if max((len(str(n)) for n in names), default=0) > 4:
        ax.tick_params(axis="x", labelrotation=25)


def missing_by_class(masks: torch.Tensor | Mapping[str, torch.Tensor], labels: torch.Tensor,
                     modalities: Sequence[str], classes: Sequence[str] | None = None, *,
                     axes: Sequence[Axes] | None = None) -> Figure:
    """Missing rate per class and modality, one heatmap per mask: flat under MCAR, graded when
    missingness depends on the label.

    Args:
        masks: ``[N, M]`` bool availability, or ``{label: [N, M]}``; labels: ``[N]`` class indices;
        classes: class names (default 0..C-1); axes: one per mask (default: a new row).
    """
    set_theme()
    masks = masks if isinstance(masks, Mapping) else {"mask": masks}
    y = np.asarray(torch.as_tensor(labels).cpu())
    num_classes = int(y.max()) + 1 if classes is None else len(classes)
    own = axes is None
    if axes is None:
        _, grid = plt.subplots(1, len(masks), figsize=(2.2 + 1.1 * len(modalities) * len(masks),
                                                         0.6 + 0.28 * num_classes), squeeze=False)
        axes = list(grid[0])
    fig = _figure_of(axes[0])
    names = [str(c) for c in (classes if classes is not None else range(num_classes))]
    for i, (ax, (label, a)) in enumerate(zip(axes, masks.items())):
        missing = ~_bool_np(a)
        rate = np.stack([missing[y == c].mean(0) if (y == c).any() else np.full(len(modalities), np.nan)
                         for c in range(num_classes)])
        sns.heatmap(pd.DataFrame(rate, index=names, columns=list(modalities)), vmin=0, vmax=1,
                    cmap="Greys", annot=len(modalities) * num_classes <= 60, fmt=".2f",
                    cbar=i == len(masks) - 1, yticklabels=i == 0, ax=ax)
        ax.set(title=label, xlabel="modality", ylabel="class" if i == 0 else "")
    return _done(fig, own)


def mask_overview(avail: torch.Tensor, modalities: Sequence[str],
                  rates: Sequence[float] | None = None, *, max_samples: int = 80) -> Figure:
    """Heatmap, availability bars and pattern histogram of one mask in one figure."""
    set_theme()
    fig = plt.figure(figsize=(11, 4.6))
    grid = fig.add_gridspec(2, 2, height_ratios=(1, 1.5), width_ratios=(1, 1.6))
    mask_heatmap(avail, modalities, max_samples=max_samples, ax=fig.add_subplot(grid[0, :]))
    availability_bars(avail, modalities, rates, ax=fig.add_subplot(grid[1, 0]))
    pattern_histogram(avail, modalities, ax=fig.add_subplot(grid[1, 1]))
    return _done(fig, True)


def lines(frame: pd.DataFrame, *, xlabel: str = "", ylabel: str = "", title: str = "",
          logy: bool = False, ax: Axes | None = None) -> Figure:
    """One line per column of ``frame`` against its index (e.g. per-modality curves over epochs).

    Columns named ``"<group> <variant>"`` (e.g. ``"A tied"``, ``"A redrawn"``) share a colour per
    group and a line style per variant.
    """
    own = ax is None
    fig, ax = _canvas(ax, (5.5, 3.2))
    groups = list(dict.fromkeys(str(c).split(" ", 1)[0] for c in frame.columns))
    variants = list(dict.fromkeys((str(c).split(" ", 1) + [""])[1] for c in frame.columns))
    marker = "." if len(frame) <= 20 else None
    for col in frame.columns:
        group, variant = (str(col).split(" ", 1) + [""])[:2]
        ax.plot(frame.index.to_numpy(), frame[col].to_numpy(), label=str(col), marker=marker,
                color=f"C{groups.index(group) % 10}",
                linestyle=("-", "--", ":", "-.")[variants.index(variant) % 4])
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize="small", ncol=2 if len(frame.columns) > 4 else 1)
    return _done(fig, own)


def histograms(values: Mapping[str, torch.Tensor | np.ndarray], *, xlabel: str = "",
               title: str = "", bins: int = 30, ax: Axes | None = None) -> Figure:
    """Overlaid step histograms, one per named sample (e.g. per-modality sigma or KL values)."""
    own = ax is None
    fig, ax = _canvas(ax, (5, 3.2))
    arrays = {k: np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, float).ravel()
              for k, v in values.items()}
    edges = np.histogram_bin_edges(np.concatenate(list(arrays.values())), bins=bins)
    for i, (name, x) in enumerate(arrays.items()):
        ax.hist(x, bins=edges.tolist(), histtype="step", linewidth=1.8, color=f"C{i % 10}", label=name)
    ax.set(xlabel=xlabel, ylabel="count", title=title)
    ax.legend(fontsize="small")
    return _done(fig, own)


def latent_projection(real: torch.Tensor | np.ndarray, generated: torch.Tensor | np.ndarray,
                      labels: torch.Tensor | np.ndarray, *, title: str = "",
                      ax: Axes | None = None) -> Figure:
    """PCA (fitted on the real latents) of real (dots) and generated (crosses) latents, by class.

    Args:
        real, generated: ``[N, d]`` latents of the same samples; labels: ``[N]`` classes.
    """
    from sklearn.decomposition import PCA

    own = ax is None
    fig, ax = _canvas(ax, (5, 4.2))
    real, gen = (np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t, float)
                 for t in (real, generated))
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    pca = PCA(n_components=2, random_state=0).fit(real)
    p_real, p_gen = pca.transform(real), pca.transform(gen)
    colours = sns.color_palette("deep", int(y.max()) + 1)
    for c in np.unique(y):
        ax.scatter(p_real[y == c, 0], p_real[y == c, 1], s=14, color=colours[c], alpha=0.6, label=f"class {c}")
        ax.scatter(p_gen[y == c, 0], p_gen[y == c, 1], s=22, color=colours[c], marker="x", linewidths=1.0)
    ax.scatter([], [], marker="x", color="grey", label="generated")
    ax.set(xlabel="PC 1", ylabel="PC 2", title=title or "real (dots) vs generated (crosses)")
    ax.legend(fontsize="small", ncol=2)
    return _done(fig, own)


def advantage_dynamics(history: pd.DataFrame, modalities: Sequence[str], *,
                       keys: Sequence[str] = ("beta", "ra", "lbar"), smooth: int = 1,
                       axes: Sequence[Axes] | None = None) -> Figure:
    """Per-modality ``beta``, ``ra`` and ``lbar`` (or any history key) over training steps.

    Args:
        history: ``Result.history`` (columns ``<key>_<modality>``, ``step``); modalities: names.
        keys: one panel per key; smooth: rolling-mean window in steps (1 = raw).
        axes: as many axes as keys (default: a new row of panels).
    """
    set_theme()
    own = axes is None
    if axes is None:
        _, grid = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
        axes = list(grid[0])
    fig = _figure_of(axes[0])
    steps = history["step"].to_numpy() if "step" in history else np.arange(len(history))
    for ax, key in zip(axes, keys):
        for m in modalities:
            values = history[f"{key}_{m}"].astype(float).rolling(smooth, min_periods=1).mean()
            ax.plot(steps, values.to_numpy(), label=m, linewidth=1.2)
        ax.set(xlabel="training step", ylabel=key + (" (log)" if key == "lbar" else ""),
               title=_LABELS.get(key, key))
        if key == "lbar":
            ax.set_yscale("log")
        if key == "ra":
            ax.axhline(0.0, color="black", linewidth=0.8)
    axes[0].legend(fontsize="small")
    return _done(fig, own)


def latent_collapse(runs: Mapping[str, pd.DataFrame], modalities: Sequence[str], *,
                    num_classes: int | None = None, axes: Sequence[Axes] | None = None) -> Figure:
    """How a run's latents collapse, or do not, over epochs; one line per run.

    Panels (log scales): the fused cross-entropy (training mean; a dotted line at chance, log C),
    the reconstruction loss (training mean over modalities), and the smallest ratio over
    modalities of the latents' between-sample spread to the posterior SD (validation, with the
    collapse threshold of :func:`redcore_lite.evaluation.collapse_warning`).

    Args:
        runs: name -> :meth:`Result.diagnostics` frame (index epoch; columns ``ce_fused``,
            ``rec_<m>``, ``spread_<m>``, ``post_sd_<m>``); modalities: names.
        num_classes: C, for the chance line of the first panel.
    """
    from .evaluation import COLLAPSE_RATIO

    set_theme()
    own = axes is None
    if axes is None:
        _, grid = plt.subplots(1, 3, figsize=(13, 3.4), squeeze=False)
        axes = list(grid[0])
    fig = _figure_of(axes[0])
    for i, (name, frame) in enumerate(runs.items()):
        x, colour = frame.index.to_numpy(), f"C{i % 10}"
        rec = frame[[f"rec_{m}" for m in modalities]].mean(axis=1)
        ratio = pd.concat([frame[f"spread_{m}"] / frame[f"post_sd_{m}"] for m in modalities], axis=1)
        axes[0].plot(x, frame["ce_fused"].to_numpy(), color=colour, label=name)
        axes[1].plot(x, rec.to_numpy(), color=colour, label=name)
        axes[2].plot(x, ratio.min(axis=1).to_numpy(), color=colour, label=name)
    if num_classes:
        axes[0].axhline(np.log(num_classes), color="black", linestyle=":", linewidth=1,
                        label=f"chance (log {num_classes})")
    axes[2].axhline(COLLAPSE_RATIO, color="black", linestyle=":", linewidth=1, label="collapse threshold")
    axes[0].set(xlabel="epoch", ylabel="fused cross-entropy", yscale="log",
                title="classification loss (train)")
    axes[1].set(xlabel="epoch", ylabel="mean over modalities of Rec_m", yscale="log",
                title="reconstruction loss (train)")
    axes[2].set(xlabel="epoch", ylabel="spread of mu / posterior SD", yscale="log",
                title="latent spread (val, smallest modality)")
    axes[0].legend(fontsize="small")
    axes[2].legend(fontsize="small")
    return _done(fig, own)


def pattern_bars(table: pd.DataFrame, metric: str = "f1", *, hue: str | None = None,
                 ax: Axes | None = None) -> Figure:
    """Per-pattern metric bars (``Result.test``-like rows: ``pattern``, metric, optional ``hue``).

    Several rows per pattern and hue (e.g. seeds) give the mean with a standard-deviation bar.
    """
    own = ax is None
    fig, ax = _canvas(ax, (7, 3.2))
    sns.barplot(table, x="pattern", y=metric, hue=hue, errorbar="sd", ax=ax, legend=hue is not None)
    ax.set(ylim=(0, 1.05), ylabel=metric, title=f"{metric} per availability pattern")
    _tilt_long_names(ax, table["pattern"])
    if hue is not None:
        ax.legend(fontsize="small", title=hue, loc="lower right")
    return _done(fig, own)


def sweep(table: pd.DataFrame, x: str, y: str, *, unit: str | None = None, logx: bool = False,
          ax: Axes | None = None) -> Figure:
    """``y`` against a swept ``x``: one thin line per ``unit`` (e.g. seed, paired) and the mean."""
    own = ax is None
    fig, ax = _canvas(ax, (5, 3.2))
    if unit is not None:
        for _, part in table.groupby(unit):
            part = part.sort_values(x)
            ax.plot(part[x].to_numpy(), part[y].to_numpy(), color="grey", alpha=0.5, linewidth=1,
                    marker=".")
    mean = table.groupby(x)[y].mean()
    ax.plot(mean.index.to_numpy(), mean.to_numpy(), color="C3", linewidth=2.2, marker="o",
            label=f"mean over {unit}s" if unit else y)
    if logx:
        ax.set_xscale("symlog", linthresh=float(np.min(np.abs(mean.index[mean.index != 0]))))
    ax.set(xlabel=x, ylabel=y)
    ax.legend(fontsize="small")
    return _done(fig, own)


# --- diagnostics (redcore_lite.diagnostics): Rec by peer stratum, gradient imbalance, equity -----

def rec_by_peers(result: object, *, by: str = "peers", epochs: Sequence[int] | slice | None = None,
                 ax: Axes | None = None) -> Figure:
    """Rec_m per stratum of present peers: one group of bars per modality, coloured by the number
    of present peers, labelled with the stratum and its share of m's training rows; a black bar
    across each group is the modality's overall Rec_m (the row-weighted mean of its bars).
    ``result``: a ``Result`` or its ``extra["rec_strata"]``; ``by`` and ``epochs`` as in
    :func:`redcore_lite.diagnostics.rec_strata`."""
    from .diagnostics import rec_strata
    table = rec_strata(result, by, epochs)
    table["k"] = table["num_peers"] if by != "any_peer" else (table["any_peer"] == "some").astype(int)
    own = ax is None
    fig, ax = _canvas(ax, (8, 3.4))
    mods = list(dict.fromkeys(table["modality"]))
    for i, m in enumerate(mods):
        part = table[table["modality"] == m].sort_values(["k", by])
        width = 0.8 / len(part)
        xs = i - 0.4 + width * (np.arange(len(part)) + 0.5)
        ax.bar(xs, part["rec"].to_numpy(), width=width * 0.92,
               color=[f"C{int(k)}" for k in part["k"]], edgecolor="white")
        for x, (_, row) in zip(xs, part.iterrows()):
            ax.annotate(f"{row[by]}\n{row['share']:.0%}", (x, row["rec"]), ha="center", va="bottom",
                        fontsize="x-small", xytext=(0, 1), textcoords="offset points")
        overall = float((part["rec"] * part["n"]).sum() / part["n"].sum())
        ax.plot([i - 0.42, i + 0.42], [overall, overall], color="black", linewidth=2,
                label="overall Rec_m" if i == 0 else None)
    for k in sorted(table["k"].unique()):
        ax.bar([np.nan], [np.nan], color=f"C{int(k)}",
               label={0: "no peer present", 1: "1 peer" if by != "any_peer" else "some peer"}.get(
                   int(k), f"{int(k)} peers"))
    ax.set_xticks(range(len(mods)), mods)
    ax.set(yscale="log", xlabel="modality m", ylabel="Rec_m on the stratum (log)",
           title=f"reconstruction loss by {by.replace('_', ' ')} (train; label: stratum, share of m's rows)")
    ax.margins(y=0.25)
    ax.legend(fontsize="small", bbox_to_anchor=(1.01, 1), loc="upper left")
    return _done(fig, own)


def grad_norms(result: object, *, ax: Axes | None = None) -> Figure:
    """Each modality's mean encoder gradient norm per epoch (before clipping; log scale), and
    the max / min ratio on a second axis."""
    from .diagnostics import grad_imbalance
    g = grad_imbalance(result)
    own = ax is None
    fig, ax = _canvas(ax, (8, 3.2))
    for m in g.columns[:-1]:
        ax.plot(g.index.to_numpy(), g[m].to_numpy(), marker=".", label=m)
    ax.set(yscale="log", xlabel="epoch", ylabel="encoder grad norm (log)",
           title="per-modality gradient norms (train)")
    twin = ax.twinx()
    twin.plot(g.index.to_numpy(), g["ratio"].to_numpy(), color="black", linestyle=":",
              label="max / min")
    twin.set(ylabel="max / min ratio")
    twin.grid(False)
    lines_, labels_ = ax.get_legend_handles_labels()
    l2, lb2 = twin.get_legend_handles_labels()
    ax.legend(lines_ + l2, labels_ + lb2, fontsize="small", bbox_to_anchor=(1.12, 1), loc="upper left")
    return _done(fig, own)


def pattern_equity(tables: Mapping[str, pd.DataFrame], modalities: Sequence[str], metric: str = "f1",
                   *, axes: Sequence[Axes] | None = None) -> Figure:
    """Left: the per-pattern score of each run (one line per run, patterns on x; the y axis fits
    the data). Right: each modality's marginal contribution
    (:func:`redcore_lite.diagnostics.marginal_contributions`) per run."""
    from .diagnostics import marginal_contributions
    own = axes is None
    if axes is None:
        set_theme()
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    else:
        fig = _figure_of(axes[0])
    marg = []
    for i, (name, t) in enumerate(tables.items()):
        rows = t[t["pattern"] != "overall"]
        axes[0].plot(rows["pattern"].to_numpy(), rows[metric].to_numpy(), marker="o", label=name,
                     color=f"C{i}")
        marg.append(marginal_contributions(t, modalities, metric).rename(name))
    axes[0].set(xlabel="test availability pattern", ylabel=metric, title=f"{metric} per pattern")
    axes[0].legend(fontsize="small")
    frame = pd.concat(marg, axis=1)
    frame.plot.bar(ax=axes[1], rot=0, legend=False)
    axes[1].axhline(0, color="black", linewidth=0.8)
    axes[1].set(xlabel="modality", ylabel=f"mean gain in {metric}", title="marginal contribution")
    if own:
        fig.tight_layout()
        plt.close(fig)
    return fig
