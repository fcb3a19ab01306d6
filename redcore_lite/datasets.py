"""Real data: the shipped feature files (mfeat, AV-digits) and the feature releases of the paper.

- ``mfeat``: 2000 handwritten digits, six views (``mfeat.npz``, see ``data/README.md``).
- ``avdigits``: 3000 spoken digits paired by label with written digits (``avdigits.npz`` and
  ``mfeat.npz``; :mod:`redcore_lite.avdigits`).
- ``iemocap`` / ``msp``: the MMIN / RedCore feature release (per-modality HDF5 files keyed by
  utterance id, fold folders with labels and utterance ids, ComParE mean/std per fold).
- ``mosei``: the MMSA ``aligned_50.pkl`` of CMU-MOSEI (a pickle: load only a file you trust).

The shipped files are package data in ``redcore_lite/data_files/`` (so a wheel install has them;
their paths and the mfeat reader are in :mod:`redcore_lite.shipped`);
``data/`` of the repository holds their build scripts and README. Every loader returns
:class:`~redcore_lite.data.Splits`; sequences are padded once, with lengths.
"""
from __future__ import annotations

import contextlib
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .avdigits import AVDIGITS_HOLDOUTS, AVDIGITS_MODALITIES, SHAPE_VIEW, SPEAKERS, avdigits_splits
from .data import MultimodalData, Splits, make_synthetic, normalise as _normalise, stratified_split
from .registry import DatasetSpec, _register_builtin
from .shipped import AVDIGITS_PATH, DATA_DIR, MFEAT_PATH, MFEAT_VIEWS, _shipped, mfeat_data

__all__ = ["DATA_DIR", "MFEAT_PATH", "AVDIGITS_PATH", "MFEAT_VIEWS", "MMIN_FOLDS", "MMIN_FEATURES",
           "RELEASE_DIMS", "MOSEI_DIMS", "DATASETS", "mfeat_data", "load_mfeat", "load_avdigits",
           "pad_sequences", "load_mmin", "load_mosei", "load_named"]

MMIN_FOLDS = {"iemocap": 10, "msp": 12}  # folds are numbered 1..K (the release's cvNo)
MMIN_FEATURES = {"A": "comparE", "V": "denseface", "L": "bert_large"}  # release feature files
RELEASE_DIMS = {"comparE": 130, "denseface": 342, "bert_large": 1024}  # feature type -> dim
MOSEI_DIMS = {"A": ("audio", 74), "V": ("vision", 35), "L": ("text", 768)}  # MMSA key, dim
DATASETS = ("synthetic", "mfeat", "avdigits", "iemocap", "msp", "mosei", "custom")  # custom: your own file
_SPLITS = ("trn", "val", "tst")


def load_mfeat(views: Sequence[str] = ("fou", "kar", "pix"), seed: int = 0,
               fractions: Sequence[float] = (0.7, 0.15, 0.15), normalise: bool = True,
               path: str | Path | None = None) -> Splits:
    """UCI Multiple Features: seeded stratified train/val/test split of the chosen views.

    Args:
        views: two or more of fou (76), fac (216), kar (64), pix (240), zer (47), mor (6).
        seed: seed of the split; fractions: train / val / test fractions.
        normalise: z-score every feature with training-split statistics.
        path: the ``.npz`` file (default: ``mfeat.npz`` shipped in the package).
    Returns:
        :class:`Splits` with features ``[N_split, D_view]`` and 10 classes.
    """
    splits = stratified_split(mfeat_data(views, path), fractions, seed=seed)
    return _normalise(splits) if normalise else splits


_AVDIGITS_KEYS = ("audio", "audio_lengths", "audio_digit", "audio_speaker", "audio_take", "image",
                  "image_labels")


