"""Families, not rows: which locations a mask keeps together (claim C4) and where a sparse
ticket puts its clauses (claim C5).

Definitions (fixed before any result; chapter 6 states them):

- *Template family* of a clause: its number of negated literals (0 to k). A polarity pattern
  over sorted variable slots depends on the arbitrary order of the variables; the multiset of
  polarities does not.
- *Interference* between two locations a mask supports on the same row (``mask_profile``):
  *within-output sharing* (the two clauses feed one OR output: harmless), *cross-output
  sharing* (they feed different outputs, so the row's activity pushes an output it should not)
  and *conflicts* (they share a variable with opposite signs: no row codes both).
- *Designed masks* (``design_masks``): one row per *unit* (a pair of clauses or a single
  clause), a unit's clauses' variables kept on its row, every pair row padded with random extra
  weights to 2k and nothing else kept, so that every design keeps the same number of weights
  on the same number of rows with the same loads and supports every clause on exactly one row.
  Proximity: *near* rows (the assignment of units to distinct rows minimizing the total initial
  code distance d0, solved exactly) or *far* rows (maximizing it). Interference: *low* (each
  output's pair within it) or *high* (pairs across outputs), both with the fewest conflicts;
  *conflict* pairs across outputs with the most conflicts (on near rows). The null (*random*):
  random pairs on random rows with the same loads.
- *Row classes* of a clause after sparse retraining (``row_classes``), against the dense
  network of the same seed, rows matched by activation (``match_rows``, an exact assignment) or
  by index: ``same_row`` (a ticket code on a row that codes it in the dense network),
  ``other_row`` (ticket codes on other rows only), ``family`` (no ticket code, but its dense
  row now codes another clause of its template family), ``lost``; ``no_dense_code`` where the
  dense network has no code of it. Codes are ``toyticket.precursors.final_codes`` (row codes on
  live rows), the unit of chapter 4.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import torch

from toyticket.features import ReaderConfig, clause_overlap, code_distance, supported
from toyticket.model import Masks, ModelConfig, Params, hidden, init_params
from toyticket.precursors import final_codes
from toyticket.probes import Clauses, distance_probe
from toyticket.store import stored
from toyticket.summary import summarize
from toyticket.tasks import Task
from toyticket.tickets import (
    TICKET_CODE,
    PruningConfig,
    _check_study,
    discover,
    imp_ladder,
    retrain_many,
)
from toyticket.training import TrainConfig, train
from toyticket.validation import (
    check_config,
    check_float,
    check_int,
    check_mask,
    check_params,
    check_seed,
    check_seeds,
    check_task,
    check_tensor,
)

DESIGN_CONDITIONS = ("near_low", "near_high", "far_low", "far_high", "near_conflict", "random")
ROW_CLASSES = ("same_row", "other_row", "family", "lost", "no_dense_code")
PERTURB_OFFSET = 3_000_017  # seeds of the perturbation noise: far from any network seed
PAD_OFFSET = 5_000_011  # seeds of the padding weights of designed masks
FAMILY_CODE = (*TICKET_CODE, "toyticket.precursors", "toyticket.probes", __name__)


# ---------------------------------------------------------------- families and interference


def template_family(task: Task) -> torch.Tensor:
    """Long [m]: the template family of each clause, its number of negated literals (0..k);
    invariant under any reordering of the variables."""
    check_task("task", task)
    return (task.signs < 0).sum(-1)


def same_family(task: Task, family: torch.Tensor | None = None) -> torch.Tensor:
    """Bool [m, m]: clauses c != c' of the same family (``family`` [m]: labels, default
    ``template_family``; the chapter's null passes permuted labels)."""
    f = template_family(task) if family is None else _check_labels("family", family, task)
    out = f[:, None] == f[None, :]
    out.fill_diagonal_(False)
    return out


def family_permutations(task: Task, n: int, seed: int = 0) -> torch.Tensor:
    """Long [n, m]: the template-family labels shuffled among the clauses, n times (seeded):
    families of the same sizes with membership cut from the clauses' polarities, the null of
    family-level recovery."""
    check_int("n", n, 1)
    g = torch.Generator().manual_seed(check_seed("seed", seed))
    labels = template_family(task)
    return torch.stack([labels[torch.randperm(len(labels), generator=g)] for _ in range(n)])


