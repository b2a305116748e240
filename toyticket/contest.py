"""The contest of claim C6: weight-based ticket discovery against feature-space probes.

Every method picks a mask of W1 at the same sparsities (the levels of an IMP ladder rewound to
theta_0), and every mask is retrained identically: from theta_0, with the dense budget, in one
batched computation (``toyticket.tickets.retrain_many``). The IMP row is the ladder's own
tickets. The one exception is IMP with late rewinding (Frankle et al. 2020), whose protocol is
the rewind point: its tickets (and their shuffles) are retrained from theta_k for the remaining
steps, as in its own ladder. Each method's mask can also be retrained after its sanity shuffles
(``toyticket.pruning.shuffle_within``): a method that uses per-weight information must beat
them.

``METHODS`` says what each method reads and how many training steps it needs before its mask
is fixed (the information table of the chapter).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from toyticket.features import ReaderConfig
from toyticket.model import Masks, ModelConfig, Params
from toyticket.probes import (
    Clauses,
    clauses_from_weights,
    distance_probe,
    motion_probe,
    oracle_probe,
    random_row_probe,
)
from toyticket.pruning import match_degrees, shuffle_within
from toyticket.store import stored
from toyticket.summary import summarize
from toyticket.tasks import Task
from toyticket.tickets import (
    TICKET_CODE,
    Ladder,
    PruningConfig,
    _check_study,
    discover,
    imp_ladder,
    retrain_many,
    retraining,
)
from toyticket.training import TrainConfig, train
from toyticket.validation import check_bool, check_choices, check_config, check_int


@dataclass(frozen=True)
class Method:
    """What a discovery method reads (theta_0, an early theta_t, the dense end theta_T, the
    data, the clauses) and its cost: dense-training steps spent before its mask is fixed, as
    a multiple of the budget T (``steps_T``) plus a number of steps (``steps_t``: the early
    checkpoint t)."""

    reads: str
    steps_T: float
    steps_t: int = 0


METHODS: dict[str, Method] = {
    "imp": Method("theta_0, theta_T of every round, data", 1.0),  # times the rounds
    "imp_late": Method("theta_k, theta_T of every round, data", 1.0),  # times the rounds
    "oneshot": Method("theta_T, data", 1.0),
    "magnitude_init": Method("theta_0", 0.0),
    "snip": Method("theta_0, data (one gradient)", 0.0),
    "grasp": Method("theta_0, data (one Hessian-gradient product)", 0.0),
    "synflow": Method("theta_0 (no data)", 0.0),
    "random": Method("nothing", 0.0),
    "degree_matched": Method("the IMP mask's row degrees", 1.0),
    "distance": Method("theta_0, clauses", 0.0),
    "motion": Method("theta_0, theta_t, clauses", 0.0, 1),
    "blind_dense": Method("theta_0, theta_T (clauses read off it)", 1.0),
    "blind_motion": Method("theta_0, theta_t (clauses read off the motion)", 0.0, 1),
    "random_row": Method("clauses", 0.0),
    "oracle": Method("theta_T, clauses (the dense network's codes)", 1.0),
}
SHUFFLES = ("rows", "columns")
CONTEST_CODE = (*TICKET_CODE, "toyticket.probes", __name__)


@dataclass(frozen=True)
class ContestInputs:
    """What the masks of a contest are cut from: the IMP ladder rewound to theta_0, the dense
    networks after ``motion_step`` steps (``early``, for the motion probes) and the IMP ladder
    with late rewinding (``late``; None where ``imp_late`` is not contested)."""

    ladder: Ladder
    early: Params
    late: Ladder | None = None


def contest_mask(
    method: str,
    task: Task,
    level: int,
    inputs: ContestInputs,
    pruning: PruningConfig,
    seeds: Sequence[int],
) -> Masks:
    """The mask of ``method`` at the ladder's level ``level`` (its sparsity)."""
    ladder, early = inputs.ladder, inputs.early
    sparsity = ladder.sparsities[level]
    theta0, final = ladder.rewind, ladder.dense.final
    lanes = len(seeds)
    if method == "imp_late":
        if inputs.late is None:
            raise ValueError(
                "method='imp_late': allowed only with contest inputs that have a late ladder"
            )
        return inputs.late.masks[level]
    if method in ("imp", "oneshot", "magnitude_init", "snip", "grasp", "synflow", "random"):
        return discover(method, task, sparsity, pruning, seeds, ladder=ladder)
    if method == "degree_matched":
        return {"W1": match_degrees(ladder.masks[level]["W1"], seeds, salt=11)}
    clauses = Clauses.of_task(task, lanes)
    if method == "distance":
        return distance_probe(theta0, clauses, sparsity)
    if method == "motion":
        return motion_probe(theta0, early, clauses, sparsity)
    if method == "random_row":
        return random_row_probe(clauses, theta0["W1"].shape[1], task.n_vars, sparsity, seeds)
    if method == "oracle":
        return oracle_probe(final, clauses, sparsity)
    k = task.clause_size  # the size of a clause, not which clauses: the blind probes' prior
    if method == "blind_dense":
        return distance_probe(theta0, clauses_from_weights(final["W1"], final["W2"], k), sparsity)
    if method == "blind_motion":
        motion = clauses_from_weights(early["W1"] - theta0["W1"], early["W2"], k)
        return distance_probe(theta0, motion, sparsity)
    raise ValueError(f"method={method!r}: allowed one of {', '.join(METHODS)}")