def load_avdigits(modalities: Sequence[str] = AVDIGITS_MODALITIES, holdout: str = "speakers",
                  fold: int = 1, sequences: bool = False, seed: int = 0, max_frames: int = 0,
                  normalise: bool = True, path: str | Path | None = None,
                  mfeat_path: str | Path | None = None) -> Splits:
    """AV-digits: 3000 spoken digits paired by label with written digits (see :mod:`.avdigits`).

    Args:
        modalities: two or more of ``audio`` (FSDD log-mel), ``image`` (8 x 8 written digit),
            ``shape`` (another written digit's 76 contour Fourier coefficients), in the order
            given.
        holdout: ``"speakers"`` (fold k in 1..6 tests on speaker k, validates on speaker k + 1:
            500 / 500 / 2000 clips) or ``"takes"`` (the official split: takes 0-4 test, 5-9
            validate, 10-49 train: 300 / 300 / 2400 clips).
        fold: 1..6, the held-out speaker (``holdout="speakers"`` only).
        sequences: False = vectors for the ``mlp`` backbone (audio: mean and std of the frames
            ``[N, 64]``, image ``[N, 64]``, shape ``[N, 76]``); True = sequences with lengths for
            the ``transformer`` backbone (audio ``[N, T, 32]``, image as 8 pixel rows
            ``[N, 8, 8]``, shape as one frame ``[N, 1, 76]``).
        seed: seed of the written-digit pools and of the pairing (the clip split is fixed).
        max_frames: with ``sequences``, keep at most this many audio frames (0 = all, up to 113).
        normalise: z-score every feature with training-split statistics (valid frames only).
        path, mfeat_path: ``avdigits.npz`` and ``mfeat.npz`` (default: the shipped files).
    Returns:
        :class:`Splits` with ids ``{digit}_{speaker}_{take}|image{i}|shape{j}``, 10 classes.
    """
    if isinstance(modalities, str) or len(modalities) < 2 or len(set(modalities)) != len(modalities) \
            or any(m not in AVDIGITS_MODALITIES for m in modalities):
        raise ValueError(f"modalities: got {modalities!r}; allowed: two or more distinct names among "
                         + ", ".join(map(repr, AVDIGITS_MODALITIES)))
    if holdout not in AVDIGITS_HOLDOUTS:
        raise ValueError(f"holdout: got {holdout!r}; allowed: " + ", ".join(map(repr, AVDIGITS_HOLDOUTS)))
    if holdout == "speakers" and (isinstance(fold, bool) or not isinstance(fold, (int, np.integer))
                                  or not 1 <= fold <= len(SPEAKERS)):
        raise ValueError(f"fold: got {fold!r}; allowed: an integer in 1..{len(SPEAKERS)} (the held-out "
                         f"speaker: " + ", ".join(f"{k + 1} {s}" for k, s in enumerate(SPEAKERS)) + ")")
    if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 0:
        raise ValueError(f"max_frames: got {max_frames!r}; allowed: an integer >= 0 (0 = all frames)")
    path = _shipped(path, AVDIGITS_PATH, "AV-digits", "build_avdigits.py")
    with np.load(path, allow_pickle=False) as npz:
        missing = [k for k in _AVDIGITS_KEYS if k not in npz.files]
        if missing:
            raise ValueError(f"path: {str(path)!r} lacks the arrays {missing}; expected an "
                             "avdigits.npz written by data/build_avdigits.py")
        arrays = {k: npz[k] for k in _AVDIGITS_KEYS}
    shape = None
    if "shape" in modalities:
        with np.load(_shipped(mfeat_path, MFEAT_PATH, "mfeat", "build_mfeat.py"),
                     allow_pickle=False) as npz:
            shape = (npz[SHAPE_VIEW], npz["labels"])
    fold = int(fold) if holdout == "speakers" else 1  # the take split has no folds
    splits = avdigits_splits(arrays, shape, tuple(modalities), holdout, fold, bool(sequences), seed,
                             int(max_frames))
    return _normalise(splits) if normalise else splits


