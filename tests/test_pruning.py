"""Tests of toyticket.pruning: weight scores and masks.

Every score is compared with an independent computation: magnitude masks with
``torch.nn.utils.prune``; SNIP with per-lane ``nn.Sequential`` + autograd and finite
differences; GraSP with the full Hessian (``torch.autograd.functional.hessian``) and a
finite-difference Hessian-vector product; SynFlow with its closed form for two layers, the
conservation law of Tanaka et al. and a re-implementation of the iterative schedule. Then the
mask mechanics (exact counts, ties, nesting), validation, masked training and random scores."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.functional import hessian
from torch.nn.utils import prune

import toyticket as tt

try:
    score_weights, mask_from_scores = tt.score_weights, tt.mask_from_scores
except AttributeError:  # not exported from the package yet
    from toyticket.pruning import mask_from_scores, score_weights

NAMES = ("W1", "W2")


def _task(n_vars=6, n_outputs=3, seed=3):
    """A task with ``n_outputs`` outputs (one clause each) over ``n_vars`` variables."""
    return tt.make_task(
        n_vars=n_vars, n_clauses=n_outputs, clause_size=2, readout="clauses", seed=seed
    )


def _params(task, width, seeds, dtype=torch.float64, init_scale=1.0):
    model = tt.ModelConfig(width=width, init_scale=init_scale)
    params = tt.init_params(task.n_vars, task.n_outputs, model, seeds)
    return {k: v.to(dtype) for k, v in params.items()}


def _alive(params):
    """Positive hidden biases: every hidden unit is active on some input (no dead units, so
    no scores tie at exactly zero)."""
    return {**params, "b1": params["b1"].abs() + 0.1}


def _data(task, dtype=torch.float64):
    X, Y = task.truth_table()
    return X.to(dtype), Y.to(dtype), task.input_weights().to(dtype)


def _reference_loss(logits, Y, w):
    """Input-weighted BCE with logits, averaged over outputs, written from log-sigmoids."""
    bce = -(Y * F.logsigmoid(logits) + (1 - Y) * F.logsigmoid(-logits))
    return (bce * w[:, None]).sum() / Y.shape[1]


def _lane_logits(W1, b1, W2, b2, X):
    return torch.relu(X @ W1.T + b1) @ W2.T + b2


def _sequential(params, lane):
    """One lane as a plain nn.Sequential (same dtype)."""
    W1, b1, W2, b2 = (params[k][lane] for k in ("W1", "b1", "W2", "b2"))
    net = nn.Sequential(
        nn.Linear(W1.shape[1], W1.shape[0]), nn.ReLU(), nn.Linear(W2.shape[1], W2.shape[0])
    ).to(W1.dtype)
    with torch.no_grad():
        net[0].weight.copy_(W1)
        net[0].bias.copy_(b1)
        net[2].weight.copy_(W2)
        net[2].bias.copy_(b2)
    return net


def _linears(params, lane):
    """nn.Linear modules holding W1 and W2 of one lane (for torch.nn.utils.prune)."""
    net = _sequential(params, lane)
    return net[0], net[2]


def _topk_keep(flat, n_keep):
    """Reference top-k on a 1-D tensor: the n_keep largest, ties by earlier position."""
    order = sorted(range(flat.numel()), key=lambda i: (-float(flat[i]), i))
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[order[:n_keep]] = True
    return keep


def _assert_no_ties(*tensors):
    flat = torch.cat([t.abs().reshape(-1) for t in tensors])
    assert flat.unique().numel() == flat.numel(), "test premise: continuous values, no ties"


def _random_masks(params, density, seed):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(params[n].shape, generator=g) < density for n in NAMES}


# ---------------------------------------------------------------- (1) magnitude vs torch prune


@pytest.mark.parametrize("sparsity", [0.0, 0.2, 0.5, 0.9])
def test_magnitude_layer_masks_equal_torch_l1_unstructured(sparsity):
    task = _task()
    params = _params(task, 7, [0, 1, 2], dtype=torch.float32)
    mask = mask_from_scores(score_weights("magnitude", params, task), sparsity, "layer")
    for lane in range(3):
        _assert_no_ties(params["W1"][lane])
        _assert_no_ties(params["W2"][lane])
        for name, layer in zip(NAMES, _linears(params, lane), strict=True):
            prune.l1_unstructured(layer, "weight", amount=sparsity)
            assert torch.equal(mask[name][lane], layer.weight_mask.bool()), (name, lane)


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.8])
def test_magnitude_global_masks_equal_torch_global_unstructured(sparsity):
    task = _task()
    params = _params(task, 7, [0, 1, 2], dtype=torch.float32)
    mask = mask_from_scores(score_weights("magnitude", params, task), sparsity, "global")
    for lane in range(3):
        _assert_no_ties(params["W1"][lane], params["W2"][lane])
        l1, l2 = _linears(params, lane)
        prune.global_unstructured(
            [(l1, "weight"), (l2, "weight")], pruning_method=prune.L1Unstructured, amount=sparsity
        )
        assert torch.equal(mask["W1"][lane], l1.weight_mask.bool()), lane
        assert torch.equal(mask["W2"][lane], l2.weight_mask.bool()), lane


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_iterative_magnitude_equals_composed_torch_prune(scope):
    """Three rounds of 20% of the remaining weights, re-scored on new weights each round
    (as after retraining); torch's amount is relative to the survivors, ours is the overall
    sparsity, so convert: remaining <- remaining - round(0.2 * remaining)."""
    task = _task()
    lanes = [0, 1]
    rounds = [_params(task, 7, [10 * r + s for s in lanes], torch.float32) for r in range(3)]
    sizes = {n: rounds[0][n][0].numel() for n in NAMES}
    for lane in range(len(lanes)):
        l1, l2 = _linears(rounds[0], lane)
        layers = {"W1": l1, "W2": l2}
        previous = None
        remaining = dict(sizes) if scope == "layer" else sum(sizes.values())
        for r, params in enumerate(rounds):
            one = tt.select_lanes(params, [lane])
            _assert_no_ties(one["W1"], one["W2"])
            for n in NAMES:  # the new weights, as after retraining
                with torch.no_grad():
                    getattr(layers[n], "weight_orig", layers[n].weight).copy_(one[n][0])
            scores = {n: one[n].abs() for n in NAMES}
            if scope == "layer":
                for n in NAMES:
                    prune.l1_unstructured(layers[n], "weight", 0.2, importance_scores=one[n][0])
                    remaining[n] -= round(0.2 * remaining[n])
                (s1, s2) = (1 - remaining[n] / sizes[n] for n in NAMES)
                assert round(s1 * sizes["W1"]) == sizes["W1"] - remaining["W1"]
                # layer scope takes one sparsity: prune each layer with its own
                mask = {
                    **mask_from_scores(
                        {"W1": scores["W1"]}, s1, "layer", previous and {"W1": previous["W1"]}
                    ),
                    **mask_from_scores(
                        {"W2": scores["W2"]}, s2, "layer", previous and {"W2": previous["W2"]}
                    ),
                }
            else:
                prune.global_unstructured(
                    [(l1, "weight"), (l2, "weight")],
                    pruning_method=prune.L1Unstructured,
                    importance_scores={(l1, "weight"): one["W1"][0], (l2, "weight"): one["W2"][0]},
                    amount=0.2,
                )
                remaining -= round(0.2 * remaining)
                total = sum(sizes.values())
                s = 1 - remaining / total
                assert round(s * total) == total - remaining
                # through score_weights(masks=...) as well: pruned scores are -inf
                scores = score_weights("magnitude", one, task, masks=previous)
                mask = mask_from_scores(scores, s, "global", previous=previous)
            for n in NAMES:
                assert torch.equal(mask[n][0], layers[n].weight_mask.bool()), (scope, lane, r, n)
                if previous is not None:
                    assert not (mask[n] & ~previous[n]).any()
            previous = mask
    # 0.8 ** 3 of the weights are left (up to rounding)
    left = sum(int(previous[n].sum()) for n in NAMES)
    assert abs(left - 0.512 * sum(sizes.values())) <= 2


# ---------------------------------------------------------------- (2) SNIP


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_snip_equals_per_lane_sequential_autograd(dtype):
    task = _task()
    params = _params(task, 8, [0, 1, 2], dtype=dtype)
    X, Y, w = _data(task, dtype)
    scores = score_weights("snip", params, task)
    assert scores["W1"].dtype == dtype
    tol = dict(rtol=1e-10, atol=1e-14) if dtype == torch.float64 else dict(rtol=2e-4, atol=1e-7)
    for lane in range(3):
        net = _sequential(params, lane)
        loss = _reference_loss(net(X), Y, w)
        g1, g2 = torch.autograd.grad(loss, [net[0].weight, net[2].weight])
        torch.testing.assert_close(scores["W1"][lane], (net[0].weight * g1).abs().detach(), **tol)
        torch.testing.assert_close(scores["W2"][lane], (net[2].weight * g2).abs().detach(), **tol)
    assert (scores["W1"] > 0).any() and (scores["W1"] >= 0).all()


def test_snip_with_masks_scores_the_masked_network():
    task = _task()
    params = _params(task, 8, [0, 1])
    masks = _random_masks(params, 0.6, seed=5)
    X, Y, w = _data(task)
    scores = score_weights("snip", params, task, masks={n: m.double() for n, m in masks.items()})
    masked = {**params, **{n: params[n] * masks[n] for n in NAMES}}
    for lane in range(2):
        net = _sequential(masked, lane)
        grads = torch.autograd.grad(_reference_loss(net(X), Y, w), [net[0].weight, net[2].weight])
        for n, layer, g in zip(NAMES, (net[0], net[2]), grads, strict=True):
            m = masks[n][lane]
            ref = (layer.weight * g).abs().detach()
            torch.testing.assert_close(scores[n][lane][m], ref[m], rtol=1e-10, atol=1e-14)
            assert torch.isneginf(scores[n][lane][~m]).all()


def test_snip_gradient_matches_finite_differences():
    """|w * dL/dw| with dL/dw by central differences of the documented loss (float64)."""
    task = _task(n_vars=3, n_outputs=2, seed=1)
    params = _params(task, 3, [4], init_scale=2.0)
    X, Y, w = _data(task)
    scores = score_weights("snip", params, task)
    lane = {k: v[0].clone() for k, v in params.items()}
    pre = X @ lane["W1"].T + lane["b1"]
    assert pre.abs().min() > 1e-3, "test premise: no pre-activation at a ReLU kink"
    eps = 1e-6
    for n in NAMES:
        fd = torch.empty_like(lane[n])
        for idx in range(lane[n].numel()):
            vals = []
            for sign in (1, -1):
                p = {k: v.clone() for k, v in lane.items()}
                p[n].view(-1)[idx] += sign * eps
                vals.append(
                    _reference_loss(_lane_logits(p["W1"], p["b1"], p["W2"], p["b2"], X), Y, w)
                )
            fd.view(-1)[idx] = (vals[0] - vals[1]) / (2 * eps)
        torch.testing.assert_close(scores[n][0], (lane[n] * fd).abs(), rtol=1e-6, atol=1e-10)


# ---------------------------------------------------------------- (3) GraSP


def _grasp_reference(params, lane, task, T, names, masks=None):
    """theta * (H g) by the full Hessian of the lane's loss (logits / T) with respect to the
    flattened surviving weights of ``names`` (pruned weights are not parameters of the
    pruned network), float64. Returns ({name: score}, H, g, theta, unflatten)."""
    X, Y, w = _data(task)
    base = {k: v[lane].clone() for k, v in params.items()}
    if masks:
        for n in masks:
            base[n] = base[n] * masks[n][lane]
    keep = {
        n: (masks[n][lane] if masks and n in masks else torch.ones_like(base[n])).bool()
        for n in names
    }
    theta = torch.cat([base[n][keep[n]] for n in names])

    def unflatten(t):
        p, offset = dict(base), 0
        for n in names:
            k = int(keep[n].sum())
            full = torch.zeros_like(base[n]).masked_scatter(keep[n], t[offset : offset + k])
            p[n] = full
            offset += k
        return p

    def loss(t):
        p = unflatten(t)
        return _reference_loss(_lane_logits(p["W1"], p["b1"], p["W2"], p["b2"], X) / T, Y, w)

    H = hessian(loss, theta)
    t = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(t), t)
    ref = unflatten(theta * (H @ g))
    return {n: ref[n] for n in names}, H, g, theta, loss, keep


@pytest.mark.parametrize("T", [200.0, 1.0])
@pytest.mark.parametrize("names", [("W1", "W2"), ("W1",), ("W2",)], ids=lambda n: "+".join(n))
def test_grasp_equals_theta_times_hessian_gradient(T, names):
    task = _task(n_vars=4, n_outputs=2, seed=2)
    params = _alive(_params(task, 3, [0, 1], init_scale=2.0))
    scores = score_weights("grasp", params, task, names=names, temperature=T)
    assert set(scores) == set(names)
    for lane in range(2):
        ref, H, g, *_ = _grasp_reference(params, lane, task, T, names)
        assert (H.abs() > 0).any() and torch.allclose(H, H.T)
        for n in names:
            scale = ref[n].abs().max()
            assert scale > 0
            torch.testing.assert_close(scores[n][lane], ref[n], rtol=1e-7, atol=1e-10 * scale)


def test_grasp_hessian_vector_product_matches_finite_differences():
    """H g by (g(theta + eps g) - g(theta - eps g)) / 2 eps, then theta * Hg."""
    task = _task(n_vars=4, n_outputs=2, seed=2)
    params = _alive(_params(task, 3, [6], init_scale=2.0))
    X, _, _ = _data(task)
    pre = X @ params["W1"][0].T + params["b1"][0]
    assert pre.abs().min() > 1e-3, "test premise: no pre-activation at a ReLU kink"
    scores = score_weights("grasp", params, task)
    _, _, g, theta, loss, _ = _grasp_reference(params, 0, task, 200.0, NAMES)

    def grad(t):
        t = t.clone().requires_grad_(True)
        return torch.autograd.grad(loss(t), t)[0]

    eps = 1e-5 / g.abs().max()
    Hg = (grad(theta + eps * g) - grad(theta - eps * g)) / (2 * eps)
    fd = theta * Hg
    ours = torch.cat([scores[n][0].reshape(-1) for n in NAMES])
    torch.testing.assert_close(ours, fd, rtol=1e-5, atol=1e-6 * fd.abs().max())


def test_grasp_keeps_largest_theta_hg_and_removes_largest_minus_theta_hg():
    task = _task(n_vars=4, n_outputs=2, seed=2)
    params = _alive(_params(task, 5, [0, 1, 2], init_scale=2.0))
    scores = score_weights("grasp", params, task)
    for sparsity in (0.3, 0.6):
        mask = mask_from_scores(scores, sparsity, "global")
        for lane in range(3):
            ref, *_ = _grasp_reference(params, lane, task, 200.0, NAMES)
            minus = -torch.cat([ref[n].reshape(-1) for n in NAMES])  # GraSP's S(-theta)
            _assert_no_ties(minus)  # premise: a strict ranking (no dead units)
            k = round(sparsity * minus.numel())
            removed = torch.zeros_like(minus, dtype=torch.bool)
            removed[torch.argsort(minus, descending=True)[:k]] = True
            ours = torch.cat([mask[n][lane].reshape(-1) for n in NAMES])
            assert torch.equal(~ours, removed), (sparsity, lane)
            assert (minus[removed].min() > minus[~removed].max()).item()


def test_grasp_with_masks_scores_the_pruned_network():
    """On a pruned network, the parameters are the surviving weights: g and H are those of
    the surviving weights only (as in the SynFlow repo, where W = mask * weight makes the
    gradient of a pruned weight zero). Pruned entries score -inf."""
    task = _task(n_vars=4, n_outputs=2, seed=2)
    params = _alive(_params(task, 3, [0, 1], init_scale=2.0))
    masks = _random_masks(params, 0.75, seed=3)
    scores = score_weights("grasp", params, task, masks=masks)
    for lane in range(2):
        ref, _, _, _, _, keep = _grasp_reference(params, lane, task, 200.0, NAMES, masks)
        for n in NAMES:
            k = keep[n]
            assert torch.isneginf(scores[n][lane][~k]).all()
            scale = ref[n].abs().max()
            assert scale > 0, "test premise: the pruned network is not dead"
            torch.testing.assert_close(scores[n][lane][k], ref[n][k], rtol=1e-7, atol=1e-10 * scale)


# ---------------------------------------------------------------- (4) SynFlow


def _synflow_closed_form(params, masks=None):
    """Tanaka et al. for two layers, with A = |W * M| and an all-ones input."""
    A1 = params["W1"].abs() * (masks["W1"] if masks else 1)
    A2 = params["W2"].abs() * (masks["W2"] if masks else 1)
    s1 = A1 * A2.sum(1)[:, :, None]
    s2 = A2 * (A1.sum(2) + params["b1"].abs())[:, None, :]
    return {"W1": s1, "W2": s2}


def test_synflow_conservation_per_layer():
    """With zero biases the synaptic saliency sums are equal in both layers; with biases the
    W2 sum is R minus the output-bias paths, and exceeds W1's by the hidden-bias paths."""
    task = _task()
    params = _params(task, 8, [0, 1, 2])
    zero = {**params, "b1": torch.zeros_like(params["b1"]), "b2": torch.zeros_like(params["b2"])}
    s = score_weights("synflow", zero, task, sparsity=0.0, iterations=1)
    torch.testing.assert_close(s["W1"].sum((1, 2)), s["W2"].sum((1, 2)), rtol=1e-12, atol=0)

    s = score_weights("synflow", params, task, sparsity=0.0, iterations=1)
    A = {k: v.abs() for k, v in params.items()}
    ones = torch.ones(1, task.n_vars, dtype=torch.float64)
    R = torch.stack(
        [_lane_logits(A["W1"][i], A["b1"][i], A["W2"][i], A["b2"][i], ones).sum() for i in range(3)]
    )
    bias_paths = (A["b1"][:, None, :] * A["W2"]).sum((1, 2))
    torch.testing.assert_close(s["W2"].sum((1, 2)), R - A["b2"].sum(1), rtol=1e-12, atol=0)
    torch.testing.assert_close(
        s["W2"].sum((1, 2)) - s["W1"].sum((1, 2)), bias_paths, rtol=1e-10, atol=0
    )


