"""Tests of toyticket.codes (codes at three levels: row code, multi-row channel, partial code)
and of the weight-motion and linear-baseline functions of toyticket.metrics.

Ground truth: networks written out by hand below (each one's computation is worked out in the
comments) and ``tt.planted_network``."""

import pytest
import torch
from handbuilt import hand_task

import toyticket as tt

G = 4.0  # readout gain of the hand-built networks


# Four clauses on disjoint variables, one output each:
#   c0 = x0 & x1 & x2   row 0 = relu(x0 + x1 + x2 - 2): a row code; y0 = 2G r0 - G
#   c1 = x3 & ~x4 & x5  row 1 = relu(x3 - x4) (x3 & ~x4), row 2 = relu(x5 - x4) (~x4 & x5):
#                       two partial codes (2 of 3 literals each), y1 = G (r1 + r2) - 1.5 G is
#                       positive only when both fire: a two-row channel
#   c2 = x6 & x7 & x8   row 3 = relu(x6 + x7 - 1) (x6 & x7): a partial code; row 4 =
#                       relu(1 - x8) (~x8) reads out negatively: y2 = 2G r3 - 2G r4 - G
#   c3 = x9 & x10 & x11 nothing computes it: y3 = -G
TASK = hand_task(
    12,
    [
        ((0, 1, 2), (1, 1, 1)),
        ((3, 4, 5), (1, -1, 1)),
        ((6, 7, 8), (1, 1, 1)),
        ((9, 10, 11), (1, 1, 1)),
    ],
    [(0,), (1,), (2,), (3,)],
)


def three_level_network():
    W1, b1 = torch.zeros(5, 12), torch.zeros(5)
    W2, b2 = torch.zeros(4, 5), torch.tensor([-G, -1.5 * G, -G, -G])
    W1[0, [0, 1, 2]], b1[0], W2[0, 0] = 1.0, -2.0, 2 * G
    W1[1, [3, 4]], W2[1, 1] = torch.tensor([1.0, -1.0]), G
    W1[2, [4, 5]], W2[1, 2] = torch.tensor([-1.0, 1.0]), G
    W1[3, [6, 7]], b1[3], W2[2, 3] = 1.0, -1.0, 2 * G
    W1[4, 8], b1[4], W2[2, 4] = -1.0, 1.0, -2 * G
    return {"W1": W1[None], "b1": b1[None], "W2": W2[None], "b2": b2[None]}


def test_the_hand_built_network_computes_its_task_exactly():
    scores = tt.evaluate(three_level_network(), TASK)
    assert scores["output_accuracy"][0, :3].tolist() == [1.0, 1.0, 1.0]


def test_code_levels_of_a_row_code_a_two_row_channel_a_partial_code_and_none():
    out = tt.code_levels(three_level_network(), TASK)
    names = [tt.CODE_LEVELS[i] for i in out["level"][0].tolist()]
    assert names == ["row_code", "channel", "partial", "none"]
    assert out["row_code"][0].tolist() == [True, False, False, False]
    assert out["partial"][0].tolist() == [False, True, True, False]
    assert out["carried"][0].tolist() == [True, True, True, False]
    assert out["multi_row"][0].tolist() == [False, True, False, False]
    assert out["inhibitory"][0].tolist() == [False, False, True, False]
    assert out["channel_size"][0].tolist() == [1, 2, 1, 0]
    assert out["serving"][0, :, 1].tolist() == [False, True, True, False, False]
    for name in tt.CODE_LEVELS:
        assert out[f"fraction_{name}"].item() == pytest.approx(0.25)


def test_clause_rows_counts_weights_and_roles():
    rows = tt.clause_rows(three_level_network(), TASK)
    role = [[tt.ROW_ROLES[i] for i in r] for r in rows["role"][0].T.tolist()]  # [clause][row]
    assert role[0] == ["code", "absent", "absent", "absent", "absent"]
    assert role[1] == ["absent", "partial", "partial", "absent", "absent"]
    assert role[2] == ["absent", "absent", "absent", "partial", "inhibitory"]
    assert role[3] == ["absent"] * 5
    assert rows["agree"][0, :, 2].tolist() == [0, 0, 0, 2, 0]
    assert rows["against"][0, :, 2].tolist() == [0, 0, 0, 0, 1]
    assert rows["readout"][0, 4, 2].item() == -2 * G
    # with min_partial = 3 nothing of 2 literals is partial (k = 3 allows at most 2)
    with pytest.raises(ValueError, match="min_partial"):
        tt.clause_rows(three_level_network(), TASK, min_partial=3)


