"""The training state and the step interface: TrainState round trip, the two steps behind one
interface (the static step equal to the eager one where no random draw differs), the loss split
into its lower-level terms and the beta-weighted reconstruction term, the single distributed hook."""
from __future__ import annotations

import torch

import redcore_lite as rc
from conftest import tiny_config, tiny_splits
from redcore_lite.batching import epoch_plan
from redcore_lite.losses import (advantage_input, compute_losses, network_terms,
                                 weigh_reconstruction)
from redcore_lite.state import TrainState, mask_kind
from redcore_lite.step import (EagerStep, StaticStep, Step, StepOutput, advantage_input_all_ranks,
                               clip_gradients, clip_groups)


def _state(cfg, splits):
    torch.manual_seed(cfg.train.seed)
    kind = mask_kind(cfg, splits.train.mask)
    return TrainState.build(cfg, splits.train, splits.num_classes, torch.device("cpu"), kind)


def _steps(state, cfg, splits, static: bool, n: int = 3) -> list[StepOutput]:
    groups = clip_groups(state.model)
    step: Step
    if static:
        step = StaticStep(state.model, state.model, state.optimizer, state.adv, cfg, splits.train,
                          state.mask.clone(), lambda: clip_gradients(*groups, cfg.train.clip_norm),
                          capture=False)
    else:
        step = EagerStep(state.model, state.model, state.optimizer, state.adv, cfg, splits.train,
                         state.mask)
    plan = epoch_plan(torch.arange(len(splits.train)), state.mask, cfg.train.batch_size,
                      torch.device("cpu"))
    state.model.train()
    torch.manual_seed(7)
    return [StepOutput(o.row.clone(), o.terms, o.avail)
            for o in (step(idx, present) for idx, present in plan[:n])]


