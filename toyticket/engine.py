"""The compiled CPU engine: whole trainings of LANES networks at a time, in Numba.

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

LANES networks train side by side (``toyticket.simd``): every array carries a last axis of
LANES, one entry per network, and every operation is a vector instruction applied entry by
entry, so each network's arithmetic is exactly what it would be alone while each instruction
does LANES networks' work. No loop has to be vectorized by the compiler, and every sum over
the table's rows (a reduction within one network) is an elementwise sum across networks. A
step computes the tables, the logits of every row (two rows and four outputs at a time, in
registers), their gradients, then the backward pass one hidden unit at a time, rows outer and
blocks (2**b rows) inner so that what accumulates over blocks stays in registers. A whole
training (all steps, the optimizer, checkpoints, logged loss and accuracy) runs in compiled
code; an ensemble is trained LANES networks at a time, the last group padded with copies of
its last network, so a network's bits never depend on the rest of the ensemble.

Numerics: nothing is left to the compiler's discretion. There is no fastmath: no sum is
reassociated, no multiply-add fused unless the code says so, so the bits are fixed by this
source alone, the same in a fresh compilation and from numba's cache (with reassociation they
were not: LLVM's back end reorders sums differently there). Sums over the rows of the table,
accumulate elementwise across blocks and end in a pairwise sum over the rows of a block
(``_pairwise_rows``). The target CPU is pinned by
``toyticket.numerics`` (one AVX2 build for every x86-64 CPU that has it), and the sigmoid uses
an exp written here in plain arithmetic, not the C library's, so no libm version or code path
enters the training. Functions are generic in the float type: float32 trains the book,
float64 checks the engine against an independent computation.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from toyticket import numerics
from toyticket.simd import LANES, gate, load, relu, splat, store, widen, zeros

numerics.pin()  # before the first compilation: the pinned target decides the machine code

BLOCK_BITS = 8  # 256 rows a block; it fixes the order of every sum over the rows (the bits)
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


_X86 = platform.machine().lower() in ("x86_64", "amd64")
# The SSE control word while the engine runs: round to nearest, exceptions masked, and
# subnormal numbers flushed to zero, as results (FTZ) and as inputs (DAZ). Saturated logits
# make sigmoids and their gradients subnormal, and every operation on a subnormal number
# takes a microcode path about a hundred times slower: without the flush, a network that has
# learned its task trains several times slower than one just initialized.
FLUSH_SUBNORMALS = 0x1F80 | 0x8000 | 0x0040


@intrinsic
def _swap_control_word(typingctx, word):
    """Set the SSE control word (MXCSR) of this thread to ``word`` and return the old one
    (on other CPUs: nothing, and 0)."""
    if not isinstance(word, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        if not _X86:
            return ir.Constant(i32, 0)
        pointer = ir.IntType(8).as_pointer()
        signature_ir = ir.FunctionType(ir.VoidType(), [pointer])
        module = builder.module
        save = module.declare_intrinsic("llvm.x86.sse.stmxcsr", fnty=signature_ir)
        load_word = module.declare_intrinsic("llvm.x86.sse.ldmxcsr", fnty=signature_ir)
        slot = builder.alloca(i32)
        builder.call(save, [builder.bitcast(slot, pointer)])
        old = builder.load(slot)
        builder.store(builder.trunc(args[0], i32) if args[0].type != i32 else args[0], slot)
        builder.call(load_word, [builder.bitcast(slot, pointer)])
        return old

    return types.uint32(word), codegen


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
    """G = (sigmoid(Z) - Y) wo: dL/dlogits [rows, M] from logits Z and targets YT [rows, M]
    and weights wo [M] (the engine passes all its logits as one row). Its own function
    without fastmath, so that the exp keeps its order of operations; the loop vectorizes."""
    B = Z.shape[1]
    for o in range(YT.shape[0]):
        for lo in range(B):
            G[o, lo] = (sigmoid(Z[o, lo]) - YT[o, lo]) * wo[lo]


@nb.njit(cache=True, error_model="numpy")
def group_grads(params, masks, data, metrics, work, grads, loss, correct):
    """Gradients of LANES networks' losses, written into ``grads``; their loss and bit
    accuracy (float64, [LANES]) into ``loss`` and ``correct`` when ``metrics``.

    ``params``: (W1L [n, h, L], b1L [h, L], W2L [out, h, L], b2L [out, L]) and ``masks``
    (M1L, M2L: 0/1, the shapes of W1L and W2L, or size 0 where unmasked), flat, lanes last;
    ``data``: ``table_data``; ``work``: ``workspace``; ``grads``: arrays shaped
    like ``params``.

    Order of the work: the tables; the logits of every row; their gradients G; then the
    backward pass one hidden unit r at a time, rows outer and blocks inner, so that what
    accumulates over blocks for r (its share of dW2, of the low bits of dW1) stays in
    registers; the sums over rows, pairwise, for all lanes at once."""
    W1L, b1L, W2L, b2L = params
    M1L, M2L = masks
    YT, wo64, wpen, YL, WL, wpenT, shape = data
    n, h, n_out, B, H, P = shape[0], shape[1], shape[2], shape[3], shape[4], shape[5]
    lowF, highF, W2P, b2P, Z, G, WS, D, Dlow, Dhigh, S, scratch, sums = work
    gW1L, gb1L, gW2L, gb2L = grads
    W2P[: W2L.size] = W2L  # outputs padded to a multiple of 4 with zero weights
    b2P[: b2L.size] = b2L
    _tables(W1L, b1L, lowF, highF, n, h)
    _logits(highF, lowF, W2P, b2P, Z.reshape(-1), h, B, H, P)
    logit_grads(Z, YL, WL, G)  # Z, G [B, H, P, L] as one row
    Zf, Gf = Z.reshape(-1), G.reshape(-1)
    for x in range(B * H):  # the padding outputs: no gradient, whatever their logits
        for o in range(n_out, P):
            store(Gf, (x * P + o) * LANES, zeros(Gf))
    if metrics:
        _metrics(Zf, highF, lowF, YT, wo64, wpen, h, n_out, B, H, P, loss, correct)
    for lo in range(B):
        for o in range(n_out):
            s = zeros(Gf)
            for hi in range(H):
                s = s + load(Gf, ((lo * H + hi) * P + o) * LANES)
            store(S, (lo * P + o) * LANES, s)
    _pairwise_rows(S, B, P * LANES, scratch, sums)
    gb2L[:] = sums[: n_out * LANES]
    hL = h * LANES
    for r in range(h):
        _backward_unit(r, highF, lowF, W2P, Gf, wpenT, WS, D, Dlow, h, B, H, P)
        _pairwise_rows(WS, B, P * LANES, scratch, sums)
        for o in range(n_out):
            gW2L[(o * h + r) * LANES : (o * h + r + 1) * LANES] = sums[o * LANES : (o + 1) * LANES]
        _pairwise_rows(D, B, H * LANES, scratch, sums)
        for hi in range(H):
            Dhigh[hi * hL + r * LANES : hi * hL + (r + 1) * LANES] = sums[
                hi * LANES : (hi + 1) * LANES
            ]
    _halve_low(Dlow, gW1L, min(n, BLOCK_BITS), hL, scratch, sums)
    _halve_high(Dhigh, gW1L, gb1L, n, hL)
    if M1L.size:
        gW1L *= M1L
    if M2L.size:
        gW2L *= M2L


@nb.njit(cache=True, error_model="numpy")
def _tables(W1L, b1L, lowF, highF, n, h):
    """The first layer's outer-sum tables, by doubling: lowF [B, h, L] over the low bits of the
    row index (no bias), highF [H, h, L] over the remaining bits (with the bias)."""
    nb_low = min(n, BLOCK_BITS)
    for r in range(h):
        store(lowF, r * LANES, zeros(lowF))
        store(highF, r * LANES, load(b1L, r * LANES))
    for j in range(nb_low):
        half = 1 << j
        for i in range(half):
            for r in range(h):
                w = load(W1L, (j * h + r) * LANES)
                store(lowF, ((half + i) * h + r) * LANES, load(lowF, (i * h + r) * LANES) + w)
    for j in range(nb_low, n):
        half = 1 << (j - nb_low)
        for i in range(half):
            for r in range(h):
                w = load(W1L, (j * h + r) * LANES)
                store(highF, ((half + i) * h + r) * LANES, load(highF, (i * h + r) * LANES) + w)


@nb.njit(cache=True, error_model="numpy")
def _logits(highF, lowF, W2P, b2P, Z, h, B, H, P):
    """The logits Z [B, H, P, L] of every row x = (hi, lo): b2 + sum over r of
    W2[:, r] relu(pre[r]), added in the order of r; two rows and four outputs at a time, in
    registers."""
    for hi in range(H):
        for lo in range(0, B, 2):
            for o0 in range(0, P, 4):
                z_0, z_1 = load(b2P, o0 * LANES), load(b2P, (o0 + 1) * LANES)
                z_2, z_3 = load(b2P, (o0 + 2) * LANES), load(b2P, (o0 + 3) * LANES)
                y_0, y_1, y_2, y_3 = z_0, z_1, z_2, z_3
                for r in range(h):
                    c = load(highF, (hi * h + r) * LANES)
                    a = relu(c + load(lowF, (lo * h + r) * LANES))
                    b = relu(c + load(lowF, ((lo + 1) * h + r) * LANES))
                    w = load(W2P, (o0 * h + r) * LANES)
                    z_0, y_0 = z_0 + w * a, y_0 + w * b
                    w = load(W2P, ((o0 + 1) * h + r) * LANES)
                    z_1, y_1 = z_1 + w * a, y_1 + w * b
                    w = load(W2P, ((o0 + 2) * h + r) * LANES)
                    z_2, y_2 = z_2 + w * a, y_2 + w * b
                    w = load(W2P, ((o0 + 3) * h + r) * LANES)
                    z_3, y_3 = z_3 + w * a, y_3 + w * b
                at = ((lo * H + hi) * P + o0) * LANES
                nx = H * P * LANES  # the next row, lo + 1
                store(Z, at, z_0)
                store(Z, at + LANES, z_1)
                store(Z, at + 2 * LANES, z_2)
                store(Z, at + 3 * LANES, z_3)
                store(Z, at + nx, y_0)
                store(Z, at + nx + LANES, y_1)
                store(Z, at + nx + 2 * LANES, y_2)
                store(Z, at + nx + 3 * LANES, y_3)


@nb.njit(cache=True, error_model="numpy")
def _metrics(Z, highF, lowF, YT, wo64, wpen, h, n_out, B, H, P, loss, correct):
    """Each lane's loss (BCE, plus the activation penalty) and bit accuracy in float64, block
    by block (YT [H, out, B], wo64 and wpen [H, B]: the table's); the penalty, the same sum
    in every lane's order, for all lanes at once."""
    block_loss, block_correct = np.empty(LANES), np.empty(LANES)
    loss[:] = 0.0
    correct[:] = 0.0
    for hi in range(H):
        for k in range(LANES):
            bl = 0.0
            bc = 0.0
            for o in range(n_out):
                for lo in range(B):
                    z = np.float64(Z[((lo * H + hi) * P + o) * LANES + k])
                    y = np.float64(YT[hi, o, lo])
                    bl += wo64[hi, lo] * (max(z, 0.0) + math.log1p(math.exp(-abs(z))) - z * y)
                    if (z > 0) == (y > 0.5):
                        bc += wo64[hi, lo]
            block_loss[k] = bl
            block_correct[k] = bc
        total = load(block_loss, 0)
        for r in range(h):
            c = load(highF, (hi * h + r) * LANES)
            for lo in range(B):
                a = relu(c + load(lowF, (lo * h + r) * LANES))
                total = total + splat(np.float64(wpen[hi, lo])) * widen(a)
        store(block_loss, 0, total)
        for k in range(LANES):
            loss[k] += block_loss[k]
            correct[k] += block_correct[k]


@nb.njit(cache=True, error_model="numpy")
def _backward_unit(r, highF, lowF, W2P, G, wpenT, WS, D, Dlow, h, B, H, P):
    """Hidden unit r's backward pass: for every row lo of a block and every block hi,
    dL/dpre[r] into D [B, H, L] (to be summed over lo: the high bits of dW1), its sum over
    the blocks into Dlow [B, h, L] (the low bits), and G relu(pre[r]) summed over the blocks
    into WS [B, P, L] (dW2[:, r]). Sums over blocks go in the order of the blocks; dL/dA
    adds the outputs in their order, four at a time (G: [B, H, P, L], flat)."""
    for o0 in range(0, P, 4):
        first, last = o0 == 0, o0 + 4 == P
        if first and last:  # each case compiled without the tests (first and last: P == 4)
            _four_outputs(True, True, r, o0, highF, lowF, W2P, G, wpenT, WS, D, Dlow, h, B, H, P)
        elif first:
            _four_outputs(True, False, r, o0, highF, lowF, W2P, G, wpenT, WS, D, Dlow, h, B, H, P)
        elif last:
            _four_outputs(False, True, r, o0, highF, lowF, W2P, G, wpenT, WS, D, Dlow, h, B, H, P)
        else:
            _four_outputs(False, False, r, o0, highF, lowF, W2P, G, wpenT, WS, D, Dlow, h, B, H, P)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _four_outputs(first, last, r, o0, highF, lowF, W2P, G, wpenT, WS, D, Dlow, h, B, H, P):
    """Outputs o0 .. o0 + 3 of ``_backward_unit``: D holds dL/dA over the outputs so far
    (``first``: none yet, start from the penalty's gradient); ``last``: apply the gate."""
    w_0, w_1 = load(W2P, (o0 * h + r) * LANES), load(W2P, ((o0 + 1) * h + r) * LANES)
    w_2, w_3 = load(W2P, ((o0 + 2) * h + r) * LANES), load(W2P, ((o0 + 3) * h + r) * LANES)
    for lo in range(B):
        low = load(lowF, (lo * h + r) * LANES)
        ws_0 = zeros(G)
        ws_1, ws_2, ws_3, d_low = ws_0, ws_0, ws_0, ws_0
        for hi in range(H):
            p = load(highF, (hi * h + r) * LANES) + low
            a = relu(p)
            at = ((lo * H + hi) * P + o0) * LANES
            g_0, g_1 = load(G, at), load(G, at + LANES)
            g_2, g_3 = load(G, at + 2 * LANES), load(G, at + 3 * LANES)
            d_at = (lo * H + hi) * LANES
            s = splat(wpenT[lo * H + hi]) if first else load(D, d_at)
            s = s + (((w_0 * g_0 + w_1 * g_1) + w_2 * g_2) + w_3 * g_3)
            ws_0 = ws_0 + g_0 * a
            ws_1 = ws_1 + g_1 * a
            ws_2 = ws_2 + g_2 * a
            ws_3 = ws_3 + g_3 * a
            if last:
                s = gate(p, s)  # dL/dpre: the ReLU's derivative
                d_low = d_low + s
            store(D, d_at, s)
        at = (lo * P + o0) * LANES
        store(WS, at, ws_0)
        store(WS, at + LANES, ws_1)
        store(WS, at + 2 * LANES, ws_2)
        store(WS, at + 3 * LANES, ws_3)
        if last:
            store(Dlow, (lo * h + r) * LANES, d_low)


@nb.njit(cache=True, error_model="numpy")
def _pairwise_rows(V, n, W, scratch, sums):
    """sums[k] = the pairwise sum of column k of V [n, W] (flat; n a power of two, W a
    multiple of LANES): halves added elementwise until one row is left, the last eight rows
    in straight-line code, all columns at once. ``scratch``: at least n // 2 * W numbers."""
    source = V
    while n > 8:
        if n >= 32:  # two halvings in one pass: half the loads and stores
            q = n // 4 * W
            for i in range(0, q, LANES):
                first = load(source, i) + load(source, 2 * q + i)
                second = load(source, q + i) + load(source, 3 * q + i)
                store(scratch, i, first + second)
            n //= 4
        else:
            half = n // 2 * W
            for i in range(0, half, LANES):
                store(scratch, i, load(source, i) + load(source, half + i))
            n //= 2
        source = scratch
    _tree8_rows(source, n, W, sums)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _tree8_rows(v, n, W, sums):
    """The pairwise sums of the columns of v [n, W] (flat), n one of 1, 2, 4, 8."""
    for k in range(0, W, LANES):
        if n == 8:
            s = (load(v, k) + load(v, 4 * W + k)) + (load(v, 2 * W + k) + load(v, 6 * W + k))
            t = (load(v, W + k) + load(v, 5 * W + k)) + (load(v, 3 * W + k) + load(v, 7 * W + k))
            s = s + t
        elif n == 4:
            s = (load(v, k) + load(v, 2 * W + k)) + (load(v, W + k) + load(v, 3 * W + k))
        elif n == 2:
            s = load(v, k) + load(v, W + k)
        else:
            s = load(v, k)
        store(sums, k, s)


@nb.njit(cache=True, error_model="numpy")
def _halve_low(Dlow, gW1L, nb_low, hL, scratch, sums):
    """dW1 for the low bits j by halving Dlow [B, h, L] (dL/dpre summed over the blocks; in
    place): column j sums it over the rows with bit j set."""
    for j in range(nb_low - 1, -1, -1):
        half = 1 << j
        _pairwise_rows(Dlow[half * hL : 2 * half * hL], half, hL, scratch, sums)
        gW1L[j * hL : (j + 1) * hL] = sums[:hL]
        for i in range(0, half * hL, LANES):
            store(Dlow, i, load(Dlow, i) + load(Dlow, half * hL + i))


@nb.njit(cache=True, error_model="numpy")
def _halve_high(Dhigh, gW1L, gb1L, n, hL):
    """dW1 for the high bits by halving Dhigh [H, h, L] (in place); db1 is the total."""
    nb_low = min(n, BLOCK_BITS)
    for j in range(n - 1, nb_low - 1, -1):
        half = 1 << (j - nb_low)
        gW1L[j * hL : (j + 1) * hL] = 0
        for i in range(half):
            for m in range(hL):
                gW1L[j * hL + m] += Dhigh[(half + i) * hL + m]
                Dhigh[i * hL + m] += Dhigh[(half + i) * hL + m]
    gb1L[:] = Dhigh[:hL]


def workspace(n: int, h: int, n_out: int, dtype: np.dtype) -> tuple:
    """Scratch arrays of ``group_grads`` for networks of n inputs, h hidden units and n_out
    outputs (all flat, lanes last)."""
    B, H = 1 << min(n, BLOCK_BITS), 1 << (n - min(n, BLOCK_BITS))
    P = (n_out + 3) // 4 * 4
    L = LANES
    return (
        np.empty(B * h * L, dtype),  # low table [B, h, L]
        np.empty(H * h * L, dtype),  # high table [H, h, L]
        np.zeros(P * h * L, dtype),  # W2 with its outputs padded to P
        np.zeros(P * L, dtype),  # b2, padded
        np.empty((1, B * H * P * L), dtype),  # logits [B, H, P, L]
        np.zeros((1, B * H * P * L), dtype),  # dL/dlogits [B, H, P, L]
        np.empty(B * P * L, dtype),  # G relu(pre[r]) summed over the blocks [B, P, L]
        np.empty(B * H * L, dtype),  # dL/dpre[r] [B, H, L]
        np.empty(B * h * L, dtype),  # dL/dpre summed over the blocks [B, h, L]
        np.empty(H * h * L, dtype),  # dL/dpre summed over each block's rows [H, h, L]
        np.empty(B * P * L, dtype),  # dL/dlogits summed over the blocks (for db2) [B, P, L]
        np.empty(max(1, B // 2) * max(H, h, P) * L, dtype),  # scratch of _pairwise_rows
        np.empty(max(H, h, P) * L, dtype),  # its sums
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
def train_group(params, masks, data, work, schedule, hyper, keep, checkpoints, history):
    """Train LANES networks in place and record them.

    ``params``, ``masks``, ``data``, ``work``: as ``group_grads`` takes them (parameters
    updated in place). ``schedule``: int64 [steps, log_every, optimizer code]; ``hyper``:
    float64 [lr, momentum]. ``keep``: the checkpoint steps, sorted, 0 and ``steps`` included;
    ``checkpoints``: one array [len(keep), size] per parameter, filled at those steps.
    ``history`` [2, T, L]: loss and bit accuracy at every logged step (multiples of
    log_every, and the last)."""
    W1L, b1L, W2L, b2L = params
    M1L, M2L = masks
    steps, log_every, optimizer = schedule[0], schedule[1], schedule[2]
    lr, momentum = hyper[0], hyper[1]
    dt = W1L.dtype
    grads = (np.empty_like(W1L), np.empty_like(b1L), np.empty_like(W2L), np.empty_like(b2L))
    state1 = (np.zeros_like(W1L), np.zeros_like(b1L), np.zeros_like(W2L), np.zeros_like(b2L))
    state2 = (np.zeros_like(W1L), np.zeros_like(b1L), np.zeros_like(W2L), np.zeros_like(b2L))
    loss, correct = np.empty(LANES), np.empty(LANES)
    consts = np.empty(7, dt)  # optimizer constants in the network's float type
    b1_adam, b2_adam = ADAM_BETAS
    consts[2:] = (ADAM_EPS, b1_adam, 1 - b1_adam, b2_adam, 1 - b2_adam)
    k = 0
    logged_i = 0
    for step in range(steps + 1):
        if k < keep.size and keep[k] == step:
            checkpoints[0][k] = W1L
            checkpoints[1][k] = b1L
            checkpoints[2][k] = W2L
            checkpoints[3][k] = b2L
            k += 1
        logged = step % log_every == 0 or step == steps
        group_grads(params, masks, data, logged, work, grads, loss, correct)
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
                _adam_step(params[i], grads[i], state1[i], state2[i], consts)
        else:
            consts[0] = lr
            consts[1] = momentum
            for i in range(4):
                _sgd_step(params[i], grads[i], state1[i], consts[0], consts[1])
        if M1L.size:
            W1L *= M1L
        if M2L.size:
            W2L *= M2L


@nb.njit(cache=True, error_model="numpy")
def _train_group_flushed(params, masks, data, work, schedule, hyper, keep, checkpoints, history):
    """``train_group`` with subnormal numbers flushed to zero (``FLUSH_SUBNORMALS``), the
    control word restored after."""
    old = _swap_control_word(FLUSH_SUBNORMALS)
    train_group(params, masks, data, work, schedule, hyper, keep, checkpoints, history)
    _swap_control_word(old)


@nb.njit(cache=True, error_model="numpy")
def _group_grads_flushed(params, masks, data, metrics, work, grads, loss, correct):
    """``group_grads`` with subnormal numbers flushed to zero, as in training."""
    old = _swap_control_word(FLUSH_SUBNORMALS)
    group_grads(params, masks, data, metrics, work, grads, loss, correct)
    _swap_control_word(old)


def table_data(Y: np.ndarray, w: np.ndarray, penalty: float, h: int, dtype: np.dtype) -> tuple:
    """The table as ``group_grads`` takes it, from targets Y [N, out], input weights w [N] and
    the activation penalty of a network of width h (table row x = hi * B + lo): YT [H, out,
    B] the targets; wo64 [H, B] the input weight over the number of outputs (float64, for the
    metrics); wpen [H, B] penalty / h * input weight, the gradient of the activation penalty;
    then the targets and weights repeated over the lanes in the layout of the logits, as one
    row (YL [1, B H P L] and WL [B H P L], zero for the padding outputs), wpen as [B, H], and
    the shape (n, h, out, B, H, P)."""
    Y, w = np.asarray(Y, np.float64), np.asarray(w, np.float64)
    N, n_out = Y.shape
    n = N.bit_length() - 1
    B, H = 1 << min(n, BLOCK_BITS), 1 << (n - min(n, BLOCK_BITS))
    YT = np.ascontiguousarray(Y.reshape(H, B, n_out).transpose(0, 2, 1), dtype)
    wo64 = np.ascontiguousarray((w / n_out).reshape(H, B))
    wpen = (w * (penalty / h)).reshape(H, B).astype(dtype)
    P = (n_out + 3) // 4 * 4
    YL = np.zeros((B, H, P, LANES), dtype)
    YL[:, :, :n_out] = YT.transpose(2, 0, 1)[..., None]
    WL = np.zeros((B, H, P, LANES), dtype)
    WL[:, :, :n_out] = wo64.astype(dtype).T[:, :, None, None]
    return (
        YT,
        wo64,
        wpen,
        YL.reshape(1, -1),
        WL.reshape(-1),
        np.ascontiguousarray(wpen.T).reshape(-1),
        np.array([n, h, n_out, B, H, P], np.int64),
    )


# Each parameter in the lanes' layout: the axes of params[name][lanes] that give it.
_LAYOUT = {"W1": (2, 1, 0), "b1": (1, 0), "W2": (1, 2, 0), "b2": (1, 0)}
_NAMES = tuple(_LAYOUT)


def _pack(arrays: dict[str, np.ndarray], names: tuple[str, ...], lanes: np.ndarray, dtype):
    """The lanes' arrays side by side (flat, lanes last); size 0 for a missing name."""
    return tuple(
        np.ascontiguousarray(arrays[k][lanes].transpose(_LAYOUT[k]), dtype).reshape(-1)
        if k in arrays
        else np.empty(0, dtype)
        for k in names
    )


def _unpack(flat: np.ndarray, name: str, like: np.ndarray) -> np.ndarray:
    """[..., size] in the lanes' layout back to [..., LANES, *shape of one lane]."""
    axes = _LAYOUT[name]
    lane_shape = (LANES,) + like.shape[1:]
    shape = flat.shape[:-1] + tuple(lane_shape[a] for a in axes)
    lead = len(flat.shape) - 1
    inverse = tuple(int(i) for i in np.argsort(axes))
    return flat.reshape(shape).transpose(*range(lead), *(lead + i for i in inverse))


def _groups(S: int):
    """The lanes of each group (the last one padded by repeating its last lane) and how many
    of them are real."""
    for s0 in range(0, S, LANES):
        real = min(LANES, S - s0)
        yield np.minimum(np.arange(s0, s0 + LANES), s0 + real - 1), real


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
    S, h, n = params["W1"].shape
    dt = params["W1"].dtype
    n_out = params["W2"].shape[1]
    data = table_data(Y, w, penalty, h, dt)
    work = workspace(n, h, n_out, dt)
    schedule = np.array([steps, log_every, OPTIMIZER_CODES[optimizer]], np.int64)
    hyper = np.array([lr, momentum], np.float64)
    keep_arr = np.array(keep, np.int64)
    T = len(range(0, steps, log_every)) + 1
    out = {k: np.empty((len(keep),) + p.shape, dt) for k, p in params.items()}
    history = np.empty((2, T, S), np.float64)
    for lanes, real in _groups(S):
        group = _pack(params, _NAMES, lanes, dt)
        group_masks = _pack(masks, ("W1", "W2"), lanes, dt)
        group_out = tuple(np.empty((len(keep), p.size), dt) for p in group)
        group_history = np.empty((2, T, LANES), np.float64)
        _train_group_flushed(
            group, group_masks, data, work, schedule, hyper, keep_arr, group_out, group_history
        )
        s0 = lanes[0]
        for name, values in zip(_NAMES, group_out, strict=True):
            out[name][:, s0 : s0 + real] = _unpack(values, name, params[name])[:, :real]
        history[:, :, s0 : s0 + real] = group_history[:, :, :real]
        if progress is not None:
            for _ in range(real):
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
    S, h, n = params["W1"].shape
    dt = params["W1"].dtype
    n_out = params["W2"].shape[1]
    data = table_data(Y, w, penalty, h, dt)
    work = workspace(n, h, n_out, dt)
    params = {k: p * masks[k] if k in masks else p for k, p in params.items()}  # effective
    loss, correct = np.empty(S), np.empty(S)
    out = {k: np.empty_like(v) for k, v in params.items()}
    group_loss, group_correct = np.empty(LANES), np.empty(LANES)
    for lanes, real in _groups(S):
        group = _pack(params, _NAMES, lanes, dt)
        g = tuple(np.empty_like(p) for p in group)
        _group_grads_flushed(
            group,
            _pack(masks, ("W1", "W2"), lanes, dt),
            data,
            True,
            work,
            g,
            group_loss,
            group_correct,
        )
        s0 = lanes[0]
        for name, values in zip(_NAMES, g, strict=True):
            out[name][s0 : s0 + real] = _unpack(values, name, params[name])[:real]
        loss[s0 : s0 + real] = group_loss[:real]
        correct[s0 : s0 + real] = group_correct[:real]
    return loss, out, correct
