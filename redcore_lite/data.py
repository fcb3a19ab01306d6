"""In-memory multimodal data: a dataset type, stratified splits, normalisation, synthetic data.

A modality is a tensor ``[N, D]`` (vectors) or ``[N, T, D]`` (frame sequences, zero-padded, with
lengths ``[N]``). Modality order is the order of the ``features`` dict, defined once here. Data that
is incomplete by itself carries an observed mask ``[N, M]`` (``MultimodalData.mask``); build such
data from your own arrays or tables with :mod:`redcore_lite.custom` (``rc.data.from_arrays``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ._checks import check_finite
from .registry import dataset_config, get_dataset

if TYPE_CHECKING:
    from .config import DataConfig

__all__ = ["MultimodalData", "Splits", "stratified_split", "normalise", "make_synthetic",
           "load_data"]  # rc.data.from_arrays, from_frame, split_by: set by the package __init__


def _take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[index]``; for a 1-D integer tensor as ``index_select`` (same values, ~3x faster)."""
    if isinstance(index, torch.Tensor) and index.dim() == 1 and index.dtype == torch.long:
        return x.index_select(0, index)
    return x[index]


@dataclass
class MultimodalData:
    """Samples with M modalities and integer labels, optionally with observed holes.

    ``mask[i, m] = False`` says that modality m of sample i is really missing (no features were
    recorded); its stored features are zeros (the release's rule: a missing modality's input is
    zeros), which the constructor enforces. ``mask = None``: every modality of every sample is
    present. Build one from your own arrays or tables with :func:`from_arrays` /
    :func:`from_frame` (they turn all-NaN rows into holes and check the rest).
    """

    features: dict[str, torch.Tensor]  # name -> [N, D] or [N, T, D] float
    labels: torch.Tensor  # [N] long in 0..C-1
    num_classes: int  # C
    lengths: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> [N] for sequences
    ids: list[str] | None = None  # optional sample ids (utterance ids)
    mask: torch.Tensor | None = None  # [N, M] bool observed availability (None: complete)
    classes: tuple[str, ...] | None = None  # class names: label c is classes[c] (string labels)
    source: dict[str, Any] = field(default_factory=dict)  # where the data came from (describe())

    def __post_init__(self) -> None:
        if self.mask is None:
            return
        mask = torch.as_tensor(self.mask)
        n, num_mod = int(self.labels.shape[0]), len(self.features)
        if mask.shape != (n, num_mod) or mask.is_floating_point() and not bool(
                ((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"mask: got shape {tuple(mask.shape)}; allowed: [{n}, {num_mod}] "
                             "bool (True = present), one column per modality in order "
                             f"{list(self.features)}")
        self.mask = mask.bool()
        self.features = dict(self.features)  # the caller's dict stays as it was
        for m, (name, x) in enumerate(self.features.items()):
            absent = ~self.mask[:, m]
            if x.shape[:1] == (n,) and bool(absent.any()):
                rows = absent.view(-1, *([1] * (x.dim() - 1)))
                if bool((x.masked_select(rows) != 0).any()):  # NaN != 0 too: zero them
                    self.features[name] = torch.where(rows, 0.0, x).to(x.dtype)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.features)

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(x.shape[-1] for x in self.features.values())

    @property
    def observed(self) -> torch.Tensor:
        """``[N, M]`` bool observed availability (all True without a mask)."""
        if self.mask is not None:
            return self.mask
        return torch.ones(len(self), len(self.features), dtype=torch.bool, device=self.labels.device)

    @property
    def complete(self) -> bool:
        """True when every modality of every sample is present (no mask, or an all-True one)."""
        return self.mask is None or bool(self.mask.all())

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def inputs(self, index: torch.Tensor | None = None
               ) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        """Feature and length tensors in modality order, gathered at ``index`` if given."""
        xs, lens = [], []
        for name, x in self.features.items():
            ln = self.lengths.get(name)
            xs.append(x if index is None else _take(x, index))
            lens.append(ln if index is None or ln is None else _take(ln, index))
        return xs, lens

    def _like(self, features: dict[str, torch.Tensor], labels: torch.Tensor,
              lengths: dict[str, torch.Tensor], ids: list[str] | None,
              mask: torch.Tensor | None) -> MultimodalData:
        return MultimodalData(features, labels, self.num_classes, lengths, ids, mask, self.classes,
                              dict(self.source))

    def subset(self, index: torch.Tensor) -> MultimodalData:
        """The samples at ``index`` (a new object; tensors are gathered)."""
        ids = None if self.ids is None else [self.ids[i] for i in index.tolist()]
        return self._like({k: v[index] for k, v in self.features.items()}, self.labels[index],
                          {k: v[index] for k, v in self.lengths.items()}, ids,
                          None if self.mask is None else self.mask[index])

    def to(self, device: torch.device | str) -> MultimodalData:
        """A copy on ``device``."""
        return self._like({k: v.to(device) for k, v in self.features.items()},
                          self.labels.to(device), {k: v.to(device) for k, v in self.lengths.items()},
                          self.ids, None if self.mask is None else self.mask.to(device))

    def coerced(self) -> tuple[MultimodalData, dict[str, str]]:
        """This data with float32 features, int64 labels and lengths: ``self`` when they already
        are, else a copy; and ``{what: old dtype}`` for each converted tensor (e.g. float64
        features, int32 or bool labels, which torch's layers and losses would refuse)."""
        notes: dict[str, str] = {}
        feats = dict(self.features)
        for mod, x in self.features.items():
            if x.dtype != torch.float32 and not x.is_complex():
                feats[mod] = x.float()
                notes[f"features[{mod!r}]"] = str(x.dtype).removeprefix("torch.")
        labels = self.labels
        if labels.dtype != torch.long and (labels.dtype == torch.bool or not (
                labels.is_floating_point() or labels.is_complex())):
            labels = labels.long()
            notes["labels"] = str(self.labels.dtype).removeprefix("torch.")
        lengths = {k: v if v.dtype == torch.long else v.long() for k, v in self.lengths.items()}
        if not notes and all(v is self.lengths[k] for k, v in lengths.items()):
            return self, notes
        return self._like(feats, labels, lengths, self.ids, self.mask), notes

    def validate(self, name: str = "data") -> None:
        """Raise a ValueError naming the problem: M < 2, NaN, bad labels, shapes, lengths, empty,
        a sample with no observed modality."""
        if len(self.features) < 2:
            raise ValueError(f"{name}.features: got {len(self.features)} modality(ies) "
                             f"{list(self.features)}; allowed: at least 2")
        n = len(self)
        if n == 0:
            raise ValueError(f"{name}: the split is empty (0 samples); allowed: at least 1 sample")
        if self.labels.dim() != 1 or self.labels.is_floating_point():
            raise ValueError(f"{name}.labels: got dtype {self.labels.dtype} shape "
                             f"{tuple(self.labels.shape)}; allowed: a 1-D integer tensor [N]")
        lo, hi = int(self.labels.min()), int(self.labels.max())
        if lo < 0 or hi >= self.num_classes:
            raise ValueError(f"{name}.labels: got values in [{lo}, {hi}]; allowed: integers in "
                             f"[0, {self.num_classes - 1}] (num_classes={self.num_classes})")
        for mod, x in self.features.items():
            if x.dim() not in (2, 3) or x.shape[0] != n:
                raise ValueError(f"{name}.features[{mod!r}]: got shape {tuple(x.shape)}; allowed: "
                                 f"[{n}, D] or [{n}, T, D] ({n} labels)")
            if x.shape[-1] == 0 or x.dim() == 3 and x.shape[1] == 0:
                raise ValueError(f"{name}.features[{mod!r}]: got shape {tuple(x.shape)}; allowed: "
                                 "at least 1 feature (and 1 frame) per modality")
            if x.is_complex():
                raise ValueError(f"{name}.features[{mod!r}]: got dtype {x.dtype}; allowed: real "
                                 "numbers (float32; other real dtypes are converted by fit)")
            check_finite(x, f"{name}.features[{mod!r}]")
            ln = self.lengths.get(mod)
            if x.dim() == 3 and ln is not None:
                if ln.shape != (n,) or int(ln.min()) < 1 or int(ln.max()) > x.shape[1]:
                    raise ValueError(f"{name}.lengths[{mod!r}]: allowed: [{n}] integers in "
                                     f"[1, {x.shape[1]}]")
        if self.mask is not None and not bool(self.mask.any(1).all()):
            row = int((~self.mask.any(1)).nonzero()[0])
            raise ValueError(f"{name}.mask: sample {row} (id {self._id(row)!r}) has no modality "
                             "present; allowed: at least one present modality per sample (drop "
                             "such samples)")

    def _id(self, row: int) -> str:
        return str(row) if self.ids is None else self.ids[row]


@dataclass
class Splits:
    """Train, validation and test data with the same modalities, dims and classes."""

    train: MultimodalData
    val: MultimodalData
    test: MultimodalData

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.train.modalities

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    def validate(self) -> None:
        """Check each split, that the splits agree on modalities and feature dims, that every
        modality has a present training row, and that val/test hold only classes the training
        split has."""
        for part in ("train", "val", "test"):
            data = getattr(self, part)
            data.validate(part)
            if data.modalities != self.train.modalities:
                raise ValueError(f"{part}.features: got modalities {list(data.modalities)}; "
                                 f"allowed: the training modalities {list(self.train.modalities)}")
            for mod, d, dt in zip(data.modalities, data.dims, self.train.dims):
                if d != dt:
                    raise ValueError(f"{part}.features[{mod!r}]: got feature dim {d}; allowed: "
                                     f"{dt}, the training split's dim")
        if self.train.mask is not None:
            for m, mod in enumerate(self.modalities):
                if not bool(self.train.mask[:, m].any()):
                    raise ValueError(f"train.mask: modality {mod!r} is present in no training "
                                     "sample; allowed: at least one present row per modality "
                                     "(drop the modality, or split differently)")
        seen = torch.bincount(self.train.labels.cpu().long(), minlength=self.num_classes) > 0
        for part in ("val", "test"):
            counts = torch.bincount(getattr(self, part).labels.cpu().long(),
                                    minlength=self.num_classes)
            unseen = [c for c in range(self.num_classes) if counts[c] > 0 and not seen[c]]
            if unseen:
                c = unseen[0]
                name = c if self.train.classes is None else f"{c} ({self.train.classes[c]!r})"
                raise ValueError(f"{part}.labels: class {name} has {int(counts[c])} sample(s) in "
                                 f"{part} but none in train (classes without a training sample: "
                                 f"{unseen[:8]}); allowed: labels of classes the training split "
                                 "has (re-split, e.g. stratified, or drop the class)")

    def coerced(self) -> tuple[Splits, list[str]]:
        """:meth:`MultimodalData.coerced` of every split, and one note per converted tensor."""
        parts: dict[str, MultimodalData] = {}
        notes: dict[tuple[str, str], list[str]] = {}
        for part in ("train", "val", "test"):
            parts[part], found = getattr(self, part).coerced()
            for what, dtype in found.items():
                notes.setdefault((what, dtype), []).append(part)
        if all(parts[p] is getattr(self, p) for p in parts):
            return self, []
        return Splits(**parts), [
            f"{what} of {'/'.join(where)}: {dtype} converted to "
            f"{'int64' if what == 'labels' else 'float32'}" for (what, dtype), where in notes.items()]

    def describe(self) -> dict[str, Any]:
        """What the data is, for config.json / summary.json / checkpoints: its source (if a
        loader recorded one: name, path, sha256, ...), modalities and dims, classes, samples per
        split, and the observed missing rate of each modality per split (0 without a mask)."""
        out: dict[str, Any] = {"source": dict(self.train.source) or None,
                               "modalities": list(self.modalities), "dims": list(self.train.dims),
                               "sequences": any(x.dim() == 3 for x in self.train.features.values()),
                               "num_classes": self.num_classes,
                               "classes": None if self.train.classes is None else list(self.train.classes),
                               "samples": {}, "observed_mask": {}, "observed_missing": {}}
        for part in ("train", "val", "test"):
            data = getattr(self, part)
            out["samples"][part] = len(data)
            out["observed_mask"][part] = data.mask is not None
            miss = (~data.observed).float().mean(0).cpu().tolist() if len(data) else [0.0] * len(self.modalities)
            out["observed_missing"][part] = {m: round(r, 6) for m, r in zip(self.modalities, miss)}
        return out

    def to(self, device: torch.device | str) -> Splits:
        return Splits(self.train.to(device), self.val.to(device), self.test.to(device))


def stratified_split(data: MultimodalData, fractions: Sequence[float] = (0.7, 0.15, 0.15),
                     seed: int = 0, min_per_class: int = 0) -> Splits:
    """Seeded stratified split: each class is shuffled and cut at the given fractions.

    Args:
        min_per_class: refuse (ValueError naming the class) a class with fewer samples than
            this; :func:`redcore_lite.custom.split_data` asks for one sample per split.
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions: got {list(fractions)}; allowed: three positive numbers "
                         "(train, val, test) summing to 1")
    if min_per_class > 0:
        counts = torch.bincount(data.labels.cpu(), minlength=data.num_classes).tolist()
        for c, k in enumerate(counts):
            if 0 < k < min_per_class:
                name = c if data.classes is None else f"{c} ({data.classes[c]!r})"
                raise ValueError(f"labels: class {name} has {k} sample(s); allowed: at least "
                                 f"{min_per_class} per class for a stratified train/val/test "
                                 f"split with fractions {list(fractions)} (or give a split column)")
    gen = torch.Generator().manual_seed(seed)
    parts: list[list[torch.Tensor]] = [[], [], []]
    for c in range(data.num_classes):
        idx = torch.nonzero(data.labels.cpu() == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_tr = round(len(idx) * fractions[0])
        n_va = round(len(idx) * fractions[1])
        for k, sl in enumerate((idx[:n_tr], idx[n_tr:n_tr + n_va], idx[n_tr + n_va:])):
            parts[k].append(sl)
    train, val, test = (data.subset(torch.cat(p).sort().values) for p in parts)
    return Splits(train, val, test)


def _frame_mask(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """``[N, T, 1]`` float mask of valid frames (all ones without lengths)."""
    if lengths is None:
        return torch.ones(*x.shape[:2], 1, dtype=x.dtype, device=x.device)
    return (torch.arange(x.shape[1], device=x.device) < lengths[:, None]).to(x.dtype)[..., None]


def normalise(splits: Splits, eps: float = 1e-6) -> Splits:
    """z-score every feature with the training split's mean and std (valid frames only; with an
    observed mask, present rows only, and absent rows stay zero)."""
    out: dict[str, dict[str, torch.Tensor]] = {part: {} for part in ("train", "val", "test")}
    for m, mod in enumerate(splits.modalities):
        x, ln = splits.train.features[mod], splits.train.lengths.get(mod)
        present = None if splits.train.mask is None else splits.train.mask[:, m]
        if present is not None and not bool(present.any()):
            raise ValueError(f"train.mask: modality {mod!r} is present in no training sample; "
                             "allowed: at least one present row per modality")
        if x.dim() == 3:
            w = _frame_mask(x, ln)
            if present is not None:
                w = w * present.to(x.dtype)[:, None, None]
            mean = (x * w).sum((0, 1)) / w.sum()
            std = (((x - mean) * w).pow(2).sum((0, 1)) / w.sum()).sqrt()
        elif present is not None:
            mean, std = x[present].mean(0), x[present].std(0, unbiased=False)
        else:
            mean, std = x.mean(0), x.std(0, unbiased=False)
        for part in out:
            data = getattr(splits, part)
            y = (data.features[mod] - mean) / (std + eps)
            if y.dim() == 3:  # keep padding at zero
                y = y * _frame_mask(y, data.lengths.get(mod))
            if data.mask is not None:  # and absent rows
                y = torch.where(data.mask[:, m].view(-1, *([1] * (y.dim() - 1))), y, 0.0)
            out[part][mod] = y
    parts = [getattr(splits, p)._like(out[p], getattr(splits, p).labels,
                                      dict(getattr(splits, p).lengths), getattr(splits, p).ids,
                                      getattr(splits, p).mask) for p in out]
    return Splits(*parts)


def _factor_means(factors: Sequence[int] | None, num_mod: int, num_classes: int,
                  latent_dim: int, seed: int) -> torch.Tensor | None:
    """Means ``[M, C, latent_dim]`` of the complementary signal (indexed by ``label & mask``)."""
    if factors is None or len(factors) == 0:
        return None
    limit = 1 << (num_classes - 1).bit_length()  # masks address the bits of labels 0..C-1
    if len(factors) != num_mod or any(isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < limit
                                      for k in factors):
        raise ValueError(f"factors: got {tuple(factors)!r}; allowed: one bit mask per modality "
                         f"({num_mod}), each an integer in [0, {limit - 1}] for {num_classes} classes")
    gen = torch.Generator().manual_seed(seed + 104_729)  # its own stream: the rest is unchanged
    return torch.randn(num_mod, limit, latent_dim, generator=gen) * 1.5


def make_synthetic(num_samples: int = 1200, dims: Sequence[int] = (24, 24, 24), num_classes: int = 4,
                   snr: Sequence[float] | None = None, seq_len: int = 0, latent_dim: int = 8,
                   seed: int = 0, names: Sequence[str] | None = None,
                   factors: Sequence[int] | None = None, factor_snr: float = 1.0) -> MultimodalData:
    """Synthetic data with a planted class signal and a shared latent.

    Each sample has a shared latent ``s = mu_y + u`` (class mean ``mu_y`` plus a class-free
    component ``u``, both seen by every modality, so modalities predict each other). Modality m
    observes ``x_m = W_m s * snr_m + noise`` with a fixed random projection ``W_m``; ``snr_m``
    scales how much of the signal survives the unit-variance noise. With ``seq_len > 0`` each
    sample is a sequence of random length in ``[seq_len // 2, seq_len]`` whose frames are noisy
    copies of ``x_m``, zero-padded.

    Complementary signal (``factors``): modality m also observes ``factor_snr * W_m nu_m[y & k_m]``
    with a bit mask ``k_m`` of the label and random means ``nu_m`` (drawn from their own
    generator, so the rest of the data is unchanged). It tells apart only the classes that differ
    in the masked bits: with 8 classes and masks (3, 6, 5) each modality sees 2 of the 3 label
    bits, so each alone confuses classes in pairs and any two resolve them. Mask 0 = none.

    Args:
        num_samples: N; dims: feature dim per modality (sets M); num_classes: C.
        snr: per modality, scale of the shared latent (default 1 each; 0 = no shared signal).
        seq_len: 0 = vectors ``[N, D]``; > 0 = sequences ``[N, T, D]`` with lengths.
        latent_dim: size of the shared latent; seed: seed of everything.
        names: modality names; factors: one bit mask per modality (None = off);
        factor_snr: scale of the complementary signal.
    Returns:
        :class:`MultimodalData` with modalities named A, V, L (then M4, M5, ...) unless ``names``.
    """
    num_mod = len(dims)
    snr = (1.0,) * num_mod if snr is None else tuple(snr)
    if len(snr) != num_mod:
        raise ValueError(f"snr: got {len(snr)} value(s); allowed: one per modality ({num_mod})")
    factor_means = _factor_means(factors, num_mod, num_classes, latent_dim, seed)
    if names is None:
        names = ("A", "V", "L")[:num_mod] + tuple(f"M{m + 1}" for m in range(3, num_mod))
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(num_samples) % num_classes
    y = y[torch.randperm(num_samples, generator=gen)]
    centres = torch.randn(num_classes, latent_dim, generator=gen) * 1.5
    shared = centres[y] + torch.randn(num_samples, latent_dim, generator=gen)
    feats, lengths = {}, {}
    for m, (name, dim) in enumerate(zip(names, dims)):
        w = torch.randn(latent_dim, dim, generator=gen) / latent_dim ** 0.5
        x = snr[m] * shared @ w + torch.randn(num_samples, dim, generator=gen)
        if factor_means is not None and factors[m]:  # type: ignore[index]
            x = x + factor_snr * factor_means[m][y & factors[m]] @ w  # type: ignore[index]
        if seq_len > 0:
            ln = torch.randint(seq_len // 2 or 1, seq_len + 1, (num_samples,), generator=gen)
            frames = x[:, None, :] + 0.5 * torch.randn(num_samples, seq_len, dim, generator=gen)
            x = frames * (torch.arange(seq_len) < ln[:, None])[..., None]
            lengths[name] = ln
        feats[name] = x.float()
    return MultimodalData(feats, y.long(), num_classes, lengths)


def load_data(config: DataConfig, seed: int = 0) -> Splits:
    """The splits a config names, normalised: ``data.name`` looked up in
    :mod:`redcore_lite.registry` (synthetic, mfeat, avdigits, iemocap, msp, mosei, custom, or a
    dataset registered with ``register_dataset``), loaded with the dataset's own config."""
    from .config import check_section

    check_section(config, "data")
    if config.max_frames < 0:
        raise ValueError(f"data.max_frames: got {config.max_frames}; allowed: an integer >= 0 "
                         "(0 = all frames)")
    return get_dataset(config.name).loader(dataset_config(config), seed)  # synthetic, ..., yours
