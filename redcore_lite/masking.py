"""Missing-modality masks: exact-count training masks, missingness mechanisms, evaluation
patterns, realised rates.

Availability ``a[i, m] = 1`` means modality ``m`` of sample ``i`` is present. A training mask
combines the data's *observed* availability (``MultimodalData.mask``: what is really missing)
with a *simulated* mask drawn on top of it (:func:`training_mask`, ``config.mask``).
Mechanisms of the simulated mask (``mask.mechanism``), each seeded and exact where counts are
defined:

- ``mcar``: for each modality, exactly ``floor(n_m r_m)`` of the ``n_m`` rows that have it lose
  it, completely at random (without an observed mask: :func:`make_mask`, the release's masks);
- ``class``: the same within each class with a per-class rate (missing not at random, by label);
- ``score``: the ``floor(n_m r_m)`` rows with the largest (or smallest) score lose modality m;
  the score is a feature (or the feature mean) of m itself (MNAR) or of another modality (MAR);
- ``menu``: a fixed menu of patterns with frequencies; exactly ``round(N f_k)`` rows (largest
  remainders) get pattern k (block-wise missingness: modalities missing together).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd
import torch

from ._checks import check_choice, check_rates

if TYPE_CHECKING:
    from .config import MaskConfig
    from .data import MultimodalData

__all__ = ["make_mask", "eval_patterns", "pattern_names", "realised_rates", "pattern_counts",
           "SIMULATE", "MECHANISMS", "simulating", "simulate_mask", "training_mask",
           "check_mechanism", "tilted_class_rates", "pattern_from_name", "pattern_codes"]

SIMULATE = ("auto", "on", "off")  # mask.simulate
MECHANISMS = ("mcar", "class", "score", "menu")  # mask.mechanism


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


def _repair_empty_rows(avail: torch.Tensor, generator: torch.Generator,
                       observed: torch.Tensor | None = None) -> None:
    """Give every all-missing row one modality, swapping with a row that can spare it.

    With ``observed`` (``[N, M]``), only rows that have some observed modality are repaired, and
    only with a modality they really have."""
    num_mod = avail.shape[1]
    empty = ~avail.any(1) if observed is None else ~avail.any(1) & observed.any(1)
    for i in torch.nonzero(empty).flatten().tolist():
        order = torch.randperm(num_mod, generator=generator).tolist()
        if observed is not None:
            order = [m for m in order if observed[i, m]]
        for m in order:
            donors = torch.nonzero(avail[:, m] & (avail.sum(1) >= 2)).flatten()
            if len(donors):
                j = int(donors[torch.randint(len(donors), (1,), generator=generator)].item())
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
                   rates: Sequence[float] | None = None,
                   observed: torch.Tensor | None = None) -> pd.DataFrame:
    """Per-modality summary of a mask: requested rate, missing count, realised rate.

    Args:
        avail: ``[N, M]`` availability mask (with ``observed``: the combined training mask).
        modalities: M names.
        rates: the requested (simulated) rates, if known.
        observed: ``[N, M]`` the data's observed availability, if it has one: adds the columns
            ``observed_missing`` / ``observed_rate`` (really missing) and ``simulated_missing`` /
            ``simulated_rate`` (present in the data, removed by the simulation); ``missing`` and
            ``realised`` are then the totals.
    Returns:
        One row per modality plus a row ``"all missing"`` counting samples with no modality.
    """
    n = avail.shape[0]
    a = avail.bool().cpu()
    missing = (~a).sum(0).tolist()
    rows = [{"modality": name, "requested": (None if rates is None else float(rates[m])),
             "missing": int(missing[m]), "realised": missing[m] / n}
            for m, name in enumerate(modalities)]
    empty = int((~a.any(1)).sum())
    rows.append({"modality": "all missing", "requested": None, "missing": empty,
                 "realised": empty / n})
    frame = pd.DataFrame(rows)
    if observed is None:
        return frame
    o = observed.bool().cpu()
    obs = [*(~o).sum(0).tolist(), int((~o.any(1)).sum())]
    frame.insert(2, "observed_missing", obs)
    frame.insert(3, "simulated_missing", [t - k for t, k in zip(frame["missing"], obs)])
    frame["observed_rate"] = frame["observed_missing"] / n
    frame["simulated_rate"] = frame["simulated_missing"] / n
    return frame


def pattern_counts(avail: torch.Tensor, modalities: Sequence[str]) -> pd.Series:
    """How many samples have each availability pattern (including ``"none"``)."""
    num_mod = avail.shape[1]
    allp = torch.cat([torch.zeros(1, num_mod, dtype=torch.bool), eval_patterns(num_mod)])
    codes = (avail.bool().long() * (2 ** torch.arange(num_mod))).sum(1)
    pcodes = (allp.long() * (2 ** torch.arange(num_mod))).sum(1)
    counts = [(codes == c).sum().item() for c in pcodes.tolist()]
    return pd.Series(counts, index=pattern_names(allp, modalities), name="samples")


def pattern_codes(avail: torch.Tensor) -> torch.Tensor:
    """One integer per row: ``sum_m a[i, m] 2^m`` (``[N]`` long, on ``avail``'s device)."""
    num_mod = avail.shape[1]
    return (avail.bool().long() * (2 ** torch.arange(num_mod, device=avail.device))).sum(1)


def pattern_from_name(name: str, modalities: Sequence[str], what: str = "pattern") -> torch.Tensor:
    """The ``[M]`` bool pattern named ``name`` (as :func:`pattern_names` writes it, or ``"none"``)."""
    num_mod = len(modalities)
    allp = torch.cat([torch.zeros(1, num_mod, dtype=torch.bool), eval_patterns(num_mod)])
    names = pattern_names(allp, modalities)
    if name not in names:
        raise ValueError(f"{what}: got {name!r}; allowed: a pattern of {list(modalities)}: "
                         + ", ".join(map(repr, names)))
    return allp[names.index(name)]


def tilted_class_rates(rates: Sequence[float], num_classes: int, tilt: float = 0.5
                       ) -> tuple[tuple[float, ...], ...]:
    """Per-class rates with the same mean as ``rates``: class c of modality m gets
    ``r_m + s_m * tilt * min(r_m, 1 - r_m) * (2c / (C - 1) - 1)``, with ``s_m = (-1)^m`` (the
    modalities lean opposite ways, so no class loses everything). With balanced classes the
    overall rate of each modality stays ``r_m`` (up to the floor of each class's count).

    Returns:
        ``[C][M]`` nested tuples, for ``mask.class_rates``.
    """
    rates = check_rates(rates)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes: got {num_classes!r}; allowed: an integer >= 2")
    if not 0.0 <= tilt <= 1.0:
        raise ValueError(f"tilt: got {tilt!r}; allowed: a number in [0, 1]")
    return tuple(tuple(round(r + (-1) ** m * tilt * min(r, 1 - r) * (2 * c / (num_classes - 1) - 1),
                             10) for m, r in enumerate(rates)) for c in range(num_classes))


def simulating(config: MaskConfig, observed: torch.Tensor | None) -> bool:
    """Whether a simulated mask is drawn for a training split with this observed mask."""
    check_choice(config.simulate, SIMULATE, "mask.simulate")
    if config.simulate == "auto":
        return observed is None or bool(observed.all())
    return config.simulate == "on"


def check_mechanism(config: MaskConfig, modalities: Sequence[str], num_classes: int,
                    dims: Sequence[int] | None = None) -> None:
    """Raise a ValueError naming the field when ``config``'s mechanism settings cannot apply."""
    num_mod = len(modalities)
    check_choice(config.mechanism, MECHANISMS, "mask.mechanism")
    if config.mechanism in ("mcar", "score"):
        check_rates(config.rates, num_mod, "mask.rates")
    if config.mechanism == "class":
        cr = config.class_rates
        if len(cr) != num_classes or any(len(row) != num_mod for row in cr):
            raise ValueError(f"mask.class_rates: got {[list(r) for r in cr]}; allowed: "
                             f"{num_classes} rows (one per class) of {num_mod} rates in [0, 1] "
                             "(rc.masking.tilted_class_rates builds one)")
        for row in cr:
            check_rates(row, num_mod, "mask.class_rates")
    if config.mechanism == "score":
        if config.score_modality and config.score_modality not in modalities:
            raise ValueError(f"mask.score_modality: got {config.score_modality!r}; allowed: '' "
                             "(each modality its own score) or one of " + ", ".join(map(repr, modalities)))
        dim = None
        if dims is not None:
            dim = (min(dims) if not config.score_modality
                   else dims[list(modalities).index(config.score_modality)])
        f = config.score_feature
        if not isinstance(f, int) or f < -1 or (dim is not None and f >= dim):
            raise ValueError(f"mask.score_feature: got {f!r}; allowed: -1 (the mean of the "
                             f"features) or a feature index in [0, {(dim or 1) - 1}]")
    if config.mechanism == "menu":
        pats, freqs = config.patterns, config.pattern_freqs
        if not pats or len(pats) != len(freqs) or len(set(pats)) != len(pats):
            raise ValueError(f"mask.patterns / mask.pattern_freqs: got {list(pats)} and "
                             f"{list(freqs)}; allowed: distinct pattern names and one frequency "
                             "each")
        for name in pats:
            pattern_from_name(name, modalities, "mask.patterns")
        if any(not 0.0 <= f <= 1.0 for f in freqs) or abs(sum(freqs) - 1.0) > 1e-6:
            raise ValueError(f"mask.pattern_freqs: got {list(freqs)}; allowed: numbers in [0, 1] "
                             "summing to 1")


def _score(data: MultimodalData, m: int, config: MaskConfig) -> torch.Tensor:
    """``[N]`` float64 score of modality ``m``'s rows (see ``mask.score_*``), on the CPU."""
    name = config.score_modality or data.modalities[m]
    x = data.features[name].detach().cpu().double()
    if x.dim() == 3:  # sequences: the mean over valid frames
        ln = data.lengths.get(name)
        w = (torch.ones(x.shape[:2], dtype=x.dtype) if ln is None
             else (torch.arange(x.shape[1]) < ln.cpu()[:, None]).to(x.dtype))
        x = (x * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp(min=1)
    s = x.mean(1) if config.score_feature < 0 else x[:, config.score_feature]
    return s if config.score_largest else -s


def _menu_counts(num_samples: int, freqs: Sequence[float]) -> list[int]:
    """Largest-remainder rounding: counts summing to N, each floor(N f) or one more."""
    raw = [num_samples * f for f in freqs]
    counts = [math.floor(r + 1e-9) for r in raw]
    order = sorted(range(len(raw)), key=lambda k: (-(raw[k] - counts[k]), k))
    for k in order[:num_samples - sum(counts)]:
        counts[k] += 1
    return counts


def simulate_mask(config: MaskConfig, data: MultimodalData, generator: torch.Generator,
                  observed: torch.Tensor | None = None) -> torch.Tensor:
    """Draw the simulated mask of ``config.mechanism`` on top of ``observed``; the combined mask.

    Args:
        config: the mask settings (``rates``, ``mechanism`` and its fields, ``min_available``).
        data: the training data (labels for ``class``, features for ``score``).
        generator: a seeded CPU ``torch.Generator`` (the only source of randomness).
        observed: ``[N, M]`` bool observed availability, or None (every modality present).
    Returns:
        ``[N, M]`` bool, True where the modality is present in the data and kept by the
        simulation. Without ``observed``, mechanism ``mcar`` is exactly :func:`make_mask`.
    """
    check_mechanism(config, data.modalities, data.num_classes, data.dims)
    n, num_mod = len(data), len(data.modalities)
    if observed is None and config.mechanism == "mcar":
        return make_mask(n, config.rates, generator, config.min_available)
    eligible = (torch.ones(n, num_mod, dtype=torch.bool) if observed is None
                else observed.bool().cpu())
    avail = eligible.clone()
    labels = data.labels.cpu()
    if config.mechanism == "menu":
        pats = torch.stack([pattern_from_name(p, data.modalities) for p in config.patterns])
        order = torch.randperm(n, generator=generator)
        start = 0
        for pat, k in zip(pats, _menu_counts(n, config.pattern_freqs)):
            avail[order[start:start + k]] &= pat
            start += k
    else:
        for m in range(num_mod):
            groups = ([(eligible[:, m], config.rates[m])] if config.mechanism != "class" else
                      [(eligible[:, m] & (labels == c), row[m])
                       for c, row in enumerate(config.class_rates)])
            score = _score(data, m, config) if config.mechanism == "score" else None
            for rows_mask, rate in groups:
                rows = torch.nonzero(rows_mask).flatten()
                k = math.floor(len(rows) * rate + 1e-9)
                perm = rows[torch.randperm(len(rows), generator=generator)]  # also breaks ties
                if score is not None:
                    perm = perm[torch.sort(score[perm], descending=True, stable=True).indices]
                avail[perm[:k], m] = False
    if config.min_available == 1:
        _repair_empty_rows(avail, generator, eligible)
    elif config.min_available != 0:
        raise ValueError(f"mask.min_available: got {config.min_available!r}; allowed: 0 or 1")
    return avail


def training_mask(config: MaskConfig, data: MultimodalData, generator: torch.Generator
                  ) -> torch.Tensor:
    """The training mask of ``data`` (``[N, M]`` bool, CPU): its observed availability, with a
    simulated mask (:func:`simulate_mask`) on top where :func:`simulating` says so."""
    observed = None if data.mask is None else data.mask.bool().cpu()
    if simulating(config, observed):
        return simulate_mask(config, data, generator, observed)
    return (torch.ones(len(data), len(data.modalities), dtype=torch.bool) if observed is None
            else observed.clone())
