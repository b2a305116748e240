"""Lottery tickets: prune, rewind, retrain; the controls that define a ticket; and the
weight-based discovery methods, all retrained identically and batched.

Protocol (Frankle and Carbin 2019; late rewinding: Frankle et al. 2020):
- IMP trains the dense network, removes ``fraction`` of the remaining prunable weights with
  the smallest magnitude, rewinds the survivors to theta_k (k = ``rewind_step``; 0 is the
  initialization) and retrains with a fresh optimizer for ``steps - k`` steps, so every network
  sees the dense budget counted from initialization; then repeats on the survivors.
- Controls at every sparsity: the same mask from a fresh initialization (``reinit``), and a random
  mask with the same per-layer sparsity from the same rewound weights (``random``); on request,
  the same mask from the rewound weights' signs with fresh magnitudes (``sign_reinit``, Zhou et
  al. 2019).
- Other methods produce a mask at each requested sparsity (from theta_0, or from the dense end
  weights for ``oneshot``); the mask is then retrained exactly like an IMP ticket.
- Matching dense (``match_dense``), over several task draws: non-inferiority of the paired gap,
  the one-standard-deviation convention and exact outputs, side by side.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from toyticket.features import ReaderConfig
from toyticket.model import Masks, ModelConfig, Params, concat_lanes, init_params
from toyticket.pruning import SCOPES, mask_from_scores, score_weights
from toyticket.stats import CI_METHODS, mean_ci, paired_difference
from toyticket.store import stored
from toyticket.summary import SUMMARY_CODE, summarize
from toyticket.tasks import Task
from toyticket.training import Run, TrainConfig, train
from toyticket.validation import (
    SEED_MAX,
    check_bool,
    check_choice,
    check_choices,
    check_config,
    check_float,
    check_instance,
    check_int,
    check_masks,
    check_params,
    check_seeds,
    check_task,
    show,
    wrong_type,
)

DISCOVERY_METHODS = ("imp", "oneshot", "magnitude_init", "snip", "grasp", "synflow", "random")
MATCHING_RULES = ("noninferior", "one_std", "exact")
REINIT_OFFSET = 1_000_003  # seeds of fresh initializations: far from any network seed


@dataclass(frozen=True)
class PruningConfig:
    """How tickets are cut. ``rounds`` IMP rounds of ``fraction`` each give the sparsity ladder
    1 - (1 - fraction)**r, r = 1..rounds. Masks apply to W1 (and W2 with ``prune_output``),
    per layer (``scope="layer"``) or over both layers (``"global"``); biases are never pruned."""

    fraction: float = 0.2
    rounds: int = 10
    scope: str = "layer"
    prune_output: bool = False
    rewind_step: int = 0

    def __post_init__(self) -> None:
        check_float("fraction", self.fraction, 0.0, 1.0, low_open=True, high_open=True)
        check_int("rounds", self.rounds, 1, 100)
        check_choice("scope", self.scope, SCOPES)
        check_bool("prune_output", self.prune_output)
        check_int("rewind_step", self.rewind_step, 0)

    @property
    def names(self) -> tuple[str, ...]:
        return ("W1", "W2") if self.prune_output else ("W1",)

    @property
    def sparsities(self) -> tuple[float, ...]:
        """The ladder, level 1 to ``rounds``."""
        return tuple(1 - (1 - self.fraction) ** r for r in range(1, self.rounds + 1))


@dataclass
class Ladder:
    """An IMP run: ``sparsities[r]``, ``masks[r]`` and the training ``runs[r]`` at level r
    (level 0: the dense network, all-ones masks). ``rewind``: the weights survivors rewind to."""

    sparsities: tuple[float, ...]
    masks: list[Masks]
    runs: list[Run]
    rewind: Params

    @property
    def dense(self) -> Run:
        return self.runs[0]

    def to_dict(self) -> dict:
        """Plain tensors, lists and dicts (what the results store saves); see ``from_dict``."""
        return {
            "sparsities": list(self.sparsities),
            "masks": [dict(m) for m in self.masks],
            "runs": [run.to_dict() for run in self.runs],
            "rewind": dict(self.rewind),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Ladder:
        """The ``Ladder`` that ``to_dict`` described."""
        return cls(
            sparsities=tuple(float(s) for s in data["sparsities"]),
            masks=[dict(m) for m in data["masks"]],
            runs=[Run.from_dict(r) for r in data["runs"]],
            rewind=dict(data["rewind"]),
        )


def check_rewind(rewind_step: int, training: TrainConfig) -> int:
    """A rewind point must lie before the end of training: at least one step is retrained."""
    if rewind_step >= training.steps:
        raise ValueError(
            f"rewind_step={rewind_step} is not below the training steps: allowed "
            f"[0, {training.steps - 1}] (training.steps={training.steps})"
        )
    return rewind_step


def check_methods(name: str, methods: object) -> tuple[str, ...]:
    """Discovery methods: a non-empty list of names from ``DISCOVERY_METHODS``."""
    return check_choices(name, methods, DISCOVERY_METHODS)


def check_tolerance(name: str, tolerance: object) -> float:
    """How far below dense a ticket may be and still match it: an accuracy gap in [0, 1]."""
    return check_float(name, tolerance, 0.0, 1.0)


def _check_study(
    task: Task, model: ModelConfig, training: TrainConfig, seeds: object, pruning: PruningConfig
) -> tuple[int, ...]:
    """The shared door of IMP and the ticket study; returns the seeds as a tuple of ints."""
    check_task("task", task)
    check_config("model", model, ModelConfig)
    check_config("training", training, TrainConfig)
    # the controls' seeds are offsets of the network seeds (REINIT_OFFSET): leave room for them
    seeds = check_seeds("seeds", seeds, high=SEED_MAX - 2 * REINIT_OFFSET)
    check_config("pruning", pruning, PruningConfig)
    check_rewind(pruning.rewind_step, training)
    return seeds


def retraining(training: TrainConfig, rewind_step: int) -> TrainConfig:
    """The budget of a network rewound to step k: the remaining ``steps - k`` steps, with
    checkpoints counted from the rewind point."""
    check_rewind(rewind_step, training)
    return dataclasses.replace(
        training,
        steps=training.steps - rewind_step,
        checkpoints=tuple(c - rewind_step for c in training.checkpoints if c > rewind_step),
    )


def imp(
    task: Task,
    model: ModelConfig,
    training: TrainConfig,
    seeds: Sequence[int],
    pruning: PruningConfig = PruningConfig(),
    *,
    progress: bool = False,
) -> Ladder:
    """Iterative magnitude pruning with rewinding; all seeds of a level train as one batch.
    ``progress``: a progress bar over the rounds."""
    seeds = _check_study(task, model, training, seeds, pruning)
    k = pruning.rewind_step
    dense_cfg = dataclasses.replace(training, checkpoints=(*training.checkpoints, k))
    dense = train(task, model, dense_cfg, seeds)
    rewind = dense.checkpoints[k]
    masks = {n: torch.ones_like(rewind[n], dtype=torch.bool) for n in pruning.names}
    ladder = Ladder(sparsities=(0.0,), masks=[masks], runs=[dense], rewind=rewind)
    for sparsity in tqdm(pruning.sparsities, disable=not progress, desc="IMP rounds"):
        scores = score_weights("magnitude", ladder.runs[-1].final, task, names=pruning.names)
        masks = mask_from_scores(scores, sparsity, pruning.scope, previous=masks)
        run = train(task, model, retraining(training, k), seeds, masks=masks, init=rewind)
        ladder.sparsities += (sparsity,)
        ladder.masks.append(masks)
        ladder.runs.append(run)
    return ladder


# The modules whose code determines an IMP ladder (its store version hashes their source).
LADDER_CODE = (
    "toyticket.tasks",
    "toyticket.model",
    "toyticket.training",
    "toyticket.engine",
    "toyticket.pruning",
    __name__,
)


def _ladder_arguments(arguments: dict) -> dict:
    """The door of ``imp_ladder``: seeds normalized to a tuple (the same key as a list)."""
    a = dict(arguments)
    a["seeds"] = _check_study(a["task"], a["model"], a["training"], a["seeds"], a["pruning"])
    return a


@stored("imp_ladder", code=LADDER_CODE, check=_ladder_arguments)
def _stored_ladder(
    task: Task,
    model: ModelConfig,
    training: TrainConfig,
    seeds: Sequence[int],
    pruning: PruningConfig,
    *,
    progress: bool = False,
) -> dict:
    return imp(task, model, training, seeds, pruning, progress=progress).to_dict()


def imp_ladder(
    task: Task,
    model: ModelConfig,
    training: TrainConfig,
    seeds: Sequence[int],
    pruning: PruningConfig = PruningConfig(),
    *,
    progress: bool = False,
) -> Ladder:
    """``imp`` kept in the results store: the same ``Ladder`` (every level's mask, its
    retrained run with its initial and final weights), computed once and read back after.
    Chapters that read weights of tickets (not only their summaries) call this."""
    return Ladder.from_dict(
        _stored_ladder(task, model, training, seeds, pruning, progress=progress)
    )


def discover(
    method: str,
    task: Task,
    sparsity: float,
    pruning: PruningConfig,
    seeds: Sequence[int],
    *,
    ladder: Ladder,
) -> Masks:
    """The mask a discovery method picks at ``sparsity`` (a level of the ladder for IMP).

    Scores are taken at the rewound weights, except ``oneshot`` (the dense end weights)."""
    check_choice("method", method, DISCOVERY_METHODS)
    check_task("task", task)
    check_float("sparsity", sparsity, 0.0, 1.0, high_open=True)
    check_config("pruning", pruning, PruningConfig)
    seeds = check_seeds("seeds", seeds)
    check_instance("ladder", ladder, Ladder, " (what tt.imp returns)")
    names = pruning.names
    if method == "imp":
        level = _level(ladder, sparsity)
        return ladder.masks[level]
    if method == "oneshot":
        scores = score_weights("magnitude", ladder.dense.final, task, names=names)
    elif method == "magnitude_init":
        scores = score_weights("magnitude", ladder.rewind, task, names=names)
    elif method == "random":
        scores = score_weights(
            "random", ladder.rewind, task, names=names, seeds=_random_seeds(seeds)
        )
    elif method == "synflow":
        scores = score_weights(
            "synflow", ladder.rewind, task, names=names, sparsity=sparsity, scope=pruning.scope
        )
    else:
        scores = score_weights(method, ladder.rewind, task, names=names)
    return mask_from_scores(scores, sparsity, pruning.scope)


def retrain_many(
    task: Task,
    model: ModelConfig,
    training: TrainConfig,
    masks: Sequence[Masks],
    inits: Sequence[Params],
    seeds: Sequence[int],
) -> list[Run]:
    """Retrain several (mask, initialization) ensembles of ``len(seeds)`` lanes each as ONE
    batched computation, and split the result back into one ``Run`` per ensemble."""
    for name, value in (("masks", masks), ("inits", inits)):
        if isinstance(value, dict) or not isinstance(value, Sequence):
            raise wrong_type(name, value, "a list, one entry per ensemble")
    if len(masks) != len(inits) or not masks:
        raise ValueError(
            f"masks and inits have {len(masks)} and {len(inits)} entries: allowed as many "
            "masks as inits, at least one"
        )
    check_task("task", task)
    check_config("model", model, ModelConfig)
    check_config("training", training, TrainConfig)
    seeds = check_seeds("seeds", seeds)
    S, h = len(seeds), model.width
    shapes = {"W1": (S, h, task.n_vars), "W2": (S, task.n_outputs, h)}
    names = list(check_masks("masks[0]", masks[0], shapes) or {})
    for i, (mask, init) in enumerate(zip(masks, inits, strict=True)):
        mask = check_masks(f"masks[{i}]", mask, shapes) or {}
        if sorted(mask) != sorted(names):  # stacked into one batch: the same weights masked
            raise ValueError(
                f"masks[{i}] has the keys {sorted(mask)}: allowed those of masks[0], {names}"
            )
        check_params(f"inits[{i}]", init, task, lanes=S, width=h)
    stacked = {n: torch.cat([m[n] for m in masks]) for n in names}
    run = train(
        task, model, training, list(seeds) * len(masks), masks=stacked, init=concat_lanes(inits)
    )
    return [_lanes(run, slice(i * S, (i + 1) * S)) for i in range(len(masks))]


# The modules whose code determines a ticket study (its store version hashes their source).
TICKET_CODE = (*SUMMARY_CODE, "toyticket.pruning", __name__)


def _ticket_arguments(arguments: dict) -> dict:
    """The door of ``ticket_study``: run before its store key is taken, so bad arguments
    neither train nor reach the store; seeds and methods are normalized to tuples (the same
    key as lists)."""
    a = dict(arguments)
    a["seeds"] = _check_study(a["task"], a["model"], a["training"], a["seeds"], a["pruning"])
    a["methods"] = check_methods("methods", a["methods"])
    check_config("reader", a["reader"], ReaderConfig)
    return a


@stored("ticket_study", code=TICKET_CODE, check=_ticket_arguments)
def ticket_study(
    task: Task,
    model: ModelConfig,
    training: TrainConfig,
    seeds: Sequence[int],
    pruning: PruningConfig = PruningConfig(),
    methods: Sequence[str] = ("imp",),
    reader: ReaderConfig = ReaderConfig(),
    *,
    sign_reinit: bool = False,
    progress: bool = False,
) -> dict[str, dict[str, torch.Tensor]]:
    """IMP, its two controls and the given discovery methods at every sparsity of the ladder.

    Returns {row: {summary name: [levels, S]}} with rows "dense" (level 0 repeated), "imp",
    "reinit" (the IMP mask from a fresh initialization), "random" (a random mask of the same
    per-layer sparsity) and one per other method; and a row "sparsity" holding
    {"sparsity": [levels]}. ``sign_reinit``: also the row "sign_reinit", the IMP mask from
    the rewound weights' signs with the fresh initialization's magnitudes
    (``sign_preserving_reinit``); the other rows are the same with or without it. Every network
    of the controls and methods (levels x seeds x rows) is retrained in one batched
    computation. Results are kept in the results store.
    ``progress``: progress bars (off by default: chapters compare their outputs)."""
    if not isinstance(sign_reinit, bool):
        raise TypeError(f"sign_reinit must be True or False, got {sign_reinit!r}")
    ladder = imp_ladder(task, model, training, seeds, pruning, progress=progress)
    levels = range(1, len(ladder.sparsities))
    fresh_seeds = [s + REINIT_OFFSET for s in seeds]
    fresh = init_params(task.n_vars, task.n_outputs, model, fresh_seeds)
    if pruning.rewind_step:
        # a fresh network rewound the same way: trained densely for k steps from a new init
        short = dataclasses.replace(training, steps=pruning.rewind_step, checkpoints=())
        fresh = train(task, model, short, fresh_seeds, init=fresh).final

    jobs: list[tuple[str, Masks, Params]] = []
    for r in levels:
        jobs.append(("reinit", ladder.masks[r], fresh))
        random_mask = discover("random", task, ladder.sparsities[r], pruning, seeds, ladder=ladder)
        jobs.append(("random", random_mask, ladder.rewind))
        if sign_reinit:
            jobs.append(
                ("sign_reinit", ladder.masks[r], sign_preserving_reinit(ladder.rewind, fresh))
            )
        for method in methods:
            if method not in ("imp", "random"):  # both are computed anyway
                mask = discover(method, task, ladder.sparsities[r], pruning, seeds, ladder=ladder)
                jobs.append((method, mask, ladder.rewind))
    runs = retrain_many(
        task,
        model,
        retraining(training, pruning.rewind_step),
        [m for _, m, _ in jobs],
        [i for _, _, i in jobs],
        seeds,
    )

    def summary(run: Run, masks: Masks | None) -> dict[str, torch.Tensor]:
        return summarize(run.final, task, reader, masks, initial=run.checkpoints[0])

    rows: dict[str, list[dict[str, torch.Tensor]]] = {"dense": [], "imp": []}
    dense = summary(ladder.dense, None)
    for r in levels:
        rows["dense"].append(dense)
        rows["imp"].append(summary(ladder.runs[r], ladder.masks[r]))
    for (name, mask, _), run in zip(jobs, runs, strict=True):
        rows.setdefault(name, []).append(summary(run, mask))
    out = {
        row: {k: torch.stack([entry[k] for entry in entries]) for k in entries[0]}
        for row, entries in rows.items()
    }
    out["sparsity"] = {"sparsity": torch.tensor(ladder.sparsities[1:])}
    return out


def sign_preserving_reinit(rewind: Params, fresh: Params) -> Params:
    """The sign-preserving reinitialization (Zhou, Lan, Liu and Yosinski 2019): every
    parameter keeps the sign of ``rewind`` (the weights a ticket rewinds to) and takes the
    magnitude of ``fresh`` (a fresh initialization, lane for lane). Applied to all parameters,
    readout and biases included (the readout's sign at initialization matters as much as
    W1's); a mask applied at retraining keeps the pruned weights at zero."""
    if set(rewind) != set(fresh):
        raise ValueError(
            f"fresh must hold the parameters of rewind: {sorted(fresh)} != {sorted(rewind)}"
        )
    for name, p in rewind.items():
        if p.shape != fresh[name].shape:
            raise ValueError(
                f"fresh[{name!r}] has shape {tuple(fresh[name].shape)}, expected "
                f"{tuple(p.shape)} (the shape of rewind[{name!r}])"
            )
    return {name: torch.copysign(fresh[name].abs(), p) for name, p in rewind.items()}


def _level(ladder: Ladder, sparsity: float) -> int:
    for level, s in enumerate(ladder.sparsities):
        if abs(s - sparsity) < 1e-9:
            return level
    raise ValueError(
        f"sparsity={sparsity} is not a level of the IMP ladder: allowed one of "
        f"{tuple(round(s, 6) for s in ladder.sparsities)}"
    )


def _random_seeds(seeds: Sequence[int]) -> list[int]:
    return [s + 2 * REINIT_OFFSET for s in seeds]


def _lanes(run: Run, lanes: slice) -> Run:
    return Run(
        seeds=run.seeds[lanes],
        checkpoints={t: {n: p[lanes] for n, p in ps.items()} for t, ps in run.checkpoints.items()},
        history={k: (v if k == "step" else v[:, lanes]) for k, v in run.history.items()},
        masks={n: m[lanes] for n, m in run.masks.items()} if run.masks else None,
    )


def assess_tickets(
    study: dict[str, dict[str, torch.Tensor]], tolerance: float = 0.01, metric: str = "bit_accuracy"
) -> dict[str, torch.Tensor]:
    """The book's verdict on IMP tickets at each level of a ``ticket_study``, from paired
    differences over seeds (same seed, same initialization):

    - ``matches`` [levels]: mean of (ticket - dense) >= -tolerance: the ticket wins;
    - ``winning_up_to``: the largest sparsity up to which every level matches (0.0 if none);
    - ``beats_controls`` [levels]: the 95% intervals of (ticket - reinit) and of
      (ticket - random) both lie above zero;
    - ``controls_match`` [levels]: a control matches dense too (then the level says little
      about the ticket: any subnetwork of that size would do);
    - gaps as (mean, low, high) [levels, 3]: ``gap_dense``, ``gap_reinit``, ``gap_random``;
    - where the study has the row "sign_reinit": ``gap_sign_reinit`` and
      ``beats_sign_reinit`` [levels] (its interval lies above zero); the other entries do
      not depend on it."""
    check_tolerance("tolerance", tolerance)
    rows = ("dense", "imp", "reinit", "random", "sparsity")
    if not isinstance(study, Mapping) or any(row not in study for row in rows):
        got = sorted(study) if isinstance(study, Mapping) else type(study).__name__
        raise ValueError(
            f"study has rows {show(got)}: allowed the result of tt.ticket_study (rows "
            f"{', '.join(rows)})"
        )
    check_choice("metric", metric, [k for k in study["imp"] if k in study["dense"]])
    ticket, dense = study["imp"][metric], study["dense"][metric]
    controls = ("dense", "reinit", "random", "sign_reinit")
    gaps = {
        f"gap_{control}": torch.stack(mean_ci(ticket - study[control][metric]), -1)
        for control in controls
        if control in study
    }
    matches = gaps["gap_dense"][:, 0] >= -tolerance
    controls_match = torch.stack(
        [(study[c][metric] - dense).mean(-1) >= -tolerance for c in ("reinit", "random")]
    ).any(0)
    beats = (gaps["gap_reinit"][:, 1] > 0) & (gaps["gap_random"][:, 1] > 0)
    sparsity = study["sparsity"]["sparsity"]
    prefix = torch.cumprod(matches.long(), 0).bool()
    winning_up_to = sparsity[prefix].max() if prefix.any() else torch.tensor(0.0)
    extra = {}
    if "gap_sign_reinit" in gaps:
        extra["beats_sign_reinit"] = gaps["gap_sign_reinit"][:, 1] > 0
    return {
        **gaps,
        "matches": matches,
        "beats_controls": beats,
        "controls_match": controls_match,
        "winning_up_to": winning_up_to,
        **extra,
    }


def stack_studies(
    studies: Sequence[dict[str, dict[str, torch.Tensor]]],
) -> dict[str, dict[str, torch.Tensor]]:
    """Several ``ticket_study`` results (one per task draw, same ladder and seeds count)
    stacked into {row: {name: [levels, tasks, seeds]}}, the layout of ``match_dense`` and of
    ``toyticket.stats``; "sparsity" stays {"sparsity": [levels]}."""
    if not studies:
        raise ValueError("studies must hold at least one ticket study")
    first = studies[0]
    for i, study in enumerate(studies):
        if set(study) != set(first) or not torch.equal(
            study["sparsity"]["sparsity"], first["sparsity"]["sparsity"]
        ):
            raise ValueError(
                f"studies[{i}] has other rows or another sparsity ladder than studies[0]"
            )
    out = {
        row: {name: torch.stack([s[row][name] for s in studies], 1) for name in first[row]}
        for row in first
        if row != "sparsity"
    }
    out["sparsity"] = {"sparsity": first["sparsity"]["sparsity"]}
    return out


def match_dense(
    ticket: dict[str, torch.Tensor],
    dense: dict[str, torch.Tensor],
    sparsity: torch.Tensor,
    tolerance: float = 0.01,
    method: str = "t",
    level: float = 0.95,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Does a ticket match dense, level by level? Three rules side by side, from results
    [levels, tasks, seeds] (``ticket`` and ``dense`` hold "bit_accuracy" and "exact_outputs";
    entries are paired: same task, same seed, same initialization):

    - ``noninferior`` [levels]: the lower bound of the ``level`` interval of the paired gap
      (ticket - dense, bit accuracy; ``toyticket.stats.paired_difference`` with ``method``) is
      >= -tolerance;
    - ``one_std`` [levels]: the lottery-ticket convention: the ticket's grand mean is >= the
      dense grand mean minus one standard deviation of dense over seeds (pooled within tasks:
      the root mean of the per-task variances, ddof 1);
    - ``exact`` [levels]: every ticket network (all tasks, all seeds) computes every output
      exactly on the whole truth table (exact_outputs == 1). ``exact_fraction`` [levels] is the
      fraction of ticket networks that do, ``dense_exact_fraction`` [levels] the same for dense.

    Also ``gap`` [levels, 3] (mean, low, high) and ``dense_std`` [levels]; and per rule
    ``up_to_<rule>``, the largest sparsity up to which every level matches (0.0 if the first
    does not), and ``largest_<rule>``, the largest sparsity of any matching level (0.0 if
    none)."""
    check_float("tolerance", tolerance, 0.0, 1.0)
    check_choice("method", method, CI_METHODS)
    arrays = {}
    for role, values in (("ticket", ticket), ("dense", dense)):
        for key in ("bit_accuracy", "exact_outputs"):
            if key not in values:
                raise ValueError(f"{role} must hold {key!r} [levels, tasks, seeds]")
            x = torch.as_tensor(values[key], dtype=torch.float64)
            if x.ndim != 3:
                raise ValueError(
                    f"{role}[{key!r}] must be indexed [levels, tasks, seeds], "
                    f"got shape {tuple(x.shape)}"
                )
            arrays[role, key] = x
    sparsity = torch.as_tensor(sparsity, dtype=torch.float64)
    levels = arrays["ticket", "bit_accuracy"].shape[0]
    if sparsity.shape != (levels,):
        raise ValueError(f"sparsity must have shape ({levels},), got {tuple(sparsity.shape)}")
    t_bits, d_bits = arrays["ticket", "bit_accuracy"], arrays["dense", "bit_accuracy"]
    gap = torch.stack(paired_difference(t_bits, d_bits, method, level, n_boot, seed), -1)
    centred = d_bits - d_bits.nanmean(-1, keepdim=True)
    per_task = centred.pow(2).nansum(-1) / ((~d_bits.isnan()).sum(-1) - 1)
    dense_std = per_task.nanmean(-1).sqrt()  # pooled within tasks
    grand = {role: x.nanmean(-1).nanmean(-1) for role, x in (("t", t_bits), ("d", d_bits))}
    exact_t = arrays["ticket", "exact_outputs"] == 1
    verdicts = {
        "noninferior": gap[:, 1] >= -tolerance,
        "one_std": grand["t"] >= grand["d"] - dense_std,
        "exact": exact_t.flatten(1).all(1),
    }
    out = {
        **verdicts,
        "gap": gap,
        "dense_std": dense_std,
        "exact_fraction": exact_t.flatten(1).double().mean(1),
        "dense_exact_fraction": (arrays["dense", "exact_outputs"] == 1).flatten(1).double().mean(1),
    }
    zero = torch.tensor(0.0, dtype=torch.float64)
    for rule, ok in verdicts.items():
        prefix = torch.cumprod(ok.long(), 0).bool()
        out[f"up_to_{rule}"] = sparsity[prefix].max() if prefix.any() else zero
        out[f"largest_{rule}"] = sparsity[ok].max() if ok.any() else zero
    return out


def matching_level(
    results: dict[str, torch.Tensor],
    sparsity: torch.Tensor,
    tolerance: float = 0.01,
    method: str = "hierarchical",
) -> int:
    """The level a claims chapter analyses: the sparsest up to which the ticket is
    non-inferior to dense (``match_dense``'s rule, every earlier level matching too), from
    ``results`` {"bit_accuracy", "exact_outputs": [levels, tasks, seeds]} and ``sparsity``
    [levels] of a ladder whose level 0 is the dense network. 0 when no level matches."""
    ticket = {key: results[key][1:] for key in ("bit_accuracy", "exact_outputs")}
    dense = {key: results[key][:1].expand_as(ticket[key]) for key in ticket}
    match = match_dense(ticket, dense, sparsity[1:], tolerance, method=method)
    return int(torch.cumprod(match["noninferior"].long(), 0).sum())


def one_row_per_clause_bound(task: Task, width: int) -> float:
    """1 - m k / (h n): the sparsity of W1 above which no network can hold one complete
    k-weight code per clause on its own row (the smallest such solution keeps m k weights)."""
    check_int("width", width, 1)
    return 1 - task.n_clauses * task.clause_size / (width * task.n_vars)
