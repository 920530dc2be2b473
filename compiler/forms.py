"""Callback forms: how a user's Python function receives its element.

cuFFT calls a load callback (prolog) as ``value = f(data_in, offset, user_info, shared)`` and a
store callback (epilog) as ``f(data_out, offset, value, user_info, shared)``. Users may write
that raw *cuFFT form*, or a *value form* that sees only elements:

``f(x) -> y``              the element (prolog: input element, epilog: FFT result element)
``f(x, d) -> y``           the element and the user-data element of the same position
``f(x, i, j) -> y``        the element and its index in the array the user sees (one per axis)
``f(x, d, i, j) -> y``     both

Keyword-only parameters (``f(x, *, s)``) of any form are *runtime parameters*: scalars whose
values are given with each call (see ``terms.Terms``). The form is read off the function's
signature; the index forms need the array's number of dimensions, known when the FFT is planned.
The compiler wraps value forms into the cuFFT form (``wrappers.make_wrapper``).
"""

from __future__ import annotations

import enum
import functools
from types import MethodType
from typing import Any, Callable

from .dtypes import check_kind

CO_VARARGS, CO_VARKEYWORDS = 0x04, 0x08
CO_GENERATOR, CO_COROUTINE, CO_ASYNC_GENERATOR = 0x20, 0x80, 0x200


class Form(str, enum.Enum):
    CUFFT = "cufft"
    VALUE = "value"
    VALUE_DATA = "value_data"
    VALUE_INDEX = "value_index"
    VALUE_DATA_INDEX = "value_data_index"

    @property
    def takes_data_element(self) -> bool:
        """Whether the function receives a user-data element ``d`` (the value forms with data)."""
        return self in (Form.VALUE_DATA, Form.VALUE_DATA_INDEX)

    @property
    def takes_index(self) -> bool:
        return self in (Form.VALUE_INDEX, Form.VALUE_DATA_INDEX)


def accepted_forms(kind: str) -> str:
    raw = (
        "f(data_in, offset, user_info, unused) -> value"
        if kind == "prolog"
        else "f(data_out, offset, value, user_info, unused)"
    )
    return (f"{raw}  |  f(x) -> y  |  f(x, d) -> y (d = user data at the same position)  |  f(x, i, j) -> y and "
            "f(x, d, i, j) -> y (i, j = the element's index, one per array axis); keyword-only parameters "
            "are runtime parameters")


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


