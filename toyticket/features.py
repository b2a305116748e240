"""Reading networks in feature space.

A *code location* is a pair (row r, clause c). Its aligned weights are the first-layer weights
of row r on the clause's variables, multiplied by the clause's polarities; the location is a
*code* of c when all k aligned weights are positive. Code distance counts the literals that are
not yet aligned: a combinatorial (Hamming) distance in sign space, 0 to k.

Static reading (signs only): ``code_distance``, ``aligned``, ``proximal``, ``crowding``
(and its exact law at initialization, ``crowding_law``), ``location_fates``. Functional
reading (activations on the truth table): ``row_activity``, ``channels`` (recall,
selectivity, ablation). The readers take ensembles with a leading lane axis [S, ...] and
return tensors indexed [S, row, clause] or [S, clause].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from toyticket.model import Masks, Params, apply_masks, forward, hidden
from toyticket.tasks import Task
from toyticket.validation import (
    check_config,
    check_ensemble,
    check_float,
    check_int,
    check_mask,
    check_params,
    check_task,
    check_tensor,
    wrong_type,
)


@dataclass(frozen=True)
class ReaderConfig:
    """The thresholds of the feature-space reader, fixed before any result is looked at.

    - ``tau``: aligned weights of magnitude <= tau count as not aligned (0: exact signs);
    - ``delta``: a location is proximal when its code distance is <= delta;
    - ``min_recall``: a row serves a clause when it fires on at least this fraction of the
      inputs that satisfy it;
    - ``min_selectivity``: a row is selective when at least this fraction of its activation
      mass falls on inputs satisfying one of the clauses it is aligned to;
    - ``min_ablation_drop``: a channel carries its clause when silencing its rows costs at least
      this much accuracy on the inputs where the clause alone makes its output true.
    """

    tau: float = 0.0
    delta: int = 1
    min_recall: float = 0.9
    min_selectivity: float = 0.5
    min_ablation_drop: float = 0.5

    def __post_init__(self) -> None:
        check_float("tau", self.tau, 0.0)
        check_int("delta", self.delta, 0)
        check_float("min_recall", self.min_recall, 0.0, 1.0)
        check_float("min_selectivity", self.min_selectivity, 0.0, 1.0)
        check_float("min_ablation_drop", self.min_ablation_drop, 0.0, 1.0)


# ---------------------------------------------------------------- static (sign) reading


def aligned_weights(W1: torch.Tensor, task: Task) -> torch.Tensor:
    """a[..., r, c, i] = s_c[i] * W1[..., r, V_c[i]]: [..., h, m, k]."""
    _check_width("W1", W1, task)
    return W1[..., task.variables] * task.signs


def code_distance(W1: torch.Tensor, task: Task, tau: float = 0.0) -> torch.Tensor:
    """Integer [..., h, m]: how many of clause c's k literals have an aligned weight on row r
    that is not +1 in sign (|w| <= tau counts as not aligned). 0 means row r codes c."""
    check_float("tau", tau, 0.0)
    return (aligned_weights(W1, task) <= tau).sum(-1)


def readout_weight(W2: torch.Tensor, task: Task) -> torch.Tensor:
    """[..., h, m]: the weight from row r to the output that clause c feeds."""
    check_task("task", task)
    check_tensor("W2", W2)
    if W2.ndim < 2 or W2.shape[-2] != task.n_outputs:
        raise ValueError(
            f"W2 has shape {tuple(W2.shape)}: allowed [..., n_outputs={task.n_outputs}, width]"
        )
    return W2[..., task.output_of, :].transpose(-1, -2)


def aligned(
    params: Params, task: Task, tau: float = 0.0, masks: Masks | None = None
) -> torch.Tensor:
    """Bool [S, h, m]: row r holds a code of clause c (distance 0) and reads out positively
    to c's output. A static, sign-level statement; whether the code works is ``channels``."""
    check_ensemble(params, task, masks)
    p = apply_masks(params, masks)
    return (code_distance(p["W1"], task, tau) == 0) & (readout_weight(p["W2"], task) > 0)


def proximal(W1: torch.Tensor, task: Task, delta: int = 1, tau: float = 0.0) -> torch.Tensor:
    """Bool [..., h, m]: locations within code distance delta of a code."""
    check_int("delta", delta, 0)
    return code_distance(W1, task, tau) <= delta


def crowding(W1: torch.Tensor, task: Task, delta: int = 1, tau: float = 0.0) -> torch.Tensor:
    """Integer [..., h]: how many clauses are proximal to each row."""
    return proximal(W1, task, delta, tau).sum(-1)


