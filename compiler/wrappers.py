"""Target-neutral pieces of callback compilation, shared by the CUDA and CPU back ends.

* ``jit_tree`` compiles a user function *and the plain Python helpers it calls* with a given
  numba ``jit`` decorator (numba itself rejects an untyped plain-Python callee).
* ``make_wrapper`` builds the function cuFFT actually calls, in the raw cuFFT form, around a
  user function written in any ``Form``.

The wrappers are ordinary closures: numba freezes the closed-over jitted callee and element
type as compile-time constants.
"""

from __future__ import annotations

import types as pytypes
from typing import Any, Callable

from .forms import Form


def jit_tree(fn: Any, jit: Callable[[Callable], Any], narrow: bool = False, _done: dict | None = None) -> Any:
    """Return ``jit(fn)`` where every plain Python function ``fn`` reaches through its globals
    or closure is itself replaced by its jitted twin (recursively, cycles allowed).

    With ``narrow``, Python float and complex constants (literals, globals, closure values)
    become float32/complex64, so single-precision callbacks compute in single precision (see
    ``narrow_literals``). Jitted functions (numba dispatchers) are left as they are; the user's
    module is untouched.
    """
    if hasattr(fn, "py_func"):
        return fn
    done = {} if _done is None else _done
    if id(fn) in done:
        return done[id(fn)]
    helpers = [
        name for name in _global_names(fn.__code__) if isinstance(fn.__globals__.get(name), pytypes.FunctionType)
    ]
    cells = fn.__closure__ or ()
    if not narrow and not helpers and not any(isinstance(_cell_value(c), pytypes.FunctionType) for c in cells):
        done[id(fn)] = jitted = jit(fn)
        return jitted
    # numba resolves globals and closure cells when it compiles, not when it wraps, so the
    # clone can be jitted first (which registers it for recursive helpers) and filled after.
    keep = _narrowed if narrow else (lambda v: v)
    new_globals = dict(fn.__globals__)
    if narrow:
        for name in _global_names(fn.__code__):
            if name in new_globals:
                new_globals[name] = _narrowed(new_globals[name])
    new_cells = tuple(pytypes.CellType() if _cell_value(c) is _EMPTY else pytypes.CellType(keep(_cell_value(c))) for c in cells)
    code = narrow_literals(fn.__code__) if narrow else fn.__code__
    clone = pytypes.FunctionType(code, new_globals, fn.__name__, fn.__defaults__, new_cells or None)
    clone.__qualname__, clone.__kwdefaults__ = fn.__qualname__, fn.__kwdefaults__
    done[id(fn)] = jitted = jit(clone)
    for name in helpers:
        new_globals[name] = jit_tree(fn.__globals__[name], jit, narrow, done)
    for cell in new_cells:
        value = _cell_value(cell)
        if isinstance(value, pytypes.FunctionType):
            cell.cell_contents = jit_tree(value, jit, narrow, done)
    return jitted


def narrow_literals(code: pytypes.CodeType) -> pytypes.CodeType:
    """``code`` with its float and complex constants made float32/complex64 (nested code too).

    A Python float is a double: ``x * 0.5`` on a complex64 ``x`` computes in complex128, which
    is slow on GPUs with weak FP64 and changes nothing once the result is rounded to the
    complex64 element. Integers are left alone (they index arrays).
    """
    consts = tuple(
        narrow_literals(c) if isinstance(c, pytypes.CodeType) else _narrowed(c) for c in code.co_consts
    )
    return code.replace(co_consts=consts)


def _narrowed(value: Any) -> Any:
    if type(value) is float:
        import numpy as np

        return np.float32(value)
    if type(value) is complex:
        import numpy as np

        return np.complex64(value)
    return value


_EMPTY = object()


def _cell_value(cell: pytypes.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a closure variable not yet assigned
        return _EMPTY


def _global_names(code: pytypes.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, pytypes.CodeType):
            names |= _global_names(const)
    return names


def make_wrapper(kind: str, form: Form, user: Any, element_type: Any, *, indirect: bool) -> Callable:
    """The raw cuFFT-form callback around ``user``.

    ``element_type`` is called on the user's result to convert it to the element type (a numba
    type on the GPU and CPU alike). With ``indirect`` the fourth argument cuFFT passes is not the
    user data itself but a pointer to a slot that holds it, so the data can change between
    executions without a new plan.
    """
    E = element_type
    if kind == "prolog":
        if form is Form.CUFFT:
            if indirect:
                def prolog(data_in, offset, info, shared):
                    return E(user(data_in, offset, info[0], shared))
            else:
                def prolog(data_in, offset, info, shared):
                    return E(user(data_in, offset, info, shared))
        elif form is Form.VALUE:
            def prolog(data_in, offset, info, shared):
                return E(user(data_in[offset]))
        elif indirect:
            def prolog(data_in, offset, info, shared):
                return E(user(data_in[offset], info[0][offset]))
        else:
            def prolog(data_in, offset, info, shared):
                return E(user(data_in[offset], info[offset]))
        return prolog

    if form is Form.CUFFT:
        if indirect:
            def epilog(data_out, offset, value, info, shared):
                user(data_out, offset, value, info[0], shared)
        else:
            def epilog(data_out, offset, value, info, shared):
                user(data_out, offset, value, info, shared)
    elif form is Form.VALUE:
        def epilog(data_out, offset, value, info, shared):
            data_out[offset] = E(user(value))
    elif indirect:
        def epilog(data_out, offset, value, info, shared):
            data_out[offset] = E(user(value, info[0][offset]))
    else:
        def epilog(data_out, offset, value, info, shared):
            data_out[offset] = E(user(value, info[offset]))
    return epilog
