import math

import torch

import redcore_lite as rc
from redcore_lite.vib import MLPBackbone, TransformerBackbone, VIBEncoder, kl_divergence, reparameterize


def test_kl_hand_values():
    mu = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    logvar = torch.tensor([[0.0, 0.0], [math.log(2.0), 0.0]])
    # row 1: 0.5*((1 + 2 - 1 - ln2) + (4 + 1 - 1 - 0)) = 0.5*(6 - ln2)
    expect = torch.tensor([0.0, 0.5 * (6 - math.log(2.0))])
    assert torch.allclose(kl_divergence(mu, logvar), expect)


def test_kl_matches_release_formula():
    mu, logvar = torch.randn(5, 8), torch.randn(5, 8)
    release = -0.0008 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / 5
    assert torch.allclose(0.0016 * kl_divergence(mu, logvar).sum() / 5, release)


def test_reparameterize_mean_and_std():
    torch.manual_seed(0)
    mu, logvar = torch.full((20000, 1), 2.0), torch.full((20000, 1), math.log(9.0))
    z = reparameterize(mu, logvar)
    assert abs(z.mean() - 2.0) < 0.06 and abs(z.std() - 3.0) < 0.06


def test_vib_encoder_shapes_and_no_vib():
    enc = VIBEncoder(MLPBackbone(7, 16, 4), 4)
    mu, lv = enc(torch.randn(3, 7))
    assert mu.shape == lv.shape == (3, 4)
    mu2, lv2 = VIBEncoder(MLPBackbone(7, 16, 4), 4, vib=False)(torch.randn(3, 7))
    assert mu2.shape == (3, 4) and lv2 is None


def test_transformer_padding_is_ignored():
    torch.manual_seed(0)
    tb = TransformerBackbone(5, 8, 2, 2, 0.0, 0.0, mask_padding=True).eval()
    x = torch.randn(2, 6, 5)
    lengths = torch.tensor([4, 6])
    y1 = tb(x, lengths)
    x2 = x.clone()
    x2[0, 4:] = 100.0  # garbage in the padding of sample 0
    y2 = tb(x2, lengths)
    assert torch.allclose(y1, y2, atol=1e-5)
    # the same sample alone, truncated to its length, gives the same encoding
    assert torch.allclose(tb(x[:1, :4], torch.tensor([4])), y1[:1], atol=1e-5)


def test_transformer_packed_equals_padded_with_gradients(monkeypatch):
    """On a CPU the masked Transformer runs its per-frame layers on the valid frames only; the
    padded form (what a GPU or a compiled model runs) gives the same outputs and gradients."""
    torch.manual_seed(0)
    tb = TransformerBackbone(5, 8, 2, 2, 0.0, 0.0, mask_padding=True, fast=True)
    x = torch.randn(4, 7, 5)
    lengths = torch.tensor([7, 2, 5, 1])
    outs, grads = [], []
    for padded in (False, True):
        if padded:
            monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
        tb.zero_grad()
        y = tb(x, lengths)
        (y * torch.arange(1.0, 9.0)).sum().backward()
        outs.append(y.detach())
        grads.append([p.grad.clone() for p in tb.parameters()])
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    for g0, g1 in zip(*grads):
        torch.testing.assert_close(g0, g1, rtol=1e-4, atol=1e-6)


def test_transformer_release_mode_pools_padding():
    torch.manual_seed(0)
    tb = TransformerBackbone(5, 8, 1, 2, 0.0, 0.0, mask_padding=False).eval()
    x = torch.randn(1, 6, 5)
    x2 = x.clone()
    x2[0, 4:] = 100.0
    assert not torch.allclose(tb(x, torch.tensor([4])), tb(x2, torch.tensor([4])))


def test_eval_uses_mu_unless_release_switch(cfg3):
    model = rc.build_model(cfg3.model, (6, 5, 4), 4, seed=0).eval()
    xs = [torch.randn(3, d) for d in (6, 5, 4)]
    a = torch.ones(3, 3, dtype=torch.bool)
    out = model(xs, [None] * 3, a)
    assert torch.equal(out.z, out.mu)
    import dataclasses
    rel = rc.build_model(dataclasses.replace(cfg3.model, sample_at_eval=True), (6, 5, 4), 4, seed=0).eval()
    out2 = rel(xs, [None] * 3, a)
    assert not torch.equal(out2.z, out2.mu)


def test_cpu_speedups_are_opt_in_and_change_only_training_randomness():
    """model.cpu_speedups: off (the default, and the paper preset), dropout is torch's and the
    Transformer runs padded; on (smoke, teach), the CPU speed paths. The same weights give the
    same evaluation outputs either way; in training the dropout draws differ."""
    import redcore_lite as rc
    from redcore_lite.layers import Dropout

    assert not rc.preset("paper").model.cpu_speedups
    assert rc.preset("smoke").model.cpu_speedups and rc.preset("teach").model.cpu_speedups
    # a config saved before the switch existed ran the speed paths
    assert rc.config_from_dict({"model": {"init": "torch"}}).model.cpu_speedups
    assert not rc.config_from_dict({"model": {"init": "torch", "cpu_speedups": False}}).model.cpu_speedups
    x = torch.randn(64, 32)
    torch.manual_seed(3)
    ref = torch.nn.functional.dropout(x, 0.3, True)
    torch.manual_seed(3)
    assert torch.equal(Dropout(0.3).train()(x), ref)  # off: torch's dropout, draw for draw
    torch.manual_seed(3)
    assert not torch.equal(Dropout(0.3, fast=True).train()(x), ref)
    torch.manual_seed(0)
    slow = TransformerBackbone(5, 8, 2, 2, 0.2, 0.1, mask_padding=True)
    fast = TransformerBackbone(5, 8, 2, 2, 0.2, 0.1, mask_padding=True, fast=True)
    fast.load_state_dict(slow.state_dict())
    x, lengths = torch.randn(4, 7, 5), torch.tensor([7, 2, 5, 1])
    torch.testing.assert_close(fast.eval()(x, lengths), slow.eval()(x, lengths), rtol=1e-5, atol=1e-6)
    torch.manual_seed(1)
    a = slow.train()(x, lengths)
    torch.manual_seed(1)
    b = fast.train()(x, lengths)
    assert not torch.allclose(a, b)