def crowding_law(task: Task, delta: int = 1) -> torch.Tensor:
    """Float64 [m + 1]: the exact law of a row's crowding (``crowding``: how many clauses lie
    within code distance ``delta`` of it, tau = 0) when the row's n weights have independent
    signs, each positive with probability 1/2, as under any initialization that draws weights
    independently and symmetrically about 0 (no atom at 0). Entry j is P(crowding = j).

    Exact for the task's own clauses: the 2^n sign patterns of a row are enumerated, so
    clauses that share variables (whose proximities are dependent) are accounted for. Only
    when no two clauses share a variable is it Binomial(m, P(Binomial(k, 1/2) <= delta)).
    Rows are independent of each other, so this is also the law of every row of a network."""
    check_task("task", task)
    check_int("delta", delta, 0)
    n = task.n_vars
    patterns = ((torch.arange(2**n)[:, None] >> torch.arange(n)) & 1).float() * 2 - 1
    rows = crowding(patterns, task, delta)  # [2^n]: each sign pattern as one row
    return torch.bincount(rows, minlength=task.n_clauses + 1).double() / 2**n


def location_fates(
    initial: Params, final: Params, task: Task, reader: ReaderConfig = ReaderConfig()
) -> dict[str, torch.Tensor]:
    """Bool [S, h, m] masks of the fates of code locations between two checkpoints:

    - ``proximal``: within distance delta of a code at ``initial``;
    - ``final``: an aligned code at ``final``;
    - ``precursor`` (= converged): final codes that were proximal at ``initial``;
    - ``rejected``: proximal at ``initial`` but not a final code.
    """
    check_task("task", task)
    initial = check_params("initial", initial, task)
    _, h, _ = initial["W1"].shape
    check_params("final", final, task, lanes=initial["W1"].shape[0], width=h)
    check_config("reader", reader, ReaderConfig)
    near = proximal(initial["W1"], task, reader.delta, reader.tau)
    code = aligned(final, task, reader.tau)
    return {"proximal": near, "final": code, "precursor": near & code, "rejected": near & ~code}


def supported(mask_W1: torch.Tensor, task: Task) -> torch.Tensor:
    """Bool [S, h, m]: the mask keeps all k weights of row r on clause c's variables, so a code
    of c on r is possible at all in the masked network."""
    check_mask("mask_W1", mask_W1)
    _check_width("mask_W1", mask_W1, task)
    return mask_W1.bool()[..., task.variables].all(-1)


def clause_overlap(task: Task) -> dict[str, torch.Tensor]:
    """Integer [m, m] counts of shared variables between clauses: with the same polarity
    (``same``) and with opposite polarity (``opposite``, clauses that can never hold together).
    ``distance`` = k - same: how many literals of one clause the other lacks."""
    check_task("task", task)
    same_var = task.variables[:, None, :, None] == task.variables[None, :, None, :]
    same_sign = task.signs[:, None, :, None] == task.signs[None, :, None, :]
    same = (same_var & same_sign).sum((-1, -2))
    opposite = (same_var & ~same_sign).sum((-1, -2))
    return {"same": same, "opposite": opposite, "distance": task.clause_size - same}


# ---------------------------------------------------------------- functional reading


def row_activity(params: Params, task: Task, masks: Masks | None = None) -> dict[str, torch.Tensor]:
    """How rows behave on the input-weighted truth table.

    - ``firing_rate`` [S, h]: probability that the row is active (activation > 0);
    - ``recall`` [S, h, m]: probability that row r is active given that clause c holds.
    """
    check_ensemble(params, task, masks)
    X = task.inputs()
    w = task.input_weights()
    A = hidden(params, X, masks)  # [S, N, h]
    active = (A > 0).double()
    holds = task.clause_values(X).double() * w[:, None]  # [N, m], input-weighted
    firing = (active * w[None, :, None]).sum(1)
    recall = torch.einsum("snh,nm->shm", active, holds) / holds.sum(0)
    return {"firing_rate": firing.float(), "recall": recall.clamp(0, 1).float()}


def selectivity(
    params: Params, task: Task, served: torch.Tensor, masks: Masks | None = None
) -> torch.Tensor:
    """Float [S, h]: the fraction of each row's (input-weighted) activation mass that falls on
    inputs satisfying at least one clause the row serves (``served``: bool [S, h, m]).
    A row active on nearly every input scores about the base rate of its clauses; a row that
    fires only when its clauses hold scores 1. Rows that never fire or serve nothing: NaN."""
    check_ensemble(params, task, masks)
    _check_locations("served", served, params, task)
    X = task.inputs()
    w = task.input_weights()
    A = hidden(params, X, masks) * w[None, :, None]  # [S, N, h], float64
    holds = task.clause_values(X).float()  # [N, m]
    any_served = torch.einsum("nm,shm->snh", holds, served.float()) > 0  # [S, N, h]
    mass = A.sum(1)
    on_served = (A * any_served).sum(1)
    out = (on_served / mass).clamp(0, 1).float()
    mass = mass.float()
    return torch.where((mass > 0) & served.any(-1), out, torch.full_like(out, float("nan")))


