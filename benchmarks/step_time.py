"""Milliseconds per training step: redcore_lite vs the release's step, and a `teach` run.

Cases (each in its own process, so peak memory is per case):
  paper        `paper` preset, random IEMOCAP-shaped batches (B=128; A/V/L dims 130/342/1024,
               lengths 50/20/20), one full bi-level step (forward, beta step, backward, clip, Adam)
  paper-cpu-fast  the same with ``model.cpu_speedups`` (the CPU speed paths: faster dropout masks,
               the Transformer on valid frames only; ``paper`` runs torch's kernels, the reference)
  paper-bf16   the same under bf16 autocast (CUDA, or a CPU with native bf16 such as AVX512-BF16)
  paper-compiled  bf16 + torch.compile (CUDA only; the static-shape step, as fit() compiles it)
  paper-tf32   fp32 with TF32 matmuls (CUDA only)
  paper-graph, paper-bf16-graph, paper-compiled-graph
               `train.cuda_graph`: the step with static shapes (every row encoded), replayed as
               one CUDA graph (on a CPU: run eagerly); fp32, bf16, bf16 + torch.compile
  release      the release's step re-implemented in benchmarks/release_reference.py
  teach        a whole `teach` fit on the synthetic data (30 epochs): seconds and ms per step

Usage:  python benchmarks/step_time.py [--device cpu|cuda] [--steps 20] [--cases paper,release,teach]
        [--batch 128] [--batches 1] [--profile] [--timeout 300]
``--batches K`` rotates over K different random batches (different masks, so different numbers of
present rows: what a compiled model meets in training); ``--profile`` adds the host milliseconds
of each part of the step (forward, loss, backward, clip, adam) and, on CUDA, the kernels launched
per step and the GPU-busy milliseconds per step (torch.profiler over 3 steps), which says whether
a step is bound by the GPU or by launching work. A case that fails or runs past
``--timeout`` seconds is recorded with its error and the others still run.
Each step case also reports its FLOPs (``torch.utils.flop_counter.FlopCounterMode`` over one
step: forward and backward matmuls, convolutions and attention; Adam's elementwise work is not
counted) and the achieved fraction of this machine's matmul peak, measured in the same run by
timing a large square matmul (fp32, and bf16 for the bf16 cases; ``--peak-size N``).
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
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import redcore_lite as rc  # noqa: E402
from redcore_lite._files import dump_json  # noqa: E402

DIMS, LENS, BATCH = (130, 342, 1024), (50, 20, 20), 128


def _batch(device: torch.device, gen: torch.Generator, batch: int = BATCH):
    xs = [torch.randn(batch, t, d, generator=gen).to(device) for t, d in zip(LENS, DIMS)]
    lens = [torch.randint(t // 2, t + 1, (batch,), generator=gen).to(device) for t in LENS]
    for x, ln in zip(xs, lens):
        x.mul_((torch.arange(x.shape[1], device=device) < ln[:, None])[..., None])
    avail = rc.make_mask(batch, (0.2, 0.5, 0.8), gen).to(device)
    y = torch.randint(0, 4, (batch,), generator=gen).to(device)
    return xs, lens, avail, y


def _profile(step, device, steps: int = 3) -> dict:
    """Kernels launched and GPU-busy ms per step (CUDA), and host ms per part of the step (under
    the profiler, whose own overhead inflates them), from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    _sync(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            step()
        _sync(device)
    kernels, busy_us, host_us = 0, 0.0, {}
    for evt in prof.events():
        if evt.device_type == torch.autograd.DeviceType.CUDA:
            kernels += 1
            busy_us += getattr(evt, "device_time", None) or getattr(evt, "cuda_time", 0.0)
        elif evt.name.startswith("redcore::"):  # the step's parts (step.region), host time
            key = evt.name.split("::")[1]
            host_us[key] = host_us.get(key, 0.0) + evt.cpu_time_total
    return {"kernels_per_step": kernels / steps, "gpu_busy_ms_per_step": busy_us / steps / 1000,
            "host_ms_per_step_by_part": {k: v / steps / 1000 for k, v in host_us.items()}}


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


def paper_step(case: str, device: torch.device, data: list[tuple]) -> Callable[[], None]:
    """One eager bi-level step of the `paper` model per call (``case``: paper, paper-tf32,
    paper-bf16), set up as ``fit`` sets it up, rotating over the batches in ``data``."""
    cfg = rc.override(rc.preset("paper"), train={"bf16": case == "paper-bf16",
                                                 "tf32": case == "paper-tf32"},
                      model={"cpu_speedups": case == CPU_FAST})
    torch.backends.cuda.matmul.allow_tf32 = cfg.train.tf32  # what fit() sets for the run
    model = rc.build_model(cfg.model, DIMS, 4, seed=0).to(device)
    opt = rc.trainer.make_optimizer(model, cfg)
    adv = rc.advantage.RelativeAdvantage(cfg.advantage, 3, device)
    groups = rc.step.clip_groups(model)
    presents = [rc.batching.epoch_plan(torch.arange(len(d[3])), d[2].cpu(), len(d[3]), device)[0][1]
                for d in data]
    turn = iter(range(1 << 62))

    def step() -> None:
        k = next(turn) % len(data)
        xs, lens, avail, y = data[k]
        rc.trainer.train_step(model, opt, adv, cfg, xs, lens, avail, y, groups, presents[k])

    return step


CPU_FAST = "paper-cpu-fast"  # the `paper` step with model.cpu_speedups
STATIC_CASES = {"paper-compiled": (True, True, False), "paper-graph": (False, False, True),
                "paper-bf16-graph": (True, False, True),
                "paper-compiled-graph": (True, True, True)}  # case -> (bf16, compile, CUDA graph)


def static_step(case: str, device: torch.device, data: list[tuple]) -> Callable[[], None]:
    """One `paper` step per call through :class:`redcore_lite.step.StaticStep` (every row
    encoded; replayed as a CUDA graph on a GPU for the ``-graph`` cases), set up as ``fit`` sets it
    up for ``train.compile`` / ``train.cuda_graph``, rotating over the batches in ``data``."""
    from redcore_lite.data import MultimodalData
    from redcore_lite.step import StaticStep

    bf16, compiled, graph = STATIC_CASES[case]
    cfg = rc.override(rc.preset("paper"), train={"bf16": bf16, "compile": compiled, "cuda_graph": graph,
                                                 "batch_size": len(data[0][3])})
    model = rc.build_model(cfg.model, DIMS, 4, seed=0).to(device)
    step_model = torch.compile(model, dynamic=False) if compiled else model  # as fit()
    opt = rc.trainer.make_optimizer(model, cfg)
    adv = rc.advantage.RelativeAdvantage(cfg.advantage, 3, device)
    groups = rc.step.clip_groups(model)
    names = ("a", "v", "l")
    train = MultimodalData({n: torch.cat([d[0][m] for d in data]) for m, n in enumerate(names)},
                           torch.cat([d[3] for d in data]), 4,
                           {n: torch.cat([d[1][m] for d in data]) for m, n in enumerate(names)})
    mask = torch.cat([d[2] for d in data]).bool()
    step_fn = StaticStep(model, step_model, opt, adv, cfg, train, mask,
                         lambda: rc.step.clip_gradients(*groups, cfg.train.clip_norm),
                         capture=graph and device.type == "cuda")
    b = len(data[0][3])
    idx = [torch.arange(k * b, (k + 1) * b, device=device) for k in range(len(data))]
    turn = iter(range(1 << 62))

    def step() -> None:
        step_fn(idx[next(turn) % len(data)])

    return step


def step_flops(step: Callable[[], None]) -> int | None:
    """FLOPs of one call of ``step`` (torch.utils.flop_counter; None if nothing was counted, e.g.
    a CUDA graph replay, whose kernels the counter does not see)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    total = counter.get_total_flops()
    return int(total) if total > 0 else None


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 2048,
                repeats: int = 5) -> float:
    """This machine's measured matmul throughput: FLOP/s of the fastest of ``repeats`` ``[n, n] @
    [n, n]`` products (2 n^3 FLOPs each) after a warm-up."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def run_case(case: str, device: torch.device, steps: int, warmup: int, batch: int = BATCH,
             batches: int = 1, prof: bool = False) -> dict:
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
    data = [_batch(device, gen, batch) for _ in range(batches)]
    if case == "release":
        from release_reference import ReleaseStep
        rel = ReleaseStep(DIMS, 4, device=device)
        turn = iter(range(1 << 62))

        def step():
            xs, _, avail, y = data[next(turn) % batches]
            rel(xs[0], xs[1], xs[2], avail.long(), y)
    elif case in STATIC_CASES:
        step = static_step(case, device, data)
    else:
        step = paper_step(case, device, data)
    ms = _time_steps(step, device, steps, warmup)
    row = {"case": case, "batch": batch, "batches": batches, "ms_per_step": ms,
           "samples_per_s": batch / ms * 1000, "peak_mb": _peak_mb(device), "steps": steps}
    try:  # after the timing: one more step, under the FLOP counter
        row["flops_per_step"] = step_flops(step)
    except Exception as err:  # a diagnostic: never lose the timing for it
        row["flops_per_step"], row["flops_error"] = None, repr(err)
    if prof:
        try:
            row.update(_profile(step, device))
        except Exception as err:  # the profiler is a diagnostic: never lose the timing for it
            row["profile_error"] = repr(err)
    return row


