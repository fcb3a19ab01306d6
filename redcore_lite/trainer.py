"""The one training entry point: ``fit(config, data) -> Result``.

Bi-level training: each batch takes one Adam step on the network for the current beta (lower
level); the relative-advantage state then moves beta (upper level, :mod:`redcore_lite.advantage`).
Per-step history stays on the training device and is copied to the host once per epoch.
"""
from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch

from ._checks import check_choice, check_positive
from ._files import exclusive, lock_path
from .advantage import RelativeAdvantage
from .callbacks import Callback, StepEnd, split_callbacks
from . import distributed as D
from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, check_config, config_from_dict, config_to_dict, override
from .data import MultimodalData, Splits, load_data
from .diagnostics import accumulate_strata, encoder_grad_norms, strata_buffer, strata_frame
from .graphs import StaticStep
from .losses import LossTerms, complete_rows, compute_losses
from .masking import (MECHANISMS, check_mechanism, eval_patterns, pattern_codes, pattern_names,
                      simulating, training_mask)
from .metrics import confusion_metrics, grouped_metrics, pattern_confusion, pattern_metrics
from .model import PresentRows, RedCore, backbone_of, build_model, check_backbones
from .registry import get_encoder, is_plugin
from .optim import Adam

__all__ = ["Result", "EpochEnd", "fit", "evaluate", "predict_logits", "predict_observed",
           "EVAL_PROTOCOLS", "mask_kind", "resolve_device", "lr_factor",
           "train_step", "make_optimizer", "latent_spread", "collapse_warning", "COLLAPSE_RATIO",
           "LatentCollapseWarning", "SetupWarning"]


@dataclass
class EpochEnd:
    """What a callback receives after each epoch."""

    epoch: int  # 0-based index of the finished epoch
    metrics: dict[str, float]  # this epoch's row of Result.epochs
    beta: np.ndarray  # [M] beta at the end of the epoch


@dataclass
class Result:
    """Everything a run produced. ``model`` holds the weights of the selected (best-val) epoch."""

    config: Config
    modalities: tuple[str, ...]
    history: pd.DataFrame  # one row per training step: every loss term, beta, RA, EMA, eta, lr
    epochs: pd.DataFrame  # one row per epoch: lr, mean loss, validation WA/UA/F1
    val: pd.DataFrame  # per-pattern validation metrics at the selected epoch
    test: pd.DataFrame  # per-pattern test metrics at the selected epoch
    best_epoch: int
    model: RedCore
    train_mask: torch.Tensor  # [N_train, M] bool, the mask of the last epoch (observed & simulated)
    # extra["data"]: the data's description (Splits.describe()); extra["mask"]: which kind of
    # training mask the run used (mask_kind) and its mechanism; extra["rec_strata"]: Rec by
    # availability pattern and epoch (redcore_lite.diagnostics.strata_frame)
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what the run found wrong (latent collapse)
    observed_mask: torch.Tensor | None = None  # [N_train, M] bool, the data's own holes (or None)
    # with train.eval_complete and observed holes in val/test: the complete rows of each split
    # under every availability pattern (the per-pattern protocol of data without holes)
    val_complete: pd.DataFrame | None = None
    test_complete: pd.DataFrame | None = None

    def beta(self) -> pd.DataFrame:
        """Per-step beta, one column per modality."""
        return self.history[[f"beta_{m}" for m in self.modalities]].set_axis(self.modalities, axis=1)

    def diagnostics(self) -> pd.DataFrame:
        """One row per epoch: the training means of the fused CE and of each ``rec_m``, the
        validation F1, and each modality's latent spread and posterior SD (the collapse check).
        What :func:`redcore_lite.plots.latent_collapse` draws."""
        cols = ["ce_fused", *(f"rec_{m}" for m in self.modalities)]
        means = self.history.groupby("epoch")[cols].mean()
        cols = ["val_f1", *(f"{k}_{m}" for k in ("spread", "post_sd") for m in self.modalities)]
        return means.join(self.epochs.set_index("epoch")[cols])


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; check that a requested cuda device exists."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"train.device: got {name!r}; allowed: 'auto', 'cpu', 'cuda', 'cuda:N'")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device: got {name!r} but CUDA is not available; allowed here: "
                         "'auto' or 'cpu'")
    return torch.device(name)


