"""Tests of toyticket.training (and the parts of toyticket.model it relies on).

The hand-written gradients are checked against autograd on the same loss in float64; the
batched optimizers against per-lane ``nn.Sequential`` + ``torch.optim`` loops; then masks,
determinism, lane independence, checkpoints and history, a sanity run and validation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import toyticket as tt
from toyticket import engine, training

SMALL = dict(n_vars=6, n_clauses=6, clause_size=3, readout="groups", group_size=2, seed=3)


@pytest.fixture(scope="module")
def small_task():
    return tt.make_task(**SMALL)


def _random_masks(S, h, n, out, seed, density=0.6, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return {
        "W1": (torch.rand(S, h, n, generator=g) < density).to(dtype),
        "W2": (torch.rand(S, out, h, generator=g) < density).to(dtype),
    }


def _autograd_loss(params, masks, X, Y, w, penalty):
    """The documented loss, summed over lanes, written with autograd-friendly ops:
    per lane sum_i w_i * mean_o BCE(Z_io, Y_io) + penalty / h * sum_i w_i * sum_r A_ir."""
    p = tt.apply_masks(params, masks)
    h = p["W1"].shape[1]
    A = torch.relu(X @ p["W1"].transpose(1, 2) + p["b1"][:, None, :])  # [S, N, h]
    Z = A @ p["W2"].transpose(1, 2) + p["b2"][:, None, :]  # [S, N, out]
    bce = F.binary_cross_entropy_with_logits(Z, Y.expand_as(Z), reduction="none").mean(-1)
    per_lane = (bce * w).sum(-1) + penalty / h * (A.sum(-1) * w).sum(-1)
    return per_lane, Z


def _config(steps, **kwargs):
    """A short TrainConfig with the early checkpoints (10, 50, 200) that fit in the run."""
    kwargs.setdefault("checkpoints", tuple(c for c in (10, 50, 200) if c <= steps))
    kwargs.setdefault("log_every", min(20, steps))
    return tt.TrainConfig(steps=steps, **kwargs)


# ---------------------------------------------------------------- (1) gradients


@pytest.mark.parametrize("penalty", [0.0, 0.3])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("input_p", [0.5, 0.3])
def test_hand_gradients_equal_autograd(penalty, masked, input_p):
    task = tt.make_task(**{**SMALL, "input_p": input_p})
    X, Y = (t.double() for t in task.truth_table())
    w = task.input_weights().double()
    S, h, n, out = 3, 5, task.n_vars, task.n_outputs
    params = {
        k: v.double() for k, v in tt.init_params(n, out, tt.ModelConfig(h, 2.0), [7, 8, 9]).items()
    }
    masks = _random_masks(S, h, n, out, seed=1, dtype=torch.float64) if masked else None

    loss, grads, correct = tt.loss_and_grads(params, masks, X, Y, w, penalty, with_metrics=True)

    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    per_lane, Z = _autograd_loss(leaves, masks, X, Y, w, penalty)
    auto = dict(
        zip(leaves, torch.autograd.grad(per_lane.sum(), list(leaves.values())), strict=True)
    )

    for name in params:
        assert grads[name].dtype == torch.float64
        torch.testing.assert_close(grads[name], auto[name], rtol=1e-10, atol=1e-13)
        if masked and name in masks:
            assert (grads[name][masks[name] == 0] == 0).all()
    # The metrics (float32 buffers): the loss and the input-weighted bit accuracy.
    torch.testing.assert_close(loss.double(), per_lane.detach(), rtol=1e-6, atol=1e-7)
    right = ((Z.detach() > 0) == Y.bool()).double().mean(-1)
    torch.testing.assert_close(correct.double(), (right * w).sum(-1), rtol=1e-6, atol=1e-7)


def test_gradients_without_metrics_are_the_same(small_task):
    X, Y = small_task.truth_table()
    w = small_task.input_weights()
    params = tt.init_params(small_task.n_vars, small_task.n_outputs, tt.ModelConfig(4), [0, 1])
    a = tt.loss_and_grads(params, None, X, Y, w, 0.1, with_metrics=True)
    b = tt.loss_and_grads(params, None, X, Y, w, 0.1)
    assert b[0] is None and b[2] is None
    for name in params:
        assert torch.equal(a[1][name], b[1][name])


def test_gradients_over_many_chunks_equal_one_lane_at_a_time():
    # width 64 on n=10: 4 lanes per chunk, so 9 lanes span three chunks.
    task = tt.make_task(n_vars=10, n_clauses=6, readout="dnf", seed=1)
    X, Y = task.truth_table()
    w = task.input_weights()
    params = tt.init_params(10, 1, tt.ModelConfig(64), list(range(9)))
    _, grads, _ = tt.loss_and_grads(params, None, X, Y, w)
    for s in range(9):
        _, one, _ = tt.loss_and_grads(tt.select_lanes(params, [s]), None, X, Y, w)
        for name in params:
            assert torch.equal(grads[name][s], one[name][0])


# ---------------------------------------------------------------- (2) optimizers


def _torch_reference(task, init, cfg, masks=None, dtype=torch.float32):
    """Per-lane nn.Sequential + torch.optim, returning {step: params} at cfg's checkpoints."""
    X, Y = (t.to(dtype) for t in task.truth_table())
    w = task.input_weights().to(dtype)
    S, h = init["W1"].shape[:2]
    nets, opts = [], []
    for s in range(S):
        net = nn.Sequential(nn.Linear(task.n_vars, h), nn.ReLU(), nn.Linear(h, task.n_outputs))
        net = net.to(dtype)
        with torch.no_grad():
            for layer, wn, bn in ((net[0], "W1", "b1"), (net[2], "W2", "b2")):
                weight = init[wn][s].to(dtype)
                if masks and wn in masks:
                    mask = masks[wn][s].to(dtype)
                    weight = weight * mask
                    layer.weight.register_hook(lambda g, mask=mask: g * mask)
                layer.weight.copy_(weight)
                layer.bias.copy_(init[bn][s].to(dtype))
        if cfg.optimizer == "adam":
            opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        else:
            opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        nets.append(net)
        opts.append(opt)

    def snapshot():
        return {
            "W1": torch.stack([net[0].weight.detach().clone() for net in nets]),
            "b1": torch.stack([net[0].bias.detach().clone() for net in nets]),
            "W2": torch.stack([net[2].weight.detach().clone() for net in nets]),
            "b2": torch.stack([net[2].bias.detach().clone() for net in nets]),
        }

    out = {0: snapshot()}
    for step in range(1, cfg.steps + 1):
        for net, opt in zip(nets, opts, strict=True):
            opt.zero_grad()
            A = net[1](net[0](X))
            Z = net[2](A)
            bce = F.binary_cross_entropy_with_logits(Z, Y, reduction="none").mean(-1)
            loss = (bce * w).sum() + cfg.activation_penalty / h * (A.sum(-1) * w).sum()
            loss.backward()
            opt.step()
        if step in cfg.checkpoint_steps:
            out[step] = snapshot()
    return out


