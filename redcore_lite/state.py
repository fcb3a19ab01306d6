"""Everything a fit carries from epoch to epoch, saved and restored as one piece.

:class:`TrainState` holds the model, the optimizer, the relative-advantage (beta) state, the two
seeded generators (training masks, batch order) and the global RNG states, this epoch's training
mask, the history so far and the best epoch's weights. :meth:`TrainState.state_dict` is what a
checkpoint stores (beside the run's description, :func:`redcore_lite.trainer.fit` adds config,
data and versions) and :meth:`TrainState.load_state_dict` restores it, so that a resumed fit
continues bit-identically.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .advantage import RelativeAdvantage
from .config import Config, config_from_dict, config_to_dict
from .data import MultimodalData
from .masking import simulating, training_mask
from .model import RedCore, build_model
from .optim import Adam
from .step import make_optimizer

__all__ = ["TrainState", "mask_kind", "check_resumable"]


def mask_kind(config: Config, observed: torch.Tensor | None) -> str:
    """Which training mask a run uses: ``"simulated"`` (data without holes, a simulated mask:
    the default), ``"observed"`` (the data's own holes only), ``"observed+simulated"`` or
    ``"complete"`` (no holes, nothing simulated)."""
    holes = observed is not None and not bool(observed.all())
    sim = simulating(config.mask, observed)
    return {(False, True): "simulated", (True, False): "observed", (True, True): "observed+simulated",
            (False, False): "complete"}[(holes, sim)]


@dataclass
class TrainState:
    """A fit's state between epochs (tensors of the model, optimizer and beta on the training
    device; the mask, history and diagnostics on the host)."""

    model: RedCore
    optimizer: Adam
    adv: RelativeAdvantage
    mask_gen: torch.Generator  # draws the simulated training masks (seed + 1)
    batch_gen: torch.Generator  # draws each epoch's sample order (seed + 2)
    mask: torch.Tensor  # [N_train, M] bool: this epoch's training mask
    epoch: int = 0  # the next epoch to run
    history: list[torch.Tensor] = field(default_factory=list)  # per epoch [steps, 2 + 7 M]
    etas: list[float] = field(default_factory=list)  # eta after each step
    epochs: list[dict[str, Any]] = field(default_factory=list)  # per epoch: lr, loss, val scores
    diagnostics: list[torch.Tensor] = field(default_factory=list)  # per epoch: Rec strata, grad norms
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": -1, "f1": -math.inf, "state": None})

    @classmethod
    def build(cls, config: Config, train: MultimodalData, num_classes: int, device: torch.device,
              kind: str) -> TrainState:
        """A fresh state: the seeded model on ``device``, Adam, the generators, the first
        training mask (``kind``: :func:`mask_kind`, for the error message) and the beta state.

        Raises:
            ValueError: the training mask leaves no modality in any training sample.
        """
        tc = config.train
        model = build_model(config.model, train.dims, num_classes, seed=tc.seed).to(device)
        optimizer = make_optimizer(model, config)
        mask_gen = torch.Generator().manual_seed(tc.seed + 1)
        batch_gen = torch.Generator().manual_seed(tc.seed + 2)
        mask = training_mask(config.mask, train, mask_gen)
        seen = mask.any(0)  # modalities some training sample has (the counts are the same each epoch)
        if not bool(seen.any()):
            raise ValueError(f"mask: the training mask leaves no modality in any training sample "
                             f"(training mask: {kind}, mask.rates={list(config.mask.rates)}, "
                             f"mask.mechanism={config.mask.mechanism!r}); allowed: rates or a "
                             "mechanism that leave some modality observed (a rate of 1 removes a "
                             "modality from every sample)")
        # "inverse" weights: the requested rates of a simulated mask, else the realised rates of
        # the training mask (observed holes included)
        rates = (config.mask.rates if kind == "simulated" and config.mask.mechanism == "mcar"
                 else tuple((~mask).float().mean(0).tolist()))
        adv = RelativeAdvantage(config.advantage, len(train.modalities), device, rates,
                                None if bool(seen.all()) else seen.tolist())
        return cls(model, optimizer, adv, mask_gen, batch_gen, mask)

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's state entries (tensors, numbers, lists and dicts only: loadable with
        ``weights_only=True``), in the checkpoint's order."""
        device = self.adv.beta.device
        return {"epoch": self.epoch, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "advantage": self.adv.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "mask": self.mask_gen.get_state(),
                        "batch": self.batch_gen.get_state(),
                        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
                "train_mask": self.mask, "history": torch.cat(self.history), "etas": self.etas,
                "epochs": self.epochs, "best": self.best, "diagnostics": self.diagnostics}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (also the global torch and CUDA RNG states).
        Checkpoints written before the diagnostics were recorded get NaN diagnostics."""
        device = self.adv.beta.device
        self.model.load_state_dict(st["model"])
        self.optimizer.load_state_dict(st["optimizer"])
        self.adv.load_state_dict(st["advantage"])
        torch.set_rng_state(st["rng"]["torch"].cpu())
        if device.type == "cuda" and st["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(st["rng"]["cuda"].cpu(), device)
        self.mask_gen.set_state(st["rng"]["mask"].cpu())
        self.batch_gen.set_state(st["rng"]["batch"].cpu())
        self.mask = st["train_mask"].cpu()
        self.history, self.etas = [st["history"].cpu()], list(st["etas"])
        self.epochs, self.best, self.epoch = list(st["epochs"]), dict(st["best"]), int(st["epoch"])
        num_mod = self.mask.shape[1]
        self.diagnostics = list(st.get("diagnostics", [torch.full(  # older checkpoints: none recorded
            ((num_mod + 1) * 2 ** num_mod + num_mod,), math.nan)] * len(self.epochs)))

    def end_epoch(self, history: torch.Tensor, diagnostics: torch.Tensor, row: dict[str, Any]) -> None:
        """Record a finished epoch (its host history and diagnostics, its ``Result.epochs`` row);
        keep a copy of the weights when its validation F1 is the best so far."""
        self.history.append(history)
        self.diagnostics.append(diagnostics)
        self.epochs.append(row)
        if row["val_f1"] > self.best["f1"]:
            self.best = {"epoch": row["epoch"], "f1": row["val_f1"],
                         "state": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}
        self.epoch = row["epoch"] + 1


def _comparable(config_dict: dict[str, Any]) -> dict[str, Any]:
    """Config fields that must match for a resume (device and progress bar may change)."""
    d = {k: dict(v) for k, v in config_dict.items()}
    for key in ("device", "progress"):
        d["train"].pop(key, None)
    return d


def data_key(described: dict[str, Any]) -> dict[str, Any]:
    """What must match for a resume: modalities, dims, samples and observed rates per split."""
    return {k: described.get(k) for k in ("modalities", "dims", "samples", "observed_missing")}


def check_resumable(st: dict[str, Any], config: Config, described: dict[str, Any],
                    checkpoint: Any) -> None:
    """Raise ``ValueError`` unless the checkpoint ``st`` was written by this config (device and
    progress may differ) for this data (:func:`data_key` of ``Splits.describe()``)."""
    saved = config_to_dict(config_from_dict(st["config"]))  # fields added since: their defaults
    if _comparable(saved) != _comparable(config_to_dict(config)):
        raise ValueError(f"checkpoint: {str(checkpoint)!r} was written by a different config; "
                         "allowed: the same config (device and progress may differ)")
    if "data" in st and data_key(st["data"]) != data_key(described):
        raise ValueError(f"checkpoint: {str(checkpoint)!r} was written for other data "
                         f"({data_key(st['data'])}); allowed: the same data "
                         f"(got {data_key(described)})")
