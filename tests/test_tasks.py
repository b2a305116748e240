"""Tests of toyticket.tasks: clause drawing, templates, readouts, truth tables, input weights,
seeding and parameter validation. Readouts are checked against an independent pure-Python
evaluation of the clauses (no torch on the reference side)."""

import math
from itertools import product

import pytest
import torch

import toyticket as tt

# A spread of configurations: every readout, with and without templates, uniform and skewed
# inputs, small and large k.
CONFIGS = [
    dict(n_vars=10, n_clauses=8, clause_size=3, readout="clauses", seed=0),
    dict(n_vars=10, n_clauses=12, clause_size=3, readout="groups", group_size=3, seed=1),
    dict(n_vars=12, n_clauses=16, clause_size=4, readout="dnf", seed=2),
    dict(n_vars=8, n_clauses=9, clause_size=3, n_templates=3, readout="groups", seed=3),
    dict(n_vars=9, n_clauses=10, clause_size=2, n_templates=4, readout="clauses", seed=4),
    dict(n_vars=6, n_clauses=7, clause_size=3, n_templates=2, readout="dnf", seed=5),
    dict(n_vars=7, n_clauses=6, clause_size=3, readout="groups", group_size=2, input_p=0.3),
    dict(n_vars=5, n_clauses=4, clause_size=5, readout="clauses", seed=7),
    dict(n_vars=6, n_clauses=3, clause_size=1, readout="dnf", seed=8),
]


def _config_id(cfg):
    return "-".join(f"{k}={v}" for k, v in cfg.items())


@pytest.fixture(params=CONFIGS, ids=_config_id)
def task(request):
    return tt.make_task(**request.param)


def _py_inputs(n):
    """Every input as a list of 0/1 ints, row i the binary digits of i (x0 least significant)."""
    return [[(i >> j) & 1 for j in range(n)] for i in range(2**n)]


def _py_clause(clause, x):
    return all(
        x[v] == (1 if s > 0 else 0) for v, s in zip(clause.variables, clause.signs, strict=True)
    )


def _py_outputs(task):
    """Pure-Python targets [2**n][outputs] from the task's clauses and readout config."""
    cfg = task.config
    m = len(task.clauses)
    if cfg.readout == "clauses":
        groups = [[c] for c in range(m)]
    elif cfg.readout == "dnf":
        groups = [list(range(m))]
    else:
        groups = [list(range(j, j + cfg.group_size)) for j in range(0, m, cfg.group_size)]
    rows = []
    for x in _py_inputs(task.n_vars):
        values = [_py_clause(c, x) for c in task.clauses]
        rows.append([float(any(values[c] for c in g)) for g in groups])
    return rows


# ---------------------------------------------------------------- clause structure


def test_clauses_are_distinct(task):
    literal_sets = {frozenset(zip(c.variables, c.signs, strict=True)) for c in task.clauses}
    assert len(literal_sets) == task.config.n_clauses == task.n_clauses


def test_each_clause_has_k_distinct_variables_and_unit_signs(task):
    k, n = task.config.clause_size, task.config.n_vars
    for c in task.clauses:
        assert isinstance(c.variables, tuple) and isinstance(c.signs, tuple)
        assert len(c.variables) == k and len(c.signs) == k
        assert len(set(c.variables)) == k
        assert all(isinstance(v, int) and 0 <= v < n for v in c.variables)
        assert all(s in (1, -1) for s in c.signs)
        assert isinstance(c.template, int)


def test_templates_are_consistent(task):
    cfg = task.config
    k, m = cfg.clause_size, cfg.n_clauses
    ids = [c.template for c in task.clauses]
    n_ids = 2**k if cfg.n_templates is None else cfg.n_templates
    assert all(0 <= t < n_ids for t in ids)
    pattern_of = {}
    for c in task.clauses:
        # One template, one polarity pattern.
        assert pattern_of.setdefault(c.template, c.signs) == c.signs
    # Distinct templates, distinct patterns.
    assert len(set(pattern_of.values())) == len(pattern_of)
    if cfg.n_templates is not None:
        # Clauses cycle through the templates: every template used (when m allows it), and
        # the family sizes differ by at most one.
        assert len(pattern_of) == min(cfg.n_templates, m)
        counts = [ids.count(t) for t in range(min(cfg.n_templates, m))]
        assert max(counts) - min(counts) <= 1
    # The tensor views agree with the clause objects.
    assert task.templates.tolist() == ids
    assert task.variables.tolist() == [list(c.variables) for c in task.clauses]
    assert task.signs.tolist() == [[float(s) for s in c.signs] for c in task.clauses]


