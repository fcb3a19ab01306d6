"""One bi-level training step, behind one interface with two implementations.

A step takes a batch's sample indices and runs, in this order: the forward pass; the lower-level
terms (CE, masked KL, Rec); the upper level (:class:`~redcore_lite.advantage.RelativeAdvantage`
moves beta from this batch's Rec); the loss with the new beta; backward; clipping; Adam. Both
implementations share that sequence (:func:`loss_and_update`) and the one distributed hook
(:func:`advantage_input_all_ranks`: under torchrun the upper level reads every rank's Rec), and
return a :class:`StepOutput`.

* :class:`EagerStep` (the default, the reference behaviour): each encoder runs on the rows where
  its modality is present plus one zero row (:meth:`RedCore.encode_masked
  <redcore_lite.model.RedCore.encode_masked>`; missing rows share that row's dropout draw).
* :class:`StaticStep` (opt-in: ``train.cuda_graph`` or ``train.compile``): every encoder runs on
  the whole batch with a missing modality's input zeroed (:meth:`RedCore.encode_zeroed
  <redcore_lite.model.RedCore.encode_zeroed>`), so shapes do not depend on the mask, which a
  CUDA graph and a compiled step need. **It is not bit-identical to the eager step**: each missing
  row gets its own dropout draw (as in the authors' release), so a fit with it follows another
  random path; evaluation (no dropout) gives the same values. On CUDA with ``capture`` it is
  recorded once as a CUDA graph and replayed.

How the static step is made replayable on a GPU (the `paper` step is bound by kernel launches:
about 1200 kernels of a few microseconds each; ``benchmarks/RESULTS.md``):

- the batch's sample indices are copied into a fixed index tensor and the gathers (features,
  lengths, labels, mask rows) run inside the graph;
- the upper level's decisions (eta's growth, whether beta moves at this step) are taken on the
  host by :meth:`RelativeAdvantage.schedule`, exactly as in the eager step, and handed to the graph
  as device scalars; Lbar, RA and beta are updated in place (:meth:`RelativeAdvantage.step_inplace`);
- the learning rate is a device scalar (the tensor-lr form of the fused Adam kernel);
- the step's history row is written by the graph into a fixed tensor.

A batch of another size (an epoch's last, short batch) runs the same static step without the
graph. On the CPU the static step runs eagerly (what the tests check); only CUDA captures.
Capturing first runs three warm-up steps on a side stream (CUDA's lazy initialisation,
``torch.compile``'s compilation), then restores the model, optimizer, beta state and CUDA RNG, so
the warm-up leaves no trace in the run.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from . import distributed as D
from .advantage import RelativeAdvantage
from .batching import PresentRows
from .config import Config
from .data import MultimodalData
from .diagnostics import encoder_grad_norms
from .losses import LossTerms, advantage_input, complete_rows, network_terms, weigh_reconstruction
from .model import RedCore
from .optim import Adam

__all__ = ["Step", "StepOutput", "EagerStep", "StaticStep", "train_step", "loss_and_update",
           "advantage_input_all_ranks", "make_optimizer", "clip_groups", "clip_gradients", "gradient_clipper",
           "region"]

UpperLevel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (rec, observed) -> beta


@dataclass
class StepOutput:
    """What a step returns (device tensors; nothing is read back to the host)."""

    row: torch.Tensor  # [2 + 7 M] the history row: loss, fused CE, per modality CE, KL, Rec,
    #                    observed, beta, RA, Lbar (a static step's graph overwrites it next call)
    terms: LossTerms | None = None  # the eager step's terms (per-row Rec, encoder grad norms)
    avail: torch.Tensor | None = None  # [B, M] the batch's training mask (with ``terms``)


class Step(Protocol):
    """A training step: ``step(idx, present)`` trains on the samples ``idx`` (a device tensor)."""

    def __call__(self, idx: torch.Tensor, present: PresentRows | None = None) -> StepOutput:
        """One bi-level step on the samples ``idx``; ``present``: their :class:`PresentRows`."""

    def set_mask(self, mask: torch.Tensor) -> None:
        """A new training mask ``[N, M]`` on the training device (``mask.redraw_each_epoch``)."""


def make_optimizer(model: torch.nn.Module, config: Config) -> Adam:
    """Adam with the release's betas (one fused kernel per step; see :mod:`redcore_lite.optim`).

    The learning rate follows the release schedule per epoch: the trainer sets
    ``optimizer.lr = config.train.lr * lr_factor(epoch, ...)`` before each epoch.
    """
    tc = config.train
    return Adam(model.parameters(), lr=tc.lr, betas=(tc.adam_beta1, 0.999))


def clip_groups(model: RedCore) -> tuple[list[list[torch.nn.Parameter]], list[list[torch.nn.Parameter]]]:
    """Sub-networks clipped separately (release): plain groups and modality-stacked groups.

    The plain groups are each encoder (in modality order), then the fused head."""
    plain = [list(e.parameters()) for e in model.encoders] + [list(model.fused_head.parameters())]
    stacked = [list(model.generators.parameters())]
    if model.unimodal_heads is not None:
        stacked.append(list(model.unimodal_heads.parameters()))
    return plain, stacked


def clip_gradients(plain: list, stacked: list, max_norm: float) -> None:
    """Clip each group to ``max_norm``; a stacked group per modality slice. No host sync.

    A plain group is clipped exactly as ``clip_grad_norm_`` would (the norm of its tensors' norms,
    the same coefficient), with one ``_foreach_norm`` over all groups' gradients; the coefficients
    of all groups come from one vector.
    """
    groups = [gs for gs in ([p.grad for p in params if p.grad is not None] for params in plain) if gs]
    stacks = [gs for gs in ([p.grad for p in params if p.grad is not None] for params in stacked) if gs]
    norms: list[torch.Tensor] = []  # one norm per plain group, then [M] per stacked group
    if groups:
        each = torch._foreach_norm([g for gs in groups for g in gs], 2.0)
        pos = 0
        for gs in groups:
            norms.append(torch.linalg.vector_norm(torch.stack(each[pos:pos + len(gs)]), 2.0)[None])
            pos += len(gs)
    for grads in stacks:  # per modality: the norm over the group's [m] slices
        norms.append(torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1).norm(dim=1))
    if not norms:
        return
    coefs = (max_norm / (torch.cat(norms) + 1e-6)).clamp(max=1.0).split([len(n) for n in norms])
    for gs, coef in zip(groups, coefs):
        torch._foreach_mul_(gs, coef[0])  # one multi-tensor kernel per group on CUDA
    for grads, coef in zip(stacks, coefs[len(groups):]):
        view = {k: coef.view(-1, *([1] * (k - 1))) for k in {g.dim() for g in grads}}  # [M, 1, ..]
        torch._foreach_mul_(grads, [view[g.dim()] for g in grads])


def gradient_clipper(groups: tuple[list, list], max_norm: float) -> Callable[[], None]:
    """``clip()`` for a step: :func:`clip_gradients` of ``groups`` (from :func:`clip_groups`) at
    ``max_norm``; nothing when ``max_norm`` is 0 (``train.clip_norm = 0``: no clipping)."""
    def clip() -> None:
        if max_norm > 0:
            clip_gradients(*groups, max_norm)
    return clip


_NO_REGION = contextlib.nullcontext()


def region(name: str) -> contextlib.AbstractContextManager:
    """A named range for ``torch.profiler`` while it records (the step's parts in a trace and in
    ``benchmarks/step_time.py --profile``); nothing otherwise (``record_function`` costs ~6 us)."""
    if torch.autograd._profiler_enabled():
        from torch.profiler import record_function
        return record_function(name)
    return _NO_REGION


def advantage_input_all_ranks(rec: torch.Tensor, observed: torch.Tensor, avail: torch.Tensor,
                              matched: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The distributed hook of both steps: under torchrun, Rec and ``n_m > 0`` over every rank's
    rows (of the complete rows in advantage mode "matched"), so each rank's upper level moves
    beta identically; in one process, ``(rec, observed)`` as given."""
    if D.world() > 1:
        return D.global_rec(rec, complete_rows(avail) if matched else avail)
    return rec, observed


