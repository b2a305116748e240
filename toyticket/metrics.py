"""How well an ensemble computes its task, over the whole (input-weighted) truth table."""

from __future__ import annotations

import torch

from toyticket.model import ACTIVATIONS, Masks, Params, forward
from toyticket.tasks import Task
from toyticket.validation import check_choice, check_ensemble, check_float, check_int, check_task


def evaluate(
    params: Params, task: Task, masks: Masks | None = None, activation: str = "relu"
) -> dict[str, torch.Tensor]:
    """Per-lane scores of the thresholded outputs (logit > 0), all over the truth table:

    - ``bit_accuracy`` [S]: input-weighted fraction of correct output bits;
    - ``output_accuracy`` [S, outputs]: the same per output;
    - ``exact_outputs`` [S]: fraction of outputs correct on every input;
    - ``balanced_accuracy`` [S]: mean over outputs of (true-positive rate + true-negative
      rate) / 2, input-weighted; 0.5 for any constant predictor.
    """
    check_ensemble(params, task, masks)
    check_choice("activation", activation, ACTIVATIONS)
    X, Y = task.truth_table()
    w = task.input_weights()[None, :, None]
    predicted = forward(params, X, masks, activation) > 0  # [S, N, out]
    target = Y.bool()[None]
    right = (predicted == target).float()
    output_accuracy = (right * w).sum(1)
    positive, negative = (target * w).sum(1), (~target * w).sum(1)
    tpr = (right * target * w).sum(1) / positive.clamp_min(1e-12)
    tnr = (right * ~target * w).sum(1) / negative.clamp_min(1e-12)
    scores = {
        "bit_accuracy": output_accuracy.mean(-1),
        "output_accuracy": output_accuracy,
        "exact_outputs": (right.amin(1) == 1).float().mean(-1),
        "balanced_accuracy": ((tpr + tnr) / 2).mean(-1),
    }
    return {name: value.float() for name, value in scores.items()}


def trivial_accuracy(task: Task) -> float:
    """Bit accuracy of the best constant predictor (each output its majority value)."""
    check_task("task", task)
    _, Y = task.truth_table()
    positive_rate = (Y * task.input_weights()[:, None]).sum(0)
    return float(torch.maximum(positive_rate, 1 - positive_rate).mean())


def linearization_test(
    params: Params, task: Task, masks: Masks | None = None
) -> dict[str, torch.Tensor]:
    """Re-evaluate trained networks with relu replaced by the identity. Where accuracy barely
    moves, the hidden layer computes nothing a linear map could not: code statistics there say
    nothing about feature channels. Returns relu and identity scores side by side [S]."""
    check_ensemble(params, task, masks)
    relu = evaluate(params, task, masks, "relu")
    identity = evaluate(params, task, masks, "identity")
    return {
        "bit_accuracy": relu["bit_accuracy"],
        "linear_bit_accuracy": identity["bit_accuracy"],
        "exact_outputs": relu["exact_outputs"],
        "linear_exact_outputs": identity["exact_outputs"],
    }


