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
from collections.abc import Sequence
from typing import Any

import torch

from .advantage import RelativeAdvantage
from .config import Config, config_from_dict, config_to_dict
from .data import MultimodalData, Splits
from .masking import simulating, training_mask
from .model import RedCore, build_model
from .optim import Adam
from .step import make_optimizer

__all__ = ["TrainState", "mask_kind", "check_resumable", "data_identity", "identity_differences",
           "FORCIBLE", "check_evaluable"]


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


PARTS = ("train", "val", "test")
# what a resume may continue with --force (resume_force=True): the data's values changed but not
# its shape, classes or split (a re-exported file, corrected labels or values). Never forcible:
# modalities, dims, classes (the model's inputs and outputs would mean something else) and split
# (samples would move between train, val and test: val/test rows the model was trained on)
FORCIBLE = ("sha256", "labels", "features")
_NAMES = {"modalities": "modalities", "dims": "feature dims", "classes": "classes",
          "split": "split (samples per split and their ids and observed masks)",
          "sha256": "data sha256", "labels": "labels", "features": "feature values"}


def _digest(*tensors: Any) -> str:
    """sha256 of integer / bool tensors and strings (machine-independent: no float arithmetic)."""
    import hashlib

    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"N;")
        elif isinstance(t, (list, tuple)):
            h.update(f"L{len(t)};".encode())
            for v in t:
                data = str(v).encode("utf-8", "surrogatepass")
                h.update(f"S{len(data)};".encode() + data)
        else:
            t = t.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)};".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy() if t.dtype != torch.bool
                         else t.reshape(-1).to(torch.uint8).numpy())
    return h.hexdigest()


def _stats(x: torch.Tensor, present: torch.Tensor) -> list[float]:
    """Mean, standard deviation and mean absolute value of a modality's present rows (float64:
    equal up to rounding on every machine, so compared with a tolerance, never bit for bit)."""
    rows = x[present.to(x.device)].double()
    if rows.numel() == 0:
        return [0.0, 0.0, 0.0]
    return [float(rows.mean()), float(rows.std(unbiased=False)), float(rows.abs().mean())]


def data_identity(splits: Splits) -> dict[str, Any]:
    """What a run was trained on, for its checkpoint: modalities, dims, classes, the data's
    sha256 (a file's, or the arrays' content digest recorded by ``from_arrays``; None for data
    with no recorded digest), and per split a digest of its labels, a digest of its samples (ids
    when the data has them, sample count and observed mask) and summary statistics of each
    modality's values (compared with a tolerance: float reductions differ by a few ulps between
    machines)."""
    out: dict[str, Any] = {"modalities": list(splits.modalities), "dims": list(splits.train.dims),
                           "classes": (None if splits.train.classes is None
                                       else list(splits.train.classes)),
                           "num_classes": splits.num_classes,
                           "sha256": (splits.train.source or {}).get("sha256"),
                           "labels": {}, "split": {}, "features": {}}
    for part in PARTS:
        data = getattr(splits, part)
        out["labels"][part] = _digest(data.labels.long())
        out["split"][part] = _digest(torch.tensor([len(data)]), data.ids, data.observed,
                                     *[data.lengths.get(m) for m in data.modalities])
        out["features"][part] = [_stats(x, data.observed[:, m])
                                 for m, x in enumerate(data.features.values())]
    return out


def _close(a: Any, b: Any) -> bool:
    """Feature statistics equal up to float rounding (relative 1e-4 of their scale)."""
    try:
        pairs = [(float(u), float(v)) for ra, rb in zip(a, b, strict=True)
                 for u, v in zip(ra, rb, strict=True)]
    except (TypeError, ValueError):
        return False
    return all(abs(u - v) <= 1e-4 * max(1.0, abs(u), abs(v)) for u, v in pairs)


def identity_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The fields of :func:`data_identity` that differ between a checkpoint's ``saved`` identity
    and ``now`` (fields not recorded on both sides are not compared), in the order of
    :data:`_NAMES`."""
    diff = []
    for key in _NAMES:
        a, b = saved.get(key), now.get(key)
        if key not in saved or key not in now or (key == "sha256" and (a is None or b is None)):
            continue
        if key == "features":
            same = isinstance(a, dict) and isinstance(b, dict) and set(a) == set(b) and all(
                _close(a[p], b[p]) for p in a)
        else:
            same = a == b
        if not same:
            diff.append(key)
    return diff


def _legacy_identity(described: dict[str, Any]) -> dict[str, Any]:
    """The identity fields a checkpoint written before :func:`data_identity` allows comparing
    (from its ``data`` description): modalities, dims, classes when recorded, samples per split
    and observed missing rates (as "split"), and the source file's sha256 when recorded."""
    out: dict[str, Any] = {k: described[k] for k in ("modalities", "dims") if k in described}
    if "classes" in described:
        out["classes"] = described["classes"]
    out["split"] = {k: described.get(k) for k in ("samples", "observed_missing")}
    out["sha256"] = (described.get("source") or {}).get("sha256")
    return out


