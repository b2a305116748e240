"""Vectors of LANES floats for compiled code: one number of each of LANES networks.

The engine trains LANES networks side by side: every array has a last axis of LANES, one
entry per network, and every operation is one of the few below, applied entry by entry. That
makes each network's arithmetic exactly that of the same network trained alone (an addition
of two vectors is LANES independent additions, rounded as IEEE says), while every instruction
does LANES networks' work. The operations are LLVM vector instructions written out here, so
the machine code does not depend on what the compiler manages to vectorize.

In compiled code: ``load(a, i)`` reads a[i : i + LANES] of a 1-D contiguous array and
``store(a, i, v)`` writes it; ``splat(x)`` repeats a number; ``+``, ``-`` and ``*`` act entry
by entry (no fused multiply-add); ``relu(p)`` is p where p > 0, else 0, and ``gate(p, d)`` is
d where p > 0, else 0 (the ReLU and its derivative applied to d, as ``p if p > 0 else 0``);
``zeros(a)`` is a vector of zeros of the float type of array a, ``widen(v)`` is v in float64.
"""

from __future__ import annotations

import operator

from llvmlite import ir
from numba import types
from numba.extending import intrinsic, models, overload, register_model

LANES = 8  # one AVX2 register of float32 (float64 vectors take two)


class Vector(types.Type):
    """The numba type of LANES numbers of one float type."""

    def __init__(self, dtype: types.Float) -> None:
        self.dtype = dtype
        super().__init__(name=f"Vector({dtype} x {LANES})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, LANES))


def _address(context, builder, array_type, array, index):
    data = context.make_array(array_type)(context, builder, value=array).data
    vector = context.get_value_type(Vector(array_type.dtype))
    return builder.bitcast(builder.gep(data, [index]), vector.as_pointer())


@intrinsic
def load(typingctx, array, index):
    """array[index : index + LANES] (array: 1-D, contiguous; no bounds check)."""
    if not (isinstance(array, types.Array) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        address = _address(context, builder, signature.args[0], *args)
        return builder.load(address, align=array.dtype.bitwidth // 8)

    return Vector(array.dtype)(array, index), codegen


@intrinsic
def store(typingctx, array, index, value):
    """array[index : index + LANES] = value."""
    if not (isinstance(array, types.Array) and isinstance(value, Vector)):
        return None

    def codegen(context, builder, signature, args):
        address = _address(context, builder, signature.args[0], args[0], args[1])
        builder.store(args[2], address, align=array.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


@intrinsic
def splat(typingctx, x):
    """x in every lane."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, signature, args):
        vector = context.get_value_type(signature.return_type)
        undefined = ir.Constant(vector, ir.Undefined)
        first = builder.insert_element(undefined, args[0], ir.Constant(ir.IntType(32), 0))
        lanes = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
        return builder.shuffle_vector(first, undefined, lanes)

    return Vector(x)(x), codegen


def _elementwise(instruction):
    @intrinsic
    def apply(typingctx, a, b):
        if not (isinstance(a, Vector) and a == b):
            return None

        def codegen(context, builder, signature, args):
            return getattr(builder, instruction)(*args)

        return a(a, b), codegen

    return apply


_add, _sub, _mul = _elementwise("fadd"), _elementwise("fsub"), _elementwise("fmul")


def _where_positive(keep_p):
    @intrinsic
    def apply(typingctx, p, d):
        if not (isinstance(p, Vector) and p == d):
            return None

        def codegen(context, builder, signature, args):
            zero = ir.Constant(args[0].type, None)
            positive = builder.fcmp_ordered(">", args[0], zero)
            return builder.select(positive, args[0] if keep_p else args[1], zero)

        return p(p, d), codegen

    return apply


_relu, gate = _where_positive(True), _where_positive(False)


def relu(p):
    """p where p > 0, else 0 (compiled code only)."""
    raise NotImplementedError


@overload(relu, jit_options={"cache": True})
def _relu_impl(p):
    if isinstance(p, Vector):
        return lambda p: _relu(p, p)
    return None


for _op, _impl in ((operator.add, _add), (operator.sub, _sub), (operator.mul, _mul)):

    def _register(op=_op, impl=_impl):
        @overload(op)
        def _vector_op(a, b):
            if isinstance(a, Vector) and a == b:
                return lambda a, b: impl(a, b)
            return None

    _register()


@intrinsic
def zeros(typingctx, array):
    """A vector of zeros of the array's float type."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        return ir.Constant(context.get_value_type(signature.return_type), None)

    return Vector(array.dtype)(array), codegen


@intrinsic
def widen(typingctx, v):
    """v in float64 (exact)."""
    if not isinstance(v, Vector):
        return None
    target = Vector(types.float64)

    def codegen(context, builder, signature, args):
        if v.dtype == types.float64:
            return args[0]
        return builder.fpext(args[0], context.get_value_type(target))

    return target(v), codegen
