"""Speed and accuracy of `teach` model variants: why the `teach` preset is what it is.

Fits every variant on the same seeds, rates and data (paired), in this process, one after the
other, so each variant's times come from the same minutes. Variants (changes to the `teach` model):

  before      the `teach` preset until 2026-11-27: two generator blocks, heads with one hidden
              layer of 64 and dropout 0.2
  teach       the current preset: one generator block, linear heads
  gen1        one generator block, heads as before
  gen1-small  one generator block of widths (32,), heads as before

Usage:  python benchmarks/teach_presets.py [--seeds 3] [--datasets mfeat,synthetic]
Prints a table (fit seconds: fastest and median; test macro-F1: mean, and the paired difference
to `before`: mean, min, max) and writes benchmarks/results/teach_presets_cpu.json (atomically).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import redcore_lite as rc  # noqa: E402

VARIANTS = {
    "before": {"gen_blocks": 2, "head_layers": (64,), "head_dropout": 0.2},
    "teach": {},
    "gen1": {"gen_blocks": 1, "head_layers": (64,), "head_dropout": 0.2},
    "gen1-small": {"gen_blocks": 1, "gen_layers": (32,), "head_layers": (64,), "head_dropout": 0.2},
}
RATES = {"imb_258": (0.2, 0.5, 0.8), "large": (0.7, 0.7, 0.7)}


def run(datasets: list[str], seeds: int) -> list[dict]:
    rows = []
    for ds in datasets:
        for setting, rates in RATES.items():
            for seed in range(seeds):
                base = rc.override(rc.preset("teach"), data={"name": ds}, mask={"rates": rates},
                                   train={"device": "cpu", "seed": seed})
                splits = rc.load_data(base.data, seed=seed)
                for name, model in VARIANTS.items():
                    cfg = rc.override(base, model=model) if model else base
                    t0 = time.perf_counter()
                    res = rc.fit(cfg, splits)
                    secs = time.perf_counter() - t0
                    f1 = float(res.test.set_index("pattern").loc["overall", "f1"])
                    rows.append({"dataset": ds, "setting": setting, "seed": seed, "variant": name,
                                 "fit_s": secs, "test_f1": f1})
                    print(f"{ds:9s} {setting:8s} seed {seed} {name:10s} {secs:5.2f} s  F1 {f1:.3f}",
                          flush=True)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        ref = {(r["setting"], r["seed"]): r["test_f1"] for r in rows
               if r["dataset"] == ds and r["variant"] == "before"}
        for name in VARIANTS:
            mine = [r for r in rows if r["dataset"] == ds and r["variant"] == name]
            diffs = [r["test_f1"] - ref[(r["setting"], r["seed"])] for r in mine]
            secs = [r["fit_s"] for r in mine]
            out.append({"dataset": ds, "variant": name, "fits": len(mine), "fit_s_min": min(secs),
                        "fit_s_median": statistics.median(secs),
                        "test_f1_mean": statistics.fmean(r["test_f1"] for r in mine),
                        "f1_minus_before_mean": statistics.fmean(diffs),
                        "f1_minus_before_min": min(diffs), "f1_minus_before_max": max(diffs)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="mfeat,synthetic")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "teach_presets_cpu.json"))
    args = ap.parse_args()
    if args.seeds < 1:
        raise ValueError(f"--seeds: got {args.seeds}; allowed: an integer >= 1")
    rows = run(args.datasets.split(","), args.seeds)
    table = summary(rows)
    print(f"\n{'dataset':9s} {'variant':10s} {'fastest':>8s} {'median':>8s} {'F1':>6s}  F1 - before: mean [min, max]")
    for t in table:
        print(f"{t['dataset']:9s} {t['variant']:10s} {t['fit_s_min']:7.2f}s {t['fit_s_median']:7.2f}s "
              f"{t['test_f1_mean']:6.3f}  {t['f1_minus_before_mean']:+.3f} "
              f"[{t['f1_minus_before_min']:+.3f}, {t['f1_minus_before_max']:+.3f}]")
    from redcore_lite._files import dump_json
    info = {"machine": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "load_average": os.getloadavg(),
            "time": time.strftime("%Y-%m-%d %H:%M:%S"), "seeds": args.seeds, "rates": RATES,
            "variants": {k: {f: list(v) if isinstance(v, tuple) else v for f, v in m.items()}
                         for k, m in VARIANTS.items()}}
    dump_json(args.out, {"info": info, "summary": table, "runs": rows})
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
