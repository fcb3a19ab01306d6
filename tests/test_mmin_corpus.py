"""IEMOCAP-format corpora (redcore_lite.mmin_corpus), the latent-collapse guard, and the `paper`
architecture scaled down: it learns with the release's initialisation and collapses (reported) with
PyTorch's."""
from __future__ import annotations

import math
import warnings

import h5py
import numpy as np
import pytest
import torch

import redcore_lite as rc
from redcore_lite.datasets import load_mmin
from redcore_lite.mmin_corpus import LEVELS, corpus_spec, write_mmin_corpus
from redcore_lite.trainer import LatentCollapseWarning, collapse_warning, latent_spread

SMALL = (320, 80, 80)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("iemocap_format")
    info = write_mmin_corpus(root, corpus_spec("medium", seed=0, sizes=SMALL))
    return root, info


def test_corpus_has_the_release_layout(corpus):
    root, info = corpus
    splits = load_mmin(root)  # the loader of the real release reads it
    assert [len(getattr(splits, p)) for p in ("train", "val", "test")] == list(SMALL)
    assert splits.train.dims == (130, 342, 1024) and splits.num_classes == 4
    for mod, (lo, hi) in zip("AVL", ((20, 40), (8, 16), (6, 12))):
        ln = splits.train.lengths[mod]
        assert lo <= int(ln.min()) and int(ln.max()) <= hi
    assert splits.train.ids == info["ids"]["trn"]
    assert splits.test.labels.tolist() == info["labels"]["tst"]
    assert np.bincount(info["labels"]["trn"] + info["labels"]["val"] + info["labels"]["tst"]).tolist() == [120] * 4
    labels = np.load(root / "target" / "1" / "trn_label.npy")
    names = np.load(root / "target" / "1" / "trn_int2name.npy")
    assert labels.shape == (320, 4) and names.shape == (320, 1) and names.dtype.kind == "S"
    with h5py.File(root / "A" / "comparE.h5") as a, h5py.File(root / "A" / "comparE_mean_std.h5") as s:
        frames = np.concatenate([a[u][()] for u in info["ids"]["trn"]])
        assert np.allclose(s["1"]["mean"][()], frames.mean(0), rtol=1e-4, atol=1e-3)
        assert np.allclose(s["1"]["std"][()], frames.std(0), rtol=1e-4)
    with h5py.File(root / "V" / "denseface.h5") as v:
        assert min(float(v[u][()].min()) for u in info["ids"]["val"]) >= 0  # post-ReLU, as DenseFace
    x = splits.train.features["A"]  # normalised with the training frames' statistics by the loader
    w = (torch.arange(x.shape[1]) < splits.train.lengths["A"][:, None])[..., None]
    assert abs(float((x * w).sum() / (w.sum() * 130))) < 1e-3


def test_corpus_is_seeded(tmp_path):
    spec = corpus_spec("hard", seed=3, sizes=(8, 4, 4))
    a, b = write_mmin_corpus(tmp_path / "a", spec), write_mmin_corpus(tmp_path / "b", spec)
    assert a["ids"] == b["ids"] and a["labels"] == b["labels"]
    with h5py.File(tmp_path / "a" / "L" / "bert_large.h5") as f, h5py.File(tmp_path / "b" / "L" / "bert_large.h5") as g:
        assert all(np.array_equal(f[u][()], g[u][()]) for u in a["ids"]["trn"])


@pytest.mark.parametrize("kwargs, msg", [
    ({"level": "impossible"}, "level: got 'impossible'; allowed: 'easy', 'medium', 'hard', 'asymmetric'"),
    ({"level": "medium", "sizes": (2, 4, 4)}, "sizes: got"),
    ({"level": "medium", "frames": ((0, 3), (1, 2), (1, 2))}, "frames: got"),
])
def test_corpus_bad_spec(tmp_path, kwargs, msg):
    level = kwargs.pop("level")
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        write_mmin_corpus(tmp_path, corpus_spec(level, **kwargs))


def test_levels_are_named():
    assert set(LEVELS) == {"easy", "medium", "hard", "asymmetric"}
    assert corpus_spec("asymmetric").noise == (0.3, 0.9, 2.0)