def test_describe_clauses_names_rows_weights_and_readout_signs():
    text = tt.describe_clauses(three_level_network(), TASK).splitlines()
    assert text[0] == "c0 (x0 & x1 & x2) -> y0: row_code, carried; r0 code 3+/0- readout +8.00"
    assert text[1].startswith("c1 (x3 & ~x4 & x5) -> y1: channel, carried; r1 partial 2+/0-")
    assert "r4 inhibitory 0+/1- readout -8.00" in text[2]
    assert text[3] == "c3 (x9 & x10 & x11) -> y3: none, not carried; no row"
    with pytest.raises(ValueError, match="lane"):
        tt.describe_clauses(three_level_network(), TASK, lane=1)


def test_a_partial_code_that_does_not_carry_its_clause_stays_partial():
    params = three_level_network()
    params["W2"][0, 2, 3] = 0.1  # the partial row of c2 can no longer lift y2 above zero
    out = tt.code_levels(params, TASK)
    assert tt.CODE_LEVELS[out["level"][0, 2]] == "partial"
    assert not out["carried"][0, 2]


def test_planted_networks_are_row_codes_and_masking_a_literal_makes_them_partial():
    task = tt.make_task(n_vars=8, n_clauses=6, clause_size=3, group_size=2, seed=0)
    params = tt.planted_network(task)
    out = tt.code_levels(params, task)
    assert (out["level"] == tt.CODE_LEVELS.index("row_code")).all()
    assert out["carried"].all() and out["fraction_row_code"].item() == 1.0
    # drop one weight of clause 0's code on its row 0: 2 of 3 literals left, all aligned
    mask = torch.ones_like(params["W1"])
    mask[0, 0, task.clauses[0].variables[0]] = 0
    masked = tt.code_levels(params, task, {"W1": mask})
    assert tt.CODE_LEVELS[masked["level"][0, 0]] == "partial"
    assert tt.ROW_ROLES[masked["role"][0, 0, 0]] == "partial"
    assert (masked["level"][0, 1:] == 0).all()


def test_dense_networks_have_no_partial_codes_and_fractions_sum_to_one():
    task = tt.make_task(n_vars=8, n_clauses=6, clause_size=3, group_size=2, seed=2)
    params = tt.init_params(8, task.n_outputs, tt.ModelConfig(width=6, init_scale=2.0), [0, 1, 2])
    out = tt.code_levels(params, task)
    assert not (out["role"] == tt.ROW_ROLES.index("partial")).any()
    total = sum(out[f"fraction_{name}"] for name in tt.CODE_LEVELS)
    assert torch.allclose(total, torch.ones(3))
    # the strict level agrees with the feature reader's aligned codes
    assert torch.equal(out["row_code"], tt.aligned(params, task).any(1))


# ---------------------------------------------------------------- weight motion


