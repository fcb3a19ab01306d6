import dataclasses

import pytest
import torch

import redcore_lite as rc
from conftest import tiny_config
from redcore_lite.generators import gather_others, others_index
from redcore_lite.model import PresentRows


def _inputs(dims, b=5, seq=None):
    if seq:
        return [torch.randn(b, seq, d) for d in dims], [torch.randint(1, seq + 1, (b,)) for _ in dims]
    return [torch.randn(b, d) for d in dims], [None] * len(dims)


@pytest.mark.parametrize("dims", [(4, 3), (4, 3, 5), (4, 3, 5, 2)])
def test_shapes_any_number_of_modalities(cfg3, dims):
    m = len(dims)
    model = rc.build_model(cfg3.model, dims, 3, seed=0)
    xs, lens = _inputs(dims)
    out = model(xs, lens, torch.ones(5, m, dtype=torch.bool))
    d = cfg3.model.latent_dim
    assert out.logits.shape == (5, 3) and out.unimodal_logits.shape == (m, 5, 3)
    for t in (out.z, out.mu, out.logvar, out.generated, out.imputed):
        assert t.shape == (m, 5, d)


def test_transformer_model_shapes():
    cfg = rc.preset("smoke").model
    cfg = dataclasses.replace(cfg, backbone="transformer", num_layers=1, num_heads=2)
    model = rc.build_model(cfg, (4, 6), 2, seed=0)
    xs, lens = _inputs((4, 6), seq=7)
    out = model(xs, lens, torch.tensor([[1, 0], [1, 1], [0, 1], [1, 1], [1, 1]], dtype=torch.bool))
    assert out.logits.shape == (5, 2)


def test_gather_others():
    z = torch.arange(3)[:, None, None].float().expand(3, 2, 1)  # z_m filled with m
    g = gather_others(z, others_index(3))
    assert g[0, 0].tolist() == [1, 2] and g[1, 0].tolist() == [0, 2] and g[2, 0].tolist() == [0, 1]


def test_imputation_by_hand(cfg3):
    model = rc.build_model(cfg3.model, (6, 5, 4), 4, seed=0).eval()
    xs, lens = _inputs((6, 5, 4))
    a = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=torch.bool)
    out = model(xs, lens, a)
    af = a.t().float()[..., None]
    assert torch.allclose(out.imputed, af * out.z + (1 - af) * out.generated)
    # missing input is zeroed before the encoder
    mu0 = model.encoders[0](torch.zeros(1, 6))[0]
    assert torch.allclose(out.mu[0, 1], mu0[0], atol=1e-6)


@pytest.mark.parametrize("num_mod", [2, 3, 4])
@pytest.mark.parametrize("imputation", ["generator", "zero"])
@pytest.mark.parametrize("subset", [False, True])
def test_predict_patterns_equals_forward(num_mod, imputation, subset):
    """Every pattern (the stacked generator path) and a subset whose missing sets differ in size
    (the general path) give the logits of a plain forward pass under that pattern."""
    cfg = tiny_config(num_mod, model={"imputation": imputation})
    dims = (6, 5, 4, 3)[:num_mod]
    model = rc.build_model(cfg.model, dims, 4, seed=0).eval()
    xs, lens = _inputs(dims, b=6)
    patterns = rc.eval_patterns(num_mod)
    if subset:
        patterns = patterns[[0, len(patterns) - 1, 1]]
    logits = model.predict_patterns(xs, lens, patterns)
    assert logits.shape == (len(patterns), 6, 4)
    for p in range(len(patterns)):
        a = patterns[p].expand(6, num_mod)
        assert torch.allclose(logits[p], model(xs, lens, a).logits, atol=1e-5)


def test_seeded_parts_are_shared_across_variants(cfg3):
    base = rc.build_model(cfg3.model, (6, 5, 4), 4, seed=3).state_dict()
    for change in ({"unimodal_heads": False}, {"vib": False}, {"imputation": "zero"}):
        other = rc.build_model(dataclasses.replace(cfg3.model, **change), (6, 5, 4), 4, seed=3).state_dict()
        shared = [k for k in other if k in base and other[k].shape == base[k].shape]
        assert len(shared) > 10
        for k in shared:
            if not (change.get("vib") is False and k.startswith("encoders") and ".head." in k):
                assert torch.equal(other[k], base[k]), (change, k)


def test_build_model_rejects_bad_config(cfg3):
    with pytest.raises(ValueError, match="model.backbone"):
        rc.build_model(dataclasses.replace(cfg3.model, backbone="lstm"), (3, 3), 2)
    with pytest.raises(ValueError, match="model.imputation"):
        rc.build_model(dataclasses.replace(cfg3.model, imputation="mean"), (3, 3), 2)
    with pytest.raises(ValueError, match="input_dims"):
        rc.build_model(cfg3.model, (3,), 2)


def test_shared_zero_encoding_equals_zeroed_inputs():
    cfg = dataclasses.replace(rc.preset("smoke").model, backbone="transformer", num_layers=2, num_heads=2)
    for mask_padding in (True, False):
        model = rc.build_model(dataclasses.replace(cfg, mask_padding=mask_padding), (4, 6, 3), 3,
                               seed=0).eval()
        xs, lens = _inputs((4, 6, 3), b=6, seq=7)
        a = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0]],
                         dtype=torch.bool)
        zeroed = [x * a[:, m].float()[:, None, None] for m, x in enumerate(xs)]
        mu, logvar = model.encode(zeroed, lens)
        mu2, logvar2 = model.encode_masked(xs, lens, a)
        assert torch.allclose(mu, mu2, atol=1e-5) and torch.allclose(logvar, logvar2, atol=1e-5)
        present = PresentRows.build(a)
        # by hand: per modality a zero row then the present rows; (m, i) -> its row
        assert [r.tolist() for r in present.rows] == [[0, 2, 4], [1, 2, 4], [0, 1, 3, 4]]
        assert present.pos.tolist() == [1, 0, 2, 0, 3, 0] + [4, 5, 6, 4, 7, 4] + [9, 10, 8, 11, 12, 8]
        mu3, _ = model.encode_masked(xs, lens, a, present)
        assert torch.equal(mu2, mu3)