def loss_and_update(step_model: torch.nn.Module, optimizer: Adam, config: Config,
                    xs: Sequence[torch.Tensor], lens: Sequence[torch.Tensor | None],
                    avail: torch.Tensor, y: torch.Tensor, upper: UpperLevel,
                    present: PresentRows | None, static: bool, clip: Callable[[], None],
                    lr: torch.Tensor | None = None,
                    grad_groups: Sequence[Sequence[torch.nn.Parameter]] | None = None) -> LossTerms:
    """The sequence both steps run: forward, lower-level terms, the upper level ``upper(rec,
    observed) -> beta`` (after the distributed hook), the loss with that beta, backward, the
    encoders' gradient norms (with ``grad_groups``), ``clip()``, Adam (with ``lr``: a device
    scalar, the fused kernel's tensor-lr form). ``static``: encode every row (shapes that do not
    depend on the mask); autocast's weight cache is then off (required under graph capture)."""
    tc = config.train
    matched = config.advantage.mode == "matched"
    with region("redcore::forward"), torch.autocast(avail.device.type, dtype=torch.bfloat16,
                                                     enabled=tc.bf16, cache_enabled=not static):
        out = step_model(xs, lens, avail, present, static)
    with region("redcore::loss"):
        terms = network_terms(out, y, avail, config.loss)
        rec, observed = advantage_input(out, avail, terms, "all" if matched else "any")
        beta = upper(*advantage_input_all_ranks(rec, observed, avail, matched))
        terms = weigh_reconstruction(terms, beta, config.loss)
    optimizer.zero_grad()
    with region("redcore::backward"):
        terms.total.backward()
    if grad_groups is not None:
        terms.grad_norm = encoder_grad_norms(grad_groups)  # diagnostics, no sync
    with region("redcore::clip"):
        clip()
    with region("redcore::adam"):
        optimizer.step(lr=lr)
    return terms


