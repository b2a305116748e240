"""Feature-space probes (toyticket.probes) on hand-built networks whose right mask is known."""

import pytest
import torch

import toyticket as tt
from tests.handbuilt import hand_task
from toyticket.probes import (
    Clauses,
    clauses_from_weights,
    distance_probe,
    kept_count,
    locations_mask,
    motion_probe,
    oracle_probe,
    random_row_probe,
)

# two clauses feeding two different outputs, on 6 variables
TASK = hand_task(6, [((0, 1, 2), (1, 1, 1)), ((3, 4, 5), (1, -1, 1))], [[0], [1]])


def _params(W1, W2=None):
    W1 = torch.as_tensor(W1, dtype=torch.float32)[None]
    h = W1.shape[1]
    W2 = torch.ones(1, 2, h) if W2 is None else torch.as_tensor(W2, dtype=torch.float32)[None]
    return {"W1": W1, "b1": torch.zeros(1, h), "W2": W2, "b2": torch.zeros(1, 2)}


def _sparsity_for(weights: int, h: int, n: int = 6) -> float:
    return 1 - weights / (h * n)


def _rows_kept(mask):
    return sorted(mask["W1"][0].any(-1).nonzero().flatten().tolist())


FAR = [-1, -1, -1, -1, 1, -1]  # distance 3 from clause 0 and 3 from clause 1


def test_a_planted_near_code_location_is_kept():
    W1 = [FAR, FAR, [1, 1, 1, -1, 1, -1], FAR]  # row 2 codes clause 0 at init
    clauses = Clauses.of_task(TASK, 1)
    mask = distance_probe(_params(W1), clauses, _sparsity_for(3, 4))
    assert mask["W1"].sum() == 3
    assert torch.equal(mask["W1"][0, 2], torch.tensor([True, True, True, False, False, False]))


def test_a_crowded_row_loses_to_an_uncrowded_one_when_the_rules_say_so():
    # rows 0 and 1 both code clause 0; on row 0 clause 1 (another output) is near too
    W1 = [[1, 1, 1, 1, -1, 1], [1, 1, 1, -1, 1, -1], FAR]
    clauses = Clauses.of_task(TASK, 1)
    s = _sparsity_for(3, 3)
    with_rules = distance_probe(_params(W1), clauses, s)
    assert _rows_kept(with_rules) == [1]
    # without the conflict rule the tie goes to the lower row (the rule is what decides)
    assert _rows_kept(distance_probe(_params(W1), clauses, s, conflicts=False)) == [0]
    # within one output, sharing is harmless: no conflict, the tie goes to row 0 again
    one_output = hand_task(6, [((0, 1, 2), (1, 1, 1)), ((3, 4, 5), (1, -1, 1))], [[0, 1]])
    same = Clauses.of_task(one_output, 1)
    W2 = torch.ones(1, 3)
    assert _rows_kept(distance_probe(_params(W1, W2), same, s)) == [0]


def test_a_negative_readout_loses_the_tie():
    W1 = [[1, 1, 1, -1, 1, -1], [1, 1, 1, -1, 1, -1]]
    W2 = [[-1.0, 1.0], [1.0, 1.0]]  # row 0 reads out negatively to clause 0's output
    mask = distance_probe(_params(W1, W2), Clauses.of_task(TASK, 1), _sparsity_for(3, 2))
    assert _rows_kept(mask) == [1]


def test_every_clause_is_served_before_any_is_doubled():
    W1 = [[1, 1, 1, -1, -1, -1], [1, 1, 1, -1, -1, -1], [-1, -1, -1, 1, 1, 1], FAR]
    # clause 0 has two rows at d0 = 0; clause 1 only row 2 at d0 = 1
    mask = distance_probe(_params(W1), Clauses.of_task(TASK, 1), _sparsity_for(6, 4))
    assert _rows_kept(mask) == [0, 2]


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.51, 0.9, 0.99])
def test_masks_are_exactly_as_sparse_as_the_weight_based_methods(sparsity):
    task = tt.make_task(n_clauses=12, seed=0)
    params = tt.init_params(task.n_vars, task.n_outputs, tt.ModelConfig(width=32), [0, 1, 2])
    reference = tt.mask_from_scores({"W1": params["W1"].abs()}, sparsity)["W1"]
    clauses = Clauses.of_task(task, 3)
    for mask in (
        distance_probe(params, clauses, sparsity)["W1"],
        random_row_probe(clauses, 32, task.n_vars, sparsity, [0, 1, 2])["W1"],
        oracle_probe(params, clauses, sparsity)["W1"],
    ):
        assert torch.equal(mask.sum((1, 2)), reference.sum((1, 2)))
    assert kept_count(320, sparsity) == reference[0].sum()


