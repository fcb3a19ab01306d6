"""Extension points: a new dataset and a new encoder plug in from outside the library
(redcore_lite.registry), and the built-in datasets load exactly as before."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

import redcore_lite as rc
from redcore_lite import cli, registry

from conftest import tiny_config


# ---------------------------------------------------------------- a user's dataset (not in the library)

@dataclass(frozen=True)
class RingsConfig:
    num_samples: int = 240
    noise: float = 0.1
    radii: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0)


def load_rings(cfg: RingsConfig, seed: int) -> rc.Splits:
    """Four classes on four rings; modality A sees x, V sees y, L sees the radius (noisy)."""
    g = np.random.default_rng(seed)
    y = np.arange(cfg.num_samples) % len(cfg.radii)
    angle = g.uniform(0, 2 * np.pi, cfg.num_samples)
    r = np.asarray(cfg.radii)[y]
    feats = {"A": np.c_[r * np.cos(angle), g.normal(size=cfg.num_samples)],
             "V": np.c_[r * np.sin(angle), g.normal(size=cfg.num_samples)],
             "L": np.c_[r + cfg.noise * g.normal(size=cfg.num_samples), g.normal(size=cfg.num_samples)]}
    data = rc.from_arrays(feats, y)
    return rc.split_data(data, (0.6, 0.2, 0.2), seed)


@pytest.fixture
def rings():
    spec = registry.register_dataset("rings", load_rings, RingsConfig, "four rings", overwrite=True)
    yield spec
    registry._DATASETS.pop("rings", None)


def test_builtin_datasets_are_registered_with_their_own_configs():
    assert registry.dataset_names()[:7] == ("synthetic", "mfeat", "avdigits", "iemocap", "msp",
                                            "mosei", "custom")
    mfeat = registry.dataset_config(rc.override(rc.preset("teach"), data={"name": "mfeat"}).data)
    assert mfeat == rc.datasets.MfeatData()
    avd = registry.dataset_config(rc.override(rc.preset("teach"),
                                              data={"name": "avdigits", "fold": 3}).data)
    assert (avd.name, avd.fold, avd.holdout) == ("avdigits", 3, "speakers")


def test_synthetic_through_the_registry_is_the_old_recipe():
    cfg = tiny_config(3)
    got = rc.load_data(cfg.data, seed=5)
    d = cfg.data
    want = rc.normalise(rc.stratified_split(rc.make_synthetic(
        d.num_samples, d.dims, d.num_classes, d.snr, d.seq_len, seed=5), d.split, seed=5))
    for part in ("train", "val", "test"):
        a, b = getattr(got, part), getattr(want, part)
        assert torch.equal(a.labels, b.labels)
        for m in a.features:
            assert torch.equal(a.features[m], b.features[m])


def test_saved_configs_keep_their_shape():
    """The new fields (data.options, model.backbones) stay out of saved configs while empty, so a
    config written before them reads back equal and a new one is written as before."""
    d = rc.config_to_dict(rc.preset("teach"))
    assert "options" not in d["data"] and "backbones" not in d["model"]
    assert rc.config_from_dict(d) == rc.preset("teach")


def test_a_new_dataset_plugs_in_without_editing_the_library(rings, tmp_path, capsys):
    cfg = rc.override(tiny_config(3), data={"name": "rings", "options": {"noise": 0.05}},
                      mask={"rates": (0.2, 0.2, 0.2)},
                      train={"epochs_constant": 15, "epochs_decay": 5, "lr": 3e-3})
    assert registry.dataset_config(cfg.data) == RingsConfig(noise=0.05)
    splits = rc.load_data(cfg.data, seed=0)
    assert splits.modalities == ("A", "V", "L") and len(splits.train) == 144
    res = rc.fit(cfg, splits)
    assert res.test.set_index("pattern").loc["L", "wa"] > 0.4  # the radius alone (0.46 seen); chance 0.25
    # round trip through a saved config (options as pairs) and the command line (--config)
    assert rc.config_from_dict(json.loads(json.dumps(rc.config_to_dict(cfg)))) == cfg
    (tmp_path / "c.json").write_text(json.dumps({"data": {"options": {"noise": 0.05}}}))
    code = cli.main(["train", "rings", "--preset", "smoke", "--config", str(tmp_path / "c.json"),
                     "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["data"]
    assert saved["name"] == "rings" and saved["options"] == [["noise", 0.05]]


def test_dataset_registry_errors(rings):
    with pytest.raises(ValueError, match=r"name: 'mfeat' is already registered; allowed: a new name"):
        registry.register_dataset("mfeat", load_rings, RingsConfig)
    with pytest.raises(ValueError, match=r"'rings' is already registered \(overwrite=True"):
        registry.register_dataset("rings", load_rings, RingsConfig)
    with pytest.raises(ValueError, match=r"config: got 3; allowed: a dataclass"):
        registry.register_dataset("x", load_rings, 3)  # type: ignore[arg-type]
    cfg = rc.override(rc.preset("smoke"), data={"name": "rings", "options": {"nois": 1}})
    with pytest.raises(ValueError, match=r"data.options: \['nois'\] are not options of dataset "
                                         r"'rings'; allowed: \['noise', 'num_samples', 'radii'\]"):
        rc.load_data(cfg.data)
    cfg = rc.override(rc.preset("smoke"), data={"name": "rings", "options": {"noise": "high"}})
    with pytest.raises(ValueError, match=r"data.options.noise: got 'high'"):
        rc.load_data(cfg.data)
    with pytest.raises(ValueError, match=r"data.name: got 'nope'; allowed: 'synthetic', 'mfeat'"):
        rc.load_data(rc.override(rc.preset("smoke"), data={"name": "nope"}).data)


# ---------------------------------------------------------------- a user's encoder


class GatedEncoder(nn.Module):
    """A user's backbone: a gated linear unit, ``[B, D] -> [B, d]`` (lengths unused)."""

    def __init__(self, input_dim: int, latent_dim: int):
        super().__init__()
        self.value, self.gate = nn.Linear(input_dim, latent_dim), nn.Linear(input_dim, latent_dim)

    def forward(self, x, lengths=None):
        return self.value(x) * torch.sigmoid(self.gate(x))


