"""numba typing of a callback that no target owns: the numba types of dtypes, the argument types a
user's function is called with, and the checks of its result. The CUDA and the CPU backends
both type callbacks through it (``terms`` too), so none of them imports another backend.
"""

from __future__ import annotations

from typing import Any

from .forms import Form, callback_error, no_result_cause


def numba_type(dtype: Any) -> Any:
    """numba scalar type for a dtype name; numba types pass through (e.g. a Record)."""
    from numba.core import types

    if isinstance(dtype, types.Type):
        return dtype
    import numpy as np
    from numba.np.numpy_support import from_dtype

    return from_dtype(np.dtype(dtype))


def user_argument_types(kind: str, form: Form, element: Any, user: Any, terms: Any = None) -> tuple:
    """The numba argument types the user's function is called with (runtime parameters last)."""
    from numba.core import types

    params = tuple(numba_type(t) for _, t in terms.params) if terms is not None else ()
    if form is Form.CUFFT:
        if kind == "prolog":
            return (types.CPointer(element), types.uint64, types.CPointer(user), types.voidptr) + params
        return (types.CPointer(element), types.uint64, element, types.CPointer(user), types.voidptr) + params
    args = (element, user) if form.takes_data_element else (element,)
    if form.takes_index:
        args += (types.int64,) * len(terms.shape)
    return args + params


def check_result_type(fn: Any, kind: str, form: Form, element: Any, result: Any) -> None:
    """Refuse a result that cannot become the element (or a raw epilog that returns nothing)."""
    from numba.core import types

    if kind == "epilog" and form is Form.CUFFT:
        return  # stores through data_out; a returned value is ignored
    if result in (types.none, types.void):
        raise callback_error(fn, kind, no_result_cause(fn, kind))
    if not isinstance(result, (types.Integer, types.Float, types.Complex, types.Boolean)):
        raise callback_error(fn, kind, f"returns {result}, expected a scalar convertible to {element}")
    if isinstance(result, types.Complex) and not isinstance(element, types.Complex):
        raise callback_error(
            fn, kind, f"returns complex ({result}) where the element type is real ({element}); "
            "return .real or abs(...) explicitly"
        )


def compile_error(fn: Any, kind: str, exc: Exception) -> TypeError:
    """The TypeError for a function numba could not compile, with numba's first lines."""
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    summary = "\n".join(lines[:12])
    return callback_error(fn, kind, f"numba could not compile it:\n{summary}")
