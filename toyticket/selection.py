"""Selection under superposition (claim C3): which locations near a code at initialization
become codes, which are rejected, when that is settled, why, and whether crowding is a cause.

Definitions (fixed before any result, see book/05_selection.md):

- The population: *proximal* locations (r, c), code distance <= delta at theta_0, on rows that
  fire on some input at theta_0 (a row dead at initialization never moves and would be a
  "converged precursor" for free).
- A location's *status* at a checkpoint: it is a code (all k aligned weights positive, readout to
  c's output positive) on a row that fires on some input (``code_status``). *Converged*: proximal
  and a code at the end; *rejected*: proximal and not.
- *Settling step*: the first checkpoint from which the status never changes again.
- *Mechanism* of a rejection, the first rule that applies, in this order (``MECHANISMS``):
  ``dead`` (the row fires on no input at the end), ``taken_same`` (the row ends as a code of
  another clause of c's output), ``taken_other`` (of a clause of another output only),
  ``readout`` (the readout to c's output is <= 0 at the end), ``literal`` (the rest: a literal of
  c is not aligned at the end, on a live row that codes no other clause).
- *Crowding* (pre-registered): the number of OTHER clauses proximal to the location's row at
  theta_0 (``tt.crowding - 1``). Sensitivity measures: other clauses of other outputs, other
  clauses at distance 0, and clauses in conflict with c (sharing a variable with opposite sign).

Tools: ``trajectories`` (per checkpoint), ``settling_steps``, ``rejection_mechanism``,
``location_covariates``, ``logistic_fit`` (Newton/IRLS with model-based and cluster-robust
standard errors), two nulls on the final codes of one network (``swap_null``: checkerboard
swaps that keep each row's and each clause's number of converged locations; ``random_row_null``:
each clause's converged count placed on random proximal rows), ``auc``, and the intervention
(``crowding_edit``, ``intervention_study``) that changes a row's crowding at theta_0 while the
target location's weights and readout stay fixed, then retrains densely.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numba
import numpy as np
import torch

from toyticket.experiments import training_arguments
from toyticket.features import (
    ReaderConfig,
    aligned_weights,
    clause_overlap,
    code_distance,
    readout_weight,
    row_activity,
)
from toyticket.model import ModelConfig, Params, init_params
from toyticket.store import stored
from toyticket.tasks import Task
from toyticket.training import Run, TrainConfig, train
from toyticket.validation import (
    check_choice,
    check_config,
    check_int,
    check_params,
    check_seed,
    check_task,
    check_tensor,
    wrong_type,
)

MECHANISMS = ("dead", "taken_same", "taken_other", "readout", "literal")
CROWDING_MEASURES = ("others", "other_outputs", "others_d0", "conflicting")
EDIT_ARMS = ("crowd", "relieve", "sham")
SELECTION_CODE = (
    "toyticket.tasks",
    "toyticket.model",
    "toyticket.training",
    "toyticket.engine",
    "toyticket.features",
    __name__,
)


# ------------------------------------------------------------------ dense runs with checkpoints


@stored("selection_dense", code=SELECTION_CODE, check=training_arguments)
def dense_run(task: Task, model: ModelConfig, training: TrainConfig, seeds: Sequence[int]) -> Run:
    """Dense training of one network per seed with the checkpoints of ``training``, kept in
    the results store (the trajectories of chapter 5 are read from its checkpoints)."""
    return train(task, model, training, seeds)


# ------------------------------------------------------------------ status and trajectories


def code_status(params: Params, task: Task, reader: ReaderConfig = ReaderConfig()) -> torch.Tensor:
    """Bool [S, h, m]: (r, c) is a code of c (distance 0 and a positive readout to c's output)
    on a row that fires on at least one input (a dead row computes nothing)."""
    params = check_params("params", params, task)
    check_config("reader", reader, ReaderConfig)
    alive = row_activity(params, task)["firing_rate"] > 0
    code = code_distance(params["W1"], task, reader.tau) == 0
    return code & (readout_weight(params["W2"], task) > 0) & alive[:, :, None]


def trajectories(
    run: Run, task: Task, reader: ReaderConfig = ReaderConfig()
) -> dict[str, torch.Tensor]:
    """Every location's state at every checkpoint of ``run`` (T checkpoints, sorted):

    - ``steps`` [T]; ``distance`` [T, S, h, m] (code distance); ``margin`` [T, S, h, m] (the
      smallest aligned weight: > 0 exactly when the location is at distance 0, tau = 0);
    - ``aligned_sum`` [T, S, h, m] (the sum of the k aligned weights, whose change is motion);
    - ``readout`` [T, S, h, m]; ``firing`` [T, S, h] (the row's firing rate on the truth table);
    - ``status`` [T, S, h, m] (``code_status``)."""
    if not isinstance(run, Run):
        raise wrong_type("run", run, "a Run (what tt.train returns)")
    check_task("task", task)
    check_config("reader", reader, ReaderConfig)
    steps = sorted(run.checkpoints)
    out: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("distance", "margin", "aligned_sum", "readout", "firing", "status")
    }
    for t in steps:
        p = run.checkpoints[t]
        a = aligned_weights(p["W1"], task)
        firing = row_activity(p, task)["firing_rate"]
        readout = readout_weight(p["W2"], task)
        distance = (a <= reader.tau).sum(-1)
        out["distance"].append(distance)
        out["margin"].append(a.min(-1).values)
        out["aligned_sum"].append(a.sum(-1))
        out["readout"].append(readout)
        out["firing"].append(firing)
        out["status"].append((distance == 0) & (readout > 0) & (firing > 0)[:, :, None])
    result = {k: torch.stack(v) for k, v in out.items()}
    result["steps"] = torch.tensor(steps)
    return result


def population(run: Run, task: Task, reader: ReaderConfig = ReaderConfig()) -> dict:
    """The fates of the proximal locations of every network of ``run``: bool [S, h, m]
    ``proximal`` (distance <= delta at theta_0, on a row alive at theta_0), ``converged``
    (proximal and a code at the end, ``code_status``), ``rejected``; and ``dead_at_init``
    [S, h], the rows left out because they fire on no input at theta_0."""
    if not isinstance(run, Run):
        raise wrong_type("run", run, "a Run (what tt.train returns)")
    check_config("reader", reader, ReaderConfig)
    init = run.init
    alive0 = row_activity(init, task)["firing_rate"] > 0
    near = (code_distance(init["W1"], task, reader.tau) <= reader.delta) & alive0[:, :, None]
    final = code_status(run.final, task, reader)
    return {
        "proximal": near,
        "converged": near & final,
        "rejected": near & ~final,
        "dead_at_init": ~alive0,
    }


def settling_steps(status: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """The step of the first checkpoint from which ``status`` (bool [T, ...], checkpoints in
    order) never changes again: Long [...]. A status constant from the start settles at
    ``steps[0]``."""
    status = check_tensor("status", status)
    steps = check_tensor("steps", steps, ndim=1)
    if status.dtype != torch.bool or status.ndim < 1:
        raise wrong_type("status", status, "a bool tensor [T, ...] (checkpoints first)")
    if steps.shape[0] != status.shape[0]:
        raise ValueError(
            f"steps has {steps.shape[0]} entries: allowed one per checkpoint of status "
            f"({status.shape[0]})"
        )
    T = status.shape[0]
    differs = status != status[-1]  # [T, ...]: checkpoints whose status is not the final one
    index = torch.arange(T).view(T, *([1] * (status.ndim - 1)))
    last_differs = torch.where(differs, index, torch.full_like(index, -1)).amax(0)
    return steps[(last_differs + 1).clamp(max=T - 1)]


# ------------------------------------------------------------------ mechanisms and covariates


def rejection_mechanism(
    initial: Params, final: Params, task: Task, reader: ReaderConfig = ReaderConfig()
) -> torch.Tensor:
    """Long [S, h, m]: for every location, the index in ``MECHANISMS`` of the first rule that
    explains why it is not a final code (see the module docstring); -1 where it is a final
    code. Apply it to rejected locations (``population``)."""
    initial = check_params("initial", initial, task)
    final = check_params("final", final, task, lanes=initial["W1"].shape[0])
    check_config("reader", reader, ReaderConfig)
    status = code_status(final, task, reader)  # [S, h, m]
    alive = row_activity(final, task)["firing_rate"] > 0  # [S, h]
    same_output = task.output_of[:, None] == task.output_of[None, :]  # [m, m]
    other = ~torch.eye(task.n_clauses, dtype=torch.bool)
    s = status.float()
    taken_same = torch.einsum("shd,cd->shc", s, (same_output & other).float()) > 0
    taken_other = torch.einsum("shd,cd->shc", s, (~same_output).float()) > 0
    readout_bad = readout_weight(final["W2"], task) <= 0
    label = torch.full(status.shape, MECHANISMS.index("literal"), dtype=torch.long)
    for name, hit in (
        ("readout", readout_bad),
        ("taken_other", taken_other),
        ("taken_same", taken_same),
        ("dead", ~alive[:, :, None].expand_as(status)),
    ):  # reversed priority: later rules overwrite earlier ones
        label = torch.where(hit, torch.full_like(label, MECHANISMS.index(name)), label)
    return torch.where(status, torch.full_like(label, -1), label)


def location_covariates(
    initial: Params, task: Task, reader: ReaderConfig = ReaderConfig()
) -> dict[str, torch.Tensor]:
    """Float [S, h, m] covariates of every location at theta_0: ``d0`` (code distance),
    ``margin`` (smallest aligned weight), ``readout`` (to c's output), ``row_norm`` (of W1's
    row), ``bias`` (b1 of the row), and the crowding measures of ``CROWDING_MEASURES``:
    ``others`` (other clauses proximal to the row: the pre-registered one), ``other_outputs``
    (those of other outputs), ``others_d0`` (other clauses at distance 0) and ``conflicting``
    (proximal clauses sharing a variable with c with the opposite sign)."""
    initial = check_params("initial", initial, task)
    check_config("reader", reader, ReaderConfig)
    W1 = initial["W1"]
    d = code_distance(W1, task, reader.tau)
    near = (d <= reader.delta).float()  # [S, h, m]
    other = 1 - torch.eye(task.n_clauses)
    other_output = (task.output_of[:, None] != task.output_of[None, :]).float()
    conflict = (clause_overlap(task)["opposite"] > 0).float()
    return {
        "d0": d.float(),
        "margin": aligned_weights(W1, task).min(-1).values,
        "readout": readout_weight(initial["W2"], task),
        "row_norm": W1.norm(dim=-1)[:, :, None].expand_as(near).clone(),
        "bias": initial["b1"][:, :, None].expand_as(near).clone(),
        "others": torch.einsum("shd,cd->shc", near, other),
        "other_outputs": torch.einsum("shd,cd->shc", near, other_output),
        "others_d0": torch.einsum("shd,cd->shc", (d == 0).float(), other),
        "conflicting": torch.einsum("shd,cd->shc", near, conflict),
    }


# ------------------------------------------------------------------ logistic regression


def logistic_fit(
    X: torch.Tensor,
    y: torch.Tensor,
    clusters: torch.Tensor | None = None,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> dict[str, torch.Tensor]:
    """Maximum-likelihood logistic regression of ``y`` (0/1, [N]) on ``X`` ([N, p], include a
    column of ones for an intercept) by Newton's method (IRLS), in float64.

    Returns ``coef`` [p], ``se`` [p] (model-based: the inverse Fisher information), ``z`` and
    ``p`` (two-sided Wald p-values, normal), ``deviance``, ``iterations``, ``converged``; with
    ``clusters`` (integer labels [N]) also ``se_cluster``, ``z_cluster`` and ``p_cluster``
    (the sandwich estimator with scores summed within clusters, times G / (G - 1))."""
    X = torch.as_tensor(check_tensor("X", X, ndim=2), dtype=torch.float64)
    y = torch.as_tensor(check_tensor("y", y, ndim=1), dtype=torch.float64)
    N, p = X.shape
    if y.shape[0] != N:
        raise ValueError(f"y has {y.shape[0]} entries: allowed one per row of X ({N})")
    if not bool(((y == 0) | (y == 1)).all()):
        raise ValueError("y must hold only 0 and 1")
    check_int("max_iter", max_iter, 1, 10_000)
    if N <= p:
        raise ValueError(f"X has {N} rows and {p} columns: allowed more rows than columns")
    if torch.linalg.matrix_rank(X) < p:
        raise ValueError("X is rank deficient: allowed a design with independent columns")
    beta = torch.zeros(p, dtype=torch.float64)
    deviance = math.inf
    converged = False
    it = 0
    for iteration in range(1, max_iter + 1):
        it = iteration
        eta = X @ beta
        mu = torch.sigmoid(eta)
        w = (mu * (1 - mu)).clamp_min(1e-12)
        info = X.T @ (X * w[:, None])
        step = torch.linalg.solve(info, X.T @ (y - mu))
        beta = beta + step
        new_dev = _deviance(X @ beta, y)
        if abs(deviance - new_dev) <= tol * (abs(new_dev) + 1) and step.abs().max() < 1e-6:
            deviance, converged = new_dev, True
            break
        deviance = new_dev
    mu = torch.sigmoid(X @ beta)
    w = mu * (1 - mu)
    cov = torch.linalg.inv(X.T @ (X * w[:, None]))
    se = cov.diagonal().sqrt()
    z = beta / se
    out = {
        "coef": beta,
        "se": se,
        "z": z,
        "p": _two_sided_p(z),
        "deviance": torch.tensor(deviance),
        "iterations": torch.tensor(it),
        "converged": torch.tensor(converged),
    }
    if clusters is not None:
        clusters = check_tensor("clusters", clusters, ndim=1)
        if clusters.shape[0] != N:
            raise ValueError(f"clusters has {clusters.shape[0]} entries: allowed {N}")
        labels = torch.unique(clusters, return_inverse=True)[1]
        G = int(labels.max()) + 1
        if G < 2:
            raise ValueError("clusters has one label: allowed at least two clusters")
        scores = torch.zeros(G, p, dtype=torch.float64)
        scores.index_add_(0, labels, X * (y - mu)[:, None])
        meat = scores.T @ scores * (G / (G - 1))
        robust = cov @ meat @ cov
        se_c = robust.diagonal().clamp_min(0).sqrt()
        out |= {
            "se_cluster": se_c,
            "z_cluster": beta / se_c,
            "p_cluster": _two_sided_p(beta / se_c),
        }
    return out


def _deviance(eta: torch.Tensor, y: torch.Tensor) -> float:
    # -2 log-likelihood, stable: log(1 + e^eta) - y eta
    return float(2 * (torch.nn.functional.softplus(eta) - y * eta).sum())


def _two_sided_p(z: torch.Tensor) -> torch.Tensor:
    return torch.special.erfc(z.abs() / math.sqrt(2))


def fixed_effects(groups: torch.Tensor) -> torch.Tensor:
    """Float64 [N, G - 1] dummy columns of integer group labels [N] (the first label is the
    reference level): the network (task, seed) fixed effects of the rejection model."""
    groups = check_tensor("groups", groups, ndim=1)
    labels = torch.unique(groups, return_inverse=True)[1]
    G = int(labels.max()) + 1 if labels.numel() else 0
    return torch.nn.functional.one_hot(labels, max(G, 1))[:, 1:].double()


# ------------------------------------------------------------------ nulls


@numba.njit(cache=False)
def _swap_chain(marked, allowed, picks, n_samples, thin):  # pragma: no cover - compiled
    h, m = marked.shape
    cur = marked.copy()
    rows = np.empty(h * m, np.int64)
    cols = np.empty(h * m, np.int64)
    n = 0
    for r in range(h):
        for c in range(m):
            if cur[r, c]:
                rows[n] = r
                cols[n] = c
                n += 1
    out = np.empty((n_samples, h, m), np.bool_)
    k = 0
    burn = picks.shape[0] - n_samples * thin
    for sample in range(-1, n_samples):
        todo = burn if sample < 0 else thin
        for _ in range(todo):
            i = picks[k, 0] % n
            j = picks[k, 1] % n
            k += 1
            r1, c1, r2, c2 = rows[i], cols[i], rows[j], cols[j]
            if r1 == r2 or c1 == c2:
                continue
            if not (allowed[r1, c2] and allowed[r2, c1]):
                continue
            if cur[r1, c2] or cur[r2, c1]:
                continue
            cur[r1, c1] = False
            cur[r2, c2] = False
            cur[r1, c2] = True
            cur[r2, c1] = True
            cols[i] = c2
            cols[j] = c1
        if sample >= 0:
            out[sample] = cur
    return out


def swap_null(
    marked: torch.Tensor,
    allowed: torch.Tensor,
    n_samples: int = 200,
    thin: int | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Bool [n_samples, h, m]: draws of the *capacity null* for one network. ``marked`` (bool
    [h, m], inside ``allowed``) are the converged locations, ``allowed`` the proximal ones. A
    checkerboard-swap Markov chain (replace (r1, c1), (r2, c2) by (r1, c2), (r2, c1) when both
    are allowed and unmarked) keeps every row's and every clause's number of marked locations
    and stays inside ``allowed``; it starts from ``marked``, burns in for 50 * thin proposals and
    keeps one state every ``thin`` proposals (default 20 per marked location). Seeded."""
    marked, allowed = _check_grid(marked, allowed)
    check_int("n_samples", n_samples, 1, 100_000)
    seed = check_seed("seed", seed)
    n = int(marked.sum())
    thin = max(20 * n, 1) if thin is None else check_int("thin", thin, 1)
    if n < 2:
        return marked[None].expand(n_samples, *marked.shape).clone()
    total = (50 + n_samples) * thin
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, 2**31 - 1, (total, 2), generator=g).numpy()
    chain = _swap_chain(marked.numpy(), allowed.numpy(), picks, n_samples, thin)
    return torch.from_numpy(chain)


def random_row_null(
    marked: torch.Tensor, allowed: torch.Tensor, n_samples: int = 200, seed: int = 0
) -> torch.Tensor:
    """Bool [n_samples, h, m]: draws of the *random-row null* for one network: each clause
    keeps its number of marked (converged) locations, placed on rows drawn uniformly without
    replacement among its allowed (proximal) rows; rows' capacities are not kept. Seeded."""
    marked, allowed = _check_grid(marked, allowed)
    check_int("n_samples", n_samples, 1, 100_000)
    seed = check_seed("seed", seed)
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand((n_samples, *marked.shape), generator=g, dtype=torch.float64)
    scores = torch.where(allowed, scores, torch.full_like(scores, 2.0))  # never picked first
    rank = scores.argsort(1).argsort(1)  # rank of each row within its clause (column)
    return (rank < marked.sum(0)) & allowed


def _check_grid(marked: object, allowed: object) -> tuple[torch.Tensor, torch.Tensor]:
    for name, value in (("marked", marked), ("allowed", allowed)):
        if not isinstance(value, torch.Tensor) or value.dtype != torch.bool or value.ndim != 2:
            raise wrong_type(name, value, "a bool tensor [h, m] (rows, clauses)")
    if marked.shape != allowed.shape:
        raise ValueError(
            f"marked {tuple(marked.shape)} and allowed {tuple(allowed.shape)}: allowed equal shapes"
        )
    if bool((marked & ~allowed).any()):
        raise ValueError("marked has locations outside allowed: allowed marked inside allowed")
    return marked, allowed


def crowding_gap(
    rejected: torch.Tensor, proximal: torch.Tensor, crowd: torch.Tensor
) -> torch.Tensor:
    """The association statistic of the nulls: mean crowding of rejected minus mean crowding of
    converged locations among the ``proximal`` ones (bool [..., h, m], rejected inside
    proximal; ``crowd`` [h, m] or broadcastable). NaN where a group is empty."""
    rej = (rejected & proximal).double()
    conv = (~rejected & proximal).double()
    c = crowd.double()
    dims = (-2, -1)
    return (rej * c).sum(dims) / rej.sum(dims) - (conv * c).sum(dims) / conv.sum(dims)


def crowding_null(
    rejected: torch.Tensor,
    proximal: torch.Tensor,
    crowd: torch.Tensor,
    null: str = "random_row",
    n_samples: int = 200,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One network's crowding gap (``crowding_gap``; bool [h, m] ``rejected`` inside
    ``proximal``, ``crowd`` [h, m]) and the same gap in ``n_samples`` draws [n_samples] of a
    null that keeps each clause's number of converged locations among its proximal ones:
    ``random_row`` (``random_row_null``) or ``swap`` (``swap_null``, rows' counts kept too)."""
    check_choice("null", null, ("random_row", "swap"))
    converged = proximal & ~rejected
    if null == "random_row":
        draws = random_row_null(converged, proximal, n_samples, seed)
    else:
        draws = swap_null(converged, proximal, n_samples, seed=seed)
    observed = crowding_gap(rejected, proximal, crowd)
    return observed, crowding_gap(proximal & ~draws, proximal, crowd)


# ------------------------------------------------------------------ AUC


def auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The area under the ROC curve of ``scores`` for the positive ``labels`` (bool [N]): the
    probability that a random positive scores above a random negative, ties counting one half
    (the Mann-Whitney statistic). NaN without a positive or a negative."""
    scores = check_tensor("scores", scores, ndim=1).double()
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.bool:
        raise wrong_type("labels", labels, "a bool tensor [N]")
    if labels.shape != scores.shape:
        raise ValueError(f"labels {tuple(labels.shape)}: allowed the shape of scores")
    pos, neg = scores[labels], scores[~labels]
    if pos.numel() == 0 or neg.numel() == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).double().sum()
    ties = (pos[:, None] == neg[None, :]).double().sum()
    return float((greater + 0.5 * ties) / (pos.numel() * neg.numel()))


# ------------------------------------------------------------------ the intervention


def crowding_edit(
    W1_row: torch.Tensor, task: Task, clause: int, arm: str, delta: int = 1, seed: int = 0
) -> torch.Tensor:
    """Row ``W1_row`` [n] with the signs of its weights on the variables NOT in ``clause``
    flipped, the weights on the clause's variables untouched, so that the number of OTHER
    clauses proximal to the row (distance <= delta) is as large (``arm="crowd"``) or as small
    (``"relieve"``) as such flips allow; ties go to the fewest flips, then to the first pattern.
    ``"sham"``: a sign pattern drawn uniformly (seeded) among all 2^(n-k) of the free weights.
    Magnitudes, and so the row's norm, never change. Returns the edited row."""
    check_task("task", task)
    W1_row = check_tensor("W1_row", W1_row, ndim=1)
    if W1_row.shape[0] != task.n_vars:
        raise ValueError(f"W1_row has {W1_row.shape[0]} entries: allowed n_vars={task.n_vars}")
    check_int("clause", clause, 0, task.n_clauses - 1)
    check_choice("arm", arm, EDIT_ARMS)
    check_int("delta", delta, 0)
    seed = check_seed("seed", seed)
    fixed = set(task.variables[clause].tolist())
    free = [v for v in range(task.n_vars) if v not in fixed]
    F = len(free)
    patterns = ((torch.arange(2**F)[:, None] >> torch.arange(F)) & 1).bool()  # [P, F]: flip?
    rows = W1_row.repeat(2**F, 1)
    sign = torch.where(patterns, -1.0, 1.0).to(rows.dtype)
    rows[:, free] = rows[:, free] * sign
    near = code_distance(rows, task) <= delta  # [P, m]
    others = near.sum(-1) - near[:, clause].long()
    flips = patterns.sum(-1)
    if arm == "sham":
        g = torch.Generator().manual_seed(seed)
        pick = int(torch.randint(2**F, (1,), generator=g))
    else:
        target = others.max() if arm == "crowd" else others.min()
        candidates = (others == target).nonzero().flatten()
        pick = int(candidates[flips[candidates].argmin()])
    return rows[pick].clone()


def _intervention_arguments(arguments: dict) -> dict:
    a = training_arguments(arguments)
    check_int("n_targets", a["n_targets"], 1, a["model"].width)
    check_config("reader", a["reader"], ReaderConfig)
    a["target_seed"] = check_seed("target_seed", a["target_seed"])
    return a


@stored("selection_intervention", code=SELECTION_CODE, check=_intervention_arguments)
def intervention_study(
    task: Task,
    model: ModelConfig,
    training: TrainConfig,
    seeds: Sequence[int],
    n_targets: int,
    reader: ReaderConfig = ReaderConfig(),
    target_seed: int = 0,
) -> dict[str, torch.Tensor]:
    """The crowding intervention. For every network seed, ``n_targets`` proximal locations on
    distinct live rows are drawn at random (seeded by ``target_seed`` and the network seed);
    for each target (r, c) and each arm of ``EDIT_ARMS``, theta_0 is copied, row r edited by
    ``crowding_edit`` (c's weights and every readout untouched), and the network retrained
    densely with ``training``; all lanes form one batch. Returns, indexed [seeds, targets]:
    ``row``, ``clause``, ``crowding`` (other clauses proximal to r, unedited) and for every arm
    ``crowding_<arm>`` and ``converged_<arm>`` (the target is a code at the end, bool); and
    ``converged_none``, the target's fate in the unedited dense network."""
    seeds = tuple(seeds)
    S, K, h = len(seeds), n_targets, model.width
    init = init_params(task.n_vars, task.n_outputs, model, seeds)
    near = code_distance(init["W1"], task, reader.tau) <= reader.delta
    alive = row_activity(init, task)["firing_rate"] > 0
    near = near & alive[:, :, None]
    crowd = near.sum(-1)
    rows = torch.zeros(S, K, dtype=torch.long)
    clauses = torch.zeros(S, K, dtype=torch.long)
    for s, seed in enumerate(seeds):
        g = torch.Generator().manual_seed(target_seed * 1_000_003 + seed)
        candidate_rows = near[s].any(-1).nonzero().flatten()
        if candidate_rows.numel() < K:
            raise ValueError(
                f"n_targets={K}: network seed {seed} has only {candidate_rows.numel()} rows "
                f"with a proximal location: allowed at most that many"
            )
        chosen = candidate_rows[torch.randperm(candidate_rows.numel(), generator=g)[:K]]
        for k, r in enumerate(chosen.tolist()):
            options = near[s, r].nonzero().flatten()
            c = int(options[torch.randint(options.numel(), (1,), generator=g)])
            rows[s, k], clauses[s, k] = r, c
    lanes: list[Params] = []
    lane_seeds: list[int] = []
    out: dict[str, torch.Tensor] = {
        "row": rows,
        "clause": clauses,
        "crowding": crowd.gather(1, rows) - 1,
    }
    for arm in EDIT_ARMS:
        edited_crowd = torch.zeros(S, K, dtype=torch.long)
        for s in range(S):
            for k in range(K):
                r, c = int(rows[s, k]), int(clauses[s, k])
                p = {name: t[s : s + 1].clone() for name, t in init.items()}
                p["W1"][0, r] = crowding_edit(
                    init["W1"][s, r], task, c, arm, reader.delta, seed=seeds[s] * 1000 + k
                )
                edited_crowd[s, k] = (
                    int(
                        (code_distance(p["W1"][0, r][None], task, reader.tau) <= reader.delta).sum()
                    )
                    - 1
                )
                lanes.append(p)
                lane_seeds.append(seeds[s])
        out[f"crowding_{arm}"] = edited_crowd
    stacked = {name: torch.cat([p[name] for p in lanes]) for name in init}
    run = train(
        task, model, dataclasses.replace(training, checkpoints=()), lane_seeds, init=stacked
    )
    status = code_status(run.final, task, reader).view(len(EDIT_ARMS), S, K, h, task.n_clauses)
    idx_s = torch.arange(S)[:, None].expand(S, K)
    for a, arm in enumerate(EDIT_ARMS):
        out[f"converged_{arm}"] = status[a][idx_s, torch.arange(K)[None, :], rows, clauses]
    dense = train(task, model, dataclasses.replace(training, checkpoints=()), seeds)
    base = code_status(dense.final, task, reader)
    out["converged_none"] = base[idx_s, rows, clauses]
    return out
