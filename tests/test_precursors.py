"""The precursor reader (toyticket.precursors) on hand-built networks whose answer is known,
and the structured null masks of toyticket.pruning."""

import math

import pytest
import torch

import toyticket as tt
from tests.handbuilt import hand_task
from toyticket.precursors import distance_law, poisson_binomial


def _network(W1: torch.Tensor, task: tt.Task) -> tt.Params:
    """Every row fires on every input (large bias) and reads out +1 to every output, so a
    location is a final code exactly when its k aligned weights are positive."""
    S, h, _ = W1.shape
    return {
        "W1": W1,
        "b1": torch.full((S, h), 100.0),
        "W2": torch.ones(S, task.n_outputs, h),
        "b2": torch.zeros(S, task.n_outputs),
    }


def test_poisson_binomial_is_the_binomial_for_equal_rates_and_exact_otherwise():
    law = poisson_binomial(torch.full((3,), 0.25))
    expected = torch.tensor([math.comb(3, j) * 0.25**j * 0.75 ** (3 - j) for j in range(4)])
    assert torch.allclose(law, expected.double())
    assert torch.allclose(
        poisson_binomial(torch.tensor([0.5, 1.0])), torch.tensor([0, 0.5, 0.5]).double()
    )


def test_distance_law_counts_the_chosen_locations():
    d0 = torch.tensor([[[0, 1], [3, 1]]])
    chosen = torch.tensor([[[True, True], [False, True]]])
    expected = torch.tensor([[1, 2, 0, 0]], dtype=torch.float64) / 3
    assert torch.allclose(distance_law(d0, chosen, 3), expected)
    assert distance_law(d0, torch.zeros_like(chosen), 3).isnan().all()


def test_rank_and_laws_on_a_hand_built_clause():
    task = hand_task(4, [((0, 1, 2), (1, 1, 1))], [[0]])
    W0 = torch.tensor([[[1.0, 1, 1, 1], [1, 1, -1, 1], [-1, -1, -1, 1]]])  # d0 = 0, 1, 3
    WT = torch.tensor([[[2.0, 2, 2, 1], [1, 1, -1, 1], [-1, -1, -1, 1]]])  # only row 0 codes
    profile = tt.precursor_profile(_network(W0, task), _network(WT, task), task)
    assert profile["codes"].item() == 1 and profile["dead_codes"].item() == 0
    assert torch.equal(profile["observed"], torch.tensor([[1.0, 0, 0, 0]]).double())
    assert profile["rank"].item() == 0.0  # the nearest of the clause's three rows
    assert torch.equal(profile["given_distance"][0, [0, 1, 3]], torch.tensor([1.0, 0, 0]).double())
    assert torch.allclose(profile["null_binomial"], torch.tensor([[1, 3, 3, 1]]).double() / 8)
    # random row: the clause's d0 over its three rows, 0, 1 and 3
    assert torch.allclose(profile["null_random_row"], torch.tensor([[1, 1, 0, 1]]).double() / 3)
    # outside the code: 9 weights, all kept their signs
    assert profile["persistence"].item() == 1.0
    assert torch.equal(profile["null_persistence"], torch.tensor([[1.0, 0, 0, 0]]).double())


def test_dead_rows_are_counted_apart():
    task = hand_task(4, [((0, 1, 2), (1, 1, 1))], [[0]])
    W = torch.tensor([[[1.0, 1, 1, 0], [1, 1, 1, 0]]])
    final = _network(W, task)
    final["b1"] = torch.tensor([[100.0, -100.0]])  # row 1 never fires
    profile = tt.precursor_profile(final, final, task)
    assert profile["codes"].item() == 1 and profile["dead_codes"].item() == 1


def _planted(flip: float, lanes: int = 64, h: int = 32, seed: int = 0):
    """theta_T = theta_0 with every weight's sign flipped independently with rate ``flip``:
    pure sign persistence, nothing else links the final codes to initialization."""
    task = tt.make_task(n_clauses=12, seed=seed)
    g = torch.Generator().manual_seed(seed)
    W0 = torch.randn(lanes, h, task.n_vars, generator=g)
    flips = torch.rand(W0.shape, generator=g) < flip
    WT = torch.where(flips, -W0, W0) * (1 + torch.rand(W0.shape, generator=g))
    return task, _network(W0, task), _network(WT, task)


def test_pure_persistence_is_not_more_than_its_null():
    """A planted network where the persistence nulls must not be rejected: the codes are near
    at initialization (far above chance), exactly as much as persisting signs predict."""
    task, initial, final = _planted(flip=0.3)
    profile = tt.precursor_profile(initial, final, task)
    observed = tt.near(profile["observed"])
    for null in ("persistence", "magnitude"):
        gap = observed - tt.near(profile[f"null_{null}"])
        assert abs(gap.mean().item()) < 3 * gap.std().item() / math.sqrt(len(gap)) + 0.01, null
    assert observed.mean() > 0.7  # ... while chance says 0.5
    assert (observed - 0.5).mean() > 10 * observed.std() / math.sqrt(len(observed))
    assert abs(profile["persistence"].mean().item() - 0.7) < 0.02


def test_codes_independent_of_initialization_match_chance():
    """The other planted null: final signs drawn afresh (flip rate 1/2): every null, Binomial
    included, must hold."""
    task, initial, final = _planted(flip=0.5)
    profile = tt.precursor_profile(initial, final, task)
    observed = tt.near(profile["observed"])
    for null in tt.NULLS:
        gap = observed - tt.near(profile[f"null_{null}"])
        assert abs(gap.mean().item()) < 3 * gap.std().item() / math.sqrt(len(gap)) + 0.01, null
    assert abs(profile["rank"].mean().item() - 0.5) < 0.03


