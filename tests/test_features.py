"""Tests of the feature-space reader (toyticket.features) and of toyticket.metrics.

Ground truth comes from networks built by hand: ``tt.planted_network`` (one exact code per
clause) and small W1/W2 written out below, whose code distances, channels, selectivities and
fates are worked out in the comments. Brute-force pure-Python versions check the vectorized
reader on random weights."""

import math

import pytest
import torch
from handbuilt import hand_task

import toyticket as tt

# ---------------------------------------------------------------- helpers


def net(W1, b1, W2, b2):
    """A one-lane ensemble from nested lists."""
    return {
        "W1": torch.tensor(W1, dtype=torch.float32)[None],
        "b1": torch.tensor(b1, dtype=torch.float32)[None],
        "W2": torch.tensor(W2, dtype=torch.float32)[None],
        "b2": torch.tensor(b2, dtype=torch.float32)[None],
    }


def random_params(task, width, seeds, scale=2.0):
    return tt.init_params(task.n_vars, task.n_outputs, tt.ModelConfig(width, scale), seeds)


def py_inputs(n):
    return [[(i >> j) & 1 for j in range(n)] for i in range(2**n)]


def py_holds(clause, x):
    return all(
        x[v] == (1 if s > 0 else 0) for v, s in zip(clause.variables, clause.signs, strict=True)
    )


def py_weight(x, p):
    return math.prod(p if b else 1 - p for b in x)


def py_code_distance(W1, task, tau):
    """[S][h][m] from nested lists, one literal at a time."""
    out = []
    for lane in W1:
        rows = []
        for row in lane:
            d = []
            for c in task.clauses:
                d.append(
                    sum(1 for v, s in zip(c.variables, c.signs, strict=True) if s * row[v] <= tau)
                )
            rows.append(d)
        out.append(rows)
    return out


def py_unique_witness(task):
    out = []
    for x in py_inputs(task.n_vars):
        values = [py_holds(c, x) for c in task.clauses]
        row = [False] * task.n_clauses
        for g in task.groups:
            for c in g:
                row[c] = values[c] and sum(values[d] for d in g) == 1
        out.append(row)
    return out


TASKS = {
    "clauses": dict(n_vars=8, n_clauses=6, clause_size=3, readout="clauses", seed=1),
    "dnf": dict(n_vars=8, n_clauses=6, clause_size=3, readout="dnf", seed=2),
    "groups": dict(n_vars=9, n_clauses=9, clause_size=3, readout="groups", group_size=3, seed=3),
    "templates": dict(
        n_vars=8, n_clauses=8, clause_size=3, n_templates=2, readout="groups", group_size=2, seed=4
    ),
    "k4-skewed": dict(
        n_vars=9, n_clauses=6, clause_size=4, readout="groups", group_size=2, seed=5, input_p=0.35
    ),
    "k2": dict(n_vars=6, n_clauses=8, clause_size=2, readout="dnf", seed=6),
}


@pytest.fixture(params=list(TASKS), scope="module")
def task(request):
    return tt.make_task(**TASKS[request.param])


# ---------------------------------------------------------------- static reading


@pytest.mark.parametrize("tau", [0.0, 0.25, 0.6])
def test_code_distance_equals_brute_force(task, tau):
    g = torch.Generator().manual_seed(0)
    W1 = torch.randn(3, 7, task.n_vars, generator=g)
    W1[torch.rand(W1.shape, generator=g) < 0.15] = 0.0  # exact zeros
    W1[torch.rand(W1.shape, generator=g) < 0.1] = 0.25  # exactly at one threshold
    W1[torch.rand(W1.shape, generator=g) < 0.1] = -0.25
    d = tt.code_distance(W1, task, tau)
    assert d.shape == (3, 7, task.n_clauses)
    assert not d.is_floating_point()
    assert d.tolist() == py_code_distance(W1.tolist(), task, tau)
    # Leading axes are optional: one network [h, n] works too.
    assert torch.equal(tt.code_distance(W1[1], task, tau), d[1])


def test_aligned_weights_layout():
    task = hand_task(4, [((0, 2), (1, -1)), ((1, 3), (-1, -1))], [(0,), (1,)])
    W1 = torch.tensor([[[0.1, 0.2, 0.3, 0.4], [-1.0, -2.0, -3.0, -4.0]]])
    a = tt.aligned_weights(W1, task)
    assert a.shape == (1, 2, 2, 2)
    expected = torch.tensor([[[0.1, -0.3], [-0.2, -0.4]], [[-1.0, 3.0], [2.0, 4.0]]])
    torch.testing.assert_close(a[0], expected)


