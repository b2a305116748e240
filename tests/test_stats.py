"""Tests of toyticket.stats: intervals over seeds and over task draws, paired differences, the
sign-flip test, Holm's correction, Clopper-Pearson and "often" as a number.

Answers come from hand computation (worked out in the comments), closed forms and textbook
tables; the coverage of the two grand-mean intervals is measured on a simulated normal design."""

import math

import pytest
import torch

import toyticket as tt
from toyticket import stats

# ---------------------------------------------------------------- mean over seeds


def test_mean_ci_default_is_the_seeded_percentile_bootstrap():
    # the algorithm the chapters' regression-tested outputs were made with, written out again
    values = torch.tensor([[0.1, 0.5, 0.2, float("nan"), 0.9], [1.0, 2.0, 3.0, 4.0, 5.0]])
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(5, (2000, 5), generator=g)
    boots = values.double()[..., idx].nanmean(-1)
    mean, low, high = tt.mean_ci(values)
    assert torch.equal(mean, values.double().nanmean(-1))
    assert torch.equal(low, boots.nanquantile(0.025, dim=-1))
    assert torch.equal(high, boots.nanquantile(0.975, dim=-1))
    assert tt.format_ci(values[1]) == "3.00 [1.80, 4.20]"  # as before the t method came


def test_mean_ci_t_method_matches_the_textbook_interval():
    # 1..5: mean 3, sd sqrt(2.5), se sqrt(0.5); t(0.975, 4) = 2.776445
    mean, low, high = tt.mean_ci(torch.arange(1.0, 6.0), method="t")
    half = 2.776445 * math.sqrt(0.5)
    assert mean.item() == pytest.approx(3.0)
    assert (low.item(), high.item()) == pytest.approx((3 - half, 3 + half), abs=1e-5)
    with pytest.raises(ValueError, match="method"):
        tt.mean_ci(torch.ones(3), method="bca")


@pytest.mark.parametrize(
    "p, df, expected",
    [
        (0.975, 1, 12.706205),
        (0.975, 4, 2.776445),
        (0.975, 15, 2.131450),
        (0.95, 10, 1.812461),
        (0.025, 30, -2.042272),
        (0.995, 3, 5.840909),
    ],
)
def test_t_quantiles_against_tables(p, df, expected):
    assert stats._t_ppf(p, df) == pytest.approx(expected, abs=1e-5)


# ---------------------------------------------------------------- grand means


def test_task_t_ci_by_hand():
    # task means 1, 2, 3, 4 (seeds symmetric about them): mean 2.5, sd sqrt(5/3),
    # se sqrt(5/12), t(0.975, 3) = 3.182446
    values = torch.tensor([[0.5, 1.5], [1.0, 3.0], [3.0, 3.0], [2.0, 6.0]])
    mean, low, high = tt.task_t_ci(values)
    half = 3.182446 * math.sqrt(5 / 12)
    assert mean.item() == pytest.approx(2.5)
    assert (low.item(), high.item()) == pytest.approx((2.5 - half, 2.5 + half), abs=1e-5)
    # a task whose seeds are all NaN drops out (3 tasks left, t with 2 df = 4.302653)
    values[3] = float("nan")
    mean, low, high = tt.task_t_ci(values)
    assert mean.item() == pytest.approx(2.0)
    assert (high - low).item() / 2 == pytest.approx(4.302653 * (1 / math.sqrt(3)), abs=1e-5)


def test_task_t_ci_falls_back_to_seeds_with_one_task():
    values = torch.arange(1.0, 6.0)[None]  # [1 task, 5 seeds]
    assert torch.allclose(
        torch.stack(tt.task_t_ci(values)), torch.stack(tt.mean_ci(values[0], method="t"))
    )
    # a single unit has no spread: NaN bounds, the mean stays
    mean, low, high = tt.task_t_ci(torch.tensor([[2.0]]))
    assert mean.item() == 2.0 and low.isnan() and high.isnan()