def test_n_templates_one_gives_a_single_pattern():
    task = tt.make_task(n_vars=8, n_clauses=10, clause_size=3, n_templates=1, seed=3, readout="dnf")
    assert {c.signs for c in task.clauses} == {task.clauses[0].signs}
    assert {c.template for c in task.clauses} == {0}
    # The same pattern on distinct variable sets.
    assert len({c.variables for c in task.clauses}) == 10


def test_all_templates_with_one_clause_each():
    # n_templates = 2**k and m = 2**k: every polarity pattern once.
    task = tt.make_task(
        n_vars=6, n_clauses=8, clause_size=3, n_templates=8, seed=11, readout="clauses"
    )
    assert len({c.signs for c in task.clauses}) == 8


def test_maximal_number_of_clauses_is_drawable():
    # Every (variable set, pattern) pair: comb(4, 2) * 4 = 24 clauses.
    task = tt.make_task(n_vars=4, n_clauses=24, clause_size=2, readout="dnf", seed=0)
    assert len({frozenset(zip(c.variables, c.signs, strict=True)) for c in task.clauses}) == 24


def test_large_population_uses_distinct_clauses():
    # comb(20, 10) * 2**10 possible clauses: far above 2**20 (rejection-sampling path).
    task = tt.make_task(n_vars=20, n_clauses=60, clause_size=10, readout="dnf", seed=4)
    assert len({frozenset(zip(c.variables, c.signs, strict=True)) for c in task.clauses}) == 60
    for c in task.clauses:
        assert len(set(c.variables)) == 10


# ---------------------------------------------------------------- readouts and truth table


def test_truth_table_shapes_and_values(task):
    n = task.n_vars
    X, Y = task.truth_table()
    assert X.shape == (2**n, n)
    assert Y.shape == (2**n, task.n_outputs)
    assert X.dtype == torch.float32 and Y.dtype == torch.float32
    assert set(X.unique().tolist()) <= {0.0, 1.0}
    assert set(Y.unique().tolist()) <= {0.0, 1.0}
    assert X.tolist() == [[float(b) for b in x] for x in _py_inputs(n)]


