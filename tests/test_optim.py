"""redcore_lite.optim.Adam: the arithmetic of torch.optim.Adam, bit for bit, without torch.optim."""
import pytest
import torch

from redcore_lite import optim


def _pair(seed=0):
    torch.manual_seed(seed)
    a = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    b = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    b.load_state_dict(a.state_dict())
    return a, b


def _grads(net, step, skip_last_bias=False):
    gen = torch.Generator().manual_seed(100 + step)
    for i, p in enumerate(net.parameters()):
        p.grad = None if (skip_last_bias and i == 3) else torch.randn(p.shape, generator=gen)


@pytest.mark.parametrize("fused", [True, False])
def test_matches_torch_adam_bit_for_bit(fused, monkeypatch):
    if not fused:
        monkeypatch.setattr(optim, "_fused_available", lambda device: False)
    ours_net, ref_net = _pair()
    ours = optim.Adam(ours_net.parameters(), lr=3e-3, betas=(0.5, 0.999))
    assert ours.fused is fused
    ref = torch.optim.Adam(ref_net.parameters(), lr=3e-3, betas=(0.5, 0.999),
                           **({"fused": True} if fused else {"foreach": True}))
    for step in range(6):
        lr = 3e-3 * (1.0 if step < 3 else 0.5)  # a schedule, set as the trainer does
        ours.lr = lr
        ref.param_groups[0]["lr"] = lr
        skip = step in (2, 3)  # a parameter without a gradient is left alone
        _grads(ours_net, step, skip)
        _grads(ref_net, step, skip)
        ours.step()
        ref.step()
        for p, q in zip(ours_net.parameters(), ref_net.parameters()):
            assert torch.equal(p, q)
    ours.zero_grad()
    assert all(p.grad is None for p in ours_net.parameters())


def test_by_hand_first_step():
    """First step: m = (1 - b1) g, v = (1 - b2) g^2, bias-corrected, p -= lr m_hat / (sqrt(v_hat) + eps)."""
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = optim.Adam([p], lr=0.1, betas=(0.5, 0.999), eps=1e-8)
    p.grad = torch.tensor([0.3, -4.0])
    opt.step()
    # m_hat = g, v_hat = g^2, so the step is lr * sign(g) (up to eps)
    assert torch.allclose(p.detach(), torch.tensor([0.9, -1.9]), atol=1e-6)
    assert torch.equal(opt.steps[0], torch.tensor(1.0))


def test_state_dict_round_trip_continues_identically():
    a, b = _pair()
    oa = optim.Adam(a.parameters(), lr=1e-2)
    for step in range(3):
        _grads(a, step)
        oa.step()
    b.load_state_dict(a.state_dict())
    ob = optim.Adam(b.parameters(), lr=5.0)
    ob.load_state_dict(oa.state_dict())
    assert ob.lr == oa.lr
    for step in range(3, 5):
        _grads(a, step)
        _grads(b, step)
        oa.step()
        ob.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_bad_arguments():
    net, _ = _pair()
    with pytest.raises(ValueError, match="lr: got 0"):
        optim.Adam(net.parameters(), lr=0)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(net.parameters(), lr=1e-3, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="params: got no trainable"):
        optim.Adam([], lr=1e-3)
    opt = optim.Adam(net.parameters(), lr=1e-3)
    other = optim.Adam(torch.nn.Linear(2, 2).parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="state\\['exp_avg'\\]"):
        opt.load_state_dict(other.state_dict())
    torch_state = torch.optim.Adam(net.parameters(), lr=1e-3).state_dict()  # an old checkpoint's
    with pytest.raises(ValueError, match="not a state saved by redcore_lite.optim.Adam"):
        opt.load_state_dict(torch_state)


@pytest.mark.slow
def test_fit_does_not_import_dynamo():
    """torch.optim imports torch._dynamo (about a second) on first use; a fit must not need it."""
    import subprocess
    import sys
    code = ("import sys, redcore_lite as rc; "
            "rc.fit(rc.override(rc.preset('smoke'), train={'device': 'cpu', 'epochs_constant': 1, "
            "'epochs_decay': 0})); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=600)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_shared_step_count_splits_when_a_parameter_is_skipped_and_round_trips():
    """The step counts share one tensor while every parameter is updated; a skipped parameter
    gets its own count, and a saved state restores the counts either way."""
    a, _ = _pair()
    opt = optim.Adam(a.parameters(), lr=1e-2)
    if not opt.fused:
        pytest.skip("fused Adam not available")
    _grads(a, 0)
    opt.step()
    assert all(t is opt.steps[0] for t in opt.steps) and float(opt.steps[0]) == 1.0
    _grads(a, 1, skip_last_bias=True)
    opt.step()
    counts = [float(t) for t in opt.steps]
    assert len({id(t) for t in opt.steps}) == len(opt.steps) and min(counts) == 1.0 and max(counts) == 2.0
    fresh = optim.Adam(a.parameters(), lr=1e-2)
    fresh.load_state_dict(opt.state_dict())
    assert [float(t) for t in fresh.steps] == counts
    for p in a.parameters():
        p.grad = torch.ones_like(p)
    for o in (opt, fresh):
        o.step()
    assert [float(t) for t in fresh.steps] == [float(t) for t in opt.steps] == [c + 1 for c in counts]
    same = optim.Adam(a.parameters(), lr=1e-2)
    same.load_state_dict({**opt.state_dict(), "steps": [torch.tensor(5.0)] * len(opt.steps)})
    assert all(t is same.steps[0] for t in same.steps) and float(same.steps[-1]) == 5.0