def test_synflow_closed_form_and_data_free():
    params = _params(_task(), 8, [0, 1, 2])
    s = score_weights("synflow", params, _task(), sparsity=0.0, iterations=1)
    ref = _synflow_closed_form(params)
    for n in NAMES:
        torch.testing.assert_close(s[n], ref[n], rtol=1e-12, atol=0)
        assert (s[n] >= 0).all()
    # signs do not matter (|theta| is used), and the data does not either
    flipped = {k: -v for k, v in params.items()}
    other = _task(seed=11)
    assert not torch.equal(other.truth_table()[1], _task().truth_table()[1])
    for p, task in ((flipped, _task()), (params, other)):
        t = score_weights("synflow", p, task, sparsity=0.0, iterations=1)
        for n in NAMES:
            torch.testing.assert_close(t[n], s[n], rtol=1e-14, atol=0)
    # iterative scores are data-free as well
    a = score_weights("synflow", params, _task(), sparsity=0.8, iterations=20)
    b = score_weights("synflow", params, other, sparsity=0.8, iterations=20)
    for n in NAMES:
        assert torch.equal(a[n], b[n])


def test_synflow_closed_form_with_masks():
    params = _params(_task(), 8, [0, 1])
    masks = _random_masks(params, 0.7, seed=2)
    s = score_weights("synflow", params, _task(), masks=masks, sparsity=0.0, iterations=1)
    ref = _synflow_closed_form(params, {n: m.double() for n, m in masks.items()})
    for n in NAMES:
        torch.testing.assert_close(s[n][masks[n]], ref[n][masks[n]], rtol=1e-12, atol=0)
        assert torch.isneginf(s[n][~masks[n]]).all()


