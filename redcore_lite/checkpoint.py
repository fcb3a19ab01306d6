"""Checkpoints and result files written atomically (temporary file, then rename)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .config import Config, config_from_dict
from .model import RedCore, build_model

__all__ = ["atomic_write_bytes", "atomic_write_text", "save_checkpoint", "load_checkpoint",
           "load_model", "FORMAT"]

FORMAT = "redcore_lite.checkpoint/1"


def _atomic(path: str | os.PathLike, write: Any) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    return _atomic(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """``torch.save`` a dict of tensors, numbers, strings, lists and dicts atomically."""
    return _atomic(path, lambda tmp: torch.save({"format": FORMAT, **state}, tmp))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no code runs); check its format."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint: {str(path)!r} does not exist; allowed: a file written by "
                         "redcore_lite (fit(..., checkpoint=PATH))")
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"checkpoint: {str(path)!r} is not a {FORMAT} file")
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
    config = config_from_dict(state["config"])
    model = build_model(config.model, state["dims"], state["num_classes"])
    model.load_state_dict(state["best"]["state"] if which == "best" else state["model"])
    meta = {k: state[k] for k in ("modalities", "dims", "num_classes", "epoch")}
    meta["best_epoch"] = state["best"]["epoch"]
    meta["data"] = state.get("data")  # the data's description (Splits.describe()), if recorded
    meta["mask_kind"] = state.get("mask_kind", "simulated")  # observed / simulated / ...
    return model.eval(), config, meta


def dump_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
