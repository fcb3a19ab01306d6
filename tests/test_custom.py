"""Your own data: from_arrays / from_frame / split_by, the file readers (.npz, CSV / Parquet, HDF5
folder) with a table of bad inputs, and the workbook's mfeat example."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

import redcore_lite as rc
from redcore_lite import custom_io

NAMES = ("cat", "dog", "emu")


def holey_arrays(n: int = 60, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Three modalities (A [n, 4], V [n, 3], L [n, 2]) with whole-row NaN holes, string labels.

    Rows i % 5 == 1 lack A, i % 4 == 2 lack V, i % 3 == 0 lack L, except where that would leave
    a row with nothing (none here: 1, 2, 0 mod 5, 4, 3 never all hold together for i < 60? they
    do at i = 6 mod 60 ... so L is kept where A and V are both absent).
    """
    rng = np.random.default_rng(seed)
    y = np.array([NAMES[i % 3] for i in range(n)])
    feats = {"A": rng.normal(size=(n, 4)), "V": rng.normal(size=(n, 3)), "L": rng.normal(size=(n, 2))}
    i = np.arange(n)
    no_a, no_v = i % 5 == 1, i % 4 == 2
    no_l = (i % 3 == 0) & ~(no_a & no_v)
    for name, rows in (("A", no_a), ("V", no_v), ("L", no_l)):
        feats[name][rows] = np.nan
    return feats, y


