"""Target-neutral pieces of callback compilation, shared by the CUDA and CPU back ends.

* ``jit_tree`` compiles a user function *and every function it calls* afresh with a given
  numba ``jit`` decorator.
* ``make_wrapper`` builds the function cuFFT actually calls, in the raw cuFFT form, around a
  user function written in any ``Form``.

The wrappers are ordinary closures: numba freezes the closed-over jitted callee and element
type as compile-time constants.
"""

from __future__ import annotations

import types as pytypes
from typing import Any, Callable

from .dtypes import single_holds
from .fingerprint import jitted_python_function
from .forms import Form
from .terms import NO_TERMS, Terms


# (python function, options) -> its jitted twin, e.g. ``lambda f, o: numba.njit(**o)(f)``.
Jit = Callable[[pytypes.FunctionType, dict], Any]

# Modules whose functions numba implements itself, by identity: never replaced by twins.
_NUMBA_KNOWN = frozenset({"numpy", "numba", "math", "cmath", "operator", "builtins", "cupy"})


def jit_tree(fn: Any, jit: Jit, narrow: bool = False, _done: dict | None = None) -> Any:
    """Return ``fn`` jitted by ``jit`` where every function ``fn`` reaches through its globals,
    its closure or the attributes it names of the user's modules is itself replaced by its
    jitted twin (recursively, cycles allowed).

    numba-jitted functions (dispatchers, ``@vectorize`` ufuncs) are compiled afresh from their
    Python function, keeping their ``fastmath`` option: their own compiled versions froze the
    globals they read when they were first called, and those may have changed since (numba
    itself rejects an untyped plain-Python callee, so plain helpers need twins anyway).

    With ``narrow``, Python float and complex constants (literals, globals, closure values)
    become float32/complex64, so single-precision callbacks compute in single precision (see
    ``narrow_literals``). The user's functions and modules are untouched.
    """
    done = {} if _done is None else _done
    if id(fn) in done:
        return done[id(fn)]
    options: dict = {}
    py = jitted_python_function(fn)
    if py is not None:
        fastmath = (getattr(fn, "targetoptions", None) or {}).get("fastmath")
        if fastmath:
            options["fastmath"] = fastmath
    else:
        py = fn
    names = _global_names(py.__code__)
    helpers = [name for name in names if _needs_twin(py.__globals__.get(name, _EMPTY), names)]
    cells = py.__closure__ or ()
    kwonly = py.__code__.co_kwonlyargcount
    if not narrow and not kwonly and not helpers and not any(_needs_twin(_cell_value(c), names) for c in cells):
        done[id(fn)] = jitted = jit(py, options)
        return jitted
    # numba resolves globals and closure cells when it compiles, not when it wraps, so the
    # clone can be jitted first (which registers it for recursive helpers) and filled after.
    keep = _narrowed if narrow else (lambda v: v)
    new_globals = dict(py.__globals__)
    if narrow:
        for name in names:
            if name in new_globals:
                new_globals[name] = _narrowed(new_globals[name])
    new_cells = tuple(pytypes.CellType() if _cell_value(c) is _EMPTY else pytypes.CellType(keep(_cell_value(c))) for c in cells)
    code = narrow_literals(py.__code__) if narrow else py.__code__
    defaults, kwdefaults = py.__defaults__, py.__kwdefaults__
    if kwonly:  # numba binds no keyword-only parameter: make them positional, passed by keyword
        code = code.replace(co_argcount=code.co_argcount + kwonly, co_kwonlyargcount=0)
        defaults, kwdefaults = _positional_defaults(py), None
    clone = pytypes.FunctionType(code, new_globals, py.__name__, defaults, new_cells or None)
    clone.__qualname__, clone.__kwdefaults__ = py.__qualname__, kwdefaults
    done[id(fn)] = jitted = jit(clone, options)
    for name in helpers:
        new_globals[name] = _twin(py.__globals__[name], names, jit, narrow, done)
    for cell in new_cells:
        value = _cell_value(cell)
        if _needs_twin(value, names):
            cell.cell_contents = _twin(value, names, jit, narrow, done)
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


