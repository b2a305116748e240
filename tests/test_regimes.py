"""Tests of the regime map's settings and key numbers (toyticket.regimes, chapter 8)."""

import dataclasses

import pytest
import torch

import toyticket as tt
from toyticket import families as fam
from toyticket import regimes
from toyticket.precursors import near, precursor_profile

SMALL = dict(
    model=tt.ModelConfig(width=12),
    training=tt.TrainConfig(steps=60, lr=0.5, optimizer="sgd", momentum=0.9),
    seeds=[0, 1],
    pruning=tt.PruningConfig(fraction=0.5, rounds=2),
)


def _fields(regime: regimes.Regime) -> dict[str, object]:
    return {
        f"{part}.{f.name}": getattr(getattr(regime, part), f.name)
        for part in ("task", "model", "training")
        for f in dataclasses.fields(getattr(regime, part))
    }


def test_every_regime_varies_one_factor_of_the_main_one():
    main = _fields(regimes.MAIN)
    for name, regime in regimes.REGIMES.items():
        changed = {k for k, v in _fields(regime).items() if main[k] != v}
        if name == "main":
            assert not changed
        elif name == "adam":  # the optimizer comes with its own rate (chapter 2)
            assert changed == {"training.optimizer", "training.lr"}
        else:
            assert len(changed) == 1, (name, changed)


def test_the_main_regime_is_the_chapters_and_shares_their_store_entries():
    main = regimes.REGIMES["main"]
    assert main.model == tt.ModelConfig(width=32)
    assert main.training == tt.TrainConfig(steps=2000, lr=0.5, optimizer="sgd", momentum=0.9)
    [drawn] = main.tasks([3])
    chapter = tt.make_task(n_clauses=12, seed=3)
    assert fam.family_study.entry(drawn, main.model, main.training, [0]) == (
        fam.family_study.entry(chapter, main.model, main.training, [0])
    )


def test_designs_exist_only_for_grouped_readouts_and_enough_rows():
    task = tt.make_task(n_clauses=12, seed=0)
    assert regimes.admits_designs(task, 8) and not regimes.admits_designs(task, 7)
    for readout in ("dnf", "clauses"):
        assert not regimes.admits_designs(tt.make_task(n_clauses=12, readout=readout), 32)


def test_regime_numbers_read_the_chapters_pieces():
    task = tt.make_task(n_clauses=12, seed=0)
    out = regimes.regime_numbers(task, **SMALL)
    assert set(out) == {"sparsity", *regimes.KEY_NUMBERS}
    levels, lanes = 3, 2
    for name in ("bit_accuracy", "precursor_excess", "move_rate", "probe_bit_gap"):
        assert tuple(out[name].shape) == (levels, lanes), name
    for name in ("crowding_gap", "proximity_effect", "instability"):
        assert tuple(out[name].shape) == (lanes,), name
    # level 0 is the dense network: the probe's "ticket" there is the dense network itself
    assert (out["probe_bit_gap"][0] == 0).all() and (out["probe_recovery_gap"][0] == 0).all()
    # C4 on bit accuracy of the designs (not on their recovery)
    designed = fam.designed_study(task, SMALL["model"], SMALL["training"], SMALL["seeds"])
    bits = {c: designed[c]["bit_accuracy"] for c in fam.DESIGN_CONDITIONS}
    expected = fam.design_effects(bits)["proximity"].double()
    assert torch.equal(out["proximity_effect"], expected)
    # C2 of the dense codes against the magnitude-matched null
    ladder = tt.imp_ladder(task, *(SMALL[k] for k in ("model", "training", "seeds", "pruning")))
    profile = precursor_profile(ladder.rewind, ladder.dense.final, task)
    dense_excess = near(profile["observed"]) - near(profile["null_magnitude"])
    assert torch.equal(out["precursor_excess"][0].nan_to_num(9), dense_excess.nan_to_num(9))
    # the crowding gap is observed minus its random-row null: bounded by the crowding range
    assert out["crowding_gap"].abs().max() <= task.n_clauses


def test_without_designs_c4_is_missing_not_zero():
    task = tt.make_task(n_clauses=12, readout="clauses", seed=0)
    out = regimes.regime_numbers(task, **SMALL)
    assert out["proximity_effect"].isnan().all() and out["interference_effect"].isnan().all()
    assert not out["bit_accuracy"].isnan().any()


def test_bad_arguments_fail_before_any_training(monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(regimes, "imp_ladder", no_training)
    task = tt.make_task(n_clauses=12, seed=0)
    with pytest.raises(ValueError, match="n_null"):
        regimes.regime_numbers(task, **SMALL, n_null=0)
    with pytest.raises(ValueError, match="epsilon"):
        regimes.regime_numbers(task, **SMALL, epsilon=0.9)


def test_regime_grids_are_one_grid_per_regime_task_draws_as_axis():
    grids = regimes.regime_grids(["main", "clauses"], [0, 1], [0, 1, 2])
    points = tt.grid_points(grids)
    assert [(p.task.readout, p.task.seed) for p in points] == [
        ("groups", 0),
        ("groups", 1),
        ("clauses", 0),
        ("clauses", 1),
    ]
    assert points[0].seeds == (0, 1, 2) and points[0].model == regimes.MAIN.model
    for bad in ([], ["main", "main"], ["h=7"]):
        with pytest.raises(ValueError, match="regimes="):
            regimes.regime_grids(bad, [0], [0])


def test_the_example_regime_grid_file_is_the_chapters_grids():
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "params" / "sweeps" / "regimes.yaml"
    pruning = tt.PruningConfig(fraction=0.2, rounds=14)
    ours = regimes.regime_grids(["lr=1", "init=4"], range(5), range(16), pruning)
    assert [p.entry() for p in tt.grid_points(path)] == [p.entry() for p in tt.grid_points(ours)]