def lr_factor(epoch: int, constant: int, decay: int) -> float:
    """Release (MMIN) rule: ``1 - max(0, epoch + 1 - constant) / (decay + 1)`` for 0-based epochs."""
    return 1.0 - max(0, epoch + 1 - constant) / float(decay + 1)


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


def _overall(model: RedCore, data: MultimodalData, batch_size: int) -> dict[str, float]:
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


class SetupWarning(RuntimeWarning):
    """Issued by :func:`fit` for a set-up that trains but is degenerate or was adapted (a
    modality no training sample has, a class no split has, converted dtypes); also in
    ``Result.warnings``."""


class LatentCollapseWarning(RuntimeWarning):
    """Issued by :func:`fit` when the selected epoch's latents have collapsed (also in
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


def _clip_groups(model: RedCore) -> tuple[list[list[torch.nn.Parameter]], list[list[torch.nn.Parameter]]]:
    """Sub-networks clipped separately (release): plain groups and modality-stacked groups."""
    plain = [list(e.parameters()) for e in model.encoders] + [list(model.fused_head.parameters())]
    stacked = [list(model.generators.parameters())]
    if model.unimodal_heads is not None:
        stacked.append(list(model.unimodal_heads.parameters()))
    return plain, stacked


def _clip(plain: list, stacked: list, max_norm: float) -> None:
    """Clip each group to ``max_norm``; a stacked group per modality slice. No host sync.

    A plain group is clipped exactly as ``clip_grad_norm_`` would (the norm of its tensors' norms,
    the same coefficient), with one ``_foreach_norm`` over all groups' gradients; the coefficients
    of all groups come from one vector.
    """
    groups = [gs for gs in ([p.grad for p in params if p.grad is not None] for params in plain) if gs]
    stacks = [gs for gs in ([p.grad for p in params if p.grad is not None] for params in stacked) if gs]
    norms: list[torch.Tensor] = []  # one norm per plain group, then [M] per stacked group
    if groups:
        each = torch._foreach_norm([g for gs in groups for g in gs], 2.0)
        pos = 0
        for gs in groups:
            norms.append(torch.linalg.vector_norm(torch.stack(each[pos:pos + len(gs)]), 2.0)[None])
            pos += len(gs)
    for grads in stacks:  # per modality: the norm over the group's [m] slices
        norms.append(torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1).norm(dim=1))
    if not norms:
        return
    coefs = (max_norm / (torch.cat(norms) + 1e-6)).clamp(max=1.0).split([len(n) for n in norms])
    for gs, coef in zip(groups, coefs):
        torch._foreach_mul_(gs, coef[0])  # one multi-tensor kernel per group on CUDA
    for grads, coef in zip(stacks, coefs[len(groups):]):
        view = {k: coef.view(-1, *([1] * (k - 1))) for k in {g.dim() for g in grads}}  # [M, 1, ..]
        torch._foreach_mul_(grads, [view[g.dim()] for g in grads])


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host-to-device copy that does not block the host (pinned memory on CUDA)."""
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def _epoch_plan(order: torch.Tensor, mask: torch.Tensor, batch_size: int, device: torch.device
                ) -> list[tuple[torch.Tensor, PresentRows]]:
    """Every step's sample indices and :class:`PresentRows`, built on the host once per epoch
    and copied to the device in one transfer, so the steps themselves never sync.

    Under torchrun each rank keeps its shard of every global batch; a last global batch with
    fewer samples than ranks is dropped.
    """
    batches = [D.shard(order[i:i + batch_size]) for i in range(0, len(order), batch_size)
               if min(batch_size, len(order) - i) >= D.world()]
    pieces, spans = [], []
    for idx in batches:
        present = PresentRows.build(mask[idx])
        parts = [idx, present.pos, *present.rows]
        spans.append([len(p) for p in parts])
        pieces += parts
    flat = _to_device(torch.cat(pieces), device) if pieces else torch.empty(0, dtype=torch.long)
    plan, pos = [], 0
    for sizes in spans:
        views = []
        for n in sizes:
            views.append(flat[pos:pos + n])
            pos += n
        plan.append((views[0], PresentRows(tuple(views[2:]), views[1])))
    return plan


