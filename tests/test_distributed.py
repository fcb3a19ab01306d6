"""Two CPU processes under torchrun (gloo): same beta on every rank, a sensible result."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import redcore_lite as rc
from redcore_lite import distributed as D

HERE = Path(__file__).parent
# Seconds per torchrun: generous. The compiled run took 19 s idle and hit the old 240 s limit on a
# loaded 2-core machine (two ranks compiling at once); a hang still fails, only later.
TIMEOUT = 900


def _torchrun(args, tmp_path, timeout=TIMEOUT):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", *args], cwd=tmp_path, env=env, timeout=timeout,
                          capture_output=True, text=True)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
@pytest.mark.parametrize("mode", ["eager", "compile", "observed"])
@pytest.mark.slow
def test_two_ranks_share_beta(tmp_path, mode):
    """Eager, compiled (the static-shape step under DistributedDataParallel), and eager on data
    with observed holes plus a simulated mask (every rank draws the same combined mask)."""
    proc = _torchrun([str(HERE / "ddp_worker.py"), str(tmp_path), mode], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    h0 = pd.read_csv(tmp_path / "history_rank0.csv")
    h1 = pd.read_csv(tmp_path / "history_rank1.csv")
    beta = [c for c in h0 if c.startswith(("beta_", "lbar_", "ra_"))]
    assert len(beta) == 9
    pd.testing.assert_frame_equal(h0[beta], h1[beta])  # all-reduced RA state: identical beta
    assert not h0["loss"].equals(h1["loss"])  # but each rank saw its own shard
    assert np.isfinite(h0[beta].to_numpy()).all()
    t0 = pd.read_csv(tmp_path / "test_rank0.csv")
    pd.testing.assert_frame_equal(t0, pd.read_csv(tmp_path / "test_rank1.csv"))
    assert t0.set_index("pattern").loc["overall", "wa"] > 0.5  # chance is 0.25
    # global batch 32 split over 2 ranks: half the rows per rank, the same number of steps
    assert h0["step"].max() + 1 == rc.preset("smoke").epochs * int(np.ceil(280 / 32))
    assert (tmp_path / "ckpt.pt").exists()  # written by rank 0 only
    m0, m1 = (torch.load(tmp_path / f"mask_rank{r}.pt") for r in (0, 1))
    assert torch.equal(m0, m1)
    if mode == "observed":
        state = rc.checkpoint.load_checkpoint(tmp_path / "ckpt.pt")
        assert state["mask_kind"] == "observed+simulated" and not m0.all(0).any()
        n = t0.set_index("pattern")["n"]  # each test sample once, under its observed pattern
        assert n.drop("overall").sum() == n["overall"] == 60


def test_shard_and_global_rec_without_a_process_group():
    assert D.world() == 1 and D.rank() == 0 and D.is_main()
    idx = torch.arange(7)
    assert torch.equal(D.shard(idx), idx)


@pytest.mark.slow
def test_cli_under_torchrun(tmp_path):
    out = tmp_path / "run"
    proc = _torchrun(["-m", "redcore_lite", "train", "synthetic", "--preset", "smoke",
                      "--device", "cpu", "--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("best epoch") == 1  # only rank 0 prints and writes
    summary = rc.checkpoint.load_checkpoint(out / "checkpoint.pt")
    assert summary["epoch"] == rc.preset("smoke").epochs
    assert (out / "summary.json").exists() and (out / "history.csv").exists()
