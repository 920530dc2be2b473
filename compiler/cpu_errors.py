"""How compiled CPU callbacks fail: bounds-checked buffers and the arithmetic error model.

Buffers. On the GPU ``data_in``, ``data_out`` and ``user_info`` are raw pointers: an offset outside the
buffer reads or writes someone else's memory. With bounds checks on (``FFTFUSE_BOUNDS_CHECKS=1``,
see ``cpu_backend.bounds_checks``) the CPU loops hand a cuFFT-form callback a
:class:`CheckedBufferType` instead of the 1-D array itself: integer indexing only (all that a
pointer offers, so a callback that types here types on the GPU), and any offset outside
``0 .. len - 1`` raises IndexError (negative offsets too: a pointer does not wrap around the
way a NumPy index does). The raise never reaches numba's runtime: the loops catch it and
return the failing element's position (``cpu_loops``), and the executor reports it.

The buffer is the array's data pointer and length: no reference count is touched per element.
Still, a checked loop does not vectorize (its exit on a bad offset), which is why the checks are
off by default.

Arithmetic. :data:`ERROR_MODEL` is NumPy's error model (a float division by zero gives inf or
nan, as on the GPU) except for integers: an integer division or modulo by zero raises
ZeroDivisionError, as in Python, where NumPy's model would silently give 0.

Importing this module imports numba (compile time only).
"""

from __future__ import annotations

import operator
from typing import Any

from numba.core import callconv, types
from numba.extending import intrinsic, models, overload, register_model

__all__ = ["ERROR_MODEL", "CheckedBufferType", "checked", "checked_type"]

#: The ``error_model`` option of the CPU callbacks' numba functions.
ERROR_MODEL = "fftfuse-numpy-int-raises"


class _NumpyIntegerRaises(callconv.NumpyErrorModel):
    """NumPy's error model, but integer division and modulo by zero raise ZeroDivisionError."""

    def fp_zero_division(self, builder: Any, exc_args: Any = None, loc: Any = None) -> bool:
        # numba reports integer // and % by zero as "integer division/modulo/divmod by zero";
        # a true division of integers ("division by zero") is a float one, and gives inf.
        if exc_args and str(exc_args[0]).startswith("integer"):
            self.call_conv.return_user_exc(builder, ZeroDivisionError, exc_args, loc)
            return True
        return False


callconv.error_models.setdefault(ERROR_MODEL, _NumpyIntegerRaises)


class CheckedBufferType(types.Type):
    """A 1-D array seen as a pointer whose every offset is checked: its data pointer and length."""

    def __init__(self, array: types.Array) -> None:
        self.array = array
        self.dtype = array.dtype
        super().__init__(name=f"CheckedBuffer({array})")


@register_model(CheckedBufferType)
class _CheckedModel(models.StructModel):
    # No reference to the array's memory owner: the buffer lives while the loop's call does, and
    # no reference count is touched per element (which would keep LLVM from vectorizing).
    def __init__(self, dmm: Any, fe_type: CheckedBufferType) -> None:
        super().__init__(dmm, fe_type, [("data", types.CPointer(fe_type.dtype)), ("n", types.intp)])


def checked_type(array: types.Array) -> CheckedBufferType:
    """The checked buffer type over the numba array type ``array``."""
    return CheckedBufferType(array)


@intrinsic
def checked(typingctx: Any, array: Any) -> Any:
    """``array`` (1-D, contiguous) as a checked buffer: its data pointer and length."""
    if not isinstance(array, types.Array) or array.ndim != 1:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        from numba.core import cgutils

        source = context.make_array(signature.args[0])(context, builder, args[0])
        buffer = cgutils.create_struct_proxy(signature.return_type)(context, builder)
        buffer.data = source.data
        buffer.n = builder.extract_value(source.shape, 0)
        return buffer._getvalue()

    return CheckedBufferType(array)(array), codegen


@intrinsic
def _parts(typingctx: Any, buffer: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        from numba.core import cgutils

        parts = cgutils.create_struct_proxy(signature.args[0])(context, builder, value=args[0])
        return context.make_tuple(builder, signature.return_type, (parts.data, parts.n))

    return types.Tuple((types.CPointer(buffer.dtype), types.intp))(buffer), codegen


@intrinsic
def _outside(typingctx: Any, offset: Any, n: Any) -> Any:
    """Whether ``offset`` is not in ``0 .. n - 1``: one unsigned comparison, where a negative
    offset is a huge one (a pointer does not wrap around as a NumPy index does)."""
    if not isinstance(offset, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        value = context.cast(builder, args[0], signature.args[0], types.intp)
        return builder.icmp_unsigned(">=", value, args[1])

    return types.boolean(offset, types.intp), codegen


@overload(operator.getitem)
def _getitem(buffer, offset):  # noqa: ANN001, ANN202 - numba matches the parameters of read
    if isinstance(buffer, CheckedBufferType) and isinstance(offset, types.Integer):

        def read(buffer, offset):  # noqa: ANN001, ANN202
            data, n = _parts(buffer)
            if _outside(offset, n):
                raise IndexError("a callback offset is outside its buffer")
            return data[offset]

        return read
    return None


@overload(operator.setitem)
def _setitem(buffer, offset, value):  # noqa: ANN001, ANN202 - numba matches the parameters of write
    if isinstance(buffer, CheckedBufferType) and isinstance(offset, types.Integer):

        def write(buffer, offset, value):  # noqa: ANN001, ANN202
            data, n = _parts(buffer)
            if _outside(offset, n):
                raise IndexError("a callback offset is outside its buffer")
            data[offset] = value

        return write
    return None
