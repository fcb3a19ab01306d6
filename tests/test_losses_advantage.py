import math

import pytest
import torch

from redcore_lite.advantage import (RelativeAdvantage, beta_step, ema_update, initial_beta,
                                    relative_advantage)
from redcore_lite.config import AdvantageConfig
from redcore_lite.losses import masked_kl, reconstruction_loss


def test_masked_kl_hand():
    # M = 2, B = 2, d = 1
    mu = torch.tensor([[[1.0], [0.0]], [[2.0], [1.0]]])
    logvar = torch.zeros(2, 2, 1)
    avail = torch.tensor([[1, 0], [1, 1]], dtype=torch.bool)  # sample 0 lacks modality 1
    # per-sample KL = 0.5 * mu^2 ; modality 0: (0.5 + 0) / 2 ; modality 1: only sample 1: 0.5 / 2
    out = masked_kl(mu, logvar, avail, weight=2.0)
    assert torch.allclose(out, torch.tensor([2.0 * 0.5 / 2, 2.0 * 0.5 / 2]))


def test_reconstruction_hand_and_empty_modality():
    g = torch.tensor([[[1.0, 1.0], [0.0, 0.0], [3.0, 0.0]],
                      [[0.0, 0.0], [5.0, 5.0], [0.0, 0.0]]])
    z = torch.zeros_like(g)
    avail = torch.tensor([[1, 0], [0, 0], [1, 0]], dtype=torch.bool)  # modality 1 absent from batch
    rec, obs = reconstruction_loss(g, z, avail)
    # modality 0: samples 0 and 2: (2 + 9) / 2 ; modality 1: no observation -> 0, not 0/0
    assert torch.allclose(rec, torch.tensor([5.5, 0.0]))
    assert obs.tolist() == [True, False]
    assert torch.isfinite(rec).all()


def test_reconstruction_gradient_reaches_target():
    g = torch.randn(2, 4, 3, requires_grad=True)
    z = torch.randn(2, 4, 3, requires_grad=True)
    rec, _ = reconstruction_loss(g, z, torch.ones(4, 2, dtype=torch.bool))
    rec.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0  # target not detached (release)


def test_ema_keeps_unobserved():
    lbar = torch.tensor([1.0, 2.0])
    out = ema_update(lbar, torch.tensor([3.0, 100.0]), torch.tensor([True, False]), rho=0.7)
    assert torch.allclose(out, torch.tensor([0.3 * 1.0 + 0.7 * 3.0, 2.0]))


def test_relative_advantage_hand_and_zero_mean():
    ra = relative_advantage(torch.tensor([1.0, 2.0, 3.0]))
    assert torch.allclose(ra, torch.tensor([0.5, 0.0, -0.5]))
    assert abs(float(ra.sum())) < 1e-6
    assert torch.equal(relative_advantage(torch.zeros(3)), torch.zeros(3))


def test_beta_step_floor_and_normalisation():
    beta = torch.tensor([1.0, 1.0, 1.0])
    ra = torch.tensor([5.0, 0.0, -5.0])
    out = beta_step(beta, ra, eta=0.3, floor=0.1)
    raw = torch.tensor([0.1, 1.0, 2.5])  # 1 - 1.5 = -0.5 floored to 0.1
    assert torch.allclose(out, raw / raw.norm())
    assert abs(float(out.norm()) - 1.0) < 1e-6