def make_optimizer(model: torch.nn.Module, config: Config) -> Adam:
    """Adam with the release's betas (one fused kernel per step; see :mod:`redcore_lite.optim`).

    The learning rate follows the release schedule per epoch: the trainer sets
    ``optimizer.lr = config.train.lr * lr_factor(epoch, ...)`` before each epoch.
    """
    tc = config.train
    return Adam(model.parameters(), lr=tc.lr, betas=(tc.adam_beta1, 0.999))


def train_step(model: torch.nn.Module, optimizer: Adam, adv: RelativeAdvantage,
               config: Config, xs: list[torch.Tensor], lens: list[torch.Tensor | None],
               avail: torch.Tensor, y: torch.Tensor, clip_groups: tuple[list, list],
               present: PresentRows | None = None,
               beta_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
               ) -> LossTerms:
    """One bi-level iteration: forward, the beta step (upper level), one Adam step (lower level).

    Args:
        model: the (possibly compiled) RedCore; xs, lens: inputs; avail: ``[B, M]``; y: ``[B]``;
        clip_groups: from :func:`_clip_groups` of the uncompiled model; present: the batch's
        :class:`PresentRows` (from :func:`_epoch_plan`; avoids a device sync); beta_fn:
        the upper-level step given this batch's reconstruction losses (default ``adv.step``).
    Returns:
        the step's :class:`LossTerms` (device tensors; nothing is read back to the host).
    """
    tc = config.train
    with _region("redcore::forward"), torch.autocast(avail.device.type, dtype=torch.bfloat16,
                                                      enabled=tc.bf16):
        out = model(xs, lens, avail, present)
    with _region("redcore::loss"):
        terms = compute_losses(out, y, avail, beta_fn or adv.step, config.loss,
                               "all" if config.advantage.mode == "matched" else "any")
    optimizer.zero_grad()
    with _region("redcore::backward"):
        terms.total.backward()
    terms.grad_norm = encoder_grad_norms(clip_groups[0][:avail.shape[1]])  # diagnostics, no sync
    with _region("redcore::clip"):
        if tc.clip_norm > 0:
            _clip(*clip_groups, tc.clip_norm)
    with _region("redcore::adam"):
        optimizer.step()
    return terms


_NO_REGION = contextlib.nullcontext()


def _region(name: str) -> contextlib.AbstractContextManager:
    """A named range for ``torch.profiler`` while it records (the step's parts in a trace and in
    ``benchmarks/step_time.py --profile``); nothing otherwise (``record_function`` costs ~6 us)."""
    if torch.autograd._profiler_enabled():
        from torch.profiler import record_function
        return record_function(name)
    return _NO_REGION


def _check_config(config: Config, splits: Splits) -> None:
    check_backbones(config.model, len(splits.modalities))
    if simulating(config.mask, splits.train.mask):
        check_mechanism(config.mask, splits.modalities, splits.num_classes, splits.train.dims)
    else:
        check_choice(config.mask.mechanism, MECHANISMS, "mask.mechanism")
    for m, (mod, x) in enumerate(splits.train.features.items()):
        kind = backbone_of(config.model, m)
        takes = get_encoder(kind).inputs
        want = {"vectors": 2, "sequences": 3}.get(takes, x.dim())
        if x.dim() != want:
            shape = "vectors [N, D]" if want == 2 else "frame sequences [N, T, D]"
            raise ValueError(f"model.backbone: got {kind!r} but modality {mod!r} "
                             f"has shape {tuple(x.shape)}; allowed: {kind!r} takes "
                             f"{shape} (use 'mlp' for vectors, 'transformer' for sequences; "
                             "for avdigits, data.sequences chooses which it gives)")
    mc = config.model
    check_positive(mc.latent_dim, "model.latent_dim", integer=True)
    if mc.backbone == "mlp":
        check_positive(mc.mlp_hidden, "model.mlp_hidden", integer=True)
    else:
        check_positive(mc.num_layers, "model.num_layers", integer=True)
        check_positive(mc.num_heads, "model.num_heads", integer=True)
    for name in ("gen_layers", "head_layers"):
        widths = getattr(mc, name)
        if any(w < 1 for w in widths):
            raise ValueError(f"model.{name}: got {tuple(widths)}; allowed: layer widths that are "
                             "integers >= 1 (() = no hidden layer)")
    t = config.train
    if not 0.0 <= t.adam_beta1 < 1.0:
        raise ValueError(f"train.adam_beta1: got {t.adam_beta1}; allowed: a number in [0, 1)")
    check_positive(t.batch_size, "train.batch_size", integer=True)
    check_positive(t.eval_batch_size, "train.eval_batch_size", integer=True)
    check_positive(t.lr, "train.lr")
    check_positive(t.epochs_constant, "train.epochs_constant", zero_ok=True, integer=True)
    check_positive(t.epochs_decay, "train.epochs_decay", zero_ok=True, integer=True)
    check_positive(t.clip_norm, "train.clip_norm", zero_ok=True)
    if config.epochs < 1:
        raise ValueError("train.epochs_constant + train.epochs_decay: got 0; allowed: >= 1")
    for name in ("w_fused", "w_unimodal", "kl_weight", "w_rec"):
        check_positive(getattr(config.loss, name), f"loss.{name}", zero_ok=True)


