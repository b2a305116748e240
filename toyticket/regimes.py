"""The regime map (chapter 8): the key numbers of chapters 3 to 7 in settings that differ
from the main regime in one factor at a time.

``REGIMES`` names the settings: the main regime of chapters 3 to 7 (n = 10 variables, 12
clauses of 3 literals, four outputs OR three clauses each, h = 32, SGD with momentum at the
rate chapter 2 chose) and its one-factor variations (width, optimizer, learning rate,
initialization scale, readout, a larger task). ``regime_numbers`` computes, for one task in
one regime, every network's key number of each claim from the same stored pieces the
chapters use (the IMP ladder, chapter 6's family and designed studies), so a regime that a
chapter also runs is computed once. A sweep grid of ``study: regime`` computes them on Dask
workers (``toyticket.sweep``).

The key numbers, per network (definitions of the chapters named):

- C1 (chapter 3): ``bit_accuracy`` and ``exact_outputs`` of the IMP ticket at every level
  [levels, S] (level 0: dense), from which the chapter reads the sparsest non-inferior level;
- C2 (chapter 4): ``precursor_excess`` [levels, S], P(d0 <= 1 | final row code) minus its
  magnitude-matched sign-persistence expectation;
- C3 (chapter 5): ``crowding_gap`` [S], the mean crowding (other clauses proximal to the
  row at theta_0) of rejected minus converged proximal locations in the dense run, minus the
  same gap under the random-row null (its mean over ``n_null`` draws): positive when crowded
  locations are rejected more than chance;
- C4 (chapter 6): ``proximity_effect`` and ``interference_effect`` [S] on bit accuracy of the
  designed masks (NaN where the task admits no design: ``admits_designs``);
- C5 (chapter 6): ``move_rate`` and ``probe_move_rate`` [levels, S] (IMP's ticket and the
  distance probe's) and ``instability`` [S], the move rate of dense networks retrained from a
  perturbed theta_0;
- C6 (chapter 7): ``probe_bit_gap`` and ``probe_recovery_gap`` [levels, S], the distance probe
  minus IMP in bit accuracy and in code recovery (the fraction of clauses with a row code).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from toyticket.families import (
    DESIGN_CONDITIONS,
    _family_arguments,
    class_fractions,
    design_effects,
    design_units,
    designed_study,
    family_study,
    move_rates,
)
from toyticket.features import ReaderConfig
from toyticket.model import ModelConfig
from toyticket.precursors import near, precursor_profile
from toyticket.selection import crowding_null, location_covariates, population
from toyticket.store import stored
from toyticket.tasks import Task, TaskConfig, build_task
from toyticket.tickets import TICKET_CODE, PruningConfig, imp_ladder
from toyticket.training import TrainConfig
from toyticket.validation import check_int

KEY_NUMBERS = (
    "bit_accuracy",
    "exact_outputs",
    "precursor_excess",
    "crowding_gap",
    "proximity_effect",
    "interference_effect",
    "move_rate",
    "probe_move_rate",
    "instability",
    "probe_bit_gap",
    "probe_recovery_gap",
)
"""The names of ``regime_numbers``'s key numbers (besides ``sparsity``)."""
REGIME_CODE = (
    *TICKET_CODE,
    "toyticket.precursors",
    "toyticket.probes",
    "toyticket.selection",
    "toyticket.families",
    __name__,
)


@dataclass(frozen=True)
class Regime:
    """One setting of the map: the task's configuration (its ``seed`` is replaced by each task
    draw's), the model and the training."""

    task: TaskConfig
    model: ModelConfig
    training: TrainConfig

    def tasks(self, seeds: Sequence[int]) -> list[Task]:
        """The regime's task draws."""
        return [build_task(dataclasses.replace(self.task, seed=s)) for s in seeds]


MAIN = Regime(
    TaskConfig(),
    ModelConfig(width=32),
    TrainConfig(steps=2000, lr=0.5, optimizer="sgd", momentum=0.9),
)


def _vary(**changes: object) -> Regime:
    """The main regime with some fields of its task, model or training changed."""
    parts = {}
    for part in ("task", "model", "training"):
        config = getattr(MAIN, part)
        names = {f.name for f in dataclasses.fields(config)}
        parts[part] = dataclasses.replace(
            config, **{k: v for k, v in changes.items() if k in names}
        )
    return Regime(**parts)


REGIMES: dict[str, Regime] = {
    "main": MAIN,
    "h=8": _vary(width=8),
    "h=16": _vary(width=16),
    "h=64": _vary(width=64),
    "adam": Regime(MAIN.task, MAIN.model, TrainConfig(steps=2000, lr=0.02, optimizer="adam")),
    "lr=0.25": _vary(lr=0.25),
    "lr=1": _vary(lr=1.0),
    "init=0.25": _vary(init_scale=0.25),
    "init=4": _vary(init_scale=4.0),
    "dnf": _vary(readout="dnf"),
    "clauses": _vary(readout="clauses"),
    "n=12": _vary(n_vars=12),
}
"""The regimes of the map, by name: the main one and one-factor variations of it."""


