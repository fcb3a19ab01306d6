"""Experiment configuration: frozen dataclasses, one field per knob, and named presets.

Every number of the method has a field here whose ``paper`` preset value is the authors' release
value. Change a field with :func:`dataclasses.replace` (or :func:`override`), never in place.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DataConfig", "MaskConfig", "ModelConfig", "LossConfig", "AdvantageConfig", "TrainConfig",
    "Config", "preset", "PRESETS", "SYNTHETIC_PRESETS", "override", "config_to_dict",
    "config_from_dict",
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
    modalities: tuple[str, ...] = ()  # avdigits: 2+ of "audio", "image", "shape" (() = all three)
    holdout: str = "speakers"  # avdigits: "speakers" (test speaker = fold) or "takes" (official 0-4)
    # avdigits: False = vectors for the mlp backbone (audio as mean+std of its log-mel frames);
    # True = sequences with lengths for the transformer (audio [N, T, 32], image as 8 pixel rows)
    sequences: bool = False


@dataclass(frozen=True)
class MaskConfig:
    """How training samples lose modalities."""

    rates: tuple[float, ...] = (0.2, 0.5, 0.8)  # missing rate r_m per modality, each in [0, 1]
    min_available: int = 0  # 0 = release (a sample may lose everything); 1 = repair such rows
    redraw_each_epoch: bool = False  # True = release protocol (masks move between samples)


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
    adam_beta1: float = 0.5  # Adam beta1 (MMIN default 0.5)
    clip_norm: float = 1.0  # gradient clipping, per sub-network (0 = off)
    complete_only: bool = False  # ablation: train only on samples with every modality present
    seed: int = 0  # one seed for split, masks, initialisation, batches and dropout
    device: str = "auto"  # "auto", "cpu" or "cuda" (or "cuda:N")
    bf16: bool = False  # bf16 autocast in training (opt-in; fast on GPUs and CPUs with native bf16)
    # torch.compile the model (opt-in; the step with static shapes, as for cuda_graph). Not
    # bit-reproducible: compiled kernels round differently from run to run (about 1e-6 a step on
    # CPU), and use their own random streams
    compile: bool = False
    # replay each training step as one CUDA graph (opt-in, CUDA only, one process; every encoder
    # runs on the whole batch so that shapes are static): removes the per-kernel launch cost
    # that bounds a GPU step (redcore_lite.graphs)
    cuda_graph: bool = False
    tf32: bool = False  # allow TF32 matmuls on Ampere+ GPUs (CUDA only; ignored on CPU)
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
                          head_layers=(32,), head_dropout=0.1),
        advantage=AdvantageConfig(growth_every=20, interval=1),
        train=TrainConfig(epochs_constant=4, epochs_decay=2, batch_size=32, lr=1e-2),
    )


def _teach() -> Config:
    return Config(
        data=DataConfig(num_samples=1200),
        # one generator block and linear heads: 30% faster than 2 blocks and (64,)-wide heads with
        # dropout 0.2 (the teach preset before 2026-11-27), and as accurate or more (benchmarks/RESULTS.md)
        model=ModelConfig(latent_dim=32, mlp_hidden=64, gen_layers=(64, 32), gen_blocks=1,
                          head_layers=(), head_dropout=0.0),
        advantage=AdvantageConfig(growth_every=100),
        train=TrainConfig(epochs_constant=15, epochs_decay=15, batch_size=128, lr=3e-3),
    )


def _paper() -> Config:
    return Config(
        # release: only A is normalised (by the loader, with the fold's ComParE mean/std)
        data=DataConfig(dims=(130, 342, 1024), seq_len=50, num_classes=4, normalise=False),
        model=ModelConfig(backbone="transformer", mask_padding=True),
        train=TrainConfig(),
    )


PRESETS = {"smoke": _smoke, "teach": _teach, "paper": _paper}

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
        return list(v) if isinstance(v, tuple) else v
    return {f.name: {k: plain(v) for k, v in dataclasses.asdict(getattr(config, f.name)).items()}
            for f in dataclasses.fields(config)}


def config_from_dict(d: dict[str, Any]) -> Config:
    """Inverse of :func:`config_to_dict`."""
    sections = {}
    for f in dataclasses.fields(Config):
        cls = type(getattr(Config(), f.name))
        types = {g.name: g for g in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in d.get(f.name, {}).items()
                  if k in types}
        sections[f.name] = cls(**values)
    return Config(**sections)
