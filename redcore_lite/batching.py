"""Batches as the training step needs them: where each modality is present, and every step's
sample indices of an epoch, built on the host once per epoch and copied to the device in one
transfer (so that a step never waits for the device).

Under torchrun each rank keeps its shard of every global batch (:func:`epoch_plan`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import distributed as D

__all__ = ["PresentRows", "to_device", "epoch_plan"]


@dataclass(frozen=True)
class PresentRows:
    """Where each modality is present in a batch, as the encoders need it.

    ``rows[m]``: ``[n_m]`` indices of the batch rows where modality m is present. ``pos``:
    ``[M * B]``; entry ``m * B + i`` is the row that holds (modality m, sample i) in the
    concatenation, over m, of [the encoding of a zero input, the encodings of the n_m present rows].
    The trainer builds these on the host once per epoch (:meth:`build` on CPU tensors), so a step
    never waits for the device.
    """

    rows: tuple[torch.Tensor, ...]
    pos: torch.Tensor

    @staticmethod
    def build(avail: torch.Tensor) -> PresentRows:
        """From ``avail: [B, M]`` (bool or 0/1), computed on the host (a CUDA ``avail`` syncs)."""
        a = avail.detach().bool().cpu().numpy()
        counts = 1 + a.sum(0)  # [M]: a zero row plus the present rows
        rank = np.cumsum(a, 0) * a  # [B, M]: 1 + rank among the present rows, or 0 (the zero row)
        pos = (rank + (np.cumsum(counts) - counts)).T.reshape(-1)
        rows = [np.flatnonzero(a[:, m]) for m in range(a.shape[1])]
        return PresentRows(tuple(_long(r, avail.device) for r in rows), _long(pos, avail.device))


def _long(values: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(values.astype(np.int64)).to(device)


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host-to-device copy that does not block the host (pinned memory on CUDA)."""
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def epoch_plan(order: torch.Tensor, mask: torch.Tensor, batch_size: int, device: torch.device
               ) -> list[tuple[torch.Tensor, PresentRows]]:
    """Every step's sample indices and :class:`PresentRows`, built on the host once per epoch
    and copied to the device in one transfer, so the steps themselves never sync.

    Args:
        order: ``[N]`` the epoch's sample order (host); mask: ``[N_train, M]`` bool training mask
            (host); batch_size: the global batch size; device: where the step runs.

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
    flat = to_device(torch.cat(pieces), device) if pieces else torch.empty(0, dtype=torch.long)
    plan, pos = [], 0
    for sizes in spans:
        views = []
        for n in sizes:
            views.append(flat[pos:pos + n])
            pos += n
        plan.append((views[0], PresentRows(tuple(views[2:]), views[1])))
    return plan