def _needs_twin(value: Any, names: set[str], _modules: frozenset = frozenset()) -> bool:
    """Whether ``value`` is a function to jit afresh, a tuple holding one, or a user module (or
    one of its submodules) whose attributes named in ``names`` include one."""
    if isinstance(value, pytypes.FunctionType) or jitted_python_function(value) is not None:
        return True
    if isinstance(value, tuple):
        return any(_needs_twin(item, names, _modules) for item in value)
    if (
        isinstance(value, pytypes.ModuleType)
        and value.__name__.partition(".")[0] not in _NUMBA_KNOWN
        and id(value) not in _modules
    ):
        inside = _modules | {id(value)}
        return any(_needs_twin(value.__dict__.get(n), names, inside) for n in names)
    return False


def _twin(value: Any, names: set[str], jit: Jit, narrow: bool, done: dict) -> Any:
    if isinstance(value, tuple):  # (f, g): numba calls its items as first-class functions
        items = [_twin(item, names, jit, narrow, done) if _needs_twin(item, names) else item for item in value]
        return type(value)(*items) if hasattr(type(value), "_fields") else type(value)(items)
    if not isinstance(value, pytypes.ModuleType):
        return jit_tree(value, jit, narrow, done)
    if id(value) in done:
        return done[id(value)]
    # A copy of the module whose named functions are twins (numba reads attributes off it).
    copy = pytypes.ModuleType(value.__name__, value.__doc__)
    copy.__dict__.update(value.__dict__)
    done[id(value)] = copy
    for name in names:
        attr = value.__dict__.get(name, _EMPTY)
        if attr is not _EMPTY and _needs_twin(attr, names):
            copy.__dict__[name] = _twin(attr, names, jit, narrow, done)
    return copy


def narrow_literals(code: pytypes.CodeType) -> pytypes.CodeType:
    """``code`` with its float and complex constants made float32/complex64 (nested code too).

    A Python float is a double: ``x * 0.5`` on a complex64 ``x`` computes in complex128, which
    is slow on GPUs with weak FP64 and changes nothing once the result is rounded to the
    complex64 element. Integers are left alone (they index arrays), and so is a constant that
    float32 cannot hold to its own precision (beyond its range, or subnormal: ``1e60``,
    ``1e-40``): rounding it would change it by more than float32 rounds any number.
    """
    consts = tuple(
        narrow_literals(c) if isinstance(c, pytypes.CodeType) else _narrowed(c) for c in code.co_consts
    )
    return code.replace(co_consts=consts)


def _narrowed(value: Any) -> Any:
    if type(value) is float and single_holds(value):
        import numpy as np

        return np.float32(value)
    if type(value) is complex and single_holds(value.real) and single_holds(value.imag):
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
                 terms: Terms | None = None, target: str = "numba", checked: Callable | None = None) -> Callable:
    """The raw cuFFT-form callback around ``user``.

    ``element_type`` is called on the user's result to convert it to the element type (a numba
    type on the GPU and CPU alike). With ``indirect`` the fourth argument cuFFT passes is not the
    user data itself but a pointer to a slot that holds it (then the runtime parameters), so the
    data and parameters can change between executions without a new plan. ``terms`` says how
    indices, broadcast data and parameters are found (``terms.Terms``). ``target``: "cuda"
    (parameters read from the slot), "numba" (CPU: ``user_info`` is the tuple ``(data, *params)``
    when there are parameters) or "python" (the same, without numba, for the debug mode).
    ``checked`` (CPU): what a cuFFT-form ``user`` receives its buffers through, e.g. the
    bounds-checked buffers of ``cpu_errors`` (None: the buffers themselves).

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
        from .terms import slot_data_reader

        namespace["_DATA"] = slot_data_reader()
        data = "_DATA(info)" if indirect else "info"
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
        buffer = "data_in" if kind == "prolog" else "data_out"
        if checked is not None:
            namespace["_B"] = checked
            buffer, data = f"_B({buffer})", f"_B({data})"
        pointer = [buffer, "offset"] if kind == "prolog" else [buffer, "offset", "value"]
        call = f"user({', '.join(pointer + [data, 'shared'] + keywords)})"
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