def infer_form(fn: Any, kind: str, *, ndim: int | None = None, data: bool | None = None) -> Form:
    """Read the callback form off ``fn``'s signature, or raise a TypeError that says why not.

    ``ndim`` (the array's dimensions) and ``data`` (whether user data is given) are known when an
    FFT is planned; without them the index forms cannot be told apart and are not inferred.
    Where an index form and cuFFT's form have the same arity, cuFFT's form is the one whose second
    parameter is named ``offset``.

    >>> infer_form(lambda x: 2 * x, "epilog").value
    'value'
    >>> def store(data_out, offset, value, user_info, unused): data_out[offset] = value
    >>> infer_form(store, "epilog").value
    'cufft'
    >>> infer_form(lambda x, i, j: x * (-1) ** (i + j), "epilog", ndim=2, data=False).value
    'value_index'
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
    if code.co_flags & (CO_VARARGS | CO_VARKEYWORDS):
        odd = list(code.co_varnames[n + code.co_kwonlyargcount:][:2])
        raise callback_error(fn, kind, f"parameters {odd} are variadic; use plain positional ones "
                             "(or keyword-only ones for runtime parameters)")
    defaults = getattr(py, "__defaults__", None) or ()
    if defaults:
        named = list(code.co_varnames[n - len(defaults) : n])
        raise callback_error(fn, kind, f"parameters {named} have default values, so its form is ambiguous; "
                             "every parameter is filled by the FFT: pass constants through a global or a closure "
                             "(or make them keyword-only: runtime parameters)")
    raw_arity = 4 if kind == "prolog" else 5
    with_d = 1 + (data is not False)
    index_arity = None if ndim is None else 1 + bool(data) + ndim
    if n == raw_arity and not (n == index_arity and code.co_varnames[1] != "offset"):
        return Form.CUFFT
    if n == 1:
        if data:
            raise callback_error(fn, kind, "it takes only the element (form f(x)), but data= was given too, which "
                                 "it would never read; take the data element as f(x, d), or drop data=")
        return Form.VALUE
    if n == index_arity and ndim:
        return Form.VALUE_DATA_INDEX if data else Form.VALUE_INDEX
    if n == 2 and with_d == 2:
        return Form.VALUE_DATA
    hint = ""
    if n in (4, 5) and n != raw_arity:
        other = "epilog" if kind == "prolog" else "prolog"
        hint = f" (that is the cuFFT {other} form: was it passed as the {kind} by mistake?)"
    elif ndim is not None:
        axes = ", ".join("ijklmn"[:ndim]) if ndim <= 6 else "..."
        d = "d, " if data else ""
        hint = (f"; for this {ndim}-D array {'with' if data else 'without'} user data the value forms are "
                f"f(x{', d' if data else ''}) and f(x, {d}{axes})")
        if not data and n == 2:
            hint += "; f(x, d) needs data= as well"
    raise callback_error(fn, kind, f"it takes {n} parameters{hint}")


def runtime_parameters(fn: Any) -> tuple[str, ...]:
    """Names of ``fn``'s keyword-only parameters: the runtime parameters, given with each call.

    >>> def ramp(x, k, *, shift): return x * shift
    >>> runtime_parameters(ramp)
    ('shift',)
    """
    code = python_function(fn).__code__
    return tuple(code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount])


def reads_parameter(fn: Any, position: int) -> bool:
    """Whether ``fn``'s code ever reads its ``position``-th parameter (unused indices cost nothing).

    >>> reads_parameter(lambda x, i, j: x * j, 1), reads_parameter(lambda x, i, j: x * j, 2)
    (False, True)
    """
    import dis

    code = python_function(fn).__code__
    name = code.co_varnames[position]
    if name in code.co_cellvars:  # read by a nested function
        return True
    for ins in dis.get_instructions(code):
        if ins.opname.startswith("LOAD") or ins.opname.startswith("DELETE") or ins.opname.startswith("STORE"):
            value = ins.argval
            if value == name or (isinstance(value, tuple) and name in value):
                return True
    return False


def raise_statements(fn: Any) -> tuple[tuple[str, ...], bool]:
    """The raise statements of ``fn``'s own code, as source text where it is readable (else their
    line), and whether every path ends in one of them (its code has no return at all).

    >>> def check(x):
    ...     raise ValueError("no")
    >>> raise_statements(check)
    (('line 2: raise ValueError("no")',), True)
    """
    return _raise_statements(python_function(fn).__code__)


@functools.lru_cache(maxsize=256)
def _raise_statements(code: Any) -> tuple[tuple[str, ...], bool]:
    import dis

    found, returns = [], False
    for ins in dis.get_instructions(code):
        if ins.opname in ("RETURN_VALUE", "RETURN_CONST"):
            returns = True
        elif ins.opname == "RAISE_VARARGS":
            import linecache  # only where there is a raise: it loads tokenize (a fresh process's cache hit)

            where = ins.positions
            line = linecache.getline(code.co_filename, where.lineno or 0)
            text = line[where.col_offset : where.end_col_offset] if line and where.lineno == where.end_lineno else ""
            found.append(f"line {where.lineno}: {text.strip()}" if text.strip() else f"line {where.lineno}")
    return tuple(found), bool(found) and not returns


def no_result_cause(fn: Any, kind: str) -> str:
    """Why a value-form ``fn`` gives no element (numba typed its result as None), in the words of
    ``callback_error``: it raises on every path, or some path returns nothing."""
    raises, always = raise_statements(fn)
    listed = "; ".join(raises[:3])
    if always:
        return (f"it raises on every path ({listed}), so it never returns the element "
                f"{'to store' if kind == 'epilog' else 'the FFT reads'}; return it on the inputs that are fine")
    what = "returns nothing" + (f" on the paths that do not raise ({listed})" if raises else "")
    return what + ("; an epilog in value form returns the element to store" if kind == "epilog" else "")