def weight_motion(
    initial: torch.Tensor, final: torch.Tensor, mask: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """How far training moved a weight matrix (rich or lazy training), per lane: ``initial``
    and ``final`` [S, ...] (W1 [S, h, n], say), ``mask`` (0/1, same shape) applied to both.

    - ``relative_change`` [S]: ||W_T - W_0|| / ||W_0|| (Frobenius norms over all but the lane
      axis; NaN where W_0 is all zero);
    - ``flipped_signs`` [S]: the fraction of weights nonzero at both ends whose sign differs
      (NaN where none is)."""
    W0 = torch.as_tensor(initial, dtype=torch.float64)
    WT = torch.as_tensor(final, dtype=torch.float64)
    if W0.shape != WT.shape or W0.ndim < 2:
        raise ValueError(
            f"final must have the shape of initial, [S, ...] with a lane axis: "
            f"{tuple(WT.shape)} vs {tuple(W0.shape)}"
        )
    if mask is not None:
        if tuple(mask.shape) != tuple(W0.shape):
            raise ValueError(f"mask must have shape {tuple(W0.shape)}, got {tuple(mask.shape)}")
        W0, WT = W0 * mask, WT * mask
    W0, WT = W0.flatten(1), WT.flatten(1)
    both = (W0 != 0) & (WT != 0)
    flipped = (both & (W0.sign() != WT.sign())).sum(1) / both.sum(1)  # 0/0 -> NaN on purpose
    base = W0.norm(dim=1)
    change = (WT - W0).norm(dim=1) / base.where(base > 0, torch.full_like(base, float("nan")))
    return {
        "relative_change": change.float(),
        "flipped_signs": flipped.float(),
    }


def logistic_baseline(task: Task, ridge: float = 1e-8, steps: int = 200) -> dict[str, torch.Tensor]:
    """The refit linear baseline: one logistic regression per output on the whole truth table
    (input-weighted binary cross-entropy, the training loss of the networks, plus
    ``ridge`` * ||w||^2 on the weights, not the intercept, so that a linearly separable output
    has a finite optimum), fit in float64 by full-batch Newton with backtracking line search
    until the gradient vanishes or ``steps`` iterations. Stronger than relu -> identity: the
    best linear threshold of the inputs rather than the trained network's linear part.

    Returns ``bit_accuracy`` and ``exact_outputs`` (scalars, as in ``evaluate``),
    ``output_accuracy`` [outputs], the fit ``weights`` [outputs, n] and ``bias`` [outputs],
    and ``loss`` [outputs] (the fitted objective)."""
    check_float("ridge", ridge, 0.0, 1.0, low_open=True)
    check_int("steps", steps, 1, 10_000)
    X, Y = task.truth_table()
    X, Y = torch.cat([X, torch.ones(X.shape[0], 1)], 1).double(), Y.double()
    w = task.input_weights()
    penalty = torch.ones(X.shape[1], dtype=torch.float64)
    penalty[-1] = 0.0  # no ridge on the intercept
    thetas, losses = [], []
    for j in range(Y.shape[1]):
        theta, loss = _newton_logistic(X, Y[:, j], w, ridge * penalty, steps)
        thetas.append(theta)
        losses.append(loss)
    theta = torch.stack(thetas)  # [outputs, n + 1]
    predicted = (X @ theta.T) > 0
    right = (predicted == Y.bool()).double()
    output_accuracy = (right * w[:, None]).sum(0)
    return {
        "bit_accuracy": output_accuracy.mean().float(),
        "exact_outputs": (right.amin(0) == 1).double().mean().float(),
        "output_accuracy": output_accuracy.float(),
        "weights": theta[:, :-1],
        "bias": theta[:, -1],
        "loss": torch.tensor(losses, dtype=torch.float64),
    }


def _newton_logistic(
    X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, ridge: torch.Tensor, steps: int
) -> tuple[torch.Tensor, float]:
    """Minimize sum_i w_i BCE(X_i theta, y_i) + sum_j ridge_j theta_j^2 (float64)."""

    def objective(theta: torch.Tensor) -> torch.Tensor:
        z = X @ theta
        return (w * (torch.nn.functional.softplus(z) - y * z)).sum() + (ridge * theta**2).sum()

    theta = torch.zeros(X.shape[1], dtype=torch.float64)
    value = objective(theta)
    for _ in range(steps):
        prob = torch.sigmoid(X @ theta)
        grad = X.T @ (w * (prob - y)) + 2 * ridge * theta
        if grad.abs().max() < 1e-13:
            break
        hess = (X.T * (w * prob * (1 - prob))) @ X + torch.diag(2 * ridge)
        direction = torch.linalg.solve(hess, grad)
        step = 1.0
        while step > 1e-10:  # backtracking (Armijo)
            candidate = theta - step * direction
            new = objective(candidate)
            if new <= value - 1e-4 * step * (grad @ direction):
                break
            step /= 2
        else:
            break  # no decrease left at float64 precision
        theta, value = candidate, new
    return theta, float(value)
