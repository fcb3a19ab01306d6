"""Extension points: datasets and encoder backbones that plug in without editing the library.

Datasets. Each dataset owns its config: a frozen dataclass of the options it reads, and a loader
``loader(dataset_config, seed) -> Splits``. :func:`~redcore_lite.data.load_data` (``data.name``)
looks the name up here. The built-in datasets are registered by :mod:`redcore_lite.datasets`
(imported with the package; this module imports nothing of the library's data code, not even
for types: it sits below :mod:`redcore_lite.data`, which imports it) with config dataclasses that
name the :class:`~redcore_lite.config.DataConfig` fields they read (``DataConfig`` stays the flat record a
saved config holds, so configs and checkpoints written before the registry load unchanged). A
new dataset's own options go in ``data.options`` (``{"noise": 0.3}``; a JSON/YAML ``--config``
file writes them naturally)::

    @dataclass(frozen=True)
    class RingsConfig:
        num_samples: int = 300
        noise: float = 0.1

    def load_rings(cfg: RingsConfig, seed: int) -> rc.Splits: ...

    rc.registry.register_dataset("rings", load_rings, RingsConfig)
    rc.fit(rc.override(rc.preset("smoke"), data={"name": "rings", "options": {"noise": 0.3}}))

Encoders. ``register_encoder(name, factory)``; ``factory(input_dim, latent_dim, model_config)``
returns an ``nn.Module`` whose ``forward(x, lengths)`` maps ``x: [B, D]`` (or ``[B, T, D]`` with
``lengths: [B]``) to ``[B, latent_dim]``; the VIB head follows it. Use the name in
``model.backbone`` (every modality) or per modality in ``model.backbones``. A saved model with
a registered encoder loads where the same registration has run (import your module first).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from .config import DataConfig, ModelConfig

__all__ = ["DatasetSpec", "EncoderSpec", "register_dataset", "get_dataset", "dataset_names", "is_plugin",
           "dataset_config", "register_encoder", "get_encoder", "encoder_names", "BUILTIN_ENCODERS"]


# loader(dataset_config, seed) -> redcore_lite.data.Splits; typed Any here, since importing Splits
# (even for type checking) would make this module depend on redcore_lite.data, which imports it
Loader = Callable[[Any, int], Any]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its config dataclass and its loader."""

    name: str
    config: type  # a dataclass of the dataset's options (data.options; built-ins: DataConfig fields)
    loader: Loader
    description: str = ""
    builtin: bool = False


@dataclass(frozen=True)
class EncoderSpec:
    """A registered encoder backbone."""

    name: str
    factory: Callable[[int, int, ModelConfig], nn.Module]
    inputs: str = "any"  # "vectors" ([N, D]), "sequences" ([N, T, D]) or "any"
    description: str = ""


_DATASETS: dict[str, DatasetSpec] = {}
_ENCODERS: dict[str, EncoderSpec] = {}
BUILTIN_ENCODERS = ("mlp", "transformer")  # built by RedCore itself (vib.py)


def _check_name(name: Any, what: str) -> str:
    if not (isinstance(name, str) and name and name.strip() == name and "," not in name):
        raise ValueError(f"name: got {name!r}; allowed: a non-empty {what} name without spaces "
                         "at its ends or commas")
    return name


def register_dataset(name: str, loader: Loader, config: type,
                     description: str = "", overwrite: bool = False) -> DatasetSpec:
    """Register a dataset: ``loader(config_instance, seed) -> Splits``; ``config`` a dataclass
    whose fields (with defaults) are the dataset's options. Returns the spec.

    Raises:
        ValueError: a bad name, ``config`` not a dataclass, a field without a default, ``loader``
        not callable, or the name taken (a built-in always; another unless ``overwrite``).
    """
    _check_name(name, "dataset")
    if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        raise ValueError(f"config: got {config!r}; allowed: a dataclass (the dataset's options)")
    missing = [f.name for f in dataclasses.fields(config)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"config: {config.__name__} fields {missing} have no default; allowed: "
                         "a dataclass whose every field has a default")
    if not callable(loader):
        raise ValueError(f"loader: got {loader!r}; allowed: a function (config, seed) -> Splits")
    old = _DATASETS.get(name)
    if old is not None and (old.builtin or not overwrite):
        raise ValueError(f"name: {name!r} is already registered"
                         + ("" if old.builtin else " (overwrite=True replaces it)")
                         + f"; allowed: a new name, not one of {sorted(_DATASETS)}")
    spec = DatasetSpec(name, config, loader, description)
    _DATASETS[name] = spec
    return spec


