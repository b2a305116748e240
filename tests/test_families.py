"""Chapter 6's library (toyticket.families): template families, mask profiles, the exact
assignment, row matching, row classes, designed masks and the stratified rank correlation,
on hand-built cases whose answers are known."""

import itertools
import math

import pytest
import torch
from handbuilt import hand_task

import toyticket as tt
from toyticket import families as fam
from toyticket.features import supported
from toyticket.probes import Clauses, distance_probe

# Two outputs of three clauses over 9 variables; clause 3 conflicts with clause 0 (x0 vs ~x0).
CLAUSES = [
    ((0, 1, 2), (1, 1, 1)),
    ((3, 4, 5), (1, 1, -1)),
    ((6, 7, 8), (1, -1, 1)),
    ((0, 3, 6), (-1, 1, 1)),
    ((1, 4, 7), (1, 1, 1)),
    ((2, 5, 8), (-1, -1, 1)),
]
TASK = hand_task(9, CLAUSES, [(0, 1, 2), (3, 4, 5)])


@pytest.fixture(scope="module", autouse=True)
def no_store():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOYTICKET_STORE", "off")
        yield


def test_template_family_counts_negations_and_ignores_variable_order():
    assert fam.template_family(TASK).tolist() == [0, 1, 1, 1, 0, 2]
    # the same clauses with their literals listed in another order: the same families
    shuffled = [(tuple(reversed(v)), tuple(reversed(s))) for v, s in CLAUSES]
    other = hand_task(9, shuffled, [(0, 1, 2), (3, 4, 5)])
    assert fam.template_family(other).tolist() == fam.template_family(TASK).tolist()
    same = fam.same_family(TASK)
    assert not same.diagonal().any()
    assert same[0, 4] and same[1, 2] and same[1, 3] and not same[0, 1]


def test_conflicts_are_shared_variables_with_opposite_signs():
    c = fam.conflicts(TASK)
    assert c[0, 3] and c[3, 0]  # x0 against ~x0
    assert c[2, 4]  # ~x7 against x7
    assert not c[0, 4] and not c[0, 1]


def test_mask_profile_counts_partners_on_shared_rows():
    mask = torch.zeros(1, 3, 9, dtype=torch.bool)
    mask[0, 0, [0, 1, 2, 3, 6]] = True  # row 0 supports clauses 0 and 3 (a conflict, 2 outputs)
    mask[0, 1, [0, 1, 2]] = True  # row 1 supports clause 0 alone
    W1 = torch.ones(1, 3, 9)  # every aligned sign +1 where the polarity is +1
    p = fam.mask_profile(mask, W1, TASK)
    assert p["supported"].item() == 3
    # partners: (r0, c0) has c3; (r0, c3) has c0; (r1, c0) none -> 2 / 3 per location
    assert p["cross_output"].item() == pytest.approx(2 / 3)
    assert p["conflicts"].item() == pytest.approx(2 / 3)
    assert p["within_output"].item() == 0
    # d0 with all-positive weights: clause 0 -> 0, clause 3 -> 1 (one negated literal)
    assert p["proximity"].item() == pytest.approx(1 / 3)
    empty = fam.mask_profile(torch.zeros(1, 3, 9, dtype=torch.bool), W1, TASK)
    assert empty["proximity"].isnan().all()


def test_assignment_is_optimal_against_brute_force():
    g = torch.Generator().manual_seed(0)
    for a, b in [(1, 1), (3, 3), (3, 5), (4, 6)]:
        for _ in range(5):
            cost = torch.randint(0, 4, (a, b), generator=g).double()  # many ties
            got = fam.assignment(cost)
            assert len(set(got.tolist())) == a
            total = cost[torch.arange(a), got].sum().item()
            best = min(
                sum(cost[i, j].item() for i, j in enumerate(cols))
                for cols in itertools.permutations(range(b), a)
            )
            assert total == best
    with pytest.raises(ValueError, match="at most as many rows"):
        fam.assignment(torch.zeros(3, 2))


def test_match_rows_recovers_a_permutation_of_the_same_network():
    model = tt.ModelConfig(width=6)
    params = tt.init_params(9, 2, model, [0, 1])
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    permuted = {
        "W1": params["W1"][:, perm],
        "b1": params["b1"][:, perm],
        "W2": params["W2"][:, :, perm],
        "b2": params["b2"],
    }
    matching = fam.match_rows(permuted, params, TASK)
    # row i of the permuted network is row perm[i] of the original
    firing = tt.hidden(params, TASK.inputs()).abs().sum(1) > 0
    for s in range(2):
        for i in range(6):
            if firing[s, perm[i]]:
                assert matching[s, i] == perm[i]


