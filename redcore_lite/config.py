"""Experiment configuration: frozen dataclasses, one field per knob, and named presets.

Every number of the method has a field here whose ``paper`` preset value is the authors' release
value. Change a field with :func:`dataclasses.replace` (or :func:`override`), never in place.

The ``paper`` values, checked against the release (``opts/get_opts.py`` option defaults, the model's
options, ``train_miss.py`` overrides and ``scripts/CAP_mmin.sh``; tested in ``tests/test_init.py``):

- optimiser: Adam, lr 2e-4, beta1 0.9 (``--beta1`` default; the scripts do not set it; before
  2026-12-02 this read "MMIN default 0.5", which was wrong), beta2 0.999, no weight decay (the
  scripts pass ``--weight_decay=1e-5`` but the model never gives it to Adam);
- schedule: ``--niter 30 --niter_decay 30`` with the linear rule of ``lr_policy='linear'``
  (:func:`redcore_lite.trainer.lr_factor`); batch 128; gradients clipped to norm 1 per network;
- initialisation: ``init_net`` with ``init_type='kaiming'`` on every network (``model.init``);
- dropout: 0.5 in the classifiers (``--dropout_rate``), 0.2 on attention weights and 0.1 in the
  feed-forward block of the Transformer (hard-coded there);
- widths: d = 128 (``--embd_size_*``), generators ``--AE_layers=256,128,64 --n_blocks=5``,
  classifiers ``--cls_layers=128,128``, 3 layers and 8 heads (hard-coded);
- loss and upper level: ``mse_weight`` 0.15, ``beta`` (EMA) 0.7, ``eta`` 0.1, growth 1.5 every 500
  iterations, beta update every 3 iterations (``ii``), floor 0.1, KL 0.0008 * -sum(...) = 0.0016 KL.

What the release does that we do not (masks moving between samples, z sampled at evaluation,
padding in attention and pooling) is :data:`RELEASE_PROTOCOL`, off by default.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import reprlib
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DataConfig", "MaskConfig", "ModelConfig", "LossConfig", "AdvantageConfig", "TrainConfig",
    "Config", "preset", "seed_base", "set_threads", "PRESETS", "RELEASE_PROTOCOL", "SYNTHETIC_PRESETS", "override",
    "override_from_strings", "config_to_dict",
    "config_from_dict", "check_config", "check_section",
]


@dataclass(frozen=True)
class DataConfig:
    """Which data a run uses when the caller does not pass it (synthetic by default)."""

    # "synthetic" (planted signal), "mfeat", "avdigits", "iemocap", "msp" or "mosei"
    name: str = "synthetic"
    num_samples: int = 1200  # synthetic: samples in total, before the split
    num_classes: int = 4  # synthetic: number of classes
    dims: tuple[int, ...] = (24, 24, 24)  # synthetic: feature dim per modality (also sets M)
    snr: tuple[float, ...] = (1.0, 1.0, 1.0)  # synthetic: class-signal-to-noise per modality
    seq_len: int = 0  # synthetic: 0 = vectors [N, D]; > 0 = sequences [N, T, D] of varying length
    # synthetic: complementary signal, one bit mask of the label per modality: modality m also sees
    # a signal of (label & mask_m) only, e.g. (3, 6, 5) with 8 classes (each sees 2 of 3 bits;
    # any two see all); 0 = nothing, () = off (make_synthetic)
    factors: tuple[int, ...] = ()
    factor_snr: float = 1.0  # synthetic: scale of that complementary signal (like snr)
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train / val / test fractions
    normalise: bool = True  # z-score every feature with training-split statistics
    views: tuple[str, ...] = ("fou", "kar", "pix")  # mfeat: views used as modalities
    root: str = ""  # iemocap/msp: feature root (A/, V/, L/); mosei: path of aligned_50.pkl
    target_root: str = ""  # iemocap/msp: folder of fold folders ("" = {root}/target)
    fold: int = 1  # iemocap: 1..10, msp: 1..12 (the release's cvNo); avdigits: held-out speaker 1..6
    max_frames: int = 0  # iemocap/msp/avdigits: keep at most this many frames per sample (0 = all)
    # avdigits: 2+ of "audio", "image", "shape" (() = all three). custom tables: "NAME=col1,col2,..."
    # per modality, in modality order (shell-style globs allowed: "fou=fou_*"); custom .npz / HDF5:
    # modality names to keep (() = every modality)
    modalities: tuple[str, ...] = ()
    holdout: str = "speakers"  # avdigits: "speakers" (test speaker = fold) or "takes" (official 0-4)
    # avdigits: False = vectors for the mlp backbone (audio as mean+std of its log-mel frames);
    # True = sequences with lengths for the transformer (audio [N, T, 32], image as 8 pixel rows)
    sequences: bool = False
    # custom (your own data, redcore_lite.custom): the file (.npz, .csv, .parquet) or HDF5 folder
    path: str = ""
    label: str = "label"  # custom tables and HDF5 labels.csv: the label column (.npz: key "labels")
    split_column: str = ""  # custom: a column of train/val/test per row ("" = stratified, split)
    id_column: str = ""  # custom tables: a column of sample ids ("" = row numbers)
    # a dataset registered with redcore_lite.registry.register_dataset: its own options, as
    # (name, value) pairs (a mapping is accepted: {"noise": 0.3}); read into the dataset's config
    # dataclass. Left out of saved configs while empty (saved configs stay as they were)
    options: tuple[tuple[str, Any], ...] = field(default=(), metadata={"omit_if_default": True})

    def __post_init__(self) -> None:
        if isinstance(self.options, dict):  # a mapping (JSON/YAML, override) -> sorted pairs
            object.__setattr__(self, "options", tuple(sorted((str(k), _tuples(v))
                                                             for k, v in self.options.items())))


@dataclass(frozen=True)
class MaskConfig:
    """How training samples lose modalities."""

    rates: tuple[float, ...] = (0.2, 0.5, 0.8)  # missing rate r_m per modality, each in [0, 1]
    min_available: int = 0  # 0 = release (a sample may lose everything); 1 = repair such rows
    redraw_each_epoch: bool = False  # True = release protocol (masks move between samples)
    # whether a simulated mask is drawn: "auto" = only when the training split has no observed
    # holes (data without an observed mask: today's behaviour), "on" = also on top of an observed
    # mask (among the rows that have the modality), "off" = never (train on the data as given)
    simulate: str = "auto"
    # how the simulated mask is drawn (redcore_lite.masking.simulate_mask): "mcar" = exactly
    # floor(N r_m) rows per modality completely at random; "class" = per-class rates
    # (class_rates, MNAR by class); "score" = the floor(N r_m) rows with the largest (or smallest)
    # score lose modality m (MAR / MNAR); "menu" = a fixed menu of patterns with frequencies
    mechanism: str = "mcar"
    class_rates: tuple[tuple[float, ...], ...] = ()  # "class": rate per class (rows) per modality
    # "score": the modality whose features give the score ("" = each modality its own: MNAR;
    # another, always-present modality: MAR)
    score_modality: str = ""
    score_feature: int = -1  # "score": the feature (column) index used as score; -1 = the mean
    score_largest: bool = True  # "score": True = the largest scores go missing; False = smallest
    patterns: tuple[str, ...] = ()  # "menu": availability patterns by name, e.g. ("AVL", "A", "VL")
    pattern_freqs: tuple[float, ...] = ()  # "menu": the fraction of rows given each pattern (sum 1)


@dataclass(frozen=True)
class ModelConfig:
    """Encoders, VIB heads, generators and classifiers."""

    backbone: str = "mlp"  # "mlp" for vector features, "transformer" for frame sequences
    latent_dim: int = 128  # d: latent size per modality
    mlp_hidden: int = 128  # MLP backbone: hidden width
    num_layers: int = 3  # Transformer: layers (release 3)
    num_heads: int = 8  # Transformer: attention heads (release 8)
    attn_dropout: float = 0.2  # Transformer: dropout on attention weights (release 0.2)
    ff_dropout: float = 0.1  # Transformer: dropout inside the feed-forward block (release 0.1)
    mask_padding: bool = True  # mask padded frames in attention and pooling (release: False)
    gen_layers: tuple[int, ...] = (256, 128, 64)  # generator block widths (release AE_layers)
    gen_blocks: int = 5  # residual blocks per generator (release n_blocks)
    head_layers: tuple[int, ...] = (128, 128)  # classifier hidden widths (release cls_layers)
    head_dropout: float = 0.5  # classifier dropout
    vib: bool = True  # False = ablation "no VIB": z = mu and no KL term
    sample_at_eval: bool = False  # True = release: sample z at evaluation (random predictions)
    imputation: str = "generator"  # "generator" (RedCore) or "zero" (ablation: late fusion)
    unimodal_heads: bool = True  # False = ablation: no per-modality classifiers
    # CPU speed paths (opt-in; the smoke and teach presets turn them on): dropout masks from
    # rand_like (inside the Transformer from 16-bit slices of random integers, p rounded to a
    # multiple of 1/65536), attention by the math path when attention dropout is on, and the
    # Transformer's per-frame layers on the valid frames only. The same values in evaluation; in
    # training the same Bernoulli dropout from another random stream. Off: torch's dropout and
    # attention kernels on the padded batch, as on a GPU (where this switch changes nothing)
    cpu_speedups: bool = False
    # "release": the authors' init_net (kaiming-normal fan-in weights, zero biases on every linear
    # layer; the attention's input projection N(0, 1/d), bias 0); "torch": PyTorch's defaults
    # (uniform +-1/sqrt(fan_in)). With "torch" the paper recipe was seen to collapse its latents
    # on IEMOCAP-format data and stay at chance (benchmarks/RESULTS.md, release parity)
    init: str = "release"
    # per modality, in modality order: a backbone name each ("" = model.backbone), e.g.
    # ("mlp", "my_cnn", ""); names registered with redcore_lite.registry.register_encoder are
    # allowed here and in model.backbone. Left out of saved configs while empty
    backbones: tuple[str, ...] = field(default=(), metadata={"omit_if_default": True})


@dataclass(frozen=True)
class LossConfig:
    """Weights of the lower-level (network) loss."""

    w_fused: float = 1.0  # weight of the fused cross-entropy
    w_unimodal: float = 1.0  # weight of each per-modality cross-entropy
    kl_weight: float = 0.0016  # lambda in standard-KL terms (release writes 0.0008 * -sum(...))
    w_rec: float = 0.15  # weight of the beta-weighted reconstruction loss (0 = no cross-modal sup.)


@dataclass(frozen=True)
class AdvantageConfig:
    """Relative advantage and the upper-level beta update."""

    mode: str = "ra"  # "ra" (RedCore), "fixed" (beta = 1), "uniform" (1/sqrt(M)), "inverse" (1/(1-r))
    rho: float = 0.7  # EMA weight on the newest reconstruction loss
    eta: float = 0.1  # initial step size of the beta update
    growth: float = 1.5  # eta is multiplied by this every growth_every iterations (t = 0 included)
    growth_every: int = 500  # iterations between eta growths
    interval: int = 3  # beta is updated when t % interval == 0
    floor: float = 0.1  # lower bound on beta before the L2 normalisation


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, selection, seeds and devices."""

    epochs_constant: int = 30  # epochs at the initial learning rate
    epochs_decay: int = 30  # epochs of linear decay towards 0 (release lambda rule)
    batch_size: int = 128  # training batch size
    eval_batch_size: int = 1024  # samples per evaluation chunk (each under every pattern)
    lr: float = 2e-4  # Adam learning rate
    adam_beta1: float = 0.9  # Adam beta1 (the release's option default; its scripts keep it)
    clip_norm: float = 1.0  # gradient clipping, per sub-network (0 = off)
    complete_only: bool = False  # ablation: train only on samples with every modality present
    seed: int = 0  # one seed for split, masks, initialisation, batches and dropout
    device: str = "auto"  # "auto", "cpu" or "cuda" (or "cuda:N")
    bf16: bool = False  # bf16 autocast in training (opt-in; fast on GPUs and CPUs with native bf16)
    # torch.compile the model (opt-in). Runs the static-shape step, as cuda_graph does
    # (redcore_lite.step.StaticStep: every row encoded with a missing input zeroed, so each missing
    # row gets its own dropout draw: another random path than the default eager step). Not
    # bit-reproducible: compiled kernels round differently from run to run (about 1e-6 a step on
    # CPU), and use their own random streams
    compile: bool = False
    # replay each training step as one CUDA graph (opt-in, CUDA only, one process; every encoder
    # runs on the whole batch so that shapes are static): removes the per-kernel launch cost
    # that bounds a GPU step (redcore_lite.step.StaticStep)
    cuda_graph: bool = False
    tf32: bool = False  # allow TF32 matmuls on Ampere+ GPUs (CUDA only; ignored on CPU)
    # with observed holes in val/test (scored by each sample's observed pattern): also score the
    # complete rows under every availability pattern (Result.val_complete / test_complete)
    eval_complete: bool = False
    progress: bool = False  # tqdm.auto progress bar over epochs


