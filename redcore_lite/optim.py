"""Adam with one fused kernel per step, without ``torch.optim``.

The arithmetic is ``torch.optim.Adam(fused=True)``'s: this class calls the same kernel
(``torch._fused_adam_``) with the same arguments, so a run gives bit-identical parameters (tested).
What it leaves out is the machinery around the kernel: ``torch.optim`` imports ``torch._dynamo``
the first time an optimizer is built (about a second in every fresh process, i.e. on a student's
first training run in a notebook, in every CLI call and every sweep worker) and spends about
0.1 ms of Python per step grouping tensors. Where the fused kernel is not available (torch < 2.4 on
CPU, other devices), it falls back to ``torch.optim.Adam(foreach=True)``.

The learning rate is a plain attribute (``lr``) that the trainer sets once per epoch.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import torch

__all__ = ["Adam"]


def _fused_available(device: torch.device) -> bool:
    """Whether ``torch._fused_adam_`` runs on ``device`` (probed once on a one-element tensor)."""
    if not hasattr(torch, "_fused_adam_"):
        return False
    try:
        p, g = torch.zeros(1, device=device), torch.ones(1, device=device)
        m, v, step = torch.zeros(1, device=device), torch.zeros(1, device=device), torch.ones((), device=device)
        torch._fused_adam_([p], [g], [m], [v], [], [step], amsgrad=False, lr=1e-3, beta1=0.9,
                           beta2=0.999, weight_decay=0.0, eps=1e-8, maximize=False)
        return True
    except (RuntimeError, NotImplementedError, TypeError):
        return False


class Adam:
    """Adam (Kingma and Ba) on a fixed list of parameters of one device and dtype.

    Like ``torch.optim.Adam``, a parameter whose ``grad`` is None is skipped (its state and step
    count are left alone), and ``zero_grad`` sets gradients to None.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params: list[torch.Tensor] = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("params: got no trainable parameters; allowed: at least one")
        if not lr > 0:
            raise ValueError(f"lr: got {lr!r}; allowed: a number > 0")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas: got {betas!r}; allowed: two numbers in [0, 1)")
        self.lr, self.betas, self.eps = float(lr), (float(betas[0]), float(betas[1])), float(eps)
        device = self.params[0].device
        self._torch: torch.optim.Adam | None = None
        self.exp_avg: list[torch.Tensor] = []
        self.exp_avg_sq: list[torch.Tensor] = []
        self.steps: list[torch.Tensor] = []
        if not _fused_available(device):  # the fallback keeps its own state
            self._torch = torch.optim.Adam(self.params, lr=self.lr, betas=self.betas, eps=self.eps,
                                           foreach=True)
            return
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        # float32 step counts on the parameters' device, as torch.optim keeps them for fused Adam.
        # While every parameter has been updated at every step, the counts are equal and share one
        # tensor (one increment a step instead of one per parameter: ~0.1 ms on a CPU); the first
        # step that skips a parameter gives each its own count.
        self._shared: torch.Tensor | None = torch.zeros((), dtype=torch.float32, device=device)
        self.steps = [self._shared] * len(self.params)

    @property
    def fused(self) -> bool:
        """True when the fused kernel is used (False: the ``torch.optim.Adam`` fallback)."""
        return self._torch is None

    def zero_grad(self) -> None:
        """Set every gradient to None (``torch.optim``'s ``set_to_none=True``)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: torch.Tensor | None = None) -> None:
        """One Adam update of every parameter that has a gradient.

        Args:
            lr: the learning rate as a 0-d tensor on the parameters' device (what a CUDA graph
                replays; the host sets its value); default ``self.lr``. The ``torch.optim``
                fallback always uses ``self.lr``.
        """
        if self._torch is not None:
            for group in self._torch.param_groups:
                group["lr"] = self.lr
            self._torch.step()
            return
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        if len(live) == len(self.params):
            params, exp_avg, exp_avg_sq, steps = self.params, self.exp_avg, self.exp_avg_sq, self.steps
        else:
            self._unshare()
            params = [self.params[i] for i in live]
            exp_avg = [self.exp_avg[i] for i in live]
            exp_avg_sq = [self.exp_avg_sq[i] for i in live]
            steps = [self.steps[i] for i in live]
        if self._shared is not None:
            self._shared.add_(1)
        else:
            torch._foreach_add_(steps, 1)
        grads = cast("list[torch.Tensor]", [p.grad for p in params])  # ``live``: every grad is set
        b1, b2 = self.betas
        if lr is None:  # the float-lr overload
            torch._fused_adam_(params, grads, exp_avg, exp_avg_sq, [], steps, amsgrad=False, lr=self.lr,
                               beta1=b1, beta2=b2, weight_decay=0.0, eps=self.eps, maximize=False)
        else:  # the tensor-lr overload (a CUDA graph replays it)
            torch._fused_adam_(params, grads, exp_avg, exp_avg_sq, [], steps, amsgrad=False, lr=lr,
                               beta1=b1, beta2=b2, weight_decay=0.0, eps=self.eps, maximize=False)

    def _unshare(self) -> None:
        """Give every parameter its own step count (before a step that skips some)."""
        if self._shared is not None:
            self.steps = [t.clone() for t in self.steps]
            self._shared = None

    def state_dict(self) -> dict[str, Any]:
        """Tensors and numbers only (loadable with ``weights_only=True``)."""
        if self._torch is not None:
            return {"lr": self.lr, "torch": self._torch.state_dict()}
        return {"lr": self.lr, "exp_avg": [t.clone() for t in self.exp_avg],
                "exp_avg_sq": [t.clone() for t in self.exp_avg_sq],
                "steps": [t.clone() for t in self.steps]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` of an optimizer over the same parameters."""
        if not isinstance(state, dict) or "lr" not in state:
            raise ValueError("state: not a state saved by redcore_lite.optim.Adam (checkpoints written "
                             "before redcore_lite had its own Adam hold a torch.optim state); allowed: "
                             "a state from Adam.state_dict(), so start such a run afresh")
        if ("torch" in state) != (self._torch is not None):
            raise ValueError("state: saved with the other Adam implementation (fused vs torch.optim); "
                             "allowed: a state from the same torch build and device type")
        self.lr = float(state["lr"])
        if self._torch is not None:
            self._torch.load_state_dict(state["torch"])
            return
        self._unshare()
        for key in ("exp_avg", "exp_avg_sq", "steps"):
            mine, saved = getattr(self, key), state[key]
            if len(saved) != len(mine) or any(a.shape != b.shape for a, b in zip(mine, saved)):
                raise ValueError(f"state[{key!r}]: shapes do not match these parameters; allowed: a "
                                 "state saved for the same model")
            for a, b in zip(mine, saved):
                a.copy_(b)
        counts = torch.stack(self.steps)
        if bool((counts == counts[0]).all()):  # equal counts share one tensor again
            self._shared = self.steps[0]
            self.steps = [self._shared] * len(self.params)
