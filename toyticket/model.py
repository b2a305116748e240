"""One-hidden-layer ReLU networks, many at once.

An ensemble of ``S`` networks is a dict of stacked tensors (``Params``) with a leading lane axis:
``W1`` [S, h, n] (row r of W1 is hidden neuron r), ``b1`` [S, h], ``W2`` [S, outputs, h],
``b2`` [S, outputs]. The network of lane s computes ``y = W2 relu(W1 x + b1) + b2`` (logits).
Masks are dicts of 0/1 tensors shaped like the weights they mask (missing keys: unmasked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from toyticket.validation import (
    PARAM_NAMES,
    check_choice,
    check_config,
    check_float,
    check_instance,
    check_int,
    check_lanes,
    check_masks,
    check_params,
    check_seeds,
    check_tensor,
    show,
    weight_shapes,
)

Params = dict[str, torch.Tensor]
Masks = dict[str, torch.Tensor]
ACTIVATIONS = ("relu", "identity")


@dataclass(frozen=True)
class ModelConfig:
    """The architecture: ``width`` hidden neurons (rows). ``init_scale`` multiplies the
    default PyTorch ``nn.Linear`` bound 1/sqrt(fan_in) of the uniform initialization."""

    width: int = 8
    init_scale: float = 1.0

    def __post_init__(self) -> None:
        check_int("width", self.width, 1, 4096)
        check_float("init_scale", self.init_scale, 0.0, 100.0, low_open=True)


def init_params(n_inputs: int, n_outputs: int, model: ModelConfig, seeds: Sequence[int]) -> Params:
    """Seeded initialization, one lane per seed. Lane s depends only on ``seeds[s]``, so a
    network is the same whatever else is in the ensemble. Same scheme as ``nn.Linear``:
    every weight and bias uniform in +-init_scale/sqrt(fan_in)."""
    check_int("n_inputs", n_inputs, 1)
    check_int("n_outputs", n_outputs, 1)
    check_config("model", model, ModelConfig)
    seeds = check_seeds("seeds", seeds)
    h = model.width
    shapes = {"W1": (h, n_inputs), "b1": (h,), "W2": (n_outputs, h), "b2": (n_outputs,)}
    fan_in = {"W1": n_inputs, "b1": n_inputs, "W2": h, "b2": h}
    lanes: dict[str, list[torch.Tensor]] = {name: [] for name in PARAM_NAMES}
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        for name in PARAM_NAMES:
            bound = model.init_scale / fan_in[name] ** 0.5
            lanes[name].append((torch.rand(shapes[name], generator=g) * 2 - 1) * bound)
    return {name: torch.stack(tensors) for name, tensors in lanes.items()}


def apply_masks(params: Params, masks: Masks | None) -> Params:
    """The effective parameters: masked weights set to zero (a new dict; inputs untouched).

    Checks the masks' keys and shapes only: training calls this at every step, and the entry
    points (``train``, ``evaluate``, the reader) check their values."""
    check_instance("params", params, dict, " of tensors W1, b1, W2, b2")
    masks = check_masks("masks", masks, weight_shapes(params), values=False)
    if not masks:
        return dict(params)
    return {name: p * masks[name] if name in masks else p for name, p in params.items()}


def hidden(
    params: Params, X: torch.Tensor, masks: Masks | None = None, activation: str = "relu"
) -> torch.Tensor:
    """Hidden activations [S, N, h] on inputs X [N, n]."""
    check_choice("activation", activation, ACTIVATIONS)
    params = check_params("params", params)
    check_tensor("X", X, 2)
    if X.shape[1] != params["W1"].shape[2]:
        raise ValueError(
            f"X has shape {tuple(X.shape)}: allowed [N, {params['W1'].shape[2]}] (one column "
            "per input of W1)"
        )
    check_masks("masks", masks, weight_shapes(params))
    p = apply_masks(params, masks)
    pre = torch.matmul(X, p["W1"].transpose(1, 2)) + p["b1"][:, None, :]
    return pre.clamp_min(0) if activation == "relu" else pre


def readout(params: Params, A: torch.Tensor, masks: Masks | None = None) -> torch.Tensor:
    """Logits [S, N, outputs] from hidden activations A [S, N, h]."""
    p = apply_masks(params, masks)
    return torch.matmul(A, p["W2"].transpose(1, 2)) + p["b2"][:, None, :]


def forward(
    params: Params, X: torch.Tensor, masks: Masks | None = None, activation: str = "relu"
) -> torch.Tensor:
    """Logits [S, N, outputs] of every lane on inputs X [N, n]."""
    return readout(params, hidden(params, X, masks, activation), masks)


def n_lanes(params: Params) -> int:
    """The ensemble size S."""
    return params["W1"].shape[0]


def select_lanes(params: Params, lanes: Sequence[int] | slice) -> Params:
    """The sub-ensemble of the given lanes."""
    params = check_params("params", params)
    lanes = check_lanes("lanes", lanes, params["W1"].shape[0])
    index = lanes if isinstance(lanes, slice) else torch.as_tensor(lanes, dtype=torch.long)
    return {name: p[index] for name, p in params.items()}


def concat_lanes(ensembles: Sequence[Params]) -> Params:
    """Stack ensembles along the lane axis."""
    if isinstance(ensembles, dict) or not isinstance(ensembles, Sequence) or not ensembles:
        raise TypeError(
            f"ensembles={show(ensembles)} is not a non-empty list: allowed a list of ensembles "
            "(dicts of tensors)"
        )
    first = check_params("ensembles[0]", ensembles[0])
    _, h, n = first["W1"].shape
    for i, ensemble in enumerate(ensembles[1:], 1):  # the same networks but for the lanes
        check_params(f"ensembles[{i}]", ensemble, width=h, n_vars=n, n_outputs=first["W2"].shape[1])
    return {name: torch.cat([e[name] for e in ensembles]) for name in ensembles[0]}
