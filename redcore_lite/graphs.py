"""The training step replayed as one CUDA graph (opt-in: ``train.cuda_graph``).

On a GPU the `paper` step is bound by the host, not the GPU: it launches about 1200 kernels, each
of a few microseconds of GPU work, and the GPU idles between launches (``benchmarks/RESULTS.md``).
A CUDA graph records the launches of one step once and then replays them with a single call.
That needs a step whose shapes and control flow do not change from batch to batch:

- every encoder runs on the whole batch, with a missing modality's input zeroed
  (:meth:`RedCore.encode_zeroed`) instead of on its present rows plus one zero row;
- the batch's sample indices are copied into a fixed index tensor and the gathers (features,
  lengths, labels, mask rows) run inside the graph;
- the upper level's decisions (eta's growth, whether beta moves at this step) are taken on the
  host by :meth:`RelativeAdvantage.schedule`, exactly as in the eager step, and handed to the graph
  as device scalars; Lbar, RA and beta are updated in place
  (:meth:`RelativeAdvantage.step_inplace`);
- the learning rate is a device scalar (the tensor-lr form of the fused Adam kernel);
- the step's history row is written by the graph into a fixed tensor.

A batch of another size (an epoch's last, short batch) runs the same static step without the
graph. On the CPU the class runs the static step eagerly (what the tests check); only CUDA
captures. Capturing first runs three warm-up steps on a side stream (CUDA's lazy initialisation,
``torch.compile``'s compilation), then restores the model, optimizer, beta state and CUDA RNG, so
the warm-up leaves no trace in the run.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from . import distributed as D
from .advantage import RelativeAdvantage
from .config import Config
from .data import MultimodalData
from .losses import complete_rows, compute_losses
from .optim import Adam

__all__ = ["StaticStep"]


class StaticStep:
    """One bi-level training step with static shapes; on CUDA replayed as a captured graph.

    Args:
        model: the RedCore (uncompiled; its state is snapshotted around the warm-up);
        step_model: what runs the forward pass (``model``, ``torch.compile(model)``, or under
            torchrun the DistributedDataParallel wrapper; a graph needs a single process);
        optimizer, adv, config: as in :func:`redcore_lite.trainer.train_step`;
        train: the training data (on the training device); mask: ``[N, M]`` bool on that device;
        clip: ``clip()`` clips the gradients (no host sync); capture: record a CUDA graph.

    Call it with a step's sample indices (a device tensor); it returns the step's history row
    (``[2 + 7 M]``: loss, fused CE, then per modality CE, KL, Rec, observed, beta, RA, Lbar). With
    a graph the row is a fixed tensor that the next call overwrites: copy it out.
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

    def _body(self, idx: torch.Tensor) -> torch.Tensor:
        """The step: gathers, forward, upper level, loss, backward, clip, Adam; the history row."""
        tc, adv = self.config.train, self.adv
        xs, lens = self.train.inputs(idx)
        avail = self.mask.index_select(0, idx)
        y = self.train.labels.index_select(0, idx)
        # autocast's weight cache must be off under graph capture (torch.cuda.graph's notes)
        with torch.autocast(avail.device.type, dtype=torch.bfloat16, enabled=tc.bf16,
                            cache_enabled=False):
            out = self.step_model(xs, lens, avail, None, True)

        def beta(rec: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
            if D.world() > 1:  # under torchrun (compiled, no graph): every rank's Rec and n_m
                rec, observed = D.global_rec(rec, complete_rows(avail) if matched else avail)
            return adv.step_inplace(rec, observed, self.eta, self.moves)

        matched = self.config.advantage.mode == "matched"
        terms = compute_losses(out, y, avail, beta, self.config.loss, "all" if matched else "any")
        self.optimizer.zero_grad()
        terms.total.backward()
        self.clip()
        self.optimizer.step(lr=self.lr)
        return terms.history_row(adv.beta, adv.ra, adv.lbar)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        """Run one step on the samples ``idx`` (``[b]`` long, on the device)."""
        moves = self.adv.schedule()  # host: eta growth, step count, whether beta moves
        self.eta.fill_(self.adv.eta)  # fills launch a kernel each; nothing waits for the device
        self.moves.fill_(moves)
        self.lr.fill_(self.optimizer.lr)
        if not self.capture or len(idx) != self.batch:
            return self._body(idx)
        self.idx.copy_(idx)
        if self.graph is None:
            self._record()
        assert self.graph is not None and self.row is not None
        self.graph.replay()
        self.replays += 1
        return self.row

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