def mask_kind(config: Config, observed: torch.Tensor | None) -> str:
    """Which training mask a run uses: ``"simulated"`` (data without holes, a simulated mask:
    the default), ``"observed"`` (the data's own holes only), ``"observed+simulated"`` or
    ``"complete"`` (no holes, nothing simulated)."""
    holes = observed is not None and not bool(observed.all())
    sim = simulating(config.mask, observed)
    return {(False, True): "simulated", (True, False): "observed", (True, True): "observed+simulated",
            (False, False): "complete"}[(holes, sim)]


def _data_config(config: Config, splits: Splits) -> Config:
    """``config`` with ``data`` describing your own data (``name="custom"``, its path) when the
    splits came from :mod:`redcore_lite.custom_io` / :func:`~redcore_lite.custom.from_arrays`
    but the config names other data (``fit(config, data=...)``); else ``config``."""
    source = splits.train.source
    if source.get("name") != "custom" or config.data.name == "custom" or is_plugin(config.data.name):
        return config  # (a registered dataset's loader may build its splits with from_arrays)
    return override(config, data={"name": "custom", "path": str(source.get("path", ""))})


def _history_columns(mods: Sequence[str]) -> list[str]:
    cols = ["loss", "ce_fused"]
    for key in ("ce", "kl", "rec", "observed", "beta", "ra", "lbar"):
        cols += [f"{key}_{m}" for m in mods]
    return cols


def _comparable(config_dict: dict[str, Any]) -> dict[str, Any]:
    """Config fields that must match for a resume (device and progress bar may change)."""
    d = {k: dict(v) for k, v in config_dict.items()}
    for key in ("device", "progress"):
        d["train"].pop(key, None)
    return d