def test_ties_at_zero_and_at_tau():
    task = hand_task(3, [((0, 1, 2), (1, -1, 1))], [(0,)])
    W1 = torch.tensor(
        [
            [1.0, -1.0, 1.0],  # a = (1, 1, 1): distance 0
            [1.0, -1.0, 0.0],  # an exact zero is not aligned
            [1.0, 0.0, -0.0],  # zeros of either sign are not aligned
            [0.5, -0.25, 0.3],  # a = (0.5, 0.25, 0.3): 0.25 sits exactly on tau = 0.25
            [0.5, -0.2, 0.3],  # |w| < tau
            [0.5, 0.1, 0.3],  # a wrong sign below tau counts once
        ]
    )
    assert tt.code_distance(W1, task)[:, 0].tolist() == [0, 1, 2, 0, 0, 1]
    assert tt.code_distance(W1, task, tau=0.25)[:, 0].tolist() == [0, 1, 2, 1, 1, 1]
    assert tt.code_distance(W1, task, tau=0.4)[:, 0].tolist() == [0, 1, 2, 2, 2, 2]
    # A hair above tau is aligned.
    W1b = torch.tensor([[0.5, -0.2500001, 0.3]])
    assert tt.code_distance(W1b, task, tau=0.25).item() == 0


def test_aligned_needs_a_positive_readout_to_the_clause_output():
    task = hand_task(3, [((0, 1), (1, 1)), ((1, 2), (1, -1))], [(0,), (1,)])
    W1 = [[1.0, 1.0, 0.0], [1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [1.0, 1.0, -1.0]]
    # Row 0 codes c0 only (c1 has x2 at 0); rows 1-3 code both; readouts vary.
    W2 = [
        [0.5, 0.5, -0.5, 0.0],  # output 0 (c0)
        [0.5, 0.0, 0.5, -1.0],
    ]  # output 1 (c1)
    params = net(W1, [0.0] * 4, W2, [0.0, 0.0])
    assert tt.code_distance(params["W1"], task)[0].tolist() == [[0, 1], [0, 0], [0, 0], [0, 0]]
    expected = [[True, False], [True, False], [False, True], [False, False]]
    assert tt.aligned(params, task)[0].tolist() == expected
    assert tt.readout_weight(params["W2"], task)[0].tolist() == [
        [0.5, 0.5],
        [0.5, 0.0],
        [-0.5, 0.5],
        [0.0, -1.0],
    ]
    # A mask that removes one aligned weight removes the code.
    masks = {"W1": torch.ones(1, 4, 3)}
    masks["W1"][0, 0, 1] = 0
    assert tt.aligned(params, task, masks=masks)[0, 0, 0].item() is False


# ---------------------------------------------------------------- planted networks


PLANTED = [
    ("clauses", None, None),
    ("dnf", None, None),
    ("groups", None, None),
    ("templates", None, None),
    ("k4-skewed", None, None),
    ("k2", None, None),
    ("groups", 12, [11, 3, 0, 7, 5, 9, 1, 2, 10]),  # permuted rows and 3 silent rows
    ("dnf", 9, [8, 6, 4, 2, 0, 1]),
]


def _planted(name, width, rows):
    task = tt.make_task(**TASKS[name])
    rows = list(range(task.n_clauses)) if rows is None else rows
    params = tt.planted_network(task, width=width, rows=rows)
    h = params["W1"].shape[1]
    where = torch.zeros(1, h, task.n_clauses, dtype=torch.bool)
    for c, r in enumerate(rows):
        where[0, r, c] = True
    return task, params, where, rows


@pytest.mark.parametrize(("name", "width", "rows"), PLANTED)
def test_planted_network_computes_its_task(name, width, rows):
    task, params, _, _ = _planted(name, width, rows)
    scores = tt.evaluate(params, task)
    assert scores["exact_outputs"].tolist() == [1.0]
    if task.config.input_p == 0.5:  # weights 2**-n: every sum is exact
        assert scores["bit_accuracy"].tolist() == [1.0]
        assert scores["balanced_accuracy"].tolist() == [1.0]
        assert (scores["output_accuracy"] == 1).all()
    else:  # float32 weights sum to 1 only up to rounding
        for key in ("bit_accuracy", "balanced_accuracy", "output_accuracy"):
            torch.testing.assert_close(scores[key], torch.ones_like(scores[key]))


@pytest.mark.parametrize(("name", "width", "rows"), PLANTED)
def test_reader_finds_exactly_the_planted_codes(name, width, rows):
    task, params, where, rows = _planted(name, width, rows)
    d = tt.code_distance(params["W1"], task)
    assert (d[where] == 0).all()
    assert (d[~where] > 0).all()
    assert torch.equal(tt.aligned(params, task), where)

    ch = tt.channels(params, task)
    assert torch.equal(ch["aligned"], where)
    assert torch.equal(ch["serving"], where)
    assert torch.equal(ch["selective"], where)
    assert ch["channel_size"].tolist() == [[1] * task.n_clauses]
    assert ch["shared_rows"].tolist() == [0]
    # A planted row fires exactly when its clause holds: selectivity 1, recall 1.
    coding = torch.tensor(rows)
    assert (ch["selectivity"][0, coding] == 1).all()
    silent = [r for r in range(params["W1"].shape[1]) if r not in rows]
    assert ch["selectivity"][0, silent].isnan().all()
    assert (ch["firing_rate"][0, silent] == 0).all()
    X = task.inputs()
    w = task.input_weights()
    p_clause = (task.clause_values(X).float() * w[:, None]).sum(0)
    torch.testing.assert_close(ch["firing_rate"][0, coding], p_clause.float())
    torch.testing.assert_close(ch["recall"][where], torch.ones(task.n_clauses))
    # Every clause with a unique-witness input is carried by its one-row channel.
    has_witness = tt.unique_witness_inputs(task).any(0)
    assert has_witness.float().mean() >= 0.5
    assert torch.equal(ch["carries"][0], has_witness)


@pytest.mark.parametrize("name", ["k4-skewed", "groups-p0.3"])
def test_a_perfect_detector_serves_at_min_recall_one_under_skewed_inputs(name):
    # A planted row fires on every input where its clause holds: its recall is exactly 1
    # whatever the input distribution, so it must serve its clause even at min_recall = 1
    # (a legal ReaderConfig value), and no recall may exceed 1.
    kwargs = TASKS.get(name, dict(n_vars=10, n_clauses=12, input_p=0.3, seed=1))
    task = tt.make_task(**kwargs)
    params = tt.planted_network(task)
    where = torch.eye(task.n_clauses, dtype=torch.bool)[None]
    ch = tt.channels(params, task, tt.ReaderConfig(min_recall=1.0))
    assert torch.equal(ch["serving"], where), ch["recall"][where].tolist()
    assert (ch["recall"] <= 1).all(), ch["recall"][where].tolist()


@pytest.mark.parametrize(("name", "width", "rows"), PLANTED)
def test_channel_ablation_on_the_planted_network(name, width, rows):
    task, params, where, _ = _planted(name, width, rows)
    out = tt.channel_ablation(params, task, where)
    has_witness = tt.unique_witness_inputs(task).any(0)
    assert torch.equal(out["before"][0].isnan(), ~has_witness)
    assert (out["before"][0, has_witness] == 1).all()
    assert (out["after"][0, has_witness] == 0).all()
    # Silencing an unrelated (silent or other-clause) row changes nothing.
    other = torch.roll(where, 1, dims=2)
    if task.n_outputs == task.n_clauses:  # each clause alone on its output
        kept = tt.channel_ablation(params, task, other)
        assert (kept["after"][0, has_witness] == 1).all()


def test_unique_witness_inputs_equal_brute_force(task):
    u = tt.unique_witness_inputs(task)
    assert u.shape == (2**task.n_vars, task.n_clauses)
    assert u.dtype == torch.bool
    assert u.tolist() == py_unique_witness(task)
    if task.config.readout == "clauses":
        assert torch.equal(u, task.clause_values())


def test_clause_without_a_unique_witness():
    # c1 | c2 covers c0 (x0 x1 x2 and then x3 either way): c0 never makes its output alone.
    task = hand_task(
        5,
        [
            ((0, 1, 2), (1, 1, 1)),
            ((0, 1, 3), (1, 1, 1)),
            ((0, 1, 3), (1, 1, -1)),
            ((2, 3, 4), (-1, -1, -1)),
        ],
        [(0, 1, 2, 3)],
    )
    u = tt.unique_witness_inputs(task)
    assert u.tolist() == py_unique_witness(task)
    assert not u[:, 0].any()
    assert u[:, 1:].any(0).all()
    params = tt.planted_network(task)
    assert tt.evaluate(params, task)["bit_accuracy"].item() == 1.0
    ch = tt.channels(params, task)
    assert ch["aligned"][0, 0, 0].item() is True
    assert ch["ablation_before"][0, 0].isnan() and ch["ablation_after"][0, 0].isnan()
    assert ch["carries"][0].tolist() == [False, True, True, True]


def test_a_row_holding_two_clauses():
    # c0 = x0 x1 x2, c1 = x0 x1 x3, one output each.
    task = hand_task(5, [((0, 1, 2), (1, 1, 1)), ((0, 1, 3), (1, 1, 1))], [(0,), (1,)])
    params = net(
        W1=[
            [1.0, 1.0, 1.0, 1.0, 0.0],  # fires when 3 of x0..x3 hold: serves c0 and c1
            [1.0, 1.0, 1.0, 0.1, 0.0],  # aligned to both, fires only when x0 x1 x2 hold
            [0.0, 0.0, 0.0, 0.0, 0.0],  # silent
        ],
        b1=[-2.0, -2.5, 0.0],
        W2=[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]],
        b2=[-0.5, -0.5],
    )
    ch = tt.channels(params, task)
    assert ch["aligned"][0].tolist() == [[True, True], [True, True], [False, False]]
    # Row 1's recall for c1 is P(x2 | c1) = 1/2: aligned, not serving.
    assert ch["recall"][0, 1].tolist() == [1.0, 0.5]
    assert ch["recall"][0, 0].tolist() == [1.0, 1.0]
    assert ch["serving"][0].tolist() == [[True, True], [True, False], [False, False]]
    assert ch["shared_rows"].tolist() == [1]
    assert ch["channel_size"].tolist() == [[2, 2]]
    # Row 0: act = max(0, s - 2) with s = x0 + x1 + x2 + x3; of its mass 6/16, 4/16 falls
    # where c0 or c1 holds. Row 1 fires only on c0.
    assert ch["selectivity"][0, 0].item() == pytest.approx(2 / 3)
    assert ch["selectivity"][0, 1].item() == pytest.approx(1.0)
    assert ch["selectivity"][0, 2].isnan()
    assert ch["selective"][0].tolist() == [[True, True], [True, False], [False, False]]
    assert ch["carries"][0].tolist() == [True, True]
    assert ch["ablation_before"][0].tolist() == [1.0, 1.0]
    assert ch["ablation_after"][0].tolist() == [0.0, 0.0]
    # A higher recall bar: row 0 still serves both (recall 1).
    strict = tt.channels(params, task, tt.ReaderConfig(min_recall=1.0, min_selectivity=0.7))
    assert strict["shared_rows"].tolist() == [1]
    assert strict["selective"][0].tolist() == [[False, False], [True, False], [False, False]]


