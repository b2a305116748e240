"""Batched full-batch training of an ensemble on a task's truth table.

All lanes (seeds, masks, methods) train as one computation: the loss is the sum over lanes of
each lane's loss, so every lane receives exactly the gradient of an independent run, and the
optimizers below are elementwise, so they equal S independent optimizers. Gradients are written
by hand (two matmuls forward, three back) because autograd's overhead dominates at this size.

Loss of a lane: the input-weighted binary cross-entropy, averaged over outputs, plus an optional
L1 penalty on hidden activations (``activation_penalty``, a stated departure when used).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from toyticket.model import Masks, ModelConfig, Params, apply_masks, init_params
from toyticket.tasks import Task
from toyticket.validation import (
    check_choice,
    check_device,
    check_float,
    check_int,
    check_seeds,
    check_steps,
)

OPTIMIZERS = ("adam", "sgd")
_CHUNK_FLOATS = 2**18  # ~1 MiB of activations per chunk of lanes: stays in L2 cache


@dataclass(frozen=True)
class TrainConfig:
    """The training budget, the same for dense training and every sparse retraining.

    ``checkpoints``: steps whose weights are kept besides 0 (initialization) and ``steps``
    (the end); early ones feed the motion probe and late rewinding."""

    steps: int = 2000
    lr: float = 0.02
    optimizer: str = "adam"
    momentum: float = 0.9
    activation_penalty: float = 0.0
    checkpoints: tuple[int, ...] = ()
    log_every: int = 20

    def __post_init__(self) -> None:
        check_int("steps", self.steps, 1, 10**7)
        check_float("lr", self.lr, 0.0, 10.0, low_open=True)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_float("momentum", self.momentum, 0.0, 1.0, high_open=True)
        check_float("activation_penalty", self.activation_penalty, 0.0, 10.0)
        # stored as a sorted tuple, so that configs stay hashable and compare by value
        object.__setattr__(
            self, "checkpoints", check_steps("checkpoints", self.checkpoints, self.steps)
        )
        check_int("log_every", self.log_every, 1)

    @property
    def checkpoint_steps(self) -> tuple[int, ...]:
        """Every step whose weights are kept, 0 and the last included."""
        return tuple(sorted({0, self.steps, *self.checkpoints}))


@dataclass
class Run:
    """The outcome of training an ensemble: plain tensors, determined by the inputs.

    ``checkpoints[t]``: the parameters after t steps (0: the initialization).
    ``history``: "step" [T] and the per-lane "loss" and "accuracy" [T, S] along training."""

    seeds: tuple[int, ...]
    checkpoints: dict[int, Params]
    history: dict[str, torch.Tensor]
    masks: Masks | None = field(default=None)

    @property
    def init(self) -> Params:
        return self.checkpoints[0]

    @property
    def final(self) -> Params:
        return self.checkpoints[max(self.checkpoints)]

    def to_dict(self) -> dict:
        """Plain tensors, lists and dicts (what the results store saves); see ``from_dict``."""
        return {
            "seeds": list(self.seeds),
            "checkpoints": {int(t): dict(p) for t, p in self.checkpoints.items()},
            "history": dict(self.history),
            "masks": None if self.masks is None else dict(self.masks),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Run:
        """The ``Run`` that ``to_dict`` described."""
        return cls(
            seeds=tuple(int(s) for s in data["seeds"]),
            checkpoints={int(t): dict(p) for t, p in data["checkpoints"].items()},
            history=dict(data["history"]),
            masks=None if data["masks"] is None else dict(data["masks"]),
        )


def train(
    task: Task,
    model: ModelConfig,
    training: TrainConfig,
    seeds: Sequence[int],
    *,
    masks: Masks | None = None,
    init: Params | None = None,
    progress: bool = False,
    device: str = "cpu",
) -> Run:
    """Train one network per lane on the task's truth table.

    ``init``: starting parameters [S, ...] (default: ``init_params`` from ``seeds``; rewinding
    passes the rewound weights here). ``masks``: 0/1 tensors for "W1" and optionally "W2";
    masked weights are zero from the start and stay exactly zero. ``device``: where the
    computation runs ("cpu", "cuda", "cuda:1", "mps"); the returned ``Run`` is on the CPU.
    Results on another device agree with the CPU's to float32 rounding, not bitwise."""
    seeds = check_seeds("seeds", seeds)
    dev = torch.device(check_device("device", device))
    X, Y = (t.to(dev) for t in task.truth_table())
    w = task.input_weights().float().to(dev)
    params = init_params(task.n_vars, task.n_outputs, model, seeds) if init is None else init
    params = {name: p.detach().to(dev, torch.float32, copy=True) for name, p in params.items()}
    _check_ensemble(params, masks, len(seeds), task, model)
    masks = {name: m.to(dev, torch.float32) for name, m in (masks or {}).items()}
    params = apply_masks(params, masks)

    optimizer = _make_optimizer(training, params)
    keep = set(training.checkpoint_steps)
    checkpoints = {0: _copy(params)}
    steps, losses, accuracies = [], [], []
    for step in tqdm(range(training.steps + 1), disable=not progress, desc="training"):
        logged = step % training.log_every == 0 or step == training.steps
        loss, grads, correct = loss_and_grads(
            params, masks, X, Y, w, training.activation_penalty, with_metrics=logged
        )
        if logged:
            steps.append(step)
            losses.append(loss)
            accuracies.append(correct)
        if step == training.steps:
            break
        optimizer.step(params, grads)
        for name, m in masks.items():
            params[name].mul_(m)
        if step + 1 in keep:
            checkpoints[step + 1] = _copy(params)
    history = {
        "step": torch.tensor(steps),
        "loss": torch.stack(losses).cpu(),
        "accuracy": torch.stack(accuracies).cpu(),
    }
    masks = {name: m.cpu() for name, m in masks.items()}
    return Run(seeds=seeds, checkpoints=checkpoints, history=history, masks=masks or None)


