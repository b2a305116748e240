"""The ticket protocol: IMP ladders, controls, batched retraining and the verdict."""

import dataclasses

import pytest
import torch

import toyticket as tt

TASK = tt.make_task(n_vars=6, n_clauses=6, clause_size=2, readout="groups", group_size=2, seed=1)
MODEL = tt.ModelConfig(width=5)
TRAINING = tt.TrainConfig(steps=60, lr=0.05, checkpoints=(5,))
SEEDS = [0, 3]


@pytest.fixture(scope="module", autouse=True)
def no_store():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOYTICKET_STORE", "off")
        yield


@pytest.fixture(scope="module")
def ladder():
    return tt.imp(TASK, MODEL, TRAINING, SEEDS, tt.PruningConfig(rounds=3))


def test_ladder_removes_exactly_the_scheduled_weights_and_nests(ladder):
    size = MODEL.width * TASK.n_vars
    assert ladder.sparsities[0] == 0.0
    previous = ladder.masks[0]["W1"]
    for sparsity, masks in zip(ladder.sparsities[1:], ladder.masks[1:], strict=True):
        kept = masks["W1"].flatten(1).sum(1)
        assert kept.tolist() == [size - round(sparsity * size)] * len(SEEDS)
        assert not (masks["W1"] & ~previous).any(), "a pruned weight came back"
        previous = masks["W1"]


def test_each_level_prunes_the_smallest_weights_of_the_previous_level(ladder):
    for r in range(1, len(ladder.runs)):
        before = ladder.runs[r - 1].final["W1"].abs()
        kept, previous = ladder.masks[r]["W1"], ladder.masks[r - 1]["W1"]
        removed = previous & ~kept
        for s in range(len(SEEDS)):
            if removed[s].any():
                assert before[s][removed[s]].max() <= before[s][kept[s]].min()


def test_tickets_are_rewound_and_stay_sparse(ladder):
    for r in range(1, len(ladder.runs)):
        run, mask = ladder.runs[r], ladder.masks[r]["W1"].float()
        assert torch.equal(run.init["W1"], ladder.rewind["W1"] * mask)
        assert torch.equal(run.init["W2"], ladder.rewind["W2"])
        for params in run.checkpoints.values():
            assert (params["W1"][mask == 0] == 0).all()


def test_late_rewinding_resets_to_the_early_checkpoint_and_keeps_the_budget():
    late = tt.imp(TASK, MODEL, TRAINING, SEEDS, tt.PruningConfig(rounds=1, rewind_step=5))
    assert torch.equal(late.rewind["W1"], late.dense.checkpoints[5]["W1"])
    assert max(late.runs[1].checkpoints) == TRAINING.steps - 5
    with pytest.raises(ValueError, match="rewind_step"):
        tt.imp(TASK, MODEL, TRAINING, SEEDS, tt.PruningConfig(rounds=1, rewind_step=60))


def test_retrain_many_equals_separate_trainings(ladder):
    masks = [ladder.masks[1], ladder.masks[2]]
    runs = tt.retrain_many(TASK, MODEL, TRAINING, masks, [ladder.rewind, ladder.rewind], SEEDS)
    for run, mask in zip(runs, masks, strict=True):
        alone = tt.train(
            TASK, MODEL, TRAINING, SEEDS, masks={"W1": mask["W1"].float()}, init=ladder.rewind
        )
        for name in alone.final:
            torch.testing.assert_close(run.final[name], alone.final[name], rtol=0, atol=1e-6)
        assert run.history["loss"].shape == alone.history["loss"].shape


def test_discover_gives_each_method_a_mask_of_the_right_size(ladder):
    pruning = tt.PruningConfig(rounds=3)
    sparsity = ladder.sparsities[2]
    for method in tt.DISCOVERY_METHODS:
        mask = tt.discover(method, TASK, sparsity, pruning, SEEDS, ladder=ladder)
        assert set(mask) == {"W1"}
        assert mask["W1"].flatten(1).sum(1).tolist() == [30 - round(sparsity * 30)] * 2
    with pytest.raises(ValueError, match="not a level"):
        tt.discover("imp", TASK, 0.5, pruning, SEEDS, ladder=ladder)
    with pytest.raises(ValueError, match="method"):
        tt.discover("movement", TASK, sparsity, pruning, SEEDS, ladder=ladder)