def others_of(task, c):
    return [d for d in range(task.n_clauses) if d != c]


def test_a_clause_on_no_row():
    task = tt.make_task(**TASKS["groups"])
    params = tt.planted_network(task)
    gone = 4
    params["W1"][0, gone] = 0
    params["b1"][0, gone] = 0
    params["W2"][0, :, gone] = 0
    ch = tt.channels(params, task)
    assert not ch["aligned"][0, :, gone].any()
    assert ch["channel_size"][0, gone].item() == 0
    assert ch["carries"][0, gone].item() is False
    # Even with no ablation bar at all, an empty channel carries nothing.
    lax = tt.channels(params, task, tt.ReaderConfig(min_ablation_drop=0.0))
    assert lax["carries"][0, gone].item() is False
    assert lax["carries"][0, others_of(task, gone)].all()
    assert not ch["serving"][0, :, gone].any()
    others = others_of(task, gone)
    has_witness = tt.unique_witness_inputs(task).any(0)
    assert torch.equal(ch["carries"][0, others], has_witness[others])
    # Nothing computes the clause now: its output misses it.
    assert tt.evaluate(params, task)["exact_outputs"].item() < 1


def test_an_always_on_aligned_row_is_not_selective():
    # c0 = x0 & ~x1 & x2; the row holds its code, but a bias of +10 keeps it on everywhere.
    task = hand_task(6, [((0, 1, 2), (1, -1, 1)), ((3, 4, 5), (1, 1, 1))], [(0,), (1,)])
    params = net(
        W1=[[1.0, -1.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]],
        b1=[10.0, -2.0],
        W2=[[1.0, 0.0], [0.0, 1.0]],
        b2=[-11.5, -0.5],
    )
    # This is the linear AND of section 6: logit 0 = (x0 - x1 + x2) - 1.5, exact.
    assert tt.evaluate(params, task)["exact_outputs"].item() == 1.0
    ch = tt.channels(params, task)
    assert ch["aligned"][0].tolist() == [[True, False], [False, True]]
    assert ch["firing_rate"][0, 0].item() == 1.0
    assert ch["serving"][0, 0, 0].item() is True
    # Activation 10 + a with a = x0 - x1 + x2: mass 12/8 on c0 out of E[10 + a] = 10.5,
    # i.e. 1/7, barely above c0's base rate 1/8.
    assert ch["selectivity"][0, 0].item() == pytest.approx(1 / 7, rel=1e-5)
    assert ch["selective"][0, 0, 0].item() is False
    # The honest row 1 is selective.
    assert ch["selectivity"][0, 1].item() == pytest.approx(1.0)
    assert ch["selective"][0, 1, 1].item() is True
    # Both clauses are linear threshold functions: the linearization test keeps them exact.
    lin = tt.linearization_test(params, task)
    assert lin["linear_exact_outputs"].item() == 1.0


