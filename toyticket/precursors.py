"""Precursors (claim C2): are the code locations that networks and tickets end with already near
their codes at initialization, and nearer than what persisting signs explain?

Units are code locations (row r, clause c) of ``toyticket.features``; d0 is a location's code
distance at initialization (0 to k literals not yet aligned). For a trained network (dense, or
a ticket with its mask) ``precursor_profile`` compares the d0 of its final codes with nulls in
increasing strength:

- ``binomial``: a location chosen without regard to initial signs: d0 ~ Binomial(k, 1/2);
- ``random_row``: the same clause on a random eligible row of the same network;
- ``persistence``: every literal keeps its initial sign with the network's sign persistence,
  estimated on the weights outside its final codes (estimated on all weights it is partly
  circular), independently: d0 ~ Binomial(k, 1 - p);
- ``magnitude``: the same, with persistence estimated per magnitude bin of the final weights
  (large final weights keep their signs more often), each literal flipping with the rate of its
  bin: d0 ~ Poisson-binomial.

Only live rows count (a row that fires on no input keeps its initial weights and would be a
precursor for free; its codes are counted apart, ``dead_codes``). In a masked network only
locations the mask supports (all k weights kept) can be codes, so they are the eligible ones.

``mask_precursors`` asks the same of a mask before any retraining: which fraction of the
locations it supports were near at initialization. ``sign_reinit_runs`` trains the dense
networks of the sign-preserving reinitialization (the same signs, fresh magnitudes) and of a
fresh initialization: what signs alone carry, and the chance overlap of codes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from toyticket.codes import ROW_ROLES, clause_rows
from toyticket.experiments import training_arguments
from toyticket.features import ReaderConfig, aligned, code_distance, row_activity, supported
from toyticket.model import Masks, ModelConfig, Params, apply_masks, concat_lanes, init_params
from toyticket.store import stored
from toyticket.summary import SUMMARY_CODE
from toyticket.tasks import Task
from toyticket.tickets import REINIT_OFFSET, sign_preserving_reinit
from toyticket.training import TrainConfig, train
from toyticket.validation import (
    check_config,
    check_ensemble,
    check_int,
    check_params,
    check_task,
)

NULLS = ("binomial", "random_row", "persistence", "magnitude")


def live_rows(params: Params, task: Task, masks: Masks | None = None) -> torch.Tensor:
    """Bool [S, h]: rows that fire on at least one input of the truth table."""
    return row_activity(params, task, masks)["firing_rate"] > 0


def final_codes(
    params: Params, task: Task, masks: Masks | None = None, reader: ReaderConfig = ReaderConfig()
) -> torch.Tensor:
    """Bool [S, h, m]: the row codes of a trained (masked) network on live rows; the unit of
    ``precursor_profile``."""
    check_ensemble(params, task, masks)
    p = apply_masks(params, masks)
    return aligned(p, task, reader.tau) & live_rows(p, task)[:, :, None]


def literal_incidence(task: Task) -> torch.Tensor:
    """Bool [m, n]: clause c has a literal on variable v."""
    check_task("task", task)
    out = torch.zeros(task.n_clauses, task.n_vars, dtype=torch.bool)
    out[torch.arange(task.n_clauses)[:, None], task.variables] = True
    return out


def distance_law(d0: torch.Tensor, chosen: torch.Tensor, k: int) -> torch.Tensor:
    """Float64 [S, k + 1]: the distribution of ``d0`` [S, h, m] over the ``chosen`` locations
    (bool [S, h, m]) of each lane; NaN rows where a lane chooses none."""
    onehot = torch.nn.functional.one_hot(d0, k + 1).double()  # [S, h, m, k+1]
    counts = (onehot * chosen[..., None]).sum((1, 2))
    return counts / counts.sum(-1, keepdim=True)


def poisson_binomial(q: torch.Tensor) -> torch.Tensor:
    """Float64 [..., k + 1]: the law of the number of successes of k independent events with
    probabilities ``q`` [..., k]."""
    q = q.double()
    law = torch.zeros(*q.shape[:-1], q.shape[-1] + 1, dtype=torch.float64)
    law[..., 0] = 1.0
    for i in range(q.shape[-1]):
        qi = q[..., i : i + 1]
        law = torch.cat([law[..., :1] * (1 - qi), law[..., 1:] * (1 - qi) + law[..., :-1] * qi], -1)
    return law


def sign_persistence(
    initial_W1: torch.Tensor,
    final_W1: torch.Tensor,
    outside: torch.Tensor,
    literals: torch.Tensor,
    n_bins: int,
) -> dict[str, torch.Tensor]:
    """Sign persistence (the final weight has the initial sign) estimated per lane on the
    ``outside`` weights (bool [S, h, n]), overall (``overall`` [S]) and per quantile bin of the
    final magnitude; ``literal_rate`` (same shape as ``literals``: [S, L] flat indices into
    h * n) is the persistence of each given weight's bin (its magnitude cut by the outside
    weights' quantiles; above the top edge: the top bin). NaN where a lane has no outside
    weight."""
    S = initial_W1.shape[0]
    kept = (torch.sign(final_W1) == torch.sign(initial_W1)) & (final_W1 != 0)
    magnitude = final_W1.abs().flatten(1)
    kept, outside = kept.flatten(1), outside.flatten(1)
    overall = (kept & outside).sum(-1) / outside.sum(-1)
    rates = torch.full((S, literals.shape[1]), float("nan"), dtype=torch.float64)
    quantiles = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)[1:-1]
    for s in range(S):  # lanes have different numbers of outside weights
        values = magnitude[s][outside[s]].double()
        if values.numel() == 0:
            continue
        edges = torch.quantile(values, quantiles)
        bins = torch.bucketize(values, edges)
        hit = torch.bincount(bins, weights=kept[s][outside[s]].double(), minlength=n_bins)
        total = torch.bincount(bins, minlength=n_bins).double()
        rate = hit / total
        literal_bins = torch.bucketize(magnitude[s][literals[s]].double(), edges)
        rates[s] = rate[literal_bins]
    return {"overall": overall.double(), "literal_rate": rates}


def precursor_profile(
    initial: Params,
    final: Params,
    task: Task,
    masks: Masks | None = None,
    reader: ReaderConfig = ReaderConfig(),
    n_bins: int = 4,
) -> dict[str, torch.Tensor]:
    """How near, at ``initial``, the final codes of ``final`` were, against the nulls of the
    module docstring. Per lane:

    - ``codes`` [S]: final row codes on live rows (``toyticket.features.aligned``, masked);
      ``dead_codes`` [S]: aligned codes on rows that never fire (left out of everything else);
    - ``observed`` [S, k + 1]: P(d0 = j | final code); ``null_<name>`` [S, k + 1] the same
      under each null of ``NULLS``;
    - ``given_distance`` [S, k + 1]: P(final code | d0 = j) among eligible locations (live
      rows; in a masked network, supported ones);
    - ``rank`` [S]: the mean, over final codes, of the code row's mid-rank percentile in d0
      among the clause's eligible rows (0: the nearest row, 1: the farthest; 0.5 for a row
      chosen at random);
    - ``persistence`` [S]: sign persistence of the weights outside final codes;
    - ``aligned_at_init`` [S]: the fraction of the final codes' literals already aligned at
      ``initial``, ``aligned_at_init_null`` [S] its magnitude-matched expectation; the same for
      partial codes (``toyticket.codes``; only in sparse networks): ``partial_codes`` [S],
      ``partial_aligned_at_init`` [S] (over their kept literals) and
      ``partial_aligned_at_init_null`` [S].
    """
    check_ensemble(final, task, masks)
    S, h, n = final["W1"].shape
    initial = check_params("initial", initial, task, lanes=S, width=h)
    check_config("reader", reader, ReaderConfig)
    check_int("n_bins", n_bins, 1, 100)
    k, m = task.clause_size, task.n_clauses
    p = apply_masks(final, masks)
    W0, WT = initial["W1"], p["W1"]
    kept = torch.ones_like(WT, dtype=torch.bool) if not masks else masks["W1"].bool()
    live = live_rows(p, task)
    code = aligned(p, task, reader.tau)
    eligible = live[:, :, None] & supported(kept, task)
    codes = code & eligible
    d0 = code_distance(W0, task)  # exact signs at initialization: no weight is 0 there

    # code literals: weights (r, v) with v a variable of a clause coded on r
    incidence = literal_incidence(task).float()
    coded = torch.einsum("shm,mn->shn", codes.float(), incidence) > 0
    roles = clause_rows(p, task, masks, reader.tau, min_partial=max(1, min(2, k - 1)))
    partial = (roles["role"] == ROW_ROLES.index("partial")) & live[:, :, None]
    partial_lits = torch.einsum("shm,mn->shn", partial.float(), incidence) > 0
    outside = live[:, :, None] & kept & ~coded & ~partial_lits

    # per code location, the flat indices of its k literal weights
    flat = torch.arange(h)[:, None, None] * n + task.variables[None]  # [h, m, k]
    literal_index = flat.expand(S, h, m, k)
    persistence = sign_persistence(W0, WT, outside, literal_index.reshape(S, -1), n_bins)
    rate = persistence["literal_rate"].reshape(S, h, m, k)
    nulls = {
        "binomial": poisson_binomial(torch.full((S, k), 0.5)),
        "persistence": poisson_binomial((1 - persistence["overall"])[:, None].expand(S, k)),
    }
    weight = codes.double()[..., None] / codes.sum((1, 2)).double()[:, None, None, None]
    nulls["magnitude"] = (poisson_binomial(1 - rate).nan_to_num(0.0) * weight).sum((1, 2))
    onehot = torch.nn.functional.one_hot(d0, k + 1).double() * eligible[..., None]
    clause_law = onehot.sum(1) / eligible.sum(1)[..., None]  # [S, m, k+1] over eligible rows
    nulls["random_row"] = (clause_law[:, None] * weight).nan_to_num(0.0).sum((1, 2))
    none = (codes.sum((1, 2)) == 0) | persistence["overall"].isnan()
    for name in nulls:
        nulls[name] = torch.where(none[:, None], torch.nan, nulls[name])

    observed = distance_law(d0, codes, k)
    hit = (torch.nn.functional.one_hot(d0, k + 1) * codes[..., None]).sum((1, 2)).double()
    at = (torch.nn.functional.one_hot(d0, k + 1) * eligible[..., None]).sum((1, 2)).double()

    # mid-rank percentile of the code row's d0 among the clause's eligible rows
    below = ((d0[:, None, :, :] < d0[:, :, None, :]) & eligible[:, None]).sum(2)  # [S, h, m]
    ties = ((d0[:, None, :, :] == d0[:, :, None, :]) & eligible[:, None]).sum(2) - 1
    others = eligible.sum(1, keepdim=True) - 1
    percentile = (below + 0.5 * ties) / others
    rank = torch.where(codes & (others > 0), percentile.double(), torch.nan)

    aligned0 = (W0[..., task.variables] * task.signs) > 0  # [S, h, m, k]
    lit_alive = WT[..., task.variables] != 0
    agree = (WT[..., task.variables] * task.signs > reader.tau) & lit_alive
    partial_lits_mask = partial[..., None] & agree
    return {
        "codes": codes.sum((1, 2)).double(),
        "dead_codes": (code & ~live[:, :, None]).sum((1, 2)).double(),
        "observed": observed,
        **{f"null_{name}": nulls[name] for name in NULLS},
        "given_distance": hit / at,
        "rank": rank.flatten(1).nanmean(-1),
        "persistence": persistence["overall"],
        "aligned_at_init": _masked_mean(aligned0.double(), codes[..., None].expand_as(aligned0)),
        "aligned_at_init_null": _masked_mean(rate, codes[..., None].expand_as(aligned0)),
        "partial_codes": partial.sum((1, 2)).double(),
        "partial_aligned_at_init": _masked_mean(aligned0.double(), partial_lits_mask),
        "partial_aligned_at_init_null": _masked_mean(rate, partial_lits_mask),
    }


def _masked_mean(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Per lane: the mean of ``values`` where ``keep`` (NaN where nothing is kept)."""
    total = torch.where(keep, values, torch.zeros_like(values)).flatten(1).sum(-1)
    return total / keep.flatten(1).sum(-1)


