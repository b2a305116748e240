"""Tests of toyticket.selection (chapter 5): hand-built networks whose fates and mechanisms are
worked out in the comments, a logistic regression with a closed-form answer, nulls whose
margins are checked exactly, and planted cases where a null must not be rejected."""

import math

import pytest
import torch
from handbuilt import hand_task

import toyticket as tt
from toyticket import selection as sel


def net(W1, b1, W2, b2):
    return {
        "W1": torch.tensor(W1, dtype=torch.float32)[None],
        "b1": torch.tensor(b1, dtype=torch.float32)[None],
        "W2": torch.tensor(W2, dtype=torch.float32)[None],
        "b2": torch.tensor(b2, dtype=torch.float32)[None],
    }


# c0 = x0 & x1, c1 = x2 & x3 (output 0); c2 = x0 & ~x2, c3 = ~x1 & x3 (output 1)
TASK = hand_task(
    4, [((0, 1), (1, 1)), ((2, 3), (1, 1)), ((0, 2), (1, -1)), ((1, 3), (-1, 1))], [[0, 1], [2, 3]]
)
# Five rows, read at location (r, c0):
# r0 dead (bias -10): "dead"; r1 codes c1 (same output), x0 opposed: "taken_same";
# r2 codes c2 and c3 (output 1), x1 opposed: "taken_other"; r3 aligned on c0 but its readout
# to output 0 is negative: "readout"; r4 live, x1 opposed, codes nothing: "literal".
FINAL = net(
    [[1, 1, 0, 0], [-1, 1, 1, 1], [1, -1, -1, 1], [1, 1, -1, -1], [1, -1, 1, -1]],
    [-10, 0.5, 0.5, 0.5, 0.5],
    [[1, 1, -1, -1, 1], [1, -1, 1, -1, 1]],
    [0, 0],
)


def test_mechanisms_on_a_hand_built_network():
    mech = sel.rejection_mechanism(FINAL, FINAL, TASK)
    names = [sel.MECHANISMS[i] if i >= 0 else "code" for i in mech[0, :, 0].tolist()]
    assert names == ["dead", "taken_same", "taken_other", "readout", "literal"]
    assert mech[0, 1, 1] == -1  # r1 codes c1
    assert mech[0, 2, 2] == -1 and mech[0, 2, 3] == -1
    status = sel.code_status(FINAL, TASK)
    assert not status[0, 0].any()  # a dead row codes nothing, whatever its signs


def test_covariates_count_other_proximal_clauses():
    cov = sel.location_covariates(FINAL, TASK)
    # row 1 = [-1, 1, 1, 1]: distances c0 1, c1 0, c2 2 (x0 -, ~x2 -), c3 1 (~x1 -): proximal
    # c0, c1, c3; so at (1, c0) two others, one of another output; one other at distance 0
    assert cov["others"][0, 1, 0] == 2
    assert cov["other_outputs"][0, 1, 0] == 1
    assert cov["others_d0"][0, 1, 0] == 1
    # c0 conflicts with c3 (x1 vs ~x1): c3 is proximal to row 1
    assert cov["conflicting"][0, 1, 0] == 1
    assert cov["d0"][0, 1, 0] == 1 and cov["margin"][0, 1, 0] == -1


def test_settling_steps():
    steps = torch.tensor([0, 5, 10, 20])
    status = torch.tensor(
        [[True, True, True, True], [False, True, False, True], [False, False, False, True]]
    ).T  # [T, 3]
    assert sel.settling_steps(status, steps).tolist() == [0, 20, 20]
    with pytest.raises(ValueError, match="steps"):
        sel.settling_steps(status, steps[:3])


