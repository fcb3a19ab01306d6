"""One-file GPU check (about 5 minutes on one GPU): speed, memory, and no host sync in the step.

1. step_time.py on CUDA: the `paper` step in fp32 eager, bf16 autocast, bf16 + torch.compile, and
   the release's step (benchmarks/release_reference.py), side by side (ms/step, samples/s, peak).
2. A `teach` fit on CUDA (seconds).
3. The training step under ``torch.cuda.set_sync_debug_mode("error")``: any host sync raises.
Writes benchmarks/results/gpu_check.json. Usage: python benchmarks/gpu_check.py
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redcore_lite as rc  # noqa: E402
from redcore_lite.checkpoint import dump_json  # noqa: E402


def sync_free_steps(steps: int = 5) -> str:
    """Run training steps with sync debug mode 'error'; return 'ok' or the error."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from step_time import DIMS, _batch

    dev = torch.device("cuda")
    cfg = rc.override(rc.preset("paper"), train={"bf16": True})
    xs, lens, avail, y = _batch(dev, torch.Generator().manual_seed(0))
    model = rc.build_model(cfg.model, DIMS, 4, seed=0).to(dev)
    opt, _ = rc.trainer.make_optimizer(model, cfg)
    adv = rc.advantage.RelativeAdvantage(cfg.advantage, 3, dev)
    plan = rc.trainer._epoch_plan(torch.arange(xs[0].shape[0]), avail.cpu(), 128, dev)
    idx, present = plan[0]
    groups = rc.trainer._clip_groups(model)
    step = lambda: rc.trainer.train_step(model, opt, adv, cfg, xs, lens, avail, y, groups, present)
    step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(steps):
            step()
        return "ok"
    except RuntimeError as err:
        return f"sync: {err}"
    finally:
        torch.cuda.set_sync_debug_mode(0)
        torch.cuda.synchronize()


def main() -> None:
    assert torch.cuda.is_available(), "gpu_check.py needs a CUDA GPU"
    t0 = time.time()
    out = ROOT / "benchmarks" / "results" / "step_time_cuda.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step_time.py"), "--device", "cuda",
                    "--steps", "20", "--warmup", "5", "--out", str(out)], check=True)
    steps = json.loads(out.read_text())
    sync = sync_free_steps()
    print("sync check:", sync)
    result = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "step_time": steps, "sync_check": sync, "seconds": time.time() - t0}
    by = {r["case"]: r for r in steps["results"]}
    if {"paper", "paper-compiled"} <= set(by):
        result["speedup_bf16_compiled_vs_fp32"] = by["paper-compiled"]["samples_per_s"] / by["paper"]["samples_per_s"]
        print(f"bf16 + compile vs fp32 eager: {result['speedup_bf16_compiled_vs_fp32']:.2f}x samples/s")
    dump_json(ROOT / "benchmarks" / "results" / "gpu_check.json", result)
    print(f"written benchmarks/results/gpu_check.json in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