def test_latent_spread_by_hand(cfg3, splits3):
    model = rc.build_model(cfg3.model, splits3.train.dims, splits3.num_classes, seed=0).eval()
    got = latent_spread(model, splits3.val, batch_size=7)  # several chunks
    with torch.no_grad():
        mu, logvar = model.encode(*splits3.val.inputs())
    assert torch.allclose(got[0], mu.std(1, unbiased=False).mean(-1), atol=1e-6)
    assert torch.allclose(got[1], (logvar / 2).exp().mean((1, 2)), atol=1e-6)
    no_vib = rc.build_model(rc.override(cfg3, model={"vib": False}).model, splits3.train.dims, 4, seed=0)
    assert torch.isnan(latent_spread(no_vib, splits3.val)[1]).all()


def test_collapse_warning_rule():
    row = {"epoch": 7, "spread_A": 0.2, "post_sd_A": 0.3, "spread_V": 0.02, "post_sd_V": 0.3}
    msg = collapse_warning(row, ("A", "V"))
    assert msg.startswith("latent collapse at epoch 7") and "V (spread 0.02, posterior SD 0.3)" in msg
    assert "A (" not in msg
    assert collapse_warning({**row, "spread_V": 0.031}, ("A", "V")) is None  # ratio 0.103 > 0.1
    assert collapse_warning({"epoch": 0, "spread_A": 5e-4, "post_sd_A": math.nan}, ("A",))  # no VIB
    assert collapse_warning({"epoch": 0}, ("A",)) is None  # a row from before the check


def _scaled_paper(init: str, beta1: float) -> rc.Config:
    """The `paper` architecture scaled down to a CI budget (d 32, one attention layer, two
    generator blocks, 16 epochs of 10 steps at lr 1e-3)."""
    return rc.override(rc.preset("paper"), mask={"rates": (0.2, 0.5, 0.8)},
                       model={"latent_dim": 32, "num_layers": 1, "num_heads": 4, "gen_layers": (64, 32),
                              "gen_blocks": 2, "head_layers": (64,), "init": init},
                       train={"device": "cpu", "epochs_constant": 8, "epochs_decay": 8,
                              "batch_size": 32, "lr": 1e-3, "adam_beta1": beta1})


@pytest.mark.slow
def test_scaled_paper_learns_with_the_release_init(corpus):
    """Seen (seeds 0-2): overall test macro-F1 0.65-0.70, chance 0.25; no latent collapses."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", LatentCollapseWarning)
        result = rc.fit(_scaled_paper("release", 0.9), load_mmin(corpus[0]))
    test = result.test.set_index("pattern")["f1"]
    assert test["overall"] > 0.55 and test["AVL"] > 0.6 and not result.warnings


@pytest.mark.slow
def test_scaled_paper_collapses_with_torch_init_and_says_so(corpus):
    """PyTorch's initialisation and beta1 0.5 (the paper preset before 2026-12-02): the V latents
    collapse (spread / posterior SD 0.05-0.07 seen, seeds 0-2) and the run is reported."""
    with pytest.warns(LatentCollapseWarning, match="latent collapse at epoch"):
        result = rc.fit(_scaled_paper("torch", 0.5), load_mmin(corpus[0]))
    assert result.warnings and "V (spread" in result.warnings[0]
    assert result.test.set_index("pattern").loc["overall", "f1"] < 0.5


def test_collapse_after_the_selected_epoch_is_reported(cfg3, splits3, monkeypatch):
    """A run selected at an early epoch whose latents collapse later still says so (seen: a
    torch-initialised paper run selected at epoch 0, collapsed from epoch 1 on)."""
    from redcore_lite import trainer

    calls = iter(range(100))
    monkeypatch.setattr(trainer, "overall_scores", lambda *a: {"wa": 0.5, "ua": 0.5, "f1": 1.0 - next(calls) / 100})
    cfg = rc.override(cfg3, train={"epochs_constant": 2, "epochs_decay": 1})
    last = cfg.epochs - 1
    monkeypatch.setattr(trainer, "collapse_warning", lambda row, mods, ratio=0.1: (
        f"latent collapse at epoch {row['epoch']}" if row["epoch"] == last else None))
    with pytest.warns(LatentCollapseWarning):
        result = rc.fit(cfg, splits3)
    assert result.best_epoch == 0 and result.warnings == [f"latent collapse at epoch {last}"]
