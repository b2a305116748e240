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

from toyticket import engine
from toyticket.model import Masks, ModelConfig, Params, apply_masks, init_params
from toyticket.tasks import Task
from toyticket.validation import (
    check_choice,
    check_config,
    check_device,
    check_float,
    check_int,
    check_masks,
    check_params,
    check_seeds,
    check_steps,
    check_task,
)

OPTIMIZERS = ("adam", "sgd")
_CHUNK_FLOATS = 2**18  # ~1 MiB of activations per chunk of lanes: stays in L2 cache


@dataclass(frozen=True)
class TrainConfig:
    """The training budget, the same for dense training and every sparse retraining.

    ``checkpoints``: steps whose weights are kept besides 0 (initialization) and ``steps``
    (the end); early ones feed the motion probe and late rewinding. ``log_every``: the loss
    and bit accuracy are recorded every so many steps (and at the end); a record costs one to
    three training steps (the logs are float64), so frequent ones are for training curves."""

    steps: int = 2000
    lr: float = 0.02
    optimizer: str = "adam"
    momentum: float = 0.9
    activation_penalty: float = 0.0
    checkpoints: tuple[int, ...] = ()
    log_every: int = 100

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
    seeds, dev = _check_ensemble(task, model, training, seeds, masks, init, device)
    X, Y = (t.to(dev) for t in task.truth_table())
    w = task.input_weights().float().to(dev)
    params = init_params(task.n_vars, task.n_outputs, model, seeds) if init is None else init
    params = {name: p.detach().to(dev, torch.float32, copy=True) for name, p in params.items()}
    masks = {name: m.to(dev, torch.float32) for name, m in (masks or {}).items()}
    params = apply_masks(params, masks)

    if dev.type == "cpu":
        return _train_compiled(task, training, seeds, params, masks, progress)
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