def _synflow_reference_masks(params, sparsity, iterations, scope):
    """The iterative schedule re-implemented: density (1 - sparsity) ** (e / iterations) at
    round e, closed-form scores of the masked network, top-k among the survivors."""
    S = params["W1"].shape[0]
    masks = {n: torch.ones_like(params[n], dtype=torch.bool) for n in NAMES}
    for e in range(1, iterations + 1):
        target = 1 - (1 - sparsity) ** (e / iterations)
        scores = _synflow_closed_form(params, {n: m.double() for n, m in masks.items()})
        groups = [[n] for n in NAMES] if scope == "layer" else [list(NAMES)]
        new = {}
        for group in groups:
            for lane in range(S):
                flat = torch.cat([scores[n][lane].reshape(-1) for n in group])
                alive = torch.cat([masks[n][lane].reshape(-1) for n in group])
                flat = flat.masked_fill(~alive, -math.inf)
                keep = _topk_keep(flat, flat.numel() - round(target * flat.numel()))
                assert not (keep & ~alive).any()
                parts = torch.split(keep, [params[n][lane].numel() for n in group])
                for n, part in zip(group, parts, strict=True):
                    new.setdefault(n, torch.zeros_like(masks[n]))[lane] = part.reshape(
                        params[n].shape[1:]
                    )
        masks = new
    return masks