def contest_inputs(
    task: Task,
    model: ModelConfig,
    training: TrainConfig,
    seeds: Sequence[int],
    pruning: PruningConfig,
    motion_step: int,
    late_rewind_step: int | None = None,
) -> ContestInputs:
    """What the masks of a contest are cut from: the IMP ladders (from the results store; with
    ``late_rewind_step`` also the one rewinding to that step) and the dense networks after
    ``motion_step`` steps (the first steps of the same dense run)."""
    short = dataclasses.replace(training, steps=motion_step, checkpoints=())
    late = None
    if late_rewind_step is not None:
        late_pruning = dataclasses.replace(pruning, rewind_step=late_rewind_step)
        late = imp_ladder(task, model, training, seeds, late_pruning)
    return ContestInputs(
        ladder=imp_ladder(task, model, training, seeds, pruning),
        early=train(task, model, short, seeds).final,
        late=late,
    )


def _contest_arguments(arguments: dict) -> dict:
    a = dict(arguments)
    a["seeds"] = _check_study(a["task"], a["model"], a["training"], a["seeds"], a["pruning"])
    if a["pruning"].rewind_step:
        raise ValueError(
            f"pruning.rewind_step={a['pruning'].rewind_step}: allowed 0 (every mask of the "
            "contest is retrained from theta_0)"
        )
    a["methods"] = check_choices("methods", a["methods"], tuple(METHODS))
    rounds = a["pruning"].rounds
    levels = tuple(range(1, rounds + 1)) if a["levels"] is None else a["levels"]
    if isinstance(levels, str | int) or not levels:
        raise ValueError(f"levels={levels!r}: allowed a non-empty list of ladder levels")
    a["levels"] = tuple(check_int("levels entry", lv, 1, rounds) for lv in levels)
    check_int("motion_step", a["motion_step"], 1, a["training"].steps - 1)
    check_int("late_rewind_step", a["late_rewind_step"], 1, a["training"].steps - 1)
    check_bool("shuffles", a["shuffles"])
    check_config("reader", a["reader"], ReaderConfig)
    return a


@stored("contest_study", code=CONTEST_CODE, check=_contest_arguments)
def contest_study(
    task: Task,
    model: ModelConfig,
    training: TrainConfig,
    seeds: Sequence[int],
    pruning: PruningConfig = PruningConfig(),
    methods: Sequence[str] = tuple(METHODS),
    levels: Sequence[int] | None = None,
    motion_step: int = 50,
    shuffles: bool = True,
    reader: ReaderConfig = ReaderConfig(),
    late_rewind_step: int = 50,
) -> dict[str, dict[str, torch.Tensor]]:
    """Every method's mask at the given ladder ``levels`` (default: all), retrained from
    theta_0 like an IMP ticket (``imp_late``: from theta_k, k = ``late_rewind_step``, like its
    own ladder); with ``shuffles`` also every method's mask shuffled within rows
    and within columns. Returns {row: {summary name: [levels, S]}} with rows named by method
    and "<method>/rows", "<method>/columns" for the shuffles, plus "dense" (level 0 repeated) and
    "sparsity" ({"sparsity": [levels]}). Summaries are ``toyticket.summary.summarize``'s, plus
    ``recovery_given_support``: row codes among the clauses the mask supports. Results are kept
    in the results store."""
    late_step = late_rewind_step if "imp_late" in methods else None
    inputs = contest_inputs(task, model, training, seeds, pruning, motion_step, late_step)
    ladder, late = inputs.ladder, inputs.late
    # The jobs of each rewind point train as one batch: {False: from theta_0, True: theta_k}.
    jobs: dict[bool, list[tuple[str, Masks]]] = {False: [], True: []}
    for level in levels:
        for i, method in enumerate(methods):
            mask = contest_mask(method, task, level, inputs, pruning, seeds)
            is_late = method == "imp_late"
            if method not in ("imp", "imp_late"):
                jobs[is_late].append((method, mask))
            if shuffles:
                for j, axis in enumerate(SHUFFLES):
                    salt = 100 * i + j + 1
                    shuffled = shuffle_within(mask["W1"], axis, seeds, salt=salt)
                    jobs[is_late].append((f"{method}/{axis}", {"W1": shuffled}))
    starts = {False: (training, ladder.rewind)}  # each rewind point's budget and start
    if late is not None:
        starts[True] = (retraining(training, late_rewind_step), late.rewind)
    done = []
    for is_late, batch in jobs.items():
        if batch:
            budget, start = starts[is_late]
            masks = [mask for _, mask in batch]
            runs = retrain_many(task, model, budget, masks, [start] * len(batch), seeds)
            done += zip(batch, runs, strict=True)

    def summary(final: Params, masks: Masks | None, initial: Params) -> dict[str, torch.Tensor]:
        out = summarize(final, task, reader, masks, initial=initial)
        out["recovery_given_support"] = out["row_code_clauses"] / out["supported_clauses"]
        return out

    rows: dict[str, list[dict[str, torch.Tensor]]] = {}
    dense = summary(ladder.dense.final, None, ladder.rewind)
    for level in levels:
        rows.setdefault("dense", []).append(dense)
        for name, tickets in (("imp", ladder), ("imp_late", late)):
            if name in methods:  # the ladders' own tickets
                run = tickets.runs[level]
                rows.setdefault(name, []).append(summary(run.final, tickets.masks[level], run.init))
    for (name, mask), run in done:
        rows.setdefault(name, []).append(summary(run.final, mask, run.init))
    out = {
        row: {k: torch.stack([entry[k] for entry in entries]) for k in entries[0]}
        for row, entries in rows.items()
    }
    out["sparsity"] = {"sparsity": torch.tensor([ladder.sparsities[lv] for lv in levels])}
    return out