def _train_compiled(
    task: Task,
    training: TrainConfig,
    seeds: tuple[int, ...],
    params: Params,
    masks: Masks,
    progress: bool,
) -> Run:
    """``train`` on the CPU: the compiled engine, one lane after the other."""
    _, Y = task.truth_table()
    with tqdm(total=len(seeds), disable=not progress, desc="training lanes") as bar:
        checkpoints, history = engine.train_ensemble(
            {name: p.numpy() for name, p in params.items()},
            {name: m.numpy() for name, m in masks.items()},
            Y.numpy(),
            task.input_weights().numpy(),
            steps=training.steps,
            lr=training.lr,
            optimizer=training.optimizer,
            momentum=training.momentum,
            penalty=training.activation_penalty,
            log_every=training.log_every,
            keep=training.checkpoint_steps,
            progress=bar.update,
        )
    logged = list(range(0, training.steps, training.log_every)) + [training.steps]
    return Run(
        seeds=seeds,
        checkpoints={
            t: {name: torch.from_numpy(a) for name, a in p.items()} for t, p in checkpoints.items()
        },
        history={
            "step": torch.tensor(logged),
            "loss": torch.from_numpy(history[0]).float(),
            "accuracy": torch.from_numpy(history[1]).float(),
        },
        masks=masks or None,
    )


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
    S, h, n = params["W1"].shape
    n_out = params["W2"].shape[1]
    dev, dtype = params["W1"].device, params["W1"].dtype
    data = _Data(*(t.to(dev, dtype) for t in (X, Y, w)))
    N = data.Xa.shape[0]
    eff = apply_masks(params, masks)
    # b1 is folded into the first layer: W1a = [W1 | b1] acts on inputs with a constant 1
    # appended, so one matmul gives W1 x + b1 and one gives both gradients (dpre [X | 1]).
    W1a = torch.cat([eff["W1"], eff["b1"][:, :, None]], 2)  # [S, h, n + 1]
    gW1a = torch.empty_like(W1a)
    grads = {
        "W1": gW1a[:, :, :n],
        "b1": gW1a[:, :, n],
        "W2": torch.empty_like(eff["W2"]),
        "b2": torch.empty_like(eff["b2"]),
    }
    loss = torch.empty(S, device=dev) if with_metrics else None
    correct = torch.empty(S, device=dev) if with_metrics else None
    chunk = max(1, _CHUNK_FLOATS // (N * h)) if dev.type == "cpu" else S
    # Activation buffers, allocated once and reused by every chunk (fresh ones per chunk
    # would page-fault): pre/A and dA/dpre [c, h, N], logits Z and dL/dZ G [c, out, N].
    pre, dA = (torch.empty(min(S, chunk), h, N, device=dev, dtype=dtype) for _ in range(2))
    Z, G = (torch.empty(min(S, chunk), n_out, N, device=dev, dtype=dtype) for _ in range(2))
    for lo in range(0, S, chunk):
        c, lanes = min(S - lo, chunk), slice(lo, min(S, lo + chunk))
        out = _chunk_loss_and_grads(
            W1a[lanes],
            eff["W2"][lanes],
            eff["b2"][lanes],
            data,
            activation_penalty,
            with_metrics,
            buffers=(pre[:c], dA[:c], Z[:c], G[:c]),
            grads=(gW1a[lanes], grads["W2"][lanes], grads["b2"][lanes]),
        )
        if with_metrics:
            loss[lanes], correct[lanes] = out
    for name, m in (masks or {}).items():
        grads[name].mul_(m)
    return loss, grads, correct


class _Data:
    """The truth table in the layouts the chunks use: Xa = [X | 1] [N, n + 1] and its
    transpose, and the targets feature-major, YT [out, N]; wo = w / out, the per-sample weight
    averaged over outputs."""

    def __init__(self, X: torch.Tensor, Y: torch.Tensor, w: torch.Tensor) -> None:
        self.Xa = torch.cat([X, X.new_ones(X.shape[0], 1)], 1)
        self.XaT = self.Xa.T.contiguous()
        self.YT = Y.T.contiguous()
        self.w, self.wo = w, w / Y.shape[1]


def _chunk_loss_and_grads(
    W1a: torch.Tensor,
    W2: torch.Tensor,
    b2: torch.Tensor,
    data: _Data,
    activation_penalty: float,
    with_metrics: bool,
    *,
    buffers: tuple[torch.Tensor, ...],
    grads: tuple[torch.Tensor, ...],
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Forward and backward of c lanes, the gradients written into ``grads`` (dW1a, dW2, db2).

    Feature-major layout ([c, h, N], [c, out, N]): the long sample axis is innermost, so every
    elementwise pass is contiguous and vectorizes. The passes run in place in ``buffers``."""
    c, h, n1 = W1a.shape
    N = data.XaT.shape[1]
    pre, dA, Z, G = buffers
    gW1a, gW2, gb2 = grads
    torch.mm(W1a.reshape(c * h, n1), data.XaT, out=pre.view(c * h, N))  # W1 x + b1
    A = pre.clamp_min_(0)
    torch.bmm(W2, A, out=Z).add_(b2[:, :, None])  # logits (bmm + add_: faster than baddbmm)
    torch.sigmoid(Z, out=G).sub_(data.YT).mul_(data.wo)  # G = dL/dZ
    torch.bmm(W2.transpose(1, 2), G, out=dA)  # dL/dA
    if activation_penalty:
        dA.add_(data.w, alpha=activation_penalty / h)
    # dL/dpre = dL/dA where pre > 0, else 0 (written over dA)
    dpre = torch.ops.aten.threshold_backward.grad_input(dA, A, 0.0, grad_input=dA)
    torch.mm(dpre.view(c * h, N), data.Xa, out=gW1a.view(c * h, n1))  # [dW1 | db1]
    torch.bmm(G, A.transpose(1, 2), out=gW2)
    torch.sum(G, 2, out=gb2)
    if not with_metrics:
        return None
    YT, wo = data.YT, data.wo
    loss = ((F.softplus(Z) - Z * YT) * wo).sum((1, 2))  # binary cross-entropy with logits
    if activation_penalty:
        loss += activation_penalty / h * (A * data.w).sum((1, 2))
    correct = (((Z > 0) == YT.bool()).float() * wo).sum((1, 2))
    return loss, correct


class _Adam:
    """Adam (Kingma and Ba), elementwise, PyTorch's defaults (betas 0.9/0.999, eps 1e-8).

    The moments live in flat buffers (all parameters concatenated), so a step is a handful of
    whole-ensemble operations instead of a handful per parameter tensor."""

    def __init__(self, lr: float, params: Params) -> None:
        self.lr, self.t = lr, 0
        total = sum(p.numel() for p in params.values())
        p0 = next(iter(params.values()))
        self.m = torch.zeros(total, device=p0.device, dtype=p0.dtype)
        self.v = torch.zeros_like(self.m)

    def step(self, params: Params, grads: Params) -> None:
        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        g = torch.cat([grads[k].reshape(-1) for k in params])
        self.m.mul_(b1).add_(g, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(g, g, value=1 - b2)
        update = torch.div(self.m, (self.v / (1 - b2**self.t)).sqrt_().add_(eps))
        parts = update.split([p.numel() for p in params.values()])
        updates = [u.view_as(p) for u, p in zip(parts, params.values(), strict=True)]
        torch._foreach_add_(list(params.values()), updates, alpha=-self.lr / (1 - b1**self.t))


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
    task: Task,
    model: ModelConfig,
    training: TrainConfig,
    seeds: Sequence[int],
    masks: Masks | None,
    init: Params | None,
    device: str,
) -> tuple[tuple[int, ...], torch.device]:
    """The door of ``train``: every argument checked before any work; returns the seeds as a
    tuple of ints and the device."""
    check_task("task", task)
    check_config("model", model, ModelConfig)
    check_config("training", training, TrainConfig)
    # With an ``init``, seeds only label the lanes (retraining repeats them, once per mask);
    # without, a repeated seed would train the same network twice.
    seeds = check_seeds("seeds", seeds, distinct=init is None)
    dev = torch.device(check_device("device", device))
    S, h = len(seeds), model.width
    if init is not None:
        check_params("init", init, task, lanes=S, width=h)
    check_masks("masks", masks, {"W1": (S, h, task.n_vars), "W2": (S, task.n_outputs, h)})
    return seeds, dev