@pytest.mark.parametrize("scope", ["layer", "global"])
@pytest.mark.parametrize("sparsity", [0.5, 0.9])
def test_synflow_iterative_masks(scope, sparsity):
    task = _task()
    params = _params(task, 8, [0, 1, 2])
    sizes = {n: params[n][0].numel() for n in NAMES}
    for iterations in (1, 7):
        s = score_weights(
            "synflow", params, task, sparsity=sparsity, iterations=iterations, scope=scope
        )
        mask = mask_from_scores(s, sparsity, scope)
        removed = {n: (~mask[n]).reshape(3, -1).sum(1) for n in NAMES}
        if scope == "layer":
            for n in NAMES:
                assert (removed[n] == round(sparsity * sizes[n])).all()
        else:
            total = sum(sizes.values())
            assert (removed["W1"] + removed["W2"] == round(sparsity * total)).all()
        ref = _synflow_reference_masks(params, sparsity, iterations, scope)
        for n in NAMES:
            assert torch.equal(mask[n], ref[n]), (iterations, n)
        if iterations == 1:  # one shot: top-k of the closed-form scores of the dense net
            cf = _synflow_closed_form(params)
            if scope == "layer":
                for n in NAMES:
                    for lane in range(3):
                        keep = _topk_keep(
                            cf[n][lane].reshape(-1), sizes[n] - round(sparsity * sizes[n])
                        )
                        assert torch.equal(mask[n][lane].reshape(-1), keep)
            else:
                cf_mask = mask_from_scores(cf, sparsity, "global")
                for n in NAMES:
                    assert torch.equal(mask[n], cf_mask[n])
    # the iterative schedule differs from one shot at high sparsity (it avoids layer collapse)
    if sparsity == 0.9 and scope == "global":
        one = mask_from_scores(_synflow_closed_form(params), sparsity, scope)
        assert any(not torch.equal(one[n], mask[n]) for n in NAMES)


