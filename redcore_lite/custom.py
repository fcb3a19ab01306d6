"""Your own data: arrays and tables with holes as :class:`~redcore_lite.data.MultimodalData`.

A researcher's data is often incomplete by itself: some recordings have no video, some no
transcript. :func:`from_arrays` and :func:`from_frame` turn such data into
:class:`~redcore_lite.data.MultimodalData` whose ``mask`` is the *observed* availability (a
modality is absent in a row where all its values are NaN), check it with errors that name the
row and the columns, and store absent rows as zeros. :func:`split_by` and :func:`split_data` cut
it into train / val / test (a split column, or a seeded stratified split). File formats
(``.npz``, CSV / Parquet, an HDF5 folder) are read by :mod:`redcore_lite.custom_io`.
Also available as ``rc.data.from_arrays``, ``rc.data.from_frame`` and ``rc.data.split_by``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .data import MultimodalData, Splits, stratified_split

__all__ = ["from_arrays", "from_frame", "split_by", "split_data", "SPLIT_NAMES"]


def _rows_text(rows: Sequence[int], ids: Sequence[str] | None) -> str:
    """``row 3 (id 'a')`` or ``rows [3, 5, 9, ...] (ids [...])`` for error messages."""
    rows = list(rows)
    shown = rows[:5] + (["..."] if len(rows) > 5 else [])
    if len(rows) == 1:
        return f"row {rows[0]}" + ("" if ids is None else f" (id {ids[rows[0]]!r})")
    return f"rows {shown}" + ("" if ids is None else f" (ids {[ids[r] for r in rows[:5]]})")


def _labels(labels: Any, num_classes: int | None, classes: Sequence[str] | None
            ) -> tuple[torch.Tensor, int, tuple[str, ...] | None]:
    """Labels ``[N]`` long, C and the class names: integers are kept, anything else (strings)
    is mapped to 0..C-1 in sorted order (or in the order of ``classes``)."""
    arr = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if arr.ndim != 1:
        raise ValueError(f"labels: got shape {arr.shape}; allowed: one label per sample [N]")
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(np.isnan(arr))
        if len(bad):
            raise ValueError(f"labels: {_rows_text(bad.tolist(), None)} have no label (NaN); "
                             "allowed: a label for every sample")
        if not np.all(arr == np.round(arr)):
            raise ValueError("labels: got non-integer numbers; allowed: integers 0..C-1 or class "
                             "names (strings)")
        arr = arr.astype(np.int64)
    if arr.dtype.kind in "iub":
        y = arr.astype(np.int64)
        if len(y) and y.min() < 0:
            raise ValueError(f"labels: got values in [{y.min()}, {y.max()}]; allowed: integers "
                             ">= 0 (or class names)")
        c = num_classes if num_classes is not None else (
            len(classes) if classes is not None else int(y.max(initial=-1)) + 1)
        if len(y) and y.max() >= c:
            raise ValueError(f"labels: got values in [{y.min()}, {y.max()}]; allowed: integers in "
                             f"[0, {c - 1}] (num_classes={c})")
        if num_classes is None and classes is None and len(y):
            absent = sorted(set(range(c)) - set(np.unique(y).tolist()))
            if absent:
                raise ValueError(f"labels: got integers in [0, {c - 1}] but class(es) "
                                 f"{absent[:8]} have no sample; allowed: integers 0..C-1 with "
                                 "every class present (or give num_classes, or class names)")
        if classes is not None and len(classes) != c:
            raise ValueError(f"classes: got {len(classes)} names; allowed: one per class ({c})")
        return torch.from_numpy(y), c, None if classes is None else tuple(map(str, classes))
    missing = [i for i, v in enumerate(arr.tolist()) if v is None or v != v]  # None or NaN
    if missing:
        raise ValueError(f"labels: {_rows_text(missing, None)} have no label; allowed: a label "
                         "for every sample")
    text = [str(v) for v in arr.tolist()]
    names = tuple(map(str, classes)) if classes is not None else tuple(sorted(set(text)))
    unknown = sorted(set(text) - set(names))
    if unknown:
        raise ValueError(f"labels: got {unknown[:5]} not in classes {list(names)}; allowed: one "
                         "of the class names")
    index = {name: c for c, name in enumerate(names)}
    c = num_classes if num_classes is not None else len(names)
    if c != len(names):
        raise ValueError(f"num_classes: got {c} for {len(names)} class names {list(names)}")
    return torch.tensor([index[t] for t in text], dtype=torch.long), c, names


def _rows_present(x: np.ndarray, mod: str, ids: Sequence[str] | None,
                  frames: np.ndarray | None) -> np.ndarray:
    """``[N]`` bool: rows with no NaN (present); an all-NaN row is absent; partly NaN: error."""
    nan = np.isnan(x)
    if x.ndim == 3:
        valid = (np.ones(x.shape[:2], bool) if frames is None
                 else np.arange(x.shape[1])[None, :] < frames[:, None])
        nan = nan & valid[..., None]
        count, total = nan.sum((1, 2)), valid.sum(1) * x.shape[2]
    else:
        count, total = nan.sum(1), np.full(len(x), x.shape[1])
    partial = np.flatnonzero((count > 0) & (count < total))
    if len(partial):
        row = int(partial[0])
        cols = np.flatnonzero(nan[row].reshape(-1, x.shape[-1]).any(0)).tolist()
        raise ValueError(f"features[{mod!r}]: {_rows_text([row], ids)} has NaN in column(s) "
                         f"{cols[:8]}{' ...' if len(cols) > 8 else ''} of {x.shape[-1]} but not in "
                         f"all ({len(partial)} such row(s)); allowed: a modality is either present "
                         "in a row (every value finite) or absent (every value NaN)")
    return count == 0


def _as_float(value: Any, mod: str, ids: Sequence[str] | None) -> np.ndarray:
    """``value`` as a float32 array; a value that is not a number is a ValueError naming the
    modality, the sample and the value (not numpy's "could not convert string to float")."""
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        pass
    try:
        arr = np.asarray(value, dtype=object)
    except (TypeError, ValueError) as err:  # ragged nesting
        raise ValueError(f"features[{mod!r}]: got an array numpy cannot read ({str(err)[:80]}); "
                         "allowed: an [N, D] or [N, T, D] array of numbers") from None
    rows = arr.reshape(len(arr), -1) if arr.ndim else arr.reshape(1, 1)
    for i, row in enumerate(rows):
        for v in row.tolist():
            try:
                np.float32(v)
            except (TypeError, ValueError, OverflowError):
                raise ValueError(f"features[{mod!r}]: {_rows_text([i], ids)} holds "
                                 f"{str(v)[:40]!r} ({type(v).__name__}); allowed: numbers (NaN "
                                 "for an absent modality)") from None
    raise ValueError(f"features[{mod!r}]: got an array of {arr.dtype} numpy cannot convert; "
                     "allowed: an [N, D] or [N, T, D] array of numbers")


def _sequence_list(items: Sequence[Any], mod: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A list of ``[T_i, D]`` arrays (None or empty = absent) padded: x, lengths, present."""
    if len(items) != n:
        raise ValueError(f"features[{mod!r}]: got a list of {len(items)} sequences; allowed: one "
                         f"[T_i, D] array (or None) per sample ({n})")
    arrs = [None if v is None else np.asarray(v, dtype=np.float32) for v in items]
    dims = {a.shape[1] for a in arrs if a is not None and a.ndim == 2}
    bad = [i for i, a in enumerate(arrs) if a is not None and a.ndim != 2]
    if bad or len(dims) > 1:
        raise ValueError(f"features[{mod!r}]: sequences of shapes "
                         f"{sorted({a.shape for a in arrs if a is not None}, key=str)[:4]}; allowed: "
                         "[T_i, D] arrays with one feature dim D")
    dim = dims.pop() if dims else 1
    lengths = np.array([0 if a is None else len(a) for a in arrs])
    x = np.full((n, max(1, lengths.max(initial=1)), dim), np.nan, np.float32)
    for i, a in enumerate(arrs):
        if a is not None and len(a):
            x[i, :len(a)] = a
    return x, lengths, lengths > 0


def _content_digest(feats: Mapping[str, torch.Tensor], y: torch.Tensor, c: int,
                    lens: Mapping[str, torch.Tensor], ids: Sequence[str] | None,
                    mask: torch.Tensor | None, names: Sequence[str] | None) -> str:
    """sha256 of data built by :func:`from_arrays` (modality names, values, labels, C, lengths,
    ids, mask, class names): the same arrays give the same digest on every machine."""
    import hashlib

    h: Any = hashlib.sha256()  # (numpy arrays are buffers; the stubs disagree)
    h.update(repr((list(feats), c, None if ids is None else len(ids), names)).encode())
    for t in [*feats.values(), y, *lens.values(), mask]:
        if t is not None:
            t = t.contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)};".encode())
            raw = (t.to(torch.uint8) if t.dtype == torch.bool else t).reshape(-1).view(torch.uint8)
            h.update(raw.numpy())
    for v in ids or ():
        h.update(v.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def from_arrays(features: Mapping[str, Any], labels: Any, *, mask: Any = None,
                ids: Sequence[Any] | None = None, num_classes: int | None = None,
                lengths: Mapping[str, Any] | None = None, classes: Sequence[str] | None = None,
                source: Mapping[str, Any] | None = None) -> MultimodalData:
    """Your own arrays as checked :class:`MultimodalData`, with their holes as the observed mask.

    Args:
        features: modality name -> ``[N, D]`` (vectors), ``[N, T, D]`` (zero-padded frame
            sequences, with ``lengths``), or a list of N ``[T_i, D]`` arrays (sequences of any
            length; ``None`` or an empty array is an absent modality). Modality order = dict order.
        labels: ``[N]`` integers 0..C-1, or class names (any strings), mapped to 0..C-1 in sorted
            order (or the order of ``classes``) and recorded in ``classes``.
        mask: ``[N, M]`` bool (True = present; or name -> ``[N]``). Rows it marks absent may hold
            anything (NaN); rows it marks present must be finite. Default: a modality is absent
            in a row where all its values are NaN; a row that is only partly NaN is an error.
        ids: N sample ids (used in error messages and kept with the data).
        num_classes: C (default: the largest label + 1, or the number of class names).
        lengths: modality -> ``[N]`` valid frames of padded ``[N, T, D]`` sequences.
        classes: class names, in label order.
        source: where the data came from (kept in ``data.source``; loaders record path and
            sha256; default ``{"name": "custom", "format": "arrays"}``).
    Returns:
        :class:`MultimodalData`; absent rows stored as zeros; ``mask`` None when nothing is missing.
    """
    if not isinstance(features, Mapping) or len(features) < 2:
        raise ValueError(f"features: got {type(features).__name__} with "
                         f"{len(features) if isinstance(features, Mapping) else '?'} entries; "
                         "allowed: a dict of at least 2 modalities name -> array")
    y, c, names = _labels(labels, num_classes, classes)
    n = len(y)
    if n == 0:  # (found by generated cases: a numpy reshape error with a mask)
        raise ValueError("labels: got 0 samples; allowed: at least one sample (one label per row)")
    id_list = None if ids is None else [str(v) for v in ids]
    if id_list is not None and (len(id_list) != n or len(set(id_list)) != n):
        raise ValueError(f"ids: got {len(id_list)} ids ({len(set(id_list))} distinct); allowed: "
                         f"one distinct id per sample ({n})")
    given = None
    if mask is not None:
        if isinstance(mask, Mapping):
            if set(mask) != set(features):
                raise ValueError(f"mask: got modalities {sorted(mask)}; allowed: {list(features)}")
            mask = np.stack([np.asarray(mask[k]) for k in features], 1)
        given = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask)
        if given.shape != (n, len(features)) or given.dtype.kind not in "biuf":
            raise ValueError(f"mask: got shape {given.shape} dtype {given.dtype}; allowed: [{n}, "
                             f"{len(features)}] bool (True = present), columns {list(features)}")
        given = given.astype(bool)
    feats, lens, present = {}, {}, []
    for m, (mod, value) in enumerate(features.items()):
        frames = None
        if isinstance(value, (list, tuple)):
            x, frames, nonempty = _sequence_list(value, mod, n)
        else:
            x = _as_float(value.cpu() if isinstance(value, torch.Tensor) else value, mod, id_list)
            if x.ndim not in (2, 3) or len(x) != n:
                raise ValueError(f"features[{mod!r}]: got shape {x.shape}; allowed: [{n}, D], "
                                 f"[{n}, T, D] or a list of {n} [T_i, D] arrays ({n} labels)")
            nonempty = np.ones(n, bool)
            if lengths is not None and mod in lengths:
                frames = np.asarray(lengths[mod]).astype(np.int64)
                if x.ndim != 3 or frames.shape != (n,) or frames.min(initial=1) < 0 or \
                        frames.max(initial=0) > x.shape[1]:
                    raise ValueError(f"lengths[{mod!r}]: allowed: [{n}] integers in [0, T] for "
                                     f"[N, T, D] features (got features {x.shape})")
                nonempty = frames > 0
        if np.isinf(x).any():
            row = int(np.flatnonzero(np.isinf(x.reshape(n, -1)).any(1))[0])
            raise ValueError(f"features[{mod!r}]: {_rows_text([row], id_list)} holds an infinite "
                             "value; allowed: finite numbers, or NaN for an absent modality")
        if given is None:
            ok = _rows_present(x, mod, id_list, frames) & nonempty
        else:
            ok = given[:, m]
            bad = np.flatnonzero(ok & (np.isnan(x.reshape(n, -1)).any(1) | ~nonempty))
            if len(bad):
                raise ValueError(f"features[{mod!r}]: {_rows_text(bad.tolist(), id_list)}: NaN or "
                                 "no frames where the mask says present; allowed: finite values "
                                 "in every present row (mark the row absent in the mask)")
        if not ok.any():
            raise ValueError(f"features[{mod!r}]: no sample has this modality (every row absent); "
                             "allowed: at least one present row (drop the modality)")
        x = np.where(ok.reshape(-1, *([1] * (x.ndim - 1))), np.nan_to_num(x, nan=0.0), 0.0)
        feats[mod] = torch.from_numpy(x.astype(np.float32))
        if x.ndim == 3:
            full = np.full(n, x.shape[1]) if frames is None else frames
            lens[mod] = torch.from_numpy(np.where(ok, np.maximum(full, 1), 1).astype(np.int64))
        present.append(ok)
    avail = np.stack(present, 1)
    empty = np.flatnonzero(~avail.any(1))
    if len(empty):
        raise ValueError(f"features: {_rows_text(empty.tolist(), id_list)} have no modality "
                         f"present ({len(empty)} sample(s)); allowed: at least one present "
                         "modality per sample (drop such samples)")
    mask_t = None if avail.all() else torch.from_numpy(avail)
    where = dict(source or {"name": "custom", "format": "arrays"})
    if "sha256" not in where:  # arrays without a file: the digest of their content (what a resume checks)
        where["sha256"] = _content_digest(feats, y, c, lens, id_list, mask_t, names)
    out = MultimodalData(feats, y, c, lens, id_list, mask_t, names, where)
    out.validate("data")
    return out


def from_frame(frame: Any, modalities: Mapping[str, Sequence[str] | str], label: str, *,
               id_column: str | None = None, num_classes: int | None = None,
               classes: Sequence[str] | None = None,
               source: Mapping[str, Any] | None = None) -> MultimodalData:
    """A table (pandas DataFrame, one row per sample) as :class:`MultimodalData`.

    Args:
        frame: the table. modalities: name -> its columns (a list, or a comma-separated string;
            shell-style globs such as ``"fou_*"`` match columns in table order).
        label: the label column (integers or class names). id_column: a column of sample ids
            (default: the table's index).
    A modality is absent in a row when all its columns are NaN there; a row with only some of them
    NaN is an error naming the row and the columns. Other arguments as in :func:`from_arrays`.
    """
    import fnmatch

    columns = [str(col) for col in frame.columns]
    if label not in columns:
        raise ValueError(f"label: column {label!r} is not in the table; allowed: one of "
                         f"{columns[:12]}{' ...' if len(columns) > 12 else ''}")
    if id_column and id_column not in columns:
        raise ValueError(f"id_column: column {id_column!r} is not in the table")
    if not isinstance(modalities, Mapping) or len(modalities) < 2:
        raise ValueError(f"modalities: got {modalities!r}; allowed: a dict of at least 2 "
                         "modalities name -> columns")
    feats = {}
    for mod, spec in modalities.items():
        patterns = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec)
                    if str(p).strip()]
        cols: list[str] = []
        for pat in patterns:
            hit = [col for col in columns if fnmatch.fnmatchcase(col, pat)]
            if not hit:
                raise ValueError(f"modalities[{mod!r}]: column {pat!r} matches no column of the "
                                 f"table; allowed: column names or globs of {columns[:12]}"
                                 f"{' ...' if len(columns) > 12 else ''}")
            cols += [col for col in hit if col not in cols]
        if not cols or label in cols or id_column in cols:
            raise ValueError(f"modalities[{mod!r}]: got columns {cols[:8]}; allowed: one or more "
                             "feature columns (not the label or id column)")
        block = frame[cols]
        text = [col for col in cols if block[col].dtype.kind not in "biuf"]
        if text:
            raise ValueError(f"modalities[{mod!r}]: column(s) {text[:5]} are not numeric; "
                             "allowed: numeric feature columns (NaN for an absent modality)")
        feats[mod] = block.to_numpy(dtype=np.float32, na_value=np.nan)
    ids = (frame[id_column] if id_column else frame.index).astype(str).tolist()
    return from_arrays(feats, frame[label].to_numpy(), ids=ids, num_classes=num_classes,
                       classes=classes, source=source or {"name": "custom", "format": "frame",
                                                          "label": label})


SPLIT_NAMES = ("train", "val", "test")


def split_by(data: MultimodalData, assignment: Sequence[Any]) -> Splits:
    """Splits given per sample (``"train"``, ``"val"`` or ``"test"``), e.g. a table's split column."""
    values = [str(v).strip().lower() for v in assignment]
    if len(values) != len(data):
        raise ValueError(f"split: got {len(values)} values; allowed: one per sample ({len(data)})")
    bad = sorted(set(values) - set(SPLIT_NAMES))
    if bad:
        raise ValueError(f"split: got values {bad[:5]}; allowed: " + ", ".join(map(repr, SPLIT_NAMES)))
    parts = [data.subset(torch.tensor([i for i, v in enumerate(values) if v == name],
                                      dtype=torch.long)) for name in SPLIT_NAMES]
    return Splits(*parts)


def split_data(data: MultimodalData, fractions: Sequence[float] = (0.7, 0.15, 0.15),
               seed: int = 0, split: Sequence[Any] | None = None) -> Splits:
    """Train / val / test of your own data: by ``split`` (one of train/val/test per sample) if
    given, else a seeded stratified split that refuses a class too small to reach every split
    (fewer than ``ceil(1 / min(fractions))`` samples)."""
    if split is not None:
        return split_by(data, split)
    if len(fractions) != 3 or min(fractions) <= 0:
        raise ValueError(f"fractions: got {list(fractions)}; allowed: three positive numbers "
                         "(train, val, test) summing to 1")
    need = math.ceil(1.0 / min(fractions) - 1e-9)
    return stratified_split(data, fractions, seed=seed, min_per_class=need)