def test_number_of_outputs(task):
    cfg = task.config
    expected = {"clauses": cfg.n_clauses, "dnf": 1, "groups": cfg.n_clauses // cfg.group_size}
    assert task.n_outputs == expected[cfg.readout]
    # Groups partition the clauses and output_of inverts them.
    flat = sorted(c for g in task.groups for c in g)
    assert flat == list(range(task.n_clauses))
    for j, g in enumerate(task.groups):
        for c in g:
            assert task.output_of[c].item() == j


def test_clause_values_match_pure_python(task):
    values = task.clause_values()
    assert values.dtype == torch.bool
    expected = [[_py_clause(c, x) for c in task.clauses] for x in _py_inputs(task.n_vars)]
    assert values.tolist() == expected
    # Calling a clause directly gives the same.
    X = task.inputs()
    for i, c in enumerate(task.clauses):
        assert c(X).tolist() == [row[i] for row in expected]


def test_readout_matches_pure_python(task):
    _, Y = task.truth_table()
    assert Y.tolist() == _py_outputs(task)


def test_clauses_readout_is_the_clause_values():
    task = tt.make_task(n_vars=8, n_clauses=6, clause_size=3, readout="clauses", seed=2)
    _, Y = task.truth_table()
    assert torch.equal(Y, task.clause_values().float())


def test_dnf_readout_is_the_or():
    task = tt.make_task(n_vars=8, n_clauses=6, clause_size=3, readout="dnf", seed=2)
    _, Y = task.truth_table()
    assert Y.shape[1] == 1
    assert torch.equal(Y[:, 0], task.clause_values().any(-1).float())


def test_groups_readout_is_the_or_per_group():
    task = tt.make_task(
        n_vars=8, n_clauses=6, clause_size=3, readout="groups", group_size=2, seed=2
    )
    _, Y = task.truth_table()
    values = task.clause_values()
    assert task.groups == ((0, 1), (2, 3), (4, 5))
    for j in range(3):
        assert torch.equal(Y[:, j], (values[:, 2 * j] | values[:, 2 * j + 1]).float())


def test_clause_call_on_a_single_input():
    clause = tt.Clause(variables=(0, 2), signs=(1, -1), template=1)
    assert clause(torch.tensor([1.0, 0.0, 0.0])).item() is True
    assert clause(torch.tensor([1.0, 0.0, 1.0])).item() is False
    assert clause(torch.tensor([0.0, 1.0, 0.0])).item() is False
    assert str(clause) == "x0 & ~x2"


# ---------------------------------------------------------------- input weights


@pytest.mark.parametrize("p", [0.5, 0.3, 0.85, 0.01])
def test_input_weights(p):
    n = 7
    task = tt.make_task(n_vars=n, n_clauses=4, clause_size=3, readout="dnf", seed=0, input_p=p)
    w = task.input_weights()
    assert w.shape == (2**n,)
    assert w.dtype == torch.float64  # double, so weighted averages are exact enough
    assert (w > 0).all()
    assert w.double().sum().item() == pytest.approx(1.0, abs=1e-12)
    expected = [math.prod(p if b else 1 - p for b in x) for x in _py_inputs(n)]
    assert w.double().tolist() == pytest.approx(expected, rel=1e-6, abs=0)
    if p == 0.5:
        assert (w == 2.0**-n).all()


# ---------------------------------------------------------------- seeding and public API


@pytest.mark.parametrize("cfg", CONFIGS[:4], ids=_config_id)
def test_same_seed_same_task(cfg):
    a, b = tt.make_task(**cfg), tt.make_task(**cfg)
    assert a == b
    assert a.clauses == b.clauses and a.groups == b.groups
    assert torch.equal(a.truth_table()[1], b.truth_table()[1])
    assert tt.build_task(tt.TaskConfig(**cfg)) == a


def test_different_seeds_usually_differ():
    tasks = [tt.make_task(n_vars=10, n_clauses=8, readout="dnf", seed=s) for s in range(10)]
    assert len({t.clauses for t in tasks}) >= 9
    tasks = [
        tt.make_task(n_vars=10, n_clauses=8, n_templates=2, readout="dnf", seed=s)
        for s in range(10)
    ]
    assert len({t.clauses for t in tasks}) >= 9


def test_seeding_does_not_touch_global_rng():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    tt.make_task(seed=5)
    assert torch.equal(torch.rand(3), before)


def test_public_api_from_the_issue():
    task = tt.make_task(
        n_vars=10, n_clauses=8, clause_size=3, n_templates=None, readout="clauses", seed=0
    )
    assert task == tt.make_task(10, 8, 3, None, "clauses", 0)
    assert len(task.clauses) == 8
    c = task.clauses[0]
    assert isinstance(c, tt.Clause)
    assert len(c.variables) == 3 and len(c.signs) == 3 and isinstance(c.template, int)
    X, Y = task.truth_table()
    assert X.shape == (1024, 10) and Y.shape == (1024, 8)
    assert X.is_floating_point() and Y.is_floating_point()
    assert ((Y == 0) | (Y == 1)).all()
    assert task.n_vars == 10 and task.n_clauses == 8 and task.clause_size == 3
    assert task.n_outputs == 8
    assert "y0 = " in str(task)


def test_unused_group_size_is_ignored_outside_groups():
    # group_size only matters for readout="groups".
    task = tt.make_task(n_vars=8, n_clauses=7, readout="dnf", group_size=5)
    assert task.n_outputs == 1


# ---------------------------------------------------------------- validation

BAD = [
    # (kwargs, exception, name that must appear in the message)
    (dict(n_vars=10, clause_size=11), ValueError, "clause_size"),
    (dict(clause_size=0), ValueError, "clause_size"),
    (dict(clause_size=3.0), TypeError, "clause_size"),
    (dict(n_vars=4, clause_size=4, n_clauses=17, readout="dnf"), ValueError, "n_clauses"),
    (
        dict(n_vars=4, clause_size=3, n_templates=1, n_clauses=5, readout="dnf"),
        ValueError,
        "n_clauses",
    ),
    (dict(n_clauses=0), ValueError, "n_clauses"),
    (dict(n_clauses=8.0, readout="dnf"), TypeError, "n_clauses"),
    (dict(n_vars=21, readout="dnf"), ValueError, "n_vars"),
    (dict(n_vars=0), ValueError, "n_vars"),
    (dict(n_vars=10.0), TypeError, "n_vars"),
    (dict(n_vars=True), TypeError, "n_vars"),
    (dict(readout="or"), ValueError, "readout"),
    (dict(readout="DNF"), ValueError, "readout"),
    (dict(readout=None), ValueError, "readout"),
    (dict(input_p=0.0), ValueError, "input_p"),
    (dict(input_p=1.0), ValueError, "input_p"),
    (dict(input_p=1.5), ValueError, "input_p"),
    (dict(input_p=-0.2), ValueError, "input_p"),
    (dict(input_p=float("nan")), ValueError, "input_p"),
    (dict(input_p=True), TypeError, "input_p"),
    (dict(input_p="0.5"), TypeError, "input_p"),
    (dict(readout="groups", n_clauses=12, group_size=5), ValueError, "group_size"),
    (dict(readout="groups", n_clauses=12, group_size=0), ValueError, "group_size"),
    (dict(readout="groups", n_clauses=12, group_size=13), ValueError, "group_size"),
    (dict(readout="groups", n_clauses=12, group_size=True), TypeError, "group_size"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=True), TypeError, "seed"),
    (dict(seed=1.0), TypeError, "seed"),
    (dict(n_templates=0), ValueError, "n_templates"),
    (dict(n_templates=9, clause_size=3), ValueError, "n_templates"),
    (dict(n_templates=-2), ValueError, "n_templates"),
    (dict(n_templates=2.0), TypeError, "n_templates"),
    (dict(n_templates=False), TypeError, "n_templates"),
]


