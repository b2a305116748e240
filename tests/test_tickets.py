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