def conflicts(task: Task) -> torch.Tensor:
    """Bool [m, m]: clauses that share a variable with opposite signs (no row codes both)."""
    return clause_overlap(task)["opposite"] > 0


def mask_profile(mask_W1: torch.Tensor, W1_0: torch.Tensor, task: Task) -> dict[str, torch.Tensor]:
    """Per lane [S]: ``supported`` (how many locations the mask supports), ``proximity`` (the
    mean initial code distance d0 of the supported locations; NaN if none), and per supported
    location the mean number of other clauses supported on the same row, by kind of
    interference (module docstring): ``within_output``, ``cross_output``, ``conflicts``."""
    check_mask("mask_W1", mask_W1)
    check_tensor("W1_0", W1_0, 3)
    if tuple(mask_W1.shape) != tuple(W1_0.shape):
        raise ValueError(
            f"mask_W1 has shape {tuple(mask_W1.shape)}: allowed the shape of W1_0, "
            f"{tuple(W1_0.shape)}"
        )
    sup = supported(mask_W1, task).double()  # [S, h, m]
    d0 = code_distance(W1_0, task).double()
    n_sup = sup.sum((1, 2))
    same_out = task.output_of[:, None] == task.output_of[None, :]
    other = ~torch.eye(task.n_clauses, dtype=torch.bool)
    relations = {
        "within_output": same_out & other,
        "cross_output": ~same_out,
        "conflicts": conflicts(task),
    }
    out = {"supported": n_sup.float(), "proximity": ((sup * d0).sum((1, 2)) / n_sup).float()}
    for name, relation in relations.items():
        partners = torch.einsum("shc,cd,shd->s", sup, relation.double(), sup)
        out[name] = (partners / n_sup).float()  # 0/0: NaN on purpose, no location to read
    return out


def _check_labels(name: str, labels: object, task: Task) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long:
        raise ValueError(f"{name} must be a long tensor of shape ({task.n_clauses},)")
    if tuple(labels.shape) != (task.n_clauses,):
        raise ValueError(
            f"{name} has shape {tuple(labels.shape)}: allowed ({task.n_clauses},), one label "
            "per clause"
        )
    return labels


# ---------------------------------------------------------------- rows: matching and classes


