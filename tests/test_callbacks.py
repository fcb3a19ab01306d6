"""Callbacks of fit: per-step hooks get device tensors, they change nothing, the TensorBoard logger
writes what it says (read back with tensorboard's EventAccumulator)."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

import redcore_lite as rc
from redcore_lite.callbacks import Callback, StepEnd, split_callbacks

from conftest import tiny_config, tiny_splits


class Recorder(Callback):
    def __init__(self):
        self.steps: list[StepEnd] = []
        self.epochs, self.ended = [], []

    def on_step(self, step):
        self.steps.append(step)

    def on_epoch(self, end):
        self.epochs.append(end.epoch)

    def on_fit_end(self, result):
        self.ended.append(result.best_epoch)


def test_hooks_see_every_step_as_device_rows_and_change_nothing():
    cfg = tiny_config(3)
    splits = tiny_splits(cfg)
    plain = rc.fit(cfg, splits)
    rec, seen = Recorder(), []
    with_cb = rc.fit(cfg, splits, callbacks=[rec, lambda end: seen.append(end.epoch)])
    pd.testing.assert_frame_equal(plain.history, with_cb.history, check_exact=True)
    pd.testing.assert_frame_equal(plain.test, with_cb.test, check_exact=True)
    for a, b in zip(plain.model.state_dict().values(), with_cb.model.state_dict().values()):
        assert torch.equal(a, b)
    assert [s.step for s in rec.steps] == list(range(len(plain.history)))
    assert rec.epochs == seen == list(range(cfg.epochs)) and rec.ended == [plain.best_epoch]
    s = rec.steps[3]
    assert isinstance(s.values, torch.Tensor) and s.values.device.type == "cpu"
    assert s.columns[:2] == ("loss", "ce_fused") and len(s.values) == len(s.columns)
    row = plain.history.iloc[3]
    for name, v in s.as_dict().items():  # the same numbers as Result.history
        assert v == pytest.approx(float(row[name]), rel=0, abs=0), name
    assert s.epoch == int(row["epoch"])


def test_a_callback_without_on_step_adds_no_step_hook():
    class EpochOnly(Callback):
        def on_epoch(self, end):
            pass

    steps, epochs, ends = split_callbacks([EpochOnly(), print])
    assert steps == [] and len(epochs) == 2 and ends == []
    with pytest.raises(ValueError, match=r"callbacks\[0\]: got a int; allowed: a redcore_lite"):
        split_callbacks([3])


def test_tensorboard_logger_writes_losses_beta_ra_ema_and_patterns(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_config(3)
    splits = tiny_splits(cfg)
    log = rc.TensorBoardLogger(tmp_path / "tb")
    res = rc.fit(cfg, splits, callbacks=[log])
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for m in res.modalities:
        for key in ("beta", "ra", "lbar", "ce", "kl", "rec"):
            assert f"step/{key}_{m}" in tags
    assert {"step/loss", "epoch/val_f1", "epoch/lr", "test/f1/overall", "val/wa/overall"} <= tags
    beta = acc.Scalars("step/beta_A")
    assert [e.step for e in beta] == list(range(len(res.history)))
    # float32 in the event file: the history's values to float32 precision
    assert [e.value for e in beta] == pytest.approx(res.history["beta_A"].tolist(), rel=1e-6)
    assert [e.value for e in acc.Scalars("epoch/val_f1")] == pytest.approx(
        res.epochs["val_f1"].tolist(), rel=1e-6)
    test = res.test.set_index("pattern")
    for pattern in test.index:
        got = acc.Scalars(f"test/f1/{pattern}")
        assert got[0].value == pytest.approx(test.loc[pattern, "f1"], rel=1e-6)
        assert got[0].step == res.best_epoch


def test_tensorboard_logger_every():
    pytest.importorskip("tensorboard")
    with pytest.raises(ValueError, match="every: got 0; allowed: an integer >= 1"):
        rc.TensorBoardLogger("unused", every=0)