def pad_sequences(seqs: Sequence[np.ndarray], max_frames: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad ``[T_i, D]`` arrays into one tensor.

    Args:
        seqs: N arrays ``[T_i, D]``; an empty one (T_i = 0) becomes one zero frame.
        max_frames: keep at most this many leading frames (0 = all).
    Returns:
        x: ``[N, T_max, D]`` float32; lengths: ``[N]`` long, each >= 1.
    """
    lengths = [max(1, len(s) if max_frames <= 0 else min(len(s), max_frames)) for s in seqs]
    x = torch.zeros(len(seqs), max(lengths, default=1), seqs[0].shape[1] if seqs else 0)
    for i, s in enumerate(seqs):
        n = min(len(s), lengths[i])
        if n:
            x[i, :n] = torch.from_numpy(np.asarray(s[:n], dtype=np.float32))
    return x, torch.tensor(lengths, dtype=torch.long)


def _decode_id(item: Any) -> str:
    """An utterance id from a byte string, a str or a 1-element (byte) array."""
    if isinstance(item, np.ndarray):
        item = item.reshape(-1)[0]
    return item.decode() if isinstance(item, bytes) else str(item)


def _missing(path: Path) -> str:
    """Why ``path`` is not a readable file, in words."""
    return "a folder, not a file" if path.is_dir() else "no such file"


def _load_npy(path: Path, what: str, allow_pickle: bool) -> np.ndarray:
    if not path.is_file():
        raise ValueError(f"{path}: {_missing(path)}; "
                         f"expected {what}")
    try:
        return np.load(path, allow_pickle=allow_pickle)
    except ValueError as err:
        if "allow_pickle" not in str(err):
            raise ValueError(f"{path}: cannot be read as a .npy array (truncated or damaged? "
                             f"{err}); expected {what}") from None
        raise ValueError(f"{path}: holds Python objects ({err}); pass allow_pickle=True only if "
                         "you trust the file (unpickling runs code)") from None
    except (OSError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path}: cannot be read as a .npy array (truncated or damaged? "
                         f"{type(err).__name__}: {err}); expected {what}") from None


def _mmin_targets(fold_dir: Path, part: str, num_classes: int, allow_pickle: bool
                  ) -> tuple[torch.Tensor, list[str], Path]:
    """Labels ``[N]`` and utterance ids of one split of one fold."""
    lab_path, ids_path = fold_dir / f"{part}_label.npy", fold_dir / f"{part}_int2name.npy"
    labels = _load_npy(lab_path, "the labels (one-hot [N, C] or integers [N])", allow_pickle)
    names = _load_npy(ids_path, "the utterance ids (byte strings)", allow_pickle)
    y = labels.argmax(1) if labels.ndim == 2 else labels.reshape(-1)
    if labels.ndim == 2 and labels.shape[1] != num_classes:
        raise ValueError(f"{lab_path}: one-hot labels of width {labels.shape[1]}; expected "
                         f"{num_classes} classes")
    ids = [_decode_id(item) for item in names]
    if len(y) != len(ids):
        raise ValueError(f"{lab_path}: {len(y)} labels but {ids_path} holds {len(ids)} utterance "
                         "ids; expected one label per id")
    y = np.asarray(y).astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{lab_path}: labels in [{y.min()}, {y.max()}]; expected integers in "
                         f"[0, {num_classes - 1}]")
    return torch.from_numpy(y), ids, ids_path


def _read_h5(h5: Any, path: Path, ids: list[str], ids_path: Path, dim: int | None,
             kind: str) -> tuple[list[np.ndarray], int]:
    """The ``[frames, dim]`` array of every id; checks presence, rank and feature dim."""
    seqs = []
    for uid in ids:
        if uid not in h5:
            raise ValueError(f"{path}: utterance id {uid!r} (listed in {ids_path}) is not a key of "
                             "the file; expected one dataset per utterance id")
        arr = np.asarray(h5[uid][()], dtype=np.float32)
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).sum())
            raise ValueError(f"{path}[{uid!r}]: holds {bad} NaN or infinite value(s) of "
                             f"{arr.size}; expected finite features (impute them, or drop the "
                             f"utterance from {ids_path})")
        arr = arr[None] if arr.ndim == 1 else arr
        if arr.ndim != 2:
            raise ValueError(f"{path}[{uid!r}]: shape {arr.shape}; expected [frames, dim]")
        if dim is None:
            dim = arr.shape[1]
        if arr.shape[1] != dim:
            raise ValueError(f"{path}[{uid!r}]: feature dim {arr.shape[1]}; expected {dim} ({kind})")
        seqs.append(arr)
    return seqs, dim if dim is not None else 0


@contextlib.contextmanager
def _h5_open(path: Path, what: str) -> Any:
    """``h5py.File(path, "r")``; an unreadable (truncated, damaged, not HDF5) file is a
    ValueError naming it."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: cannot be read as HDF5 (truncated, damaged or not HDF5: "
                         f"{' '.join(str(err).split())[:160]}); expected {what}") from None
    try:
        with f:
            yield f
    except (OSError, RuntimeError) as err:  # damaged data inside a readable file
        raise ValueError(f"{path}: cannot be read as HDF5 (damaged? {type(err).__name__}: "
                         f"{' '.join(str(err).split())[:160]}); expected {what}") from None


