"""Worker for test_distributed.py:
``torchrun --nproc_per_node=2 tests/ddp_worker.py OUT [eager|compile|observed]``.

Every rank fits the same smoke config on CPU (gloo) and writes its beta history and test metrics;
``observed``: on data with observed holes (conftest.holey_splits), a simulated mask on top.
"""
import sys
from pathlib import Path

import torch

import redcore_lite as rc
from redcore_lite import distributed as D

if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    assert D.init_from_env() and D.world() == 2
    mode = sys.argv[2] if len(sys.argv) > 2 else "eager"
    cfg = rc.override(rc.preset("smoke"), train={"device": "cpu", "compile": mode == "compile"},
                      data={"num_samples": 400, "snr": (2.0, 2.0, 2.0)}, mask={"rates": (0.2, 0.5, 0.8)})
    splits = None
    if mode == "observed":
        from conftest import holey_splits  # tests/ is the script's folder

        cfg = rc.override(cfg, mask={"simulate": "on", "rates": (0.2, 0.2, 0.2)})
        splits = holey_splits(cfg)
    res = rc.fit(cfg, splits, checkpoint=out / "ckpt.pt")
    res.history.to_csv(out / f"history_rank{D.rank()}.csv", index=False)
    res.test.to_csv(out / f"test_rank{D.rank()}.csv", index=False)
    torch.save(res.train_mask, out / f"mask_rank{D.rank()}.pt")
    D.shutdown()