def test_hierarchical_ci_is_seeded_deterministic_and_nan_aware():
    g = torch.Generator().manual_seed(3)
    values = torch.randn(2, 5, 16, generator=g)  # [cells, tasks, seeds]
    first = tt.hierarchical_ci(values, seed=7)
    again = tt.hierarchical_ci(values, seed=7)
    other = tt.hierarchical_ci(values, seed=8)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[1], other[1])
    assert first[0].shape == (2,)
    assert torch.allclose(first[0], values.double().mean(-1).mean(-1))
    assert (first[1] < first[0]).all() and (first[0] < first[2]).all()
    # NaNs: a missing seed is ignored, an all-NaN task drops out of the grand mean
    holes = values.clone()
    holes[0, 0, :3] = float("nan")
    holes[0, 1] = float("nan")
    mean, low, high = tt.hierarchical_ci(holes)
    expected = holes[0].double().nanmean(-1)[~holes[0].double().nanmean(-1).isnan()].mean()
    assert mean[0].item() == pytest.approx(expected.item())
    assert not (low.isnan().any() or high.isnan().any())
    # constant values: the interval collapses onto the value
    mean, low, high = tt.hierarchical_ci(torch.full((3, 4), 0.25))
    assert mean.item() == low.item() == high.item() == 0.25


def _coverage(method, tasks, task_sd, reps=300, seeds=16):
    g = torch.Generator().manual_seed(11)
    sims = torch.randn(reps, tasks, 1, generator=g) * task_sd + torch.randn(
        reps, tasks, seeds, generator=g
    )
    _, low, high = tt.grand_mean_ci(sims, method, n_boot=500)
    return ((low <= 0) & (0 <= high)).double().mean().item()


def test_coverage_of_the_grand_mean_intervals_on_a_normal_design():
    # 5 tasks x 16 seeds, task spread = seed spread: the t-interval covers at its nominal 95%,
    # the percentile bootstrap undercovers (it ignores that 5 tasks leave 4 degrees of freedom)
    t_cov = _coverage("t", tasks=5, task_sd=1.0)
    boot_cov = _coverage("hierarchical", tasks=5, task_sd=1.0)
    assert 0.91 <= t_cov <= 0.99
    assert 0.80 <= boot_cov <= 0.93
    # with many tasks the bootstrap is fine too
    assert 0.91 <= _coverage("hierarchical", tasks=20, task_sd=1.0, reps=200) <= 0.99


def test_paired_difference_is_the_interval_of_a_minus_b():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 4, 6, generator=g), torch.rand(3, 4, 6, generator=g)
    for method in tt.CI_METHODS:
        got = tt.paired_difference(a, b, method)
        want = tt.grand_mean_ci(a - b, method)
        assert all(torch.allclose(x, y) for x, y in zip(got, want, strict=True))
    with pytest.raises(ValueError, match="shape of a"):
        tt.paired_difference(a, b[:, :3])
    with pytest.raises(ValueError, match="method"):
        tt.paired_difference(a, b, "bootstrap")
    with pytest.raises(ValueError, match="tasks, seeds"):
        tt.grand_mean_ci(torch.ones(5))


# ---------------------------------------------------------------- sign-flip test


def _one_task_per_unit(diffs):
    """A [tasks, 1 seed] pair (a, b) whose per-task differences are ``diffs``."""
    d = torch.tensor(diffs, dtype=torch.float64)[:, None]
    return d, torch.zeros_like(d)


def test_sign_flip_test_enumerated_by_hand():
    # units 1, 2, 3: the 8 signed sums are 6, 4, 2, 0, 0, -2, -4, -6; observed 6
    a, b = _one_task_per_unit([1, 2, 3])
    assert tt.sign_flip_test(a, b, "greater").item() == pytest.approx(1 / 8)
    assert tt.sign_flip_test(a, b).item() == pytest.approx(2 / 8)
    assert tt.sign_flip_test(a, b, "less").item() == pytest.approx(1.0)
    # units 1, -2, 3: observed 2; sums >= 2: {6, 4, 2}; |sums| >= 2: 6 of 8; sums <= 2: 6 of 8
    a, b = _one_task_per_unit([1, -2, 3])
    assert tt.sign_flip_test(a, b, "greater").item() == pytest.approx(3 / 8)
    assert tt.sign_flip_test(a, b).item() == pytest.approx(6 / 8)
    assert tt.sign_flip_test(a, b, "less").item() == pytest.approx(6 / 8)
    # b - a reverses the alternatives
    assert tt.sign_flip_test(b, a, "less").item() == pytest.approx(3 / 8)