def test_logistic_fit_matches_the_closed_form():
    # one binary covariate: the MLE is the two groups' log-odds, with known standard errors
    x = torch.tensor([0.0] * 40 + [1.0] * 60)
    y = torch.tensor([1.0] * 10 + [0.0] * 30 + [1.0] * 45 + [0.0] * 15)
    X = torch.stack([torch.ones(100), x], 1)
    fit = sel.logistic_fit(X, y)
    p0, p1 = 10 / 40, 45 / 60
    assert fit["converged"]
    assert fit["coef"][0].item() == pytest.approx(math.log(p0 / (1 - p0)), abs=1e-8)
    assert fit["coef"][1].item() == pytest.approx(
        math.log(p1 / (1 - p1)) - math.log(p0 / (1 - p0)), abs=1e-8
    )
    se1 = math.sqrt(1 / (40 * p0 * (1 - p0)) + 1 / (60 * p1 * (1 - p1)))
    assert fit["se"][1].item() == pytest.approx(se1, rel=1e-6)
    z = fit["coef"][1].item() / se1
    assert fit["p"][1].item() == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-6)


def test_logistic_fit_does_not_reject_a_planted_null():
    g = torch.Generator().manual_seed(3)
    N = 2000
    x = torch.randn(N, generator=g, dtype=torch.float64)
    groups = torch.arange(N) % 10
    y = (torch.rand(N, generator=g, dtype=torch.float64) < 0.3).double()
    X = torch.cat([torch.ones(N, 1, dtype=torch.float64), x[:, None], sel.fixed_effects(groups)], 1)
    fit = sel.logistic_fit(X, y, clusters=groups)
    assert fit["p"][1] > 0.05 and fit["p_cluster"][1] > 0.05
    # and a planted effect is found
    y2 = (torch.rand(N, generator=g, dtype=torch.float64) < torch.sigmoid(x)).double()
    assert sel.logistic_fit(X, y2, clusters=groups)["p_cluster"][1] < 1e-6


def test_logistic_fit_rejects_bad_input():
    X = torch.ones(5, 2)
    with pytest.raises(ValueError, match="rank"):
        sel.logistic_fit(X, torch.tensor([0.0, 1, 0, 1, 0]))
    with pytest.raises(ValueError, match="0 and 1"):
        sel.logistic_fit(torch.randn(5, 2), torch.tensor([0.0, 2, 0, 1, 0]))
    with pytest.raises(ValueError, match="max_iter"):
        sel.logistic_fit(torch.randn(5, 2), torch.tensor([0.0, 1, 0, 1, 0]), max_iter=0)


def _grid(seed, h=12, m=8):
    g = torch.Generator().manual_seed(seed)
    allowed = torch.rand(h, m, generator=g) < 0.6
    marked = allowed & (torch.rand(h, m, generator=g) < 0.35)
    return marked, allowed


def test_swap_null_keeps_margins_and_mixes():
    marked, allowed = _grid(0)
    null = sel.swap_null(marked, allowed, n_samples=50, seed=1)
    assert (null.sum(1) == marked.sum(0)).all()  # clause counts
    assert (null.sum(2) == marked.sum(1)).all()  # row counts
    assert not (null & ~allowed).any()
    assert (null != marked).any(-1).any(-1).float().mean() > 0.5  # the chain moves
    assert torch.equal(null, sel.swap_null(marked, allowed, n_samples=50, seed=1))  # seeded
    # a row-level covariate's association is the same in every draw: fixed by row capacity
    crowd = allowed.sum(1, keepdim=True).expand_as(allowed).float()
    gaps = sel.crowding_gap(allowed & ~null, allowed, crowd)
    observed = sel.crowding_gap(allowed & ~marked, allowed, crowd)
    assert torch.allclose(gaps, observed.expand_as(gaps), atol=1e-12)


def test_random_row_null_keeps_clause_counts_and_is_not_rejected_when_planted():
    marked, allowed = _grid(2)
    null = sel.random_row_null(marked, allowed, n_samples=100, seed=0)
    assert (null.sum(1) == marked.sum(0)).all()
    assert not (null & ~allowed).any()
    # planted: the observed codes are themselves a random-row draw, so the crowding gap must
    # not stand out from the null (two-sided p well above 0.05)
    planted = sel.random_row_null(marked, allowed, n_samples=1, seed=99)[0]
    crowd = allowed.sum(1, keepdim=True).expand_as(allowed).float()
    draws = sel.crowding_gap(allowed & ~null, allowed, crowd)
    obs = sel.crowding_gap(allowed & ~planted, allowed, crowd)
    p_high = ((draws >= obs).sum() + 1) / (draws.numel() + 1)
    p_low = ((draws <= obs).sum() + 1) / (draws.numel() + 1)
    assert min(p_high, p_low) > 0.025