def _network(codes, h=3):
    """An ensemble of one lane whose rows code the given clauses: {row: [clauses]} (all other
    weights negative-aligned to nothing: -1), readouts +1."""
    W1 = -torch.ones(1, h, 9)
    for r, clauses in codes.items():
        for c in clauses:
            v, s = CLAUSES[c]
            W1[0, r, list(v)] = torch.tensor(s, dtype=torch.float32)
    return {
        "W1": W1,
        "b1": torch.zeros(1, h),
        "W2": torch.ones(1, 2, h),
        "b2": torch.zeros(1, 2),
    }


def test_row_classes_on_hand_built_networks():
    dense = _network({0: [0], 1: [4]})
    same = fam.row_classes(dense, _network({0: [0]}), TASK)["class"][0]
    assert fam.ROW_CLASSES[int(same[0])] == "same_row"
    moved = fam.row_classes(dense, _network({2: [0]}), TASK)["class"][0]
    assert fam.ROW_CLASSES[int(moved[0])] == "other_row"
    # the same move read through a matching that sends ticket row 2 to dense row 0: not a move
    matching = torch.tensor([[2, 1, 0]])
    matched = fam.row_classes(dense, _network({2: [0]}), TASK, matching=matching)["class"][0]
    assert fam.ROW_CLASSES[int(matched[0])] == "same_row"
    # clause 0 lost, its dense row now codes clause 4, of the same family (no negation)
    sibling = fam.row_classes(dense, _network({0: [4]}), TASK)["class"][0]
    assert fam.ROW_CLASSES[int(sibling[0])] == "family"
    lost = fam.row_classes(dense, _network({}), TASK)["class"][0]
    assert fam.ROW_CLASSES[int(lost[0])] == "lost"
    assert fam.ROW_CLASSES[int(lost[1])] == "no_dense_code"  # clause 1: no dense code
    both = fam.row_classes(dense, _network({2: [0], 1: [4]}), TASK)["class"]
    fractions = fam.class_fractions(both)  # c0 moved, c4 kept; the others have no dense code
    assert fractions["move_rate"].item() == pytest.approx(1 / 2)
    assert fractions["same_row"].item() == pytest.approx(1 / 2)
    assert fractions["lost"].item() == 0


def test_row_classes_chance_rate_given_support():
    dense = _network({0: [0]})
    mask = torch.zeros(1, 3, 9, dtype=torch.bool)
    mask[0, :2, [0, 1, 2]] = True  # clause 0 supported on rows 0 and 1
    ticket = _network({1: [0]})
    out = fam.row_classes(dense, ticket, TASK, ticket_masks={"W1": mask})
    assert out["support"][0, 0] == 2
    assert out["chance_same"][0, 0].item() == pytest.approx(1 / 2)
    assert fam.ROW_CLASSES[int(out["class"][0, 0])] == "other_row"


def _task12(seed=0):
    return tt.make_task(n_clauses=12, seed=seed)


def test_design_units_pair_within_or_across_outputs():
    task = _task12()
    units = fam.design_units(task)
    out = task.output_of
    clash = fam.conflicts(task)
    for name in ("low", "high", "conflict"):
        clauses = sorted(c for u in units[name] for c in u)
        assert clauses == list(range(12))
        assert [len(u) for u in units[name]] == [2] * 4 + [1] * 4
        singles = [u[0] for u in units[name][4:]]
        assert sorted(int(out[c]) for c in singles) == [0, 1, 2, 3]  # one single per output
    assert all(out[a] == out[b] for a, b in units["low"][:4])
    for name in ("high", "conflict"):
        assert all(out[a] != out[b] for a, b in units[name][:4])

    def n_conflicts(name):
        return sum(bool(clash[a, b]) for a, b in units[name][:4])

    # exhaustive: no cross-output pairing has fewer conflicts than high, or more than conflict
    assert n_conflicts("high") <= n_conflicts("conflict")
    assert n_conflicts("conflict") > 0


def test_design_units_on_a_hand_built_task():
    # outputs (0, 1, 2) and (3, 4, 5); conflicts across them: 0-3 (x0), 0-5 (x2), 2-4 (x7)
    units = fam.design_units(TASK)
    assert units["low"] == [(0, 1), (3, 4), (2,), (5,)]  # no conflicts within: the first pairs
    high_pairs = units["high"][:2]
    assert sum(bool(fam.conflicts(TASK)[a, b]) for a, b in high_pairs) == 0
    conflict_pairs = units["conflict"][:2]
    assert sum(bool(fam.conflicts(TASK)[a, b]) for a, b in conflict_pairs) == 2  # the most