def test_sign_flip_units_tasks_pairs_and_nan():
    # per-task mean differences 1, 2, 3 (from seeds 0/2, 1/3, 3/3): as above
    a = torch.tensor([[0.0, 2.0], [1.0, 3.0], [3.0, 3.0]])
    b = torch.zeros_like(a)
    assert tt.sign_flip_test(a, b, "greater").item() == pytest.approx(1 / 8)
    # pairs as units: 0, 2, 1, 3, 3, 3; a zero unit contributes nothing, so of the 64 flips,
    # hits are those reaching 12 = the all-plus sum: only the all-plus ones, 2 (zero flipped)
    assert tt.sign_flip_test(a, b, "greater", unit="pair").item() == pytest.approx(2 / 64)
    # a NaN unit is left out; several leading cells give several p-values
    a2 = torch.stack([a, torch.cat([a[:2], torch.full((1, 2), float("nan"))])])
    p = tt.sign_flip_test(a2, torch.zeros_like(a2), "greater")
    assert p.shape == (2,)
    assert p.tolist() == pytest.approx([1 / 8, 1 / 4])
    # a single task: its seeds are the units (1, 2, 3)
    one = torch.tensor([[1.0, 2.0, 3.0]])
    assert tt.sign_flip_test(one, torch.zeros_like(one), "greater").item() == pytest.approx(1 / 8)


def test_sign_flip_monte_carlo_is_seeded_and_close_to_exact():
    g = torch.Generator().manual_seed(5)
    d = torch.randn(12, 1, generator=g, dtype=torch.float64) + 0.4
    zeros = torch.zeros_like(d)
    exact = tt.sign_flip_test(d, zeros).item()
    mc = tt.sign_flip_test(d, zeros, max_exact=4, n_flips=20_000, seed=1).item()
    again = tt.sign_flip_test(d, zeros, max_exact=4, n_flips=20_000, seed=1).item()
    assert mc == again
    assert mc == pytest.approx(exact, abs=0.015)
    # strong effect: the Monte Carlo p-value is never below 1 / (1 + n_flips)
    big = torch.full((30, 1), 1.0, dtype=torch.float64)
    p = tt.sign_flip_test(big, torch.zeros_like(big), "greater", n_flips=999).item()
    assert p == pytest.approx(1 / 1000)
    with pytest.raises(ValueError, match="alternative"):
        tt.sign_flip_test(d, zeros, "bigger")
    with pytest.raises(ValueError, match="unit"):
        tt.sign_flip_test(d, zeros, unit="seed")


# ---------------------------------------------------------------- Holm


def test_holm_worked_example():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> monotone:
    # 0.02, 0.03, 0.06, 0.06; back in the input order
    p = torch.tensor([0.01, 0.04, 0.03, 0.005])
    assert tt.holm(p).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert tt.holm_reject(p, 0.05).tolist() == [True, False, False, True]
    assert tt.holm_reject(p, 0.01).tolist() == [False, False, False, False]
    # capped at 1, shape kept, a single p-value unchanged
    # 0.01 x 4 = 0.04, 0.4 x 3 -> 1, then 1, 1
    capped = tt.holm(torch.tensor([[0.5, 0.9], [0.4, 0.01]]))
    assert capped.shape == (2, 2)
    assert capped.flatten().tolist() == pytest.approx([1.0, 1.0, 1.0, 0.04])
    assert tt.holm(torch.tensor([0.2])).item() == pytest.approx(0.2)
    with pytest.raises(ValueError, match="pvalues"):
        tt.holm(torch.tensor([0.1, float("nan")]))
    with pytest.raises(ValueError, match="alpha"):
        tt.holm_reject(p, 1.5)


def test_holm_is_monotone_in_the_raw_p_values():
    g = torch.Generator().manual_seed(2)
    p = torch.rand(50, generator=g)
    adjusted = tt.holm(p)
    order = p.argsort()
    assert (adjusted[order].diff() >= 0).all()
    assert (adjusted >= p.double()).all() and (adjusted <= 1).all()


# ---------------------------------------------------------------- binomial and "often"


