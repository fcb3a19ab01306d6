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
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch

from ._checks import check_choice, check_positive
from ._files import exclusive, lock_path
from . import distributed as D
from .batching import epoch_plan
from .callbacks import Callback, StepEnd, split_callbacks
from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, check_config, config_to_dict, override
from .data import Splits, load_data
from .diagnostics import accumulate_strata, strata_buffer, strata_frame
from .evaluation import (COLLAPSE_RATIO, EVAL_PROTOCOLS, LatentCollapseWarning, collapse_warning,
                         evaluate, latent_spread, overall_scores, predict_logits, predict_observed)
from .advantage import ADAPTIVE
from .masking import MECHANISMS, check_mechanism, simulating, training_mask
from .model import backbone_of, check_backbones
from .registry import get_encoder, is_plugin
from .result import EpochEnd, Result, history_columns
from .state import TrainState, check_resumable, data_identity, mask_kind
from .step import (EagerStep, StaticStep, Step, clip_groups, gradient_clipper, make_optimizer,
                   train_step)

__all__ = ["Result", "EpochEnd", "fit", "evaluate", "predict_logits", "predict_observed",
           "EVAL_PROTOCOLS", "mask_kind", "resolve_device", "lr_factor",
           "train_step", "make_optimizer", "latent_spread", "collapse_warning", "COLLAPSE_RATIO",
           "LatentCollapseWarning", "SetupWarning"]


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


class SetupWarning(RuntimeWarning):
    """Issued by :func:`fit` for a set-up that trains but is degenerate or was adapted (a
    modality no training sample has, a class no split has, converted dtypes); also in
    ``Result.warnings``."""


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


def _data_config(config: Config, splits: Splits) -> Config:
    """``config`` with ``data`` describing your own data (``name="custom"``, its path) when the
    splits came from :mod:`redcore_lite.custom_io` / :func:`~redcore_lite.custom.from_arrays`
    but the config names other data (``fit(config, data=...)``); else ``config``."""
    source = splits.train.source
    if source.get("name") != "custom" or config.data.name == "custom" or is_plugin(config.data.name):
        return config  # (a registered dataset's loader may build its splits with from_arrays)
    return override(config, data={"name": "custom", "path": str(source.get("path", ""))})


def fit(config: Config, data: Splits | None = None, *, checkpoint: str | os.PathLike | None = None,
        resume: bool = False, callbacks: Sequence[Callback | Callable[[EpochEnd], None]] = (),
        force: bool = False) -> Result:
    """Train RedCore, select the epoch with the best validation macro-F1, test it.

    Args:
        config: the experiment; data: train/val/test splits (default: ``load_data(config.data)``).
        checkpoint: a file rewritten atomically after every epoch (model, optimizer,
            beta state, RNG states, history, best weights, and the sha256 of all that); locked
            (``.NAME.lock`` next to it) while this fit runs: a second fit on it stops at once.
        resume: continue from ``checkpoint`` if it exists (bit-identical to an uninterrupted run).
            The checkpoint records what it was trained on (config; data: modalities, dims,
            classes, sha256, labels, split and feature statistics,
            :func:`~redcore_lite.state.data_identity`): a resume on anything else is a
            ValueError naming the field that differs.
        force: with ``resume``, continue although the data's values differ (its sha256, labels
            or feature values; never its modalities, dims, classes or split); the fields forced
            are recorded in ``Result.extra["resume"]`` and in the checkpoint.
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
    identity = data_identity(splits) if checkpoint is not None else None
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
                          described, setup, step_hooks, identity, force)
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


def _schedule_warnings(config: Config, num_train: int) -> list[str]:
    """A message when the beta update runs at most once: ``advantage.interval`` at or above the
    run's number of training steps (beta moves at step 0 only, then stays: RA nearly inert)."""
    if config.advantage.mode not in ADAPTIVE:
        return []
    steps = config.epochs * max(1, math.ceil(num_train / max(1, config.train.batch_size)))
    if config.advantage.interval < steps:
        return []
    return [f"advantage.interval: {config.advantage.interval} >= the run's {steps} training "
            "steps: beta moves once (at step 0) and then stays, so the relative advantage is "
            "nearly inert (lower advantage.interval, or use advantage.mode='fixed' for that "
            "ablation)"]


