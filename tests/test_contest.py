"""The contest of C6 (toyticket.contest) and the sanity shuffles (toyticket.pruning)."""

import pytest
import torch

import toyticket as tt
from toyticket.contest import METHODS, contest_mask, contest_study
from toyticket.pruning import shuffle_within

TASK = tt.make_task(n_vars=6, n_clauses=4, group_size=2, seed=0)
ARGS = (TASK, tt.ModelConfig(width=8), tt.TrainConfig(steps=60, lr=0.5, optimizer="sgd"), [0, 1])
PRUNING = tt.PruningConfig(fraction=0.4, rounds=3)


def test_shuffles_keep_fan_in_or_fan_out():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(3, 16, 10, generator=g) < 0.3
    rows = shuffle_within(mask, "rows", [0, 1, 2])
    columns = shuffle_within(mask, "columns", [0, 1, 2])
    assert torch.equal(rows.sum(-1), mask.sum(-1)) and not torch.equal(rows, mask)
    assert torch.equal(columns.sum(1), mask.sum(1)) and not torch.equal(columns, mask)
    with pytest.raises(ValueError, match="axis"):
        shuffle_within(mask, "lanes", [0, 1, 2])


def test_every_method_gives_a_mask_at_the_ladders_sparsity():
    ladder = tt.imp_ladder(*ARGS, PRUNING)
    early = tt.train(TASK, ARGS[1], tt.TrainConfig(steps=5, lr=0.5, optimizer="sgd"), [0, 1]).final
    for level in (1, 3):
        kept = ladder.masks[level]["W1"].sum((1, 2))
        for method in METHODS:
            mask = contest_mask(method, TASK, level, ladder, PRUNING, [0, 1], early)["W1"]
            assert torch.equal(mask.sum((1, 2)), kept), method


def test_the_contest_retrains_every_mask_and_reuses_the_imp_tickets(tmp_path, monkeypatch):
    monkeypatch.setenv("TOYTICKET_STORE", str(tmp_path / "store"))
    methods = ("imp", "random", "distance", "oracle")
    study = contest_study(*ARGS, PRUNING, methods, levels=(1, 3), motion_step=5)
    expected = {
        "dense",
        "sparsity",
        *methods,
        *(f"{m}/{a}" for m in methods for a in ("rows", "columns")),
    }
    assert set(study) == expected
    assert study["imp"]["bit_accuracy"].shape == (2, 2)
    assert torch.allclose(study["sparsity"]["sparsity"], torch.tensor([0.4, 1 - 0.6**3]))
    # the IMP row is chapter 3's ticket study's own IMP row
    tickets = tt.ticket_study(*ARGS, PRUNING)
    assert torch.equal(study["imp"]["bit_accuracy"], tickets["imp"]["bit_accuracy"][[0, 2]])
    # a random mask retrained here is the ticket study's random control
    assert torch.equal(study["random"]["bit_accuracy"], tickets["random"]["bit_accuracy"][[0, 2]])
    given = study["distance"]["recovery_given_support"]
    assert ((given >= 0) & (given <= 1) | given.isnan()).all()


def test_bad_contest_arguments_are_named_before_any_work():
    with pytest.raises(ValueError, match="levels entry"):
        contest_study.arguments(*ARGS, PRUNING, levels=(0,))
    with pytest.raises(ValueError, match="rewind_step"):
        contest_study.arguments(*ARGS, tt.PruningConfig(rounds=2, rewind_step=5))
    with pytest.raises(ValueError, match="methods"):
        contest_study.arguments(*ARGS, PRUNING, methods=("imp", "luck"))
    with pytest.raises(ValueError, match="motion_step"):
        contest_study.arguments(*ARGS, PRUNING, motion_step=60)
