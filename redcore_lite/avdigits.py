"""AV-digits: spoken digits paired by label with written digits (the AV-MNIST recipe, small).

A sample is a spoken digit (a Free Spoken Digit clip as log-mel frames) paired with written digits
of the same class drawn at load time with a seeded generator:

- ``audio``: the clip's log-mel frames ``[T, 32]`` (FSDD, CC BY-SA 4.0), or their mean and std
  over time ``[64]``.
- ``image``: an 8 x 8 written digit (UCI optical digits, scikit-learn's copy, CC BY 4.0) as pixels
  ``[64]``, or as a sequence of 8 pixel rows ``[8, 8]``.
- ``shape``: *another* written digit of the same class, from a different collection (UCI Multiple
  Features), described by its 76 Fourier coefficients of the character contour ``[76]`` (or one
  frame ``[1, 76]``).

Nothing links the modalities of a sample but the label: they are conditionally independent given
the class (as in AV-MNIST), so cross-modal generators can only carry class information.

The clips are split by speaker (``holdout="speakers"``: ``fold`` k in 1..6 holds out speaker k for
testing and speaker k + 1 (mod 6) for validation) or by take (``"takes"``: the official FSDD test
set, takes 0-4; takes 5-9 validate; 10-49 train). The written digits of each class are split into
disjoint train / val / test pools in proportion to that class's clips, so no written digit of a
test sample was seen in training; inside a split a pool is cycled in a seeded order, so each
written digit serves ``floor`` or ``ceil`` of (clips / pool size) samples (about 1.7 in training).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .data import MultimodalData, Splits

__all__ = ["AVDIGITS_MODALITIES", "AVDIGITS_HOLDOUTS", "SPEAKERS", "SHAPE_VIEW", "avdigits_splits",
           "pool_frames"]

AVDIGITS_MODALITIES = ("audio", "image", "shape")  # in this order
AVDIGITS_HOLDOUTS = ("speakers", "takes")
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")  # fold k holds out SPEAKERS[k-1]
SHAPE_VIEW = "fou"  # the mfeat view that describes the second written digit
_PARTS = ("train", "val", "test")


def pool_frames(frames: np.ndarray) -> np.ndarray:
    """Mean and std over time of one clip: ``[T, D]`` -> ``[2 D]`` (float32)."""
    x = np.asarray(frames, dtype=np.float64)
    return np.concatenate([x.mean(0), x.std(0)]).astype(np.float32)


def _clip_parts(speaker: np.ndarray, take: np.ndarray, holdout: str, fold: int) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) of every clip ``[num_clips]``."""
    if holdout == "takes":
        return np.where(take < 5, 2, np.where(take < 10, 1, 0))
    test, val = fold - 1, fold % len(SPEAKERS)
    return np.where(speaker == test, 2, np.where(speaker == val, 1, 0))


def _pair(clip_labels: np.ndarray, clip_parts: np.ndarray, pool_labels: np.ndarray,
          gen: torch.Generator) -> np.ndarray:
    """Index into the pool of the written digit paired with every clip ``[num_clips]``.

    Per class, the pool is shuffled and cut into train / val / test parts in proportion to that
    class's clips in each split; each split's clips (in shuffled order) cycle through their part.
    """
    out = np.full(len(clip_labels), -1, dtype=np.int64)
    for c in np.unique(clip_labels):
        pool = np.flatnonzero(pool_labels == c)
        pool = pool[torch.randperm(len(pool), generator=gen).numpy()]
        counts = [int(((clip_labels == c) & (clip_parts == p)).sum()) for p in range(3)]
        cuts = np.round(np.cumsum(counts) / sum(counts) * len(pool)).astype(int)
        for p, part in enumerate(np.split(pool, cuts[:2])):
            clips = np.flatnonzero((clip_labels == c) & (clip_parts == p))
            clips = clips[torch.randperm(len(clips), generator=gen).numpy()]
            out[clips] = part[np.arange(len(clips)) % len(part)]
    return out


def _audio(frames: np.ndarray, offsets: np.ndarray, idx: np.ndarray, sequences: bool,
           max_frames: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Clips ``idx``: padded frames ``[n, T, D]`` with lengths ``[n]``, or pooled ``[n, 2 D]``."""
    rows = [frames[offsets[i]:offsets[i + 1]].astype(np.float32) for i in idx]
    if not sequences:
        return torch.from_numpy(np.stack([pool_frames(r) for r in rows])), None
    lengths = [len(r) if max_frames <= 0 else min(len(r), max_frames) for r in rows]
    x = np.zeros((len(rows), max(lengths), frames.shape[1]), dtype=np.float32)
    for i, (r, n) in enumerate(zip(rows, lengths)):
        x[i, :n] = r[:n]
    return torch.from_numpy(x), torch.tensor(lengths, dtype=torch.long)


def _written(x: np.ndarray, sequences: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``[n, T, D]`` rows (all valid, lengths ``[n]``) or the flat vectors ``[n, T * D]``."""
    t = torch.from_numpy(x.astype(np.float32))
    return (t, torch.full((len(t),), t.shape[1], dtype=torch.long)) if sequences else (t.flatten(1), None)


def avdigits_splits(npz: dict[str, np.ndarray], shape: tuple[np.ndarray, np.ndarray] | None,
                    modalities: Sequence[str], holdout: str, fold: int, sequences: bool, seed: int,
                    max_frames: int = 0) -> Splits:
    """Split the clips, pair them with written digits and build the modalities (checked args).

    Args:
        npz: the arrays of ``avdigits.npz`` (audio frames, lengths, digit, speaker, take, image,
            image_labels). shape: the mfeat view ``[2000, 76]`` and its labels ``[2000]`` (None
            when ``shape`` is not among the modalities).
        modalities, holdout, fold, sequences, seed, max_frames: as in
            :func:`redcore_lite.datasets.load_avdigits`.
    Returns:
        :class:`Splits` (not normalised), 10 classes.
    """
    digit = npz["audio_digit"].astype(np.int64)
    parts = _clip_parts(npz["audio_speaker"], npz["audio_take"], holdout, fold)
    gen = torch.Generator().manual_seed(seed)
    image_of = _pair(digit, parts, npz["image_labels"], gen)
    shape_of = _pair(digit, parts, shape[1], gen) if shape is not None else None
    offsets = np.concatenate([[0], np.cumsum(npz["audio_lengths"].astype(np.int64))])
    names = [f"{d}_{SPEAKERS[s]}_{t}" for d, s, t in
             zip(digit, npz["audio_speaker"], npz["audio_take"])]
    out = []
    for p in range(3):
        idx = np.flatnonzero(parts == p)
        feats: dict[str, torch.Tensor] = {}
        lens: dict[str, torch.Tensor] = {}
        for mod in modalities:
            if mod == "audio":
                x, ln = _audio(npz["audio"], offsets, idx, sequences, max_frames)
            elif mod == "image":  # 8 pixel rows
                x, ln = _written(npz["image"][image_of[idx]].reshape(-1, 8, 8), sequences)
            else:  # one frame of contour coefficients
                assert shape is not None and shape_of is not None
                x, ln = _written(shape[0][shape_of[idx]][:, None, :], sequences)
            feats[mod] = x
            if ln is not None:
                lens[mod] = ln
        ids = [f"{names[i]}|image{image_of[i]}" + ("" if shape_of is None else f"|shape{shape_of[i]}")
               for i in idx]
        out.append(MultimodalData(feats, torch.from_numpy(digit[idx]), 10, lens, ids))
    return Splits(*out)