def loss_and_grads(
    params: Params,
    masks: Masks | None,
    X: torch.Tensor,
    Y: torch.Tensor,
    w: torch.Tensor,
    activation_penalty: float = 0.0,
    *,
    with_metrics: bool = False,
) -> tuple[torch.Tensor | None, Params, torch.Tensor | None]:
    """Gradients of every lane's loss (masked entries exactly zero) and, with ``with_metrics``,
    the per-lane loss [S] and input-weighted bit accuracy [S] (else None: the loss itself is
    not needed for a step). On the CPU, lanes are processed in cache-sized chunks; on other
    devices all at once."""
    S, h = params["W1"].shape[:2]
    dev = params["W1"].device
    X, Y, w = (t.to(dev, params["W1"].dtype) for t in (X, Y, w))
    chunk = max(1, _CHUNK_FLOATS // (X.shape[0] * h)) if dev.type == "cpu" else S
    loss = torch.empty(S, device=dev) if with_metrics else None
    correct = torch.empty(S, device=dev) if with_metrics else None
    grads = {name: torch.empty_like(p) for name, p in params.items()}
    eff = apply_masks(params, masks)
    XT, YT = X.T.contiguous(), Y.T.contiguous()  # feature-major: see _chunk_loss_and_grads
    for lo in range(0, S, chunk):
        lanes = slice(lo, min(S, lo + chunk))
        part = {name: p[lanes] for name, p in eff.items()}
        out = _chunk_loss_and_grads(part, X, XT, YT, w, activation_penalty, with_metrics)
        for name in grads:
            grads[name][lanes] = out[1][name]
        if with_metrics:
            loss[lanes], correct[lanes] = out[0], out[2]
    for name, m in (masks or {}).items():
        grads[name].mul_(m)
    return loss, grads, correct


def _chunk_loss_and_grads(
    p: Params,
    X: torch.Tensor,
    XT: torch.Tensor,
    YT: torch.Tensor,
    w: torch.Tensor,
    activation_penalty: float,
    with_metrics: bool,
) -> tuple[torch.Tensor | None, Params, torch.Tensor | None]:
    # Feature-major layout ([S, h, N], [S, out, N]): the long sample axis is innermost, so
    # every elementwise pass is contiguous and vectorizes.
    n_out, h = p["W2"].shape[1], p["W1"].shape[1]
    pre = torch.matmul(p["W1"], XT).add_(p["b1"][:, :, None])  # [S, h, N]
    A = pre.clamp_min_(0)
    Z = torch.matmul(p["W2"], A).add_(p["b2"][:, :, None])  # [S, out, N]
    wo = w / n_out  # per-sample weight, averaged over outputs
    G = torch.sigmoid(Z).sub_(YT).mul_(wo)  # dL/dZ
    dA = torch.matmul(p["W2"].transpose(1, 2), G)  # [S, h, N]
    if activation_penalty:
        dA.add_(w, alpha=activation_penalty / h)
    dpre = torch.ops.aten.threshold_backward(dA, A, 0.0)
    grads = {
        "W1": torch.matmul(dpre, X),
        "b1": dpre.sum(2),
        "W2": torch.matmul(G, A.transpose(1, 2)),
        "b2": G.sum(2),
    }
    if not with_metrics:
        return None, grads, None
    loss = ((F.softplus(Z) - Z * YT) * wo).sum((1, 2))  # binary cross-entropy with logits
    if activation_penalty:
        loss += activation_penalty / h * (A * w).sum((1, 2))
    correct = (((Z > 0) == YT.bool()).float() * wo).sum((1, 2))
    return loss, grads, correct


class _Adam:
    """Adam (Kingma and Ba), elementwise, PyTorch's defaults (betas 0.9/0.999, eps 1e-8)."""

    def __init__(self, lr: float, params: Params) -> None:
        self.lr, self.t = lr, 0
        self.m = {k: torch.zeros_like(p) for k, p in params.items()}
        self.v = {k: torch.zeros_like(p) for k, p in params.items()}

    def step(self, params: Params, grads: Params) -> None:
        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        for k, g in grads.items():
            self.m[k].mul_(b1).add_(g, alpha=1 - b1)
            self.v[k].mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (self.v[k] / (1 - b2**self.t)).sqrt_().add_(eps)
            params[k].addcdiv_(self.m[k], denom, value=-self.lr / (1 - b1**self.t))


class _SGD:
    """SGD with heavy-ball momentum, as ``torch.optim.SGD(momentum=mu)``."""

    def __init__(self, lr: float, momentum: float, params: Params) -> None:
        self.lr, self.momentum = lr, momentum
        self.buf = {k: torch.zeros_like(p) for k, p in params.items()}

    def step(self, params: Params, grads: Params) -> None:
        for k, g in grads.items():
            self.buf[k].mul_(self.momentum).add_(g)
            params[k].add_(self.buf[k], alpha=-self.lr)


def _make_optimizer(training: TrainConfig, params: Params) -> _Adam | _SGD:
    if training.optimizer == "adam":
        return _Adam(training.lr, params)
    return _SGD(training.lr, training.momentum, params)


def _copy(params: Params) -> Params:
    """A CPU copy of the parameters (a checkpoint)."""
    return {name: p.detach().to("cpu", copy=True) for name, p in params.items()}


def _check_ensemble(
    params: Params, masks: Masks | None, S: int, task: Task, model: ModelConfig
) -> None:
    expected = {
        "W1": (S, model.width, task.n_vars),
        "b1": (S, model.width),
        "W2": (S, task.n_outputs, model.width),
        "b2": (S, task.n_outputs),
    }
    if set(params) != set(expected):
        raise ValueError(
            f"init must have exactly the keys {sorted(expected)}, got {sorted(params)}"
        )
    for name, shape in expected.items():
        if tuple(params[name].shape) != shape:
            raise ValueError(
                f"init[{name!r}] has shape {tuple(params[name].shape)}, expected {shape} "
                f"(lanes, width, task dimensions)"
            )
    for name, m in (masks or {}).items():
        if name not in ("W1", "W2"):
            raise ValueError(
                f"masks may only hold 'W1' and 'W2' (biases are never pruned), got {name!r}"
            )
        if tuple(m.shape) != expected[name]:
            raise ValueError(
                f"masks[{name!r}] has shape {tuple(m.shape)}, expected {expected[name]}"
            )