def _fit(config: Config, splits: Splits, device: torch.device, checkpoint: Any, resume: bool,
         callbacks: Sequence[Callable[[EpochEnd], None]],
         described: dict[str, Any] | None = None, setup: Sequence[str] = (),
         step_hooks: Sequence[Callable[[StepEnd], None]] = (),
         identity: dict[str, Any] | None = None, force: bool = False) -> Result:
    tc, mods = config.train, splits.modalities
    num_mod, train = len(mods), splits.train
    columns = tuple(history_columns(mods))  # the names of a step's history row
    described = described if described is not None else splits.describe()
    observed = None if train.mask is None else train.mask.cpu()
    kind = mask_kind(config, observed)
    state = TrainState.build(config, train, splits.num_classes, device, kind)
    setup = list(setup) + [_unobserved_warning(config, mods[m], kind)
                           for m in torch.nonzero(~state.mask.any(0)).flatten().tolist()]
    setup += _schedule_warnings(config, len(train))
    for message in setup:
        warnings.warn(message, SetupWarning, stacklevel=3)
    resumes: list[dict[str, Any]] = []  # earlier resumes of this checkpoint, and their forced fields
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        st = load_checkpoint(checkpoint, map_location=device)
        forced = check_resumable(st, config, described, checkpoint, identity, force)
        state.load_state_dict(st)
        resumes = list(st.get("resumes", []))
        record: dict[str, Any] = {"epoch": state.epoch, "forced": forced}
        if forced:  # what it was trained on before, where it differs
            old = st.get("identity") or {}
            record["trained_on"] = {k: old.get(k) for k in forced if k in old}
            record["data_before"] = st.get("data")
        resumes.append(record)
    model, adv, optimizer = state.model, state.adv, state.optimizer
    step = _make_step(config, state, train, device)
    epochs = range(state.epoch, config.epochs)
    if tc.progress:
        from tqdm.auto import tqdm
        epochs = tqdm(epochs, total=config.epochs, initial=state.epoch, desc="epochs")
    for epoch in epochs:
        optimizer.lr = tc.lr * lr_factor(epoch, tc.epochs_constant, tc.epochs_decay)
        if config.mask.redraw_each_epoch and epoch > 0 and kind.endswith("simulated"):
            state.mask = training_mask(config.mask, train, state.mask_gen)
            step.set_mask(state.mask.to(device))
        rows = torch.arange(len(train))
        if tc.complete_only:
            rows = rows[state.mask.all(1)]
            if len(rows) == 0:
                raise ValueError(f"train.complete_only: no training sample has every modality "
                                 f"(training mask: {kind}, mask.rates={list(config.mask.rates)}); "
                                 "allowed: rates or data that leave complete samples")
        order = rows[torch.randperm(len(rows), generator=state.batch_gen)]
        plan = epoch_plan(order, state.mask, tc.batch_size, device)
        num_steps = len(plan)
        buf = torch.empty(num_steps, len(columns), device=device)
        strata, gsum = strata_buffer(num_mod, device), torch.zeros(num_mod, device=device)
        recorded = False  # whether the step gave per-row diagnostics (the static step does not)
        model.train()
        for s, (idx, present) in enumerate(plan):
            out = step(idx, present)
            buf[s] = out.row
            state.etas.append(adv.eta)
            if out.terms is not None and out.avail is not None:
                assert out.terms.rows is not None and out.terms.grad_norm is not None
                accumulate_strata(strata, out.terms.rows, out.avail)
                gsum += out.terms.grad_norm
                recorded = True
            for hook in step_hooks:  # device tensors: no host sync unless a hook reads them
                hook(StepEnd(epoch, len(state.etas) - 1, buf[s], columns))
        host = buf.cpu()  # the one host copy of this epoch's history
        diag = torch.cat([strata.flatten(), gsum / max(num_steps, 1)]).cpu()  # and of its diagnostics
        if not recorded:
            diag.fill_(math.nan)
        if not bool(torch.isfinite(host[:, 0]).all()):
            bad = int((~torch.isfinite(host[:, 0])).nonzero()[0])
            raise FloatingPointError(f"training diverged: the loss is not finite at epoch {epoch}, "
                                     f"step {bad}; lower train.lr or check the features")
        val = overall_scores(model, splits.val, tc.eval_batch_size)
        spread = latent_spread(model, splits.val, tc.eval_batch_size).tolist()
        row = {"epoch": epoch, "steps": num_steps, "lr": optimizer.lr, "loss": float(host[:, 0].mean()),
               **{f"val_{k}": val[k] for k in ("wa", "ua", "f1")},
               **{f"spread_{m}": v for m, v in zip(mods, spread[0])},
               **{f"post_sd_{m}": v for m, v in zip(mods, spread[1])},
               **{f"grad_{m}": float(v) for m, v in zip(mods, diag[-num_mod:])}}
        state.end_epoch(host, diag, row)
        if checkpoint is not None and D.is_main():
            save_checkpoint(checkpoint, {
                "config": config_to_dict(config), "modalities": list(mods),
                "dims": list(train.dims), "num_classes": splits.num_classes, **state.state_dict(),
                "torch_version": str(torch.__version__), "data": described, "mask_kind": kind,
                **({"identity": identity} if identity is not None else {}),
                **({"resumes": resumes} if resumes else {})})
        for cb in callbacks:
            cb(EpochEnd(epoch, row, adv.beta.cpu().numpy()))
    result = _result(config, splits, state)
    result.warnings[:0] = setup
    result.observed_mask = observed
    done = [(int(r["epoch"]), d) for r, d in zip(state.epochs, state.diagnostics)
            if bool(torch.isfinite(d).all())]
    result.extra["rec_strata"] = strata_frame(  # Rec by peer stratum (redcore_lite.diagnostics)
        torch.stack([d[:-num_mod].view(num_mod + 1, -1) for _, d in done])
        if done else torch.zeros(0, num_mod + 1, 2 ** num_mod), mods, [e for e, _ in done])
    if resumes:
        result.extra["resume"] = {"resumes": resumes,
                                  "forced": sorted({k for r in resumes for k in r["forced"]})}
    result.extra.update({"data": described, "mask": {"kind": kind,
                                                      "mechanism": config.mask.mechanism}})
    return result


