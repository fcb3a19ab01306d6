"""Wall time and peak memory of one `teach` fit (30 epochs), the run a notebook slider triggers.

Datasets: mfeat (three views fou/kar/pix, 2000 samples; shipped in redcore_lite/data_files/) and synthetic.
Each case runs in a fresh process so its peak resident memory is its own.

Usage:  python benchmarks/teach_time.py [--threads 2] [--repeats 3]
Prints a table and writes benchmarks/results/teach_time_cpu.json (atomically).
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def child(dataset: str, repeats: int) -> dict:
    import torch

    import redcore_lite as rc

    cfg = rc.override(rc.preset("teach"), data={"name": dataset}, train={"device": "cpu"})
    t0 = time.perf_counter()
    splits = rc.load_data(cfg.data, seed=0)
    load_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = rc.fit(cfg, splits)
        times.append(time.perf_counter() - t0)
    return {"dataset": dataset, "threads": torch.get_num_threads(), "load_s": load_s,
            "fit_s": min(times), "fit_s_median": sorted(times)[len(times) // 2], "fit_s_all": times,
            "epochs": cfg.epochs, "steps": len(res.history),
            "train_samples": len(splits.train),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "test_wa": float(res.test.set_index("pattern").loc["overall", "wa"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="mfeat,synthetic")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=3, help="fits per case; the fastest is reported")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "teach_time_cpu.json"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        if args.threads:
            import torch
            torch.set_num_threads(args.threads)
        print(json.dumps(child(args.child, args.repeats)))
        return
    rows = []
    for ds in args.datasets.split(","):
        cmd = [sys.executable, __file__, "--child", ds, "--repeats", str(args.repeats)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(f"{ds:10s} fit {r['fit_s']:.2f} s (fastest of {args.repeats}, median "
              f"{r['fit_s_median']:.2f} s; the process's first {r['fit_s_all'][0]:.2f} s; "
              f"{r['steps']} steps, {r['epochs']} epochs, {r['threads']} "
              f"threads)  peak {r['peak_mb']:.0f} MB  test WA {r['test_wa']:.3f}", flush=True)
    from redcore_lite._files import dump_json
    import torch
    info = {"machine": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "load_average": os.getloadavg(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    dump_json(args.out, {"info": info, "results": rows})
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
