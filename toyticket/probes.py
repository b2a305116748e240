"""Feature-space probes (claim C6): masks of W1 built from code locations instead of weights.

A probe ranks code locations (row r, clause c) and keeps their k weights, location by
location, until the budget of a sparsity is spent (``locations_mask``): every clause's best
location first, then every clause's second best, and so on, so that a small budget covers the
clauses before it doubles any. The probes differ only in how they rank:

- ``distance_probe`` (theta_0 and the task's clauses): near-code locations first (code
  distance d0), then a positive readout to the clause's output, then rows with fewer
  *conflicts* (other clauses near the same row that feed another output or need a variable with
  the opposite sign; sharing a row within one OR output is harmless);
- ``motion_probe`` (theta_0, an early theta_t and the clauses): locations nearest a code at t,
  then those whose aligned weights moved most toward the code between 0 and t;
- ``random_row_probe`` (the clauses, nothing else): each clause's rows in a random order, so
  the mask has the probes' structure without any proximity;
- ``oracle_probe`` (the dense network's final codes): the final code locations, strongest
  code first, then the rest by final distance: a feature-preserving mask, an upper bound;
- blind variants never read the task's clauses: ``clauses_from_weights`` reads candidate
  clauses off a network's weights (a dense run's final weights, or the early motion
  theta_t - theta_0), and the probes take clauses as ``Clauses`` (per lane), not a ``Task``.

Masks are exactly as sparse as the weight-based methods' (``toyticket.pruning``: the same
number of weights kept per lane) and retrain through the same machinery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from toyticket.model import Masks, Params
from toyticket.pruning import _uniform
from toyticket.tasks import Task
from toyticket.validation import check_float, check_int, check_seeds, check_task, check_tensor


@dataclass(frozen=True)
class Clauses:
    """Clauses as a probe sees them, per lane: ``variables`` and ``signs`` [S, m, k] (long,
    +-1 floats) and the output each feeds, ``outputs`` [S, m] (long; -1 where unknown). From
    the task (``of_task``) or read off weights (``clauses_from_weights``)."""

    variables: torch.Tensor
    signs: torch.Tensor
    outputs: torch.Tensor

    def __post_init__(self) -> None:
        for name in ("variables", "signs"):
            check_tensor(name, getattr(self, name), 3)
        check_tensor("outputs", self.outputs, 2)
        if (
            self.signs.shape != self.variables.shape
            or self.outputs.shape != self.variables.shape[:2]
        ):
            raise ValueError(
                f"variables {tuple(self.variables.shape)}, signs {tuple(self.signs.shape)} and "
                f"outputs {tuple(self.outputs.shape)}: allowed [S, m, k], [S, m, k] and [S, m]"
            )

    @classmethod
    def of_task(cls, task: Task, lanes: int) -> Clauses:
        """The task's own clauses, the same in every lane."""
        check_task("task", task)
        check_int("lanes", lanes, 1)
        return cls(
            variables=task.variables.expand(lanes, -1, -1),
            signs=task.signs.float().expand(lanes, -1, -1),
            outputs=task.output_of.expand(lanes, -1),
        )

    @property
    def lanes(self) -> int:
        return self.variables.shape[0]

    def aligned(self, W1: torch.Tensor) -> torch.Tensor:
        """[S, h, m, k]: s_c[i] * W1[r, V_c[i]] lane by lane."""
        S, h, _ = W1.shape
        m, k = self.variables.shape[1:]
        index = self.variables.reshape(S, 1, m * k).expand(S, h, m * k)
        return torch.gather(W1, 2, index).reshape(S, h, m, k) * self.signs[:, None]

    def distance(self, W1: torch.Tensor) -> torch.Tensor:
        """Code distance [S, h, m] (literals not aligned in sign)."""
        return (self.aligned(W1) <= 0).sum(-1)

    def conflicts(self, W1: torch.Tensor, delta: int = 1) -> torch.Tensor:
        """[S, h, m]: how many other clauses within ``delta`` of a code on the same row feed
        another output or hold one of c's variables with the opposite sign."""
        near = self.distance(W1) <= delta  # [S, h, m]
        same_var = self.variables[:, :, None, :, None] == self.variables[:, None, :, None, :]
        opposite = same_var & (self.signs[:, :, None, :, None] != self.signs[:, None, :, None, :])
        clash = opposite.flatten(-2).any(-1)  # [S, m, m]
        other_output = self.outputs[:, :, None] != self.outputs[:, None, :]
        bad = (clash | other_output) & ~torch.eye(clash.shape[1], dtype=torch.bool)
        return torch.einsum("shd,smd->shm", near.float(), bad.float()).long()


def kept_count(size: int, sparsity: float) -> int:
    """How many of ``size`` weights a mask at ``sparsity`` keeps (as ``mask_from_scores``)."""
    check_float("sparsity", sparsity, 0.0, 1.0, high_open=True)
    return size - round(sparsity * size)


