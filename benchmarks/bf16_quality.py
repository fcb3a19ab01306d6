"""Does bf16 autocast change what a Transformer RedCore learns, and is it faster, on this machine?

Paired fits (fp32 vs ``train.bf16``) of a small Transformer RedCore on synthetic sequences
(3 modalities of 40/60/80-d, 20 frames, 1200 samples, 20 epochs), one pair per seed.
Prints a table and writes benchmarks/results/bf16_quality_<device>.json (atomically).

Usage: python benchmarks/bf16_quality.py [--device cpu] [--seeds 3]
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redcore_lite as rc  # noqa: E402
from redcore_lite._files import dump_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    base = rc.override(
        rc.preset("paper"),
        data={"name": "synthetic", "dims": (40, 60, 80), "seq_len": 20, "num_samples": 1200,
              "snr": (1.0, 1.0, 1.0), "normalise": True},
        model={"latent_dim": 64, "num_heads": 4, "num_layers": 2},
        train={"device": args.device, "epochs_constant": 10, "epochs_decay": 10, "lr": 1e-3,
               "batch_size": 64})
    rows = []
    for seed in range(args.seeds):
        for bf16 in (False, True):
            cfg = rc.override(base, train={"bf16": bf16, "seed": seed})
            t0 = time.perf_counter()
            res = rc.fit(cfg)
            overall = res.test.set_index("pattern").loc["overall"]
            rows.append({"seed": seed, "bf16": bf16, "seconds": time.perf_counter() - t0,
                         "test_f1": float(overall["f1"]), "test_wa": float(overall["wa"])})
            r = rows[-1]
            print(f"seed {seed} {'bf16' if bf16 else 'fp32'}: {r['seconds']:6.1f} s  "
                  f"test macro-F1 {r['test_f1']:.3f}  WA {r['test_wa']:.3f}", flush=True)
    diffs = [b["test_f1"] - a["test_f1"] for a, b in zip(rows[::2], rows[1::2])]
    print("bf16 - fp32 test macro-F1 per seed:", " ".join(f"{d:+.3f}" for d in diffs))
    info = {"machine": platform.platform(), "device": args.device, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    path = ROOT / "benchmarks" / "results" / f"bf16_quality_{args.device.split(':')[0]}.json"
    dump_json(path, {"info": info, "results": rows, "f1_diff_bf16_minus_fp32": diffs})
    print(f"results written to {path}")


if __name__ == "__main__":
    main()