@pytest.mark.parametrize(("kwargs", "error", "name"), BAD, ids=[repr(c[0]) for c in BAD])
def test_bad_parameters_raise_naming_the_parameter(kwargs, error, name):
    with pytest.raises(error) as info:
        tt.make_task(**kwargs)
    assert name in str(info.value)
    # TaskConfig validates the same way.
    with pytest.raises(error) as info:
        tt.TaskConfig(**kwargs)
    assert name in str(info.value)


def test_boundary_parameters_are_accepted():
    tt.make_task(n_vars=1, n_clauses=2, clause_size=1, readout="clauses")
    tt.make_task(n_vars=3, n_clauses=8, clause_size=3, n_templates=8, readout="clauses")
    tt.make_task(n_vars=6, n_clauses=6, clause_size=2, readout="groups", group_size=6)
    tt.make_task(n_vars=6, n_clauses=6, clause_size=2, readout="groups", group_size=1)
    tt.make_task(n_vars=6, n_clauses=4, input_p=1e-6, readout="dnf")


def test_every_small_task_is_exactly_enumerable():
    # Exhaustive over tiny sizes: every (n, k, m) drawable gives m distinct valid clauses.
    for n, k in product(range(1, 4), range(1, 4)):
        if k > n:
            continue
        most = math.comb(n, k) * 2**k
        for m in {1, most // 2 or 1, most}:
            task = tt.make_task(n_vars=n, n_clauses=m, clause_size=k, readout="dnf", seed=m)
            assert (
                len({frozenset(zip(c.variables, c.signs, strict=True)) for c in task.clauses}) == m
            )