def test_synflow_default_hundred_iterations_exact_count():
    task = _task()
    params = _params(task, 8, [0, 1], dtype=torch.float32)
    s = score_weights("synflow", params, task, sparsity=0.95, scope="global")
    mask = mask_from_scores(s, 0.95, "global")
    total = sum(params[n][0].numel() for n in NAMES)
    kept = mask["W1"].reshape(2, -1).sum(1) + mask["W2"].reshape(2, -1).sum(1)
    assert (kept == total - round(0.95 * total)).all()


def test_synflow_with_masks_keeps_pruned_weights_pruned():
    """masks: weights already pruned stay pruned, even when the schedule's first targets are
    below the sparsity the masks already have."""
    task = _task()
    params = _params(task, 8, [0, 1])
    masks = _random_masks(params, 0.5, seed=9)
    s = score_weights("synflow", params, task, masks=masks, sparsity=0.8, iterations=10)
    final = mask_from_scores(s, 0.8, "layer")
    for n in NAMES:
        assert torch.isneginf(s[n][~masks[n]]).all(), n
        assert not (final[n] & ~masks[n]).any(), n


# ---------------------------------------------------------------- (5) mask mechanics


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.77, 0.95])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_masks_remove_exactly_the_requested_number(sparsity, scope):
    g = torch.Generator().manual_seed(0)
    scores = {"W1": torch.randn(4, 9, 7, generator=g), "W2": torch.randn(4, 3, 9, generator=g)}
    mask = mask_from_scores(scores, sparsity, scope)
    assert all(mask[n].dtype == torch.bool and mask[n].shape == scores[n].shape for n in NAMES)
    removed = {n: (~mask[n]).reshape(4, -1).sum(1) for n in NAMES}
    if scope == "layer":
        for n in NAMES:
            size = scores[n][0].numel()
            assert (removed[n] == round(sparsity * size)).all(), n
            for lane in range(4):  # the kept ones are the top scores
                keep = _topk_keep(scores[n][lane].reshape(-1), size - round(sparsity * size))
                assert torch.equal(mask[n][lane].reshape(-1), keep)
    else:
        total = 63 + 27
        assert (removed["W1"] + removed["W2"] == round(sparsity * total)).all()
        for lane in range(4):
            flat = torch.cat([scores[n][lane].reshape(-1) for n in NAMES])
            keep = _topk_keep(flat, total - round(sparsity * total))
            ours = torch.cat([mask[n][lane].reshape(-1) for n in NAMES])
            assert torch.equal(ours, keep)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_ties_are_broken_by_position_deterministically(scope):
    scores = {"W1": torch.ones(2, 4, 5), "W2": torch.ones(2, 3, 4)}
    a = mask_from_scores(scores, 0.5, scope)
    b = mask_from_scores({n: s.clone() for n, s in scores.items()}, 0.5, scope)
    for n in NAMES:
        assert torch.equal(a[n], b[n])
        assert torch.equal(a[n][0], a[n][1])  # same scores, same mask in every lane
    if scope == "layer":
        for n, size in (("W1", 20), ("W2", 12)):
            keep = torch.arange(size) < size - round(0.5 * size)  # earlier positions first
            assert torch.equal(a[n][0].reshape(-1), keep)
    else:
        flat = torch.cat([a["W1"][0].reshape(-1), a["W2"][0].reshape(-1)])
        assert torch.equal(flat, torch.arange(32) < 16)
    # partial ties: integer scores with many repeats
    g = torch.Generator().manual_seed(1)
    lane = torch.randint(0, 3, (6, 6), generator=g).float()
    scores = {"W1": lane.expand(3, 6, 6).clone()}
    m = mask_from_scores(scores, 0.4, scope)
    assert torch.equal(m["W1"][0], m["W1"][2])
    assert torch.equal(m["W1"][0].reshape(-1), _topk_keep(lane.reshape(-1), 36 - round(0.4 * 36)))
    assert torch.equal(m["W1"], mask_from_scores(scores, 0.4, scope)["W1"])


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_previously_pruned_stay_pruned(scope):
    g = torch.Generator().manual_seed(2)
    first = {"W1": torch.randn(3, 8, 6, generator=g), "W2": torch.randn(3, 2, 8, generator=g)}
    second = {n: torch.randn(s.shape, generator=g) for n, s in first.items()}
    prev = mask_from_scores(first, 0.5, scope)
    new = mask_from_scores(second, 0.7, scope, previous=prev)
    for n in NAMES:
        assert not (new[n] & ~prev[n]).any()
    sizes = {"W1": 48, "W2": 16}
    if scope == "layer":
        for n in NAMES:
            assert ((~new[n]).reshape(3, -1).sum(1) == round(0.7 * sizes[n])).all()
    else:
        removed = (~new["W1"]).reshape(3, -1).sum(1) + (~new["W2"]).reshape(3, -1).sum(1)
        assert (removed == round(0.7 * 64)).all()
    # the survivors are ranked among themselves: the top of `second` restricted to prev
    for lane in range(3):
        alive = torch.cat([prev[n][lane].reshape(-1) for n in NAMES])
        if scope == "layer":
            flat = (
                second["W1"][lane].reshape(-1).masked_fill(~prev["W1"][lane].reshape(-1), -math.inf)
            )
            assert torch.equal(new["W1"][lane].reshape(-1), _topk_keep(flat, 48 - round(0.7 * 48)))
        else:
            flat = torch.cat([second[n][lane].reshape(-1) for n in NAMES]).masked_fill(
                ~alive, -math.inf
            )
            ours = torch.cat([new[n][lane].reshape(-1) for n in NAMES])
            assert torch.equal(ours, _topk_keep(flat, 64 - round(0.7 * 64)))
    # the same sparsity keeps the previous mask whatever the scores; float masks work too
    same = mask_from_scores(second, 0.5, scope, previous={n: m.float() for n, m in prev.items()})
    for n in NAMES:
        assert torch.equal(same[n], prev[n])
    with pytest.raises(ValueError, match="sparsity"):
        mask_from_scores(second, 0.3, scope, previous=prev)


