"""The release's initialisation (model.init="release"), the release defaults of the paper preset, and
that what was computed before them still reproduces."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import redcore_lite as rc
from redcore_lite.generators import StackedLinear
from redcore_lite.model import release_init
from redcore_lite.vib import _Block

ROOT = Path(__file__).resolve().parent.parent
PAPER_DIMS = (130, 342, 1024)


def _paper_model(init: str) -> rc.RedCore:
    return rc.build_model(rc.override(rc.preset("paper"), model={"init": init}).model,
                          PAPER_DIMS, 4, seed=0).requires_grad_(False)


def _check_normal(w: torch.Tensor, std: float, what: str) -> None:
    """``w`` looks like N(0, std^2): mean and SD within 5 standard errors."""
    n = w.numel()
    mean, sd = float(w.mean()), float(w.std())
    assert abs(mean) < 5 * std / math.sqrt(n), f"{what}: mean {mean:.4g} (std {std:.4g}, n {n})"
    assert abs(sd / std - 1) < 5 / math.sqrt(2 * n), f"{what}: SD {sd:.4g}, expected {std:.4g} (n {n})"


def test_release_init_every_layer_type():
    """kaiming-normal fan-in weights and zero biases on every linear layer (each generator and
    unimodal-head slice by its own fan-in), N(0, 1/d) attention input projection with zero bias,
    LayerNorms at 1 and 0: what the release's init_net leaves."""
    model = _paper_model("release")
    seen = {"linear": 0, "stacked": 0, "qkv": 0, "layernorm": 0}
    qkv = {id(blk.qkv) for blk in model.modules() if isinstance(blk, _Block)}
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and id(mod) in qkv:
            _check_normal(mod.weight, mod.weight.shape[1] ** -0.5, name)
            assert not mod.bias.any(), name
            seen["qkv"] += 1
        elif isinstance(mod, nn.Linear):
            _check_normal(mod.weight, math.sqrt(2.0 / mod.in_features), name)
            assert not mod.bias.any(), name
            seen["linear"] += 1
        elif isinstance(mod, StackedLinear):
            for m in range(mod.weight.shape[0]):
                _check_normal(mod.weight[m], math.sqrt(2.0 / mod.weight.shape[1]), f"{name}[{m}]")
            assert not mod.bias.any(), name
            seen["stacked"] += 1
        elif isinstance(mod, nn.LayerNorm):
            assert bool((mod.weight == 1).all()) and not mod.bias.any(), name
            seen["layernorm"] += 1
    # 3 encoders x (input projection, 3 blocks x (out, fc, proj), VIB head); fused head 3 layers
    assert seen["linear"] == 3 * (1 + 3 * 3 + 1) + 3
    assert seen["qkv"] == 9 and seen["layernorm"] == 3 * 3 * 4
    # generators: 5 blocks x (3 encoder + 3 decoder layers) + 2 transition; unimodal heads 3
    assert seen["stacked"] == 5 * 6 + 2 + 3


def test_torch_init_keeps_pytorch_defaults():
    """init="torch": PyTorch's uniform(+-1/sqrt(fan_in)) weights and biases (not the release's)."""
    model = _paper_model("torch")
    head = model.fused_head[0]
    bound = 1 / math.sqrt(head.in_features)
    assert float(head.weight.abs().max()) <= bound and float(head.bias.abs().max()) > 0
    assert float(head.weight.std()) == pytest.approx(bound / math.sqrt(3), rel=0.05)


def test_release_init_is_seeded_and_in_place():
    a, b = _paper_model("release"), _paper_model("release")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    layer = nn.Linear(8, 4)
    assert release_init(layer) is layer and not layer.bias.any()