def fit(config: Config, data: Splits | None = None, *, checkpoint: str | os.PathLike | None = None,
        resume: bool = False, callbacks: Sequence[Callback | Callable[[EpochEnd], None]] = ()) -> Result:
    """Train RedCore, select the epoch with the best validation macro-F1, test it.

    Args:
        config: the experiment; data: train/val/test splits (default: ``load_data(config.data)``).
        checkpoint: a file rewritten atomically after every epoch (model, optimizer,
            beta state, RNG states, history, best weights, and the sha256 of all that); locked
            (``.NAME.lock`` next to it) while this fit runs: a second fit on it stops at once.
        resume: continue from ``checkpoint`` if it exists (bit-identical to an uninterrupted run).
        callbacks: functions called with an :class:`EpochEnd` after every epoch (after the
            checkpoint), and :class:`~redcore_lite.callbacks.Callback` objects (per-step hooks
            with device tensors, per-epoch, end of fit; e.g. a TensorBoard logger). They do not
            change the run.
    Returns:
        :class:`Result`. The caller's global RNG state is left untouched. ``Result.warnings``
        (also issued as :class:`SetupWarning` / :class:`LatentCollapseWarning`) says what was
        degenerate: a modality no training sample has (left out of RA and beta), a class no
        split has, converted dtypes, collapsed latents.
    Raises:
        ValueError: a bad config field (type, range, non-finite), bad data (shapes, NaN, labels,
            val/test classes the training split lacks), a training mask that leaves nothing,
            an unreadable or damaged checkpoint to resume; FloatingPointError: divergence.
    """
    check_config(config)
    step_hooks, epoch_hooks, end_hooks = split_callbacks(callbacks)
    seed = config.train.seed
    splits = data if data is not None else load_data(config.data, seed=seed)
    if not isinstance(splits, Splits):
        raise ValueError(f"data: got a {type(splits).__name__}; allowed: redcore_lite.Splits "
                         "(rc.load_data, rc.split_data, rc.stratified_split) or None")
    splits, converted = splits.coerced()
    splits.validate()
    config = _data_config(config, splits)
    _check_config(config, splits)
    setup = [f"data: {note} (what the model computes in)" for note in converted]
    setup += _class_warnings(splits)
    described = splits.describe()
    device = D.local_device(resolve_device(config.train.device))
    if config.train.cuda_graph and (device.type != "cuda" or D.world() > 1):
        raise ValueError(f"train.cuda_graph: got True with device {str(device)!r} and {D.world()} "
                         "process(es); allowed: True only on a CUDA device in a single process "
                         "(not under torchrun)")
    devices = [device.index or 0] if device.type == "cuda" else []
    tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = config.train.tf32 and device.type == "cuda"
        with _checkpoint_lock(checkpoint), torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            result = _fit(config, splits.to(device), device, checkpoint, resume, epoch_hooks,
                          described, setup, step_hooks)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    result.extra.update({"device": str(device), "world_size": D.world(), "torch": torch.__version__,
                         "threads": torch.get_num_threads(),
                         "bf16": config.train.bf16, "compile": config.train.compile,
                         "cuda_graph": config.train.cuda_graph,
                         "tf32": config.train.tf32 and device.type == "cuda"})
    for hook in end_hooks:
        hook(result)
    return result


def _checkpoint_lock(checkpoint: str | os.PathLike | None) -> contextlib.AbstractContextManager:
    """An exclusive lock on ``.NAME.lock`` next to the checkpoint while ``fit`` writes it (rank 0
    only), so that two fits on one checkpoint fail at once instead of overwriting each other;
    its folder is created and checked writable before the first epoch."""
    if checkpoint is None or not D.is_main():
        return contextlib.nullcontext()
    path = Path(checkpoint)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"checkpoint: cannot create the folder {str(path.parent)!r} "
                         f"({err.strerror}); allowed: a path in a folder you can write to") from None
    if path.is_dir():
        raise ValueError(f"checkpoint: {str(path)!r} is a folder; allowed: a file path (e.g. "
                         "run/checkpoint.pt)")
    return exclusive(path, lock_path(path), "checkpoint", "fit")


def _class_warnings(splits: Splits) -> list[str]:
    """A message for classes that no split has (an output unit never trained nor scored);
    classes of val/test without a training sample are an error (:meth:`Splits.validate`)."""
    counts = torch.stack([torch.bincount(getattr(splits, p).labels.cpu(), minlength=splits.num_classes)
                          for p in ("train", "val", "test")]).sum(0)
    empty = [c for c in range(splits.num_classes) if counts[c] == 0]
    if not empty:
        return []
    names = empty if splits.train.classes is None else [f"{c} ({splits.train.classes[c]!r})"
                                                        for c in empty]
    return [f"labels: class(es) {names[:8]} of num_classes={splits.num_classes} have no sample in "
            "any split: their outputs are only ever pushed down, and no score counts them (give "
            "num_classes = the number of classes the data has)"]


def _unobserved_warning(config: Config, mod: str, kind: str) -> str:
    rates = (f", mask.rates={list(config.mask.rates)}, mask.mechanism="
             f"{config.mask.mechanism!r}" if kind.endswith("simulated") else "")
    return (f"mask: modality {mod!r} is missing from every training sample (training mask: "
            f"{kind}{rates}): it has no reconstruction loss, so it is left out of the relative "
            f"advantage and of beta's norm (beta_{mod} = 0), and its encoder is never trained; "
            "test patterns with it feed it as an untrained input")