def test_row_activity_and_selectivity_equal_brute_force():
    task = tt.make_task(
        n_vars=6, n_clauses=6, clause_size=2, readout="groups", group_size=2, seed=9, input_p=0.3
    )
    params = random_params(task, width=5, seeds=[0, 1])
    g = torch.Generator().manual_seed(1)
    served = torch.rand(2, 5, task.n_clauses, generator=g) < 0.3
    served[0, 0] = False  # a row that serves nothing
    act = tt.row_activity(params, task)
    sel = tt.selectivity(params, task, served)
    A = tt.hidden(params, task.inputs()).tolist()  # [S][N][h]
    xs = py_inputs(task.n_vars)
    for s in range(2):
        for r in range(5):
            mass = on = fire = 0.0
            for i, x in enumerate(xs):
                w = py_weight(x, 0.3)
                a = A[s][i][r]
                fire += w * (a > 0)
                mass += w * a
                if any(served[s, r, c] and py_holds(cl, x) for c, cl in enumerate(task.clauses)):
                    on += w * a
            assert act["firing_rate"][s, r].item() == pytest.approx(fire, abs=1e-6)
            if mass > 0 and served[s, r].any():
                assert sel[s, r].item() == pytest.approx(on / mass, rel=1e-5, abs=1e-7)
            else:
                assert math.isnan(sel[s, r].item())
            for c, cl in enumerate(task.clauses):
                num = sum(
                    py_weight(x, 0.3) * (A[s][i][r] > 0)
                    for i, x in enumerate(xs)
                    if py_holds(cl, x)
                )
                den = sum(py_weight(x, 0.3) for x in xs if py_holds(cl, x))
                assert act["recall"][s, r, c].item() == pytest.approx(num / den, abs=1e-6)