def test_magnitude_matching_catches_persistence_that_grows_with_magnitude():
    """Large final weights keep their signs (rate 0.9), small ones less often (0.6), and the
    planted codes are made of large weights: the overall persistence null understates their
    proximity at initialization, the magnitude-matched one accounts for it (and must not be
    rejected)."""
    task = tt.make_task(n_clauses=12, seed=1)
    g = torch.Generator().manual_seed(1)
    S, h, n = 64, 32, task.n_vars
    large = torch.rand(S, h, n, generator=g) < 0.5
    code_rows = torch.stack([torch.randperm(h, generator=g)[: task.n_clauses] for _ in range(S)])
    lane = torch.arange(S)[:, None, None]
    rows = code_rows[:, :, None].expand(S, task.n_clauses, task.clause_size)
    literals = (lane, rows, task.variables[None].expand_as(rows))
    large[literals] = True
    final_sign = torch.where(torch.rand(S, h, n, generator=g) < 0.5, 1.0, -1.0)
    final_sign[literals] = task.signs[None].expand_as(rows).float()
    keep = torch.rand(S, h, n, generator=g) < torch.where(large, 0.9, 0.6)
    W0 = torch.where(keep, final_sign, -final_sign) * torch.rand(S, h, n, generator=g)
    WT = final_sign * (torch.rand(S, h, n, generator=g) + large.float())
    profile = tt.precursor_profile(_network(W0, task), _network(WT, task), task, n_bins=4)
    observed = tt.near(profile["observed"])
    overall = observed - tt.near(profile["null_persistence"])
    matched = observed - tt.near(profile["null_magnitude"])
    se = matched.std().item() / math.sqrt(S)
    assert overall.mean() > 0.05 and overall.mean() > 5 * overall.std() / math.sqrt(S)
    assert abs(matched.mean().item()) < 3 * se + 0.01


def test_mask_precursors_read_the_supported_locations():
    task = hand_task(4, [((0, 1, 2), (1, 1, 1)), ((1, 2, 3), (1, -1, 1))], [[0, 1]])
    W0 = torch.tensor([[[1.0, 1, -1, 1], [1, 1, 1, 1]]])  # row 0: d0 1 and 0; row 1: 0 and 1
    mask = torch.tensor([[[1, 1, 1, 0], [0, 1, 1, 1]]], dtype=torch.bool)  # (0, c0), (1, c1)
    out = tt.mask_precursors(mask, W0, task)
    assert out["supported"].item() == 2
    assert out["near"].item() == 1.0 and out["at_code"].item() == 0.0
    none = tt.mask_precursors(torch.zeros_like(mask), W0, task)
    assert none["supported"].item() == 0 and none["near"].isnan().all()


def test_shuffled_rows_keep_every_row_pattern_and_degree_matching_every_fan_in():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(5, 16, 10, generator=g) < 0.3
    seeds = list(range(5))
    rows = tt.shuffle_rows(mask, seeds)
    assert torch.equal(rows.sum(1), mask.sum(1))  # fan-out of every input
    for lane in range(5):
        patterns = sorted(map(tuple, mask[lane].int().tolist()))
        assert sorted(map(tuple, rows[lane].int().tolist())) == patterns
    degrees = tt.match_degrees(mask, seeds)
    assert torch.equal(degrees.sum(-1), mask.sum(-1)) and not torch.equal(degrees, mask)
    assert torch.equal(tt.shuffle_rows(mask, seeds), rows)  # seeded
    assert not torch.equal(tt.shuffle_rows(mask, seeds, salt=1), rows)
    with pytest.raises(ValueError, match="seeds has 2 entries"):
        tt.shuffle_rows(mask, [0, 1])
    with pytest.raises(ValueError, match="mask_W1 has shape"):
        tt.match_degrees(mask[0], seeds)


def test_sign_reinit_runs_start_from_the_signs_with_fresh_magnitudes(tmp_path, monkeypatch):
    monkeypatch.setenv("TOYTICKET_STORE", str(tmp_path / "store"))
    task = tt.make_task(n_vars=6, n_clauses=4, group_size=2, seed=0)
    model, training = tt.ModelConfig(width=6), tt.TrainConfig(steps=20, lr=0.05)
    runs = tt.sign_reinit_runs(task, model, training, [0, 1])
    original = tt.init_params(task.n_vars, task.n_outputs, model, [0, 1])
    for name, p in original.items():
        assert torch.equal(runs["sign_reinit_init"][name].sign(), p.sign())
        assert torch.equal(runs["sign_reinit_init"][name].abs(), runs["fresh_init"][name].abs())
    alone = tt.train(task, model, training, [0, 1], init=runs["fresh_init"]).final
    assert all(torch.equal(alone[n], runs["fresh"][n]) for n in alone)
    assert tt.sign_reinit_runs(task, model, training, (0, 1))["fresh"]["W1"].shape == (2, 6, 6)
    assert tt.get_store().stats["hit", "sign_reinit_runs"] == 1


def test_code_overlap_is_a_jaccard_index():
    a = torch.tensor([[[True, False], [True, False]]])
    b = torch.tensor([[[True, True], [False, False]]])
    assert tt.code_overlap(a, b).item() == pytest.approx(1 / 3)
