"""Missing-modality masks: exact-count training masks, evaluation patterns, realised rates.

Availability ``a[i, m] = 1`` means modality ``m`` of sample ``i`` is present.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import pandas as pd
import torch

from ._checks import check_rates

__all__ = ["make_mask", "eval_patterns", "pattern_names", "realised_rates", "pattern_counts"]


def make_mask(num_samples: int, rates: Sequence[float], generator: torch.Generator,
              min_available: int = 0) -> torch.Tensor:
    """Draw a training availability mask with exactly ``floor(N * r_m)`` missing per modality.

    Args:
        num_samples: N, the number of training samples.
        rates: missing rate r_m per modality, each in [0, 1].
        generator: a seeded CPU ``torch.Generator`` (the only source of randomness).
        min_available: 0 keeps rows that lost every modality (release); 1 repairs each such row by
            swapping one missing entry with a present entry of another row, which keeps the
            per-modality counts exact whenever a swap partner exists.
    Returns:
        a: ``[N, M]`` bool, True where the modality is present.
    """
    rates = check_rates(rates)
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples: got {num_samples!r}; allowed: an integer >= 1")
    if min_available not in (0, 1):
        raise ValueError(f"min_available: got {min_available!r}; allowed: 0 (release) or 1 (repair)")
    num_mod = len(rates)
    avail = torch.ones(num_samples, num_mod, dtype=torch.bool)
    for m, r in enumerate(rates):
        k = math.floor(num_samples * r + 1e-9)
        avail[torch.randperm(num_samples, generator=generator)[:k], m] = False
    if min_available == 1:
        _repair_empty_rows(avail, generator)
    return avail


def _repair_empty_rows(avail: torch.Tensor, generator: torch.Generator) -> None:
    """Give every all-missing row one modality, swapping with a row that can spare it."""
    num_mod = avail.shape[1]
    for i in torch.nonzero(~avail.any(1)).flatten().tolist():
        order = torch.randperm(num_mod, generator=generator).tolist()
        for m in order:
            donors = torch.nonzero(avail[:, m] & (avail.sum(1) >= 2)).flatten()
            if len(donors):
                j = donors[torch.randint(len(donors), (1,), generator=generator)].item()
                avail[j, m] = False
                avail[i, m] = True
                break
        else:  # no donor anywhere: restore the first drawn modality (its count grows by one)
            avail[i, order[0]] = True


def eval_patterns(num_modalities: int) -> torch.Tensor:
    """All 2^M - 1 non-empty availability patterns, by size then modality order.

    Returns:
        patterns: ``[2^M - 1, M]`` bool; for M = 3 the rows are A, V, L, AV, AL, VL, AVL.
    """
    if num_modalities < 1:
        raise ValueError(f"num_modalities: got {num_modalities!r}; allowed: an integer >= 1")
    rows = []
    for size in range(1, num_modalities + 1):
        for combo in itertools.combinations(range(num_modalities), size):
            row = [False] * num_modalities
            for m in combo:
                row[m] = True
            rows.append(row)
    return torch.tensor(rows, dtype=torch.bool)


def pattern_names(patterns: torch.Tensor, modalities: Sequence[str]) -> list[str]:
    """Readable names of patterns: ``"AV"`` for one-letter modality names, else ``"audio+text"``."""
    sep = "" if all(len(m) == 1 for m in modalities) else "+"
    return [sep.join(m for m, on in zip(modalities, row.tolist()) if on) or "none"
            for row in patterns]


def realised_rates(avail: torch.Tensor, modalities: Sequence[str],
                   rates: Sequence[float] | None = None) -> pd.DataFrame:
    """Per-modality summary of a mask: requested rate, missing count, realised rate.

    Args:
        avail: ``[N, M]`` availability mask.
        modalities: M names.
        rates: the requested rates, if known.
    Returns:
        One row per modality plus a row ``"all missing"`` counting samples with no modality.
    """
    n = avail.shape[0]
    missing = (~avail.bool()).sum(0).tolist()
    rows = [{"modality": name, "requested": (None if rates is None else float(rates[m])),
             "missing": int(missing[m]), "realised": missing[m] / n}
            for m, name in enumerate(modalities)]
    empty = int((~avail.bool().any(1)).sum())
    rows.append({"modality": "all missing", "requested": None, "missing": empty,
                 "realised": empty / n})
    return pd.DataFrame(rows)


def pattern_counts(avail: torch.Tensor, modalities: Sequence[str]) -> pd.Series:
    """How many samples have each availability pattern (including ``"none"``)."""
    num_mod = avail.shape[1]
    allp = torch.cat([torch.zeros(1, num_mod, dtype=torch.bool), eval_patterns(num_mod)])
    codes = (avail.bool().long() * (2 ** torch.arange(num_mod))).sum(1)
    pcodes = (allp.long() * (2 ** torch.arange(num_mod))).sum(1)
    counts = [(codes == c).sum().item() for c in pcodes.tolist()]
    return pd.Series(counts, index=pattern_names(allp, modalities), name="samples")