def holey_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    feats, y = holey_arrays(n, seed)
    cols = {f"{m}_{j}": x[:, j] for m, x in feats.items() for j in range(x.shape[1])}
    return pd.DataFrame({"sample": [f"s{i:03d}" for i in range(n)], "animal": y, **cols,
                         "split": ["train", "train", "train", "val", "test"] * (n // 5)})


MODS = {"A": "A_*", "V": "V_0,V_1,V_2", "L": ["L_0", "L_1"]}


# ---------------------------------------------------------------- from_arrays / from_frame


def test_from_arrays_holes_become_the_observed_mask_and_zeros():
    feats, y = holey_arrays()
    data = rc.from_arrays(feats, y)
    i = np.arange(60)
    want = np.stack([i % 5 != 1, i % 4 != 2, ~((i % 3 == 0) & ~((i % 5 == 1) & (i % 4 == 2)))], 1)
    assert torch.equal(data.mask, torch.from_numpy(want))
    assert data.classes == NAMES and data.labels.tolist() == [k % 3 for k in range(60)]
    assert data.num_classes == 3 and data.modalities == ("A", "V", "L")
    assert (data.features["A"][~data.mask[:, 0]] == 0).all()  # absent rows stored as zeros
    np.testing.assert_allclose(data.features["V"][data.mask[:, 1]].numpy(),
                               feats["V"][want[:, 1]].astype(np.float32))
    assert {k: v for k, v in data.source.items() if k != "sha256"} == {"name": "custom",
                                                                          "format": "arrays"}
    assert len(data.source["sha256"]) == 64  # the arrays' content digest (what a resume checks)
    assert rc.from_arrays(feats, y).source == data.source  # the same arrays, the same digest
    assert not data.complete and torch.isfinite(data.features["L"]).all()


def test_from_arrays_without_holes_has_no_mask_and_integer_labels_stay():
    data = rc.from_arrays({"a": np.ones((5, 2)), "b": np.zeros((5, 1))}, [0, 1, 1, 0, 1])
    assert data.mask is None and data.complete and data.classes is None and data.num_classes == 2


def test_from_arrays_with_an_explicit_mask_accepts_nan_only_where_absent():
    x = np.arange(12, dtype=float).reshape(6, 2)
    x[2] = np.nan
    mask = np.ones((6, 2), bool)
    mask[2, 0] = mask[4, 0] = False  # row 4 has values but is declared absent: zeroed
    data = rc.from_arrays({"a": x, "b": np.ones((6, 3))}, [0, 1] * 3, mask=mask)
    assert torch.equal(data.mask, torch.from_numpy(mask))
    assert (data.features["a"][[2, 4]] == 0).all() and data.features["a"][5, 1] == 11
    mask[2, 0] = True
    with pytest.raises(ValueError, match=r"features\['a'\]: row 2: NaN or no frames where the "
                                         "mask says present"):
        rc.from_arrays({"a": x, "b": np.ones((6, 3))}, [0, 1] * 3, mask=mask)


def test_from_arrays_sequences_from_lists_and_padded_arrays():
    seqs = [np.ones((3, 2)), None, np.full((1, 2), 2.0), np.zeros((0, 2)), np.ones((2, 2))]
    data = rc.from_arrays({"s": seqs, "v": np.ones((5, 4))}, [0, 1, 0, 1, 0], ids="abcde")
    assert data.features["s"].shape == (5, 3, 2)
    assert data.lengths["s"].tolist() == [3, 1, 1, 1, 2]  # absent rows: one (zero) frame
    assert data.mask[:, 0].tolist() == [True, False, True, False, True]
    assert data.ids == list("abcde")
    padded = np.zeros((2, 4, 3))
    padded[1] = np.nan
    data = rc.from_arrays({"s": padded, "v": np.ones((2, 1))}, [0, 1], lengths={"s": [2, 4]})
    assert data.mask[:, 0].tolist() == [True, False] and data.lengths["s"].tolist() == [2, 1]


X2, X3 = np.ones((4, 2)), np.ones((4, 3))
ARRAY_ERRORS = [  # (features, labels, keyword arguments, message)
    ({"a": X2}, [0, 1, 0, 1], {}, r"features: got dict with 1 entries; allowed: a dict of at least 2"),
    ({"a": X2, "b": X3}, [0, 5, 0, 1], {"num_classes": 3},
     r"labels: got values in \[0, 5\]; allowed: integers in \[0, 2\] \(num_classes=3\)"),
    ({"a": X2, "b": X3}, [0.5, 1, 0, 1], {}, r"labels: got non-integer numbers"),
    ({"a": X2, "b": X3}, ["x", "y", "z", "x"], {"classes": ["x", "y"]},
     r"labels: got \['z'\] not in classes \['x', 'y'\]"),
    ({"a": X2, "b": X3}, [0, 1, 0, 1], {"mask": np.ones((4, 3), bool)},
     r"mask: got shape \(4, 3\) dtype bool; allowed: \[4, 2\] bool"),
    ({"a": X2, "b": X3}, [0, 1, 0, 1], {"ids": ["p", "p", "q", "r"]}, r"ids: got 4 ids \(3 distinct\)"),
    ({"a": np.array([[1.0, np.inf]] * 4), "b": X3}, [0, 1, 0, 1], {},
     r"features\['a'\]: row 0 holds an infinite value"),
    ({"a": [np.ones((2, 2)), np.ones((1, 3)), None, None], "b": X3}, [0, 1, 0, 1], {},
     r"features\['a'\]: sequences of shapes .*one feature dim D"),
    ({"a": np.ones((4, 2, 2, 2)), "b": X3}, [0, 1, 0, 1], {},
     r"features\['a'\]: got shape \(4, 2, 2, 2\); allowed: \[4, D\], \[4, T, D\]"),
    ({"a": X2, "b": X3}, [[0], [1], [0], [1]], {}, r"labels: got shape \(4, 1\)"),
]


@pytest.mark.parametrize("features, labels, kwargs, message", ARRAY_ERRORS)
def test_from_arrays_errors(features, labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        rc.from_arrays(features, labels, **kwargs)


def test_from_frame_matches_from_arrays_and_keeps_ids():
    df = holey_frame()
    data = rc.from_frame(df, MODS, "animal", id_column="sample")
    ref = rc.from_arrays(*holey_arrays())
    assert torch.equal(data.mask, ref.mask) and data.classes == NAMES
    for m in "AVL":
        torch.testing.assert_close(data.features[m], ref.features[m])
    assert data.ids[:2] == ["s000", "s001"] and data.source["format"] == "frame"


def test_split_by_column_and_split_data():
    df = holey_frame()
    data = rc.from_frame(df, MODS, "animal")
    splits = rc.split_by(data, df["split"])
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [36, 12, 12]
    assert torch.equal(splits.val.mask, data.mask[3::5])
    strat = rc.split_data(data, (0.6, 0.2, 0.2), seed=1)
    assert sum(len(s) for s in (strat.train, strat.val, strat.test)) == 60
    assert torch.equal(strat.train.labels.bincount(), torch.tensor([12, 12, 12]))
    again = rc.split_data(data, (0.6, 0.2, 0.2), seed=1)
    assert again.test.ids == strat.test.ids and rc.data.split_by is rc.split_by


def test_normalise_uses_present_rows_and_keeps_holes_zero():
    data = rc.from_arrays(*holey_arrays())
    splits = rc.normalise(rc.split_data(data, seed=0))
    a, mask = splits.train.features["A"], splits.train.mask[:, 0]
    torch.testing.assert_close(a[mask].mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(a[mask].std(0, unbiased=False), torch.ones(4), atol=1e-4, rtol=0)
    assert (a[~mask] == 0).all() and (splits.test.features["V"][~splits.test.mask[:, 1]] == 0).all()


def test_describe_records_source_rates_and_classes():
    splits = rc.split_data(rc.from_arrays(*holey_arrays()), seed=0)
    d = splits.describe()
    assert d["modalities"] == ["A", "V", "L"] and d["dims"] == [4, 3, 2] and d["classes"] == list(NAMES)
    assert d["samples"] == {"train": 42, "val": 9, "test": 9}
    miss = (~splits.train.mask).float().mean(0).tolist()
    assert list(d["observed_missing"]["train"].values()) == pytest.approx(miss, abs=1e-6)
    assert d["source"]["format"] == "arrays" and len(d["source"]["sha256"]) == 64


# ---------------------------------------------------------------- files


def write_npz(path: Path, **changes) -> Path:
    feats, y = holey_arrays()
    arrays = {**feats, "labels": y, "ids": np.array([f"n{i}" for i in range(60)])}
    arrays.update(changes)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def write_csv(path: Path, frame: pd.DataFrame | None = None) -> Path:
    (holey_frame() if frame is None else frame).to_csv(path, index=False)
    return path


def write_h5_folder(folder: Path, drop: dict[str, list[int]] | None = None,
                    extra_id: str | None = None, bad_dim: str | None = None) -> Path:
    """labels.csv (id, animal, split) and A.h5, V.h5, L.h5 with one dataset per id; ids whose
    row is NaN (and ``drop``) are left out: an absent modality."""
    feats, y = holey_arrays()
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"u{i:02d}" for i in range(60)]
    pd.DataFrame({"id": ids, "animal": y, "split": holey_frame()["split"]}).to_csv(
        folder / "labels.csv", index=False)
    for m, x in feats.items():
        with h5py.File(folder / f"{m}.h5", "w") as f:
            for i, uid in enumerate(ids):
                if np.isnan(x[i]).all() or i in (drop or {}).get(m, []):
                    continue
                arr = x[i][None].repeat(i % 3 + 1, 0)  # [frames, D]: sequences of 1-3 frames
                if m == bad_dim and i == 5:
                    arr = arr[:, :1]
                f.create_dataset(uid, data=arr)
            if extra_id and m == "A":
                f.create_dataset(extra_id, data=np.zeros((1, 4)))
    return folder


def test_read_npz_round_trip(tmp_path):
    path = write_npz(tmp_path / "d.npz", B=np.ones((60, 2)))
    data, split = custom_io.read_npz(path)
    ref = rc.from_arrays(*holey_arrays())
    assert data.modalities == ("A", "V", "L", "B") and data.ids[0] == "n0" and split is None
    assert torch.equal(data.mask[:, :3], ref.mask) and data.mask[:, 3].all()
    assert data.source["sha256"] == custom_io.file_digest(path) and data.source["format"] == "npz"
    sub, _ = custom_io.read_npz(path, ["B", "A"])
    assert sub.modalities == ("B", "A") and torch.equal(sub.mask[:, 1], ref.mask[:, 0])


def test_read_npz_with_mask_and_split(tmp_path):
    feats, y = holey_arrays()
    mask = ~np.isnan(np.stack([feats[m][:, 0] for m in "AVL"], 1))
    clean = {m: np.nan_to_num(x) for m, x in feats.items()}
    path = write_npz(tmp_path / "m.npz", **clean, mask=mask,
                     split=holey_frame()["split"].to_numpy(dtype=str))
    cfg = rc.override(rc.preset("smoke"), data={"name": "custom", "path": str(path),
                                                "split_column": "split"})
    splits = rc.load_data(cfg.data, seed=0)
    assert len(splits.train) == 36 and torch.equal(splits.val.mask, torch.from_numpy(mask[3::5]))


def test_read_table_csv_and_parquet(tmp_path):
    path = write_csv(tmp_path / "t.csv")
    data, split = custom_io.read_table(path, ["A=A_*", "V=V_*", "L=L_*"], "animal",
                                       id_column="sample", split_column="split")
    assert split[:5] == ["train", "train", "train", "val", "test"] and data.ids[3] == "s003"
    if importlib.util.find_spec("pyarrow") is None:
        pytest.skip("pyarrow not installed (pip install 'redcore_lite[parquet]')")
    pq = tmp_path / "t.parquet"
    holey_frame().to_parquet(pq)
    other, _ = custom_io.read_table(pq, {"A": "A_*", "V": "V_*", "L": "L_*"}, "animal")
    assert torch.equal(other.mask, data.mask)
    torch.testing.assert_close(other.features["A"], data.features["A"])


def test_parquet_without_pyarrow_says_what_to_do(tmp_path, monkeypatch):
    def no_engine(*args, **kwargs):
        raise ImportError("Unable to find a usable engine; tried using: 'pyarrow', 'fastparquet'.")

    monkeypatch.setattr(pd, "read_parquet", no_engine)
    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    with pytest.raises(ValueError, match="reading Parquet needs pyarrow.*pip install pyarrow"):
        custom_io.read_table(tmp_path / "t.parquet", ["A=A_0", "V=V_0"], "animal")


def test_read_hdf5_folder(tmp_path):
    folder = write_h5_folder(tmp_path / "h5")
    data, split = custom_io.read_hdf5_folder(folder, label="animal", split_column="split")
    ref = rc.from_arrays(*holey_arrays())
    assert data.modalities == ("A", "L", "V")  # the files, sorted by name
    assert torch.equal(data.mask, ref.mask[:, [0, 2, 1]])
    assert data.features["A"].shape == (60, 3, 4) and data.lengths["A"][:4].tolist() == [1, 1, 3, 1]
    assert split[3] == "val" and data.ids[0] == "u00"
    ordered, _ = custom_io.read_hdf5_folder(folder, ["V", "A", "L"], label="animal")
    assert ordered.modalities == ("V", "A", "L") and torch.equal(ordered.mask, ref.mask[:, [1, 0, 2]])


def _case_files(tmp_path: Path, kind: str) -> Path:
    """The bad input ``kind`` as a file (or folder) under ``tmp_path``."""
    feats, y = holey_arrays()
    frame = holey_frame()
    if kind == "npz_no_labels":
        return write_npz(tmp_path / "x.npz", labels=None)
    if kind == "npz_one_modality":
        np.savez(tmp_path / "x.npz", A=feats["A"], labels=y)
        return tmp_path / "x.npz"
    if kind == "npz_mask_shape":
        return write_npz(tmp_path / "x.npz", mask=np.ones((60, 2), bool))
    if kind == "npz_nan_where_present":
        return write_npz(tmp_path / "x.npz", mask=np.ones((60, 3), bool))
    if kind == "npz_negative_labels":
        return write_npz(tmp_path / "x.npz", labels=np.arange(60) % 3 - 1)
    if kind == "npz_label_gap":
        return write_npz(tmp_path / "x.npz", labels=(np.arange(60) % 2) * 2)
    if kind == "npz_all_absent":
        return write_npz(tmp_path / "x.npz", V=np.full((60, 3), np.nan))
    if kind == "npz_partial_nan":
        a = feats["A"].copy()
        a[7, 1] = np.nan
        return write_npz(tmp_path / "x.npz", A=a)
    if kind == "npz_objects":
        np.savez(tmp_path / "x.npz", A=np.array([np.ones(2), np.ones(3)], dtype=object),
                 V=np.ones((2, 2)), labels=np.array([0, 1]))
        return tmp_path / "x.npz"
    if kind == "npz_rows":
        return write_npz(tmp_path / "x.npz", V=feats["V"][:50])
    if kind == "csv_no_label":
        return write_csv(tmp_path / "x.csv", frame.drop(columns="animal"))
    if kind == "csv_text_feature":
        return write_csv(tmp_path / "x.csv", frame.assign(A_0="text"))
    if kind == "csv_partial_nan":
        frame.loc[11, "V_2"] = np.nan
        return write_csv(tmp_path / "x.csv", frame)
    if kind == "csv_empty_row":
        for c in frame.columns[2:-1]:
            frame.loc[4, c] = np.nan
        return write_csv(tmp_path / "x.csv", frame)
    if kind == "csv_small_class":
        frame.loc[:, "animal"] = ["cat"] * 57 + ["dog"] * 3
        return write_csv(tmp_path / "x.csv", frame)
    if kind == "csv_bad_split":
        frame.loc[2, "split"] = "holdout"
        return write_csv(tmp_path / "x.csv", frame)
    if kind == "csv_duplicate_ids":
        frame.loc[1, "sample"] = "s000"
        return write_csv(tmp_path / "x.csv", frame)
    if kind == "csv_no_label_value":
        frame.loc[8, "animal"] = np.nan
        return write_csv(tmp_path / "x.csv", frame)
    if kind == "csv_empty_val":
        frame.loc[:, "split"] = ["train", "test"] * 30
        return write_csv(tmp_path / "x.csv", frame)
    if kind == "h5_no_labels":
        folder = write_h5_folder(tmp_path / "h")
        (folder / "labels.csv").unlink()
        return folder
    if kind == "h5_ids_mismatch":
        return write_h5_folder(tmp_path / "h", extra_id="stranger")
    if kind == "h5_dim":
        return write_h5_folder(tmp_path / "h", bad_dim="V")
    if kind == "h5_one_file":
        folder = write_h5_folder(tmp_path / "h")
        (folder / "V.h5").unlink()
        (folder / "L.h5").unlink()
        return folder
    if kind == "txt":
        (tmp_path / "x.json").write_text("{}")
        return tmp_path / "x.json"
    raise AssertionError(kind)


TABLE = {"modalities": ("A=A_*", "V=V_*", "L=L_*"), "label": "animal"}
BAD_INPUTS = [  # (file kind, data config fields, message)
    ("missing", {}, r"data.path: '.*nowhere.csv' does not exist"),
    ("npz_no_labels", {}, r"no array 'labels'"),
    ("npz_one_modality", {}, r"expected at least 2 modality arrays"),
    ("npz_mask_shape", {}, r"\['mask'\]: got shape \(60, 2\); expected \[N, 3\]"),
    ("npz_nan_where_present", {}, r"features\['A'\]: rows \[1, 6, .*NaN or no frames where the "
                                  "mask says present"),
    ("npz_negative_labels", {}, r"labels: got values in \[-1, 1\]; allowed: integers >= 0"),
    ("npz_label_gap", {}, r"class\(es\) \[1\] have no sample"),
    ("npz_all_absent", {}, r"features\['V'\]: no sample has this modality"),
    ("npz_partial_nan", {}, r"features\['A'\]: row 7 \(id 'n7'\) has NaN in column\(s\) \[1\] of 4"),
    ("npz_objects", {}, r"allowed: numeric or string arrays"),
    ("npz_rows", {}, r"features\['V'\]: got shape \(50, 3\); allowed: \[60, D\]"),
    ("npz_rows", {"modalities": ("A", "X")}, r"data.modalities: got \['X'\]"),
    ("csv_no_label", TABLE, r"label: column 'animal' is not in the table"),
    ("csv_no_label", {"modalities": ("A=A_*", "V=W_*"), "label": "sample"},
     r"modalities\['V'\]: column 'W_\*' matches no column"),
    ("csv_text_feature", TABLE, r"modalities\['A'\]: column\(s\) \['A_0'\] are not numeric"),
    ("csv_partial_nan", TABLE, r"features\['V'\]: row 11 \(id '11'\) has NaN in column\(s\) \[2\]"),
    ("csv_empty_row", TABLE, r"features: row 4 \(id '4'\) have no modality present"),
    ("csv_small_class", TABLE, r"labels: class 1 \('dog'\) has 3 sample\(s\); allowed: at least 7"),
    ("csv_bad_split", {**TABLE, "split_column": "split"}, r"split: got values \['holdout'\]"),
    ("csv_duplicate_ids", {**TABLE, "id_column": "sample"}, r"ids: got 60 ids \(59 distinct\)"),
    ("csv_no_label_value", TABLE, r"labels: row 8 have no label"),
    ("csv_empty_val", {**TABLE, "split_column": "split"}, r"val: the split is empty"),
    ("csv_no_label", {"label": "sample"}, r"data.modalities: empty for a table"),
    ("h5_no_labels", {"label": "animal"}, r"labels.csv: no such file"),
    ("h5_ids_mismatch", {"label": "animal"}, r"A.h5: sample id\(s\) \['stranger'\] are not in .*"
                                             r"\(ids mismatch\)"),
    ("h5_dim", {"label": "animal"}, r"features\['V'\]: sequences of shapes"),
    ("h5_one_file", {"label": "animal"}, r"expected one NAME.h5 per modality, at least 2"),
    ("h5_ids_mismatch", {"label": "label"}, r"labels.csv: no column 'label'"),
    ("txt", TABLE, r"has suffix '.json'; allowed: .npz, .csv"),
]


@pytest.mark.parametrize("kind, fields, message", BAD_INPUTS,
                         ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(BAD_INPUTS)])
def test_bad_inputs_give_clear_errors(tmp_path, kind, fields, message):
    path = tmp_path / "nowhere.csv" if kind == "missing" else _case_files(tmp_path, kind)
    cfg = rc.override(rc.preset("smoke"), data={"name": "custom", "path": str(path), **fields})
    with pytest.raises(ValueError, match=message):
        rc.fit(cfg)  # load_data -> the reader -> from_arrays -> the split -> validate


def test_empty_path_and_mask_column_without_a_present_training_row():
    with pytest.raises(ValueError, match="data.path: empty for data.name='custom'"):
        rc.load_data(rc.override(rc.preset("smoke"), data={"name": "custom"}).data)
    feats, y = holey_arrays()
    data = rc.from_arrays(feats, y)
    parts = rc.split_by(data, ["train" if np.isnan(feats["L"][i, 0]) else ("val", "test")[i % 2]
                               for i in range(60)])
    with pytest.raises(ValueError, match="train.mask: modality 'L' is present in no training"):
        parts.validate()


# ---------------------------------------------------------------- the workbook's example


def test_mfeat_holes_rule_is_documented_and_deterministic():
    df = custom_io.mfeat_holes()
    assert df.shape == (2000, 2 + 3 + 76 + 64 + 240) and df["digit"].iloc[0] == "zero"
    absent = {v: df[f"{v}_0"].isna() for v in ("fou", "kar", "pix")}
    assert (absent["fou"] == (df["ink"] < 640)).all()
    assert (absent["kar"] == (df["slant"].abs() > 10)).all()
    assert (absent["pix"] == (df["saturation"] > 0.4)).all()
    for v, rows in absent.items():  # a view is absent as a whole, never in part
        cols = [c for c in df.columns if c.startswith(f"{v}_")]
        assert (df.loc[rows, cols].isna().all(1)).all() and df.loc[~rows, cols].notna().all(None)
    rates = {v: float(r.mean()) for v, r in absent.items()}
    assert rates == pytest.approx({"fou": 0.2055, "kar": 0.207, "pix": 0.379})
    assert not (absent["fou"] & absent["kar"] & absent["pix"]).any()
    pd.testing.assert_frame_equal(df, custom_io.mfeat_holes())
    data = rc.from_frame(df, {v: f"{v}_*" for v in ("fou", "kar", "pix")}, "digit", id_column="id")
    assert data.classes == tuple(sorted(custom_io.DIGIT_NAMES)) and data.mask is not None
    with pytest.raises(ValueError, match="views: got"):
        custom_io.mfeat_holes(("fou", "zer"))


def test_parse_modalities():
    assert custom_io.parse_modalities(["a=x,y", "b=z*"], True) == {"a": ["x", "y"], "b": ["z*"]}
    assert custom_io.parse_modalities(["a", "b"], False) == {"a": [], "b": []}
    for bad in (["a"], ["a=x", "a=y"], ["=x"]):
        with pytest.raises(ValueError, match=re.escape("modalities: got")):
            custom_io.parse_modalities(bad, True)