def test_designed_masks_match_weights_loads_and_support():
    task = _task12()
    model = tt.ModelConfig(width=32)
    seeds = [0, 1, 2]
    W1 = tt.init_params(10, 4, model, seeds)["W1"]
    designs = fam.design_masks(W1, task, seeds)
    loads = None
    for condition, d in designs.items():
        mask = d["W1"]
        assert mask.flatten(1).sum(-1).tolist() == [36] * 3, condition
        row_loads = sorted(mask.sum(-1)[0].tolist())
        loads = loads or row_loads
        assert row_loads == loads, condition  # 4 rows of 6, 4 rows of 3, the rest empty
        sup = tt.supported(mask, task)
        assert sup.gather(1, d["rows"][:, None, :]).all(), condition
    for s in range(3):
        for interference in ("low", "high"):
            near = designs[f"near_{interference}"]["d0"][s].sum()
            far = designs[f"far_{interference}"]["d0"][s].sum()
            assert near < far
    # near rows are exactly optimal: no other assignment of the units to rows is nearer
    units = fam.design_units(task)["low"]
    d0 = tt.code_distance(W1, task)[0]
    cost = torch.stack([d0[:, list(u)].sum(-1) for u in units]).double()
    chosen = cost[torch.arange(len(units)), designs["near_low"]["rows"][0][[u[0] for u in units]]]
    greedy = cost.min(1).values  # a lower bound that ignores distinct rows
    assert chosen.sum() >= greedy.sum()
    assert chosen.sum() == cost[torch.arange(len(units)), fam.assignment(cost)].sum()
    again = fam.design_masks(W1, task, seeds)
    assert all(torch.equal(again[c]["W1"], designs[c]["W1"]) for c in designs)


def test_design_rejects_tasks_it_cannot_pair():
    with pytest.raises(ValueError, match="outputs of 3 clauses each"):
        fam.design_units(tt.make_task(n_clauses=12, readout="dnf"))
    with pytest.raises(ValueError, match="outputs of 3 clauses each"):
        fam.design_units(tt.make_task(n_clauses=12, group_size=2))


def test_perturbed_init_keeps_signs_and_moves_little():
    model = tt.ModelConfig(width=8)
    base = tt.init_params(10, 4, model, [0, 1])
    moved = fam.perturbed_init(_task12(), model, [0, 1], 1e-3)
    for name in base:
        assert torch.equal(base[name].sign(), moved[name].sign())
        assert (moved[name] - base[name]).abs().max() < 1e-2 * base[name].abs().max()
        assert not torch.equal(base[name], moved[name])
    with pytest.raises(ValueError, match="epsilon"):
        fam.perturbed_init(_task12(), model, [0], 2.0)


def test_spearman_known_values_ties_and_nan():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert tt.spearman(x, x * 10).item() == pytest.approx(1.0)
    assert tt.spearman(x, -x).item() == pytest.approx(-1.0)
    assert tt.spearman(x, torch.ones(4)).isnan()  # constant: undefined
    ties = torch.tensor([1.0, 1.0, 2.0, 3.0])
    assert tt.spearman(ties, x).item() == pytest.approx(0.9486833)
    # along an axis, NaN pairs left out: one row is monotone after dropping its NaN
    batch = torch.stack([x, torch.tensor([4.0, float("nan"), 2.0, 1.0])])
    got = tt.spearman(batch, torch.stack([x, x]))
    assert got.tolist() == pytest.approx([1.0, -1.0])
    with pytest.raises(ValueError, match="allowed equal"):
        tt.spearman(x, torch.ones(3))


SMALL = dict(
    model=tt.ModelConfig(width=12),
    training=tt.TrainConfig(steps=60, lr=0.5, optimizer="sgd", momentum=0.9),
)


def test_designed_study_is_paired_and_matched():
    task = _task12()
    out = fam.designed_study(task, seeds=[0, 1], **SMALL)
    assert set(out) == set(fam.DESIGN_CONDITIONS)
    for condition, summary in out.items():
        assert summary["weights"].tolist() == [36.0, 36.0], condition
        assert ((0 <= summary["designed_recovery"]) & (summary["designed_recovery"] <= 1)).all()
    assert (out["near_low"]["design_d0"] < out["far_low"]["design_d0"]).all()
    assert out["near_high"]["pairs_cross"].tolist() == [4.0, 4.0]
    assert out["near_low"]["pairs_cross"].tolist() == [0.0, 0.0]