OPTIMIZER_CASES = [
    dict(optimizer="adam", lr=0.02),
    dict(optimizer="adam", lr=0.05, activation_penalty=0.2),
    dict(optimizer="sgd", lr=0.5, momentum=0.9),
    dict(optimizer="sgd", lr=0.3, momentum=0.0, activation_penalty=0.1),
]


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("opt", OPTIMIZER_CASES, ids=lambda d: "-".join(map(str, d.values())))
def test_train_equals_torch_optim_loop_fp32(small_task, opt, masked):
    cfg = _config(8, checkpoints=(1, 2, 3, 5), log_every=1, **opt)
    model = tt.ModelConfig(width=5)
    seeds = [0, 4, 11]
    init = tt.init_params(small_task.n_vars, small_task.n_outputs, model, seeds)
    masks = _random_masks(3, 5, small_task.n_vars, small_task.n_outputs, 2) if masked else None
    run = tt.train(small_task, model, cfg, seeds, masks=masks)
    ref = _torch_reference(small_task, init, cfg, masks)
    assert set(run.checkpoints) == set(ref) == {0, 1, 2, 3, 5, 8}
    for t in ref:
        for name in ref[t]:
            # float32: both sides round differently (elementwise op order), nothing more.
            torch.testing.assert_close(run.checkpoints[t][name], ref[t][name], rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("opt", OPTIMIZER_CASES, ids=lambda d: "-".join(map(str, d.values())))
def test_optimizer_steps_equal_torch_optim_fp64(small_task, opt):
    # train() casts to float32, so the float64 comparison drives the same pieces train() uses
    # (loss_and_grads, the optimizer, re-masking) by hand.
    cfg = _config(6, checkpoints=(1, 2, 3), **opt)
    model = tt.ModelConfig(width=5)
    seeds = [1, 2, 3]
    X, Y = (t.double() for t in small_task.truth_table())
    w = small_task.input_weights().double()
    init = tt.init_params(small_task.n_vars, small_task.n_outputs, model, seeds)
    masks = _random_masks(3, 5, small_task.n_vars, small_task.n_outputs, 5, dtype=torch.float64)
    params = tt.apply_masks({k: v.double() for k, v in init.items()}, masks)
    optimizer = training._make_optimizer(cfg, params)
    ours = {0: {k: v.clone() for k, v in params.items()}}
    for step in range(1, cfg.steps + 1):
        _, grads, _ = tt.loss_and_grads(params, masks, X, Y, w, cfg.activation_penalty)
        optimizer.step(params, grads)
        for name, m in masks.items():
            params[name].mul_(m)
        ours[step] = {k: v.clone() for k, v in params.items()}
    ref = _torch_reference(small_task, init, cfg, masks, dtype=torch.float64)
    for t in ref:
        for name in ref[t]:
            torch.testing.assert_close(ours[t][name], ref[t][name], rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize(
    "task_kwargs, width",
    [
        (dict(n_vars=6, n_clauses=6, group_size=2), 5),  # n below the block's bits: one block
        (dict(n_vars=10, n_clauses=12, group_size=3), 33),  # several blocks, odd width
        (dict(n_vars=9, n_clauses=5, group_size=1), 8),  # 5 outputs: a padded group of four
        (dict(n_vars=9, n_clauses=6, readout="dnf"), 3),  # one output
    ],
)
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("penalty, input_p", [(0.0, 0.5), (0.3, 0.3)])
def test_compiled_gradients_equal_autograd_fp64(task_kwargs, width, masked, penalty, input_p):
    """The compiled step (truth-table factorization, blocks, padded outputs) in float64 against
    autograd on the documented loss: agreement to float64 rounding."""
    task = tt.make_task(**task_kwargs, input_p=input_p)
    X, Y = (t.double() for t in task.truth_table())
    w = task.input_weights().double()
    S, h, n, out = 3, width, task.n_vars, task.n_outputs
    params = tt.init_params(n, out, tt.ModelConfig(width=h), range(S))
    params = {k: v.double() for k, v in params.items()}
    masks = _random_masks(S, h, n, out, 7, dtype=torch.float64) if masked else None
    loss, grads, correct = engine.grads(
        {k: v.numpy() for k, v in params.items()},
        {k: v.numpy() for k, v in (masks or {}).items()},
        Y.numpy(),
        w.numpy(),
        penalty,
    )
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    ref_loss, Z = _autograd_loss(leaves, masks, X, Y, w, penalty)
    ref_loss.sum().backward()
    torch.testing.assert_close(torch.from_numpy(loss), ref_loss.detach(), rtol=1e-12, atol=1e-14)
    for name, leaf in leaves.items():
        torch.testing.assert_close(
            torch.from_numpy(grads[name]), leaf.grad, rtol=1e-10, atol=1e-14, msg=name
        )
    bits = ((Z > 0) == Y.bool()).double().mean(-1) @ w
    torch.testing.assert_close(torch.from_numpy(correct), bits, rtol=0, atol=1e-12)


@pytest.mark.parametrize("opt", OPTIMIZER_CASES, ids=lambda d: "-".join(map(str, d.values())))
def test_compiled_training_equals_torch_optim_fp64(small_task, opt):
    """Whole compiled trainings in float64 (optimizer, re-masking, checkpoints) against
    per-lane nn.Sequential + torch.optim loops: equal to float64 rounding after 30 steps."""
    cfg = _config(30, checkpoints=(1, 2, 10), **opt)
    model = tt.ModelConfig(width=5)
    init = tt.init_params(small_task.n_vars, small_task.n_outputs, model, [1, 2, 3])
    masks = _random_masks(3, 5, small_task.n_vars, small_task.n_outputs, 5, dtype=torch.float64)
    _, Y = small_task.truth_table()
    checkpoints, _ = engine.train_ensemble(
        {k: tt.apply_masks(init, masks)[k].double().numpy() for k in init},
        {k: v.numpy() for k, v in masks.items()},
        Y.numpy(),
        small_task.input_weights().numpy(),
        steps=cfg.steps,
        lr=cfg.lr,
        optimizer=cfg.optimizer,
        momentum=cfg.momentum,
        penalty=cfg.activation_penalty,
        log_every=cfg.log_every,
        keep=cfg.checkpoint_steps,
    )
    ref = _torch_reference(small_task, init, cfg, masks, dtype=torch.float64)
    for t in ref:
        for name in ref[t]:
            ours = torch.from_numpy(checkpoints[t][name])
            torch.testing.assert_close(ours, ref[t][name], rtol=1e-9, atol=1e-12, msg=(t, name))


def test_subnormals_are_flushed_in_the_engine_only():
    """While the engine computes, subnormal numbers are flushed to zero (engine.
    FLUSH_SUBNORMALS): logits of -100 give sigmoids of about 6e-39, subnormal in float32,
    hence dL/dlogits and db2 exactly 0. The control word is restored after: numpy still
    computes with subnormals."""
    S, h, n, out = 2, 3, 4, 2
    params = {
        "W1": np.zeros((S, h, n), np.float32),
        "b1": np.zeros((S, h), np.float32),
        "W2": np.zeros((S, out, h), np.float32),
        "b2": np.full((S, out), -100.0, np.float32),
    }
    Y, w = np.zeros((1 << n, out)), np.ones(1 << n)
    _, grads, _ = engine.grads(params, {}, Y, w)
    assert np.all(grads["b2"] == 0)
    assert engine.sigmoid(-100.0) > 0  # the same sigmoid outside the engine is not flushed
    tiny = np.float32(1e-39)
    assert tiny * np.float32(1.0) == tiny and tiny != 0


@pytest.mark.parametrize(
    "dtype, rtol, tail", [(np.float32, 3e-7, 1e-37), (np.float64, 1e-13, 1e-300)]
)
def test_compiled_sigmoid_is_accurate(dtype, rtol, tail):
    """The engine's own exp (no C library) against a long-double reference, to a few ulps;
    beyond its clamp (|z| > 87 in float32, 700 in float64) a tiny number (``tail``) instead
    of the exact, smaller one."""
    z = np.concatenate([np.linspace(-100, 100, 20001), [-1e30, -700, 0.0, 1e-30, 700, 1e30]])
    z = z.astype(dtype)
    Z = z.reshape(1, -1)
    G = np.empty_like(Z)
    engine.logit_grads(Z, np.zeros_like(Z), np.ones(Z.shape[1], dtype), G)
    with np.errstate(over="ignore"):  # exp(1e30) is inf: the exact sigmoid is 0 there
        exact = 1 / (1 + np.exp(-z.astype(np.longdouble)))
    err = np.abs(G[0].astype(np.longdouble) - exact)
    assert np.isfinite(G).all()
    assert (err <= rtol * exact + tail).all(), float((err / np.maximum(exact, tail)).max())


# ---------------------------------------------------------------- (3) masks


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_masked_weights_stay_exactly_zero(small_task, optimizer):
    cfg = _config(
        60, lr=0.05, optimizer=optimizer, checkpoints=(1, 2, 10, 30), activation_penalty=0.05
    )
    model = tt.ModelConfig(width=6)
    seeds = [0, 1, 2, 3]
    masks = _random_masks(4, 6, small_task.n_vars, small_task.n_outputs, 9, density=0.5)
    masks["W1"] = masks["W1"].bool()  # any 0/1 dtype is accepted
    # An init that is nonzero under the mask: it must be zeroed from the start.
    init = tt.init_params(small_task.n_vars, small_task.n_outputs, model, seeds)
    assert (init["W1"][~masks["W1"]] != 0).all()
    run = tt.train(small_task, model, cfg, seeds, masks=masks, init=init)
    assert set(run.checkpoints) == {0, 1, 2, 10, 30, 60}
    for t, params in run.checkpoints.items():
        for name, m in masks.items():
            assert (params[name][m.float() == 0] == 0).all(), (t, name)
        # Unmasked entries moved (except at t = 0) and biases are never masked.
        if t > 0:
            for name, m in masks.items():
                keep = m.float() == 1
                assert (params[name][keep] != init[name][keep]).any()
    assert torch.equal(run.checkpoints[0]["W1"], init["W1"] * masks["W1"])
    assert torch.equal(run.checkpoints[0]["b1"], init["b1"])
    for name, m in masks.items():
        assert (run.final[name][m.float() == 0] == 0).all()
        assert torch.equal(run.masks[name], m.float())
    # Masked gradients at the final weights are exactly zero.
    X, Y = small_task.truth_table()
    _, grads, _ = tt.loss_and_grads(run.final, run.masks, X, Y, small_task.input_weights(), 0.05)
    for name, m in masks.items():
        assert (grads[name][m.float() == 0] == 0).all()
        assert (grads[name][m.float() == 1] != 0).any()


def test_unmasked_run_has_no_masks(small_task):
    run = tt.train(small_task, tt.ModelConfig(4), _config(3, checkpoints=()), [0])
    assert run.masks is None


def test_a_mask_on_w1_only(small_task):
    model = tt.ModelConfig(4)
    masks = {"W1": torch.zeros(2, 4, small_task.n_vars)}
    masks["W1"][:, :, 0] = 1
    run = tt.train(small_task, model, _config(20, checkpoints=(5,)), [0, 1], masks=masks)
    for params in run.checkpoints.values():
        assert (params["W1"][:, :, 1:] == 0).all()
    assert (run.final["W2"] != 0).all()


# ---------------------------------------------------------------- (4) determinism


def _assert_runs_equal(a, b):
    assert a.seeds == b.seeds
    assert set(a.checkpoints) == set(b.checkpoints)
    for t in a.checkpoints:
        for name in a.checkpoints[t]:
            assert torch.equal(a.checkpoints[t][name], b.checkpoints[t][name]), (t, name)
    assert set(a.history) == set(b.history)
    for key in a.history:
        assert torch.equal(a.history[key], b.history[key]), key


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_same_seeds_give_bitwise_identical_runs(small_task, optimizer):
    cfg = _config(80, optimizer=optimizer, lr=0.05, log_every=10)
    model = tt.ModelConfig(6)
    torch.manual_seed(0)
    a = tt.train(small_task, model, cfg, [3, 1, 4])
    torch.manual_seed(1)  # the global RNG must not matter
    torch.rand(5)
    b = tt.train(small_task, model, cfg, [3, 1, 4])
    _assert_runs_equal(a, b)


def test_init_params_is_seeded_per_lane():
    model = tt.ModelConfig(7)
    a = tt.init_params(5, 2, model, [0, 1, 2])
    b = tt.init_params(5, 2, model, [2, 0])
    for name in a:
        assert torch.equal(a[name][2], b[name][0])
        assert torch.equal(a[name][0], b[name][1])
        assert not torch.equal(a[name][0], a[name][1])
    # nn.Linear's bound 1/sqrt(fan_in), times init_scale.
    c = tt.init_params(16, 3, tt.ModelConfig(32, 0.5), [0])
    assert c["W1"].abs().max() <= 0.5 / 4 and c["b1"].abs().max() <= 0.5 / 4
    assert c["W2"].abs().max() <= 0.5 / 32**0.5 and c["b2"].abs().max() <= 0.5 / 32**0.5
    assert c["W1"].abs().max() > 0.4 / 4


# ---------------------------------------------------------------- (5) lane independence


@pytest.fixture
def one_thread():
    """Bitwise lane independence is a single-threaded guarantee: with 2 intra-op threads the
    batched reductions split differently for different ensemble sizes, and lane 5 of 8 drifts
    from lane 5 alone by ~1e-6 (float32) after 300 steps. toyticket and tools/test.sh both
    default to one thread; pin it here so the test does not depend on the caller's setting."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def _assert_lane_equal(run_a, lane_a, run_b, lane_b):
    for t in run_a.checkpoints:
        for name in run_a.checkpoints[t]:
            a = run_a.checkpoints[t][name][lane_a]
            b = run_b.checkpoints[t][name][lane_b]
            # Bitwise on CPU with one intra-op thread (see one_thread).
            assert torch.equal(a, b), (t, name, (a - b).abs().max().item())
    for key in ("loss", "accuracy"):
        assert torch.equal(run_a.history[key][:, lane_a], run_b.history[key][:, lane_b]), key


def test_lane_is_independent_of_the_ensemble(one_thread):
    task = tt.make_task()
    cfg = tt.TrainConfig(steps=300)
    model = tt.ModelConfig(8)
    many = tt.train(task, model, cfg, list(range(8)))
    alone = tt.train(task, model, cfg, [5])
    _assert_lane_equal(many, 5, alone, 0)


def test_lane_independence_across_chunks(one_thread):
    # width 64 on n = 10: 4 lanes per chunk, so lane 5 sits in the second chunk.
    task = tt.make_task()
    cfg = _config(40, checkpoints=(10,), log_every=10)
    model = tt.ModelConfig(64)
    many = tt.train(task, model, cfg, list(range(6)))
    alone = tt.train(task, model, cfg, [5])
    _assert_lane_equal(many, 5, alone, 0)


def test_lane_independence_across_groups_and_padding(one_thread):
    """The engine trains engine.LANES networks at a time and pads the last group with copies
    of its last network: a lane's bits do not depend on its group, its position in it, or
    the padding."""
    task = tt.make_task(**SMALL)
    cfg = _config(40, checkpoints=(10,), log_every=10)
    model = tt.ModelConfig(5)
    seeds = list(range(engine.LANES + 3))  # two groups, the second padded
    many = tt.train(task, model, cfg, seeds)
    alone = tt.train(task, model, cfg, [seeds[-2]])
    shifted = tt.train(task, model, cfg, seeds[-4:])
    _assert_lane_equal(many, len(seeds) - 2, alone, 0)
    _assert_lane_equal(many, len(seeds) - 2, shifted, 2)
    _assert_lane_equal(many, 1, tt.train(task, model, cfg, [1]), 0)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_lane_order_does_not_matter(small_task, optimizer, one_thread):
    cfg = _config(100, optimizer=optimizer, lr=0.05, log_every=10)
    model = tt.ModelConfig(6)
    a = tt.train(small_task, model, cfg, [3, 1])
    b = tt.train(small_task, model, cfg, [1, 3])
    _assert_lane_equal(a, 0, b, 1)
    _assert_lane_equal(a, 1, b, 0)


def test_masks_are_per_lane(one_thread):
    task = tt.make_task(**SMALL)
    model = tt.ModelConfig(5)
    cfg = _config(30, checkpoints=(10,))
    masks = _random_masks(3, 5, task.n_vars, task.n_outputs, 4)
    many = tt.train(task, model, cfg, [0, 1, 2], masks=masks)
    one = tt.train(task, model, cfg, [1], masks={k: v[1:2] for k, v in masks.items()})
    _assert_lane_equal(many, 1, one, 0)


# ---------------------------------------------------------------- (6) checkpoints, history


def test_checkpoints_and_history():
    task = tt.make_task(**SMALL)
    model = tt.ModelConfig(6)
    cfg = _config(125, checkpoints=(1, 7, 50), log_every=20)
    seeds = [2, 9]
    run = tt.train(task, model, cfg, seeds)
    assert run.seeds == (2, 9)
    assert cfg.checkpoint_steps == (0, 1, 7, 50, 125)
    assert sorted(run.checkpoints) == [0, 1, 7, 50, 125]
    init = tt.init_params(task.n_vars, task.n_outputs, model, seeds)
    for name in init:
        assert torch.equal(run.checkpoints[0][name], init[name])
        assert torch.equal(run.init[name], init[name])
        assert run.final[name] is run.checkpoints[125][name]
        for params in run.checkpoints.values():
            assert params[name].shape == init[name].shape
            assert params[name].dtype == torch.float32
        # Every kept checkpoint is a distinct snapshot, not a view of the live weights.
        assert not torch.equal(run.checkpoints[1][name], run.checkpoints[7][name])
    # History: steps 0, 20, ..., 120 and the last one.
    assert run.history["step"].tolist() == [0, 20, 40, 60, 80, 100, 120, 125]
    assert run.history["loss"].shape == (8, 2)
    assert run.history["accuracy"].shape == (8, 2)
    assert ((run.history["accuracy"] >= 0) & (run.history["accuracy"] <= 1)).all()
    assert (run.history["loss"][-1] < run.history["loss"][0]).all()
    # The logged loss and accuracy at a step are those of that step's weights: bitwise the
    # compiled step's own metrics, and the torch reference path's to float32 rounding.
    X, Y = task.truth_table()
    w = task.input_weights()
    for t, row in ((0, 0), (125, 7)):
        params = {k: v.numpy() for k, v in run.checkpoints[t].items()}
        loss, _, correct = engine.grads(params, {}, Y.numpy(), w.numpy())
        assert torch.equal(run.history["loss"][row], torch.from_numpy(loss).float())
        assert torch.equal(run.history["accuracy"][row], torch.from_numpy(correct).float())
        loss, _, correct = tt.loss_and_grads(run.checkpoints[t], None, X, Y, w, with_metrics=True)
        torch.testing.assert_close(run.history["loss"][row], loss, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(run.history["accuracy"][row], correct, rtol=0, atol=1e-5)
        torch.testing.assert_close(
            run.history["accuracy"][row],
            tt.evaluate(run.checkpoints[t], task)["bit_accuracy"],
            rtol=0,
            atol=1e-5,
        )


def test_checkpoints_with_explicit_init_and_step_zero(small_task):
    model = tt.ModelConfig(4)
    init = tt.init_params(small_task.n_vars, small_task.n_outputs, model, [5, 6])
    init = {k: (v * 3).double() for k, v in init.items()}
    cfg = _config(10, checkpoints=(0, 10, 3), log_every=10)
    run = tt.train(small_task, model, cfg, [0, 0], init=init)
    assert sorted(run.checkpoints) == [0, 3, 10]
    for name in init:
        assert torch.equal(run.init[name], init[name].float())
        assert run.init[name] is not init[name]
    assert run.history["step"].tolist() == [0, 10]


def test_resuming_from_a_checkpoint_is_rewinding(small_task):
    # Training from checkpoint t with init= is the same as training from scratch (SGD without
    # momentum has no optimizer state, so the two paths agree step for step).
    model = tt.ModelConfig(4)
    cfg = _config(20, optimizer="sgd", momentum=0.0, lr=0.2, checkpoints=(8,))
    full = tt.train(small_task, model, cfg, [0, 1])
    rest = tt.train(
        small_task,
        model,
        _config(12, optimizer="sgd", momentum=0.0, lr=0.2, checkpoints=()),
        [0, 1],
        init=full.checkpoints[8],
    )
    for name in full.final:
        assert torch.equal(full.final[name], rest.final[name])


def test_train_leaves_init_untouched(small_task):
    model = tt.ModelConfig(4)
    init = tt.init_params(small_task.n_vars, small_task.n_outputs, model, [0])
    saved = {k: v.clone() for k, v in init.items()}
    masks = {"W1": torch.zeros(1, 4, small_task.n_vars)}
    tt.train(small_task, model, _config(5, checkpoints=()), [0], init=init, masks=masks)
    for name in init:
        assert torch.equal(init[name], saved[name])


# ---------------------------------------------------------------- (7) sanity


def test_easy_task_is_learned():
    task = tt.make_task(n_vars=6, n_clauses=2, clause_size=2, readout="dnf", seed=0)
    run = tt.train(task, tt.ModelConfig(4), _config(600, lr=0.05), [0, 1, 2, 3])
    scores = tt.evaluate(run.final, task)
    assert (scores["bit_accuracy"] >= 0.99).all(), scores["bit_accuracy"]
    assert (scores["balanced_accuracy"] >= 0.98).all()
    assert scores["bit_accuracy"].min() > tt.trivial_accuracy(task) + 0.1
    assert (run.history["accuracy"][-1] >= 0.99).all()


# ---------------------------------------------------------------- (8) validation

BAD_TRAIN_CONFIGS = [
    (dict(steps=0), ValueError, "steps"),
    (dict(steps=-5), ValueError, "steps"),
    (dict(steps=10.0), TypeError, "steps"),
    (dict(steps=True), TypeError, "steps"),
    (dict(lr=0.0), ValueError, "lr"),
    (dict(lr=-0.1), ValueError, "lr"),
    (dict(lr=float("nan")), ValueError, "lr"),
    (dict(lr=float("inf")), ValueError, "lr"),
    (dict(lr="0.1"), TypeError, "lr"),
    (dict(optimizer="rmsprop"), ValueError, "optimizer"),
    (dict(optimizer="Adam"), ValueError, "optimizer"),
    (dict(momentum=1.0), ValueError, "momentum"),
    (dict(momentum=-0.1), ValueError, "momentum"),
    (dict(activation_penalty=-0.01), ValueError, "activation_penalty"),
    (dict(activation_penalty=None), TypeError, "activation_penalty"),
    (dict(steps=100, checkpoints=(101,)), ValueError, "checkpoints"),
    (dict(checkpoints=(-1,)), ValueError, "checkpoints"),
    (dict(checkpoints=(2.5,)), TypeError, "checkpoints"),
    (dict(checkpoints=50), TypeError, "checkpoints"),  # a step, not a collection of steps
    (dict(checkpoints=None), TypeError, "checkpoints"),
    (dict(log_every=0), ValueError, "log_every"),
]


@pytest.mark.parametrize(
    ("kwargs", "error", "name"), BAD_TRAIN_CONFIGS, ids=[repr(c[0]) for c in BAD_TRAIN_CONFIGS]
)
def test_bad_train_config_raises_naming_the_parameter(kwargs, error, name):
    with pytest.raises(error) as info:
        tt.TrainConfig(**kwargs)
    assert name in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        (dict(width=0), ValueError, "width"),
        (dict(width=2.0), TypeError, "width"),
        (dict(init_scale=0.0), ValueError, "init_scale"),
        (dict(init_scale=-1.0), ValueError, "init_scale"),
    ],
)
def test_bad_model_config_raises_naming_the_parameter(kwargs, error, name):
    with pytest.raises(error) as info:
        tt.ModelConfig(**kwargs)
    assert name in str(info.value)


_N, _OUT = 6, 3  # the small task's inputs and outputs
_GOOD = tt.init_params(_N, _OUT, tt.ModelConfig(4), [0, 1])


def _replaced(name, tensor):
    return {**_GOOD, name: tensor}


BAD_TRAIN_INPUTS = [
    # (name in the message, keyword arguments of train)
    ("init['W1']", dict(init=_replaced("W1", torch.zeros(2, 5, _N)))),
    ("init['W1']", dict(init=_replaced("W1", torch.zeros(2, 4, _N + 1)))),
    ("init['b1']", dict(init=_replaced("b1", torch.zeros(2, 3)))),
    ("init['W2']", dict(init=_replaced("W2", torch.zeros(2, _OUT + 1, 4)))),
    ("init['b2']", dict(init=_replaced("b2", torch.zeros(3, _OUT)))),
    ("init['W1']", dict(init=_GOOD, seeds=[0])),  # lanes disagree with seeds
    ("init", dict(init={k: v for k, v in _GOOD.items() if k != "b2"})),
    ("masks['W1']", dict(masks={"W1": torch.ones(2, 4, _N - 1)})),
    ("masks['W2']", dict(masks={"W2": torch.ones(1, _OUT, 4)})),
    ("masks", dict(masks={"b1": torch.ones(2, 4)})),
    ("seed", dict(seeds=[0, -1])),
    ("seed", dict(seeds=[0, 1.0])),
    ("seeds", dict(seeds=[])),
    ("seed", dict(seeds=0)),  # one seed, not a sequence of seeds
]


@pytest.mark.parametrize(
    ("name", "kwargs"),
    BAD_TRAIN_INPUTS,
    ids=[f"{i}-{name}" for i, (name, _) in enumerate(BAD_TRAIN_INPUTS)],
)
def test_bad_train_inputs_raise_naming_the_parameter(small_task, name, kwargs):
    assert (small_task.n_vars, small_task.n_outputs) == (_N, _OUT)
    kwargs = dict(kwargs)
    seeds = kwargs.pop("seeds", [0, 1])
    with pytest.raises((ValueError, TypeError)) as info:
        tt.train(small_task, tt.ModelConfig(4), _config(2, checkpoints=()), seeds, **kwargs)
    assert name in str(info.value)