def _line(r: dict) -> str:
    name = f"{r['case']} (B={r.get('batch', BATCH)})"
    if "error" in r:
        return f"{name:26s} FAILED: {r['error']}"
    text = (f"{name:26s} {r['ms_per_step']:9.2f} ms/step {r['samples_per_s']:9.0f} samples/s "
            f"peak {r['peak_mb']:7.0f} MB")
    if "seconds" in r:
        text += f"  ({r['seconds']:.2f} s total)"
    if r.get("flops_per_step"):
        text += (f"  {r['flops_per_step'] / 1e9:.2f} GFLOP/step, {r['achieved_tflops']:.3f} TFLOP/s = "
                 f"{100 * r['peak_fraction']:.1f}% of the {r['peak_dtype']} matmul peak")
    if r.get("kernels_per_step"):
        text += f"  {r['kernels_per_step']:.0f} kernels, GPU busy {r['gpu_busy_ms_per_step']:.2f} ms/step"
    if r.get("host_ms_per_step_by_part"):
        text += "  host ms: " + " ".join(f"{k} {v:.1f}" for k, v in r["host_ms_per_step_by_part"].items())
    return text


def _add_peak_fraction(row: dict, peaks: dict[str, float]) -> None:
    """Achieved TFLOP/s of a step case and its fraction of the matching matmul peak (bf16 for the
    bf16 and compiled cases, else fp32)."""
    if not row.get("flops_per_step") or not row.get("ms_per_step"):
        return
    dtype = "bf16" if ("bf16" in row["case"] or "compiled" in row["case"]) and "bf16" in peaks else "fp32"
    achieved = row["flops_per_step"] / (row["ms_per_step"] / 1000)
    row.update(achieved_tflops=achieved / 1e12, peak_dtype=dtype, peak_fraction=achieved / peaks[dtype])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--cases", default=None, help="comma-separated (default: all for the device)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=BATCH, help="samples per step (paper/release)")
    ap.add_argument("--batches", type=int, default=1, help="distinct random batches to rotate over")
    ap.add_argument("--profile", action="store_true", help="CUDA: kernels and GPU-busy ms per step")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per case (default: none)")
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/...)")
    ap.add_argument("--peak-size", type=int, default=None,
                    help="n of the [n, n] @ [n, n] matmul that measures the peak (default 2048 on "
                    "a CPU, 8192 on a GPU)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.child:
        print(json.dumps(run_case(args.child, device, args.steps, args.warmup, args.batch,
                                  args.batches, args.profile)))
        return
    cuda = device.type == "cuda"
    cases = (args.cases.split(",") if args.cases else
             ["paper", "paper-bf16", "release", "teach"] + (["paper-tf32", "paper-compiled"] if cuda
                                                            else [CPU_FAST]))
    n = args.peak_size or (8192 if cuda else 2048)
    peaks = {"fp32": matmul_peak(device, torch.float32, n)}
    if cuda or any("bf16" in c or "compiled" in c for c in cases):
        try:
            peaks["bf16"] = matmul_peak(device, torch.bfloat16, n)
        except RuntimeError:  # no bf16 matmul here
            pass
    print("matmul peak: " + ", ".join(f"{k} {v / 1e12:.3f} TFLOP/s" for k, v in peaks.items())
          + f" ([{n}, {n}] @ [{n}, {n}])", flush=True)
    rows = []
    for case in cases:
        cmd = [sys.executable, __file__, "--child", case, "--device", args.device,
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch),
               "--batches", str(args.batches)] + (["--profile"] if args.profile else [])
        try:
            env = dict(os.environ, **({"TORCH_LOGS": "recompiles,graph_breaks"} if "compiled" in case else {}))
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=args.timeout,
                                 env=env)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            _add_peak_fraction(rows[-1], peaks)
            if "compiled" in case:  # recompilations and graph breaks (TORCH_LOGS), if any
                rows[-1]["log_tail"] = out.stderr.strip().splitlines()[-40:]
        except subprocess.CalledProcessError as err:
            tail = (err.stderr or "").strip().splitlines()[-3:]
            rows.append({"case": case, "batch": args.batch, "error": " | ".join(tail)})
        except subprocess.TimeoutExpired:
            rows.append({"case": case, "batch": args.batch, "error": f"timed out after {args.timeout} s"})
        print(_line(rows[-1]), flush=True)
    info = {"machine": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if cuda else None,
            "redcore_lite": rc.__version__, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "batch": args.batch, "batches": args.batches, "steps": args.steps, "warmup": args.warmup,
            "matmul_peak_flops": peaks, "matmul_peak_size": n}
    path = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"step_time_{device.type}.json"
    dump_json(path, {"info": info, "results": rows})
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
