"""Callbacks of :func:`redcore_lite.fit`: per step, per epoch, at the end; a TensorBoard logger.

``fit(config, callbacks=[...])`` takes plain functions (called with an
:class:`~redcore_lite.result.EpochEnd` after every epoch, as before) and :class:`Callback`
objects, whose hooks are called

- ``on_step(StepEnd)`` after every training step, with the step's history row **on the device**
  (loss terms, beta, RA, EMA of the losses): nothing is read back to the host, so a callback that
  only keeps the tensor costs no synchronisation; reading it (``.item()``, ``.cpu()``) is the
  callback's choice and cost;
- ``on_epoch(EpochEnd)`` after every epoch (after the checkpoint is written);
- ``on_fit_end(Result)`` once, with the tested result.

Callbacks read; they never change the run: a fit with callbacks is bit-identical to one without
(``tests/test_callbacks.py``).

:class:`TensorBoardLogger` (``pip install 'redcore_lite[tensorboard]'``) writes every step's
losses, beta, RA and EMA (``lbar``), every epoch's validation metrics and latent spreads, and the
per-pattern validation and test metrics of the selected epoch. It keeps an epoch's step rows on
the device and copies them to the host once per epoch, where the trainer copies its history too.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .result import EpochEnd, Result

__all__ = ["StepEnd", "Callback", "TensorBoardLogger", "split_callbacks"]


@dataclass
class StepEnd:
    """What ``Callback.on_step`` receives after each training step."""

    epoch: int  # 0-based epoch
    step: int  # 0-based global step (counts the steps of a resumed run's earlier epochs)
    values: torch.Tensor  # [len(columns)] the step's history row, on the training device
    columns: Sequence[str]  # names of ``values``: loss, ce_fused, ce_m, kl_m, rec_m, observed_m, beta_m, ra_m, lbar_m

    def as_dict(self) -> dict[str, float]:
        """``{column: value}`` on the host (one device-to-host copy)."""
        return dict(zip(self.columns, self.values.detach().cpu().tolist()))


class Callback:
    """Base class: override any of the hooks (the defaults do nothing)."""

    def on_step(self, step: StepEnd) -> None:
        """After every training step."""

    def on_epoch(self, end: EpochEnd) -> None:
        """After every epoch."""

    def on_fit_end(self, result: Result) -> None:
        """Once, after the selected epoch is tested."""


def split_callbacks(callbacks: Sequence[Callback | Callable[[EpochEnd], None]]
                    ) -> tuple[list[Callable[[StepEnd], None]], list[Callable[[EpochEnd], None]],
                               list[Callable[[Result], None]]]:
    """The step, epoch and end hooks of ``callbacks``; a plain function is an epoch hook.

    A :class:`Callback` that does not override ``on_step`` adds no step hook, so the training loop
    calls nothing per step unless a callback asks to.
    """
    steps: list[Callable[[StepEnd], None]] = []
    epochs: list[Callable[[EpochEnd], None]] = []
    ends: list[Callable[[Result], None]] = []
    for i, cb in enumerate(callbacks):
        if isinstance(cb, Callback):
            if type(cb).on_step is not Callback.on_step:
                steps.append(cb.on_step)
            if type(cb).on_epoch is not Callback.on_epoch:
                epochs.append(cb.on_epoch)
            if type(cb).on_fit_end is not Callback.on_fit_end:
                ends.append(cb.on_fit_end)
        elif callable(cb):
            epochs.append(cb)
        else:
            raise ValueError(f"callbacks[{i}]: got a {type(cb).__name__}; allowed: a "
                             "redcore_lite.callbacks.Callback or a function of an EpochEnd")
    return steps, epochs, ends


class TensorBoardLogger(Callback):
    """Log a fit to TensorBoard (``tensorboard --logdir LOG_DIR``).

    Tags: ``step/<column>`` per training step (``loss``, ``ce_fused``, ``ce_A``, ``kl_A``,
    ``rec_A``, ``beta_A``, ``ra_A``, ``lbar_A`` (the EMA of the losses), ...); ``epoch/<key>`` per
    epoch (``loss``, ``lr``, ``val_wa``, ``val_ua``, ``val_f1``, ``spread_A``, ``post_sd_A``, ...);
    ``val/<metric>/<pattern>`` and ``test/<metric>/<pattern>`` (``wa``, ``ua``, ``f1``) at the
    end, at the selected epoch.

    Args:
        log_dir: the folder of the event file (created).
        every: log every ``every``-th step (1: all).
    """

    def __init__(self, log_dir: str | os.PathLike, every: int = 1) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # torch.utils.tensorboard needs the tensorboard package
            raise ImportError("TensorBoardLogger needs tensorboard: pip install "
                              "'redcore_lite[tensorboard]'") from err
        if not (isinstance(every, int) and every >= 1):
            raise ValueError(f"every: got {every!r}; allowed: an integer >= 1")
        self.log_dir, self.every = os.fspath(log_dir), every
        self.writer: Any = SummaryWriter(log_dir=self.log_dir)
        self._rows: list[torch.Tensor] = []
        self._steps: list[int] = []
        self._columns: Sequence[str] = ()
        self._last_step = 0

    def on_step(self, step: StepEnd) -> None:
        self._last_step = step.step
        if step.step % self.every == 0:
            self._rows.append(step.values)  # stays on the device until the epoch ends
            self._steps.append(step.step)
            self._columns = step.columns

    def on_epoch(self, end: EpochEnd) -> None:
        if self._rows:
            host = torch.stack(self._rows).detach().float().cpu().numpy()  # one copy per epoch
            for s, row in zip(self._steps, host):
                for name, v in zip(self._columns, row):
                    if not name.startswith("observed_"):
                        self.writer.add_scalar(f"step/{name}", float(v), s)
            self._rows, self._steps = [], []
        for key, v in end.metrics.items():
            if key not in ("epoch", "steps") and isinstance(v, (int, float)):
                self.writer.add_scalar(f"epoch/{key}", float(v), end.epoch)
        self.writer.flush()

    def on_fit_end(self, result: Result) -> None:
        for part in ("val", "test"):
            table = getattr(result, part)
            for _, r in table.iterrows():
                for metric in ("wa", "ua", "f1"):
                    if metric in table:
                        self.writer.add_scalar(f"{part}/{metric}/{r['pattern']}", float(r[metric]),
                                               result.best_epoch)
        self.writer.flush()
        self.writer.close()