# ---------------------------------------------------------------- proximity and fates


def _fates_example():
    # c0 = x0 & x1, c1 = ~x2 & x3, c2 = x0 & ~x3; one output each.
    task = hand_task(
        4, [((0, 1), (1, 1)), ((2, 3), (-1, 1)), ((0, 3), (1, -1))], [(0,), (1,), (2,)]
    )
    initial = net(
        W1=[
            [0.5, -0.2, 0.1, 0.3],  # aligned: c0 (.5, -.2) c1 (-.1, .3) c2 (.5, -.3): 1 1 1
            [0.4, 0.6, 0.7, -0.5],  # c0 (.4, .6) c1 (-.7, -.5) c2 (.4, .5): 0 2 0
            [-0.1, -0.1, -0.3, 0.1],  # c0 (-.1, -.1) c1 (.3, .1) c2 (-.1, -.1): 2 0 2
        ],
        b1=[0.0] * 3,
        W2=[[0.1] * 3] * 3,
        b2=[0.0] * 3,
    )
    final = net(
        W1=[
            [1.0, 1.0, -0.5, -0.2],  # c0 (1, 1) c1 (.5, -.2) c2 (1, .2): 0 1 0
            [0.8, -0.3, 0.2, -0.9],  # c0 (.8, -.3) c1 (-.2, -.9) c2 (.8, .9): 1 2 0
            [0.3, 0.3, -0.6, 0.7],  # c0 (.3, .3) c1 (.6, .7) c2 (.3, -.7): 0 0 1
        ],
        b1=[0.0] * 3,
        W2=[
            [1.0, 1.0, -1.0],  # c0's output: row 2 reads out negatively
            [1.0, 1.0, 1.0],
            [0.0, 1.0, 1.0],  # c2's output: row 0 reads out with exactly 0
        ],
        b2=[0.0] * 3,
    )
    return task, initial, final


def test_proximal_and_crowding_by_hand():
    task, initial, _ = _fates_example()
    W1 = initial["W1"]
    assert tt.code_distance(W1, task)[0].tolist() == [[1, 1, 1], [0, 2, 0], [2, 0, 2]]
    assert tt.proximal(W1, task, delta=1)[0].tolist() == [
        [True, True, True],
        [True, False, True],
        [False, True, False],
    ]
    assert tt.crowding(W1, task, delta=1)[0].tolist() == [3, 2, 1]
    assert tt.crowding(W1, task, delta=0)[0].tolist() == [0, 2, 1]
    assert tt.crowding(W1, task, delta=2)[0].tolist() == [3, 3, 3]
    # tau = 0.15 drops row 2's aligned 0.1 on x3: c1 is no longer a code there.
    assert tt.code_distance(W1, task, tau=0.15)[0].tolist() == [[1, 1, 1], [0, 2, 0], [2, 1, 2]]
    assert tt.crowding(W1, task, delta=0, tau=0.15)[0].tolist() == [0, 2, 0]


def test_location_fates_by_hand():
    task, initial, final = _fates_example()
    fates = tt.location_fates(initial, final, task)
    assert set(fates) == {"proximal", "final", "precursor", "rejected"}
    T, F = True, False
    assert fates["proximal"][0].tolist() == [[T, T, T], [T, F, T], [F, T, F]]
    # Final codes: row 0 for c0 (row 2's c0 code reads out negatively, row 0's c2 code with
    # 0), row 2 for c1, row 1 for c2.
    assert fates["final"][0].tolist() == [[T, F, F], [F, F, T], [F, T, F]]
    assert fates["precursor"][0].tolist() == [[T, F, F], [F, F, T], [F, T, F]]
    assert fates["rejected"][0].tolist() == [[F, T, T], [T, F, F], [F, F, F]]
    strict = tt.location_fates(initial, final, task, tt.ReaderConfig(delta=0))
    assert strict["proximal"][0].tolist() == [[F, F, F], [T, F, T], [F, T, F]]
    assert strict["precursor"][0].tolist() == [[F, F, F], [F, F, T], [F, T, F]]
    assert strict["rejected"][0].tolist() == [[F, F, F], [T, F, F], [F, F, F]]


