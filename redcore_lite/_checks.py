"""Input checks that turn bad arguments into a ValueError naming the argument and what is allowed."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["check_rates", "check_choice", "check_positive", "check_finite"]


def check_rates(rates: Sequence[float], num_modalities: int | None = None,
                name: str = "rates") -> tuple[float, ...]:
    """Missing rates as a tuple of floats in [0, 1], of length M when M is given."""
    try:
        values = tuple(float(r) for r in rates)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: got {rates!r}; allowed: a sequence of numbers in [0, 1]") from None
    if num_modalities is not None and len(values) != num_modalities:
        raise ValueError(f"{name}: got {len(values)} rate(s) {list(values)}; allowed: exactly "
                         f"{num_modalities}, one per modality")
    if not values:
        raise ValueError(f"{name}: got an empty sequence; allowed: one rate in [0, 1] per modality")
    for r in values:
        if not (0.0 <= r <= 1.0) or math.isnan(r):
            raise ValueError(f"{name}: got {list(values)}; allowed: every rate in [0, 1]")
    return values


def check_choice(value: object, allowed: Sequence[object], name: str) -> None:
    """``value`` must be one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name}: got {value!r}; allowed: " + ", ".join(map(repr, allowed)))


def check_positive(value: float, name: str, *, zero_ok: bool = False, integer: bool = False) -> None:
    """``value`` must be > 0 (or >= 0), and an int when ``integer``."""
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    ok = ok and not isinstance(value, bool) and (value >= 0 if zero_ok else value > 0)
    if not ok:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name}: got {value!r}; allowed: {kind} {'>= 0' if zero_ok else '> 0'}")


def check_finite(x: torch.Tensor, name: str) -> None:
    """``x`` must hold no NaN or infinity."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name}: holds {bad} NaN or infinite value(s); allowed: finite numbers "
                         "only (impute or drop them before training)")