# ---------------------------------------------------------------- (6) validation


@pytest.fixture(scope="module")
def small():
    task = _task()
    return task, _params(task, 5, [0, 1], dtype=torch.float32)


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5, float("nan"), float("inf")])
def test_bad_sparsity_raises(small, sparsity):
    task, params = small
    scores = score_weights("magnitude", params, task)
    with pytest.raises(ValueError, match="sparsity"):
        mask_from_scores(scores, sparsity)
    with pytest.raises(ValueError, match="sparsity"):
        mask_from_scores(scores, sparsity, "global")
    with pytest.raises(ValueError, match="sparsity"):
        score_weights("synflow", params, task, sparsity=sparsity, iterations=2)


def test_bad_choices_raise(small):
    task, params = small
    scores = score_weights("magnitude", params, task)
    with pytest.raises(ValueError, match="method"):
        score_weights("movement", params, task)
    with pytest.raises(ValueError, match="scope"):
        mask_from_scores(scores, 0.5, scope="row")
    with pytest.raises(ValueError, match="scope"):
        score_weights("synflow", params, task, sparsity=0.5, iterations=2, scope="row")
    for names in (("W1", "b1"), ("b2",), (), ("W3",)):
        with pytest.raises(ValueError, match="names"):
            score_weights("magnitude", params, task, names=names)
    with pytest.raises(ValueError, match="sparsity"):
        score_weights("synflow", params, task)
    for seeds in ([0], [0, 1, 2]):
        with pytest.raises(ValueError, match="seeds"):
            score_weights("random", params, task, seeds=seeds)
    with pytest.raises(ValueError, match="temperature"):
        score_weights("grasp", params, task, temperature=0.0)
    with pytest.raises(ValueError, match="iterations"):
        score_weights("synflow", params, task, sparsity=0.5, iterations=0)