def _comparE_stats(root: Path, fold: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Training-fold ComParE mean and std ``[dim]`` from ``A/comparE_mean_std.h5``."""
    path = root / "A" / "comparE_mean_std.h5"
    if not path.is_file():
        raise ValueError(f"{path}: {_missing(path)}; expected the ComParE mean/std per fold (groups "
                         "'1', '2', ... holding 'mean' and 'std')")
    with _h5_open(path, "the ComParE mean/std per fold") as f:
        if str(fold) not in f or "mean" not in f[str(fold)] or "std" not in f[str(fold)]:
            raise ValueError(f"{path}: no group {str(fold)!r} with 'mean' and 'std'; expected one "
                             f"group per fold (got keys {sorted(f)[:12]})")
        mean, std = (np.asarray(f[str(fold)][k][()], dtype=np.float32).reshape(-1)
                     for k in ("mean", "std"))
    if mean.shape != (dim,) or std.shape != (dim,):
        raise ValueError(f"{path}[{str(fold)!r}]: mean/std of sizes {mean.size}/{std.size}; "
                         f"expected {dim}, the ComParE feature dim")
    return mean, np.where(std > 0, std, 1.0).astype(np.float32)


def load_mmin(root: str | Path, fold: int = 1, dataset: str = "iemocap",
              target_root: str | Path | None = None, features: Mapping[str, str] | None = None,
              dims: Mapping[str, int] | None = None, max_frames: int = 0, normalise: bool = False,
              allow_pickle: bool = False) -> Splits:
    """IEMOCAP (10 folds) or MSP-IMPROV (12 folds) from the MMIN / RedCore feature release.

    Layout: ``{root}/{A,V,L}/{type}.h5`` (one ``[frames, dim]`` dataset per utterance id),
    ``{root}/A/comparE_mean_std.h5`` (groups per fold with ``mean`` and ``std``, applied to
    ComParE frames as in the release), and ``{target_root}/{fold}/{trn,val,tst}_label.npy``
    (one-hot for IEMOCAP, integers for MSP) with ``{trn,val,tst}_int2name.npy`` (byte strings or
    1-element byte arrays).

    Args:
        root: the feature root holding ``A/``, ``V/``, ``L/``.
        fold: 1..10 (iemocap) or 1..12 (msp). dataset: ``"iemocap"`` or ``"msp"``.
        target_root: the folder of fold folders (default ``{root}/target``).
        features: modality -> feature file name (default ``A: comparE, V: denseface,
            L: bert_large``); dims: modality -> expected dim (default: 130, 342, 1024 for the
            release types; unknown types are only checked for consistency).
        max_frames: keep at most this many leading frames per utterance (0 = all, the release).
        normalise: also z-score every modality with training statistics (the release does not).
        allow_pickle: let ``np.load`` unpickle object arrays in the label/id files (runs code).
    Returns:
        :class:`Splits` (trn, val, tst) with modalities A, V, L as ``[N, T, D]`` plus lengths, and
        utterance ids; 4 classes.
    """
    if dataset not in MMIN_FOLDS:
        raise ValueError(f"dataset: got {dataset!r}; allowed: " + ", ".join(map(repr, MMIN_FOLDS)))
    num_folds = MMIN_FOLDS[dataset]
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 1 <= fold <= num_folds:
        raise ValueError(f"fold: got {fold!r}; allowed: an integer in 1..{num_folds} for {dataset} "
                         "(the release's cvNo)")
    if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 0:
        raise ValueError(f"max_frames: got {max_frames!r}; allowed: an integer >= 0 (0 = all frames)")
    root = Path(root)
    if not str(root) or not root.is_dir():
        raise ValueError(f"root: {str(root)!r} is not a folder; expected the {dataset} feature root "
                         "holding A/, V/, L/ (e.g. A/comparE.h5)")
    features = dict(MMIN_FEATURES if features is None else features)
    target = Path(target_root) if target_root else root / "target"
    fold_dir = target / str(fold)
    if not fold_dir.is_dir():
        raise ValueError(f"target_root: {str(fold_dir)!r} is not a folder; expected "
                         f"{{target_root}}/{fold}/ holding {{trn,val,tst}}_label.npy and "
                         "_int2name.npy (default target_root: {root}/target)")
    try:
        import h5py  # noqa: F401  (read by _h5_open)
    except ImportError:
        raise ImportError("load_mmin needs h5py: pip install 'redcore_lite[data]'") from None
    num_classes = 4
    parts = {p: _mmin_targets(fold_dir, p, num_classes, allow_pickle) for p in _SPLITS}
    feats: dict[str, dict[str, torch.Tensor]] = {p: {} for p in _SPLITS}
    lens: dict[str, dict[str, torch.Tensor]] = {p: {} for p in _SPLITS}
    for mod, kind in features.items():  # every file exists before any is read
        path = root / mod / f"{kind}.h5"
        if not path.is_file():
            raise ValueError(f"{path}: {_missing(path)}; expected the {mod} features of {dataset} "
                             f"(HDF5, one [frames, dim] dataset per utterance id)")
    for mod, kind in features.items():
        path = root / mod / f"{kind}.h5"
        dim = (dims or {}).get(mod, RELEASE_DIMS.get(kind))
        with _h5_open(path, f"the {mod} features of {dataset} (one [frames, dim] dataset per "
                      "utterance id)") as h5:
            seqs = {p: _read_h5(h5, path, parts[p][1], parts[p][2], dim, kind) for p in _SPLITS}
        if kind == "comparE":
            mean, std = _comparE_stats(root, fold, seqs["trn"][1])
            seqs = {p: ([(s - mean) / std for s in v[0]], v[1]) for p, v in seqs.items()}
        dims_seen = {v[1] for v in seqs.values() if v[0]}
        if len(dims_seen) > 1:
            raise ValueError(f"{path}: feature dims {sorted(dims_seen)} differ between splits; "
                             "expected one dim per modality")
        for p in _SPLITS:
            feats[p][mod], lens[p][mod] = pad_sequences(seqs[p][0], max_frames)
    out = [MultimodalData(feats[p], parts[p][0], num_classes, lens[p], parts[p][1]) for p in _SPLITS]
    splits = Splits(*out)
    return _normalise(splits) if normalise else splits


def load_mosei(path: str | Path, dims: Sequence[int] | None = (74, 35, 768),
               normalise: bool = True) -> Splits:
    """CMU-MOSEI from the MMSA ``aligned_50.pkl`` (train / valid / test), 3 classes.

    **Warning**: the file is a Python pickle, and unpickling runs whatever code the file holds.
    Load only a file you downloaded yourself from a source you trust; this function never looks
    for it anywhere but the path you name.

    Args:
        path: the pickle: a dict with ``train``, ``valid``, ``test``, each holding ``audio``
            ``[N, 50, 74]``, ``vision`` ``[N, 50, 35]``, ``text`` ``[N, 50, 768]`` and
            ``classification_labels`` ``[N]`` (0, 1, 2, or -1, 0, 1 which are shifted by one).
        dims: expected (A, V, L) feature dims, or None to accept any.
        normalise: z-score every modality with training statistics. Non-finite values (the
            release's audio holds ``-inf``) are set to 0 first, as MMSA does.
    Returns:
        :class:`Splits` with modalities A (audio), V (vision), L (text) as ``[N, 50, D]``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: {str(path)!r} is not a file; expected the MMSA aligned_50.pkl of "
                         "CMU-MOSEI (named explicitly; it is never searched for)")
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f)  # noqa: S301  (runs code: only a path the user named)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, AttributeError,
            ImportError) as err:
        raise ValueError(f"{path}: cannot be read as a pickle (truncated, damaged or another "
                         f"kind of file; {type(err).__name__}: {err}); expected the MMSA "
                         "aligned_50.pkl of CMU-MOSEI") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: holds a {type(obj).__name__}; expected a dict with 'train', "
                         "'valid', 'test'")
    parts = []
    for part in ("train", "valid", "test"):
        if part not in obj:
            raise ValueError(f"{path}: no key {part!r}; expected 'train', 'valid', 'test' "
                             f"(got {sorted(map(str, obj))})")
        split, feats = obj[part], {}
        for m, (mod, (key, _dim)) in enumerate(MOSEI_DIMS.items()):
            if key not in split:
                raise ValueError(f"{path}[{part!r}]: no key {key!r}; expected 'audio', 'vision', "
                                 "'text', 'classification_labels'")
            x = np.nan_to_num(np.asarray(split[key], dtype=np.float32), nan=0.0, posinf=0.0,
                              neginf=0.0)
            want = None if dims is None else dims[m]
            if x.ndim != 3 or (want is not None and x.shape[2] != want):
                raise ValueError(f"{path}[{part!r}][{key!r}]: shape {x.shape}; expected "
                                 f"[N, 50, {want if want is not None else 'D'}]")
            feats[mod] = torch.from_numpy(x)
        if "classification_labels" not in split:
            raise ValueError(f"{path}[{part!r}]: no key 'classification_labels'")
        y = np.asarray(split["classification_labels"]).reshape(-1)
        y = np.rint(y).astype(np.int64)
        y = y + 1 if len(y) and y.min() < 0 else y
        if len(y) and (y.min() < 0 or y.max() > 2):
            raise ValueError(f"{path}[{part!r}]['classification_labels']: values in "
                             f"[{y.min()}, {y.max()}]; expected 3 classes 0, 1, 2 (or -1, 0, 1)")
        sizes = {k: v.shape[0] for k, v in feats.items()} | {"labels": len(y)}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"{path}[{part!r}]: sample counts {sizes} differ; expected one per key")
        ids = [str(i) for i in split["id"]] if "id" in split else None
        parts.append(MultimodalData(feats, torch.from_numpy(y), 3, {}, ids))
    splits = Splits(*parts)
    return _normalise(splits) if normalise else splits