def _make_step(config: Config, state: TrainState, train: Any, device: torch.device) -> Step:
    """The run's step: the eager (reference) step, or with ``train.cuda_graph`` / ``train.compile``
    the static-shape step (captured as a CUDA graph with ``cuda_graph`` on a GPU). Under torchrun
    the forward pass runs through DistributedDataParallel."""
    tc, model = config.train, state.model
    net: torch.nn.Module = model
    if D.world() > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    mask = state.mask.to(device)
    if not (tc.cuda_graph or tc.compile):
        return EagerStep(model, net, state.optimizer, state.adv, config, train, mask)
    # A CUDA graph's step and a compiled step have static shapes (every row encoded): compiled
    # for them, and once more for an epoch's short last batch. (Dynamic shapes recompiled for
    # every new present-row count, and on torch 2.11 + an H200 inductor failed on the dynamic
    # `paper` step.)
    # torch.compile of a Module returns an OptimizedModule (a Module); its stub says Callable
    step_model = cast(torch.nn.Module, torch.compile(net, dynamic=False)) if tc.compile else net
    clip = gradient_clipper(clip_groups(model), tc.clip_norm)
    return StaticStep(model, step_model, state.optimizer, state.adv, config, train, mask.clone(), clip,
                      capture=tc.cuda_graph and device.type == "cuda")


def _result(config: Config, splits: Splits, state: TrainState) -> Result:
    mods = splits.modalities
    model, epoch_rows, best = state.model, state.epochs, state.best
    history = pd.DataFrame(torch.cat(state.history).numpy(), columns=history_columns(mods))
    for m in mods:
        history[f"observed_{m}"] = history[f"observed_{m}"].astype(bool)
    epochs = pd.DataFrame(epoch_rows)
    history.insert(0, "epoch", np.repeat(epochs["epoch"].to_numpy(), epochs["steps"].to_numpy()))
    history.insert(0, "step", np.arange(len(history)))
    history["eta"] = state.etas
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
                  int(best["epoch"]), model, state.mask.cpu(), {"advantage": state.adv.state_dict()},
                  found, val_complete=complete["val"], test_complete=complete["test"])