def test_paper_preset_release_defaults():
    """Every value the release's options and train_miss.py give (checked against its code)."""
    c = rc.preset("paper")
    assert (c.model.init, c.train.adam_beta1, c.train.lr, c.train.batch_size) == ("release", 0.9, 2e-4, 128)
    assert (c.train.epochs_constant, c.train.epochs_decay, c.train.clip_norm) == (30, 30, 1.0)
    assert (c.model.head_layers, c.model.head_dropout) == ((128, 128), 0.5)
    assert (c.model.attn_dropout, c.model.ff_dropout, c.model.num_layers, c.model.num_heads) == (0.2, 0.1, 3, 8)
    assert (c.model.gen_layers, c.model.gen_blocks, c.model.latent_dim) == ((256, 128, 64), 5, 128)
    assert (c.loss.w_rec, c.loss.kl_weight) == (0.15, 0.0016)
    a = c.advantage
    assert (a.rho, a.eta, a.growth, a.growth_every, a.interval, a.floor) == (0.7, 0.1, 1.5, 500, 3, 0.1)
    # the teaching presets keep what their committed results were computed with
    for name in ("smoke", "teach"):
        assert (rc.preset(name).model.init, rc.preset(name).train.adam_beta1) == ("torch", 0.5)


def test_config_saved_before_init_existed_reads_as_torch():
    d = rc.config_to_dict(rc.preset("paper"))
    del d["model"]["init"]
    assert rc.config_from_dict(d).model.init == "torch"
    assert rc.config_from_dict(rc.config_to_dict(rc.preset("paper"))).model.init == "release"


def test_bad_init_is_refused():
    cfg = rc.override(rc.preset("smoke"), model={"init": "xavier"})
    with pytest.raises(ValueError, match=r"model.init: got 'xavier'; allowed: 'release', 'torch'"):
        rc.build_model(cfg.model, (4, 3), 2)


def test_committed_teach_sweep_config_is_todays_teach_preset():
    """The committed mfeat sweep was run with what the teach preset still gives (its data aside): the
    change of the dataclass defaults (model.init, train.adam_beta1) did not touch the preset."""
    manifest = json.loads((ROOT / "data" / "results" / "mfeat.json").read_text())
    base = rc.config_from_dict(manifest["config"])
    assert base == rc.override(rc.preset("teach"), data={"name": "mfeat"})
    assert (base.model.init, base.train.adam_beta1) == ("torch", 0.5)
    fresh = rc.config.Config()  # today's dataclass defaults differ: the preset pins the old ones
    assert (fresh.model.init, fresh.train.adam_beta1) != ("torch", 0.5)


@pytest.mark.slow
def test_teach_run_with_old_defaults_is_todays_teach_run():
    """On this machine (never against numbers computed on another CPU): a teach fit of the committed
    sweep's config equals, bit for bit, a fit whose init and Adam beta1 are written out as the
    defaults were before they changed, and differs from one with today's defaults (so the check can
    fail). The fit's overall test F1 lies within the committed seeds' spread (mean +- 4 sd over the
    10 committed seeds of the same cell): a statement about a distribution, which holds on any
    floating-point path and for any seed base (REDCORE_SEED_BASE)."""
    manifest = json.loads((ROOT / "data" / "results" / "mfeat.json").read_text())
    base = rc.config_from_dict(manifest["config"])
    seed = rc.seed_base()
    old = rc.override(base, model={"init": "torch"}, train={"adam_beta1": 0.5})
    new = rc.override(base, model={"init": "release"}, train={"adam_beta1": 0.9})
    runs = {name: rc.fit(rc.sweep.run_config(cfg, "redcore", "imb_258", seed))
            for name, cfg in (("committed", base), ("old", old), ("new", new))}
    hist = {name: r.history for name, r in runs.items()}
    pd.testing.assert_frame_equal(hist["committed"], hist["old"])
    assert not hist["committed"]["loss"].equals(hist["new"]["loss"])
    table = pd.read_csv(ROOT / "data" / "results" / "mfeat.csv")
    committed = table.query("variant == 'redcore' and setting == 'imb_258' and split == 'test' "
                            "and pattern == 'overall' and metric == 'f1'")["value"]
    assert len(committed) == 10
    now = float(runs["committed"].test.set_index("pattern").loc["overall", "f1"])
    assert abs(now - committed.mean()) <= 4 * committed.std(ddof=1), (now, committed.describe())