def load_named(config: Any, seed: int = 0) -> Splits:
    """The splits a :class:`~redcore_lite.config.DataConfig` names (a real dataset)."""
    name = config.name
    if name == "custom":  # your own .npz / CSV / Parquet / HDF5 folder (redcore_lite.custom_io)
        from .custom_io import load_custom

        return load_custom(config, seed)
    if name == "mfeat":
        return load_mfeat(tuple(config.views), seed, config.split, config.normalise)
    if name == "avdigits":
        return load_avdigits(tuple(config.modalities) or AVDIGITS_MODALITIES, config.holdout,
                             config.fold, config.sequences, seed, config.max_frames, config.normalise)
    if name in MMIN_FOLDS or name == "mosei":
        if not config.root:
            what = ("the feature root holding A/, V/, L/" if name in MMIN_FOLDS
                    else "the path of aligned_50.pkl")
            raise ValueError(f"data.root: empty for data.name={name!r}; allowed: {what}")
        if name == "mosei":
            return load_mosei(config.root, normalise=config.normalise)
        return load_mmin(config.root, config.fold, name, target_root=config.target_root or None,
                         max_frames=config.max_frames, normalise=config.normalise)
    raise ValueError(f"data.name: got {name!r}; allowed: " + ", ".join(map(repr, DATASETS)))


