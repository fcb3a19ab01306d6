"""The training step reads nothing back to the host (no .item(), .cpu(), bool(tensor), ...)."""
import torch
from torch.overrides import TorchFunctionMode

import redcore_lite as rc
from conftest import tiny_config, tiny_splits

READS = {"item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__",
         "nonzero", "__format__"}


class CountReads(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.reads = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        if name in READS:
            self.reads.append(name)
        return func(*args, **(kwargs or {}))


def _step_reads(cfg, splits=None):
    splits = splits or tiny_splits(cfg)
    model = rc.build_model(cfg.model, splits.train.dims, splits.num_classes, seed=0)
    adv = rc.advantage.RelativeAdvantage(cfg.advantage, 3)
    mask = rc.masking.training_mask(cfg.mask, splits.train, torch.Generator().manual_seed(0))
    plan = rc.batching.epoch_plan(torch.arange(len(splits.train)), mask, 16, torch.device("cpu"))
    groups = rc.step.clip_groups(model)
    optimizer = rc.trainer.make_optimizer(model, cfg)  # the real one: its step is counted too
    assert optimizer.fused
    counter = CountReads()
    with counter:
        for idx, present in plan[:3]:
            xs, lens = splits.train.inputs(idx)
            rc.trainer.train_step(model, optimizer, adv, cfg, xs, lens, mask[idx],
                                  splits.train.labels[idx], groups, present)
    return counter.reads


def test_training_step_never_reads_back():
    assert _step_reads(tiny_config(3)) == []


def test_training_step_with_observed_holes_never_reads_back():
    from conftest import holey_splits

    cfg = tiny_config(3, mask={"simulate": "on"})
    splits = holey_splits(cfg)
    assert not splits.train.complete
    assert _step_reads(cfg, splits) == []


def test_counter_catches_a_read():
    counter = CountReads()
    with counter:
        torch.ones(2).sum().item()
    assert counter.reads == ["item"]
