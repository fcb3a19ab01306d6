"""Real-data loaders: the shipped mfeat file, and fixture files in the exact MMIN / MMSA formats."""
from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import redcore_lite as rc
from redcore_lite import datasets as ds

MMIN_DIMS = {"A": 130, "V": 342, "L": 1024}
MMIN_FILES = {"A": "comparE", "V": "denseface", "L": "bert_large"}
SIZES = {"trn": 12, "val": 4, "tst": 4}


def write_mmin(root: Path, dataset: str = "iemocap", folds: tuple[int, ...] = (1,),
               max_len: int = 5, seed: int = 0) -> dict[int, dict[str, list[str]]]:
    """Write a tiny MMIN feature release under ``root`` (features) and ``root/target`` (folds).

    IEMOCAP: one-hot labels and ids stored as 1-element byte arrays ``[N, 1]``; MSP-IMPROV:
    integer labels and 1-D byte strings. The first validation utterance of fold ``folds[0]`` has
    no V frame. Returns fold -> split -> utterance ids.
    """
    rng = np.random.default_rng(seed)
    num = sum(SIZES.values())
    ids = [f"Ses0{1 + i % 5}{'FM'[i % 2]}_impro0{i % 7}_{'FM'[i % 3 % 2]}{i:03d}" for i in range(num)]
    labels = {uid: i % 4 for i, uid in enumerate(ids)}
    for mod, kind in MMIN_FILES.items():
        (root / mod).mkdir(parents=True, exist_ok=True)
        with h5py.File(root / mod / f"{kind}.h5", "w") as f:
            for uid in ids:
                frames = int(rng.integers(1, max_len + 1))
                x = rng.normal(labels[uid], 1.0, (frames, MMIN_DIMS[mod])).astype(np.float32)
                f.create_dataset(uid, data=x)
    out: dict[int, dict[str, list[str]]] = {}
    with h5py.File(root / "A" / "comparE_mean_std.h5", "w") as f:
        for fold in folds:
            g = f.create_group(str(fold))
            g.create_dataset("mean", data=rng.normal(0, 1, MMIN_DIMS["A"]).astype(np.float32))
            g.create_dataset("std", data=rng.uniform(0.5, 2, MMIN_DIMS["A"]).astype(np.float32))
    for fold in folds:
        order = [ids[i] for i in rng.permutation(num)]
        parts, start = {}, 0
        fold_dir = root / "target" / str(fold)
        fold_dir.mkdir(parents=True, exist_ok=True)
        for part, n in SIZES.items():
            parts[part] = order[start:start + n]
            start += n
            y = np.array([labels[u] for u in parts[part]])
            if dataset == "iemocap":
                np.save(fold_dir / f"{part}_label.npy", np.eye(4, dtype=np.float32)[y])
                np.save(fold_dir / f"{part}_int2name.npy",
                        np.array([[u.encode()] for u in parts[part]]))
            else:
                np.save(fold_dir / f"{part}_label.npy", y.astype(np.int64))
                np.save(fold_dir / f"{part}_int2name.npy", np.array([u.encode() for u in parts[part]]))
        out[fold] = parts
    with h5py.File(root / "V" / "denseface.h5", "a") as f:  # an utterance without any face frame
        uid = out[folds[0]]["val"][0]
        del f[uid]
        f.create_dataset(uid, data=np.zeros((0, MMIN_DIMS["V"]), np.float32))
    return out


def write_mosei(path: Path, sizes: tuple[int, int, int] = (12, 4, 4), seed: int = 0,
                dims: tuple[int, int, int] = (74, 35, 768), seq_len: int = 50) -> dict:
    """Write a tiny MMSA ``aligned_50.pkl``: classification labels 0/1/2, one -inf in audio."""
    rng = np.random.default_rng(seed)
    obj = {}
    for part, n in zip(("train", "valid", "test"), sizes):
        y = np.arange(n) % 3
        obj[part] = {"id": [f"{part}_{i}" for i in range(n)],
                     "audio": rng.normal(0, 1, (n, seq_len, dims[0])).astype(np.float32),
                     "vision": rng.normal(0, 1, (n, seq_len, dims[1])).astype(np.float32),
                     "text": rng.normal(0, 1, (n, seq_len, dims[2])).astype(np.float32),
                     "regression_labels": (y - 1).astype(np.float32),
                     "classification_labels": y.astype(np.float32)}
    obj["train"]["audio"][0, 0, 0] = -np.inf
    with open(path, "wb") as f:
        pickle.dump(obj, f)
    return obj


