"""The RedCore network: VIB encoders, cross-modal generators, imputation, fused and unimodal heads.

Tensors over modalities are stacked modality-first: ``z: [M, B, d]``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from .batching import PresentRows
from .config import ModelConfig
from .layers import Dropout
from .generators import ResidualGenerators, StackedLinear
from .vib import MLPBackbone, TransformerBackbone, VIBEncoder, _Block, reparameterize

__all__ = ["RedCoreOutput", "PresentRows", "RedCore", "build_model", "release_init", "INITS"]


@dataclass
class RedCoreOutput:
    """What one forward pass returns (shapes for batch B, M modalities, latent d, C classes)."""

    logits: torch.Tensor  # [B, C] fused classifier on the imputed representation
    unimodal_logits: torch.Tensor | None  # [M, B, C] per-modality classifiers (None if disabled)
    z: torch.Tensor  # [M, B, d] latents (sampled in training, mu at evaluation by default)
    mu: torch.Tensor  # [M, B, d]
    logvar: torch.Tensor | None  # [M, B, d] (None without VIB)
    generated: torch.Tensor  # [M, B, d] g_m = G_m(z_k for k != m)
    imputed: torch.Tensor  # [M, B, d] r_m = a_m z_m + (1 - a_m) g_m (or 0 with zero imputation)


@torch.no_grad()
def release_init(module: nn.Module) -> nn.Module:
    """The release's initialisation, in place; returns ``module``.

    The release's ``BaseModel.setup()`` runs ``init_net(net, init_type="kaiming")`` on every
    network, which re-initialises every module whose class name contains "Linear" (also the
    attention's ``out_proj``) with ``kaiming_normal_(a=0, mode="fan_in")`` weights, i.e.
    N(0, 2 / fan_in), and zero biases. Here that is every ``nn.Linear`` and every slice of a
    :class:`StackedLinear` (one release Linear per modality, fan-in = its input width). The
    attention's input projection is a parameter of ``nn.MultiheadAttention`` in the release, not
    a Linear module, so ``init_net`` leaves it as the Transformer set it: weights N(0, 1/d), bias 0.
    LayerNorms keep weight 1 and bias 0 (their class names do not contain "Linear").
    """
    for mod in module.modules():
        if isinstance(mod, nn.Linear):
            nn.init.kaiming_normal_(mod.weight, a=0, mode="fan_in")
            if mod.bias is not None:
                mod.bias.zero_()
        elif isinstance(mod, StackedLinear):  # weight [M, in, out]: fan-in is dim 1
            mod.weight.normal_(0.0, (2.0 / mod.weight.shape[1]) ** 0.5)
            mod.bias.zero_()
    for mod in module.modules():
        if isinstance(mod, _Block):
            mod.qkv.weight.normal_(0.0, mod.qkv.weight.shape[1] ** -0.5)
            mod.qkv.bias.zero_()
    return module


INITS = {"release": release_init, "torch": lambda module: module}  # model.init -> initialiser


def _head(num: int | None, in_dim: int, layers: Sequence[int], out: int, dropout: float,
          fast: bool = False) -> nn.Sequential:
    """Classifier MLP (release FcClassifier): [Linear, ReLU, Dropout] per hidden layer, then Linear."""
    mods: list[nn.Module] = []
    for width in layers:
        mods += [nn.Linear(in_dim, width) if num is None else StackedLinear(num, in_dim, width),
                 nn.ReLU(), Dropout(dropout, fast=fast)]
        in_dim = width
    mods.append(nn.Linear(in_dim, out) if num is None else StackedLinear(num, in_dim, out))
    return nn.Sequential(*mods)


class RedCore(nn.Module):
    """RedCore for any number M >= 2 of modalities with input dims ``input_dims``."""

    def __init__(self, config: ModelConfig, input_dims: Sequence[int], num_classes: int,
                 seed: int | None = None) -> None:
        """Build the network; with ``seed``, each part is initialised from its own derived seed so
        that variants with different parts share the initialisation of the parts they have."""
        super().__init__()
        num_mod, d = len(input_dims), config.latent_dim
        if num_mod < 2:
            raise ValueError(f"input_dims: got {list(input_dims)}; allowed: at least 2 modalities")
        if num_classes < 2:
            raise ValueError(f"num_classes: got {num_classes}; allowed: an integer >= 2")
        self.config, self.num_modalities, self.latent_dim = config, num_mod, d

        def seeded(k: int) -> None:
            if seed is not None:
                torch.manual_seed(seed * 7919 + k)

        init = INITS[config.init]
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            encoders = []
            for m, dim in enumerate(input_dims):
                seeded(m)
                kind = backbone_of(config, m)
                if kind == "mlp":
                    bb: nn.Module = MLPBackbone(dim, config.mlp_hidden, d)
                elif kind == "transformer":
                    bb = TransformerBackbone(dim, d, config.num_layers, config.num_heads,
                                             config.attn_dropout, config.ff_dropout, config.mask_padding,
                                             config.cpu_speedups)
                else:  # registered with redcore_lite.registry.register_encoder
                    from .registry import get_encoder

                    bb = get_encoder(kind).factory(dim, d, config)
                    if not isinstance(bb, nn.Module):
                        raise ValueError(f"model.backbone: the factory of {kind!r} returned a "
                                         f"{type(bb).__name__}; allowed: an nn.Module")
                encoders.append(init(VIBEncoder(bb, d, vib=config.vib)))
            self.encoders = nn.ModuleList(encoders)
            seeded(100)
            self.generators = init(ResidualGenerators(num_mod, d, config.gen_layers, config.gen_blocks))
            seeded(101)
            self.fused_head = init(_head(None, num_mod * d, config.head_layers, num_classes,
                                         config.head_dropout, config.cpu_speedups))
            seeded(102)
            self.unimodal_heads = (init(_head(num_mod, d, config.head_layers, num_classes,
                                              config.head_dropout, config.cpu_speedups))
                                   if config.unimodal_heads else None)

    def encode(self, inputs: Sequence[torch.Tensor], lengths: Sequence[torch.Tensor | None]
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encode every modality as given (no masking): ``mu, logvar: [M, B, d]``."""
        outs = [enc(x, ln) for enc, x, ln in zip(self.encoders, inputs, lengths)]
        mu = torch.stack([o[0] for o in outs])
        logvar = None if outs[0][1] is None else torch.stack([o[1] for o in outs])
        return mu, logvar

    def encode_masked(self, inputs: Sequence[torch.Tensor], lengths: Sequence[torch.Tensor | None],
                      avail: torch.Tensor, present: PresentRows | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encode with every missing modality's input replaced by zeros: ``mu, logvar: [M, B, d]``.

        The zero input has one encoding (it does not depend on the sample or its length), so each
        encoder runs on the rows where its modality is present plus one zero row, which is then
        broadcast to the missing rows. In evaluation this equals encoding the zeroed batch; in
        training the missing rows share one dropout draw inside the encoder.

        Args:
            present: the batch's :class:`PresentRows` (the trainer precomputes them on the host so
                that no device sync is needed); default: built from ``avail``.
        """
        if present is None:
            present = PresentRows.build(avail)
        hs, encs = [], cast("Sequence[VIBEncoder]", self.encoders)
        for enc, x, ln, idx in zip(encs, inputs, lengths, present.rows):
            rows = torch.cat([x.new_zeros((1,) + x.shape[1:]), x.index_select(0, idx)])
            lens = None if ln is None else torch.cat([ln.new_full((1,), x.shape[1]), ln.index_select(0, idx)])
            hs.append(enc.packed(rows, lens))
        h = torch.cat(hs).index_select(0, present.pos)  # mu and logvar gathered together
        return encs[0].split(h.view(len(hs), -1, h.shape[-1]))  # [M, B, d] views

    def encode_zeroed(self, inputs: Sequence[torch.Tensor], lengths: Sequence[torch.Tensor | None],
                      avail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`encode_masked` with static shapes: each encoder runs on the whole batch, with a
        missing modality's input zeroed and its length set to the full length (the zero input of
        :meth:`encode_masked`). The same values in evaluation; in training each missing row gets
        its own dropout draw (as in the release). Costs more arithmetic, but its shapes do not
        depend on the mask, which a CUDA graph needs (:class:`redcore_lite.step.StaticStep`).
        """
        hs, encs = [], cast("Sequence[VIBEncoder]", self.encoders)
        for enc, x, ln, a in zip(encs, inputs, lengths, avail.t().bool()):
            rows = torch.where(a.view(-1, *([1] * (x.dim() - 1))), x, 0.0)
            lens = None if ln is None else torch.where(a, ln, x.shape[1])
            hs.append(enc.packed(rows, lens))
        return encs[0].split(torch.stack(hs))  # [M, B, d] views

    def sample(self, mu: torch.Tensor, logvar: torch.Tensor | None) -> torch.Tensor:
        """z = mu + sigma * eps in training (or at evaluation with ``sample_at_eval``), else mu."""
        if logvar is None or not (self.training or self.config.sample_at_eval):
            return mu
        return reparameterize(mu, logvar)

    def decode(self, z: torch.Tensor, avail: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Generate, impute and classify.

        Args:
            z: ``[M, B, d]`` latents; avail: ``[B, M]`` availability (bool or 0/1).
        Returns:
            logits ``[B, C]``, unimodal logits ``[M, B, C]`` or None, generated and imputed ``[M, B, d]``.
        """
        keep = avail.t().bool()[..., None]  # [M, B, 1]
        g = self.generators(z)
        # a z + (1 - a) g with a in {0, 1}, as a select (same values and gradients, fewer ops)
        imputed = torch.where(keep, z, g if self.config.imputation == "generator" else 0.0)
        logits = self.fused_head(self._fuse(imputed))
        uni = None if self.unimodal_heads is None else self.unimodal_heads(imputed)
        return logits, uni, g, imputed

    @staticmethod
    def _fuse(imputed: torch.Tensor) -> torch.Tensor:
        """``[M, B, d] -> [B, M * d]``: the fused head's input (modalities concatenated)."""
        num_mod, b, d = imputed.shape
        return imputed.permute(1, 0, 2).reshape(b, num_mod * d)

    def forward(self, inputs: Sequence[torch.Tensor], lengths: Sequence[torch.Tensor | None],
                avail: torch.Tensor, present: PresentRows | None = None,
                static: bool = False) -> RedCoreOutput:
        """Full pass: a missing modality's raw input is replaced by zeros before its encoder.

        Args:
            inputs: M tensors ``[B, D_m]`` or ``[B, T_m, D_m]``; lengths: M tensors ``[B]`` or None;
            avail: ``[B, M]`` bool; present: optional :class:`PresentRows` of ``avail`` (see
            :meth:`encode_masked`); static: encode every row (:meth:`encode_zeroed`; shapes that
            do not depend on the mask, for a CUDA graph).
        """
        if static:
            mu, logvar = self.encode_zeroed(inputs, lengths, avail)
        else:
            mu, logvar = self.encode_masked(inputs, lengths, avail.bool(), present)
        z = self.sample(mu, logvar)
        logits, uni, g, imputed = self.decode(z, avail)
        return RedCoreOutput(logits, uni, z, mu, logvar, g, imputed)

    @torch.no_grad()
    def predict_patterns(self, inputs: Sequence[torch.Tensor], lengths: Sequence[torch.Tensor | None],
                         patterns: torch.Tensor) -> torch.Tensor:
        """Fused logits of every sample under every availability pattern.

        Each encoder runs twice (on the input and on zeros) instead of once per pattern, and each
        generator G_m only on the patterns that miss modality m (its output is not used where m is
        present): for M = 3 and all 7 patterns, 3 generator passes per modality instead of 7.

        Args:
            inputs, lengths: as in :meth:`forward`; patterns: ``[P, M]`` bool.
        Returns:
            ``[P, B, C]`` logits.
        """
        mu_on, lv_on = self.encode(inputs, lengths)
        mu_off, lv_off = self.encode([torch.zeros_like(x) for x in inputs], lengths)
        on_host = patterns.cpu().bool()  # which rows each generator needs, without a device sync
        patterns = patterns.to(mu_on.device).bool()
        num_pat, (num_mod, b, d) = patterns.shape[0], mu_on.shape
        keep = patterns.t()[:, :, None, None]  # [M, P, 1, 1]
        if self.config.sample_at_eval and lv_on is not None and lv_off is not None:  # release: random z per pattern
            mu = torch.where(keep, mu_on[:, None], mu_off[:, None]).reshape(num_mod, num_pat * b, d)
            logvar = torch.where(keep, lv_on[:, None], lv_off[:, None]).reshape(num_mod, num_pat * b, d)
            z = self.sample(mu, logvar)
            avail = patterns.repeat_interleave(b, dim=0)  # [P * B, M]
            return self.decode(z, avail)[0].view(num_pat, b, -1)
        z = torch.where(keep, mu_on[:, None], mu_off[:, None])  # [M, P, B, d]
        if self.config.imputation == "generator":
            missing = [torch.nonzero(~on_host[:, m]).flatten().tolist() for m in range(num_mod)]
            if len({len(rows) for rows in missing}) == 1 and missing[0]:  # a stackable pattern set
                x_in = torch.stack([torch.cat([z[k, rows] for k in range(num_mod) if k != m], dim=-1)
                                    for m, rows in enumerate(missing)])  # [M, Q, B, (M-1) d]
                g = self.generators.generate(x_in.reshape(num_mod, -1, x_in.shape[-1]))
                g = g.view(num_mod, len(missing[0]), b, d)
                for m, rows in enumerate(missing):
                    z[m, rows] = g[m]
            else:
                flat = z.reshape(num_mod, num_pat * b, d)
                g = self.generators(flat).view(num_mod, num_pat, b, d)
                z = torch.where(keep, z, g)
        else:
            z = torch.where(keep, z, 0.0)
        imputed = z.reshape(num_mod, num_pat * b, d)
        return self.fused_head(self._fuse(imputed)).view(num_pat, b, -1)


def backbone_of(config: ModelConfig, m: int) -> str:
    """The backbone name of modality ``m``: ``model.backbones[m]`` if given and not "", else
    ``model.backbone``."""
    return (config.backbones[m] if m < len(config.backbones) and config.backbones[m]
            else config.backbone)


def check_backbones(config: ModelConfig, num_modalities: int) -> None:
    """``model.backbone`` and ``model.backbones`` name known backbones (built-in or registered),
    and ``backbones`` has one entry per modality (or none)."""
    from .registry import get_encoder

    get_encoder(config.backbone)
    if config.backbones and len(config.backbones) != num_modalities:
        raise ValueError(f"model.backbones: got {list(config.backbones)} for {num_modalities} "
                         "modalities; allowed: () or one name per modality (\"\" = model.backbone)")
    for name in config.backbones:
        if name:
            get_encoder(name)


def build_model(config: ModelConfig, input_dims: Sequence[int], num_classes: int,
                seed: int | None = None) -> RedCore:
    """Check the model config and build :class:`RedCore`."""
    from ._checks import check_choice, check_positive

    check_backbones(config, len(input_dims))
    check_choice(config.imputation, ("generator", "zero"), "model.imputation")
    check_choice(config.init, tuple(INITS), "model.init")
    check_positive(config.latent_dim, "model.latent_dim", integer=True)
    check_positive(config.gen_blocks, "model.gen_blocks", integer=True)
    for name in ("head_dropout", "attn_dropout", "ff_dropout"):
        p = getattr(config, name)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"model.{name}: got {p!r}; allowed: a number in [0, 1)")
    return RedCore(config, input_dims, num_classes, seed=seed)