@pytest.mark.parametrize("method", ["magnitude", "snip", "grasp", "synflow", "random"])
def test_mismatched_shapes_raise(small, method):
    task, params = small
    opts = dict(sparsity=0.5, iterations=2) if method == "synflow" else {}
    wrong_n = {**params, "W1": torch.zeros(2, 5, task.n_vars + 1)}
    with pytest.raises(ValueError, match="W1"):
        score_weights(method, wrong_n, task, **opts)
    wrong_h = {**params, "W2": torch.zeros(2, task.n_outputs, 6)}
    with pytest.raises(ValueError, match="W2"):
        score_weights(method, wrong_h, task, **opts)
    with pytest.raises(ValueError, match="b1"):
        score_weights(method, {k: v for k, v in params.items() if k != "b1"}, task, **opts)


def test_previous_of_wrong_shape_raises(small):
    task, params = small
    scores = score_weights("magnitude", params, task)
    prev = mask_from_scores(scores, 0.5)
    with pytest.raises(ValueError, match="previous"):
        mask_from_scores(scores, 0.6, previous={**prev, "W1": prev["W1"][:, :, :-1]})
    with pytest.raises(ValueError, match="lane"):
        mask_from_scores({"W1": scores["W1"], "W2": scores["W2"][:1]}, 0.5, "global")
    with pytest.raises(ValueError, match="scores"):
        mask_from_scores({}, 0.5)