def test_clopper_pearson_against_known_values():
    assert tt.clopper_pearson(0, 10) == pytest.approx((0.0, 0.3085), abs=1e-4)
    assert tt.clopper_pearson(10, 10) == pytest.approx((0.6915, 1.0), abs=1e-4)
    assert tt.clopper_pearson(5, 10) == pytest.approx((0.1871, 0.8129), abs=1e-4)
    # closed forms: x = 1 -> low = 1 - (1 - a/2)^(1/n); x = n - 1 -> high = (1 - a/2)^(1/n)
    n = 25
    low, high = tt.clopper_pearson(1, n)
    assert low == pytest.approx(1 - 0.975 ** (1 / n), abs=1e-10)
    assert tt.clopper_pearson(n - 1, n)[1] == pytest.approx(0.975 ** (1 / n), abs=1e-10)
    assert tt.clopper_pearson(0, 10, level=0.9)[1] == pytest.approx(1 - 0.05**0.1, abs=1e-10)
    with pytest.raises(ValueError, match="successes"):
        tt.clopper_pearson(11, 10)
    with pytest.raises(ValueError, match="trials"):
        tt.clopper_pearson(0, 0)


def test_chi_square_test_against_closed_forms():
    # E = 20 in each of 3 categories: statistic (100 + 0 + 100) / 20 = 10; with 2 degrees of
    # freedom the chi-square survival function is exp(-x / 2)
    out = tt.chi_square_test(torch.tensor([10, 20, 30]), [1 / 3] * 3)
    assert out["statistic"] == pytest.approx(10.0)
    assert out["df"] == 2 and out["p"] == pytest.approx(math.exp(-5.0), rel=1e-9)
    # categories the law forbids: left out when empty, a refutation when not
    fine = tt.chi_square_test([0, 20, 30], [0.0, 0.4, 0.6])
    assert fine["df"] == 1 and fine["statistic"] == pytest.approx(0.0) and fine["p"] == 1.0
    assert tt.chi_square_test([1, 20, 30], [0.0, 0.4, 0.6])["p"] == 0.0
    with pytest.raises(ValueError, match="sum to 1"):
        tt.chi_square_test([1, 2], [0.5, 0.6])
    with pytest.raises(ValueError, match="same length"):
        tt.chi_square_test([1, 2, 3], [0.5, 0.5])
    with pytest.raises(ValueError, match="whole numbers"):
        tt.chi_square_test([1.5, 2], [0.5, 0.5])


def test_win_rate_counts_cells_where_a_beats_b():
    # 2 sparsities x 3 tasks x 2 seeds; mean paired differences per cell:
    # [+0.5, 0 (a tie), -1], [+1, +2, NaN (no value)] -> 3 wins of 5 cells
    a = torch.tensor([[[1.0, 2.0], [1.0, 1.0], [0.0, 0.0]], [[2.0, 2.0], [3.0, 3.0], [0.0, 0.0]]])
    b = torch.tensor([[[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]])
    b[1, 2] = float("nan")
    out = tt.win_rate(a, b)
    assert (out["wins"], out["cells"]) == (3, 5)
    assert out["fraction"] == pytest.approx(0.6)
    assert (out["low"], out["high"]) == pytest.approx(tt.clopper_pearson(3, 5))
    with pytest.raises(ValueError, match="shape of a"):
        tt.win_rate(a, b[:1])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: tt.hierarchical_ci(torch.ones(2, 3), level=1.0), "level"),
        (lambda: tt.hierarchical_ci(torch.ones(2, 3), n_boot=0), "n_boot"),
        (lambda: tt.hierarchical_ci(torch.ones(2, 3), seed=-1), "seed"),
        (lambda: tt.hierarchical_ci(torch.ones(2, 0)), "tasks, seeds"),
        (lambda: tt.task_t_ci(torch.ones(3), 0.95), "tasks, seeds"),
        (lambda: tt.sign_flip_test(torch.ones(2, 2), torch.ones(2, 2), max_exact=30), "max_exact"),
        (lambda: tt.sign_flip_test(torch.ones(2, 2), torch.ones(2, 2), n_flips=0), "n_flips"),
        (lambda: tt.win_rate(torch.ones(2), torch.ones(2), level=0.0), "level"),
        (lambda: tt.win_rate(torch.full((2,), float("nan")), torch.ones(2)), "no cell"),
    ],
)
def test_bad_parameters_are_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