def test_clause_overlap(task):
    ov = tt.clause_overlap(task)
    k = task.clause_size
    for key in ("same", "opposite", "distance"):
        assert ov[key].shape == (task.n_clauses, task.n_clauses)
        assert torch.equal(ov[key], ov[key].T)
    assert (ov["same"].diagonal() == k).all()
    assert (ov["opposite"].diagonal() == 0).all()
    assert torch.equal(ov["distance"], k - ov["same"])
    for a, ca in enumerate(task.clauses):
        la = dict(zip(ca.variables, ca.signs, strict=True))
        for b, cb in enumerate(task.clauses):
            lb = dict(zip(cb.variables, cb.signs, strict=True))
            shared = la.keys() & lb.keys()
            assert ov["same"][a, b].item() == sum(la[v] == lb[v] for v in shared)
            assert ov["opposite"][a, b].item() == sum(la[v] != lb[v] for v in shared)
            # Opposite literals: the clauses never hold together.
            if ov["opposite"][a, b] > 0:
                values = task.clause_values()
                assert not (values[:, a] & values[:, b]).any()
    distinct = ~torch.eye(task.n_clauses, dtype=torch.bool)
    assert (ov["same"][distinct] < k).all()  # distinct clauses


# ---------------------------------------------------------------- metrics


@pytest.mark.parametrize("name", ["dnf", "groups", "templates", "k2"])
def test_planted_or_network_fails_the_linearization_test(name):
    task = tt.make_task(**TASKS[name])
    params = tt.planted_network(task)
    lin = tt.linearization_test(params, task)
    assert lin["bit_accuracy"].tolist() == [1.0]
    assert lin["exact_outputs"].tolist() == [1.0]
    assert lin["linear_exact_outputs"].tolist() == [0.0]
    assert lin["linear_bit_accuracy"].item() < 0.95


def test_a_linear_network_passes_the_linearization_test():
    # Every row always on (bias +10): relu is the identity on the truth table. Each clause
    # is a linear threshold function, so the `clauses` readout is computed exactly anyway.
    task = tt.make_task(n_vars=8, n_clauses=5, clause_size=3, readout="clauses", seed=7)
    m, n = task.n_clauses, task.n_vars
    W1 = torch.zeros(m, n)
    W2 = torch.eye(m)
    b2 = torch.zeros(m)
    for c, clause in enumerate(task.clauses):
        W1[c, list(clause.variables)] = torch.tensor(clause.signs, dtype=torch.float32)
        b2[c] = -(10.0 + sum(s > 0 for s in clause.signs) - 0.5)
    params = {"W1": W1[None], "b1": torch.full((1, m), 10.0), "W2": W2[None], "b2": b2[None]}
    assert (tt.hidden(params, task.inputs()) > 0).all()
    lin = tt.linearization_test(params, task)
    assert lin["bit_accuracy"].tolist() == [1.0]
    assert lin["linear_bit_accuracy"].tolist() == [1.0]
    assert lin["linear_exact_outputs"].tolist() == lin["exact_outputs"].tolist() == [1.0]
    # And the reader sees aligned, always-on rows: none of them selective.
    ch = tt.channels(params, task)
    assert torch.equal(ch["aligned"][0], torch.eye(m, dtype=torch.bool))
    assert (ch["firing_rate"] == 1).all()
    assert not ch["selective"].any()


def test_linearization_test_of_random_networks_matches_identity_forward():
    task = tt.make_task(**TASKS["groups"])
    params = random_params(task, 6, [0, 1, 2])
    lin = tt.linearization_test(params, task)
    ident = tt.evaluate(params, task, activation="identity")
    relu = tt.evaluate(params, task)
    assert torch.equal(lin["linear_bit_accuracy"], ident["bit_accuracy"])
    assert torch.equal(lin["bit_accuracy"], relu["bit_accuracy"])
    assert torch.equal(lin["linear_exact_outputs"], ident["exact_outputs"])
    with pytest.raises(ValueError, match="activation"):
        tt.evaluate(params, task, activation="tanh")


def test_evaluate_equals_manual_computation():
    task = tt.make_task(
        n_vars=6, n_clauses=6, clause_size=2, readout="groups", group_size=2, seed=2, input_p=0.4
    )
    params = random_params(task, 5, [0, 1, 2, 3])
    # Lane 3 is the constant predictor "always 1": balanced accuracy 1/2.
    params["W2"][3] = 0
    params["b2"][3] = 1.0
    scores = tt.evaluate(params, task)
    logits = tt.forward(params, task.inputs()).tolist()
    _, Y = task.truth_table()
    Y = Y.tolist()
    xs = py_inputs(task.n_vars)
    n_out = task.n_outputs
    for s in range(4):
        out_acc, balanced, exact = [], [], 0
        for o in range(n_out):
            right = [(logits[s][i][o] > 0) == (Y[i][o] == 1) for i in range(len(xs))]
            ws = [py_weight(x, 0.4) for x in xs]
            out_acc.append(sum(w for w, r in zip(ws, right, strict=True) if r))
            pos = sum(w for w, y in zip(ws, Y, strict=True) if y[o] == 1)
            tp = sum(w for w, r, y in zip(ws, right, Y, strict=True) if r and y[o] == 1)
            tn = sum(w for w, r, y in zip(ws, right, Y, strict=True) if r and y[o] == 0)
            balanced.append((tp / pos + tn / (1 - pos)) / 2)
            exact += all(right)
        assert scores["output_accuracy"][s].tolist() == pytest.approx(out_acc, abs=1e-6)
        assert scores["bit_accuracy"][s].item() == pytest.approx(sum(out_acc) / n_out, abs=1e-6)
        assert scores["balanced_accuracy"][s].item() == pytest.approx(
            sum(balanced) / n_out, abs=1e-6
        )
        assert scores["exact_outputs"][s].item() == pytest.approx(exact / n_out)
    assert scores["balanced_accuracy"][3].item() == pytest.approx(0.5)