def test_train_state_round_trip_restores_every_piece():
    cfg = tiny_config(3)
    splits = tiny_splits(cfg)
    one = _state(cfg, splits)
    _steps(one, cfg, splits, static=False)
    one.etas, one.history, one.epoch = [0.1, 0.2], [torch.ones(2, 23)], 1
    one.end_epoch(torch.zeros(1, 23), torch.zeros(4), {"epoch": 1, "val_f1": 0.5})
    saved = one.state_dict()
    two = _state(rc.override(cfg, train={"seed": 5}), splits)  # other weights, masks, generators
    two.load_state_dict(saved)
    for a, b in zip(one.model.state_dict().values(), two.model.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(one.mask, two.mask) and two.epoch == 2 and two.etas == [0.1, 0.2]
    assert torch.equal(torch.cat(two.history), torch.cat(one.history))
    assert two.best["epoch"] == 1 and two.best["f1"] == 0.5
    for name in ("lbar", "beta", "ra"):
        assert torch.equal(getattr(one.adv, name), getattr(two.adv, name))
    assert (one.adv.t, one.adv.eta) == (two.adv.t, two.adv.eta) and one.adv.t == 3
    assert torch.equal(one.mask_gen.get_state(), two.mask_gen.get_state())
    assert torch.equal(one.batch_gen.get_state(), two.batch_gen.get_state())
    # the optimizer continues identically
    x = [torch.ones_like(p) for p in one.model.parameters()]
    for state in (one, two):
        for p, g in zip(state.model.parameters(), x):
            p.grad = g.clone()
        state.optimizer.step()
    for a, b in zip(one.model.parameters(), two.model.parameters()):
        assert torch.equal(a, b)


def test_state_dict_holds_the_checkpoint_entries():
    cfg = tiny_config(3)
    splits = tiny_splits(cfg)
    state = _state(cfg, splits)
    state.history = [torch.zeros(0, 23)]
    assert list(state.state_dict()) == ["epoch", "model", "optimizer", "advantage", "rng",
                                        "train_mask", "history", "etas", "epochs", "best",
                                        "diagnostics"]


def test_eager_step_is_train_step_and_reports_diagnostics():
    cfg = tiny_config(3)
    splits = tiny_splits(cfg)
    outs = _steps(_state(cfg, splits), cfg, splits, static=False)
    for o in outs:
        assert o.terms is not None and o.terms.grad_norm is not None and o.avail is not None
        assert o.row.shape == (2 + 7 * 3,) and torch.isfinite(o.row).all()
    # the same steps through the function
    state = _state(cfg, splits)
    groups = clip_groups(state.model)
    plan = epoch_plan(torch.arange(len(splits.train)), state.mask, 16, torch.device("cpu"))
    state.model.train()
    torch.manual_seed(7)
    for (idx, present), o in zip(plan[:3], outs):
        xs, lens = splits.train.inputs(idx)
        terms = rc.step.train_step(state.model, state.optimizer, state.adv, cfg, xs, lens,
                                   state.mask[idx], splits.train.labels[idx], groups, present)
        assert torch.equal(terms.history_row(state.adv.beta, state.adv.ra, state.adv.lbar), o.row)


def test_static_step_equals_the_eager_step_without_dropout():
    """Where no dropout draws differ (every dropout 0), the static step (every row encoded, a
    missing input zeroed) gives the eager step's losses, beta and weights, to rounding."""
    cfg = tiny_config(3, model={"head_dropout": 0.0})
    splits = tiny_splits(cfg)
    eager_state, static_state = _state(cfg, splits), _state(cfg, splits)
    eager = _steps(eager_state, cfg, splits, static=False)
    static = _steps(static_state, cfg, splits, static=True)
    assert all(o.terms is None for o in static)
    for e, s in zip(eager, static):
        torch.testing.assert_close(s.row, e.row, rtol=1e-5, atol=1e-6)
    # Weights: Adam divides each step by sqrt(v), so a parameter whose gradient is near zero turns
    # a rounding difference of the two computation orders into a visible one (seen: 3.1e-6 on one
    # of 3072 weights at seed base 1000, 2 threads, MKL_CBWR=COMPATIBLE); 1e-5 still catches a real
    # difference between the steps, which moves weights by lr-sized amounts (lr 0.01 here).
    for a, b in zip(eager_state.model.parameters(), static_state.model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_static_step_differs_with_dropout_as_documented():
    """With dropout the static step draws per missing row (documented in redcore_lite.step):
    a different random path, not the eager step's values."""
    cfg = tiny_config(3, model={"head_dropout": 0.5})
    splits = tiny_splits(cfg)
    eager = _steps(_state(cfg, splits), cfg, splits, static=False)
    static = _steps(_state(cfg, splits), cfg, splits, static=True)
    assert not torch.equal(eager[-1].row, static[-1].row)


def test_loss_is_network_terms_plus_weighted_reconstruction():
    cfg = tiny_config(3)
    splits = tiny_splits(cfg)
    model = rc.build_model(cfg.model, splits.train.dims, splits.num_classes, seed=0)
    idx = torch.arange(16)
    xs, lens = splits.train.inputs(idx)
    avail = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0]] * 4, dtype=torch.bool)
    out = model(xs, lens, avail)
    y = splits.train.labels[idx]
    beta = torch.tensor([0.2, 0.5, 0.8])
    base = network_terms(out, y, avail, cfg.loss)
    full = weigh_reconstruction(base, beta, cfg.loss)
    want = base.total + cfg.loss.w_rec * (beta * base.rec).sum()
    torch.testing.assert_close(full.total, want, rtol=0, atol=1e-6)
    assert torch.equal(compute_losses(out, y, avail, beta, cfg.loss).total, full.total)
    # the callable form hands the upper level advantage_input's (rec, observed)
    seen = {}

    def upper(rec, observed):
        seen["rec"], seen["observed"] = rec, observed
        return beta

    for peers in ("any", "all"):
        got = compute_losses(out, y, avail, upper, cfg.loss, peers)
        rec, observed = advantage_input(out, avail, base, peers)
        assert torch.equal(seen["rec"], rec) and torch.equal(seen["observed"], observed)
        assert torch.equal(got.total, full.total)  # the loss always uses every row's Rec
    complete = avail.all(1)
    manual = ((out.generated - out.z).pow(2).sum(-1) * complete).sum(1) / complete.sum()
    torch.testing.assert_close(advantage_input(out, avail, base, "all")[0], manual.detach())


def test_distributed_hook_is_the_identity_in_one_process():
    rec, observed = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([True, False, True])
    avail = torch.tensor([[1, 0, 1]], dtype=torch.bool)
    for matched in (False, True):
        got = advantage_input_all_ranks(rec, observed, avail, matched)
        assert got[0] is rec and got[1] is observed