def get_dataset(name: str) -> DatasetSpec:
    """The registered dataset ``name``; a ValueError listing the registered names otherwise."""
    spec = _DATASETS.get(name)
    if spec is None:
        raise ValueError(f"data.name: got {name!r}; allowed: " + ", ".join(map(repr, _DATASETS))
                         + " (or a name registered with redcore_lite.registry.register_dataset)")
    return spec


def is_plugin(name: str) -> bool:
    """Whether ``name`` is a dataset registered from outside the library."""
    spec = _DATASETS.get(name)
    return spec is not None and not spec.builtin


def dataset_names() -> tuple[str, ...]:
    """Every registered dataset name, the built-ins first."""
    return tuple(_DATASETS)


def dataset_config(data: DataConfig) -> Any:
    """The dataset's own config for ``data``: its dataclass, filled from ``data.options``; for a
    built-in dataset also from the DataConfig fields of the same names (the options win). A
    registered dataset's fields not in ``data.options`` keep their defaults (and a ``name`` field
    gets ``data.name``). Unknown options are an error."""
    from .config import _tuples, check_section

    spec = get_dataset(data.name)
    fields = {f.name for f in dataclasses.fields(spec.config)}
    shared = fields if spec.builtin else fields & {"name"}
    values = {k: getattr(data, k) for k in shared if hasattr(data, k) and k != "options"}
    options = dict(data.options)
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"data.options: {unknown} are not options of dataset {data.name!r}; "
                         f"allowed: {sorted(fields)}")
    values.update({k: _tuples(v) for k, v in options.items()})
    cfg = spec.config(**values)
    check_section(cfg, "data.options")
    return cfg


def register_encoder(name: str, factory: Callable[[int, int, ModelConfig], nn.Module],
                     inputs: str = "any", description: str = "", overwrite: bool = False) -> EncoderSpec:
    """Register an encoder backbone ``factory(input_dim, latent_dim, model_config) -> nn.Module``
    (``forward(x, lengths) -> [B, latent_dim]``); ``inputs``: what it takes (checked by fit)."""
    _check_name(name, "encoder")
    if name in BUILTIN_ENCODERS:
        raise ValueError(f"name: {name!r} is a built-in backbone; allowed: another name")
    if not callable(factory):
        raise ValueError(f"factory: got {factory!r}; allowed: a function (input_dim, latent_dim, "
                         "model_config) -> nn.Module")
    if inputs not in ("vectors", "sequences", "any"):
        raise ValueError(f"inputs: got {inputs!r}; allowed: 'vectors', 'sequences', 'any'")
    if name in _ENCODERS and not overwrite:
        raise ValueError(f"name: {name!r} is already registered (overwrite=True replaces it); "
                         "allowed: a new name")
    spec = EncoderSpec(name, factory, inputs, description)
    _ENCODERS[name] = spec
    return spec


def get_encoder(name: str) -> EncoderSpec:
    """The registered encoder ``name`` (built-ins included, with a factory that says so)."""
    if name in BUILTIN_ENCODERS:
        return EncoderSpec(name, _builtin_factory, "vectors" if name == "mlp" else "sequences")
    spec = _ENCODERS.get(name)
    if spec is None:
        raise ValueError(f"model.backbone: got {name!r}; allowed: " + ", ".join(map(repr, encoder_names()))
                         + " (or a name registered with redcore_lite.registry.register_encoder)")
    return spec


def encoder_names() -> tuple[str, ...]:
    return BUILTIN_ENCODERS + tuple(_ENCODERS)


def _builtin_factory(input_dim: int, latent_dim: int, config: ModelConfig) -> nn.Module:
    raise AssertionError("the built-in backbones are built by RedCore")  # pragma: no cover


def _register_builtin(spec: DatasetSpec) -> None:
    """Called by :mod:`redcore_lite.datasets` (imported with the package) for its datasets."""
    _DATASETS[spec.name] = dataclasses.replace(spec, builtin=True)