@pytest.mark.parametrize("name", list(TASKS))
def test_trivial_accuracy(name):
    task = tt.make_task(**TASKS[name])
    p = task.config.input_p
    xs = py_inputs(task.n_vars)
    rates = []
    for g in task.groups:
        rates.append(
            sum(py_weight(x, p) for x in xs if any(py_holds(task.clauses[c], x) for c in g))
        )
    expected = sum(max(r, 1 - r) for r in rates) / len(rates)
    assert tt.trivial_accuracy(task) == pytest.approx(expected, abs=1e-6)
    # The best constant network scores exactly that.
    params = random_params(task, 3, [0])
    params["W2"].zero_()
    params["b2"][0] = torch.tensor([1.0 if r > 0.5 else -1.0 for r in rates])
    assert tt.evaluate(params, task)["bit_accuracy"].item() == pytest.approx(expected, abs=1e-6)
    assert tt.evaluate(params, task)["balanced_accuracy"].item() == pytest.approx(0.5)


# ---------------------------------------------------------------- trained networks


@pytest.fixture(scope="module")
def trained():
    task = tt.make_task()
    run = tt.train(task, tt.ModelConfig(width=8), tt.TrainConfig(steps=300), [0, 1, 2, 3])
    return task, run


def test_trained_network_reader_invariants(trained):
    task, run = trained
    S, h, m = 4, 8, task.n_clauses
    reader = tt.ReaderConfig()
    ch = tt.channels(run.final, task, reader)
    shapes = {
        "aligned": (S, h, m),
        "serving": (S, h, m),
        "selective": (S, h, m),
        "selectivity": (S, h),
        "firing_rate": (S, h),
        "recall": (S, h, m),
        "carries": (S, m),
        "ablation_before": (S, m),
        "ablation_after": (S, m),
        "shared_rows": (S,),
        "channel_size": (S, m),
    }
    for key, shape in shapes.items():
        assert ch[key].shape == shape, key
    aligned, serving, selective = ch["aligned"], ch["serving"], ch["selective"]
    assert not (serving & ~aligned).any()
    assert not (selective & ~serving).any()
    sel = ch["selectivity"]
    finite = ~sel.isnan()
    assert ((sel[finite] >= 0) & (sel[finite] <= 1 + 1e-6)).all()
    # NaN exactly where a row serves nothing or never fires.
    assert torch.equal(sel.isnan(), ~serving.any(-1) | (ch["firing_rate"] == 0))
    assert (sel[selective.any(-1)] >= reader.min_selectivity).all()
    assert torch.equal(ch["channel_size"], aligned.sum(1))
    assert not (ch["carries"] & (ch["channel_size"] == 0)).any()
    assert torch.equal(ch["shared_rows"], (serving.sum(-1) >= 2).sum(-1))
    for key in ("firing_rate", "recall"):
        assert ((ch[key] >= 0) & (ch[key] <= 1 + 1e-6)).all(), key
    assert torch.equal(serving, aligned & (ch["recall"] >= reader.min_recall))
    no_witness = ~tt.unique_witness_inputs(task).any(0)
    for key in ("ablation_before", "ablation_after"):
        v = ch[key]
        assert torch.equal(v.isnan(), no_witness.expand(S, m)), key
        assert ((v[~v.isnan()] >= 0) & (v[~v.isnan()] <= 1 + 1e-6)).all(), key
    drop = (ch["ablation_before"] - ch["ablation_after"]).nan_to_num(0.0)
    assert torch.equal(ch["carries"], aligned.any(1) & (drop >= reader.min_ablation_drop))
    # The static reading agrees with a brute-force sign count.
    d = py_code_distance(run.final["W1"].tolist(), task, 0.0)
    W2 = run.final["W2"]
    for s in range(S):
        for r in range(h):
            for c in range(m):
                expected = d[s][r][c] == 0 and W2[s, task.output_of[c], r].item() > 0
                assert aligned[s, r, c].item() == expected
    # The network learned something and the regime is not linear.
    lin = tt.linearization_test(run.final, task)
    assert (lin["bit_accuracy"] > tt.trivial_accuracy(task)).all()
    assert (lin["linear_bit_accuracy"] < lin["bit_accuracy"]).all()


