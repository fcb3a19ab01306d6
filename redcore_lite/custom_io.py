"""Your own data from files: ``.npz``, CSV / Parquet tables, an HDF5 folder; and a worked example.

Every reader returns the data (:class:`~redcore_lite.data.MultimodalData`, its holes as the
observed mask, checked by :func:`~redcore_lite.custom.from_arrays`) and the split column if the
file has one; :func:`load_custom` adds the split and the normalisation, as ``data.name="custom"``
does (``redcore-lite train custom --data FILE ...``). Formats:

- ``.npz``: one array per modality (``[N, D]`` or padded ``[N, T, D]`` with an optional
  ``lengths_<name>`` ``[N]``), ``labels`` ``[N]`` (integers or strings), optionally ``mask``
  ``[N, M]`` bool (columns in the order of the modality arrays in the file, or of a
  ``modalities`` array), ``ids`` and ``split``. All-NaN rows are absent. No pickled objects.
- CSV / Parquet: one row per sample; a mapping modality -> columns (globs allowed), a label
  column, optional id and split columns. Parquet needs pyarrow (``pip install pyarrow``).
- HDF5 folder (the MMIN layout): ``labels.csv`` (columns ``id``, the label column, optional
  split column) and one ``NAME.h5`` per modality with one dataset per sample id (``[D]`` or
  ``[frames, D]``). An id missing from a modality's file is an absent modality.

:func:`mfeat_holes` builds the workbook's example: the shipped mfeat digits as a table whose
views are absent where their extraction would plausibly fail (a documented, data-tied rule).
"""
from __future__ import annotations

import hashlib
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .custom import from_arrays, from_frame, split_data
from .data import MultimodalData, Splits, normalise as _normalise
from .shipped import mfeat_data

__all__ = ["file_digest", "parse_modalities", "read_npz", "read_table", "read_hdf5_folder",
           "read_custom", "load_custom", "mfeat_holes", "MFEAT_HOLES_RULE", "DIGIT_NAMES"]

_RESERVED_NPZ = ("labels", "mask", "ids", "split", "modalities")


def file_digest(path: str | Path) -> str:
    """sha256 of a file; of a folder, of every file's name and sha256 (sorted by name)."""
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.iterdir() if p.is_file()):
            h.update(f"{f.name}\0{file_digest(f)}\n".encode())
        return h.hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _source(path: Path, fmt: str, **more: Any) -> dict[str, Any]:
    return {"name": "custom", "format": fmt, "path": str(path.resolve()),
            "sha256": file_digest(path), **more}


def parse_modalities(specs: Sequence[str] | Mapping[str, Any], need_columns: bool
                     ) -> dict[str, list[str]]:
    """``("A=c1,c2", "V=v_*")`` -> ``{"A": ["c1", "c2"], "V": ["v_*"]}`` (names only: empty lists).

    Args:
        need_columns: tables need ``NAME=COLUMNS`` for every modality; ``.npz`` / HDF5 take names.
    """
    if isinstance(specs, Mapping):
        return {str(k): ([c.strip() for c in v.split(",")] if isinstance(v, str) else list(v))
                for k, v in specs.items()}
    out: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, cols = str(spec).partition("=")
        name = name.strip()
        columns = [c.strip() for c in cols.split(",") if c.strip()]
        if not name or name in out or (need_columns and not columns) or (sep and not columns):
            what = "NAME=col1,col2,... (globs allowed: NAME=prefix_*)" if need_columns else "NAME"
            raise ValueError(f"modalities: got {spec!r}; allowed: one distinct {what} per modality")
        out[name] = columns
    return out


