import dataclasses

import pytest
import torch

import redcore_lite as rc


def test_presets_and_auto(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert rc.preset("auto") == rc.preset("smoke")
    monkeypatch.delenv("CI")
    assert rc.preset("auto") == rc.preset("teach")
    with pytest.raises(ValueError, match="preset"):
        rc.preset("huge")


def test_paper_preset_is_the_release_recipe():
    c = rc.preset("paper")
    assert (c.model.backbone, c.model.latent_dim, c.model.gen_blocks, c.model.gen_layers) == (
        "transformer", 128, 5, (256, 128, 64))
    assert (c.model.num_layers, c.model.num_heads, c.model.head_layers) == (3, 8, (128, 128))
    assert (c.train.batch_size, c.train.lr, c.train.epochs_constant, c.train.epochs_decay) == (
        128, 2e-4, 30, 30)
    assert (c.loss.w_rec, c.loss.kl_weight) == (0.15, 0.0016)
    a = c.advantage
    assert (a.rho, a.eta, a.growth, a.growth_every, a.interval, a.floor) == (0.7, 0.1, 1.5, 500, 3, 0.1)


def test_frozen_and_override():
    c = rc.preset("smoke")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.train.lr = 1.0
    c2 = rc.override(c, train={"lr": 0.5})
    assert c2.train.lr == 0.5 and c.train.lr != 0.5
    with pytest.raises(ValueError, match="unknown field"):
        rc.override(c, train={"learning_rate": 1})
    with pytest.raises(ValueError, match="unknown section"):
        rc.override(c, optimiser={"lr": 1})


def test_dict_roundtrip():
    c = rc.override(rc.preset("paper"), mask={"rates": (0.1, 0.2, 0.3)})
    assert rc.config_from_dict(rc.config_to_dict(c)) == c


def test_teach_preset_is_the_fast_small_model():
    """benchmarks/teach_time.py measures this model against the 1.5 s target (issue 6)."""
    m = rc.preset("teach").model
    assert (m.backbone, m.latent_dim, m.mlp_hidden, m.gen_layers, m.gen_blocks, m.head_layers) == (
        "mlp", 32, 64, (64, 32), 1, ())


def test_seed_base_and_threads_read_the_environment(monkeypatch):
    monkeypatch.delenv("REDCORE_SEED_BASE", raising=False)
    monkeypatch.delenv("REDCORE_THREADS", raising=False)
    assert rc.seed_base() == 0 and rc.seed_base(7) == 7 and rc.seed_base("7") == 7
    assert rc.set_threads() == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv("REDCORE_SEED_BASE", "1000")
    monkeypatch.setenv("REDCORE_THREADS", "2")
    assert rc.seed_base() == 1000 and rc.seed_base(3) == 3
    assert rc.set_threads() == 2 and torch.get_num_threads() == 2
    assert rc.set_threads(1) == 1 and torch.get_num_threads() == 1
    for bad in (-1, 1.5, True, "x"):
        with pytest.raises(ValueError, match=r"^SEED: got .*; allowed: an integer >= 0 or 'auto'$"):
            rc.seed_base(bad)
    monkeypatch.setenv("REDCORE_THREADS", "0")
    with pytest.raises(ValueError, match=r"^\$REDCORE_THREADS: got '0'; allowed: an integer >= 1"):
        rc.set_threads()