def test_ticket_study_rows_and_shapes():
    study = tt.ticket_study(
        TASK, MODEL, TRAINING, SEEDS, tt.PruningConfig(rounds=2), ["imp", "snip", "random"]
    )
    assert set(study) == {"dense", "imp", "reinit", "random", "snip", "sparsity"}
    assert study["sparsity"]["sparsity"].shape == (2,)
    for row in ("dense", "imp", "reinit", "random", "snip"):
        assert study[row]["bit_accuracy"].shape == (2, len(SEEDS))
        assert study[row]["supported_clauses"].shape == (2, len(SEEDS))
    assert (study["dense"]["supported_clauses"] == 1).all()
    assert torch.equal(study["dense"]["bit_accuracy"][0], study["dense"]["bit_accuracy"][1])


def _synthetic(ticket, dense, reinit, random):
    rows = {"imp": ticket, "dense": dense, "reinit": reinit, "random": random}
    study = {k: {"bit_accuracy": torch.tensor(v, dtype=torch.float32)} for k, v in rows.items()}
    study["sparsity"] = {"sparsity": torch.tensor([0.2, 0.36, 0.49])}
    return study


def test_assess_tickets_on_known_numbers():
    dense = [[0.95, 0.96, 0.97]] * 3
    ticket = [[0.95, 0.955, 0.97], [0.945, 0.955, 0.965], [0.80, 0.81, 0.82]]
    worse = [[0.90, 0.91, 0.92], [0.80, 0.81, 0.82], [0.70, 0.71, 0.72]]
    verdict = tt.assess_tickets(_synthetic(ticket, dense, worse, worse), tolerance=0.01)
    assert verdict["matches"].tolist() == [True, True, False]
    assert verdict["beats_controls"].tolist() == [True, True, True]
    assert verdict["controls_match"].tolist() == [False, False, False]
    assert verdict["winning_up_to"].item() == pytest.approx(0.36)
    # all perfect: the ticket wins but cannot beat controls that match as well
    perfect = [[1.0, 1.0, 1.0]] * 3
    verdict = tt.assess_tickets(_synthetic(perfect, perfect, perfect, perfect))
    assert verdict["matches"].all() and not verdict["beats_controls"].any()
    assert verdict["controls_match"].all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(fraction=0.0), "fraction"),
        (dict(fraction=1.0), "fraction"),
        (dict(rounds=0), "rounds"),
        (dict(scope="row"), "scope"),
        (dict(prune_output="yes"), "prune_output"),
        (dict(rewind_step=-1), "rewind_step"),
    ],
)
def test_pruning_config_rejects_bad_values(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tt.PruningConfig(**kwargs)


def test_pruning_the_output_layer_masks_w2_too():
    pruning = tt.PruningConfig(rounds=1, prune_output=True)
    ladder = tt.imp(TASK, MODEL, dataclasses.replace(TRAINING, steps=20), SEEDS, pruning)
    assert set(ladder.masks[1]) == {"W1", "W2"}
    assert (ladder.runs[1].final["W2"][~ladder.masks[1]["W2"]] == 0).all()


# ---------------------------------------------------------------- sign-preserving reinit


def test_sign_preserving_reinit_keeps_signs_and_takes_fresh_magnitudes(ladder):
    fresh = tt.init_params(TASK.n_vars, TASK.n_outputs, MODEL, [s + 99 for s in SEEDS])
    mixed = tt.sign_preserving_reinit(ladder.rewind, fresh)
    for name, p in mixed.items():
        assert torch.equal(p.sign(), ladder.rewind[name].sign())
        assert torch.equal(p.abs(), fresh[name].abs())
        assert not torch.equal(p, ladder.rewind[name])
    # retrained under the ticket's mask: the mask is kept and so are the kept weights' signs
    mask = ladder.masks[2]["W1"]
    run = tt.train(TASK, MODEL, TRAINING, SEEDS, masks={"W1": mask.float()}, init=mixed)
    start = run.init["W1"]
    assert torch.equal(start == 0, ~mask)
    assert torch.equal(start[mask].sign(), ladder.rewind["W1"][mask].sign())
    assert torch.equal(start[mask].abs(), fresh["W1"][mask].abs())
    with pytest.raises(ValueError, match="fresh"):
        tt.sign_preserving_reinit(ladder.rewind, {"W1": fresh["W1"]})


def test_ticket_study_adds_the_sign_reinit_row_without_changing_the_others():
    pruning = tt.PruningConfig(rounds=2)
    plain = tt.ticket_study(TASK, MODEL, TRAINING, SEEDS, pruning, ["imp", "snip"])
    signed = tt.ticket_study(
        TASK, MODEL, TRAINING, SEEDS, pruning, ["imp", "snip"], sign_reinit=True
    )
    assert set(signed) == set(plain) | {"sign_reinit"}
    for row in plain:
        for name, values in plain[row].items():
            torch.testing.assert_close(signed[row][name], values, rtol=0, atol=0, equal_nan=True)
    assert signed["sign_reinit"]["bit_accuracy"].shape == (2, len(SEEDS))
    verdict = tt.assess_tickets(signed)
    assert verdict["gap_sign_reinit"].shape == (2, 3)
    assert verdict["beats_sign_reinit"].shape == (2,)
    assert "gap_sign_reinit" not in tt.assess_tickets(plain)
    with pytest.raises(TypeError, match="sign_reinit"):
        tt.ticket_study(TASK, MODEL, TRAINING, SEEDS, pruning, sign_reinit="yes")


# ---------------------------------------------------------------- matching dense


def _results(bits, exact):
    return {
        "bit_accuracy": torch.tensor(bits, dtype=torch.float64),
        "exact_outputs": torch.tensor(exact, dtype=torch.float64),
    }


def test_matching_rules_on_constructed_gaps_where_they_disagree():
    # 3 levels x 3 tasks x 4 seeds. Dense: seeds 0.94, 0.98, 1, 1 in every task (mean 0.98,
    # sd 0.0283 over seeds). Level 0: the ticket is perfect. Level 1: ticket = dense - 0.005,
    # - 0.006, - 0.007 by task: gap -0.006, t-interval half-width 4.303 * 0.001 / sqrt(3) =
    # 0.0025, low -0.0085 >= -0.01; one output wrong everywhere. Level 2: dense - 0.02 in every
    # network: low -0.02 < -0.01, but within one sd of dense.
    seeds = [0.94, 0.98, 1.0, 1.0]
    dense = _results([[seeds] * 3] * 3, [[[1.0] * 4] * 3] * 3)
    shift = [[0.0] * 3, [0.005, 0.006, 0.007], [0.02] * 3]
    ticket_bits = [
        [[1.0] * 4] * 3,
        *[[[s - d for s in seeds] for d in level] for level in shift[1:]],
    ]
    exact = [[[1.0] * 4] * 3, [[0.75] * 4] * 3, [[0.75] * 4] * 3]
    sparsity = torch.tensor([0.2, 0.36, 0.49])
    out = tt.match_dense(_results(ticket_bits, exact), dense, sparsity, tolerance=0.01)
    assert out["noninferior"].tolist() == [True, True, False]
    assert out["one_std"].tolist() == [True, True, True]
    assert out["exact"].tolist() == [True, False, False]
    assert out["gap"][1].tolist() == pytest.approx(
        [-0.006, -0.006 - 4.302653 * 0.001 / 3**0.5, -0.006 + 4.302653 * 0.001 / 3**0.5],
        abs=1e-6,
    )
    assert out["dense_std"][0].item() == pytest.approx(torch.tensor(seeds).std().item(), abs=1e-6)
    assert out["exact_fraction"].tolist() == [1.0, 0.0, 0.0]
    assert out["dense_exact_fraction"].tolist() == [1.0, 1.0, 1.0]
    ups = {rule: out[f"up_to_{rule}"].item() for rule in tt.MATCHING_RULES}
    assert ups == pytest.approx({"noninferior": 0.36, "one_std": 0.49, "exact": 0.2})
    # the bootstrap interval gives the same verdicts here
    boot = tt.match_dense(_results(ticket_bits, exact), dense, sparsity, method="hierarchical")
    assert boot["noninferior"].tolist() == [True, True, False]


def test_one_std_is_stricter_when_dense_does_not_vary_and_largest_sees_past_a_dip():
    # dense is exact and constant: one sd is 0, so a ticket 0.005 below fails the convention
    # while non-inferiority at tolerance 0.01 passes; the middle level dips below both
    dense = _results([[[1.0] * 3] * 2] * 3, [[[1.0] * 3] * 2] * 3)
    ticket = _results(
        [[[0.995] * 3] * 2, [[0.9] * 3] * 2, [[0.995] * 3] * 2], [[[0.0] * 3] * 2] * 3
    )
    out = tt.match_dense(ticket, dense, torch.tensor([0.2, 0.36, 0.49]))
    assert out["noninferior"].tolist() == [True, False, True]
    assert not out["one_std"].any()
    assert out["up_to_noninferior"].item() == pytest.approx(0.2)
    assert out["largest_noninferior"].item() == pytest.approx(0.49)
    assert out["up_to_one_std"].item() == 0.0 and out["largest_exact"].item() == 0.0
    with pytest.raises(ValueError, match="levels, tasks, seeds"):
        tt.match_dense({k: v[:, 0] for k, v in ticket.items()}, dense, torch.zeros(3))
    with pytest.raises(ValueError, match="exact_outputs"):
        tt.match_dense({"bit_accuracy": ticket["bit_accuracy"]}, dense, torch.zeros(3))
    with pytest.raises(ValueError, match="sparsity"):
        tt.match_dense(ticket, dense, torch.zeros(2))


def test_stack_studies_gives_levels_tasks_seeds():
    study = _synthetic(*([[[0.9, 0.8, 0.7]] * 3] * 4))
    stacked = tt.stack_studies([study, study])
    assert stacked["imp"]["bit_accuracy"].shape == (3, 2, 3)
    assert torch.equal(stacked["sparsity"]["sparsity"], study["sparsity"]["sparsity"])
    other = _synthetic(*([[[0.9, 0.8, 0.7]] * 3] * 4))
    other["sparsity"]["sparsity"] = torch.tensor([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="studies"):
        tt.stack_studies([study, other])


def test_one_row_per_clause_bound():
    task = tt.make_task(n_vars=10, n_clauses=12, clause_size=3)
    assert tt.one_row_per_clause_bound(task, 32) == pytest.approx(0.8875)
    assert tt.one_row_per_clause_bound(task, 64) == pytest.approx(0.94375)
    with pytest.raises(ValueError, match="width"):
        tt.one_row_per_clause_bound(task, 0)


def test_imp_ladder_is_imp_kept_in_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("TOYTICKET_STORE", str(tmp_path / "store"))
    task = tt.make_task(n_vars=6, n_clauses=4, group_size=2, seed=0)
    args = (task, tt.ModelConfig(width=6), tt.TrainConfig(steps=40, lr=0.05), [0, 1])
    pruning = tt.PruningConfig(fraction=0.3, rounds=2)
    plain = tt.imp(*args, pruning)
    first, again = tt.imp_ladder(*args, pruning), tt.imp_ladder(*args, pruning)
    store = tt.get_store()
    assert store.stats["computed", "imp_ladder"] == 1 and store.stats["hit", "imp_ladder"] == 1
    for ladder in (first, again):
        assert ladder.sparsities == plain.sparsities
        pairs = zip(ladder.masks, plain.masks, strict=True)
        assert all(torch.equal(a["W1"], b["W1"]) for a, b in pairs)
        for run, ref in zip(ladder.runs, plain.runs, strict=True):
            assert sorted(run.checkpoints) == sorted(ref.checkpoints)
            assert all(torch.equal(run.final[n], ref.final[n]) for n in ref.final)
        assert all(torch.equal(ladder.rewind[n], plain.rewind[n]) for n in plain.rewind)


def test_matching_level_is_the_last_of_the_leading_matching_levels():
    g = torch.Generator().manual_seed(0)
    noise = 1e-4 * torch.randn(5, 3, 8, generator=g)
    bits = torch.tensor([1.0, 1.0, 1.0, 0.5, 1.0])[:, None, None] + noise  # level 3 fails
    results = {"bit_accuracy": bits, "exact_outputs": torch.ones(5, 3, 8)}
    sparsity = torch.tensor([0.0, 0.2, 0.36, 0.49, 0.59])
    assert tt.matching_level(results, sparsity) == 2  # level 4 matches, but after a failure
    bits[1] -= 0.5
    assert tt.matching_level(results, sparsity) == 0
