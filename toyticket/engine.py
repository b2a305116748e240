"""The compiled CPU engine: whole trainings, one network (lane) at a time, in Numba.

The data set is the full truth table, so the first layer is an outer sum and never needs a
matrix product. Write x = (hi, lo) with lo the low ``b`` bits of the row index (variables
0..b-1) and hi the rest. Then

    pre(x) = high[hi] + low[lo],   high[hi] = b1 + sum_{j >= b set in x} W1[:, j],
                                   low[lo]  = sum_{j < b set in x} W1[:, j],

and both tables are built by doubling (the table of j + 1 bits is the table of j bits, then the
same plus W1[:, j]): O(N h) additions instead of O(N n h) multiply-adds. Backward, the gradient
of W1[:, j] is the sum of dL/dpre over the rows where bit j is set; summing dL/dpre over hi (for
the low bits) and over lo (for the high bits) and halving those tables bit by bit gives all n
columns in O(N h) as well. What remains are the three products with W2 (forward logits, dW2 and
dL/dA), each O(N h outputs): the floor of the algorithm.

One pass over the table per step computes forward and backward block by block (2**b rows, so
that a block's activations stay in L1), with hidden units innermost so that every loop over
rows of W1 vectorizes. A whole training (all steps, the optimizer, checkpoints, logged loss and
accuracy) runs in compiled code; lanes are independent calls, so a lane's bits never depend on
the rest of the ensemble.

Numerics: nothing is left to the compiler's discretion. There is no fastmath: no sum is
reassociated, no multiply-add fused unless the code says so, so the bits are fixed by this
source alone, the same in a fresh compilation and from numba's cache (with reassociation they
were not: LLVM's back end reorders sums differently there). Sums over the rows of the table,
which would otherwise be sequential, accumulate elementwise across blocks and end in a
pairwise sum written here (``pairwise_sum``). The target CPU is pinned by
``toyticket.numerics`` (one AVX2 build for every x86-64 CPU that has it), and the sigmoid uses
an exp written here in plain arithmetic, not the C library's, so no libm version or code path
enters the training. Functions are generic in the float type: float32 trains the book,
float64 checks the engine against an independent computation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from toyticket import numerics

numerics.pin()  # before the first compilation: the pinned target decides the machine code

BLOCK_BITS = 8  # 256 rows a block: long enough loops, activations (256 x h floats) in L2
OPTIMIZER_CODES = {"adam": 0, "sgd": 1}
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # PyTorch's defaults


@intrinsic
def _as_float(typingctx, bits):
    """Reinterpret the bits of an int32 (int64) as a float32 (float64); vectorizes, unlike a
    view of an array."""
    if bits == types.int32:
        sig, llvm_type = types.float32(types.int32), ir.FloatType()
    elif bits == types.int64:
        sig, llvm_type = types.float64(types.int64), ir.DoubleType()
    else:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_type)

    return sig, codegen


# exp(x) = 2**k e**r with x = k ln2 + r, |r| <= ln2 / 2 (Cody-Waite: ln2 split in two so that
# k ln2 is exact), e**r from a polynomial, 2**k from the exponent bits. Float32: the Cephes
# expf polynomial (relative error about 1e-7); float64: Taylor to degree 12 (below 2e-16).
_F32 = np.float32
_EXP32 = tuple(
    _F32(c)
    for c in (
        1.9875691500e-4,
        1.3981999507e-3,
        8.3334519073e-3,
        4.1665795894e-2,
        1.6666665459e-1,
        5.0000001201e-1,
    )
)
_EXP32_CONST = tuple(
    _F32(c) for c in (-87.0, 88.0, 1.44269504088896341, 0.693359375, -2.12194440e-4, 0.5, 1.0)
)
_EXP64 = tuple(1.0 / math.factorial(d) for d in range(12, -1, -1))


@nb.njit(cache=True, inline="always", error_model="numpy")
def _sigmoid32(z):
    lo, hi, log2e, ln2_hi, ln2_lo, half, one = _EXP32_CONST
    x = min(max(-z, lo), hi)
    k = np.floor(x * log2e + half)  # a float (math.floor would give an int64)
    r = (x - k * ln2_hi) - k * ln2_lo
    p = _EXP32[0]
    for c in _EXP32[1:]:
        p = p * r + c
    # (numba widens int32 arithmetic to int64: narrow again before the bit cast)
    e = (p * r * r + r + one) * _as_float(np.int32((np.int32(k) + 127) << 23))
    return one / (one + e)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _sigmoid64(z):
    x = min(max(-z, -700.0), 700.0)
    k = np.floor(x * 1.4426950408889634 + 0.5)
    r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10  # fdlibm's split
    p = _EXP64[0]
    for c in _EXP64[1:]:
        p = p * r + c
    return 1.0 / (1.0 + p * _as_float((np.int64(k) + 1023) << 52))


def sigmoid(z):
    """1 / (1 + e**-z) in the float type of z. Compiled, it uses only +, *, floor and a bit
    cast (no C library), so that it vectorizes and gives the same bits wherever the machine
    code is the same; from Python it is the plain formula."""
    return 1.0 / (1.0 + math.exp(-z))


@overload(sigmoid, jit_options={"cache": True, "error_model": "numpy"})
def _sigmoid_impl(z):
    if z == types.float32:
        return lambda z: _sigmoid32(z)
    if z == types.float64:
        return lambda z: _sigmoid64(z)
    return None


@nb.njit(cache=True, error_model="numpy")
def logit_grads(Z, YT, wo, G):
    """G = (sigmoid(Z) - Y) wo: dL/dlogits [out, B] of a block (YT [out, B] and wo [B]: the
    block's targets and weights). Its own function without fastmath, so that the exp keeps
    its order of operations; the loop over the block vectorizes."""
    B = Z.shape[1]
    for o in range(YT.shape[0]):
        for lo in range(B):
            G[o, lo] = (sigmoid(Z[o, lo]) - YT[o, lo]) * wo[lo]


@nb.njit(cache=True, error_model="numpy")
def lane_grads(W1T, b1, W2, b2, M1T, M2, YT, wo, wo64, wpen, metrics, work, grads):
    """Gradients of one lane's loss at (W1, b1, W2, b2), written into ``grads``.

    W1T [n, h] is W1 transposed (row j: the weights of input j); M1T, M2: 0/1 masks of the
    same shapes as W1T and W2 (size-0 arrays: unmasked). The data, block-major
    (``table_data``): YT [H, out, B] the targets; wo [H, B] the input weight over the number
    of outputs (wo64: the same in float64, for the metrics); wpen [H, B]: penalty / h * input
    weight, the gradient of the activation penalty (zeros without one). ``work``: scratch
    arrays from ``workspace``; ``grads``: (gW1T, gb1, gW2, gb2). Returns (loss, bit accuracy)
    of the lane in float64 when ``metrics``, else (0, 0)."""
    lowT, high, A, Z, G, dA, Dlow, Dhigh, GS, WS, scratch = work
    gW1T, gb1, gW2, gb2 = grads
    n_out, h = W2.shape
    _tables(W1T, b1, lowT, high)
    GS[:, :] = 0
    WS[:, :, :] = 0
    Dlow[:, :] = 0
    loss = 0.0
    correct = 0.0
    for hi in range(high.shape[0]):
        _forward(high[hi], lowT, W2, b2, A, Z)
        logit_grads(Z, YT[hi], wo[hi], G)
        if metrics:
            block_loss, block_correct = _metrics(Z, A, YT[hi], wo64[hi], wpen[hi])
            loss += block_loss
            correct += block_correct
        _backward(A, W2, G, wpen[hi], dA, GS, WS, Dlow, Dhigh[hi], scratch)
    for o in range(n_out):
        gb2[o] = pairwise_sum(GS[o], scratch)
        for r in range(h):
            gW2[o, r] = pairwise_sum(WS[o, r], scratch)
    _halve(Dlow, Dhigh, gW1T, gb1, scratch)
    if M1T.size:
        gW1T *= M1T
    if M2.size:
        gW2 *= M2
    return loss, correct


@nb.njit(cache=True, error_model="numpy")
def _tables(W1T, b1, lowT, high):
    """The first layer's outer-sum tables, by doubling: lowT [h, B] over the low bits of the
    row index (no bias), high [H, h] over the remaining bits (with the bias)."""
    n, h = W1T.shape
    nb_low = min(n, BLOCK_BITS)
    zero = np.zeros(1, lowT.dtype)[0]  # 0 in the network's float type (0.0 is float64)
    for r in range(h):
        lowT[r, 0] = zero
        for j in range(nb_low):
            half = 1 << j
            wj = W1T[j, r]
            for i in range(half):
                lowT[r, half + i] = lowT[r, i] + wj
    high[0, :] = b1
    for j in range(nb_low, n):
        half = 1 << (j - nb_low)
        for i in range(half):
            for r in range(h):
                high[half + i, r] = high[i, r] + W1T[j, r]


@nb.njit(cache=True, error_model="numpy")
def _forward(high_row, lowT, W2, b2, A, Z):
    """Activations A [h, B] and logits Z [P, B] of one block (one row of the high table),
    four outputs at a time so that a row of A is read once per group."""
    h, B = A.shape
    zero = np.zeros(1, A.dtype)[0]
    for r in range(h):
        c = high_row[r]
        for lo in range(B):
            p = c + lowT[r, lo]
            A[r, lo] = p if p > 0 else zero
    for o0 in range(0, W2.shape[0], 4):
        b_0, b_1, b_2, b_3 = _four(b2, o0, zero)
        for lo in range(B):
            Z[o0, lo] = b_0
            Z[o0 + 1, lo] = b_1
            Z[o0 + 2, lo] = b_2
            Z[o0 + 3, lo] = b_3
        for r in range(h):
            w_0, w_1, w_2, w_3 = _four_col(W2, o0, r, zero)
            for lo in range(B):
                a = A[r, lo]
                Z[o0, lo] += w_0 * a
                Z[o0 + 1, lo] += w_1 * a
                Z[o0 + 2, lo] += w_2 * a
                Z[o0 + 3, lo] += w_3 * a


@nb.njit(cache=True, error_model="numpy")
def _metrics(Z, A, YT, wo64, wpen):
    """A block's share of the loss (BCE, plus the activation penalty) and of the bit accuracy,
    in float64 (YT, wo64, wpen: the block's slices)."""
    loss = 0.0
    correct = 0.0
    B = Z.shape[1]
    for o in range(YT.shape[0]):
        for lo in range(B):
            z = np.float64(Z[o, lo])
            y = np.float64(YT[o, lo])
            loss += wo64[lo] * (max(z, 0.0) + math.log1p(math.exp(-abs(z))) - z * y)  # softplus
            if (z > 0) == (y > 0.5):
                correct += wo64[lo]
    for r in range(A.shape[0]):
        for lo in range(B):
            loss += np.float64(wpen[lo]) * np.float64(A[r, lo])
    return loss, correct


@nb.njit(cache=True, error_model="numpy")
def _backward(A, W2, G, wpen, dA, GS, WS, Dlow, Dhigh_row, scratch):
    """Accumulate one block's share, elementwise over its rows: GS [P, B] += G (for db2),
    WS [P, h, B] += G A (for dW2), Dlow [h, B] += dL/dpre (the low bits of dW1); and write
    Dhigh_row [h], the block's dL/dpre summed over its rows (the high bits). Outputs go four
    at a time, so that a row of activations is read once per group."""
    n_out, h = W2.shape
    B = A.shape[1]
    zero = np.zeros(1, A.dtype)[0]
    for o in range(GS.shape[0]):
        for lo in range(B):
            GS[o, lo] += G[o, lo]
    for r in range(h):
        for lo in range(B):
            dA[lo] = wpen[lo]
        for o0 in range(0, n_out, 4):
            w_0, w_1, w_2, w_3 = _four_col(W2, o0, r, zero)
            for lo in range(B):
                a = A[r, lo]
                g_0, g_1, g_2, g_3 = G[o0, lo], G[o0 + 1, lo], G[o0 + 2, lo], G[o0 + 3, lo]
                dA[lo] += w_0 * g_0 + w_1 * g_1 + w_2 * g_2 + w_3 * g_3
                WS[o0, r, lo] += g_0 * a
                WS[o0 + 1, r, lo] += g_1 * a
                WS[o0 + 2, r, lo] += g_2 * a
                WS[o0 + 3, r, lo] += g_3 * a
        for lo in range(B):
            d = dA[lo] if A[r, lo] > 0 else zero  # dL/dpre: the ReLU gate
            Dlow[r, lo] += d
            dA[lo] = d
        Dhigh_row[r] = pairwise_sum(dA, scratch)


@nb.njit(cache=True, error_model="numpy")
def pairwise_sum(v, scratch):
    """The sum of v (its length a power of two) in a fixed order: halves added elementwise
    until one number is left. Every loop is elementwise, so it vectorizes without any
    reassociation and gives the same bits however it is compiled. ``scratch``: at least
    len(v) // 2 numbers."""
    n = v.shape[0]
    if n == 1:
        return v[0]
    n //= 2
    for i in range(n):
        scratch[i] = v[i] + v[n + i]
    while n > 1:
        n //= 2
        for i in range(n):
            scratch[i] += scratch[n + i]
    return scratch[0]


@nb.njit(cache=True, error_model="numpy")
def _halve(Dlow, Dhigh, gW1T, gb1, scratch):
    """dW1 by halving (in place): column j sums dL/dpre over the rows with bit j set, from
    Dlow for the low bits and from Dhigh for the others; db1 is the total."""
    n, h = gW1T.shape
    nb_low = min(n, BLOCK_BITS)
    zero = np.zeros(1, Dlow.dtype)[0]
    for r in range(h):
        row = Dlow[r]
        for j in range(nb_low - 1, -1, -1):
            half = 1 << j
            gW1T[j, r] = pairwise_sum(row[half : 2 * half], scratch)
            for i in range(half):
                row[i] += row[half + i]
    for j in range(n - 1, nb_low - 1, -1):
        half = 1 << (j - nb_low)
        gW1T[j, :] = zero
        for i in range(half):
            for r in range(h):
                gW1T[j, r] += Dhigh[half + i, r]
                Dhigh[i, r] += Dhigh[half + i, r]
    gb1[:] = Dhigh[0, :]


@nb.njit(cache=True, inline="always", error_model="numpy")
def _four(v, o0, zero):
    """v[o0 : o0 + 4], zero-padded past the end."""
    n = v.shape[0]
    return (
        v[o0],
        v[o0 + 1] if o0 + 1 < n else zero,
        v[o0 + 2] if o0 + 2 < n else zero,
        v[o0 + 3] if o0 + 3 < n else zero,
    )


@nb.njit(cache=True, inline="always", error_model="numpy")
def _four_col(W, o0, r, zero):
    """W[o0 : o0 + 4, r], zero-padded past the last row."""
    n = W.shape[0]
    return (
        W[o0, r],
        W[o0 + 1, r] if o0 + 1 < n else zero,
        W[o0 + 2, r] if o0 + 2 < n else zero,
        W[o0 + 3, r] if o0 + 3 < n else zero,
    )


@nb.njit(cache=True, inline="always", error_model="numpy")
def _add_four(W, o0, r, s_0, s_1, s_2, s_3):
    """W[o0 : o0 + 4, r] += (s_0, ..., s_3), dropping what falls past the last row."""
    n = W.shape[0]
    W[o0, r] += s_0
    if o0 + 1 < n:
        W[o0 + 1, r] += s_1
    if o0 + 2 < n:
        W[o0 + 2, r] += s_2
    if o0 + 3 < n:
        W[o0 + 3, r] += s_3


@nb.njit(cache=True, error_model="numpy")
def workspace(W1T, W2):
    """Scratch arrays of ``lane_grads`` for a network shaped like W1T [n, h] and W2 [out, h]."""
    n, h = W1T.shape
    n_out = W2.shape[0]
    B, H = 1 << min(n, BLOCK_BITS), 1 << (n - min(n, BLOCK_BITS))
    P = (n_out + 3) // 4 * 4
    dt = W1T.dtype
    return (
        np.empty((h, B), dt),  # low table
        np.empty((H, h), dt),  # high table
        np.empty((h, B), dt),  # activations of a block
        np.empty((P, B), dt),  # logits of a block (outputs padded to a multiple of 4)
        np.zeros((P, B), dt),  # dL/dlogits of a block (the padding stays zero)
        np.empty(B, dt),  # dL/dA of one row of W1 over the block
        np.empty((h, B), dt),  # dL/dpre summed over hi
        np.empty((H, h), dt),  # dL/dpre summed over lo
        np.empty((P, B), dt),  # dL/dlogits summed over hi (for db2)
        np.empty((P, h, B), dt),  # G A summed over hi (for dW2)
        np.empty(max(1, B // 2), dt),  # scratch of pairwise_sum
    )


@nb.njit(cache=True, error_model="numpy")
def _adam_step(p, g, m, v, c):
    """One Adam update in place (flat views), with the constants c = (lr / (1 - beta1**t),
    1 / (1 - beta2**t), eps, beta1, 1 - beta1, beta2, 1 - beta2) in the network's float type."""
    lr_t, bc2, eps, b1, b1c, b2, b2c = c[0], c[1], c[2], c[3], c[4], c[5], c[6]
    for i in range(p.size):
        m[i] = b1 * m[i] + b1c * g[i]
        v[i] = b2 * v[i] + b2c * g[i] * g[i]
        p[i] -= lr_t * m[i] / (math.sqrt(v[i] * bc2) + eps)


@nb.njit(cache=True, error_model="numpy")
def _sgd_step(p, g, buf, lr, momentum):
    """One heavy-ball update in place (flat views), as torch.optim.SGD(momentum=momentum)."""
    for i in range(p.size):
        buf[i] = momentum * buf[i] + g[i]
        p[i] -= lr * buf[i]


@nb.njit(cache=True, error_model="numpy")
def train_lane(params, masks, data, schedule, hyper, keep, checkpoints, history):
    """Train one lane in place and record it.

    ``params``: (W1T, b1, W2, b2), float arrays updated in place; ``masks``: (M1T, M2), size 0
    where unmasked; ``data``: (YT, wo, wo64, wpen) as ``lane_grads`` takes them.
    ``schedule``: int64 [steps, log_every, optimizer code]; ``hyper``: float64 [lr, momentum].
    ``keep``: the checkpoint steps, sorted, 0 and ``steps`` included; ``checkpoints``: one
    array [len(keep), ...] per parameter, filled at those steps.
    ``history`` [2, T]: loss and bit accuracy at every logged step (multiples of log_every,
    and the last)."""
    W1T, b1, W2, b2 = params
    M1T, M2 = masks
    YT, wo, wo64, wpen = data
    steps, log_every, optimizer = schedule[0], schedule[1], schedule[2]
    lr, momentum = hyper[0], hyper[1]
    dt = W1T.dtype
    work = workspace(W1T, W2)
    grads = (np.empty_like(W1T), np.empty_like(b1), np.empty_like(W2), np.empty_like(b2))
    flat_p = (W1T.reshape(-1), b1.reshape(-1), W2.reshape(-1), b2.reshape(-1))
    flat_g = (
        grads[0].reshape(-1),
        grads[1].reshape(-1),
        grads[2].reshape(-1),
        grads[3].reshape(-1),
    )
    state1 = (
        np.zeros(W1T.size, dt),
        np.zeros(b1.size, dt),
        np.zeros(W2.size, dt),
        np.zeros(b2.size, dt),
    )
    state2 = (
        np.zeros(W1T.size, dt),
        np.zeros(b1.size, dt),
        np.zeros(W2.size, dt),
        np.zeros(b2.size, dt),
    )
    consts = np.empty(7, dt)  # optimizer constants in the network's float type
    b1_adam, b2_adam = ADAM_BETAS
    consts[2:] = (ADAM_EPS, b1_adam, 1 - b1_adam, b2_adam, 1 - b2_adam)
    k = 0
    logged_i = 0
    for step in range(steps + 1):
        if k < keep.size and keep[k] == step:
            checkpoints[0][k] = W1T
            checkpoints[1][k] = b1
            checkpoints[2][k] = W2
            checkpoints[3][k] = b2
            k += 1
        logged = step % log_every == 0 or step == steps
        loss, correct = lane_grads(
            W1T, b1, W2, b2, M1T, M2, YT, wo, wo64, wpen, logged, work, grads
        )
        if logged:
            history[0, logged_i] = loss
            history[1, logged_i] = correct
            logged_i += 1
        if step == steps:
            break
        if optimizer == 0:
            t = step + 1
            consts[0] = lr / (1 - b1_adam**t)
            consts[1] = 1 / (1 - b2_adam**t)
            for i in range(4):
                _adam_step(flat_p[i], flat_g[i], state1[i], state2[i], consts)
        else:
            consts[0] = lr
            consts[1] = momentum
            for i in range(4):
                _sgd_step(flat_p[i], flat_g[i], state1[i], consts[0], consts[1])
        if M1T.size:
            W1T *= M1T
        if M2.size:
            W2 *= M2


def table_data(Y: np.ndarray, w: np.ndarray, penalty: float, h: int, dtype: np.dtype) -> tuple:
    """(YT, wo, wo64, wpen) of ``lane_grads`` from targets Y [N, out], input weights w [N] and
    the activation penalty of a network of width h: block-major, so that block hi of each is
    one contiguous array (table row x = hi * B + lo)."""
    Y, w = np.asarray(Y, np.float64), np.asarray(w, np.float64)
    N, n_out = Y.shape
    B = 1 << min(N.bit_length() - 1, BLOCK_BITS)

    YT = np.ascontiguousarray(Y.reshape(N // B, B, n_out).transpose(0, 2, 1), dtype)
    wo64 = np.ascontiguousarray((w / n_out).reshape(N // B, B))
    wpen = (w * (penalty / h)).reshape(N // B, B).astype(dtype)
    return YT, wo64.astype(dtype), wo64, wpen


def _lane(params: dict[str, np.ndarray], masks: dict[str, np.ndarray], s: int) -> tuple:
    """Lane s as ``lane_grads`` takes it: fresh contiguous arrays, W1 and its mask transposed
    (size-0 arrays for missing masks)."""
    dt = params["W1"].dtype
    empty = np.empty((0, 0), dt)
    lane = (
        np.ascontiguousarray(params["W1"][s].T),
        *(np.array(params[k][s], dt, order="C") for k in ("b1", "W2", "b2")),
    )
    lane_masks = (
        np.ascontiguousarray(masks["W1"][s].T, dt) if "W1" in masks else empty,
        np.array(masks["W2"][s], dt, order="C") if "W2" in masks else empty,
    )
    return lane, lane_masks


def train_ensemble(
    params: dict[str, np.ndarray],
    masks: dict[str, np.ndarray],
    Y: np.ndarray,
    w: np.ndarray,
    *,
    steps: int,
    lr: float,
    optimizer: str,
    momentum: float,
    penalty: float,
    log_every: int,
    keep: tuple[int, ...],
    progress: Callable[[], object] | None = None,
) -> tuple[dict[int, dict[str, np.ndarray]], np.ndarray]:
    """Train every lane of ``params`` (W1 [S, h, n], b1, W2, b2; all one float type) with
    ``masks`` (0/1, "W1" and/or "W2") on targets Y [N, out] with input weights w [N].

    Returns the parameters at each step of ``keep`` (sorted, 0 and ``steps`` included) and the
    history [2, T, S] (loss, bit accuracy) at the logged steps. ``progress``: called after
    each lane (a progress bar's ``update``)."""
    S, h, _ = params["W1"].shape
    dt = params["W1"].dtype
    data = table_data(Y, w, penalty, h, dt)
    schedule = np.array([steps, log_every, OPTIMIZER_CODES[optimizer]], np.int64)
    hyper = np.array([lr, momentum], np.float64)
    keep_arr = np.array(keep, np.int64)
    T = len(range(0, steps, log_every)) + 1
    out = {k: np.empty((len(keep),) + p.shape, dt) for k, p in params.items()}
    history = np.empty((2, T, S), np.float64)
    for s in range(S):
        lane, lane_masks = _lane(params, masks, s)
        lane_out = tuple(np.empty((len(keep),) + p.shape, dt) for p in lane)
        lane_history = np.empty((2, T), np.float64)
        train_lane(lane, lane_masks, data, schedule, hyper, keep_arr, lane_out, lane_history)
        out["W1"][:, s] = lane_out[0].transpose(0, 2, 1)
        for name, values in zip(("b1", "W2", "b2"), lane_out[1:], strict=True):
            out[name][:, s] = values
        history[:, :, s] = lane_history
        if progress is not None:
            progress()
    checkpoints = {t: {k: v[i] for k, v in out.items()} for i, t in enumerate(keep)}
    return checkpoints, history


def grads(
    params: dict[str, np.ndarray],
    masks: dict[str, np.ndarray],
    Y: np.ndarray,
    w: np.ndarray,
    penalty: float = 0.0,
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Per-lane loss [S], gradients (masked entries zero) and bit accuracy [S] at ``params``:
    the step that ``train_ensemble`` takes, exposed to check it against other computations."""
    S, h, _ = params["W1"].shape
    data = table_data(Y, w, penalty, h, params["W1"].dtype)
    params = {k: p * masks[k] if k in masks else p for k, p in params.items()}  # effective
    loss, correct = np.empty(S), np.empty(S)
    out = {k: np.empty_like(v) for k, v in params.items()}
    for s in range(S):
        (W1T, b1, W2, b2), (M1T, M2) = _lane(params, masks, s)
        g = (np.empty_like(W1T), np.empty_like(b1), np.empty_like(W2), np.empty_like(b2))
        loss[s], correct[s] = lane_grads(
            W1T, b1, W2, b2, M1T, M2, *data, True, workspace(W1T, W2), g
        )
        out["W1"][s] = g[0].T
        out["b1"][s], out["W2"][s], out["b2"][s] = g[1], g[2], g[3]
    return loss, out, correct