def _global_beta(adv: RelativeAdvantage, rows: torch.Tensor
                 ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The upper level on every rank's Rec and observed counts (summed over ``rows``)."""
    def step(rec: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        return adv.step(*D.global_rec(rec, rows))
    return step


def _fit(config: Config, splits: Splits, device: torch.device, checkpoint: Any, resume: bool,
         callbacks: Sequence[Callable[[EpochEnd], None]],
         described: dict[str, Any] | None = None, setup: Sequence[str] = (),
         step_hooks: Sequence[Callable[[StepEnd], None]] = ()) -> Result:
    tc, mods = config.train, splits.modalities
    num_mod, train = len(mods), splits.train
    columns = tuple(_history_columns(mods))  # the names of a step's history row
    model = build_model(config.model, train.dims, splits.num_classes, seed=tc.seed).to(device)
    net: torch.nn.Module = model
    if D.world() > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    # A CUDA graph's step and a compiled step have static shapes (every row encoded): compiled
    # for them, and once more for an epoch's short last batch. (Dynamic shapes recompiled for
    # every new present-row count, and on torch 2.11 + an H200 inductor failed on the dynamic
    # `paper` step.)
    static_step = tc.cuda_graph or tc.compile
    # torch.compile of a Module returns an OptimizedModule (a Module); its stub says Callable
    step_model = cast(torch.nn.Module, torch.compile(net, dynamic=False)) if tc.compile else net
    optimizer = make_optimizer(model, config)
    mask_gen = torch.Generator().manual_seed(tc.seed + 1)
    batch_gen = torch.Generator().manual_seed(tc.seed + 2)
    described = described if described is not None else splits.describe()
    observed = None if train.mask is None else train.mask.cpu()
    kind = mask_kind(config, observed)
    mask = training_mask(config.mask, train, mask_gen)
    seen = mask.any(0)  # modalities some training sample has (the counts are the same each epoch)
    if not bool(seen.any()):
        raise ValueError(f"mask: the training mask leaves no modality in any training sample "
                         f"(training mask: {kind}, mask.rates={list(config.mask.rates)}, "
                         f"mask.mechanism={config.mask.mechanism!r}); allowed: rates or a "
                         "mechanism that leave some modality observed (a rate of 1 removes a "
                         "modality from every sample)")
    setup = list(setup) + [_unobserved_warning(config, mods[m], kind)
                           for m in torch.nonzero(~seen).flatten().tolist()]
    for message in setup:
        warnings.warn(message, SetupWarning, stacklevel=3)
    # "inverse" weights: the requested rates of a simulated mask (as before), else the realised
    # rates of the training mask (observed holes included)
    rates = (config.mask.rates if kind == "simulated" and config.mask.mechanism == "mcar"
             else tuple((~mask).float().mean(0).tolist()))
    adv = RelativeAdvantage(config.advantage, num_mod, device, rates,
                            None if bool(seen.all()) else seen.tolist())
    clip_groups = _clip_groups(model)
    hist_rows: list[torch.Tensor] = []
    etas: list[float] = []
    epoch_rows: list[dict[str, Any]] = []
    diag_rows: list[torch.Tensor] = []  # per epoch: Rec sums per pattern, mean encoder grad norms
    best: dict[str, Any] = {"epoch": -1, "f1": -math.inf, "state": None}
    start = 0
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        st = load_checkpoint(checkpoint, map_location=device)
        saved = config_to_dict(config_from_dict(st["config"]))  # fields added since: their defaults
        if _comparable(saved) != _comparable(config_to_dict(config)):
            raise ValueError(f"checkpoint: {str(checkpoint)!r} was written by a different config; "
                             "allowed: the same config (device and progress may differ)")
        if "data" in st and _data_key(st["data"]) != _data_key(described):
            raise ValueError(f"checkpoint: {str(checkpoint)!r} was written for other data "
                             f"({_data_key(st['data'])}); allowed: the same data "
                             f"(got {_data_key(described)})")
        model.load_state_dict(st["model"])
        optimizer.load_state_dict(st["optimizer"])
        adv.load_state_dict(st["advantage"])
        torch.set_rng_state(st["rng"]["torch"].cpu())
        if device.type == "cuda" and st["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(st["rng"]["cuda"].cpu(), device)
        mask_gen.set_state(st["rng"]["mask"].cpu())
        batch_gen.set_state(st["rng"]["batch"].cpu())
        mask = st["train_mask"].cpu()
        hist_rows, etas = [st["history"].cpu()], list(st["etas"])
        epoch_rows, best, start = list(st["epochs"]), dict(st["best"]), int(st["epoch"])
        diag_rows = list(st.get("diagnostics", [torch.full(  # older checkpoints: none recorded
            ((num_mod + 1) * 2 ** num_mod + num_mod,), math.nan)] * len(epoch_rows)))
    mask_dev = mask.to(device)
    static = None  # the static-shape step, captured as a CUDA graph with train.cuda_graph
    if static_step:
        static = StaticStep(model, step_model, optimizer, adv, config, train, mask_dev.clone(),
                            lambda: _clip(*clip_groups, tc.clip_norm) if tc.clip_norm > 0 else None,
                            capture=tc.cuda_graph and device.type == "cuda")
    epochs = range(start, config.epochs)
    if tc.progress:
        from tqdm.auto import tqdm
        epochs = tqdm(epochs, total=config.epochs, initial=start, desc="epochs")
    for epoch in epochs:
        optimizer.lr = tc.lr * lr_factor(epoch, tc.epochs_constant, tc.epochs_decay)
        if config.mask.redraw_each_epoch and epoch > 0 and kind.endswith("simulated"):
            mask = training_mask(config.mask, train, mask_gen)
            mask_dev = mask.to(device)
            if static is not None:
                static.set_mask(mask_dev)
        rows = torch.arange(len(train))
        if tc.complete_only:
            rows = rows[mask.all(1)]
            if len(rows) == 0:
                raise ValueError(f"train.complete_only: no training sample has every modality "
                                 f"(training mask: {kind}, mask.rates={list(config.mask.rates)}); "
                                 "allowed: rates or data that leave complete samples")
        order = rows[torch.randperm(len(rows), generator=batch_gen)]
        plan = _epoch_plan(order, mask, tc.batch_size, device)
        num_steps = len(plan)
        buf = torch.empty(num_steps, 2 + 7 * num_mod, device=device)
        strata, gsum = strata_buffer(num_mod, device), torch.zeros(num_mod, device=device)
        model.train()
        for s, (idx, present) in enumerate(plan):
            if static is not None:
                buf[s] = static(idx)
                etas.append(adv.eta)
                for hook in step_hooks:  # device tensors: no host sync unless a hook reads them
                    hook(StepEnd(epoch, len(etas) - 1, buf[s], columns))
                continue
            xs, lens = train.inputs(idx)
            avail = mask_dev.index_select(0, idx)
            beta_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = adv.step
            if D.world() > 1:  # every rank's Rec and n_m (mode "matched": of the complete rows)
                rows = complete_rows(avail) if config.advantage.mode == "matched" else avail
                beta_fn = _global_beta(adv, rows)
            terms = train_step(step_model, optimizer, adv, config, xs, lens, avail,
                               train.labels.index_select(0, idx), clip_groups, present, beta_fn)
            etas.append(adv.eta)
            buf[s] = terms.history_row(adv.beta, adv.ra, adv.lbar)
            assert terms.rows is not None and terms.grad_norm is not None  # train_step fills both
            accumulate_strata(strata, terms.rows, avail)
            gsum += terms.grad_norm
            for hook in step_hooks:
                hook(StepEnd(epoch, len(etas) - 1, buf[s], columns))
        host = buf.cpu()  # the one host copy of this epoch's history
        diag = torch.cat([strata.flatten(), gsum / max(num_steps, 1)]).cpu()  # and of its diagnostics
        if static is not None:  # the static step records no diagnostics
            diag.fill_(math.nan)
        diag_rows.append(diag)
        if not bool(torch.isfinite(host[:, 0]).all()):
            bad = int((~torch.isfinite(host[:, 0])).nonzero()[0])
            raise FloatingPointError(f"training diverged: the loss is not finite at epoch {epoch}, "
                                     f"step {bad}; lower train.lr or check the features")
        hist_rows.append(host)
        lr = optimizer.lr
        val = _overall(model, splits.val, tc.eval_batch_size)
        spread = latent_spread(model, splits.val, tc.eval_batch_size).tolist()
        row = {"epoch": epoch, "steps": num_steps, "lr": lr, "loss": float(host[:, 0].mean()),
               **{f"val_{k}": val[k] for k in ("wa", "ua", "f1")},
               **{f"spread_{m}": v for m, v in zip(mods, spread[0])},
               **{f"post_sd_{m}": v for m, v in zip(mods, spread[1])},
               **{f"grad_{m}": float(v) for m, v in zip(mods, diag[-num_mod:])}}
        epoch_rows.append(row)
        if row["val_f1"] > best["f1"]:
            best = {"epoch": epoch, "f1": row["val_f1"],
                    "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        if checkpoint is not None and D.is_main():
            save_checkpoint(checkpoint, {
                "config": config_to_dict(config), "modalities": list(mods),
                "dims": list(train.dims), "num_classes": splits.num_classes, "epoch": epoch + 1,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "advantage": adv.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "mask": mask_gen.get_state(),
                        "batch": batch_gen.get_state(),
                        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
                "train_mask": mask, "history": torch.cat(hist_rows), "etas": etas,
                "epochs": epoch_rows, "best": best, "diagnostics": diag_rows, "torch_version": str(torch.__version__),
                "data": described, "mask_kind": kind})
        for cb in callbacks:
            cb(EpochEnd(epoch, row, adv.beta.cpu().numpy()))
    result = _result(config, splits, model, mods, hist_rows, etas, epoch_rows, best, mask, adv)
    result.warnings[:0] = setup
    result.observed_mask = observed
    done = [(int(r["epoch"]), d) for r, d in zip(epoch_rows, diag_rows) if bool(torch.isfinite(d).all())]
    result.extra["rec_strata"] = strata_frame(  # Rec by peer stratum (redcore_lite.diagnostics)
        torch.stack([d[:-num_mod].view(num_mod + 1, -1) for _, d in done])
        if done else torch.zeros(0, num_mod + 1, 2 ** num_mod), mods, [e for e, _ in done])
    result.extra.update({"data": described, "mask": {"kind": kind,
                                                      "mechanism": config.mask.mechanism}})
    return result


def _data_key(described: dict[str, Any]) -> dict[str, Any]:
    """What must match for a resume: modalities, dims, samples and observed rates per split."""
    return {k: described.get(k) for k in ("modalities", "dims", "samples", "observed_missing")}


def _result(config: Config, splits: Splits, model: RedCore, mods: Sequence[str],
            hist_rows: list[torch.Tensor], etas: list[float], epoch_rows: list[dict[str, Any]],
            best: dict[str, Any], mask: torch.Tensor, adv: RelativeAdvantage) -> Result:
    history = pd.DataFrame(torch.cat(hist_rows).numpy(), columns=_history_columns(mods))
    for m in mods:
        history[f"observed_{m}"] = history[f"observed_{m}"].astype(bool)
    epochs = pd.DataFrame(epoch_rows)
    history.insert(0, "epoch", np.repeat(epochs["epoch"].to_numpy(), epochs["steps"].to_numpy()))
    history.insert(0, "step", np.arange(len(history)))
    history["eta"] = etas
    history["lr"] = epochs.set_index("epoch").loc[history["epoch"], "lr"].to_numpy()
    model.load_state_dict(best["state"])
    model.eval()
    tc = config.train
    # the selected epoch, else the last: an early epoch can win the selection of a run whose
    # latents collapse afterwards (seen: a torch-initialised paper run selected at epoch 0)
    message = collapse_warning(epoch_rows[int(best["epoch"])], mods) or collapse_warning(
        epoch_rows[-1], mods)
    found = [message] if message else []
    for message in found:
        warnings.warn(message, LatentCollapseWarning, stacklevel=3)
    complete = {part: evaluate(model, getattr(splits, part), tc.eval_batch_size, "patterns")
                if tc.eval_complete and not getattr(splits, part).complete else None
                for part in ("val", "test")}
    return Result(config, tuple(mods), history, epochs,
                  evaluate(model, splits.val, tc.eval_batch_size),
                  evaluate(model, splits.test, tc.eval_batch_size),
                  int(best["epoch"]), model, mask.cpu(), {"advantage": adv.state_dict()}, found,
                  val_complete=complete["val"], test_complete=complete["test"])