def test_state_sequence_matches_hand_computation():
    cfg = AdvantageConfig(rho=0.5, eta=0.1, growth=2.0, growth_every=2, interval=2, floor=0.1)
    st = RelativeAdvantage(cfg, 2)
    recs = [torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0]), torch.tensor([4.0, 0.0])]
    obs = [torch.tensor([True, True]), torch.tensor([True, True]), torch.tensor([True, False])]
    # hand: t=0: lbar=[.5,1.5], ra=[.5,-.5], eta=.2 (growth at t=0), beta=norm([1-.1, 1+.1])
    lbar, beta, eta = torch.zeros(2), torch.ones(2), 0.1
    for t, (r, o) in enumerate(zip(recs, obs)):
        lbar = torch.where(o, 0.5 * lbar + 0.5 * r, lbar)
        mean = lbar.mean()
        ra = (mean - lbar) / mean
        if t % 2 == 0:
            eta *= 2.0
            b = (beta - eta * ra).clamp(min=0.1)
            beta = b / b.norm()
        out = st.step(r, o)
        assert torch.allclose(out, beta) and torch.allclose(st.lbar, lbar) and st.eta == pytest.approx(eta)
    assert st.t == 3
    assert torch.allclose(st.lbar, torch.tensor([0.5 * (0.5 * 0.5 + 1.0) + 2.0, 0.5 * 1.5 + 1.0]))


def test_eta_growth_schedule():
    st = RelativeAdvantage(AdvantageConfig(eta=0.1, growth=1.5, growth_every=500), 3)
    etas = []
    for _ in range(1001):
        st.step(torch.ones(3), torch.ones(3, dtype=torch.bool))
        etas.append(st.eta)
    assert etas[0] == pytest.approx(0.15) and etas[499] == pytest.approx(0.15)
    assert etas[500] == pytest.approx(0.225) and etas[1000] == pytest.approx(0.3375)


def test_all_unobserved_keeps_beta_finite():
    st = RelativeAdvantage(AdvantageConfig(interval=1), 3)
    for _ in range(5):
        b = st.step(torch.zeros(3), torch.zeros(3, dtype=torch.bool))
    assert torch.isfinite(b).all() and torch.allclose(b, torch.full((3,), 1 / math.sqrt(3)))


def test_initial_beta_modes():
    assert torch.equal(initial_beta("fixed", 3), torch.ones(3))
    assert torch.allclose(initial_beta("uniform", 4), torch.full((4,), 0.5))
    inv = initial_beta("inverse", 2, (0.5, 0.75))  # 1/(0.5), 1/(0.25) -> [2, 4] / sqrt(20)
    assert torch.allclose(inv, torch.tensor([2.0, 4.0]) / math.sqrt(20))
    with pytest.raises(ValueError, match="advantage.mode"):
        initial_beta("bogus", 3)


def test_fixed_modes_never_move_beta():
    for mode in ("fixed", "uniform", "inverse"):
        st = RelativeAdvantage(AdvantageConfig(mode=mode, interval=1), 3, rates=(0.2, 0.5, 0.8))
        b0 = st.beta.clone()
        for r in (torch.tensor([1.0, 2.0, 9.0]), torch.tensor([3.0, 1.0, 1.0])):
            st.step(r, torch.ones(3, dtype=torch.bool))
        assert torch.equal(st.beta, b0)
        assert not torch.equal(st.ra, torch.zeros(3))  # RA is still tracked for plots


def test_state_dict_roundtrip():
    st = RelativeAdvantage(AdvantageConfig(interval=1), 3)
    st.step(torch.tensor([1.0, 2.0, 3.0]), torch.ones(3, dtype=torch.bool))
    st2 = RelativeAdvantage(AdvantageConfig(interval=1), 3)
    st2.load_state_dict(st.state_dict())
    r = torch.tensor([2.0, 2.0, 1.0])
    assert torch.equal(st.step(r, torch.ones(3, dtype=torch.bool)),
                       st2.step(r, torch.ones(3, dtype=torch.bool)))


@pytest.mark.parametrize("field, value", [("rho", 0.0), ("rho", 1.5), ("interval", 0),
                                          ("floor", 0.0), ("growth_every", -1)])
def test_bad_advantage_config(field, value):
    import dataclasses
    with pytest.raises(ValueError, match=f"advantage.{field}"):
        RelativeAdvantage(dataclasses.replace(AdvantageConfig(), **{field: value}), 3)