def assignment(cost: torch.Tensor) -> torch.Tensor:
    """Long [a]: the column assigned to each row of ``cost`` [a, b] (a <= b), distinct columns,
    minimizing the total cost exactly (the Hungarian algorithm with potentials, O(a^2 b)).
    Deterministic: ties are broken the same way every time."""
    check_tensor("cost", cost, 2)
    a, b = cost.shape
    if a > b:
        raise ValueError(f"cost has shape {(a, b)}: allowed at most as many rows as columns")
    if not torch.isfinite(cost).all():
        raise ValueError("cost holds non-finite entries: allowed finite numbers")
    c = cost.double().tolist()
    u, v = [0.0] * (a + 1), [0.0] * (b + 1)  # potentials of rows and columns
    p, way = [0] * (b + 1), [0] * (b + 1)  # p[j]: the row (1-based) matched to column j
    for i in range(1, a + 1):
        p[0], j0 = i, 0
        minv, used = [math.inf] * (b + 1), [False] * (b + 1)
        while True:  # grow an alternating tree from row i until it reaches a free column
            used[j0] = True
            i0, delta, j1 = p[j0], math.inf, 0
            row = c[i0 - 1]
            for j in range(1, b + 1):
                if not used[j]:
                    reduced = row[j - 1] - u[i0] - v[j]
                    if reduced < minv[j]:
                        minv[j], way[j] = reduced, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(b + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    out = [0] * a
    for j in range(1, b + 1):
        if p[j]:
            out[p[j] - 1] = j - 1
    return torch.tensor(out, dtype=torch.long)


def match_rows(
    params_a: Params, params_b: Params, task: Task, masks_a: Masks | None = None
) -> torch.Tensor:
    """Long [S, h]: for each lane, the row of network b matched to each row of network a: the
    one-to-one matching that maximizes the total cosine similarity of their activations on the
    truth table (weighted by the inputs' probabilities). A row that never fires has
    similarity 0 to every row. Rows of equivalent networks that differ by a permutation are
    matched to each other, so a permuted copy does not count as moved codes."""
    check_task("task", task)
    params_a = check_params("params_a", params_a, task)
    S, h, _ = params_a["W1"].shape
    check_params("params_b", params_b, task, lanes=S, width=h)
    X, w = task.inputs(), task.input_weights()
    A = hidden(params_a, X, masks_a).double() * w[None, :, None].sqrt()
    B = hidden(params_b, X).double() * w[None, :, None].sqrt()
    na, nb = A.norm(dim=1), B.norm(dim=1)  # [S, h]
    sim = torch.einsum("snh,sng->shg", A, B)
    denom = na[:, :, None] * nb[:, None, :]
    sim = torch.where(denom > 0, sim / denom.clamp_min(1e-300), torch.zeros_like(sim))
    return torch.stack([assignment(-sim[s]) for s in range(S)])


def _onto_rows(locations: torch.Tensor, matching: torch.Tensor) -> torch.Tensor:
    """Locations [S, h, m] of network a moved onto the rows of network b they are matched to."""
    index = matching[:, :, None].expand_as(locations)
    return torch.zeros_like(locations).scatter(1, index, locations)


def row_classes(
    dense: Params,
    ticket: Params,
    task: Task,
    ticket_masks: Masks | None = None,
    matching: torch.Tensor | None = None,
    reader: ReaderConfig = ReaderConfig(),
    family: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Where each clause of a retrained ticket is coded, against the dense network of the same
    seed (module docstring for the classes; a clause takes the first that applies of
    ``no_dense_code``, ``same_row``, ``other_row``, ``family``, ``lost``).

    ``matching`` [S, h]: the dense row each ticket row corresponds to (``match_rows``); None is
    the identity (rows keep their index, as rewinding to theta_0 does). ``family`` [m]: family
    labels (default ``template_family``). Returns ``class`` [S, m] (an index into
    ``ROW_CLASSES``), ``support`` [S, m] (on how many rows the ticket's mask supports c; h
    without a mask), ``dense_rows`` [S, m] (how many rows code c in the dense network) and
    ``chance_same`` [S, m]: for a clause the ticket codes, the fraction of the rows its mask
    supports it on that code it in the dense network (the same-row rate of a ticket that put
    the code on one of its supported rows at random), else NaN. The chance rate counts rows by
    index, so it is exact for ``matching=None``."""
    check_task("task", task)
    dense = check_params("dense", dense, task)
    S, h, _ = dense["W1"].shape
    check_params("ticket", ticket, task, lanes=S, width=h)
    check_config("reader", reader, ReaderConfig)
    if matching is None:
        matching = torch.arange(h).expand(S, h)
    elif not isinstance(matching, torch.Tensor) or tuple(matching.shape) != (S, h):
        raise ValueError(f"matching must be a long tensor of shape {(S, h)} (lanes, width)")
    D = final_codes(dense, task, reader=reader)  # [S, h, m]
    T = final_codes(ticket, task, ticket_masks, reader)
    T_on_dense = _onto_rows(T, matching)
    siblings = same_family(task, family).double()  # [m, m]
    same = (T_on_dense & D).any(1)
    coded = T.any(1)
    # a sibling c' of c coded by the ticket on a (matched) row that codes c in the dense network
    sibling = torch.einsum("shd,shc,dc->sc", T_on_dense.double(), D.double(), siblings) > 0
    cls = torch.full(coded.shape, ROW_CLASSES.index("lost"), dtype=torch.long)
    cls[~coded & sibling] = ROW_CLASSES.index("family")
    cls[coded & ~same] = ROW_CLASSES.index("other_row")
    cls[same] = ROW_CLASSES.index("same_row")
    cls[~D.any(1)] = ROW_CLASSES.index("no_dense_code")
    if ticket_masks is not None and "W1" in ticket_masks:
        sup = supported(ticket_masks["W1"], task)
    else:
        sup = torch.ones_like(D)
    n_sup = sup.sum(1)
    chance = (sup & D).sum(1).double() / n_sup.clamp_min(1)
    chance = torch.where(coded, chance, torch.full_like(chance, math.nan))
    return {"class": cls, "support": n_sup, "dense_rows": D.sum(1), "chance_same": chance.float()}


def class_fractions(
    classes: torch.Tensor, keep: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """The fraction of clauses in each row class over the last axis (clauses) of ``classes``
    [..., m], among the clauses with a dense code (and ``keep`` [..., m], if given); and
    ``move_rate``: other_row / (same_row + other_row), the fraction of the clauses coded in
    both networks whose ticket code is on no dense row of theirs. NaN where no clause
    qualifies."""
    valid = classes != ROW_CLASSES.index("no_dense_code")
    if keep is not None:
        valid = valid & keep
    n = valid.sum(-1).double()
    out = {
        name: (((classes == i) & valid).sum(-1) / n).float()
        for i, name in enumerate(ROW_CLASSES[:-1])
    }
    coded = out["same_row"] + out["other_row"]
    out["move_rate"] = torch.where(coded > 0, out["other_row"] / coded, math.nan)
    return out


def move_rates(rows: dict[str, torch.Tensor], key: str = "class") -> dict[str, torch.Tensor]:
    """C5's quantities from row classes (``row_classes`` entries ``class``, ``support`` and
    ``chance_same`` [..., m]), among the clauses coded in both networks that the mask supports
    on at least two rows (a clause supported on one row cannot move): ``move_rate`` [...] of the
    classes ``rows[key]`` (``class``: rows matched by activation; ``class_identity``: by
    index), ``chance`` [...] the move rate expected if each code sat on one of its supported
    rows at random, and ``free`` bool [..., m], those clauses."""
    free = rows["support"] >= 2
    free = free & (rows["class"] <= ROW_CLASSES.index("other_row"))
    chance = torch.where(free, rows["chance_same"].double(), torch.nan).nanmean(-1)
    return {
        "move_rate": class_fractions(rows[key], rows["support"] >= 2)["move_rate"],
        "chance": 1 - chance,
        "free": free,
    }


# ---------------------------------------------------------------- designed masks


def design_units(task: Task) -> dict[str, list[tuple[int, ...]]]:
    """The units of the designed masks, which depend on the task only (pairs first, then
    singles). Every output keeps one pair and one single in ``low``: the pair within it with
    the fewest conflicts. ``high`` and ``conflict`` keep one single per output too (any of its
    clauses) and pair the others across outputs: with the fewest conflicts (``high``) or the
    most (``conflict``); ties go to the first found in a fixed order. Needs at least 2 outputs
    of 3 clauses each and at most 4 outputs (the search over pairings is exhaustive)."""
    check_task("task", task)
    if task.n_outputs < 2 or task.n_outputs > 4 or any(len(g) != 3 for g in task.groups):
        raise ValueError(
            f"task has output groups of sizes {[len(g) for g in task.groups]}: allowed 2 to 4 "
            "outputs of 3 clauses each (readout 'groups', group_size 3)"
        )
    clash = conflicts(task)
    output = task.output_of.tolist()

    def n_conflicts(pairs: Sequence[tuple[int, int]]) -> int:
        return sum(bool(clash[a, b]) for a, b in pairs)

    low_pairs = [
        min(itertools.combinations(g, 2), key=lambda p: n_conflicts([p])) for g in task.groups
    ]
    low_singles = [c for g, p in zip(task.groups, low_pairs, strict=True) for c in g if c not in p]
    fewest: tuple[int, list, tuple] | None = None
    most: tuple[int, list, tuple] | None = None
    for singles in itertools.product(*task.groups):
        paired = [c for c in range(task.n_clauses) if c not in singles]
        for pairs in _matchings(paired):
            if any(output[a] == output[b] for a, b in pairs):
                continue
            score = n_conflicts(pairs)
            if fewest is None or score < fewest[0]:
                fewest = (score, pairs, singles)
            if most is None or score > most[0]:
                most = (score, pairs, singles)
    assert fewest is not None and most is not None  # 2+ outputs of 3 always pair across
    return {
        "low": [*low_pairs, *((s,) for s in low_singles)],
        "high": [*fewest[1], *((s,) for s in fewest[2])],
        "conflict": [*most[1], *((s,) for s in most[2])],
    }


def _matchings(items: list[int]) -> Iterator[list[tuple[int, int]]]:
    """Every perfect matching of an even-sized list, as lists of pairs, in a fixed order."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for i, other in enumerate(rest):
        for tail in _matchings(rest[:i] + rest[i + 1 :]):
            yield [(first, other), *tail]


def _unit_mask(
    units: Sequence[tuple[int, ...]], rows: Sequence[int], task: Task, h: int, g: torch.Generator
) -> torch.Tensor:
    """Bool [h, n]: each unit's clauses' variables on its row, padded to k * len(unit) weights
    with random other columns of that row (two clauses sharing a variable need fewer)."""
    n, k = task.n_vars, task.clause_size
    mask = torch.zeros(h, n, dtype=torch.bool)
    for unit, r in zip(units, rows, strict=True):
        cols = sorted({int(v) for c in unit for v in task.variables[c]})
        mask[r, cols] = True
        missing = k * len(unit) - len(cols)
        if missing > 0:
            free = torch.tensor([j for j in range(n) if j not in cols])
            mask[r, free[torch.randperm(len(free), generator=g)[:missing]]] = True
    return mask


def design_masks(
    W1_0: torch.Tensor, task: Task, seeds: Sequence[int]
) -> dict[str, dict[str, torch.Tensor]]:
    """The designed masks of every lane (module docstring): {condition: {"W1": bool [S, h, n],
    "rows": long [S, m] (each clause's designed row), "d0": long [S, m] (its initial code
    distance there), "pairs_cross" and "pairs_conflict" long [S] (how many of its pairs span
    two outputs, or share a variable with opposite signs)}}, for ``DESIGN_CONDITIONS``.
    ``W1_0`` [S, h, n]: theta_0's first layer; ``seeds`` (one per lane) seed the padding and the
    random null."""
    check_tensor("W1_0", W1_0, 3)
    check_task("task", task)
    seeds = check_seeds("seeds", seeds)
    S, h, n = W1_0.shape
    if n != task.n_vars or len(seeds) != S:
        raise ValueError(
            f"W1_0 has shape {tuple(W1_0.shape)}: allowed [{len(seeds)} lanes (one per seed), "
            f"width, n_vars={task.n_vars}]"
        )
    units = design_units(task)
    if len(units["low"]) > h:
        raise ValueError(f"width {h} is below the {len(units['low'])} rows a design needs")
    n_pairs = sum(len(u) == 2 for u in units["low"])
    d0 = code_distance(W1_0, task)  # [S, h, m]
    clash = conflicts(task)
    parts = ("W1", "rows", "d0", "pairs_cross", "pairs_conflict")
    out = {c: {p: [] for p in parts} for c in DESIGN_CONDITIONS}
    for s, seed in enumerate(seeds):
        for i, condition in enumerate(DESIGN_CONDITIONS):
            g = torch.Generator().manual_seed(seed + PAD_OFFSET + 7919 * i)
            if condition == "random":
                order = torch.randperm(task.n_clauses, generator=g).tolist()
                chosen = [tuple(order[2 * j : 2 * j + 2]) for j in range(n_pairs)]
                chosen += [(c,) for c in order[2 * n_pairs :]]
                rows = torch.randperm(h, generator=g)[: len(chosen)].tolist()
            else:
                proximity, interference = condition.split("_")
                chosen = units[interference]
                cost = torch.stack([d0[s][:, list(u)].sum(-1) for u in chosen]).double()
                rows = assignment(cost if proximity == "near" else -cost).tolist()
            row_of = torch.empty(task.n_clauses, dtype=torch.long)
            for unit, r in zip(chosen, rows, strict=True):
                row_of[list(unit)] = r
            pairs = [u for u in chosen if len(u) == 2]
            out[condition]["W1"].append(_unit_mask(chosen, rows, task, h, g))
            out[condition]["rows"].append(row_of)
            out[condition]["d0"].append(d0[s][row_of, torch.arange(task.n_clauses)])
            out[condition]["pairs_cross"].append(
                torch.tensor(sum(int(task.output_of[a] != task.output_of[b]) for a, b in pairs))
            )
            out[condition]["pairs_conflict"].append(
                torch.tensor(sum(int(clash[a, b]) for a, b in pairs))
            )
    return {c: {p: torch.stack(v) for p, v in found.items()} for c, found in out.items()}


def _designed_arguments(arguments: dict) -> dict:
    a = dict(arguments)
    a["seeds"] = _check_study(a["task"], a["model"], a["training"], a["seeds"], PruningConfig())
    check_config("reader", a["reader"], ReaderConfig)
    design_units(a["task"])  # the task must admit the design, before any training
    return a


@stored("designed_study", code=FAMILY_CODE, check=_designed_arguments)
def designed_study(
    task: Task,
    model: ModelConfig,
    training: TrainConfig,
    seeds: Sequence[int],
    reader: ReaderConfig = ReaderConfig(),
) -> dict[str, dict[str, torch.Tensor]]:
    """Retrain the designed masks of every condition from theta_0 (the same initial weights in
    every condition: paired), all in one batch. Returns {condition: {name: [S]}}: the summary
    of ``toyticket.summary.summarize``, the mask's profile (``mask_profile``), ``weights``
    (kept weights of W1), ``design_d0`` (the mean initial distance of the designed locations),
    ``designed_recovery`` (the fraction of clauses coded on their designed row),
    ``pairs_cross`` and ``pairs_conflict``. Kept in the results store."""
    theta0 = init_params(task.n_vars, task.n_outputs, model, seeds)
    designs = design_masks(theta0["W1"], task, seeds)
    masks = [{"W1": designs[c]["W1"]} for c in DESIGN_CONDITIONS]
    runs = retrain_many(task, model, training, masks, [theta0] * len(masks), seeds)
    out = {}
    for condition, mask, run in zip(DESIGN_CONDITIONS, masks, runs, strict=True):
        design = designs[condition]
        summary = summarize(run.final, task, reader, mask, initial=theta0)
        summary.update(mask_profile(mask["W1"], theta0["W1"], task))
        codes = final_codes(run.final, task, mask, reader)  # [S, h, m]
        on_row = codes.gather(1, design["rows"][:, None, :]).squeeze(1)
        summary["weights"] = mask["W1"].flatten(1).sum(-1).float()
        summary["design_d0"] = design["d0"].float().mean(-1)
        summary["designed_recovery"] = on_row.float().mean(-1)
        summary["pairs_cross"] = design["pairs_cross"].float()
        summary["pairs_conflict"] = design["pairs_conflict"].float()
        out[condition] = summary
    return out


def design_effects(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The contrasts of C4 from one metric of the designs (``values``: {condition: [...]},
    paired: the same networks in every condition): ``proximity``, mean(near) - mean(far) over
    the two interference levels; ``interference``, mean(low) - mean(high) over the two
    proximity levels; ``conflict``, near_high - near_conflict."""
    v = values
    return {
        "proximity": (v["near_low"] + v["near_high"] - v["far_low"] - v["far_high"]) / 2,
        "interference": (v["near_low"] + v["far_low"] - v["near_high"] - v["far_high"]) / 2,
        "conflict": v["near_high"] - v["near_conflict"],
    }


# ---------------------------------------------------------------- tickets' rows


def perturbed_init(task: Task, model: ModelConfig, seeds: Sequence[int], epsilon: float) -> Params:
    """theta_0 of ``seeds`` with every parameter multiplied by (1 + epsilon * z), z standard
    normal (seeded per lane): a tiny perturbation that keeps every sign, so the initial code
    distances are those of theta_0. Dense networks trained from it give the instability
    baseline: how often training alone moves a clause to another row."""
    check_task("task", task)
    check_config("model", model, ModelConfig)
    check_float("epsilon", epsilon, 0.0, 0.5)
    seeds = check_seeds("seeds", seeds)
    theta0 = init_params(task.n_vars, task.n_outputs, model, seeds)
    out = {}
    for name, p in theta0.items():
        noise = torch.stack(
            [
                torch.randn(
                    p.shape[1:], generator=torch.Generator().manual_seed(s + PERTURB_OFFSET)
                )
                for s in seeds
            ]
        )
        out[name] = p * (1 + epsilon * noise)
    return out


def _family_arguments(arguments: dict) -> dict:
    a = dict(arguments)
    a["seeds"] = _check_study(a["task"], a["model"], a["training"], a["seeds"], a["pruning"])
    check_config("reader", a["reader"], ReaderConfig)
    check_float("epsilon", a["epsilon"], 0.0, 0.5)
    check_int("n_permutations", a["n_permutations"], 1)
    return a


@stored("family_study", code=FAMILY_CODE, check=_family_arguments)
def family_study(
    task: Task,
    model: ModelConfig,
    training: TrainConfig,
    seeds: Sequence[int],
    pruning: PruningConfig = PruningConfig(),
    reader: ReaderConfig = ReaderConfig(),
    epsilon: float = 1e-3,
    n_permutations: int = 20,
) -> dict[str, dict[str, torch.Tensor]]:
    """Everything chapter 6 reads off an IMP ladder on one task (``imp_ladder``, shared with
    chapters 3 and 4), per level [levels, S] (level 0 the dense network):

    - ``imp``: the summary (``summarize``) and mask profile (``mask_profile``) of the IMP
      ticket retrained from theta_0; ``random``: the profile of a random mask of the same
      sparsity (a mask's profile is read at theta_0, so it needs no training; at level 0
      both are the full mask);
    - ``rows``: the ticket's row classes against the dense network (``row_classes``):
      ``class`` (rows matched by activation) and ``class_identity`` (by index) [levels, S, m],
      ``support``, ``dense_rows``, ``chance_same`` [levels, S, m], and ``family_null``
      [levels, S]: the fraction of clauses in the class ``family`` with the family labels
      shuffled (``family_permutations``), averaged over the shuffles;
    - ``probe``: the same row classes (without ``family_null``) and the summary of the
      distance probe's ticket (``toyticket.probes.distance_probe``: theta_0 and the clauses,
      not the dense run) at each level's sparsity, retrained from theta_0 (level 0: dense);
    - ``instability``: dense networks trained from a perturbed theta_0 (``perturbed_init``)
      read as tickets of the dense ones: ``class``, ``class_identity`` [S, m] and their
      ``bit_accuracy`` [S].

    Kept in the results store."""
    ladder = imp_ladder(task, model, training, seeds, pruning)
    theta0 = ladder.rewind
    n_levels = len(ladder.sparsities)
    dense = ladder.dense.final
    shuffled = family_permutations(task, n_permutations)
    full = {"W1": torch.ones_like(theta0["W1"], dtype=torch.bool)}

    def classes(final: Params, mask: Masks | None, null: bool = False) -> dict[str, torch.Tensor]:
        """The row classes of a network retrained under ``mask`` against the dense one, with
        the shuffled-family null if ``null``."""
        matching = match_rows(final, dense, task, mask)
        identity = row_classes(dense, final, task, mask, None, reader)
        found = {
            "class": row_classes(dense, final, task, mask, matching, reader)["class"],
            "class_identity": identity["class"],
            "support": identity["support"],
            "dense_rows": identity["dense_rows"],
            "chance_same": identity["chance_same"],
        }
        if null:
            found["family_null"] = torch.stack(
                [
                    class_fractions(
                        row_classes(dense, final, task, mask, matching, reader, f)["class"]
                    )["family"]
                    for f in shuffled
                ]
            ).mean(0)
        return found

    # The distance probe (chapter 7) reads theta_0 and the clauses, never the dense run: a
    # ticket whose rows are not cut from the dense network's weights, so free to relocate.
    clauses = Clauses.of_task(task, len(seeds))
    probe_masks = [distance_probe(theta0, clauses, s) for s in ladder.sparsities[1:]]
    probe_runs = retrain_many(
        task, model, training, probe_masks, [theta0] * len(probe_masks), seeds
    )
    entries: dict[str, list[dict[str, torch.Tensor]]] = {
        "imp": [],
        "random": [],
        "rows": [],
        "probe": [],
    }
    for r in range(n_levels):
        mask = ladder.masks[r] if r else None
        final = ladder.runs[r].final
        imp_entry = summarize(final, task, reader, mask, initial=theta0)
        imp_entry.update(mask_profile((mask or full)["W1"], theta0["W1"], task))
        entries["imp"].append(imp_entry)
        random = (
            discover("random", task, ladder.sparsities[r], pruning, seeds, ladder=ladder)
            if r
            else full
        )
        entries["random"].append(mask_profile(random["W1"], theta0["W1"], task))
        entries["rows"].append(classes(final, mask, null=True))
        probe_mask, probe_final = (
            (probe_masks[r - 1], probe_runs[r - 1].final) if r else (None, dense)
        )
        probe = classes(probe_final, probe_mask)
        probe.update(summarize(probe_final, task, reader, probe_mask, initial=theta0))
        entries["probe"].append(probe)
    out = {
        name: {key: torch.stack([e[key] for e in found]) for key in found[0]}
        for name, found in entries.items()
    }
    perturbed = train(
        task, model, training, seeds, init=perturbed_init(task, model, seeds, epsilon)
    )
    p_final = perturbed.final
    out["instability"] = {
        key: value
        for key, value in classes(p_final, None).items()
        if key in ("class", "class_identity")
    }
    out["instability"]["bit_accuracy"] = summarize(p_final, task, reader)["bit_accuracy"]
    out["sparsity"] = {"sparsity": torch.tensor(ladder.sparsities)}
    return out
