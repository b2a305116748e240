"""The vector operations of toyticket.simd against numpy, entry by entry and bitwise,
including the edge cases of IEEE arithmetic (signed zeros, infinities, NaN)."""

import numba as nb
import numpy as np
import pytest

from toyticket.simd import LANES, gate, load, relu, splat, store, widen, zeros


@nb.njit
def _apply(a, b, out):
    for i in range(0, a.size, LANES):
        x, y = load(a, i), load(b, i)
        at = 7 * i
        store(out, at, x + y)
        store(out, at + LANES, x - y)
        store(out, at + 2 * LANES, x * y)
        store(out, at + 3 * LANES, relu(x))
        store(out, at + 4 * LANES, gate(x, y))
        store(out, at + 5 * LANES, splat(a[i + 1]) + zeros(a))
        store(out, at + 6 * LANES, zeros(a))


@nb.njit
def _widen(a, out):
    for i in range(0, a.size, LANES):
        store(out, i, widen(load(a, i)))


def _edge_cases(dtype, size=8 * LANES):
    rng = np.random.default_rng(0)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 3.0], dtype)
    a = rng.standard_normal(size).astype(dtype)
    a[: special.size] = special
    b = rng.standard_normal(size).astype(dtype)
    b[LANES : LANES + special.size] = special[::-1]
    return a, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vector_operations_are_the_scalar_ones_entry_by_entry(dtype):
    a, b = _edge_cases(dtype)
    out = np.empty(7 * a.size, dtype)
    _apply(a, b, out)
    with np.errstate(invalid="ignore", over="ignore"):
        for i in range(0, a.size, LANES):
            x, y = a[i : i + LANES], b[i : i + LANES]
            expected = [
                x + y,
                x - y,
                x * y,
                np.where(x > 0, x, dtype(0)),
                np.where(x > 0, y, dtype(0)),
                np.full(LANES, a[i + 1]) + dtype(0),
                np.zeros(LANES, dtype),
            ]
            got = out[7 * i : 7 * (i + LANES)].reshape(7, LANES)
            for e, g in zip(expected, got, strict=True):
                assert np.array_equal(e.astype(dtype).view(np.uint8), g.view(np.uint8))


def test_widen_is_the_exact_float64():
    a, _ = _edge_cases(np.float32)
    out = np.empty(a.size)
    _widen(a, out)
    assert np.array_equal(out.view(np.uint8), a.astype(np.float64).view(np.uint8))