def test_trained_network_fates_partition_proximal(trained):
    task, run = trained
    for t in sorted(run.checkpoints):
        fates = tt.location_fates(run.init, run.checkpoints[t], task)
        assert torch.equal(fates["precursor"], fates["proximal"] & fates["final"])
        assert torch.equal(fates["rejected"], fates["proximal"] & ~fates["final"])
        assert not (fates["precursor"] & fates["rejected"]).any()
        assert torch.equal(fates["precursor"] | fates["rejected"], fates["proximal"])
        assert torch.equal(fates["final"], tt.aligned(run.checkpoints[t], task))
    assert torch.equal(tt.crowding(run.init["W1"], task), tt.proximal(run.init["W1"], task).sum(-1))


def test_channels_with_masks_read_the_masked_network(trained):
    task, run = trained
    masks = {"W1": torch.ones_like(run.final["W1"])}
    masks["W1"][:, :, 0] = 0  # drop every weight on x0
    masked = tt.channels(run.final, task, masks=masks)
    explicit = tt.channels(tt.apply_masks(run.final, masks), task)
    for key in masked:
        assert torch.equal(masked[key], explicit[key]) or torch.allclose(
            masked[key], explicit[key], equal_nan=True
        ), key
    uses_x0 = (task.variables == 0).any(-1)
    assert not masked["aligned"][:, :, uses_x0].any()


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        (dict(tau=-0.1), ValueError, "tau"),
        (dict(tau=float("nan")), ValueError, "tau"),
        (dict(delta=-1), ValueError, "delta"),
        (dict(delta=1.0), TypeError, "delta"),
        (dict(min_recall=1.5), ValueError, "min_recall"),
        (dict(min_selectivity=-0.1), ValueError, "min_selectivity"),
        (dict(min_ablation_drop=2.0), ValueError, "min_ablation_drop"),
    ],
)
def test_bad_reader_config_raises_naming_the_parameter(kwargs, error, name):
    with pytest.raises(error) as info:
        tt.ReaderConfig(**kwargs)
    assert name in str(info.value)


def test_reader_functions_validate_their_inputs():
    task = tt.make_task(**TASKS["dnf"])
    W1 = torch.zeros(2, 4, task.n_vars + 1)
    with pytest.raises(ValueError, match="n_vars"):
        tt.code_distance(W1, task)
    with pytest.raises(ValueError, match="n_vars"):
        tt.aligned_weights(W1, task)
    with pytest.raises(ValueError, match="tau"):
        tt.code_distance(torch.zeros(4, task.n_vars), task, tau=-1.0)
    with pytest.raises(ValueError, match="delta"):
        tt.proximal(torch.zeros(4, task.n_vars), task, delta=-1)
    with pytest.raises(ValueError, match="rows"):
        tt.planted_network(task, rows=[0, 0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="rows"):
        tt.planted_network(task, width=3)


# ---------------------------------------------------------------- the exact law of crowding


def test_crowding_law_of_disjoint_clauses_is_binomial():
    # no shared variable: each clause is proximal (d <= 1, probability 4/8) independently
    task = hand_task(6, [((0, 1, 2), (1, 1, -1)), ((3, 4, 5), (-1, 1, 1))], [(0,), (1,)])
    assert tt.crowding_law(task, delta=1).tolist() == [0.25, 0.5, 0.25]
    # delta = 0: proximal means a code, probability 1/8
    p = 1 / 8
    assert tt.crowding_law(task, delta=0).tolist() == pytest.approx(
        [(1 - p) ** 2, 2 * p * (1 - p), p**2]
    )


def test_crowding_law_of_clauses_that_share_variables_by_hand():
    # c0 = x0 & x1 & x2 and c1 = x0 & x1 & x3 share two literals. With a the number of
    # negative signs among (w0, w1) (1/4, 1/2, 1/4 for a = 0, 1, 2): a = 0, both are proximal;
    # a = 2, neither; a = 1, c0 is proximal iff w2 > 0 and c1 iff w3 > 0. So P(both) =
    # 1/4 + 1/2 * 1/4 = 3/8 = P(neither), P(one) = 1/4: wider than Binomial(2, 1/2).
    task = hand_task(4, [((0, 1, 2), (1, 1, 1)), ((0, 1, 3), (1, 1, 1))], [(0, 1)])
    assert tt.crowding_law(task, delta=1).tolist() == [0.375, 0.25, 0.375]
    # against the empirical crowding of many random rows (independent, fair signs)
    task = tt.make_task(n_vars=8, n_clauses=9, seed=3)
    law = tt.crowding_law(task)
    rows = torch.rand(20_000, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    counts = torch.bincount(tt.crowding(rows, task), minlength=10).double()
    assert law.sum().item() == pytest.approx(1.0)
    assert (counts / counts.sum()).tolist() == pytest.approx(law.tolist(), abs=0.01)
    assert tt.chi_square_test(counts, law)["p"] > 1e-3
    # the mean is m P(proximal) whatever the dependence (linearity)
    assert (torch.arange(10) * law).sum().item() == pytest.approx(9 * 0.5)
    with pytest.raises(ValueError, match="delta"):
        tt.crowding_law(task, delta=-1)