def near(law: torch.Tensor, delta: int = 1) -> torch.Tensor:
    """P(d0 <= delta) from distributions [..., k + 1]."""
    check_int("delta", delta, 0)
    return law[..., : delta + 1].sum(-1)


def mask_precursors(
    mask_W1: torch.Tensor, initial_W1: torch.Tensor, task: Task, delta: int = 1
) -> dict[str, torch.Tensor]:
    """What a first-layer mask [S, h, n] keeps, read at initialization (no retraining):
    ``supported`` [S], how many locations it supports (all k weights of clause c kept on row
    r); ``near`` [S] and ``at_code`` [S], the fractions of them within ``delta`` of a code and
    at distance 0 at ``initial_W1`` (NaN where the mask supports none)."""
    check_int("delta", delta, 0)
    support = supported(mask_W1, task)
    d0 = code_distance(initial_W1, task)
    count = support.sum((1, 2)).double()
    return {
        "supported": count,
        "near": (support & (d0 <= delta)).sum((1, 2)) / count,
        "at_code": (support & (d0 == 0)).sum((1, 2)) / count,
    }


def code_overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per lane, the Jaccard overlap of two sets of code locations (bool [S, h, m])."""
    union = (a | b).sum((1, 2)).double()
    return (a & b).sum((1, 2)) / union


PRECURSOR_CODE = (*SUMMARY_CODE, "toyticket.tickets", __name__)


@stored("sign_reinit_runs", code=PRECURSOR_CODE, check=training_arguments)
def sign_reinit_runs(
    task: Task, model: ModelConfig, training: TrainConfig, seeds: Sequence[int]
) -> dict[str, Params]:
    """Dense networks from two other starts, lane for lane with ``seeds`` (one batch), kept in
    the results store: ``sign_reinit`` from the initialization's signs with a fresh
    initialization's magnitudes (``toyticket.tickets.sign_preserving_reinit``), ``fresh`` from
    that fresh initialization itself (the seeds of chapter 3's reinit control). Returns
    {"sign_reinit_init", "sign_reinit", "fresh_init", "fresh"}: parameters [S, ...]."""
    original = init_params(task.n_vars, task.n_outputs, model, seeds)
    fresh = init_params(task.n_vars, task.n_outputs, model, [s + REINIT_OFFSET for s in seeds])
    signs = sign_preserving_reinit(original, fresh)
    run = train(task, model, training, list(seeds) * 2, init=concat_lanes([signs, fresh]))
    S = len(seeds)
    final = run.final
    return {
        "sign_reinit_init": signs,
        "sign_reinit": {n: p[:S] for n, p in final.items()},
        "fresh_init": fresh,
        "fresh": {n: p[S:] for n, p in final.items()},
    }