@dataclass(frozen=True)
class Config:
    """One experiment: data, masks, model, loss, relative advantage and training."""

    data: DataConfig = field(default_factory=DataConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    advantage: AdvantageConfig = field(default_factory=AdvantageConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def epochs(self) -> int:
        """Total number of epochs (constant + decay)."""
        return self.train.epochs_constant + self.train.epochs_decay


def _smoke() -> Config:
    return Config(
        data=DataConfig(num_samples=240, dims=(12, 10, 8)),
        model=ModelConfig(latent_dim=16, mlp_hidden=32, gen_layers=(32, 16), gen_blocks=2,
                          head_layers=(32,), head_dropout=0.1, init="torch", cpu_speedups=True),
        advantage=AdvantageConfig(growth_every=20, interval=1),
        train=TrainConfig(epochs_constant=4, epochs_decay=2, batch_size=32, lr=1e-2, adam_beta1=0.5),
    )


def _teach() -> Config:
    return Config(
        data=DataConfig(num_samples=1200),
        # one generator block and linear heads: 30% faster than 2 blocks and (64,)-wide heads with
        # dropout 0.2 (the teach preset before 2026-11-27), and as accurate or more (benchmarks/RESULTS.md)
        # init "torch" and Adam beta1 0.5: the values the teach results in data/results/ were
        # computed with (before the release's init and beta1 were checked, 2026-12-02)
        model=ModelConfig(latent_dim=32, mlp_hidden=64, gen_layers=(64, 32), gen_blocks=1,
                          head_layers=(), head_dropout=0.0, init="torch", cpu_speedups=True),
        advantage=AdvantageConfig(growth_every=100),
        train=TrainConfig(epochs_constant=15, epochs_decay=15, batch_size=128, lr=3e-3,
                          adam_beta1=0.5),
    )


def _paper() -> Config:
    return Config(
        # release: only A is normalised (by the loader, with the fold's ComParE mean/std)
        data=DataConfig(dims=(130, 342, 1024), seq_len=50, num_classes=4, normalise=False),
        model=ModelConfig(backbone="transformer", mask_padding=True),
        train=TrainConfig(),
    )


PRESETS = {"smoke": _smoke, "teach": _teach, "paper": _paper}

# The release's evaluation and masking protocol, where it differs from redcore_lite's defaults
# (each is a defect there, kept as a switch): training masks that move between samples every
# epoch, z sampled at evaluation, and padded frames inside attention and pooling.
# ``override(config, **RELEASE_PROTOCOL)``; on the command line ``--release-protocol``.
RELEASE_PROTOCOL: dict[str, dict[str, Any]] = {
    "mask": {"redraw_each_epoch": True},
    "model": {"sample_at_eval": True, "mask_padding": False},
}

# Named synthetic data sets: ``override(preset("teach"), data=SYNTHETIC_PRESETS["complementary"])``.
# Per-modality probes and per-pattern test F1 of teach fits: data/README.md.
SYNTHETIC_PRESETS: dict[str, dict[str, Any]] = {
    # the default: every modality sees the same class signal; each alone is nearly as good as all
    "redundant": {},
    # A strong, V weaker, L near chance; all together are no better than A alone
    "imbalanced": {"snr": (1.0, 0.3, 0.1)},
    # 8 classes = 3 label bits; A sees bits 0-1, V bits 1-2, L bits 0 and 2 (plus a faint shared
    # signal): each alone confuses classes in pairs, any two resolve them
    "complementary": {"num_classes": 8, "factors": (3, 6, 5), "factor_snr": 0.7,
                      "snr": (0.1, 0.1, 0.1)},
}


def preset(name: str = "auto") -> Config:
    """A named preset: ``smoke`` (CI, seconds), ``teach`` (laptop), ``paper`` (release recipe).

    ``auto`` gives ``smoke`` when the environment variable ``CI`` is set, else ``teach``.
    """
    if name == "auto":
        name = "smoke" if os.environ.get("CI", "").strip().lower() not in ("", "0", "false") else "teach"
    if name not in PRESETS:
        raise ValueError(f"preset: got {name!r}; allowed: 'auto', " + ", ".join(map(repr, PRESETS)))
    return PRESETS[name]()


def _env_int(value: int | str, name: str, env: str, default: int, low: int) -> int:
    """``value`` as an int >= ``low``; ``"auto"`` reads the environment variable ``env`` (else ``default``)."""
    source = name
    if value == "auto":
        raw = os.environ.get(env, "").strip()
        if not raw:
            return default
        value, source = raw, f"${env}"
    if isinstance(value, bool):
        raise ValueError(f"{source}: got {value!r}; allowed: an integer >= {low} or 'auto'")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: got {value!r}; allowed: an integer >= {low} or 'auto'") from None
    if number != value and not isinstance(value, str) or number < low:
        raise ValueError(f"{source}: got {value!r}; allowed: an integer >= {low} or 'auto'")
    return number


def seed_base(value: int | str = "auto") -> int:
    """The offset a notebook adds to every seed it uses (its ``SEED`` parameter).

    ``"auto"`` reads the environment variable ``REDCORE_SEED_BASE`` (default 0), so that a whole
    workbook or test run can be repeated on other seeds (``REDCORE_SEED_BASE=1000 bash
    scripts/workbook.sh``): every check a notebook makes must hold for any seed base.

    Raises:
        ValueError: for anything but a non-negative integer or ``"auto"``.
    """
    return _env_int(value, "SEED", "REDCORE_SEED_BASE", 0, 0)


def set_threads(value: int | str = "auto") -> int:
    """Set torch's intra-op thread count and return it (notebooks call this, never a literal).

    ``"auto"`` reads the environment variable ``REDCORE_THREADS`` (default 1: one thread keeps a
    run bit-identical from one run to the next *on this machine*; another thread count, like
    another CPU, takes another floating-point path and so gives other numbers within the seed
    spread).

    Raises:
        ValueError: for anything but a positive integer or ``"auto"``.
    """
    import torch

    n = _env_int(value, "threads", "REDCORE_THREADS", 1, 1)
    torch.set_num_threads(n)
    return n


def override(config: Config, **sections: dict[str, Any]) -> Config:
    """Return ``config`` with fields replaced, e.g. ``override(c, mask={"rates": (0.5,) * 3})``."""
    changes = {}
    for section, fields in sections.items():
        if not hasattr(config, section):
            raise ValueError(f"override: unknown section {section!r}; allowed: "
                             + ", ".join(f.name for f in dataclasses.fields(config)))
        current = getattr(config, section)
        names = {f.name for f in dataclasses.fields(current)}
        unknown = set(fields) - names
        if unknown:
            raise ValueError(f"override: unknown field(s) {sorted(unknown)} in {section!r}; "
                             f"allowed: {sorted(names)}")
        changes[section] = dataclasses.replace(current, **fields)
    return dataclasses.replace(config, **changes)


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain nested dict (tuples become lists) for JSON and checkpoints."""
    def plain(v: Any) -> Any:
        return [plain(x) for x in v] if isinstance(v, tuple) else v
    def kept(section: Any) -> dict[str, Any]:  # fields added later stay out while at their default
        return {g.name: plain(getattr(section, g.name)) for g in dataclasses.fields(section)
                if not (g.metadata.get("omit_if_default") and getattr(section, g.name) == g.default)}
    return {f.name: kept(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _tuples(v: Any) -> Any:
    """Lists (also nested ones) back to tuples."""
    return tuple(_tuples(x) for x in v) if isinstance(v, (list, tuple)) else v


def config_from_dict(d: dict[str, Any]) -> Config:
    """Inverse of :func:`config_to_dict`."""
    sections = {}
    for f in dataclasses.fields(Config):
        cls = type(getattr(Config(), f.name))
        types = {g.name: g for g in dataclasses.fields(cls)}
        values = {k: _tuples(v) for k, v in d.get(f.name, {}).items() if k in types}
        if f.name == "model" and "model" in d and "init" not in d["model"]:
            values["init"] = "torch"  # saved before model.init existed: PyTorch's initialisation
        if f.name == "model" and "model" in d and "cpu_speedups" not in d["model"]:
            values["cpu_speedups"] = True  # saved before the switch existed: the speed paths ran
        sections[f.name] = cls(**values)
    return Config(**sections)


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _parse_value(text: str, kind: Any, where: str) -> Any:
    """``text`` as a value of the field type ``kind`` (bool, int, float, str or a tuple of them)."""
    origin = typing.get_origin(kind)
    if origin is tuple:
        args = [a for a in typing.get_args(kind) if a is not Ellipsis]
        text = text.strip()
        try:
            items = (json.loads(text) if text.startswith("[")
                     else [v for v in text.split(",") if v.strip()])
        except json.JSONDecodeError:
            raise ValueError(f"{where}: got {short(text)}; allowed: a JSON list or comma-separated "
                             "values") from None
        if not isinstance(items, list):
            raise ValueError(f"{where}: got {short(text)}; allowed: a JSON list or comma-separated values")
        elem = args[0] if args else str
        if typing.get_origin(elem) is tuple:  # nested tuples (e.g. frame ranges) come as JSON
            if not all(isinstance(v, list) for v in items):
                raise ValueError(f"{where}: got {short(text)}; allowed: a JSON list of lists, "
                                 "e.g. [[0.1, 0.2], [0.3, 0.4]]")
            return tuple(tuple(v) for v in items)
        return tuple(_parse_value(str(v) if not isinstance(v, str) else v, elem, where) for v in items)
    low = text.strip().lower()
    if kind is bool:
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise ValueError(f"{where}: got {short(text)}; allowed: true or false")
    if kind in (int, float):
        try:
            value = kind(text.strip()) if kind is float else int(text.strip())
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise ValueError(f"{where}: got {short(text)}; allowed: {what}") from None
        if kind is float and not math.isfinite(value):
            raise ValueError(f"{where}: got {short(text)}; allowed: a finite number")
        return value
    return text


def override_from_strings(config: Config, assignments: Sequence[str]) -> Config:
    """Return ``config`` with ``SECTION.FIELD=VALUE`` assignments applied (the CLI's ``--set``).

    Values are read as the field's type: ``true``/``false`` for flags, numbers, strings, and a JSON
    list or comma-separated values for tuples (``mask.rates=0.2,0.5,0.8``).
    """
    sections: dict[str, dict[str, Any]] = {}
    for text in assignments:
        key, sep, raw = text.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise ValueError(f"--set: got {short(text)}; allowed: SECTION.FIELD=VALUE, e.g. "
                             "model.init=torch or train.lr=1e-3")
        if not hasattr(config, section):
            raise ValueError(f"--set {text[:100]}: unknown section {section!r}; allowed: "
                             + ", ".join(f.name for f in dataclasses.fields(config)))
        cls = type(getattr(config, section))
        hints = typing.get_type_hints(cls)
        if name not in hints:
            raise ValueError(f"--set {text[:100]}: unknown field {name!r} of {section!r}; allowed: "
                             + ", ".join(sorted(hints)))
        sections.setdefault(section, {})[name] = _parse_value(raw, hints[name], f"--set {key.strip()}")
    return override(config, **sections)


def _describe(kind: Any, plural: bool = False) -> str:
    """What a field of type ``kind`` allows, in words."""
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        count = "" if len(args) == 2 and args[1] is Ellipsis else f"{len(args)} "
        return f"{'sequences' if plural else 'a sequence'} of {count}{_describe(args[0], True)}"
    one = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
    many = {bool: "true/false values", int: "integers", float: "finite numbers", str: "strings"}
    return (many if plural else one).get(kind, str(kind))


def _valid(value: Any, kind: Any) -> bool:
    """Whether ``value`` has the field type ``kind`` (numbers finite; lists count as tuples)."""
    import numbers

    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_valid(v, args[0]) for v in value)
        return len(value) == len(args) and all(_valid(v, a) for v, a in zip(value, args))
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:
        return (isinstance(value, numbers.Real) and not isinstance(value, bool)
                and math.isfinite(value))
    if kind is str:
        return isinstance(value, str)
    return True


_REPR = reprlib.Repr()  # values in error messages: bounded however large or deep they are
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxtuple = 80, 80, 8, 8
_REPR.maxdict, _REPR.maxlevel = 8, 3


def short(value: Any) -> str:
    """``repr(value)`` cut to a sane length (nested and long values elided with ``...``), for
    error messages: a huge or alias-expanded value never builds a huge message."""
    text = _REPR.repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def check_section(section: Any, name: str) -> None:
    """Every field of one config section (a dataclass instance) has its declared type: ints are
    integers (not bools), floats finite numbers, strings strings, tuples sequences of those.

    Raises:
        ValueError: ``"{name}.{field}: got VALUE (TYPE); allowed: ..."`` for the first bad field.
    """
    hints = typing.get_type_hints(type(section))
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if not _valid(value, hints[f.name]):
            raise ValueError(f"{name}.{f.name}: got {short(value)} ({type(value).__name__}); allowed: "
                             f"{_describe(hints[f.name])}")


def check_config(config: Config) -> None:
    """:func:`check_section` for every section of ``config`` (``fit`` and ``run_sweep`` call it
    first, so that a string seed or an infinite learning rate fails before anything runs)."""
    if not isinstance(config, Config):
        raise ValueError(f"config: got a {type(config).__name__}; allowed: a redcore_lite.Config "
                         "(rc.preset(...), rc.override(...))")
    for f in dataclasses.fields(config):
        check_section(getattr(config, f.name), f.name)


CONFIG_FILE_ALLOWED = ("a JSON or YAML file of config sections ({'train': {'lr': 0.001}, ...}; a "
                       "config.json written by train, or a sweep manifest)")


MAX_CONFIG_BYTES = 1 << 20  # a config file is a few kB; a whole config.json about 3 kB
MAX_CONFIG_VALUES = 10_000  # values in a config file once YAML aliases are expanded
MAX_CONFIG_DEPTH = 8  # nesting: sections, fields, lists of lists (mask.class_rates) and a margin


def _check_size(data: Any, arg: str, path: Any, allowed: str) -> None:
    """Refuse a config whose values, with YAML aliases expanded (``&a [...]`` used as ``*a``
    many times over: the "billion laughs"), number more than :data:`MAX_CONFIG_VALUES` or nest
    deeper than :data:`MAX_CONFIG_DEPTH` (a recursive alias), before anything copies or prints
    them. The walk stops at the limit, so it is as cheap as the file is small."""
    count = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_CONFIG_VALUES or depth > MAX_CONFIG_DEPTH:
            what = (f"more than {MAX_CONFIG_VALUES} values" if count > MAX_CONFIG_VALUES else
                    f"values nested more than {MAX_CONFIG_DEPTH} levels deep")
            raise ValueError(f"{arg}: {str(path)!r} holds {what} (YAML aliases expanded); "
                             f"allowed: {allowed}, of at most {MAX_CONFIG_VALUES} values")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
            stack.extend((k, depth + 1) for k in value)
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)


def read_config_file(path: str | os.PathLike, arg: str = "--config",
                     allowed: str = CONFIG_FILE_ALLOWED) -> dict[str, dict[str, Any]]:
    """The config sections in a JSON or YAML file (``.yaml``/``.yml``; YAML needs PyYAML).

    A file with a top-level ``config`` key (a sweep manifest, a run's summary) gives that key.
    Raises a ValueError naming ``arg``, the file and what is wrong: unreadable, not JSON/YAML, not
    a mapping of sections, an unknown section or field.
    """
    from ._files import read_json, readable_file

    p = readable_file(path, arg, allowed)
    size = p.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ValueError(f"{arg}: {str(p)!r} is {size} bytes; allowed: {allowed}, at most "
                         f"{MAX_CONFIG_BYTES} bytes")
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{arg}: {str(p)!r} is YAML, and PyYAML is not installed; allowed: "
                             "pip install 'redcore_lite[yaml]', or a JSON file") from None
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{arg}: {str(p)!r} is not UTF-8 text (byte {err.start}); "
                             f"allowed: {allowed}") from None
        try:
            data = yaml.safe_load(text)  # aliases are shared, not copied: small in memory
        except yaml.YAMLError as err:
            reason = " ".join(str(err).split())
            raise ValueError(f"{arg}: {str(p)!r} is not valid YAML ({reason[:200]}); "
                             f"allowed: {allowed}") from None
        except RecursionError:
            raise ValueError(f"{arg}: {str(p)!r} is nested too deeply; allowed: {allowed}") from None
        kind = "YAML"
    else:
        try:
            data, kind = read_json(p, arg, allowed), "JSON"
        except RecursionError:
            raise ValueError(f"{arg}: {str(p)!r} is nested too deeply; allowed: {allowed}") from None
    _check_size(data, arg, p, allowed)
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        data = data["config"]
    if not isinstance(data, dict):
        what = "nothing" if data is None else f"a {kind} {'list' if isinstance(data, list) else type(data).__name__}"
        raise ValueError(f"{arg}: {str(p)!r} holds {what}, not a config; allowed: {allowed}")
    sections = {f.name: type(getattr(Config(), f.name)) for f in dataclasses.fields(Config)}
    for name, fields in data.items():
        if name not in sections:
            raise ValueError(f"{arg}: {str(p)!r}: unknown section {name!r}; allowed: "
                             + ", ".join(sections))
        if not isinstance(fields, dict):
            raise ValueError(f"{arg}: {str(p)!r}: section {name!r} is a {type(fields).__name__}, "
                             "not a mapping of fields; allowed: {field: value}")
        known = {g.name for g in dataclasses.fields(sections[name])}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"{arg}: {str(p)!r}: unknown field(s) {unknown} of {name!r}; "
                             f"allowed: {sorted(known)}")
    return data


def config_from_file(path: str | os.PathLike, base: Config, arg: str = "--config",
                     allowed: str = CONFIG_FILE_ALLOWED) -> Config:
    """``base`` with the sections of a JSON or YAML file (:func:`read_config_file`) applied.

    A file with every section (a config.json written by train, a sweep manifest) is read as a whole
    (:func:`config_from_dict`: exactly the saved run's config); a partial file, e.g.
    ``{"train": {"lr": 0.001}, "loss": {"kl_weight": 0.01}}``, changes only the fields it names.
    """
    data = read_config_file(path, arg, allowed)
    try:
        if {f.name for f in dataclasses.fields(Config)} <= set(data):
            config = config_from_dict(data)
        else:
            config = override(base, **{name: {k: _tuples(v) for k, v in fields.items()}
                                       for name, fields in data.items()})
        for name in data:  # the sections the file sets have their fields' types
            check_section(getattr(config, name), name)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{arg}: {str(path)!r}: {' '.join(str(err).split())[:300]}") from None
    return config