def locations_mask(
    priority: torch.Tensor, clauses: Clauses, n_vars: int, sparsity: float
) -> torch.Tensor:
    """Bool [S, h, n]: the weights of the best-ranked locations (``priority`` [S, h, m], lower
    first; +inf never), round-robin over clauses (each clause's best, then each clause's second
    best, ...; ties by priority, then clause, then row), until exactly the budget of
    ``sparsity`` is kept; the last location may be cut short, and a budget left over when no
    location remains goes to the first unkept weights in position order."""
    check_tensor("priority", priority, 3)
    S, h, m = priority.shape
    if clauses.lanes != S or clauses.variables.shape[1] != m:
        raise ValueError(
            f"priority has shape {tuple(priority.shape)}: allowed [S, h, m] with S = "
            f"{clauses.lanes} lanes and m = {clauses.variables.shape[1]} clauses (the clauses')"
        )
    budget = kept_count(h * n_vars, sparsity)
    # each location's rank among its clause's rows: sort by (priority, row) within a clause
    order = priority.argsort(dim=1, stable=True)  # [S, h, m]
    within = torch.empty_like(order)
    within.scatter_(1, order, torch.arange(h).expand(S, m, h).transpose(1, 2).contiguous())
    mask = torch.zeros(S, h, n_vars, dtype=torch.bool)
    for s in range(S):
        p = priority[s].double()
        keys = sorted(
            (int(within[s, r, c]), float(p[r, c]), c, r)
            for r in range(h)
            for c in range(m)
            if p[r, c] != float("inf")
        )
        kept = 0
        for _, _, c, r in keys:
            for v in clauses.variables[s, c].tolist():
                if kept < budget and not mask[s, r, v]:
                    mask[s, r, v] = True
                    kept += 1
            if kept >= budget:
                break
        if kept < budget:  # more budget than locations: the first weights not yet kept
            free = (~mask[s]).flatten().nonzero().flatten()[: budget - kept]
            mask[s].view(-1)[free] = True
    return mask


def distance_probe(
    initial: Params,
    clauses: Clauses,
    sparsity: float,
    *,
    delta: int = 1,
    readout: bool = True,
    conflicts: bool = True,
) -> Masks:
    """Near-code locations at theta_0 first (code distance), then (``readout``) those with a
    positive initial readout to their clause's output, then (``conflicts``) rows with fewer
    conflicting near clauses. Reads theta_0 and the clauses only."""
    W1 = initial["W1"]
    d0 = clauses.distance(W1).double()
    key = d0 * 1e6
    if readout:
        key = key + 1e3 * (_readout(initial, clauses) <= 0).double()
    if conflicts:
        key = key + clauses.conflicts(W1, delta).double()
    return {"W1": locations_mask(key, clauses, W1.shape[-1], sparsity)}


def motion_probe(initial: Params, early: Params, clauses: Clauses, sparsity: float) -> Masks:
    """Locations nearest a code at the early checkpoint theta_t first, then those whose
    aligned weights moved most toward the code between theta_0 and theta_t (the mean of
    s_c[i] * (W1_t - W1_0) over the literals). Reads theta_0, theta_t and the clauses."""
    dt = clauses.distance(early["W1"]).double()
    motion = clauses.aligned(early["W1"] - initial["W1"]).mean(-1).double()
    return {"W1": locations_mask(dt * 1e6 - motion, clauses, initial["W1"].shape[-1], sparsity)}


def random_row_probe(
    clauses: Clauses, width: int, n_vars: int, sparsity: float, seeds: Sequence[int]
) -> Masks:
    """Each clause's rows in a random order (seeded per lane): the round-robin structure of the
    probes without any proximity. Reads the clauses only."""
    seeds = check_seeds("seeds", seeds)
    m = clauses.variables.shape[1]
    priority = _uniform(torch.Size((width, m)), seeds, salt=5).double()
    return {"W1": locations_mask(priority, clauses, n_vars, sparsity)}


def oracle_probe(final: Params, clauses: Clauses, sparsity: float) -> Masks:
    """The final code locations of a dense network (all k aligned weights positive, positive
    readout) first, strongest code first (largest smallest aligned weight), then the others by
    final distance: a mask that preserves the dense network's features, an upper bound."""
    aligned = clauses.aligned(final["W1"])
    d = (aligned <= 0).sum(-1).double()
    code = (d == 0) & (_readout(final, clauses) > 0)
    strength = aligned.amin(-1).double()
    key = torch.where(code, -strength, 1e6 * (1 + d) - strength)
    return {"W1": locations_mask(key, clauses, final["W1"].shape[-1], sparsity)}


def clauses_from_weights(W1: torch.Tensor, W2: torch.Tensor, k: int) -> Clauses:
    """Candidate clauses read off weights alone, never off a task: for every row r its k
    largest weights in magnitude, with their signs, as a clause, feeding the output that r
    reads out to most positively (-1 if none is positive). Used on a dense network's final
    weights (its codes) or on early motion (theta_t - theta_0). One candidate per row, so
    [S, h, k]; rows with the same candidate give duplicates, which the round-robin treats as
    separate clauses."""
    check_tensor("W1", W1, 3)
    check_tensor("W2", W2, 3)
    check_int("k", k, 1, W1.shape[-1])
    top = W1.abs().topk(k, -1, sorted=False).indices.sort(-1).values  # [S, h, k]
    signs = torch.gather(W1, 2, top).sign()
    signs = torch.where(signs == 0, 1.0, signs)
    best = W2.argmax(1)  # [S, h]
    positive = torch.gather(W2, 1, best[:, None]).squeeze(1) > 0
    return Clauses(variables=top, signs=signs, outputs=torch.where(positive, best, -1))


def _readout(params: Params, clauses: Clauses) -> torch.Tensor:
    """[S, h, m]: the weight from row r to the output clause c feeds (-inf where unknown)."""
    W2 = params["W2"]  # [S, out, h]
    index = clauses.outputs.clamp(min=0)[:, :, None].expand(-1, -1, W2.shape[-1])
    readout = torch.gather(W2, 1, index).transpose(1, 2)  # [S, h, m]
    return torch.where(clauses.outputs[:, None, :] >= 0, readout, torch.tensor(float("-inf")))
