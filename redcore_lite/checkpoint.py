"""Checkpoints and result files written atomically (temporary file, then rename), checkpoints
checked when loaded.

A checkpoint holds a sha256 of its content (every tensor's dtype, shape and bytes, and every
number and string, in a fixed order), computed when it is saved and checked when it is loaded,
and its weights must be finite: damaged bytes, a truncated or foreign file give a ValueError
naming the file instead of a model that scores NaN weights or a torch traceback. Temporary
files carry the writer's pid; one left behind by a killed writer is removed by the next write.
"""
from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

# atomic writes live in _files (no model import needed); re-exported here for old callers
from ._files import atomic_write_bytes, atomic_write_text, dump_json, readable_file
from .config import Config, config_from_dict
from .model import RedCore, build_model

__all__ = ["atomic_write_bytes", "atomic_write_text", "dump_json", "save_checkpoint",
           "load_checkpoint", "load_model", "content_digest", "FORMAT"]

FORMAT = "redcore_lite.checkpoint/1"
_ALLOWED = "a complete checkpoint file written by redcore_lite (fit(..., checkpoint=PATH))"


def _feed(h: Any, obj: Any) -> None:
    """Add ``obj`` (tensors, dicts, lists, tuples, strings, numbers, None) to the hash ``h``."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        h.update(f"T{t.dtype}{tuple(t.shape)};".encode())
        if t.numel():
            h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)};".encode())
        for key in sorted(obj, key=repr):
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)};".encode())
        for value in obj:
            _feed(h, value)
    elif isinstance(obj, str):
        data = obj.encode("utf-8", "surrogatepass")
        h.update(f"S{len(data)};".encode())
        h.update(data)
    else:  # bool, int, float (nan and inf included), None
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def content_digest(state: dict[str, Any]) -> str:
    """sha256 of a checkpoint's content (without its ``format`` and ``sha256`` entries)."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k not in ("format", "sha256")})
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """``torch.save`` a dict of tensors, numbers, strings, lists and dicts atomically, with the
    sha256 of its content (:func:`content_digest`)."""
    buf = io.BytesIO()  # serialised in memory: a failed write is a Python OSError naming the file
    torch.save({"format": FORMAT, **state, "sha256": content_digest(state)}, buf)
    return atomic_write_bytes(path, buf.getbuffer())


def _tensors(obj: Any, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}[{i}]")


def _check_finite(path: Path, state: dict[str, Any]) -> None:
    """The weights, optimizer and beta state of a checkpoint hold only finite numbers."""
    parts = {"model": state.get("model"), "best weights": (state.get("best") or {}).get("state"),
             "optimizer state": state.get("optimizer"), "advantage state": state.get("advantage")}
    for part, obj in parts.items():
        for name, t in _tensors(obj, ""):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                bad = int((~torch.isfinite(t)).sum())
                raise ValueError(f"checkpoint: {str(path)!r} holds {bad} NaN or infinite value(s) in "
                                 f"its {part} ({name}); allowed: {_ALLOWED}, with finite weights")


def _reason(err: BaseException) -> str:
    """The first sentence of an error message, at most 120 characters."""
    text = " ".join(str(err).split()) or "no message"
    text = text.split(". ")[0]
    return f"{type(err).__name__}: {text[:120]}{'...' if len(text) > 120 else ''}"


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no code runs); check its format, its sha256
    (files written since it was recorded) and that its weights are finite.

    Raises:
        ValueError: naming the file: missing, a folder, empty, truncated, damaged (the digest
            differs), not a redcore_lite checkpoint, or non-finite weights.
    """
    path = readable_file(path, "checkpoint", _ALLOWED)
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint: {str(path)!r} is empty (0 bytes); allowed: {_ALLOWED}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... here
        raise ValueError(f"checkpoint: {str(path)!r} cannot be read as a checkpoint (truncated, "
                         f"damaged or another kind of file; {_reason(err)}); allowed: "
                         f"{_ALLOWED}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"checkpoint: {str(path)!r} is not a {FORMAT} file; allowed: {_ALLOWED}")
    saved = state.pop("sha256", None)  # files written before the digest was added have none
    if saved is not None and saved != content_digest(state):
        raise ValueError(f"checkpoint: {str(path)!r} is damaged: its content no longer matches "
                         f"the sha256 recorded when it was written ({str(saved)[:12]}...); "
                         f"allowed: {_ALLOWED}, unchanged since (train again, or use a copy)")
    _check_finite(path, state)
    return state


def load_model(path: str | os.PathLike, which: str = "best", map_location: str | torch.device = "cpu"
               ) -> tuple[RedCore, Config, dict[str, Any]]:
    """Rebuild the model saved in a checkpoint, in eval mode.

    Args:
        which: ``"best"`` (weights of the selected epoch) or ``"last"`` (latest epoch).
    Returns:
        model, config, and the checkpoint's metadata (modalities, dims, num_classes, epoch,
        best_epoch, data: the data's description, mask_kind: the kind of training mask).
    """
    if which not in ("best", "last"):
        raise ValueError(f"which: got {which!r}; allowed: 'best', 'last'")
    state = load_checkpoint(path, map_location)
    try:
        config = config_from_dict(state["config"])
        model = build_model(config.model, state["dims"], state["num_classes"])
        model.load_state_dict(state["best"]["state"] if which == "best" else state["model"])
        meta = {k: state[k] for k in ("modalities", "dims", "num_classes", "epoch")}
        meta["best_epoch"] = state["best"]["epoch"]
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise ValueError(f"checkpoint: {str(path)!r} does not describe a model redcore_lite can "
                         f"rebuild ({_reason(err)}); allowed: {_ALLOWED}") from err
    meta["data"] = state.get("data")  # the data's description (Splits.describe()), if recorded
    meta["identity"] = state.get("identity")  # what it was trained on (state.data_identity), if recorded
    meta["mask_kind"] = state.get("mask_kind", "simulated")  # observed / simulated / ...
    return model.eval(), config, meta
