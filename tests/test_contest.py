"""The contest of C6 (toyticket.contest) and the sanity shuffles (toyticket.pruning)."""

import dataclasses

import pytest
import torch

import toyticket as tt
from toyticket.contest import METHODS, contest_inputs, contest_mask, contest_study
from toyticket.pruning import shuffle_within
from toyticket.tickets import retraining

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
    inputs = contest_inputs(*ARGS, PRUNING, motion_step=5, late_rewind_step=10)
    for level in (1, 3):
        kept = inputs.ladder.masks[level]["W1"].sum((1, 2))
        for method in METHODS:
            mask = contest_mask(method, TASK, level, inputs, PRUNING, [0, 1])["W1"]
            assert torch.equal(mask.sum((1, 2)), kept), method
    without_late = contest_inputs(*ARGS, PRUNING, motion_step=5)
    with pytest.raises(ValueError, match="imp_late"):
        contest_mask("imp_late", TASK, 1, without_late, PRUNING, [0, 1])


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


def test_late_rewinding_tickets_and_their_shuffles_restart_from_theta_k(tmp_path, monkeypatch):
    monkeypatch.setenv("TOYTICKET_STORE", str(tmp_path / "store"))
    task, model, training, seeds = ARGS
    study = contest_study(*ARGS, PRUNING, ("imp", "imp_late"), (1, 3), 5, late_rewind_step=10)
    late = dataclasses.replace(PRUNING, rewind_step=10)
    # the row is chapter 3's late-rewinding IMP tickets
    tickets = tt.ticket_study(*ARGS, late, methods=("imp",))
    assert torch.equal(study["imp_late"]["bit_accuracy"], tickets["imp"]["bit_accuracy"][[0, 2]])
    assert not torch.equal(study["imp_late"]["bit_accuracy"], study["imp"]["bit_accuracy"])
    # its shuffles retrain from theta_10 for the remaining 50 steps, as its own tickets did
    ladder = tt.imp_ladder(*ARGS, late)
    shuffled = shuffle_within(ladder.masks[3]["W1"], "rows", seeds, salt=100 * 1 + 0 + 1)
    run = tt.retrain_many(
        task, model, retraining(training, 10), [{"W1": shuffled}], [ladder.rewind], seeds
    )[0]
    expected = tt.summarize(run.final, task, tt.ReaderConfig(), {"W1": shuffled})
    assert torch.equal(study["imp_late/rows"]["bit_accuracy"][1], expected["bit_accuracy"])


def test_bad_contest_arguments_are_named_before_any_work():
    with pytest.raises(ValueError, match="levels entry"):
        contest_study.arguments(*ARGS, PRUNING, levels=(0,))
    with pytest.raises(ValueError, match="rewind_step"):
        contest_study.arguments(*ARGS, tt.PruningConfig(rounds=2, rewind_step=5))
    with pytest.raises(ValueError, match="methods"):
        contest_study.arguments(*ARGS, PRUNING, methods=("imp", "luck"))
    with pytest.raises(ValueError, match="motion_step"):
        contest_study.arguments(*ARGS, PRUNING, motion_step=60)
    with pytest.raises(ValueError, match="late_rewind_step"):
        contest_study.arguments(*ARGS, PRUNING, late_rewind_step=0)