# ---------------------------------------------------------------- the registry's built-in datasets


@dataclass(frozen=True)
class SyntheticData:
    """``synthetic``: a planted class signal (:func:`~redcore_lite.data.make_synthetic`)."""

    num_samples: int = 1200
    num_classes: int = 4
    dims: tuple[int, ...] = (24, 24, 24)
    snr: tuple[float, ...] = (1.0, 1.0, 1.0)
    seq_len: int = 0
    factors: tuple[int, ...] = ()
    factor_snr: float = 1.0
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    normalise: bool = True


@dataclass(frozen=True)
class MfeatData:
    """``mfeat``: UCI multiple features (shipped)."""

    name: str = "mfeat"
    views: tuple[str, ...] = ("fou", "kar", "pix")
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    normalise: bool = True


@dataclass(frozen=True)
class AVDigitsData:
    """``avdigits``: spoken and written digits (shipped)."""

    name: str = "avdigits"
    modalities: tuple[str, ...] = ()
    holdout: str = "speakers"
    fold: int = 1
    sequences: bool = False
    max_frames: int = 0
    normalise: bool = True


@dataclass(frozen=True)
class MMINData:
    """``iemocap`` / ``msp``: the release's feature files (MMIN layout)."""

    name: str = "iemocap"
    root: str = ""
    target_root: str = ""
    fold: int = 1
    max_frames: int = 0
    normalise: bool = True