def test_studies_refuse_bad_arguments_before_training(monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking its arguments")

    monkeypatch.setattr(fam, "retrain_many", no_training)
    monkeypatch.setattr(fam, "train", no_training)
    with pytest.raises(ValueError, match="outputs of 3 clauses each"):
        fam.designed_study(tt.make_task(n_clauses=12, readout="dnf"), seeds=[0], **SMALL)
    with pytest.raises(ValueError, match="epsilon"):
        fam.family_study(_task12(), seeds=[0], epsilon=0.9, **SMALL)
    with pytest.raises(ValueError, match="n_permutations"):
        fam.family_study(_task12(), seeds=[0], n_permutations=0, **SMALL)


def test_family_study_classes_dense_against_itself_and_the_null():
    task = _task12()
    out = fam.family_study(
        task, seeds=[0, 1], pruning=tt.PruningConfig(fraction=0.5, rounds=2), **SMALL
    )
    cls = out["rows"]["class"]
    assert tuple(cls.shape) == (3, 2, 12)
    # level 0 is the dense network read against itself: every dense code on its own row
    dense_coded = cls[0] != fam.ROW_CLASSES.index("no_dense_code")
    assert (cls[0][dense_coded] == fam.ROW_CLASSES.index("same_row")).all()
    assert torch.equal(out["rows"]["class_identity"][0], cls[0])
    null = out["rows"]["family_null"]
    assert ((null >= 0) & (null <= 1)).all() and (null[0] == 0).all()
    assert tuple(out["instability"]["class"].shape) == (2, 12)
    assert out["sparsity"]["sparsity"].tolist() == pytest.approx([0.0, 0.5, 0.75])
    # the random masks keep as many weights of W1 as the IMP masks
    assert out["random"]["supported"].shape == out["imp"]["supported"].shape
    # the probe's tickets: the distance probe's own mask at each level's sparsity (read off
    # theta_0 and the clauses), retrained; level 0 is the dense network against itself
    probe = out["probe"]
    assert tuple(probe["class"].shape) == (3, 2, 12)
    assert (probe["class"][0][dense_coded] == fam.ROW_CLASSES.index("same_row")).all()
    theta0 = tt.init_params(task.n_vars, task.n_outputs, SMALL["model"], [0, 1])
    for level, sparsity in ((1, 0.5), (2, 0.75)):
        mask = distance_probe(theta0, Clauses.of_task(task, 2), sparsity)["W1"]
        assert torch.equal(probe["support"][level], supported(mask, task).sum(1))
    assert ((probe["bit_accuracy"] >= 0) & (probe["bit_accuracy"] <= 1)).all()


def test_family_permutations_keep_family_sizes():
    task = _task12()
    perms = fam.family_permutations(task, 5, seed=3)
    labels = fam.template_family(task)
    for p in perms:
        assert sorted(p.tolist()) == sorted(labels.tolist())
    assert torch.equal(perms, fam.family_permutations(task, 5, seed=3))
    assert not all(torch.equal(p, labels) for p in perms)


def test_move_rates_count_only_free_clauses_coded_in_both():
    same, other, family, lost, none = range(5)
    rows = {
        "class": torch.tensor([same, other, family, lost, none, other]),
        "support": torch.tensor([2, 3, 2, 2, 2, 1]),
        "chance_same": torch.tensor([0.5, 1 / 3, 0.5, 0.5, math.nan, 1.0]),
    }
    found = fam.move_rates(rows)
    # the last clause moved, but its mask supports it on one row only: it had no choice
    assert found["free"].tolist() == [True, True, False, False, False, False]
    assert found["move_rate"].item() == pytest.approx(0.5)
    assert found["chance"].item() == pytest.approx(1 - (0.5 + 1 / 3) / 2)
    rows["class_identity"] = torch.tensor([other, other, family, lost, none, other])
    assert fam.move_rates(rows, "class_identity")["move_rate"].item() == pytest.approx(1.0)


def test_design_effects_are_the_main_effects_of_the_two_by_two():
    values = {"near_low": 4.0, "near_high": 2.0, "far_low": 3.0, "far_high": 1.0}
    values["near_conflict"] = 0.5
    found = fam.design_effects({k: torch.tensor(v) for k, v in values.items()})
    assert found["proximity"].item() == 1.0  # (4 + 2 - 3 - 1) / 2
    assert found["interference"].item() == 2.0  # (4 + 3 - 2 - 1) / 2
    assert found["conflict"].item() == 1.5
