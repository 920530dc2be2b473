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
from .terms import NO_TERMS, Terms


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
    kwonly = fn.__code__.co_kwonlyargcount
    if not narrow and not kwonly and not helpers and not any(
        isinstance(_cell_value(c), pytypes.FunctionType) for c in cells
    ):
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
    defaults = fn.__defaults__
    if kwonly:  # numba binds no keyword-only parameter: make them positional, passed by keyword
        code = code.replace(co_argcount=code.co_argcount + kwonly, co_kwonlyargcount=0)
        defaults = _positional_defaults(fn)
    clone = pytypes.FunctionType(code, new_globals, fn.__name__, defaults, new_cells or None)
    clone.__qualname__ = fn.__qualname__
    if not kwonly:
        clone.__kwdefaults__ = fn.__kwdefaults__
    done[id(fn)] = jitted = jit(clone)
    for name in helpers:
        new_globals[name] = jit_tree(fn.__globals__[name], jit, narrow, done)
    for cell in new_cells:
        value = _cell_value(cell)
        if isinstance(value, pytypes.FunctionType):
            cell.cell_contents = jit_tree(value, jit, narrow, done)
    return jitted


def _positional_defaults(fn: pytypes.FunctionType) -> tuple | None:
    """Defaults of ``fn`` once its keyword-only parameters follow its positional ones."""
    code = fn.__code__
    names = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    given = fn.__kwdefaults__ or {}
    tail: list = []
    for name in reversed(names):
        if name not in given:
            return tuple(reversed(tail)) or None
        tail.append(given[name])
    return (fn.__defaults__ or ()) + tuple(reversed(tail))


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


def make_wrapper(kind: str, form: Form, user: Any, element_type: Any, *, indirect: bool,
                 terms: Terms | None = None, target: str = "numba") -> Callable:
    """The raw cuFFT-form callback around ``user``.

    ``element_type`` is called on the user's result to convert it to the element type (a numba
    type on the GPU and CPU alike). With ``indirect`` the fourth argument cuFFT passes is not the
    user data itself but a pointer to a slot that holds it (then the runtime parameters), so the
    data and parameters can change between executions without a new plan. ``terms`` says how
    indices, broadcast data and parameters are found (``terms.Terms``). ``target``: "cuda"
    (parameters read from the slot), "numba" (CPU: ``user_info`` is the tuple ``(data, *params)``
    when there are parameters) or "python" (the same, without numba, for the debug mode).

    The wrapper's source is generated, so that it holds only the arithmetic its terms need.

    >>> import numpy as np
    >>> t = Terms((2, 4), (4, 1), index=(True, True), data=(0, 1), params=(("s", "float64"),))
    >>> w = make_wrapper("epilog", Form.VALUE_DATA_INDEX, lambda x, d, i, j, *, s: x * d + 10 * i + j + s,
    ...                  float, indirect=False, terms=t, target="python")
    >>> out = np.zeros(8)
    >>> w(out, 6, 1.0, (np.array([1.0, 2.0, 3.0, 4.0]), 0.5), None)
    >>> float(out[6])  # x * d[2] + 10 * 1 + 2 + 0.5
    15.5
    """
    terms = terms or NO_TERMS
    python = target == "python"
    namespace: dict[str, Any] = {"user": user, "E": element_type}
    if python:
        namespace.update(_U=int, _I=int, _ZERO=0)
    else:
        import numpy as np

        namespace.update(_U=np.uint32 if terms.width == 32 else np.uint64, _I=np.int64, _ZERO=np.int64(0))
    lines = terms.decode() if form is not Form.CUFFT else []
    if target == "cuda":
        data = "info[0]" if indirect else "info"
        params = []
        for k, reader in enumerate(terms.slot_readers()):
            namespace[f"_P{k}"] = reader
            params.append(f"_P{k}(info)")
    else:
        data = "info[0]" if indirect or terms.params else "info"
        params = [f"info[{k + 1}]" for k in range(len(terms.params))]
    keywords = [f"{name}={expr}" for (name, _), expr in zip(terms.params, params)]

    if kind == "prolog":
        head, element = "def prolog(data_in, offset, info, shared):", "data_in[offset]"
    else:
        head, element = "def epilog(data_out, offset, value, info, shared):", "value"
    if form is Form.CUFFT:
        pointer = "data_in" if kind == "prolog" else "data_out, offset, value"
        call = f"user({', '.join(([pointer, 'offset'] if kind == 'prolog' else [pointer]) + [data, 'shared'] + keywords)})"
        body = f"return E({call})" if kind == "prolog" else call
    else:
        args = [element]
        if form.takes_data_element:
            args.append(f"{data}[{terms.data_position()}]")
        if form.takes_index:
            args += terms.index_args()
        call = f"E(user({', '.join(args + keywords)}))"
        body = f"return {call}" if kind == "prolog" else f"data_out[offset] = {call}"
    source = "\n    ".join([head, *lines, body])
    exec(compile(source, f"<fftfuse {kind} wrapper>", "exec"), namespace)
    return namespace[kind]