@pytest.fixture
def gated():
    registry.register_encoder("gated", lambda dim, d, config: GatedEncoder(dim, d), inputs="vectors",
                              overwrite=True)
    yield
    registry._ENCODERS.pop("gated", None)


def test_a_custom_encoder_trains_for_every_or_one_modality(gated, tmp_path):
    cfg = rc.override(tiny_config(3), model={"backbone": "gated"})
    splits = rc.load_data(cfg.data)
    res = rc.fit(cfg, splits, checkpoint=tmp_path / "ckpt.pt")
    assert all(isinstance(e.backbone, GatedEncoder) for e in res.model.encoders)
    assert np.isfinite(res.history["loss"]).all()
    assert res.history["loss"].iloc[-5:].mean() < res.history["loss"].iloc[:5].mean()  # it learns
    model, saved, _ = rc.load_model(tmp_path / "ckpt.pt")  # reloads where "gated" is registered
    assert saved.model.backbone == "gated" and isinstance(model.encoders[0].backbone, GatedEncoder)
    # per modality: only V gets the user's encoder; A and L keep the mlp, with the same weights as
    # an all-mlp model (each part has its own seed)
    mixed = rc.build_model(rc.override(cfg, model={"backbone": "mlp", "backbones": ("", "gated", "")}).model,
                           splits.train.dims, splits.num_classes, seed=0)
    plain = rc.build_model(rc.override(cfg, model={"backbone": "mlp"}).model, splits.train.dims,
                           splits.num_classes, seed=0)
    assert isinstance(mixed.encoders[1].backbone, GatedEncoder)
    for m in (0, 2):
        for a, b in zip(mixed.encoders[m].parameters(), plain.encoders[m].parameters()):
            assert torch.equal(a, b)


def test_encoder_registry_errors(gated):
    with pytest.raises(ValueError, match=r"name: 'mlp' is a built-in backbone"):
        registry.register_encoder("mlp", GatedEncoder)
    with pytest.raises(ValueError, match=r"inputs: got 'images'"):
        registry.register_encoder("y", GatedEncoder, inputs="images")
    cfg = tiny_config(3)
    with pytest.raises(ValueError, match=r"model.backbone: got 'nope'; allowed: 'mlp', 'transformer', "
                                         r"'gated'"):
        rc.fit(rc.override(cfg, model={"backbone": "nope"}))
    with pytest.raises(ValueError, match=r"model.backbones: got \['gated'\] for 3 modalities"):
        rc.fit(rc.override(cfg, model={"backbones": ("gated",)}))
    seq = rc.override(cfg, data={"seq_len": 4}, model={"backbone": "gated"})
    with pytest.raises(ValueError, match=r"model.backbone: got 'gated' but modality 'A' has shape"):
        rc.fit(seq)