def test_crowding_null_is_the_gap_against_draws_that_keep_the_converged_counts():
    marked, allowed = _grid(2)
    rejected = allowed & ~marked
    crowd = allowed.sum(1, keepdim=True).expand_as(allowed).float()
    for null in ("random_row", "swap"):
        observed, draws = sel.crowding_null(rejected, allowed, crowd, null, 50, seed=3)
        assert torch.equal(observed, sel.crowding_gap(rejected, allowed, crowd))
        assert tuple(draws.shape) == (50,)
    sample = sel.random_row_null(marked, allowed, 50, seed=3)
    expected = sel.crowding_gap(allowed & ~sample, allowed, crowd)
    _, draws = sel.crowding_null(rejected, allowed, crowd, "random_row", 50, seed=3)
    assert torch.equal(draws.nan_to_num(7.0), expected.nan_to_num(7.0))
    with pytest.raises(ValueError, match="null"):
        sel.crowding_null(rejected, allowed, crowd, "shuffle")


def test_nulls_reject_bad_input():
    marked, allowed = _grid(0)
    with pytest.raises(ValueError, match="outside"):
        sel.swap_null(~allowed, allowed)
    with pytest.raises(ValueError, match="n_samples"):
        sel.random_row_null(marked, allowed, n_samples=0)
    with pytest.raises(TypeError, match="marked"):
        sel.swap_null(marked.float(), allowed)


def test_auc():
    s = torch.tensor([0.1, 0.4, 0.35, 0.8])
    assert sel.auc(s, torch.tensor([False, False, True, True])) == pytest.approx(0.75)
    assert sel.auc(torch.zeros(4), torch.tensor([False, True, False, True])) == 0.5
    assert math.isnan(sel.auc(s, torch.zeros(4, dtype=torch.bool)))


def test_crowding_edit_holds_the_target_fixed():
    task = tt.make_task(n_clauses=12, seed=0)
    W1 = tt.init_params(10, task.n_outputs, tt.ModelConfig(width=4), [0])["W1"][0]
    for r in range(4):
        c = 0
        near0 = tt.code_distance(W1[r][None], task) <= 1
        before = int(near0.sum()) - int(near0[0, c])
        after = {}
        for arm in sel.EDIT_ARMS:
            row = sel.crowding_edit(W1[r], task, c, arm)
            assert torch.equal(row[task.variables[c]], W1[r][task.variables[c]])
            assert torch.equal(row.abs(), W1[r].abs())
            near = tt.code_distance(row[None], task) <= 1
            after[arm] = int(near.sum()) - int(near[0, c])
        assert after["crowd"] >= before >= after["relieve"]
    with pytest.raises(ValueError, match="arm"):
        sel.crowding_edit(W1[0], task, 0, "more")
    with pytest.raises(ValueError, match="clause"):
        sel.crowding_edit(W1[0], task, 12, "crowd")


def test_trajectories_and_population_on_a_short_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TOYTICKET_STORE", "off")
    task = tt.make_task(n_clauses=12, seed=0)
    training = tt.TrainConfig(steps=30, lr=0.5, optimizer="sgd", checkpoints=(10,))
    run = sel.dense_run(task, tt.ModelConfig(width=8), training, [0, 1])
    tr = sel.trajectories(run, task)
    assert tr["steps"].tolist() == [0, 10, 30]
    assert tr["distance"].shape == (3, 2, 8, 12)
    pop = sel.population(run, task)
    assert torch.equal(pop["converged"] | pop["rejected"], pop["proximal"])
    assert torch.equal(tr["status"][-1] & pop["proximal"], pop["converged"])
    # margin > 0 exactly at distance 0 (tau = 0)
    assert torch.equal(tr["margin"] > 0, tr["distance"] == 0)


def test_intervention_study_rejects_bad_parameters():
    task = tt.make_task(n_clauses=12, seed=0)
    with pytest.raises(ValueError, match="n_targets"):
        sel.intervention_study(task, tt.ModelConfig(width=8), tt.TrainConfig(steps=5), [0], 9)
