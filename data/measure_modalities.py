"""Measure how strong each modality of a data set is, and what missing it costs.

Usage (from the repository root)::

    .venv/bin/python data/measure_modalities.py avdigits --seeds 3
    .venv/bin/python data/measure_modalities.py avdigits --data holdout=takes --rates 0.2 0.8 0.5
    .venv/bin/python data/measure_modalities.py synthetic --synthetic complementary --seeds 3

Prints two markdown tables: (1) test accuracy of a logistic-regression probe (scikit-learn, on the
normalised features of the split of each seed) on each modality alone and on all together;
(2) test macro-F1 per availability pattern of ``rc.fit`` with the ``teach`` preset (one row per
seed, then mean and std), trained with the given missing rates.
"""
from __future__ import annotations

import argparse
import ast
import sys
import warnings

import numpy as np
import pandas as pd
import torch

import redcore_lite as rc


def probe(splits: rc.Splits, mods: tuple[str, ...]) -> float:
    """Test accuracy of a logistic regression trained on the concatenated modalities."""
    from sklearn.linear_model import LogisticRegression

    x = {p: np.hstack([getattr(splits, p).features[m].flatten(1).numpy() for m in mods])
         for p in ("train", "test")}
    model = LogisticRegression(max_iter=3000).fit(x["train"], splits.train.labels.numpy())
    return float(model.score(x["test"], splits.test.labels.numpy()))


def fields(items: list[str]) -> dict[str, object]:
    """``["a=1", "b=(2, 3)", "c=takes"]`` -> ``{"a": 1, "b": (2, 3), "c": "takes"}``."""
    out: dict[str, object] = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value  # a bare word: a string
    return out


def markdown(table: pd.DataFrame) -> str:
    """A markdown table with 3 decimals (pandas' to_markdown needs tabulate)."""
    rows = [["", *map(str, table.columns)], ["---"] * (len(table.columns) + 1)]
    rows += [[str(i), *(f"{v:.3f}" for v in row)] for i, row in zip(table.index, table.to_numpy())]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="a name of redcore_lite.datasets.DATASETS")
    parser.add_argument("--data", nargs="*", default=[], help="DataConfig fields, KEY=VALUE "
                        "(VALUE a Python literal, e.g. holdout='takes' or snr=(1.0,0.3,0.1))")
    parser.add_argument("--model", nargs="*", default=[], help="ModelConfig fields, KEY=VALUE")
    parser.add_argument("--synthetic", help="a name of rc.config.SYNTHETIC_PRESETS")
    parser.add_argument("--rates", type=float, nargs="+", help="missing rates (default: teach's)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--backbone", choices=("mlp", "transformer"), default="mlp")
    parser.add_argument("--no-probe", action="store_true", help="skip the probes")
    parser.add_argument("--no-fit", action="store_true", help="skip the teach fits")
    args = parser.parse_args(argv)
    data = dict(rc.config.SYNTHETIC_PRESETS[args.synthetic]) if args.synthetic else {}
    data |= {**fields(args.data), "name": args.dataset}
    model = {**fields(args.model), "backbone": args.backbone}
    config = rc.override(rc.preset("teach"), data=data, model=model,
                         **({"mask": {"rates": tuple(args.rates)}} if args.rates else {}))
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    print(f"data: {data}; model: {model}; rates {config.mask.rates}; seeds 0..{args.seeds - 1}\n")
    probes, fits = [], []
    for seed in range(args.seeds):
        splits = rc.load_data(config.data, seed=seed)
        mods = splits.modalities
        if not args.no_probe:
            probes.append({**{m: probe(splits, (m,)) for m in mods}, "all": probe(splits, mods)})
        if not args.no_fit:
            result = rc.fit(rc.override(config, train={"seed": seed}), splits)
            fits.append(result.test.set_index("pattern")["f1"].rename(f"seed {seed}"))
    if probes:
        table = pd.DataFrame(probes, index=[f"seed {s}" for s in range(args.seeds)])
        print("Logistic-regression probe, test accuracy:\n")
        print(markdown(table.agg(["mean", "std"])) + "\n")
    if fits:
        table = pd.concat(fits, axis=1).T
        table = pd.concat([table, table.agg(["mean", "std"])])
        print(f"teach fit, test macro-F1 per availability pattern (rates {config.mask.rates}):\n")
        print(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
