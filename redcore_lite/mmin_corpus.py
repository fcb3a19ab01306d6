"""Write a corpus in the IEMOCAP feature-release layout (MMIN / RedCore) with a planted signal.

The real IEMOCAP features are licensed and not shipped. A corpus written here has their layout,
dims, frame counts and value ranges, so the whole path (loader, Transformer encoders, the
``paper`` recipe, the authors' own code) can be run and compared on it: the parity benchmark
(``benchmarks/release_parity.py``) trains the release and redcore_lite on the same files, and the
tests use a small one. Files written (as :func:`redcore_lite.datasets.load_mmin` reads them)::

    {root}/A/comparE.h5            [frames, 130] per utterance id (raw scale: offsets and scales
                                   that differ by orders of magnitude between dims, as ComParE)
    {root}/A/comparE_mean_std.h5   group "1" with the training split's frame mean / std
    {root}/V/denseface.h5          [frames, 342], non-negative (post-ReLU, as DenseFace)
    {root}/L/bert_large.h5         [tokens, 1024]
    {root}/target/1/{trn,val,tst}_label.npy     one-hot [N, 4] float32
    {root}/target/1/{trn,val,tst}_int2name.npy  [N, 1] byte strings

The signal: utterance i of class y has a class-relevant latent ``s = sep * c_y + u`` (class
centres ``c_y ~ N(0, I_k)``, ``u ~ N(0, I_k)``), seen by modality m through its own noise
``n_m ~ N(0, noise_m^2 I_k)`` and a fixed projection ``W_m: [k, D_m]``; each frame adds frame noise
and a per-utterance private component. Every modality sees the same ``s``, so the modalities
predict each other (what the cross-modal generators learn), and each sees it through its own
noise, so two modalities together classify better than one.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CorpusSpec", "LEVELS", "corpus_spec", "write_mmin_corpus"]

_FILES = ("comparE", "denseface", "bert_large")
_MODS = ("A", "V", "L")
_PARTS = ("trn", "val", "tst")


@dataclass(frozen=True)
class CorpusSpec:
    """What :func:`write_mmin_corpus` writes; the defaults are the ``medium`` level."""

    sizes: tuple[int, int, int] = (700, 150, 150)  # utterances in trn / val / tst
    dims: tuple[int, int, int] = (130, 342, 1024)  # A (ComParE), V (DenseFace), L (BERT-large)
    frames: tuple[tuple[int, int], ...] = ((20, 40), (8, 16), (6, 12))  # frame-count range per modality
    num_classes: int = 4  # IEMOCAP's four emotion classes
    latent_dim: int = 16  # k: size of the class-relevant latent s
    separation: float = 0.9  # sep: scale of the class centres against the unit class-free spread
    noise: tuple[float, float, float] = (0.7, 0.7, 0.7)  # noise_m: each modality's own noise on s
    private: float = 1.0  # per-utterance, per-dim private component of every frame
    frame_noise: float = 1.0  # independent noise of every frame
    seed: int = 0  # one seed for the class centres, projections, samples and the split


# difficulty levels: the linear probe accuracy on one modality's mean-pooled frames (test split,
# seed 0) is measured by benchmarks/release_parity.py and reported in benchmarks/RESULTS.md
LEVELS: dict[str, dict] = {
    "easy": {"separation": 1.1, "noise": (0.6, 0.6, 0.6)},
    "medium": {},
    "hard": {"separation": 0.7},
    # one strong, one medium and one weak modality (A, V, L)
    "asymmetric": {"noise": (0.3, 0.9, 2.0)},
}


def corpus_spec(level: str = "medium", seed: int = 0, **changes) -> CorpusSpec:
    """The :class:`CorpusSpec` of a named difficulty level, with ``seed`` and any field changed."""
    if level not in LEVELS:
        raise ValueError(f"level: got {level!r}; allowed: " + ", ".join(map(repr, LEVELS)))
    return replace(CorpusSpec(), seed=seed, **{**LEVELS[level], **changes})


def _check(spec: CorpusSpec) -> None:
    if len(spec.sizes) != 3 or any(int(n) < spec.num_classes for n in spec.sizes):
        raise ValueError(f"sizes: got {spec.sizes}; allowed: three split sizes (trn, val, tst), "
                         f"each >= num_classes={spec.num_classes}")
    for lo_hi in spec.frames:
        if len(lo_hi) != 2 or not 1 <= lo_hi[0] <= lo_hi[1]:
            raise ValueError(f"frames: got {spec.frames}; allowed: one (min, max) range per "
                             "modality with 1 <= min <= max")
    if len(spec.dims) != 3 or len(spec.noise) != 3 or len(spec.frames) != 3:
        raise ValueError(f"dims/noise/frames: got {spec.dims}/{spec.noise}/{spec.frames}; "
                         "allowed: three entries each (A, V, L)")
    if spec.num_classes < 2 or spec.latent_dim < 1:
        raise ValueError(f"num_classes/latent_dim: got {spec.num_classes}/{spec.latent_dim}; "
                         "allowed: >= 2 classes and a latent of size >= 1")


def write_mmin_corpus(root: str | Path, spec: CorpusSpec | None = None) -> dict:
    """Write the corpus of ``spec`` (default: the ``medium`` level) under ``root``.

    Returns:
        ``{"root", "target_root", "fold": 1, "ids": {part: [ids]}, "labels": {part: [N] ints}}``.
    """
    import h5py

    spec = spec or CorpusSpec()
    _check(spec)
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    k, num_classes = spec.latent_dim, spec.num_classes
    total = int(sum(spec.sizes))
    centres = rng.normal(size=(num_classes, k))
    labels = np.arange(total) % num_classes
    rng.shuffle(labels)
    s = spec.separation * centres[labels] + rng.normal(size=(total, k))
    ids = [f"Ses0{1 + i % 5}{'FM'[i % 2]}_{'impro' if i % 3 else 'script'}{i % 9:02d}_"
           f"{'FM'[(i // 2) % 2]}{i:04d}" for i in range(total)]
    # the look of each feature type: ComParE's raw offsets and scales, DenseFace's non-negativity
    a_offset = rng.uniform(-10.0, 100.0, spec.dims[0])
    a_scale = np.exp(rng.uniform(np.log(0.05), np.log(20.0), spec.dims[0]))
    a_frames_trn = []
    parts = {}
    start = 0
    for part, n in zip(_PARTS, spec.sizes):
        parts[part] = np.arange(start, start + int(n))
        start += int(n)
    in_trn = np.zeros(total, dtype=bool)
    in_trn[parts["trn"]] = True
    for m, (mod, kind) in enumerate(zip(_MODS, _FILES)):
        dim, (lo, hi) = spec.dims[m], spec.frames[m]
        w = rng.normal(size=(k, dim)) / np.sqrt(k)
        seen = s + spec.noise[m] * rng.normal(size=(total, k))
        utt = seen @ w + spec.private * rng.normal(size=(total, dim))
        (root / mod).mkdir(parents=True, exist_ok=True)
        with h5py.File(root / mod / f"{kind}.h5", "w") as f:
            for i in range(total):
                t = int(rng.integers(lo, hi + 1))
                x = utt[i] + spec.frame_noise * rng.normal(size=(t, dim))
                if mod == "A":
                    x = a_offset + a_scale * x
                    if in_trn[i]:
                        a_frames_trn.append(x)
                elif mod == "V":
                    x = np.maximum(x, 0.0)
                f.create_dataset(ids[i], data=x.astype(np.float32))
    frames = np.concatenate(a_frames_trn)
    with h5py.File(root / "A" / "comparE_mean_std.h5", "w") as f:
        g = f.create_group("1")
        g.create_dataset("mean", data=frames.mean(0).astype(np.float32))
        g.create_dataset("std", data=frames.std(0).astype(np.float32))
    fold_dir = root / "target" / "1"
    fold_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"root": str(root), "target_root": str(root / "target"), "fold": 1, "ids": {}, "labels": {}}
    for part, rows in parts.items():
        np.save(fold_dir / f"{part}_label.npy", np.eye(num_classes, dtype=np.float32)[labels[rows]])
        np.save(fold_dir / f"{part}_int2name.npy", np.array([[ids[i].encode()] for i in rows]))
        out["ids"][part] = [ids[i] for i in rows]
        out["labels"][part] = labels[rows].tolist()
    return out
