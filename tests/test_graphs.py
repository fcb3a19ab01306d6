"""The CUDA-graph training step (``train.cuda_graph``): its static-shape parts on the CPU, and on a
GPU (``REDCORE_TEST_DEVICE=cuda``, skipped elsewhere) the captured graph against the same step
run eagerly, a resume, and the absence of host syncs."""
import pytest
import torch

import redcore_lite as rc
from redcore_lite.advantage import RelativeAdvantage
from redcore_lite.config import AdvantageConfig
from redcore_lite.step import StaticStep
from redcore_lite.optim import Adam
from conftest import TEST_DEVICE, tiny_config, tiny_splits

cuda_only = pytest.mark.skipif(not (TEST_DEVICE.startswith("cuda") and torch.cuda.is_available()),
                               reason="needs REDCORE_TEST_DEVICE=cuda and a GPU")


def _fit(cfg, splits, device, capture=None, **kw):
    """``trainer._fit`` as ``fit`` calls it (seeded, RNG forked) but without fit's device check,
    so that the static step also runs on a CPU; ``capture=False`` keeps a GPU from capturing."""
    device = torch.device(device)
    patch = pytest.MonkeyPatch()
    if capture is not None:
        patch.setattr(rc.trainer, "StaticStep",
                      lambda *a, capture: StaticStep(*a, capture=capture_flag), raising=True)
        capture_flag = capture
    try:
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(cfg.train.seed)
            return rc.trainer._fit(cfg, splits.to(device), device, kw.get("checkpoint"),
                                   kw.get("resume", False), kw.get("callbacks", ()))
    finally:
        patch.undo()


@pytest.mark.parametrize("backbone", ["mlp", "transformer"])
def test_encode_zeroed_equals_encode_masked_in_eval(backbone):
    cfg = tiny_config(3, model={"backbone": backbone, "latent_dim": 8, "num_heads": 2},
                      data={"seq_len": 7 if backbone == "transformer" else 0})
    splits = tiny_splits(cfg)
    model = rc.build_model(cfg.model, splits.train.dims, splits.num_classes, seed=0).eval()
    xs, lens = splits.train.inputs(torch.arange(20))
    avail = rc.make_mask(20, (0.2, 0.5, 0.8), torch.Generator().manual_seed(1))
    with torch.no_grad():
        mu_a, lv_a = model.encode_masked(xs, lens, avail)
        mu_b, lv_b = model.encode_zeroed(xs, lens, avail)
        out = model(xs, lens, avail, static=True)
    torch.testing.assert_close(mu_b, mu_a, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lv_b, lv_a, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.mu, mu_a, rtol=1e-5, atol=1e-6)
    assert mu_b.shape == (3, 20, 8)


def test_step_inplace_follows_step_exactly():
    """schedule() + step_inplace() give step()'s Lbar, RA, beta and eta, step by step, and keep
    writing into the same tensors (what a replayed graph reads)."""
    cfg = AdvantageConfig(eta=0.3, growth=1.5, growth_every=2, interval=3, rho=0.4)
    eager, inplace = RelativeAdvantage(cfg, 3), RelativeAdvantage(cfg, 3)
    ids = [id(inplace.lbar), id(inplace.ra), id(inplace.beta)]
    gen = torch.Generator().manual_seed(0)
    eta, moves = torch.zeros(()), torch.zeros((), dtype=torch.bool)
    for _ in range(12):
        rec = torch.rand(3, generator=gen) * 2
        obs = torch.rand(3, generator=gen) > 0.3
        want = eager.step(rec, obs)
        moves.fill_(inplace.schedule())
        eta.fill_(inplace.eta)
        got = inplace.step_inplace(rec, obs, eta, moves)
        assert torch.equal(got, want) and torch.equal(inplace.beta, eager.beta)
        assert torch.equal(inplace.lbar, eager.lbar) and torch.equal(inplace.ra, eager.ra)
        assert inplace.eta == eager.eta and inplace.t == eager.t
    assert [id(inplace.lbar), id(inplace.ra), id(inplace.beta)] == ids
    assert not torch.equal(eager.beta, torch.ones(3))  # beta did move


