"""Clause-structured Boolean tasks.

A clause is an AND of ``k`` literals on distinct variables. A task holds ``m`` clauses and a
readout that turns clause values into outputs:

- ``"clauses"``: one output per clause (the counterexample regime: solvable almost linearly);
- ``"dnf"``: one output, the OR of all clauses;
- ``"groups"``: ``m / group_size`` outputs, output ``j`` the OR of clauses
  ``j*group_size ... (j+1)*group_size - 1``.

The data set is the whole truth table over ``n`` variables. Inputs are weighted by their
probability under independent bits that are on with probability ``input_p`` (0.5: uniform).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from itertools import combinations

import torch

from toyticket.validation import check_choice, check_config, check_int, check_open_unit, check_seed

READOUTS = ("clauses", "dnf", "groups")
MAX_TRUTH_TABLE_VARS = 20


@dataclass(frozen=True)
class Clause:
    """An AND of literals: variable ``variables[i]`` must equal ``signs[i] == +1``."""

    variables: tuple[int, ...]
    signs: tuple[int, ...]
    template: int

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        """Truth value of the clause on inputs ``X`` [..., n] in {0, 1}: bool [...]."""
        wanted = torch.tensor([s > 0 for s in self.signs], dtype=torch.bool)
        return (X[..., list(self.variables)].bool() == wanted).all(-1)

    def __str__(self) -> str:
        return " & ".join(
            f"x{v}" if s > 0 else f"~x{v}" for v, s in zip(self.variables, self.signs, strict=True)
        )


@dataclass(frozen=True)
class TaskConfig:
    """Everything that determines a task. ``n_templates=None``: each clause draws its own
    polarity pattern; otherwise clauses cycle through ``n_templates`` distinct patterns."""

    n_vars: int = 10
    n_clauses: int = 12
    clause_size: int = 3
    n_templates: int | None = None
    readout: str = "groups"
    group_size: int = 3
    input_p: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("n_vars", self.n_vars, 1, MAX_TRUTH_TABLE_VARS)
        check_int("clause_size", self.clause_size, 1, self.n_vars)
        check_choice("readout", self.readout, READOUTS)
        check_open_unit("input_p", self.input_p)
        # seeds may be numpy or torch integers; kept as an int, so configs compare and hash
        object.__setattr__(self, "seed", check_seed("seed", self.seed))
        check_int("n_clauses", self.n_clauses, 1)
        n_patterns = 2**self.clause_size
        if self.n_templates is not None:
            check_int("n_templates", self.n_templates, 1, min(n_patterns, max(self.n_clauses, 1)))
        n_templates = n_patterns if self.n_templates is None else self.n_templates
        n_possible = math.comb(self.n_vars, self.clause_size) * n_templates
        check_int("n_clauses", self.n_clauses, 1, n_possible)
        if self.readout == "groups":
            check_int("group_size", self.group_size, 1, self.n_clauses)
            if self.n_clauses % self.group_size:
                raise ValueError(
                    f"n_clauses={self.n_clauses} is not a multiple of group_size="
                    f"{self.group_size}: allowed a multiple of group_size for readout='groups'"
                )


@dataclass(frozen=True)
class Task:
    """A drawn task: its config, clauses and which clauses feed each output."""

    config: TaskConfig
    clauses: tuple[Clause, ...]
    groups: tuple[tuple[int, ...], ...]

    @property
    def n_vars(self) -> int:
        return self.config.n_vars

    @property
    def n_clauses(self) -> int:
        return len(self.clauses)

    @property
    def clause_size(self) -> int:
        return self.config.clause_size

    @property
    def n_outputs(self) -> int:
        return len(self.groups)

    @cached_property
    def output_of(self) -> torch.Tensor:
        """Long [m]: the output that clause c feeds."""
        out = torch.empty(self.n_clauses, dtype=torch.long)
        for j, group in enumerate(self.groups):
            out[list(group)] = j
        return out

    @cached_property
    def variables(self) -> torch.Tensor:
        """Long [m, k]: the variables of each clause."""
        return torch.tensor([c.variables for c in self.clauses], dtype=torch.long)

    @cached_property
    def signs(self) -> torch.Tensor:
        """Float [m, k]: the polarity (+1 / -1) of each literal."""
        return torch.tensor([c.signs for c in self.clauses], dtype=torch.float32)

    @cached_property
    def templates(self) -> torch.Tensor:
        """Long [m]: the template (polarity pattern id) of each clause."""
        return torch.tensor([c.template for c in self.clauses], dtype=torch.long)

    def inputs(self) -> torch.Tensor:
        """Float [2**n, n]: every input, row i the binary digits of i (x0 least significant)."""
        i = torch.arange(2**self.n_vars)
        return ((i[:, None] >> torch.arange(self.n_vars)) & 1).float()

    def clause_values(self, X: torch.Tensor | None = None) -> torch.Tensor:
        """Bool [N, m]: which clauses hold on each input (default: the truth table)."""
        X = self.inputs() if X is None else X
        return torch.stack([c(X) for c in self.clauses], dim=-1)

    def outputs(self, clause_values: torch.Tensor) -> torch.Tensor:
        """Float [N, outputs]: the readout of clause values [N, m]."""
        return torch.stack([clause_values[:, list(g)].any(-1) for g in self.groups], dim=-1).float()

    def truth_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The data set: inputs X [2**n, n] and targets Y [2**n, outputs], both float in {0, 1}."""
        X = self.inputs()
        return X, self.outputs(self.clause_values(X))

    def input_weights(self) -> torch.Tensor:
        """Float64 [2**n], summing to 1: the probability of each truth-table row. Kept in double
        precision so that weighted averages over the table are exact enough to compare with
        0 and 1; training casts it to float32."""
        X = self.inputs().double()
        p = self.config.input_p
        return (X * p + (1 - X) * (1 - p)).prod(-1)

    def __str__(self) -> str:
        lines = []
        for j, group in enumerate(self.groups):
            body = "  |  ".join(f"({self.clauses[c]})" for c in group)
            lines.append(f"y{j} = {body}")
        return "\n".join(lines)