def regime_grids(
    names: Sequence[str],
    task_seeds: Sequence[int],
    seeds: Sequence[int],
    pruning: PruningConfig = PruningConfig(),
) -> list[dict]:
    """The sweep grids (``toyticket.sweep``, study ``regime``) of the named regimes: one grid
    per regime, its task draws an axis, so the points run regime by regime, task by task."""
    unknown = [n for n in names if n not in REGIMES]
    if unknown or not names or len(set(names)) < len(names):
        raise ValueError(
            f"regimes={list(names)!r}: allowed a non-empty list of distinct names from "
            f"{', '.join(REGIMES)}"
        )
    grids = []
    for name in names:
        regime = REGIMES[name]
        grids.append(
            {
                "study": "regime",
                "seeds": list(seeds),
                "task": {**dataclasses.asdict(regime.task), "seed": list(task_seeds)},
                "model": dataclasses.asdict(regime.model),
                "training": dataclasses.asdict(regime.training),
                "pruning": dataclasses.asdict(pruning),
            }
        )
    return grids


def admits_designs(task: Task, width: int) -> bool:
    """Whether chapter 6's designed masks exist for this task and width (2 to 4 outputs of 3
    clauses, a row for every unit)."""
    try:
        return len(design_units(task)["low"]) <= width
    except ValueError:
        return False


def _regime_arguments(arguments: dict) -> dict:
    a = _family_arguments(arguments)  # those of the family study inside, checked as there
    check_int("n_null", a["n_null"], 1, 100_000)
    return a


@stored("regime_numbers", code=REGIME_CODE, check=_regime_arguments)
def regime_numbers(
    task: Task,
    model: ModelConfig,
    training: TrainConfig,
    seeds: Sequence[int],
    pruning: PruningConfig = PruningConfig(),
    reader: ReaderConfig = ReaderConfig(),
    epsilon: float = 1e-3,
    n_permutations: int = 20,
    n_null: int = 200,
) -> dict[str, torch.Tensor]:
    """The key numbers of every claim for one task in one regime, per network (the module
    docstring), and ``sparsity`` [levels]. The IMP ladder, the family study and the designed
    study are the stored ones of chapters 3 to 6 (``epsilon`` and ``n_permutations`` as
    there). Kept in the results store."""
    ladder = imp_ladder(task, model, training, seeds, pruning)
    families = family_study(task, model, training, seeds, pruning, reader, epsilon, n_permutations)
    theta0, dense = ladder.rewind, ladder.dense
    imp, probe = families["imp"], families["probe"]
    out = {
        "sparsity": torch.tensor(ladder.sparsities),
        "bit_accuracy": imp["bit_accuracy"],
        "exact_outputs": imp["exact_outputs"],
    }

    excess = []
    for r, run in enumerate(ladder.runs):
        profile = precursor_profile(theta0, run.final, task, ladder.masks[r] if r else None, reader)
        excess.append(near(profile["observed"]) - near(profile["null_magnitude"]))
    out["precursor_excess"] = torch.stack(excess)

    fates = population(dense, task, reader)
    crowd = location_covariates(theta0, task, reader)["others"]
    gaps = []
    for s, seed in enumerate(ladder.dense.seeds):
        observed, draws = crowding_null(
            fates["rejected"][s], fates["proximal"][s], crowd[s], "random_row", n_null, seed
        )
        gaps.append(observed - draws.nanmean())
    out["crowding_gap"] = torch.stack(gaps).double()

    nan = torch.full((len(seeds),), torch.nan, dtype=torch.float64)
    if admits_designs(task, model.width):
        designed = designed_study(task, model, training, seeds, reader)
        effects = design_effects({c: designed[c]["bit_accuracy"] for c in DESIGN_CONDITIONS})
        out["proximity_effect"] = effects["proximity"].double()
        out["interference_effect"] = effects["interference"].double()
    else:
        out["proximity_effect"], out["interference_effect"] = nan, nan.clone()

    out["move_rate"] = move_rates(families["rows"])["move_rate"]
    out["probe_move_rate"] = move_rates(probe)["move_rate"]
    out["instability"] = class_fractions(families["instability"]["class"])["move_rate"]

    out["probe_bit_gap"] = probe["bit_accuracy"] - imp["bit_accuracy"]
    out["probe_recovery_gap"] = probe["row_code_clauses"] - imp["row_code_clauses"]
    return out