def _check_file(path: str | Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not str(path) or not path.exists():
        raise ValueError(f"data.path: {str(path)!r} does not exist; expected {what}")
    return path


def read_npz(path: str | Path, modalities: Sequence[str] = (), split_key: str = "split"
             ) -> tuple[MultimodalData, list | None]:
    """An ``.npz`` of your own (see the module docstring); ``modalities``: names to keep;
    ``split_key``: the array of train/val/test per sample (``data.split_column``; default
    ``split``), never taken as a modality."""
    path = _check_file(path, "an .npz file")
    try:
        return _read_npz(path, modalities, split_key or "split")
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{path}: cannot be read as .npz (truncated, damaged or another kind "
                         f"of file; {type(err).__name__}: {err}); expected an .npz file (numpy "
                         "savez)") from None


def _read_npz(path: Path, modalities: Sequence[str], split_key: str = "split"
              ) -> tuple[MultimodalData, list | None]:
    try:
        npz = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"{path}: cannot be read without unpickling ({err}); allowed: numeric "
                         "or string arrays only (no Python objects)") from None
    with npz:
        keys = list(npz.files)
        if "labels" not in keys:
            raise ValueError(f"{path}: no array 'labels'; expected one array per modality, "
                             f"'labels' [N] and optionally 'mask', 'ids', 'split' (got {keys})")
        if split_key != "split" and split_key not in keys:
            raise ValueError(f"data.split_column: {split_key!r} given but {path} has no array "
                             f"{split_key!r} (arrays: {keys[:12]})")
        reserved = (*_RESERVED_NPZ, split_key)
        order = ([str(v) for v in npz["modalities"]] if "modalities" in keys else
                 [k for k in keys if k not in reserved and not k.startswith("lengths_")])
        missing = [k for k in order if k not in keys]
        if missing or len(order) < 2:
            raise ValueError(f"{path}: modalities {order} (missing arrays {missing}); expected at "
                             "least 2 modality arrays")
        try:
            arrays = {k: npz[k] for k in order}
            labels = npz["labels"]
            mask = npz["mask"] if "mask" in keys else None
            ids = npz["ids"].astype(str).tolist() if "ids" in keys else None
            split = npz[split_key].astype(str).tolist() if split_key in keys else None
            lengths = {k: npz[f"lengths_{k}"] for k in order if f"lengths_{k}" in keys}
        except ValueError as err:
            raise ValueError(f"{path}: holds Python objects ({err}); allowed: numeric or string "
                             "arrays (pad sequences to [N, T, D] with lengths_NAME)") from None
    keep = list(modalities) or order
    unknown = [k for k in keep if k not in order]
    if unknown:
        raise ValueError(f"data.modalities: got {unknown}; allowed: modalities of {path}: {order}")
    for k in keep:
        _check_npz_modality(path, k, arrays[k], len(labels))
    if mask is not None:
        if mask.ndim != 2 or mask.shape[1] != len(order):
            raise ValueError(f"{path}['mask']: got shape {mask.shape}; expected [N, {len(order)}] "
                             f"bool, one column per modality {order}")
        mask = mask[:, [order.index(k) for k in keep]]
    try:
        data = from_arrays({k: arrays[k] for k in keep}, labels, mask=mask, ids=ids,
                           lengths={k: v for k, v in lengths.items() if k in keep},
                           source=_source(path, "npz"))
    except ValueError as err:  # from_arrays names the array and the row; add the file
        raise ValueError(f"{path}: {err}") from None
    return data, split


_SPLIT_VALUES = {"train", "val", "test"}


def _check_npz_modality(path: Path, key: str, x: np.ndarray, n: int) -> None:
    """A modality array of an .npz: numbers, ``[N, D]`` or ``[N, T, D]``. A per-sample column
    (split names, ids, strings) taken for a modality is an error naming the array and what to
    call it; strings name the first sample that holds one."""
    if x.dtype.kind in "USO":
        values = {str(v).strip().lower() for v in np.asarray(x).reshape(-1)[:10_000].tolist()}
        if x.ndim == 1 and values and values <= _SPLIT_VALUES:
            raise ValueError(f"{path}[{key!r}]: holds split names {sorted(values)}, read as a "
                             f"modality; allowed: name the array 'split', or give "
                             f"data.split_column={key!r} (--split-column {key})")
        flat = np.asarray(x).reshape(len(x), -1) if x.ndim else x.reshape(1, 1)
        row = next((i for i, r in enumerate(flat) if not _numeric(r)), 0)
        bad = next((v for v in flat[row].tolist() if not _numeric(np.asarray([v]))), flat[row][0])
        raise ValueError(f"{path}[{key!r}]: modality {key!r}, sample {row}: holds "
                         f"{str(bad)[:40]!r} (dtype {x.dtype}); allowed: numbers (NaN for an "
                         "absent modality)")
    if x.ndim not in (2, 3):
        raise ValueError(f"{path}[{key!r}]: modality {key!r} has shape {x.shape}; allowed: [N, "
                         "D] or [N, T, D] (a per-sample column? name it 'labels', 'ids' or "
                         "'split', or give data.split_column)")