def test_adam_tensor_lr_equals_float_lr():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    oa, ob = Adam(a.parameters(), lr=0.01), Adam(b.parameters(), lr=0.01)
    if not oa.fused:
        pytest.skip("no fused Adam kernel in this torch build")
    for _ in range(3):
        x = torch.randn(5, 4)
        for net, opt, lr in ((a, oa, None), (b, ob, torch.tensor(0.01))):
            opt.zero_grad()
            net(x).pow(2).sum().backward()
            opt.step(lr=lr)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7)


def test_static_fit_on_cpu_trains_and_repeats():
    """The static step run eagerly (what a CUDA graph replays): same seed, same history; the
    beta and eta columns follow the eager rule; the model learns as the eager step's does."""
    cfg = tiny_config(3, mask={"redraw_each_epoch": True},
                      advantage={"interval": 2, "growth_every": 3},
                      train={"epochs_constant": 3, "epochs_decay": 2, "device": "cpu"})
    splits = tiny_splits(cfg)
    graph_cfg = rc.override(cfg, train={"cuda_graph": True})
    one, two = _fit(graph_cfg, splits, "cpu"), _fit(graph_cfg, splits, "cpu")
    assert one.history.equals(two.history) and one.test.equals(two.test)
    eager = rc.fit(cfg, splits)
    assert eager.history["eta"].tolist() == one.history["eta"].tolist()
    assert one.history["loss"].notna().all() and len(one.history) == len(eager.history)
    beta = one.history[[f"beta_{m}" for m in splits.modalities]].to_numpy()
    assert abs((beta ** 2).sum(1) - 1).max() < 1e-5  # unit norm after the first move
    moved = (beta[1:] != beta[:-1]).any(1)  # moved[i]: beta changed at step t = i + 1
    steps = torch.arange(1, len(beta)).numpy()
    assert moved[steps % 2 == 0].all() and not moved[steps % 2 == 1].any()  # every 2nd step
    f1 = lambda r: float(r.test.set_index("pattern").loc["overall", "f1"])  # noqa: E731
    assert abs(f1(one) - f1(eager)) < 0.15, (f1(one), f1(eager))


def test_static_step_reads_the_combined_mask_of_observed_holes():
    """Data with observed holes and a simulated mask on top, redrawn every epoch: the static
    step trains on the same masks and batches as the eager one (same observed flags, same
    eta), repeats, and learns comparably."""
    from conftest import holey_splits

    cfg = tiny_config(3, mask={"simulate": "on", "rates": (0.2, 0.1, 0.3), "redraw_each_epoch": True},
                      train={"epochs_constant": 2, "epochs_decay": 1, "device": "cpu"})
    splits = holey_splits(cfg)
    graph_cfg = rc.override(cfg, train={"cuda_graph": True})
    one, two = _fit(graph_cfg, splits, "cpu"), _fit(graph_cfg, splits, "cpu")
    assert one.history.equals(two.history) and one.test.equals(two.test)
    eager = rc.fit(cfg, splits)
    assert torch.equal(one.train_mask, eager.train_mask) and not (one.train_mask & ~splits.train.mask).any()
    flags = [f"observed_{m}" for m in splits.modalities]
    assert one.history[flags].equals(eager.history[flags]) and one.history["eta"].equals(eager.history["eta"])
    assert (one.history.loc[~one.history["observed_V"], "rec_V"] == 0).all()
    f1 = lambda r: float(r.test.set_index("pattern").loc["overall", "f1"])  # noqa: E731
    assert abs(f1(one) - f1(eager)) < 0.2, (f1(one), f1(eager))


@cuda_only
def test_graph_replay_with_observed_holes_matches_the_eager_static_step():
    from conftest import holey_splits

    cfg = tiny_config(3, train={"cuda_graph": True, "epochs_constant": 2, "epochs_decay": 1,
                                "batch_size": 32}, mask={"simulate": "on", "rates": (0.2, 0.1, 0.3),
                                                         "redraw_each_epoch": True})
    splits = holey_splits(cfg)
    graph = _fit(cfg, splits, TEST_DEVICE)
    eager = _fit(cfg, splits, TEST_DEVICE, capture=False)
    a, b = (r.history.drop(columns=["lr"]).astype(float).to_numpy() for r in (graph, eager))
    assert abs(a - b).max() < 1e-4 and torch.equal(graph.train_mask, eager.train_mask)