def train_step(model: torch.nn.Module, optimizer: Adam, adv: RelativeAdvantage,
               config: Config, xs: list[torch.Tensor], lens: list[torch.Tensor | None],
               avail: torch.Tensor, y: torch.Tensor, groups: tuple[list, list],
               present: PresentRows | None = None) -> LossTerms:
    """One eager bi-level iteration on a batch given as tensors (what :class:`EagerStep` runs).

    Args:
        model: the RedCore (or its DistributedDataParallel wrapper); xs, lens: inputs; avail:
        ``[B, M]``; y: ``[B]``; groups: :func:`clip_groups` of the RedCore; present: the batch's
        :class:`PresentRows` (from :func:`redcore_lite.batching.epoch_plan`; avoids a device sync).
    Returns:
        the step's :class:`LossTerms` with ``grad_norm`` (device tensors; nothing is read back).
    """
    return loss_and_update(model, optimizer, config, xs, lens, avail, y, adv.step, present, False,
                           gradient_clipper(groups, config.train.clip_norm),
                           grad_groups=groups[0][:avail.shape[1]])


class EagerStep:
    """The reference step (:func:`train_step` on a batch gathered from ``train``).

    Args:
        model: the RedCore; step_model: what runs the forward pass (``model``, or under torchrun its
            DistributedDataParallel wrapper); optimizer, adv, config: the run's; train: the training
            data on the training device; mask: ``[N, M]`` bool training mask on that device.
    """

    def __init__(self, model: RedCore, step_model: torch.nn.Module, optimizer: Adam,
                 adv: RelativeAdvantage, config: Config, train: MultimodalData,
                 mask: torch.Tensor) -> None:
        self.step_model, self.optimizer, self.adv, self.config = step_model, optimizer, adv, config
        self.train, self.mask, self.groups = train, mask, clip_groups(model)

    def set_mask(self, mask: torch.Tensor) -> None:
        self.mask = mask

    def __call__(self, idx: torch.Tensor, present: PresentRows | None = None) -> StepOutput:
        xs, lens = self.train.inputs(idx)
        avail = self.mask.index_select(0, idx)
        terms = train_step(self.step_model, self.optimizer, self.adv, self.config, xs, lens, avail,
                           self.train.labels.index_select(0, idx), self.groups, present)
        adv = self.adv
        return StepOutput(terms.history_row(adv.beta, adv.ra, adv.lbar), terms, avail)


