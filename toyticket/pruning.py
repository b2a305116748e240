"""Weight scores and masks: the established, weight-based ways to pick a subnetwork.

Every method returns scores shaped like the prunable weights, higher meaning keep; a mask keeps
the top-scoring weights. Definitions follow the original papers (variants stated in the book):

- ``magnitude``: |theta| of the given parameters: at the end of training for IMP and one-shot
  pruning (Frankle and Carbin 2019), at initialization for magnitude-at-init.
- ``snip``: |theta * dL/dtheta| at the given parameters (Lee et al. 2019).
- ``grasp``: theta * (H g), with g the gradient and H the Hessian of the loss on logits divided
  by a temperature T = 200; GraSP removes the largest -theta * Hg, so we keep the largest
  theta * Hg (Wang et al. 2020).
- ``synflow``: iterative and data-free (Tanaka et al. 2020): with every parameter replaced by its
  absolute value and an all-ones input, R = sum of outputs; score |theta * dR/dtheta|; the mask
  is recomputed ``iterations`` times along an exponential schedule down to the target sparsity.
- ``random``: uniform scores, seeded per lane.

The loss for data-dependent scores is the training loss (input-weighted binary cross-entropy
over the whole truth table).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from toyticket.model import Masks, Params, apply_masks, forward
from toyticket.tasks import Task
from toyticket.validation import (
    PRUNABLE,
    check_choice,
    check_ensemble,
    check_float,
    check_int,
    check_masks,
    check_seeds,
    check_tensor,
    show,
    wrong_type,
)

SCORING_METHODS = ("magnitude", "snip", "grasp", "synflow", "random")
SCOPES = ("layer", "global")


def score_weights(
    method: str,
    params: Params,
    task: Task,
    *,
    names: Sequence[str] = PRUNABLE,
    masks: Masks | None = None,
    seeds: Sequence[int] | None = None,
    temperature: float = 200.0,
    sparsity: float | None = None,
    iterations: int = 100,
    scope: str = "layer",
) -> dict[str, torch.Tensor]:
    """Scores (higher = keep) for the prunable tensors ``names`` of an ensemble [S, ...].

    ``masks``: weights already pruned (their scores are -inf, so they stay pruned).
    ``seeds``: per-lane seeds of ``random`` (default: the lane index).
    ``temperature``: GraSP's logit temperature. ``sparsity``, ``iterations``, ``scope``:
    SynFlow's target and schedule (required for ``synflow``; its scores then select exactly its
    final mask through ``mask_from_scores`` at the same sparsity and scope)."""
    check_choice("method", method, SCORING_METHODS)
    names = _check_names(names)
    check_ensemble(params, task, masks)
    S = params["W1"].shape[0]
    if method == "magnitude":
        scores = {n: params[n].abs() for n in names}
    elif method == "random":
        # lanes are labelled by their seeds: a repeated seed is a repeated random mask
        seeds = tuple(range(S)) if seeds is None else check_seeds("seeds", seeds, distinct=False)
        if len(seeds) != S:
            raise ValueError(
                f"seeds={show(list(seeds))} has {len(seeds)} seeds: allowed one per lane ({S})"
            )
        scores = {n: _uniform(params[n].shape[1:], seeds, salt=PRUNABLE.index(n)) for n in names}
    elif method == "snip":
        scores = _snip(params, task, names, masks)
    elif method == "grasp":
        check_float("temperature", temperature, 0.0, low_open=True)
        scores = _grasp(params, task, names, masks, temperature)
    else:
        if sparsity is None:
            raise ValueError(
                "sparsity=None is not allowed for method='synflow': allowed a target sparsity "
                "in [0.0, 1.0)"
            )
        check_int("iterations", iterations, 1, 10_000)
        return _synflow(params, names, masks, sparsity, iterations, scope)
    return _exclude_pruned(scores, masks)


def mask_from_scores(
    scores: dict[str, torch.Tensor],
    sparsity: float,
    scope: str = "layer",
    previous: Masks | None = None,
) -> dict[str, torch.Tensor]:
    """Boolean masks keeping the top-scoring entries of each lane.

    Exactly ``round(sparsity * size)`` entries are removed per lane: in each tensor
    (``scope="layer"``) or over all given tensors together (``"global"``). Ties are broken by
    position (earlier entries kept first), so masks are deterministic. Entries pruned in
    ``previous`` stay pruned (an error if the sparsity would bring them back)."""
    check_float("sparsity", sparsity, 0.0, 1.0, high_open=True)
    check_choice("scope", scope, SCOPES)
    _check_scores(scores)
    previous = check_masks("previous", previous, {n: s.shape for n, s in scores.items()})
    if previous:
        scores = _exclude_pruned(scores, previous)
    groups = [[name] for name in scores] if scope == "layer" else [list(scores)]
    masks = {}
    for group in groups:
        masks.update(_top_k(scores, group, sparsity))
    if previous:
        for name, m in masks.items():
            if name in previous and (m & ~previous[name].bool()).any():
                raise ValueError(
                    f"sparsity={sparsity} is below the sparsity of the previous mask of {name!r}: "
                    "pruned weights cannot come back"
                )
    return masks


def shuffle_rows(mask_W1: torch.Tensor, seeds: Sequence[int], salt: int = 0) -> torch.Tensor:
    """The rows of a first-layer mask [S, h, n] permuted at random, lane by lane (seeded):
    each row's pattern of kept inputs survives, on another row, so every structural statistic
    of the mask (fan-in per row, fan-out per input, which variables share a row) is kept while
    its link to the initial weights of particular rows is cut."""
    mask = _check_lane_mask(mask_W1, seeds)
    order = _uniform(mask.shape[1:2], seeds, salt).argsort(-1)  # [S, h]
    return torch.take_along_dim(mask, order[:, :, None], 1)


def shuffle_within(
    mask_W1: torch.Tensor, axis: str, seeds: Sequence[int], salt: int = 0
) -> torch.Tensor:
    """The sanity check of a mask (Frankle et al. 2021; Su et al. 2020), adapted to one pruned
    layer, where a layer-wise shuffle would be just a random mask: the kept entries of every
    row (``axis="rows"``: each row keeps its fan-in) or of every column (``"columns"``: each
    input keeps its fan-out) moved to random positions of that row or column, seeded per
    lane. A method that uses per-weight information beats its own shuffles."""
    check_choice("axis", axis, ("rows", "columns"))
    mask = _check_lane_mask(mask_W1, seeds)
    view = mask if axis == "rows" else mask.transpose(1, 2)
    order = _uniform(view.shape[1:], seeds, salt).argsort(-1)
    shuffled = torch.take_along_dim(view, order, -1)
    return shuffled if axis == "rows" else shuffled.transpose(1, 2).contiguous()


def match_degrees(mask_W1: torch.Tensor, seeds: Sequence[int], salt: int = 0) -> torch.Tensor:
    """A random first-layer mask [S, h, n] with the same number of kept weights on every row as
    ``mask_W1`` (its fan-in), the kept inputs of each row drawn uniformly (seeded per lane)."""
    mask = _check_lane_mask(mask_W1, seeds)
    rank = _uniform(mask.shape[1:], seeds, salt).argsort(-1).argsort(-1)  # random rank per row
    return rank < mask.sum(-1, keepdim=True)


def _check_lane_mask(mask_W1: object, seeds: Sequence[int]) -> torch.Tensor:
    check_tensor("mask_W1", mask_W1)
    if mask_W1.ndim != 3:
        raise ValueError(
            f"mask_W1 has shape {tuple(mask_W1.shape)}: allowed [lanes, width, n_vars]"
        )
    seeds = check_seeds("seeds", seeds)
    if len(seeds) != mask_W1.shape[0]:
        raise ValueError(
            f"seeds has {len(seeds)} entries: allowed one per lane of mask_W1 ({mask_W1.shape[0]})"
        )
    return mask_W1.bool()


def _top_k(scores: dict[str, torch.Tensor], group: list[str], sparsity: float) -> Masks:
    S = scores[group[0]].shape[0]
    flat = torch.cat([scores[n].reshape(S, -1).double() for n in group], dim=1)
    size = flat.shape[1]
    n_keep = size - round(sparsity * size)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep.scatter_(1, order[:, :n_keep], True)
    parts = torch.split(keep, [scores[n][0].numel() for n in group], dim=1)
    return {n: part.reshape(scores[n].shape) for n, part in zip(group, parts, strict=True)}


# ---------------------------------------------------------------- the methods


def _loss(params: Params, task: Task, temperature: float = 1.0) -> torch.Tensor:
    """The training loss summed over lanes (lanes do not interact: block-diagonal)."""
    X, Y = task.truth_table()
    w = task.input_weights().to(params["W1"].dtype)
    logits = forward(params, X.to(w.dtype)) / temperature
    bce = F.binary_cross_entropy_with_logits(
        logits, Y.to(w.dtype).expand_as(logits), reduction="none"
    )
    return (bce * w[None, :, None]).sum() / task.n_outputs


def _leaves(
    params: Params, names: Sequence[str], masks: Masks | None
) -> tuple[Params, Callable[[], Params]]:
    """Fresh leaves for the scored weights, and a function building the masked network from
    them: pruned entries (in any tensor) are zero and get zero gradient, as in training."""
    leaves = {n: params[n].detach().clone().requires_grad_(True) for n in names}
    fixed = {n: p.detach() for n, p in params.items()}
    return leaves, lambda: apply_masks(fixed | leaves, masks)


def _snip(params: Params, task: Task, names: Sequence[str], masks: Masks | None) -> Params:
    leaves, network = _leaves(params, names, masks)
    p = network()
    grads = torch.autograd.grad(_loss(p, task), list(leaves.values()))
    return {n: (p[n] * g).abs().detach() for n, g in zip(names, grads, strict=True)}


def _grasp(
    params: Params, task: Task, names: Sequence[str], masks: Masks | None, temperature: float
) -> Params:
    leaves, network = _leaves(params, names, masks)
    weights = list(leaves.values())
    g = [t.detach() for t in torch.autograd.grad(_loss(network(), task, temperature), weights)]
    p = network()
    gg = torch.autograd.grad(_loss(p, task, temperature), weights, create_graph=True)
    Hg = torch.autograd.grad(sum((a * b).sum() for a, b in zip(g, gg, strict=True)), weights)
    return {n: (p[n] * h).detach() for n, h in zip(names, Hg, strict=True)}


def _synflow(
    params: Params,
    names: Sequence[str],
    masks: Masks | None,
    sparsity: float,
    iterations: int,
    scope: str,
) -> Params:
    check_float("sparsity", sparsity, 0.0, 1.0, high_open=True)
    check_choice("scope", scope, SCOPES)
    masks = dict(masks or {})
    # the schedule never asks for less sparsity than the given masks already have (any lane)
    already = max(
        (1 - masks[n].flatten(1).float().mean(1).min().item() for n in names if n in masks),
        default=0.0,
    )
    scores: Params = {}
    for e in range(1, iterations + 1):
        scores = _exclude_pruned(_synflow_scores(params, names, masks), masks)
        target = 1 - (1 - sparsity) ** (e / iterations)  # density shrinks exponentially
        previous = {n: masks[n] for n in names if n in masks}
        masks |= mask_from_scores(scores, max(target, already), scope, previous=previous)
    return scores


def _synflow_scores(params: Params, names: Sequence[str], masks: Masks) -> Params:
    """|theta * dR/dtheta| of the all-ones input through |parameters| (biases included) of the
    masked network."""
    absolute = {n: p.abs() for n, p in params.items()}
    leaves, network = _leaves(absolute, names, masks)
    p = network()
    ones = torch.ones(1, params["W1"].shape[-1], dtype=params["W1"].dtype)
    grads = torch.autograd.grad(forward(p, ones).sum(), list(leaves.values()))
    return {n: (p[n] * g).detach() for n, g in zip(names, grads, strict=True)}


def _uniform(shape: torch.Size, seeds: Sequence[int], salt: int) -> torch.Tensor:
    lanes = []
    for seed in seeds:
        g = torch.Generator().manual_seed(check_int("seed", seed, 0) * 1_000_003 + salt)
        lanes.append(torch.rand(shape, generator=g))
    return torch.stack(lanes)


def _exclude_pruned(scores: Params, masks: Masks | dict | None) -> Params:
    if not masks:
        return scores
    return {
        n: s.masked_fill(~masks[n].bool(), float("-inf")) if masks.get(n) is not None else s
        for n, s in scores.items()
    }


def _check_names(names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(names) if not isinstance(names, str) else (names,)
    if not names or any(n not in PRUNABLE for n in names):
        raise ValueError(
            f"names={show(names)} is not allowed: allowed a non-empty subset of {PRUNABLE} "
            "(biases are never pruned)"
        )
    return names


def _check_scores(scores: object) -> None:
    """Scores: a non-empty dict of prunable weight names to tensors [S, ...], one S for all."""
    if not isinstance(scores, Mapping):
        raise wrong_type("scores", scores, "a dict of score tensors by weight name")
    if not scores:
        raise ValueError("scores={} is empty: allowed at least one tensor of scores")
    for name, value in scores.items():
        if name not in PRUNABLE:
            raise ValueError(f"scores has the key {show(name)}: allowed keys from {PRUNABLE}")
        if check_tensor(f"scores[{name!r}]", value).ndim < 2:
            raise ValueError(
                f"scores[{name!r}] has shape {tuple(value.shape)}: allowed [lanes, ...]"
            )
    lanes = sorted({s.shape[0] for s in scores.values()})
    if len(lanes) != 1:
        raise ValueError(
            f"scores have lane counts {lanes}: allowed one lane count shared by every tensor"
        )