def test_cuda_graph_needs_cuda():
    cfg = tiny_config(3, train={"cuda_graph": True, "device": "cpu"})
    with pytest.raises(ValueError, match="train.cuda_graph: got True with device 'cpu'"):
        rc.fit(cfg, tiny_splits(cfg))
    with pytest.raises(ValueError, match="capture: got True"):
        model = rc.build_model(cfg.model, (6, 5, 4), 2)
        StaticStep(model, model, rc.trainer.make_optimizer(model, cfg),
                   RelativeAdvantage(cfg.advantage, 3), cfg, tiny_splits(cfg).train,
                   torch.ones(4, 3, dtype=torch.bool), lambda: None, capture=True)


@cuda_only
@pytest.mark.parametrize("backbone", ["mlp", "transformer"])
def test_graph_replay_matches_the_eager_static_step(backbone):
    sections = {"model": {"backbone": "transformer", "latent_dim": 16, "num_heads": 2},
                "data": {"seq_len": 9}} if backbone == "transformer" else {}
    cfg = tiny_config(3, train={"cuda_graph": True, "epochs_constant": 2, "epochs_decay": 2,
                                "batch_size": 32}, mask={"redraw_each_epoch": True}, **sections)
    splits = tiny_splits(cfg)
    graph = _fit(cfg, splits, TEST_DEVICE)
    eager = _fit(cfg, splits, TEST_DEVICE, capture=False)
    assert graph.history["loss"].notna().all()
    a, b = (r.history.drop(columns=["lr"]).astype(float).to_numpy() for r in (graph, eager))
    diff = abs(a - b).max()
    print(f"{backbone}: largest |graph - eager| over the history: {diff:.3g}")  # pytest -rP
    assert diff < 1e-4, f"graph vs eager static step: largest history difference {diff}"


@cuda_only
def test_graph_resume_is_bit_identical(tmp_path):
    cfg = tiny_config(3, train={"cuda_graph": True, "epochs_constant": 2, "epochs_decay": 2},
                      mask={"redraw_each_epoch": True})
    splits = tiny_splits(cfg)
    full = rc.fit(cfg, splits)

    class Kill(Exception):
        pass

    def kill(info):
        if info.epoch == 1:
            raise Kill

    ckpt = tmp_path / "run.pt"
    with pytest.raises(Kill):
        rc.fit(cfg, splits, checkpoint=ckpt, callbacks=[kill])
    resumed = rc.fit(cfg, splits, checkpoint=ckpt, resume=True)
    assert full.history.equals(resumed.history)
    assert full.test.equals(resumed.test)


@cuda_only
def test_graph_steps_never_sync():
    cfg = tiny_config(3, train={"cuda_graph": True, "epochs_constant": 1, "epochs_decay": 0,
                                "batch_size": 16})
    splits = tiny_splits(cfg)
    dev = torch.device(TEST_DEVICE)
    train = splits.train.to(dev)
    model = rc.build_model(cfg.model, train.dims, splits.num_classes, seed=0).to(dev)
    opt = rc.trainer.make_optimizer(model, cfg)
    adv = RelativeAdvantage(cfg.advantage, 3, dev)
    groups = rc.step.clip_groups(model)
    mask = rc.make_mask(len(train), cfg.mask.rates, torch.Generator().manual_seed(0)).to(dev)
    step = StaticStep(model, model, opt, adv, cfg, train, mask,
                      lambda: rc.step.clip_gradients(*groups, 1.0), capture=True)
    idx = [torch.arange(i, i + 16, device=dev) for i in range(0, 64, 16)]
    step(idx[0])  # capture
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        rows = [step(i).row.clone() for i in idx[1:]]
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert step.replays == 4 and torch.isfinite(torch.stack(rows)).all()
