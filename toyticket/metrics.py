"""How well an ensemble computes its task, over the whole (input-weighted) truth table."""

from __future__ import annotations

import torch

from toyticket.model import ACTIVATIONS, Masks, Params, forward
from toyticket.tasks import Task
from toyticket.validation import check_choice, check_ensemble, check_task


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