def _numeric(values: np.ndarray) -> bool:
    try:
        np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def _read_frame(path: Path) -> pd.DataFrame:
    """The table in ``path``; a file that is not a readable table is a ValueError naming it."""
    try:
        return _read_frame_as(path)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as err:
        raise ValueError(f"{path}: cannot be read as a table ({type(err).__name__}: "
                         f"{' '.join(str(err).split())[:160]}); expected a CSV (UTF-8 text, a "
                         "header row) or Parquet file") from None


def _read_frame_as(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except ImportError as err:
            raise ValueError(f"{path}: reading Parquet needs pyarrow ({err}); allowed: install "
                             "it (pip install pyarrow, or redcore_lite[parquet]) or save the "
                             "table as CSV") from None
    if suffix in (".csv", ".gz", ".tsv", ".txt"):
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    raise ValueError(f"data.path: {str(path)!r} has suffix {suffix!r}; allowed: .npz, .csv, "
                     ".tsv, .parquet, or a folder of .h5 files with labels.csv")


def read_table(path: str | Path, modalities: Sequence[str] | Mapping[str, Any], label: str = "label",
               *, id_column: str = "", split_column: str = ""
               ) -> tuple[MultimodalData, list | None]:
    """A CSV / Parquet table: ``modalities`` maps each name to its columns (``"A=c1,c2"``)."""
    path = _check_file(path, "a CSV or Parquet table")
    frame = _read_frame(path)
    mods = parse_modalities(modalities, need_columns=True)
    if split_column and split_column not in frame.columns:
        raise ValueError(f"data.split_column: column {split_column!r} is not in {path}")
    data = from_frame(frame, mods, label, id_column=id_column or None,
                      source=_source(path, "table", label=label, modalities=mods))
    return data, None if not split_column else frame[split_column].astype(str).tolist()


def read_hdf5_folder(path: str | Path, modalities: Sequence[str] = (), label: str = "label",
                     split_column: str = "") -> tuple[MultimodalData, list | None]:
    """A folder with ``labels.csv`` and one ``NAME.h5`` per modality (one dataset per id)."""
    folder = _check_file(path, "a folder with labels.csv and NAME.h5 files")
    try:
        import h5py  # noqa: F401  (read by _h5_items)
    except ImportError:
        raise ImportError("HDF5 folders need h5py: pip install 'redcore_lite[data]'") from None
    table_path = folder / "labels.csv"
    if not table_path.is_file():
        state = "a folder, not a file" if table_path.is_dir() else "no such file"
        raise ValueError(f"{table_path}: {state}; expected columns 'id' and {label!r} "
                         "(one row per sample)")
    table = _read_frame_as_csv(table_path)
    for col in ("id", label, split_column):
        if col and col not in table.columns:
            raise ValueError(f"{table_path}: no column {col!r}; expected 'id', the label column "
                             f"{label!r}{' and ' + repr(split_column) if split_column else ''}")
    ids = table["id"].astype(str).tolist()
    if len(set(ids)) != len(ids):
        raise ValueError(f"{table_path}: ids are not distinct; expected one row per sample id")
    files = {p.stem: p for p in sorted(folder.glob("*.h5"))}
    names = list(modalities) or list(files)
    missing = [n for n in names if n not in files]
    if missing or len(names) < 2:
        raise ValueError(f"{folder}: modality file(s) {[f'{n}.h5' for n in missing]} missing "
                         f"(found {sorted(files)}); expected one NAME.h5 per modality, at least 2")
    row = {uid: i for i, uid in enumerate(ids)}
    feats: dict[str, Any] = {}
    for name in names:
        items = _h5_items(files[name], row, table_path)
        shapes = {a.ndim for a in items if a is not None}
        if shapes - {1, 2}:
            raise ValueError(f"{files[name]}: datasets of rank {sorted(shapes)}; expected [D] or "
                             "[frames, D] per id")
        if shapes == {1}:  # vectors: absent ids become NaN rows
            dims = {a.shape[0] for a in items if a is not None}
            if len(dims) > 1:
                raise ValueError(f"{files[name]}: feature dims {sorted(dims)}; expected one D")
            dim = dims.pop() if dims else 1
            feats[name] = np.stack([a if a is not None else np.full(dim, np.nan, np.float32)
                                    for a in items])
        else:
            feats[name] = [a if a is None or a.ndim == 2 else a[None] for a in items]
    data = from_arrays(feats, table[label].to_numpy(), ids=ids,
                       source=_source(folder, "hdf5-folder"))
    return data, None if not split_column else table[split_column].astype(str).tolist()


def _read_frame_as_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={"id": str})
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as err:
        raise ValueError(f"{path}: cannot be read as a table ({type(err).__name__}: "
                         f"{' '.join(str(err).split())[:160]}); expected a CSV with columns "
                         "'id' and the label column") from None


