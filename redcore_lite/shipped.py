"""The shipped feature files (package data): where they are, and the mfeat reader.

``redcore_lite/data_files/`` holds ``mfeat.npz`` and ``avdigits.npz`` (so a wheel install has
them; ``data/`` of the repository holds their build scripts and README). :func:`mfeat_data` reads
the mfeat digits; :mod:`redcore_lite.datasets` (the loaders and their splits, also
``rc.datasets.mfeat_data``) and :mod:`redcore_lite.custom_io` (``mfeat_holes``) use it.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .data import MultimodalData

__all__ = ["DATA_DIR", "MFEAT_PATH", "AVDIGITS_PATH", "MFEAT_VIEWS", "mfeat_data"]

DATA_DIR = Path(__file__).resolve().parent / "data_files"  # shipped feature files (package data)
MFEAT_PATH = DATA_DIR / "mfeat.npz"
AVDIGITS_PATH = DATA_DIR / "avdigits.npz"
MFEAT_VIEWS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}  # name -> dim


def mfeat_data(views: Sequence[str] = ("fou", "kar", "pix"), path: str | Path | None = None
               ) -> MultimodalData:
    """All 2000 digits with the chosen views as float32 modalities ``[2000, D_view]``, labels 0..9."""
    if isinstance(views, str) or len(views) < 2 or len(set(views)) != len(views) or any(
            v not in MFEAT_VIEWS for v in views):
        raise ValueError(f"views: got {views!r}; allowed: two or more distinct names among "
                         + ", ".join(map(repr, MFEAT_VIEWS)))
    path = _shipped(path, MFEAT_PATH, "mfeat", "build_mfeat.py")
    with np.load(path, allow_pickle=False) as npz:
        feats = {v: torch.from_numpy(npz[v].astype(np.float32)) for v in views}
        labels = torch.from_numpy(npz["labels"].astype(np.int64))
    return MultimodalData(feats, labels, 10, ids=[f"mfeat-{i}" for i in range(len(labels))])


def _shipped(path: str | Path | None, default: Path, what: str, script: str) -> Path:
    """``path`` (default: the shipped file), checked to exist."""
    path = Path(path) if path is not None else default
    if not path.is_file():
        state = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ValueError(f"path: {str(path)!r} {state}; expected the {what} file shipped in "
                         f"redcore_lite/data_files/ (rebuild it with data/{script})")
    return path