@pytest.mark.parametrize("method", ["magnitude", "snip", "grasp", "random"])
def test_masks_of_wrong_shape_raise(small, method):
    task, params = small
    bad = {"W1": torch.ones(2, 5, task.n_vars + 1, dtype=torch.bool)}
    with pytest.raises(ValueError, match="masks"):
        score_weights(method, params, task, masks=bad)


@pytest.mark.parametrize("method", ["snip", "grasp", "synflow"])
def test_scores_use_masks_of_layers_not_scored(method):
    """Scoring W1 of a network whose W2 is pruned scores that pruned network."""
    task = _task(n_vars=4, n_outputs=2, seed=2)
    params = _params(task, 4, [0, 1], init_scale=2.0)
    m2 = _random_masks(params, 0.5, seed=4)["W2"]
    opts = dict(sparsity=0.0, iterations=1) if method == "synflow" else {}
    a = score_weights(method, params, task, names=("W1",), masks={"W2": m2}, **opts)
    b = score_weights(method, {**params, "W2": params["W2"] * m2}, task, names=("W1",), **opts)
    torch.testing.assert_close(a["W1"], b["W1"], rtol=1e-12, atol=0)


# ---------------------------------------------------------------- (7) masked training


@pytest.mark.parametrize("layers", [("W1",), ("W1", "W2")], ids=["W1", "W1+W2"])
def test_masked_weights_stay_zero_through_training(layers):
    task = tt.make_task(n_vars=8, n_clauses=6, seed=1)
    model = tt.ModelConfig(width=8)
    init = tt.init_params(task.n_vars, task.n_outputs, model, [0, 1])
    mask = mask_from_scores(score_weights("magnitude", init, task), 0.6, "global")
    cfg = tt.TrainConfig(steps=50, checkpoints=(1, 10, 25))
    run = tt.train(task, model, cfg, seeds=[0, 1], masks={n: mask[n].float() for n in layers})
    assert sorted(run.checkpoints) == [0, 1, 10, 25, 50]
    for step, p in run.checkpoints.items():
        for n in layers:
            assert (p[n][~mask[n]] == 0).all(), (step, n)
    for n in layers:  # the survivors did train (some may sit on dead units and not move)
        assert (run.final[n][mask[n]] != run.init[n][mask[n]]).any(), n
    assert torch.equal(run.init["W1"][mask["W1"]], init["W1"][mask["W1"]])


# ---------------------------------------------------------------- (8) random scores


def test_random_scores_depend_only_on_the_lane_seed():
    task = _task()
    params = _params(task, 6, [0, 1, 2], dtype=torch.float32)
    a = score_weights("random", params, task, seeds=[3, 7, 11])
    b = score_weights("random", tt.select_lanes(params, [2, 0]), task, seeds=[11, 3])
    other = _params(task, 6, [5, 6, 7], dtype=torch.float32)  # other weights, same seeds
    c = score_weights("random", other, task, seeds=[3, 7, 11])
    for n in NAMES:
        assert a[n].shape == params[n].shape
        assert torch.equal(a[n][2], b[n][0]) and torch.equal(a[n][0], b[n][1])
        assert torch.equal(a[n], c[n])
        assert not torch.equal(a[n][0], a[n][1]) and not torch.equal(a[n][1], a[n][2])
        assert ((a[n] >= 0) & (a[n] < 1)).all()
    assert not torch.equal(a["W1"][0].reshape(-1)[:18], a["W2"][0].reshape(-1)[:18])
    default = score_weights("random", params, task)  # default seeds: the lane index
    explicit = score_weights("random", params, task, seeds=[0, 1, 2])
    for n in NAMES:
        assert torch.equal(default[n], explicit[n])
    # a random mask has exactly the requested density as well
    mask = mask_from_scores(a, 0.75, "layer")
    assert ((~mask["W1"]).reshape(3, -1).sum(1) == round(0.75 * 36)).all()


@pytest.mark.parametrize("method", ["magnitude", "snip", "grasp", "synflow", "random"])
def test_every_method_returns_scores_shaped_like_the_weights(method):
    task = _task()
    params = _params(task, 6, [0, 1], dtype=torch.float32)
    opts = dict(sparsity=0.5, iterations=3) if method == "synflow" else {}
    for names in (NAMES, ("W1",)):
        s = score_weights(method, params, task, names=names, **opts)
        assert set(s) == set(names)
        for n in names:
            assert s[n].shape == params[n].shape and s[n].dtype == params[n].dtype
            assert not torch.isnan(s[n]).any()