def _h5_items(path: Path, row: dict[str, int], table_path: Path) -> list[Any]:
    """One array (or None) per row of labels.csv from the modality file ``path``."""
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: cannot be read as HDF5 (truncated, damaged or not HDF5: "
                         f"{' '.join(str(err).split())[:160]}); expected one dataset per sample "
                         "id") from None
    try:
        with h5:
            extra = sorted(set(h5.keys()) - set(row))
            if extra:
                raise ValueError(f"{path}: sample id(s) {extra[:5]} are not in "
                                 f"{table_path}; expected the ids of labels.csv (ids mismatch)")
            items: list[Any] = [None] * len(row)
            for uid in h5.keys():
                if not isinstance(h5[uid], h5py.Dataset):
                    raise ValueError(f"{path}[{uid!r}]: a group; expected one dataset per id")
                try:
                    items[row[uid]] = np.asarray(h5[uid][()], dtype=np.float32)
                except (TypeError, ValueError):
                    value = h5[uid][()]
                    raise ValueError(f"{path}[{uid!r}]: modality {path.stem!r}, sample id "
                                     f"{uid!r}: holds {str(value)[:40]!r} (dtype "
                                     f"{getattr(value, 'dtype', type(value).__name__)}); "
                                     "allowed: numeric datasets ([D] or [frames, D])") from None
    except (OSError, RuntimeError) as err:
        raise ValueError(f"{path}: cannot be read as HDF5 (damaged? {type(err).__name__}: "
                         f"{' '.join(str(err).split())[:160]}); expected one dataset per sample "
                         "id") from None
    return items


def read_custom(path: str | Path, modalities: Sequence[str] = (), label: str = "label",
                id_column: str = "", split_column: str = "") -> tuple[MultimodalData, list | None]:
    """Read ``path`` by its kind: a folder (HDF5), ``.npz``, or a CSV / Parquet table."""
    p = _check_file(path, "a .npz file, a CSV / Parquet table or an HDF5 folder")
    if p.is_dir():
        return read_hdf5_folder(p, [m.partition("=")[0] for m in modalities], label, split_column)
    if p.suffix.lower() == ".npz":
        data, split = read_npz(p, [m.partition("=")[0] for m in modalities], split_column)
        return data, split if not split_column else _npz_split(p, split, split_column)
    if not modalities:
        raise ValueError("data.modalities: empty for a table; allowed: NAME=col1,col2 per "
                         "modality (--modality NAME=COLUMNS on the command line)")
    return read_table(p, modalities, label, id_column=id_column, split_column=split_column)


def _npz_split(path: Path, split: list | None, column: str) -> list | None:
    if split is None:
        raise ValueError(f"data.split_column: {column!r} given but {path} has no array "
                         f"{column!r}")
    return split


def load_custom(config: Any, seed: int = 0) -> Splits:
    """The splits of ``data.name="custom"`` (a :class:`~redcore_lite.config.DataConfig`): read
    ``data.path``, split (the split column, or stratified with ``data.split`` and ``seed``) and
    z-score with training statistics if ``data.normalise``."""
    if not config.path:
        raise ValueError("data.path: empty for data.name='custom'; allowed: a .npz file, a CSV / "
                         "Parquet table or an HDF5 folder (--data on the command line)")
    data, split = read_custom(config.path, tuple(config.modalities), config.label,
                              config.id_column, config.split_column)
    splits = split_data(data, config.split, seed, split)
    return _normalise(splits) if config.normalise else splits