def _shown(key: str, value: Any) -> str:
    if key == "sha256":
        return "none recorded" if value is None else f"{str(value)[:12]}..."
    if key in ("labels", "split", "features") and isinstance(value, dict):
        return "{" + ", ".join(f"{p}: {str(v)[:12]}..." if isinstance(v, str) else f"{p}: {v}"
                               for p, v in value.items()) + "}"
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def identity_error(checkpoint: Any, diff: Sequence[str], saved: dict[str, Any], now: dict[str, Any],
                   what: str, force_hint: str) -> str:
    """The one-line message of a refused resume or evaluation: every field that differs, the
    first one's two values."""
    first = diff[0]
    fields = ", ".join(_NAMES[k] for k in diff)
    if first in ("labels", "split", "features"):
        parts = [p for p in PARTS if (saved.get(first) or {}).get(p) != (now.get(first) or {}).get(p)
                 ] if first != "features" else [p for p in PARTS if not _close(
                     (saved.get(first) or {}).get(p, []), (now.get(first) or {}).get(p, []))]
        detail = f"{_NAMES[first]} of {', '.join(parts) or 'some split'} differ"
    else:
        detail = (f"{_NAMES[first]}: trained on {_shown(first, saved.get(first))}, got "
                  f"{_shown(first, now.get(first))}")
    forcible = all(k in FORCIBLE for k in diff)
    allowed = ("the data it was trained on" + (f" ({force_hint})" if forcible and force_hint else
                                               ""))
    return (f"checkpoint: {str(checkpoint)!r} was written for other data: {what} differs in "
            f"{fields} ({detail}); allowed: {allowed}")


def check_resumable(st: dict[str, Any], config: Config, described: dict[str, Any],
                    checkpoint: Any, identity: dict[str, Any] | None = None,
                    force: bool = False) -> list[str]:
    """Raise ``ValueError`` unless the checkpoint ``st`` was written by this config (device and
    progress may differ) for this data: the fields of :func:`data_identity` (checkpoints written
    before it: those of :func:`_legacy_identity`, from ``Splits.describe()``). With ``force``, a
    difference only in :data:`FORCIBLE` fields (the data's values, not its shape, classes or
    split) is allowed. Returns the fields that differ (forced)."""
    saved = config_to_dict(config_from_dict(st["config"]))  # fields added since: their defaults
    if _comparable(saved) != _comparable(config_to_dict(config)):
        keys = [f"{s}.{k}" for s, fields in _comparable(config_to_dict(config)).items()
                for k, v in fields.items() if _comparable(saved).get(s, {}).get(k) != v]
        raise ValueError(f"checkpoint: {str(checkpoint)!r} was written by a different config "
                         f"(differs in {', '.join(keys[:6]) or 'its sections'}); allowed: the same "
                         "config (device and progress may differ)")
    if "identity" in st:
        old, now = st["identity"], identity if identity is not None else {}
    elif "data" in st:  # written before the identity was recorded
        old, now = _legacy_identity(st["data"]), _legacy_identity(described)
    else:  # written before the data was described: only the config and the weights' shapes
        return []
    diff = identity_differences(old, now)
    if diff and not (force and all(k in FORCIBLE for k in diff)):
        hint = "or force=True / --force to continue on these values, recorded in the summary"
        raise ValueError(identity_error(checkpoint, diff, old, now, "the data", hint))
    return diff


def check_evaluable(checkpoint: Any, meta: dict[str, Any], splits: Splits) -> None:
    """Raise ``ValueError`` when ``splits`` has other modalities, dims or classes (names, in
    order) than the checkpoint was trained on (``meta``: :func:`~redcore_lite.checkpoint.load_model`'s);
    other values, labels or splits are allowed (scoring a model on other data is what evaluate is
    for). Checkpoints written before the identity: modalities and dims, and the classes where
    their data description recorded them."""
    saved = meta.get("identity") or _legacy_identity(meta.get("data") or {
        "modalities": meta.get("modalities"), "dims": meta.get("dims")})
    now = data_identity(splits)
    diff = [k for k in identity_differences(saved, now) if k in ("modalities", "dims", "classes")]
    if diff:
        raise ValueError(identity_error(checkpoint, diff, saved, now, "the data",  ""))