def test_weight_motion_on_constructed_tensors():
    W0 = torch.tensor([[[1.0, -1.0], [2.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
    WT = torch.tensor([[[1.0, 1.0], [2.0, 3.0]], [[1.0, 1.0], [1.0, 1.0]]])
    out = tt.weight_motion(W0, WT)
    # lane 0: ||(0, 2, 0, 3)|| / ||(1, -1, 2, 0)|| = sqrt(13 / 6); of the 3 weights nonzero at
    # both ends (1, -1, 2) one flipped. Lane 1 did not move.
    assert out["relative_change"].tolist() == pytest.approx([(13 / 6) ** 0.5, 0.0])
    assert out["flipped_signs"].tolist() == pytest.approx([1 / 3, 0.0])
    mask = torch.ones_like(W0)
    mask[0, 0, 1] = 0  # prune the flipped weight
    masked = tt.weight_motion(W0, WT, mask)
    assert masked["flipped_signs"][0].item() == 0.0
    assert masked["relative_change"][0].item() == pytest.approx((9 / 5) ** 0.5)
    nothing = tt.weight_motion(torch.zeros(1, 2, 2), torch.ones(1, 2, 2))
    assert nothing["relative_change"].isnan().all() and nothing["flipped_signs"].isnan().all()
    with pytest.raises(ValueError, match="shape"):
        tt.weight_motion(W0, WT[:, :1])


# ---------------------------------------------------------------- the linear baseline


def test_logistic_baseline_is_exact_on_a_single_and_clause():
    task = hand_task(5, [((0, 2, 3), (1, -1, 1))], [(0,)])  # y = x0 & ~x2 & x3
    out = tt.logistic_baseline(task)
    assert out["bit_accuracy"].item() == 1.0 and out["exact_outputs"].item() == 1.0
    assert out["weights"][0, 2] < 0 < out["weights"][0, 0]  # the polarities of the literals
    assert out["weights"][0, [1, 4]].abs().max() < 1e-6  # and nothing on unused variables


def test_logistic_baseline_cannot_be_exact_on_an_or_of_ands():
    # (x0 & x1) | (x2 & x3) is no threshold function: (1,1,0,0) + (0,0,1,1) = (1,0,1,0) +
    # (0,1,0,1), two positives and two negatives with the same sum: any threshold errs on one
    # of these four. The fit is x0 + x1 + x2 + x3 >= 3 in effect: wrong on (1,1,0,0) and
    # (0,0,1,1) only, 14 of 16 right; the trivial predictor gets 9.
    task = hand_task(4, [((0, 1), (1, 1)), ((2, 3), (1, 1))], [(0, 1)])
    out = tt.logistic_baseline(task)
    assert out["exact_outputs"].item() == 0.0
    assert out["bit_accuracy"].item() == pytest.approx(14 / 16)
    assert tt.trivial_accuracy(task) == pytest.approx(9 / 16)
    with pytest.raises(ValueError, match="ridge"):
        tt.logistic_baseline(task, ridge=0.0)
    with pytest.raises(ValueError, match="steps"):
        tt.logistic_baseline(task, steps=0)


# ------------------------------------------------ the summary's code levels and motion


def test_summary_reports_code_levels_and_motion():
    """The summary's level fractions are those of ``code_levels`` (one level per clause, so
    they sum to 1); with ``initial`` it adds the motion of W1: none when nothing moved, all
    signs flipped and a relative change of 2 when W1 is negated."""
    task = tt.make_task()
    params = tt.init_params(task.n_vars, task.n_outputs, tt.ModelConfig(width=16), range(3))
    summary = tt.summarize(params, task)
    levels = tt.code_levels(params, task)
    for name, key in tt.summary.LEVEL_NAMES.items():
        assert torch.equal(summary[f"{key}_clauses"], levels[f"fraction_{name}"])
    total = sum(summary[f"{key}_clauses"] for key in tt.summary.LEVEL_NAMES.values())
    assert torch.allclose(total, torch.ones(3))
    assert "weight_change" not in summary
    still = tt.summarize(params, task, initial=params)
    assert torch.equal(still["weight_change"], torch.zeros(3))
    assert torch.equal(still["flipped_signs"], torch.zeros(3))
    negated = {**params, "W1": -params["W1"]}
    moved = tt.summarize(negated, task, initial=params)
    assert torch.allclose(moved["weight_change"], torch.full((3,), 2.0))
    assert torch.equal(moved["flipped_signs"], torch.ones(3))
    with pytest.raises(ValueError, match="initial"):
        tt.summarize(params, task, initial={**params, "W1": params["W1"][:2]})


def test_summary_counts_what_the_hand_built_network_spends_on_its_clauses():
    """Worked out from three_level_network: c0 has one coding row (3 aligned weights), c1 two
    partial rows (2 each), c2 one partial row (2) beside an inhibitory row, c3 none; of the
    five rows that keep a weight, row 4 alone reads out negatively."""
    summary = tt.summarize(three_level_network(), TASK)
    assert summary["coding_rows"].item() == pytest.approx((1 + 2 + 1 + 0) / 4)
    assert summary["coding_weights"].item() == pytest.approx((3 + 2 + 2 + 2) / 4)
    assert summary["inhibited_clauses"].item() == pytest.approx(1 / 4)
    assert summary["negative_rows"].item() == pytest.approx(1 / 5)