# ---------------------------------------------------------------- the workbook's example

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MFEAT_HOLES_RULE = {  # view -> (quality measure, threshold, why the view would be absent)
    "fou": ("ink", "< 640 black pixels", "thin strokes break the traced outer contour that the "
            "Fourier descriptors are computed from"),
    "kar": ("slant", "> 10 degrees", "the Karhunen-Loeve basis describes upright digits; a deskew "
            "check rejects strongly slanted ones"),
    "pix": ("saturation", "> 40% of the 2 x 3 windows fully black", "blotted scans saturate the "
            "pixel-average view, which a quality check discards"),
}


def _image_measures(pix: np.ndarray) -> pd.DataFrame:
    """Ink (black pixels), slant (degrees) and saturation of mfeat's ``pix`` view ``[N, 240]``.

    ``pix`` holds, per 2 x 3-pixel window of the 30 x 48 image (15 columns x 16 rows of windows),
    how many of its 6 pixels are black. Slant: the least-squares slope of each window-row's ink
    centroid (in pixels) against the row (in pixels), as an angle from the vertical.
    """
    pix = pix.astype(np.float64)
    grid = pix.reshape(-1, 16, 15)
    w = grid.sum(2)  # ink per window-row [N, 16]
    rows = np.arange(16.0)[None, :] * 3.0  # window-row centres in pixels
    cols = (grid * (np.arange(15.0) * 2.0)[None, None, :]).sum(2) / np.maximum(w, 1e-9)
    rm = (w * rows).sum(1) / w.sum(1)
    cm = (w * cols).sum(1) / w.sum(1)
    slope = (w * (rows - rm[:, None]) * (cols - cm[:, None])).sum(1) / (
        w * (rows - rm[:, None]) ** 2).sum(1)
    return pd.DataFrame({"ink": pix.sum(1), "slant": np.degrees(np.arctan(slope)),
                         "saturation": (pix == 6).mean(1)})


def mfeat_holes(views: Sequence[str] = ("fou", "kar", "pix"), path: str | Path | None = None
                ) -> pd.DataFrame:
    """The shipped mfeat digits as a table with naturally motivated holes (the workbook's example).

    A constructed illustration of a missingness mechanism, not a measurement of real failures:
    three image-quality measures are computed from each digit's pixel view, and a view is
    absent (its columns NaN) where its extraction would plausibly fail (:data:`MFEAT_HOLES_RULE`):
    ``fou`` when the digit has fewer than 640 black pixels (thin strokes), ``kar`` when it is
    slanted by more than 10 degrees, ``pix`` when more than 40% of its windows are fully black.
    Deterministic (no random draw). No digit loses all three (thin and blotted exclude each other).

    Args:
        views: modalities of the table, among fou, kar, pix (the views the rule covers).
        path: the mfeat ``.npz`` (default: the shipped one).
    Returns:
        One row per digit: ``id``, ``digit`` (a class name: "zero" ... "nine"), the measures
        ``ink``, ``slant``, ``saturation``, and ``VIEW_0 ... VIEW_{D-1}`` per view (NaN where absent).
    """
    bad = [v for v in views if v not in MFEAT_HOLES_RULE]
    if bad or len(views) < 2 or len(set(views)) != len(views):
        raise ValueError(f"views: got {list(views)}; allowed: two or three distinct of "
                         + ", ".join(MFEAT_HOLES_RULE))
    data = mfeat_data(tuple(dict.fromkeys(["pix", *views])), path)
    measures = _image_measures(data.features["pix"].numpy())
    absent = {"fou": measures["ink"] < 640, "kar": measures["slant"].abs() > 10.0,
              "pix": measures["saturation"] > 0.4}
    parts = [pd.DataFrame({"id": data.ids, "digit": [DIGIT_NAMES[c] for c in data.labels.tolist()]}),
             measures.round(4)]
    for v in views:
        x = data.features[v].numpy().astype(np.float64).copy()
        x[absent[v].to_numpy()] = np.nan
        parts.append(pd.DataFrame(x, columns=[f"{v}_{j}" for j in range(x.shape[1])]))
    return pd.concat(parts, axis=1)