def make_task(
    n_vars: int = 10,
    n_clauses: int = 12,
    clause_size: int = 3,
    n_templates: int | None = None,
    readout: str = "groups",
    seed: int = 0,
    *,
    group_size: int = 3,
    input_p: float = 0.5,
) -> Task:
    """Draw a task: ``n_clauses`` distinct clauses of ``clause_size`` literals over ``n_vars``
    variables, seeded. Invalid parameters raise ``ValueError`` naming the parameter."""
    config = TaskConfig(
        n_vars=n_vars,
        n_clauses=n_clauses,
        clause_size=clause_size,
        n_templates=n_templates,
        readout=readout,
        group_size=group_size,
        input_p=input_p,
        seed=seed,
    )
    return build_task(config)


def build_task(config: TaskConfig) -> Task:
    """The task a config determines (same config, same task)."""
    check_config("config", config, TaskConfig)
    n, k, m = config.n_vars, config.clause_size, config.n_clauses
    g = torch.Generator().manual_seed(config.seed)
    all_patterns = [tuple(1 if (p >> i) & 1 == 0 else -1 for i in range(k)) for p in range(2**k)]
    variable_sets = list(combinations(range(n), k))

    if config.n_templates is None:
        # Each clause draws a distinct (variables, polarity) pair; its template is its pattern.
        pairs = _sample_distinct(len(variable_sets) * len(all_patterns), m, g)
        chosen = [(variable_sets[i // 2**k], i % 2**k) for i in pairs]
        clauses = tuple(Clause(vs, all_patterns[p], template=p) for vs, p in chosen)
    else:
        patterns = _sample_distinct(len(all_patterns), config.n_templates, g)
        per_template = [
            _sample_distinct(len(variable_sets), math.ceil(m / config.n_templates), g)
            for _ in patterns
        ]
        clauses = tuple(
            Clause(
                variable_sets[per_template[c % config.n_templates][c // config.n_templates]],
                all_patterns[patterns[c % config.n_templates]],
                template=c % config.n_templates,
            )
            for c in range(m)
        )

    if config.readout == "clauses":
        groups = tuple((c,) for c in range(m))
    elif config.readout == "dnf":
        groups = (tuple(range(m)),)
    else:
        s = config.group_size
        groups = tuple(tuple(range(j, j + s)) for j in range(0, m, s))
    return Task(config=config, clauses=clauses, groups=groups)


def _sample_distinct(population: int, count: int, g: torch.Generator) -> list[int]:
    """``count`` distinct integers below ``population``, in random order, seeded by ``g``."""
    if population <= 2**20:
        return torch.randperm(population, generator=g)[:count].tolist()
    chosen: dict[int, None] = {}  # insertion-ordered set: rejection sampling for huge populations
    while len(chosen) < count:
        chosen.setdefault(int(torch.randint(population, (), generator=g)), None)
    return list(chosen)
