"""Milliseconds per training step: redcore_lite vs the release's step, and a `teach` run.

Cases (each in its own process, so peak memory is per case):
  paper        `paper` preset, random IEMOCAP-shaped batches (B=128; A/V/L dims 130/342/1024,
               lengths 50/20/20), one full bi-level step (forward, beta step, backward, clip, Adam)
  paper-bf16   the same under bf16 autocast (CUDA only)
  paper-compiled  bf16 + torch.compile (CUDA only)
  release      the release's step re-implemented in benchmarks/release_reference.py
  teach        a whole `teach` fit on the synthetic data (30 epochs): seconds and ms per step

Usage:  python benchmarks/step_time.py [--device cpu|cuda] [--steps 20] [--cases paper,release,teach]
Prints a table and writes benchmarks/results/step_time_<device>.json (atomically).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import redcore_lite as rc  # noqa: E402
from redcore_lite.checkpoint import dump_json  # noqa: E402

DIMS, LENS, BATCH = (130, 342, 1024), (50, 20, 20), 128


def _batch(device: torch.device, gen: torch.Generator):
    xs = [torch.randn(BATCH, t, d, generator=gen).to(device) for t, d in zip(LENS, DIMS)]
    lens = [torch.randint(t // 2, t + 1, (BATCH,), generator=gen).to(device) for t in LENS]
    for x, ln in zip(xs, lens):
        x.mul_((torch.arange(x.shape[1], device=device) < ln[:, None])[..., None])
    avail = rc.make_mask(BATCH, (0.2, 0.5, 0.8), gen).to(device)
    y = torch.randint(0, 4, (BATCH,), generator=gen).to(device)
    return xs, lens, avail, y


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _time_steps(step, device, steps, warmup) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / steps * 1000


def run_case(case: str, device: torch.device, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    if case == "teach":
        cfg = rc.override(rc.preset("teach"), train={"device": str(device)})
        t0 = time.perf_counter()
        res = rc.fit(cfg)
        secs = time.perf_counter() - t0
        n = len(res.history)
        return {"case": case, "seconds": secs, "steps": n, "ms_per_step": secs / n * 1000,
                "samples_per_s": n * cfg.train.batch_size / secs, "peak_mb": _peak_mb(device),
                "test_f1": float(res.test.set_index("pattern").loc["overall", "f1"])}
    xs, lens, avail, y = _batch(device, gen)
    if case == "release":
        from release_reference import ReleaseStep
        rel = ReleaseStep(DIMS, 4, device=device)
        ms = _time_steps(lambda: rel(xs[0], xs[1], xs[2], avail.long(), y), device, steps, warmup)
    else:
        cfg = rc.preset("paper")
        bf16 = case in ("paper-bf16", "paper-compiled")
        cfg = rc.override(cfg, train={"bf16": bf16, "compile": case == "paper-compiled"})
        model = rc.build_model(cfg.model, DIMS, 4, seed=0).to(device)
        step_model = torch.compile(model) if cfg.train.compile else model
        opt, _ = rc.trainer.make_optimizer(model, cfg)
        adv = rc.advantage.RelativeAdvantage(cfg.advantage, 3, device)
        groups = rc.trainer._clip_groups(model)
        present = rc.trainer._epoch_plan(torch.arange(BATCH), avail.cpu(), BATCH, device)[0][1]
        ms = _time_steps(lambda: rc.trainer.train_step(step_model, opt, adv, cfg, xs, lens, avail,
                                                       y, groups, present), device, steps, warmup)
    return {"case": case, "ms_per_step": ms, "samples_per_s": BATCH / ms * 1000,
            "peak_mb": _peak_mb(device), "steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--cases", default=None, help="comma-separated (default: all for the device)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/...)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.child:
        print(json.dumps(run_case(args.child, device, args.steps, args.warmup)))
        return
    cuda = device.type == "cuda"
    cases = (args.cases.split(",") if args.cases else
             ["paper", "release", "teach"] + (["paper-bf16", "paper-compiled"] if cuda else []))
    rows = []
    for case in cases:
        out = subprocess.run([sys.executable, __file__, "--child", case, "--device", args.device,
                              "--steps", str(args.steps), "--warmup", str(args.warmup)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{case:15s} {r['ms_per_step']:9.1f} ms/step {r['samples_per_s']:9.0f} samples/s "
              f"peak {r['peak_mb']:7.0f} MB" + (f"  ({r['seconds']:.2f} s total)" if "seconds" in r else ""),
              flush=True)
    info = {"machine": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if cuda else None,
            "redcore_lite": rc.__version__, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    path = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"step_time_{device.type}.json"
    dump_json(path, {"info": info, "results": rows})
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