def test_the_oracle_keeps_the_final_codes_strongest_first():
    final = [[2, 2, 2, -1, 1, -1], [0.5, 0.5, 0.5, -1, 1, -1], [-1, -1, -1, 1, -1, 1]]
    mask = oracle_probe(_params(final), Clauses.of_task(TASK, 1), _sparsity_for(6, 3))
    assert _rows_kept(mask) == [0, 2]  # clause 0's stronger code, then clause 1's code
    mask = oracle_probe(_params(final), Clauses.of_task(TASK, 1), _sparsity_for(9, 3))
    assert _rows_kept(mask) == [0, 1, 2]


def test_the_motion_probe_prefers_locations_moving_toward_their_code():
    initial = [[-1, 1, 1, -1, -1, -1], [-1, 1, 1, -1, -1, -1]]
    early = [[-0.5, 1, 1, -1, -1, -1], [-0.9, 1, 1, -1, -1, -1]]  # row 0 moved more
    mask = motion_probe(
        _params(initial), _params(early), Clauses.of_task(TASK, 1), _sparsity_for(3, 2)
    )
    assert _rows_kept(mask) == [0]


def test_random_rows_are_seeded_and_ignore_proximity():
    clauses = Clauses.of_task(tt.make_task(n_clauses=12, seed=0), 2)
    a = random_row_probe(clauses, 32, 10, 0.9, [0, 1])["W1"]
    assert torch.equal(a, random_row_probe(clauses, 32, 10, 0.9, [0, 1])["W1"])
    assert not torch.equal(a[0], a[1])


def test_clauses_read_off_weights_recover_planted_codes():
    W1 = torch.tensor([[[3.0, -2.5, 0.1, 2.0, 0.2, -0.1], [0.1, 0.2, -3.0, 0.1, 2.0, 2.5]]])
    W2 = torch.tensor([[[1.0, -1.0], [-0.5, 0.5]]]).transpose(1, 2)  # row 0 -> out 0, 1 -> 1
    clauses = clauses_from_weights(W1, W2, 3)
    assert clauses.variables[0].tolist() == [[0, 1, 3], [2, 4, 5]]
    assert clauses.signs[0].tolist() == [[1, -1, 1], [-1, 1, 1]]
    assert clauses.outputs[0].tolist() == [0, 1]


def test_a_blind_probe_never_reads_the_tasks_clauses(monkeypatch):
    task = tt.make_task(n_clauses=12, seed=0)
    model = tt.ModelConfig(width=16)
    run = tt.train(
        task, model, tt.TrainConfig(steps=50, lr=0.5, optimizer="sgd", momentum=0.9), [0, 1]
    )
    initial, final = run.checkpoints[0], run.final

    def hidden(self):
        raise AssertionError("a blind probe read the task's clauses")

    for name in ("clauses", "variables", "signs", "output_of", "groups"):
        monkeypatch.setattr(tt.Task, name, property(hidden), raising=False)
    blind = clauses_from_weights(final["W1"], final["W2"], 3)
    mask = distance_probe(initial, blind, 0.8)["W1"]
    assert mask.sum((1, 2)).tolist() == [kept_count(160, 0.8)] * 2
    # the same guard stops a probe that does read them: the test can fail
    with pytest.raises(AssertionError, match="read the task's clauses"):
        Clauses.of_task(task, 2)


def test_bad_inputs_are_named():
    clauses = Clauses.of_task(TASK, 1)
    with pytest.raises(ValueError, match="priority has shape"):
        locations_mask(torch.zeros(2, 3, 2), clauses, 6, 0.5)
    with pytest.raises(ValueError, match="sparsity"):
        distance_probe(_params([FAR]), clauses, 1.0)
    with pytest.raises(ValueError, match="allowed \\[S, m, k\\]"):
        Clauses(torch.zeros(1, 2, 3, dtype=torch.long), torch.ones(1, 2, 2), torch.zeros(1, 2))
