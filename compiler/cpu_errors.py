"""How compiled CPU callbacks fail: bounds-checked buffers and the arithmetic error model.

Buffers. 
On the GPU ``data_in``, ``data_out`` and ``user_info`` are raw pointers: an offset outside the
buffer reads or writes someone else's memory. The CPU loops hand the callback a
:class:`CheckedBufferType` instead of the 1-D array itself: integer indexing only (all that a
pointer offers, so a callback that types here types on the GPU), and any offset outside
``0 .. len - 1`` raises IndexError (negative offsets too: a pointer does not wrap around the
way a NumPy index does). The raise never reaches numba's runtime: the loops catch it and
return the failing element's position (``cpu_loops``), and the executor reports it.

The buffer has the array's own data model, so wrapping and unwrapping cost nothing.

Arithmetic. :data:`ERROR_MODEL` is NumPy's error model (a float division by zero gives inf or
nan, as on the GPU) except for integers: an integer division or modulo by zero raises
ZeroDivisionError, as in Python, where NumPy's model would silently give 0.

Importing this module imports numba (compile time only).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
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
    """A 1-D array seen as a pointer whose every offset is checked."""

    def __init__(self, array: types.Array) -> None:
        self.array = array
        self.dtype = array.dtype
        super().__init__(name=f"CheckedBuffer({array})")


@register_model(CheckedBufferType)
class _CheckedModel(models.ProxyModel):
    def __init__(self, dmm: Any, fe_type: CheckedBufferType) -> None:
        self._proxied_model = dmm.lookup(fe_type.array)
        super().__init__(dmm, fe_type)


def checked_type(array: types.Array) -> CheckedBufferType:
    """The checked buffer type over the numba array type ``array``."""
    return CheckedBufferType(array)


@intrinsic
def checked(typingctx: Any, array: Any) -> Any:
    """``array`` as a checked buffer (the same value, another type)."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return args[0]

    return CheckedBufferType(array)(array), codegen


@intrinsic
def _array(typingctx: Any, buffer: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return args[0]

    return buffer.array(buffer), codegen


@overload(operator.getitem)
def _getitem(buffer, offset):  # noqa: ANN001, ANN202 - numba matches the parameters of read
    if isinstance(buffer, CheckedBufferType) and isinstance(offset, types.Integer):

        def read(buffer, offset):  # noqa: ANN001, ANN202
            a = _array(buffer)
            # Compared as unsigned: a negative offset is a huge one, outside like any other.
            if np.uint64(offset) >= np.uint64(a.shape[0]):
                raise IndexError("a callback offset is outside its buffer")
            return a[np.uint64(offset)]

        return read
    return None


@overload(operator.setitem)
def _setitem(buffer, offset, value):  # noqa: ANN001, ANN202 - numba matches the parameters of write
    if isinstance(buffer, CheckedBufferType) and isinstance(offset, types.Integer):

        def write(buffer, offset, value):  # noqa: ANN001, ANN202
            a = _array(buffer)
            if np.uint64(offset) >= np.uint64(a.shape[0]):
                raise IndexError("a callback offset is outside its buffer")
            a[np.uint64(offset)] = value

        return write
    return None
