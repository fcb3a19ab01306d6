"""AV-digits: the feature functions of data/build_avdigits.py, the shipped file and its loader."""
from __future__ import annotations

import hashlib
import importlib.util
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import redcore_lite as rc
from redcore_lite import datasets as ds
from redcore_lite.avdigits import SPEAKERS, pool_frames

REPO = Path(__file__).resolve().parent.parent


def _build_script():
    spec = importlib.util.spec_from_file_location("build_avdigits", REPO / "data" / "build_avdigits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


B = _build_script()


# ------------------------------------------------------------------------ features (build script)

def test_mel_scale_hand_values():
    assert B.hz_to_mel(0.0) == 0.0
    assert B.hz_to_mel(700.0) == pytest.approx(2595 * np.log10(2))  # 781.17
    assert B.hz_to_mel(1000.0) == pytest.approx(999.99, abs=0.01)  # ~1000 mel at 1 kHz (HTK)
    f = np.array([0.0, 125.0, 1000.0, 4000.0])
    assert np.allclose(B.mel_to_hz(B.hz_to_mel(f)), f)


def test_one_filter_by_hand():
    """One filter from 0 to 4 Hz on bins 0..4 Hz (n_fft = 8 at 8 Hz): a triangle peaking at the
    mel midpoint c, i.e. f / c below c and (4 - f) / (4 - c) above."""
    c = 700 * (10 ** (2595 * np.log10(1 + 4 / 700) / 2 / 2595) - 1)  # mel_to_hz(mel(4) / 2)
    assert 1.99 < c < 2.0
    fb = B.mel_filterbank(n_mels=1, n_fft=8, sample_rate=8, fmin=0.0, fmax=4.0)
    want = [0.0, 1 / c, (4 - 2) / (4 - c), (4 - 3) / (4 - c), 0.0]
    assert fb.shape == (1, 5) and np.allclose(fb[0], want)


def test_filterbank_shape_peaks_and_partition_of_unity():
    fb = B.mel_filterbank()
    assert fb.shape == (B.N_MELS, B.N_FFT // 2 + 1) and fb.min() == 0.0 and fb.max() <= 1.0
    edges = B.mel_to_hz(np.linspace(B.hz_to_mel(B.FMIN), B.hz_to_mel(B.FMAX), B.N_MELS + 2))
    freqs = np.arange(B.N_FFT // 2 + 1) * B.SAMPLE_RATE / B.N_FFT
    inside = (freqs >= edges[1]) & (freqs <= edges[-2])
    assert np.allclose(fb[:, inside].sum(0), 1.0)  # neighbouring triangles sum to one
    assert (np.abs(freqs[fb.argmax(1)] - edges[1:-1]) < freqs[1]).all()  # peaks next to centres
    assert fb.max(1).min() > 0.5  # no filter falls between bins (the lowest are 2-3 bins wide)
    assert (np.diff(fb.argmax(1)) >= 0).all()  # centres increase
    assert fb[:, 1:-1].sum(0).min() > 0  # every bin strictly inside (0, 4 kHz) reaches a filter


def test_frames_count_and_padding():
    assert B.frames(np.arange(8000.0)).shape == (1 + (8000 - 200) // 160, 200)  # 49 frames
    f = B.frames(np.arange(1000.0))  # 1 + (1000 - 200) // 160 = 6 frames, the last ends at 999
    assert f.shape == (6, 200) and f[1, 0] == 160 and f[5, -1] == 999
    short = B.frames(np.ones(50))
    assert short.shape == (1, 200) and short[0, :50].sum() == 50 and short[0, 50:].sum() == 0


@pytest.mark.parametrize("freq", [300.0, 1000.0, 2500.0])
def test_pure_tone_lands_in_its_band(freq):
    t = np.arange(4000) / B.SAMPLE_RATE
    tone = np.round(8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    mel = B.log_mel(tone)
    centres = B.mel_to_hz(np.linspace(B.hz_to_mel(B.FMIN), B.hz_to_mel(B.FMAX), B.N_MELS + 2))[1:-1]
    assert mel.shape == (1 + (4000 - 200) // 160, B.N_MELS)
    assert np.abs(centres - freq).argmin() == np.bincount(mel.argmax(1)).argmax()
    loud = B.log_mel(2 * tone.astype(np.int64))  # twice the amplitude: +20 log10(2) dB everywhere
    assert np.allclose(loud - mel, 20 * np.log10(2), atol=1e-6)


def test_silence_is_the_floor_and_quantise_is_exact():
    assert (B.log_mel(np.zeros(800, dtype=np.int16)) == B.FLOOR_DB).all()
    x = np.array([-100.0, -12.3456, 0.1249, 0.126, 37.9])
    q = B.quantise(x)
    assert q.dtype == np.float16 and np.abs(q.astype(np.float64) - x).max() <= B.DB_STEP / 2
    assert np.array_equal(q.astype(np.float64) / B.DB_STEP, np.round(q.astype(np.float64) / B.DB_STEP))
    assert q.tolist() == [-100.0, -12.25, 0.0, 0.25, 38.0]


def test_pool_frames():
    x = np.array([[1.0, 2.0], [3.0, 6.0]])
    assert pool_frames(x).tolist() == [2.0, 4.0, 1.0, 2.0]  # means, then (population) stds


# ------------------------------------------------------------------------ the shipped file

def test_shipped_file_shapes_and_counts():
    with np.load(ds.AVDIGITS_PATH, allow_pickle=False) as npz:
        lengths = npz["audio_lengths"].astype(np.int64)
        assert npz["audio"].shape == (lengths.sum(), 32) and npz["audio"].dtype == np.float16
        assert np.isfinite(npz["audio"]).all() and lengths.min() >= 1 and len(lengths) == 3000
        keys = np.stack([npz["audio_digit"], npz["audio_speaker"], npz["audio_take"]], 1)
        assert len(np.unique(keys, axis=0)) == 3000 and keys.max(0).tolist() == [9, 5, 49]
        assert list(npz["speakers"]) == list(SPEAKERS)
        assert npz["image"].shape == (1797, 64) and npz["image"].dtype == np.uint8
        assert npz["image"].max() == 16 and np.bincount(npz["image_labels"]).min() >= 174
        assert "n_mels=32" in str(npz["features"]) and "hop=160" in str(npz["features"])
    with zipfile.ZipFile(ds.AVDIGITS_PATH) as zf:  # fixed timestamps: a rebuild is byte-identical
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert ds.AVDIGITS_PATH.stat().st_size < 4_000_000


def test_readme_records_the_shipped_files():
    readme = (REPO / "data" / "README.md").read_text()
    for path in (ds.AVDIGITS_PATH, ds.MFEAT_PATH):
        assert hashlib.sha256(path.read_bytes()).hexdigest() in readme, path.name
        assert f"{path.stat().st_size:,}" in readme, path.name


# ------------------------------------------------------------------------ the loader

@pytest.fixture(scope="module")
def raw() -> rc.Splits:
    return ds.load_avdigits(normalise=False)


def test_speaker_holdout_sizes_and_disjoint_speakers(raw):
    raw.validate()
    assert raw.modalities == ("audio", "image", "shape") and raw.num_classes == 10
    assert raw.train.dims == (64, 64, 76)
    assert [len(raw.train), len(raw.val), len(raw.test)] == [2000, 500, 500]
    speakers = [{i.split("|")[0].split("_")[1] for i in getattr(raw, p).ids}
                for p in ("train", "val", "test")]
    assert speakers == [set(SPEAKERS) - {"george", "jackson"}, {"jackson"}, {"george"}]
    for part in (raw.train, raw.val, raw.test):
        assert torch.bincount(part.labels).tolist() == [len(part) // 10] * 10


def _sources(data: rc.MultimodalData, key: str) -> list[int]:
    return [int(re.search(rf"\|{key}(\d+)", i).group(1)) for i in data.ids]


def test_pairs_share_the_label_and_written_digits_do_not_cross_splits(raw):
    with np.load(ds.AVDIGITS_PATH) as npz, np.load(ds.MFEAT_PATH) as mf:
        image_labels, shape_labels, pixels, fou = npz["image_labels"], mf["labels"], npz["image"], mf["fou"]
    for part in (raw.train, raw.val, raw.test):
        y = part.labels.numpy()
        assert (y == [int(i[0]) for i in part.ids]).all()  # the clip's spoken digit
        assert (image_labels[_sources(part, "image")] == y).all()
        assert (shape_labels[_sources(part, "shape")] == y).all()
        assert np.array_equal(part.features["image"].numpy(), pixels[_sources(part, "image")])
        assert np.allclose(part.features["shape"].numpy(), fou[_sources(part, "shape")])
    for key in ("image", "shape"):
        used = [set(_sources(getattr(raw, p), key)) for p in ("train", "val", "test")]
        assert not (used[0] & used[1] or used[0] & used[2] or used[1] & used[2])
        counts = np.bincount(_sources(raw.train, key))
        assert counts[counts > 0].max() - counts[counts > 0].min() <= 1  # balanced reuse


def test_pooled_audio_is_mean_and_std_of_the_frames(raw):
    seq = ds.load_avdigits(sequences=True, normalise=False)
    assert seq.train.ids == raw.train.ids
    x, n = seq.train.features["audio"][7], int(seq.train.lengths["audio"][7])
    assert torch.allclose(raw.train.features["audio"][7], torch.from_numpy(pool_frames(x[:n].numpy())))
    assert x[n:].abs().sum() == 0


def test_sequences_for_the_transformer():
    s = ds.load_avdigits(sequences=True, max_frames=30)
    s.validate()
    a, im, sh = (s.train.features[m] for m in ("audio", "image", "shape"))
    assert a.shape[1:] == (30, 32) and im.shape[1:] == (8, 8) and sh.shape[1:] == (1, 76)
    assert int(s.train.lengths["audio"].max()) == 30 and (s.train.lengths["image"] == 8).all()
    assert (s.test.lengths["shape"] == 1).all()
    valid = torch.arange(30) < s.train.lengths["audio"][:, None]
    assert a[~valid].abs().sum() == 0  # padding stays zero after normalisation
    assert abs(float(a[valid].mean())) < 1e-3


def test_takes_holdout_is_the_official_split():
    s = ds.load_avdigits(holdout="takes", modalities=("audio", "image"))
    assert s.modalities == ("audio", "image") and [len(s.train), len(s.val), len(s.test)] == [2400, 300, 300]
    take = {p: {int(i.split("|")[0].split("_")[2]) for i in getattr(s, p).ids} for p in ("train", "val", "test")}
    assert take == {"train": set(range(10, 50)), "val": set(range(5, 10)), "test": set(range(5))}
    assert "shape" not in s.test.ids[0]


def test_seed_changes_the_pairing_not_the_clips(raw):
    again, other = ds.load_avdigits(normalise=False), ds.load_avdigits(seed=1, normalise=False)
    assert again.test.ids == raw.test.ids
    assert all(torch.equal(again.train.features[m], raw.train.features[m]) for m in raw.modalities)
    assert [i.split("|")[0] for i in other.test.ids] == [i.split("|")[0] for i in raw.test.ids]
    assert other.test.ids != raw.test.ids


def test_fold_picks_the_held_out_speaker():
    s = ds.load_avdigits(fold=6, modalities=("audio", "image"))
    assert {i.split("_")[1] for i in s.test.ids} == {"yweweler"}
    assert {i.split("_")[1] for i in s.val.ids} == {"george"}


def test_through_load_data_and_config():
    cfg = rc.config.DataConfig(name="avdigits", modalities=("image", "audio"), holdout="takes",
                               sequences=True, max_frames=20)
    s = rc.load_data(cfg, seed=2)
    ref = ds.load_avdigits(("image", "audio"), "takes", sequences=True, seed=2, max_frames=20)
    assert s.modalities == ("image", "audio") and s.test.ids == ref.test.ids
    assert torch.equal(s.train.features["audio"], ref.train.features["audio"])
    assert rc.load_data(rc.config.DataConfig(name="avdigits")).modalities == ("audio", "image", "shape")


def test_fit_smoke_on_both_shapes():
    base = rc.override(rc.preset("smoke"), data={"name": "avdigits"},
                       train={"epochs_constant": 1, "epochs_decay": 0, "device": "cpu"})
    res = rc.fit(base)
    assert len(res.test) == 8 and res.test["f1"].notna().all()
    seq = rc.override(base, data={"sequences": True, "max_frames": 12},
                      model={"backbone": "transformer", "num_layers": 1, "num_heads": 2})
    assert len(rc.fit(seq).test) == 8


# ------------------------------------------------------------------------ errors

@pytest.mark.parametrize("mods", [("audio",), "audio", ("audio", "audio"), ("audio", "video")])
def test_bad_modalities(mods):
    with pytest.raises(ValueError, match=r"modalities: got .*; allowed: two or more distinct names among "
                                         r"'audio', 'image', 'shape'"):
        ds.load_avdigits(mods)


def test_bad_holdout_fold_and_max_frames():
    with pytest.raises(ValueError, match=r"holdout: got 'random'; allowed: 'speakers', 'takes'"):
        ds.load_avdigits(holdout="random")
    for fold in (0, 7, "2", True):
        with pytest.raises(ValueError, match=r"fold: got .*; allowed: an integer in 1\.\.6 .*1 george"):
            ds.load_avdigits(fold=fold)
    assert len(ds.load_avdigits(holdout="takes", fold=99, modalities=("audio", "image")).test) == 300
    with pytest.raises(ValueError, match=r"max_frames: got -1; allowed: an integer >= 0"):
        ds.load_avdigits(max_frames=-1)


def test_missing_and_wrong_files(tmp_path):
    with pytest.raises(ValueError, match=r"path: .*none\.npz.* does not exist; expected the AV-digits "
                                         r"file .*data/build_avdigits\.py"):
        ds.load_avdigits(path=tmp_path / "none.npz")
    with pytest.raises(ValueError, match=r"path: .*nomfeat\.npz.* does not exist; expected the mfeat"):
        ds.load_avdigits(mfeat_path=tmp_path / "nomfeat.npz")
    assert ds.load_avdigits(("audio", "image"), mfeat_path=tmp_path / "nomfeat.npz").modalities == (
        "audio", "image")  # mfeat is read only for the shape modality
    np.savez(tmp_path / "other.npz", audio=np.zeros((3, 32)))
    with pytest.raises(ValueError, match=r"lacks the arrays \['audio_lengths', .*build_avdigits\.py"):
        ds.load_avdigits(path=tmp_path / "other.npz")


def test_wrong_backbone_for_the_shape_chosen():
    cfg = rc.override(rc.preset("smoke"), data={"name": "avdigits", "sequences": True},
                      train={"epochs_constant": 1, "epochs_decay": 0})
    with pytest.raises(ValueError, match=r"model\.backbone: got 'mlp' but modality 'audio' has shape "
                                         r"\(2000, \d+, 32\); allowed: 'mlp' takes vectors"):
        rc.fit(cfg)
    vec = rc.override(cfg, data={"sequences": False}, model={"backbone": "transformer"})
    with pytest.raises(ValueError, match=r"model\.backbone: got 'transformer' but modality 'audio' has "
                                         r"shape \(2000, 64\); allowed: 'transformer' takes frame sequences"):
        rc.fit(vec)