@pytest.fixture
def iemocap(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "IEMOCAP_features"
    return root, write_mmin(root, "iemocap", folds=(1, 10))


@pytest.fixture
def msp(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "MSP_features"
    return root, write_mmin(root, "msp", folds=(12,), seed=1)


@pytest.fixture
def mosei(tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / "aligned_50.pkl"
    return path, write_mosei(path, seq_len=6)


# ------------------------------------------------------------------------ mfeat

def test_mfeat_file_shapes_balance_and_alignment():
    with np.load(ds.MFEAT_PATH, allow_pickle=False) as npz:
        assert list(npz["views"]) == list(ds.MFEAT_VIEWS)
        for view, dim in ds.MFEAT_VIEWS.items():
            assert npz[view].shape == (2000, dim)
            assert np.isfinite(npz[view].astype(np.float64)).all()
        assert np.bincount(npz["labels"]).tolist() == [200] * 10
        assert (np.diff(npz["labels"]) >= 0).all()  # rows sorted by class, aligned across views
    assert ds.MFEAT_PATH.stat().st_size < 5_000_000


def test_mfeat_readme_records_the_shipped_file():
    readme = (Path(__file__).resolve().parent.parent / "data" / "README.md").read_text()
    digest = hashlib.sha256(ds.MFEAT_PATH.read_bytes()).hexdigest()
    assert digest in readme
    assert f"{ds.MFEAT_PATH.stat().st_size:,}" in readme


def test_mfeat_all_views():
    data = ds.mfeat_data(tuple(ds.MFEAT_VIEWS))
    data.validate()
    assert data.dims == tuple(ds.MFEAT_VIEWS.values())
    assert data.features["pix"].dtype == torch.float32 and len(data) == 2000


def test_load_mfeat_split_sizes_balance_and_normalisation():
    s = ds.load_mfeat(("fou", "kar", "pix"), seed=0)
    s.validate()
    assert [len(s.train), len(s.val), len(s.test)] == [1400, 300, 300]
    for part, n in (("train", 140), ("val", 30), ("test", 30)):
        assert torch.bincount(getattr(s, part).labels).tolist() == [n] * 10
    ids = [set(getattr(s, p).ids) for p in ("train", "val", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    x = s.train.features["fou"]
    assert x.mean(0).abs().max() < 1e-4
    assert torch.allclose(x.std(0, unbiased=False), torch.ones(76), atol=1e-3)


def test_load_mfeat_split_determinism():
    a, b = ds.load_mfeat(seed=3), ds.load_mfeat(seed=3)
    c = ds.load_mfeat(seed=4)
    assert a.test.ids == b.test.ids
    assert all(torch.equal(a.train.features[m], b.train.features[m]) for m in a.modalities)
    assert a.test.ids != c.test.ids
    raw = ds.load_mfeat(seed=3, normalise=False)
    assert raw.train.ids == a.train.ids and not torch.equal(raw.train.features["fou"],
                                                            a.train.features["fou"])


def test_mfeat_through_load_data_and_config():
    splits = rc.load_data(rc.config.DataConfig(name="mfeat", views=("zer", "mor")), seed=1)
    ref = ds.load_mfeat(("zer", "mor"), seed=1)
    assert splits.modalities == ("zer", "mor") and splits.test.ids == ref.test.ids


@pytest.mark.parametrize("views", [("fou", "digits"), ("fou",), "fou", ("fou", "fou")])
def test_mfeat_bad_views(views):
    with pytest.raises(ValueError, match="views: .*allowed: .*'fou', 'fac', 'kar', 'pix', 'zer', 'mor'"):
        ds.load_mfeat(views)


def test_mfeat_missing_file(tmp_path):
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "none.npz"))):
        ds.load_mfeat(path=tmp_path / "none.npz")
    with pytest.raises(ValueError, match=r"path: .* does not exist; expected the mfeat file shipped in "
                                         r"redcore_lite/data_files/ \(rebuild it with data/build_mfeat\.py\)"):
        ds.load_mfeat(path=tmp_path / "none.npz")


def test_shipped_files_live_inside_the_package():
    """Package data (pyproject's package-data), so that a wheel install has them (test_wheel.py)."""
    package = Path(rc.__file__).resolve().parent
    assert ds.DATA_DIR == package / "data_files"
    assert ds.MFEAT_PATH.parent == ds.AVDIGITS_PATH.parent == ds.DATA_DIR
    assert ds.MFEAT_PATH.is_file() and ds.AVDIGITS_PATH.is_file()


# ------------------------------------------------------------------------ MMIN (IEMOCAP, MSP)

def test_iemocap_fixture_loads(iemocap):
    root, folds = iemocap
    s = ds.load_mmin(root, fold=1)
    s.validate()
    assert s.modalities == ("A", "V", "L")
    assert [len(s.train), len(s.val), len(s.test)] == [12, 4, 4]
    assert s.train.dims == (130, 342, 1024) and s.num_classes == 4
    assert s.train.ids == folds[1]["trn"] and s.test.ids == folds[1]["tst"]
    labels = np.load(root / "target" / "1" / "trn_label.npy").argmax(1)
    assert s.train.labels.tolist() == labels.tolist()
    # ComParE frames normalised with the fold's training mean/std; padding stays zero
    uid = s.train.ids[0]
    with h5py.File(root / "A" / "comparE.h5") as f, h5py.File(root / "A" / "comparE_mean_std.h5") as g:
        raw, mean, std = f[uid][()], g["1"]["mean"][()], g["1"]["std"][()]
    n = s.train.lengths["A"][0].item()
    assert n == len(raw)
    assert torch.allclose(s.train.features["A"][0, :n], torch.from_numpy((raw - mean) / std), atol=1e-5)
    assert s.train.features["A"][0, n:].abs().sum() == 0
    # the utterance without face frames is one zero frame of length 1
    assert s.val.lengths["V"][0] == 1 and s.val.features["V"][0].abs().sum() == 0


def test_iemocap_other_fold_and_options(iemocap):
    root, folds = iemocap
    s = ds.load_mmin(root, fold=10, max_frames=2, normalise=True)
    assert s.train.ids == folds[10]["trn"]
    assert int(s.train.lengths["L"].max()) <= 2 and s.train.features["L"].shape[1] <= 2
    moved = root.parent / "labels"
    (root / "target").rename(moved)
    assert ds.load_mmin(root, fold=1, target_root=moved).test.ids == folds[1]["tst"]


def test_msp_fixture_loads(msp):
    root, folds = msp
    s = ds.load_mmin(root, fold=12, dataset="msp")
    s.validate()
    assert s.train.ids == folds[12]["trn"]
    assert s.train.labels.tolist() == np.load(root / "target" / "12" / "trn_label.npy").tolist()


def test_mmin_through_load_data(iemocap):
    root, folds = iemocap
    cfg = rc.config.DataConfig(name="iemocap", root=str(root), fold=10, normalise=False)
    assert rc.load_data(cfg).val.ids == folds[10]["val"]


def test_mmin_wrong_root(tmp_path):
    with pytest.raises(ValueError, match=r"root: .*nowhere.* is not a folder; expected .*A/, V/, L/"):
        ds.load_mmin(tmp_path / "nowhere", fold=1)


def test_mmin_missing_modality_file(iemocap):
    root, _ = iemocap
    (root / "V" / "denseface.h5").unlink()
    with pytest.raises(ValueError, match=r"V/denseface\.h5: no such file; expected the V features"):
        ds.load_mmin(root, fold=1)


def test_mmin_missing_utterance(iemocap):
    root, folds = iemocap
    uid = folds[1]["tst"][2]
    with h5py.File(root / "L" / "bert_large.h5", "a") as f:
        del f[uid]
    with pytest.raises(ValueError, match=rf"bert_large\.h5: utterance id '{uid}' .*tst_int2name\.npy"):
        ds.load_mmin(root, fold=1)


@pytest.mark.parametrize("dataset,fold,allowed", [("iemocap", 0, "1..10"), ("iemocap", 11, "1..10"),
                                                  ("msp", 13, "1..12"), ("msp", "2", "1..12")])
def test_mmin_fold_out_of_range(iemocap, dataset, fold, allowed):
    root, _ = iemocap
    with pytest.raises(ValueError, match=rf"fold: got .*; allowed: an integer in {allowed} for {dataset}"):
        ds.load_mmin(root, fold=fold, dataset=dataset)


def test_mmin_fold_folder_missing(iemocap):
    root, _ = iemocap
    with pytest.raises(ValueError, match=r"target_root: .*target/5.* is not a folder"):
        ds.load_mmin(root, fold=5)


def test_mmin_feature_dim_mismatch(iemocap):
    root, folds = iemocap
    uid = folds[1]["trn"][3]
    with h5py.File(root / "A" / "comparE.h5", "a") as f:
        del f[uid]
        f.create_dataset(uid, data=np.zeros((3, 129), np.float32))
    with pytest.raises(ValueError, match=rf"comparE\.h5\['{uid}'\]: feature dim 129; expected 130"):
        ds.load_mmin(root, fold=1)


def test_mmin_comparE_stats_missing_fold(iemocap):
    root, _ = iemocap
    with h5py.File(root / "A" / "comparE_mean_std.h5", "a") as f:
        del f["10"]
    with pytest.raises(ValueError, match=r"comparE_mean_std\.h5: no group '10'"):
        ds.load_mmin(root, fold=10)


def test_mmin_label_id_count_mismatch(iemocap):
    root, _ = iemocap
    np.save(root / "target" / "1" / "val_label.npy", np.eye(4, dtype=np.float32)[[0, 1]])
    with pytest.raises(ValueError, match=r"val_label\.npy: 2 labels but .*val_int2name\.npy holds 4"):
        ds.load_mmin(root, fold=1)


def test_mmin_object_arrays_need_consent(iemocap):
    root, folds = iemocap
    ids = np.empty(4, dtype=object)
    ids[:] = [np.array([u.encode()]) for u in folds[1]["tst"]]
    np.save(root / "target" / "1" / "tst_int2name.npy", ids, allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle=True only if you trust"):
        ds.load_mmin(root, fold=1)
    assert ds.load_mmin(root, fold=1, allow_pickle=True).test.ids == folds[1]["tst"]


# ------------------------------------------------------------------------ CMU-MOSEI (MMSA)

def test_mosei_fixture_loads(mosei):
    path, obj = mosei
    s = ds.load_mosei(path, normalise=False)
    s.validate()
    assert s.modalities == ("A", "V", "L") and s.train.dims == (74, 35, 768)
    assert [len(s.train), len(s.val), len(s.test)] == [12, 4, 4] and s.num_classes == 3
    assert s.train.labels.tolist() == obj["train"]["classification_labels"].astype(int).tolist()
    assert s.train.features["A"][0, 0, 0] == 0  # -inf set to 0, as MMSA does
    assert s.val.ids == obj["valid"]["id"]
    assert torch.isfinite(ds.load_mosei(path).train.features["A"]).all()


def test_mosei_signed_labels_are_shifted(tmp_path):
    path = tmp_path / "signed.pkl"
    obj = write_mosei(path, seq_len=3)
    for part in obj.values():
        part["classification_labels"] = part["classification_labels"] - 1
    path.write_bytes(pickle.dumps(obj))
    assert ds.load_mosei(path).train.labels.tolist() == [0, 1, 2] * 4


def test_mosei_errors(tmp_path, mosei):
    with pytest.raises(ValueError, match=r"path: .*missing\.pkl.* is not a file; expected the MMSA"):
        ds.load_mosei(tmp_path / "missing.pkl")
    bad = tmp_path / "bad.pkl"
    write_mosei(bad, dims=(74, 34, 768), seq_len=3)
    with pytest.raises(ValueError, match=r"\['train'\]\['vision'\]: shape \(12, 3, 34\); expected \[N, 50, 35\]"):
        ds.load_mosei(bad)
    obj = write_mosei(bad, seq_len=3)
    del obj["valid"]
    bad.write_bytes(pickle.dumps(obj))
    with pytest.raises(ValueError, match="no key 'valid'"):
        ds.load_mosei(bad)


def test_load_named_errors():
    cfg = rc.config.DataConfig
    with pytest.raises(ValueError, match=r"data\.root: empty for data\.name='iemocap'"):
        rc.load_data(cfg(name="iemocap"))
    with pytest.raises(ValueError, match=r"data\.name: got 'cifar'; allowed: 'synthetic', 'mfeat', "
                                         r"'avdigits', 'iemocap'"):
        rc.load_data(cfg(name="cifar"))


def test_pad_sequences():
    x, ln = ds.pad_sequences([np.ones((3, 2)), np.ones((0, 2)), np.ones((5, 2))], max_frames=4)
    assert x.shape == (3, 4, 2) and ln.tolist() == [3, 1, 4]
    assert x[0, 3].abs().sum() == 0 and x[1].abs().sum() == 0