@dataclass(frozen=True)
class MoseiData:
    """``mosei``: CMU-MOSEI aligned_50.pkl."""

    name: str = "mosei"
    root: str = ""
    normalise: bool = True


@dataclass(frozen=True)
class CustomData:
    """``custom``: your own .npz / CSV / Parquet / HDF5 folder (:mod:`redcore_lite.custom_io`)."""

    path: str = ""
    modalities: tuple[str, ...] = ()
    label: str = "label"
    split_column: str = ""
    id_column: str = ""
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    normalise: bool = True


def _load_synthetic(cfg: SyntheticData, seed: int) -> Splits:
    for key, value, least in (("num_samples", cfg.num_samples, 1), ("num_classes", cfg.num_classes, 2),
                              ("seq_len", cfg.seq_len, 0)):
        if value < least:
            raise ValueError(f"data.{key}: got {value}; allowed: an integer >= {least}")
    data = make_synthetic(cfg.num_samples, cfg.dims, cfg.num_classes, cfg.snr, cfg.seq_len,
                          seed=seed, factors=cfg.factors or None, factor_snr=cfg.factor_snr)
    splits = stratified_split(data, cfg.split, seed=seed)
    return _normalise(splits) if cfg.normalise else splits


def _load_named(cfg: Any, seed: int) -> Splits:
    return load_named(cfg, seed)  # reads the fields its dataset's config names


def _load_custom(cfg: CustomData, seed: int) -> Splits:
    from .custom_io import load_custom

    return load_custom(cfg, seed)


def _register_builtins() -> None:
    for name, cfg, loader, what in (
            ("synthetic", SyntheticData, _load_synthetic, SyntheticData.__doc__),
            ("mfeat", MfeatData, _load_named, MfeatData.__doc__),
            ("avdigits", AVDigitsData, _load_named, AVDigitsData.__doc__),
            ("iemocap", MMINData, _load_named, MMINData.__doc__),
            ("msp", MMINData, _load_named, MMINData.__doc__),
            ("mosei", MoseiData, _load_named, MoseiData.__doc__),
            ("custom", CustomData, _load_custom, CustomData.__doc__)):
        _register_builtin(DatasetSpec(name, cfg, loader, what or "", builtin=True))


_register_builtins()
