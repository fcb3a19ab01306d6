"""Worker for test_distributed.py: ``torchrun --nproc_per_node=2 tests/ddp_worker.py OUT [eager|compile]``.

Every rank fits the same smoke config on CPU (gloo) and writes its beta history and test metrics.
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
    compiled = len(sys.argv) > 2 and sys.argv[2] == "compile"
    cfg = rc.override(rc.preset("smoke"), train={"device": "cpu", "compile": compiled},
                      data={"num_samples": 400, "snr": (2.0, 2.0, 2.0)}, mask={"rates": (0.2, 0.5, 0.8)})
    res = rc.fit(cfg, checkpoint=out / "ckpt.pt")
    res.history.to_csv(out / f"history_rank{D.rank()}.csv", index=False)
    res.test.to_csv(out / f"test_rank{D.rank()}.csv", index=False)
    D.shutdown()