def unique_witness_inputs(task: Task) -> torch.Tensor:
    """Bool [N, m]: inputs where clause c holds and no other clause of its output does, so the
    output is true because of c alone."""
    check_task("task", task)
    holds = task.clause_values()
    group_count = torch.zeros(holds.shape[0], task.n_outputs, dtype=torch.long)
    group_count.index_add_(1, task.output_of, holds.long())
    return holds & (group_count[:, task.output_of] == 1)


def ablate_rows(params: Params, rows: torch.Tensor) -> Params:
    """Silence rows (bool [S, h]): their outgoing weights are set to zero."""
    out = dict(params)
    out["W2"] = params["W2"] * (~rows)[:, None, :]
    return out


def channel_ablation(
    params: Params, task: Task, channel: torch.Tensor, masks: Masks | None = None
) -> dict[str, torch.Tensor]:
    """For each clause c, silence the rows of its channel (bool [S, h, m]) and measure, on the
    inputs where c alone makes its output true, the input-weighted accuracy of that output
    before and after: ``before`` [S, m], ``after`` [S, m]. NaN where c has no such input."""
    check_ensemble(params, task, masks)
    _check_locations("channel", channel, params, task)
    X = task.inputs()
    w = task.input_weights()
    witness = unique_witness_inputs(task).float() * w[:, None]  # [N, m]
    total = witness.sum(0)
    p = apply_masks(params, masks)
    S, _, m = channel.shape
    before_pos = forward(p, X) > 0  # [S, N, out]
    before = (before_pos[:, :, task.output_of].float() * witness).sum(1) / total
    after = torch.empty(S, m, dtype=torch.float64)
    for c in range(m):  # m is small; each ablation is one batched forward pass
        out = forward(ablate_rows(p, channel[:, :, c]), X)[:, :, task.output_of[c]] > 0
        after[:, c] = (out.float() * witness[:, c]).sum(1) / total[c]
    nan = torch.full_like(before, float("nan"))
    valid = total > 0
    before, after = torch.where(valid, before, nan), torch.where(valid, after, nan)
    return {"before": before.float(), "after": after.float()}


def channels(
    params: Params, task: Task, reader: ReaderConfig = ReaderConfig(), masks: Masks | None = None
) -> dict[str, torch.Tensor]:
    """The feature channels of every clause and whether they work.

    - ``aligned`` [S, h, m]: aligned code locations (the channel of c: its aligned rows);
    - ``serving`` [S, h, m]: aligned and recall >= min_recall (the row fires when c holds);
    - ``selectivity`` [S, h]: of each row, over the clauses it serves (NaN if none);
    - ``selective`` [S, h, m]: serving locations on a selective row;
    - ``carries`` [S, m]: silencing c's channel breaks its output on c's unique-witness inputs
      (accuracy drop >= min_ablation_drop); False for an empty channel;
    - ``shared_rows`` [S]: rows that serve two or more clauses; ``channel_size`` [S, m].
    """
    check_ensemble(params, task, masks)
    check_config("reader", reader, ReaderConfig)
    p = apply_masks(params, masks)
    code = aligned(p, task, reader.tau)
    activity = row_activity(p, task)
    serving = code & (activity["recall"] >= reader.min_recall)
    select = selectivity(p, task, serving)
    selective = serving & (select >= reader.min_selectivity)[:, :, None]
    ablation = channel_ablation(p, task, code)
    drop = ablation["before"] - ablation["after"]
    carries = code.any(1) & (drop.nan_to_num(0.0) >= reader.min_ablation_drop)
    return {
        "aligned": code,
        "serving": serving,
        "selectivity": select,
        "selective": selective,
        "carries": carries,
        "ablation_before": ablation["before"],
        "ablation_after": ablation["after"],
        "firing_rate": activity["firing_rate"],
        "recall": activity["recall"],
        "shared_rows": (serving.sum(-1) >= 2).sum(-1),
        "channel_size": code.sum(1),
    }


def _check_width(name: str, W1: torch.Tensor, task: Task) -> None:
    """``W1`` [..., h, n]: weights (or a mask) of the task's first layer."""
    check_task("task", task)
    check_tensor(name, W1)
    if W1.ndim < 2 or W1.shape[-1] != task.n_vars:
        raise ValueError(
            f"{name} has shape {tuple(W1.shape)}: allowed [..., width, n_vars={task.n_vars}] "
            "(one column per input)"
        )


def _check_locations(name: str, value: object, params: Params, task: Task) -> None:
    """A bool tensor [S, h, m] over the code locations of an ensemble."""
    S, h, _ = params["W1"].shape
    expected = (S, h, task.n_clauses)
    if not isinstance(value, torch.Tensor) or value.dtype != torch.bool:
        raise wrong_type(name, value, f"a bool tensor {expected} (lanes, width, n_clauses)")
    if tuple(value.shape) != expected:
        raise ValueError(
            f"{name} has shape {tuple(value.shape)}: allowed {expected} (lanes, width, n_clauses)"
        )