class StaticStep:
    """One bi-level training step with static shapes; on CUDA replayed as a captured graph.

    Args:
        model: the RedCore (uncompiled; its state is snapshotted around the warm-up);
        step_model: what runs the forward pass (``model``, ``torch.compile(model)``, or under
            torchrun the DistributedDataParallel wrapper; a graph needs a single process);
        optimizer, adv, config: the run's; train: the training data (on the training device);
        mask: ``[N, M]`` bool on that device; clip: ``clip()`` clips the gradients (no host sync);
        capture: record a CUDA graph.

    Call it with a step's sample indices (a device tensor); its :class:`StepOutput` has the step's
    history row only (no per-row diagnostics). With a graph the row is a fixed tensor that the
    next call overwrites: copy it out.
    """

    def __init__(self, model: torch.nn.Module, step_model: torch.nn.Module, optimizer: Adam,
                 adv: RelativeAdvantage, config: Config, train: MultimodalData, mask: torch.Tensor,
                 clip: Callable[[], None], capture: bool) -> None:
        if capture and mask.device.type != "cuda":
            raise ValueError(f"capture: got True with data on {mask.device}; allowed: a CUDA device")
        self.model, self.step_model, self.optimizer, self.adv = model, step_model, optimizer, adv
        self.config, self.train, self.mask, self.clip, self.capture = config, train, mask, clip, capture
        dev = mask.device
        self.batch = config.train.batch_size
        self.idx = torch.zeros(self.batch, dtype=torch.long, device=dev)
        self.lr = torch.tensor(float(optimizer.lr), device=dev)
        self.eta = torch.tensor(float(adv.eta), device=dev)
        self.moves = torch.zeros((), dtype=torch.bool, device=dev)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.row: torch.Tensor | None = None
        self.replays = 0  # steps run by replaying the graph (the rest ran eagerly)

    def set_mask(self, mask: torch.Tensor) -> None:
        """A new training mask (``mask.redraw_each_epoch``): copied in place, the graph stays."""
        self.mask.copy_(mask)

    def _upper(self, rec: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        return self.adv.step_inplace(rec, observed, self.eta, self.moves)

    def _body(self, idx: torch.Tensor) -> torch.Tensor:
        """The step: gathers, then :func:`loss_and_update`; the history row."""
        xs, lens = self.train.inputs(idx)
        avail = self.mask.index_select(0, idx)
        y = self.train.labels.index_select(0, idx)
        terms = loss_and_update(self.step_model, self.optimizer, self.config, xs, lens, avail, y,
                                self._upper, None, True, self.clip, lr=self.lr)
        adv = self.adv
        return terms.history_row(adv.beta, adv.ra, adv.lbar)

    def __call__(self, idx: torch.Tensor, present: PresentRows | None = None) -> StepOutput:
        """Run one step on the samples ``idx`` (``[b]`` long, on the device); ``present`` is
        not used (every row is encoded)."""
        moves = self.adv.schedule()  # host: eta growth, step count, whether beta moves
        self.eta.fill_(self.adv.eta)  # fills launch a kernel each; nothing waits for the device
        self.moves.fill_(moves)
        self.lr.fill_(self.optimizer.lr)
        if not self.capture or len(idx) != self.batch:
            return StepOutput(self._body(idx))
        self.idx.copy_(idx)
        if self.graph is None:
            self._record()
        assert self.graph is not None and self.row is not None
        self.graph.replay()
        self.replays += 1
        return StepOutput(self.row)

    def _record(self, warmup: int = 3) -> None:
        """Warm up on a side stream, restore the state the warm-up changed, capture one step."""
        model, opt, adv = self.model, self.optimizer, self.adv
        dev = self.mask.device
        saved = ({k: v.detach().clone() for k, v in model.state_dict().items()}, opt.state_dict(),
                 adv.state_dict(), torch.cuda.get_rng_state(dev))
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                self._body(self.idx)
        torch.cuda.current_stream(dev).wait_stream(side)
        model.load_state_dict(saved[0])
        opt.load_state_dict(saved[1])
        # Lbar, RA and beta back in place: the graph reads and writes these very tensors
        for name in ("lbar", "ra", "beta"):
            getattr(adv, name).copy_(saved[2][name])
        torch.cuda.set_rng_state(saved[3], dev)
        opt.zero_grad()  # the graph's backward allocates the gradients in its own pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.row = self._body(self.idx)
        self.graph = graph
