"""Callback forms: how a user's Python function receives its element.

cuFFT calls a load callback (prolog) as ``value = f(data_in, offset, user_info, shared)`` and a
store callback (epilog) as ``f(data_out, offset, value, user_info, shared)``. Users may write
that raw *cuFFT form*, or a *value form* that sees only elements:

``f(x) -> y``        the element (prolog: input element, epilog: FFT result element)
``f(x, d) -> y``     the element and the user-data element at the same offset

The form is read off the function's signature; the compiler wraps value forms into the cuFFT
form. New forms (e.g. one that receives the element's logical indices) slot into ``FORMS``.
"""

from __future__ import annotations

import enum
from types import MethodType
from typing import Any, Callable

from .dtypes import check_kind

CO_VARARGS, CO_VARKEYWORDS = 0x04, 0x08
CO_GENERATOR, CO_COROUTINE, CO_ASYNC_GENERATOR = 0x20, 0x80, 0x200


class Form(str, enum.Enum):
    CUFFT = "cufft"
    VALUE = "value"
    VALUE_DATA = "value_data"


def accepted_forms(kind: str) -> str:
    raw = (
        "f(data_in, offset, user_info, unused) -> value"
        if kind == "prolog"
        else "f(data_out, offset, value, user_info, unused)"
    )
    return f"{raw}  |  f(x) -> y  |  f(x, d) -> y (d = user data at the same offset)"


def python_function(fn: Any) -> Callable:
    """The plain Python function behind ``fn`` (numba dispatchers keep it in ``py_func``)."""
    return getattr(fn, "py_func", fn)


def callback_error(fn: Any, kind: str, cause: str) -> TypeError:
    """A TypeError that names the function, the forms accepted and the cause."""
    name = getattr(python_function(fn), "__qualname__", repr(fn))
    return TypeError(
        f"{kind} {name!r} cannot be compiled as an FFT callback: {cause}.\n"
        f"Accepted {kind} forms: {accepted_forms(kind)}"
    )


def infer_form(fn: Any, kind: str) -> Form:
    """Read the callback form off ``fn``'s signature, or raise a TypeError that says why not.

    >>> infer_form(lambda x: 2 * x, "epilog").value
    'value'
    >>> def store(data_out, offset, value, user_info, unused): data_out[offset] = value
    >>> infer_form(store, "epilog").value
    'cufft'
    """
    check_kind(kind)
    py = python_function(fn)
    if isinstance(py, MethodType):
        raise callback_error(fn, kind, "it is a bound method, whose first parameter would be taken for the "
                             "element; pass a plain function (or a staticmethod)")
    code = getattr(py, "__code__", None)
    if code is None or not callable(py):
        raise callback_error(fn, kind, f"expected a Python function, got {type(fn).__name__}")
    if code.co_flags & (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR):
        raise callback_error(fn, kind, "it is a generator or coroutine; a callback must return or store one element")
    # Read the code object rather than inspect.signature: this runs on every FFT call.
    n = code.co_argcount
    extra = code.co_kwonlyargcount + bool(code.co_flags & CO_VARARGS) + bool(code.co_flags & CO_VARKEYWORDS)
    odd = list(code.co_varnames[n : n + extra])
    if odd:
        raise callback_error(fn, kind, f"parameters {odd} are keyword-only or variadic; use plain positional ones")
    defaults = getattr(py, "__defaults__", None) or ()
    if defaults:
        named = list(code.co_varnames[n - len(defaults) : n])
        raise callback_error(fn, kind, f"parameters {named} have default values, so its form is ambiguous; "
                             "every parameter is filled by the FFT: pass constants through a global or a closure")
    raw_arity = 4 if kind == "prolog" else 5
    if n == 1:
        return Form.VALUE
    if n == 2:
        return Form.VALUE_DATA
    if n == raw_arity:
        return Form.CUFFT
    hint = ""
    if n in (4, 5):
        other = "epilog" if kind == "prolog" else "prolog"
        hint = f" (that is the cuFFT {other} form: was it passed as the {kind} by mistake?)"
    raise callback_error(fn, kind, f"it takes {n} parameters{hint}")
