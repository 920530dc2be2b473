"""``nvmath.fft.fuse``: plain array code around FFTs, with its elementwise steps fused into the
FFTs as prologs and epilogs (traced once per signature by ``_trace``, planned by ``_lower``)."""

from __future__ import annotations

import cmath
import functools
import math
import operator
import threading
import types
from typing import Any, Callable

from numpy import ndarray

from fftfuse_compiler.fingerprint import UncacheableError, function_fingerprint

from . import _lower, _trace


# Library code is identified by name: its modules and functions do not change while a process runs.
_LIBRARIES = {"numpy", "scipy", "nvmath", "cupy", "cupyx", "dask", "math", "cmath"}


_NAMES: dict[types.CodeType, tuple[str, ...]] = {}


def _names(code: types.CodeType) -> tuple[str, ...]:
    """Global names the code (nested code included) may read; memoized per code object."""
    out = _NAMES.get(code)
    if out is None:
        found = set(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                found.update(_names(const))
        out = _NAMES[code] = tuple(sorted(found))
    return out


def _library_marker(value: Any) -> str | None:
    if isinstance(value, types.ModuleType):
        name = value.__name__
    elif callable(value) or isinstance(value, type):
        name = f"{getattr(value, '__module__', None) or ''}.{getattr(value, '__qualname__', '')}"
    else:
        return None
    return f"<library {name}>" if name.split(".")[0] in _LIBRARIES else None


def trace_fingerprint(fn: Callable) -> str:
    """``function_fingerprint`` of ``fn`` with its library globals (NumPy, SciPy, nvmath, CuPy,
    Dask modules and functions) taken by name: a changed global or closure value of the user's
    own changes it, while ``scipy.fft`` or ``nvmath.fft`` need not be fingerprintable."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return function_fingerprint(fn)
    source = fn.__globals__
    names = {"__builtins__": source.get("__builtins__")} if "__builtins__" in source else {}
    for name in _names(code):
        if name in source:
            value = source[name]
            marker = _library_marker(value)
            names[name] = value if marker is None else marker
    stand_in = types.FunctionType(code, names, fn.__name__, fn.__defaults__, fn.__closure__)
    stand_in.__kwdefaults__ = fn.__kwdefaults__
    return function_fingerprint(stand_in)


_IMMUTABLE = frozenset({int, float, complex, str, bytes, bool, type(None)})
_ABSENT = object()


def _read_values(fn: Callable) -> tuple | None:
    """The objects ``fn``'s trace fingerprint reads: the globals it names, its closure values and
    defaults (None where it has keyword-only defaults or an empty cell)."""
    code = getattr(fn, "__code__", None)
    if code is None or fn.__kwdefaults__:
        return None
    get = fn.__globals__.get
    values = [get(name, _ABSENT) for name in _names(code)]
    closure = fn.__closure__
    if closure:
        try:
            values += [cell.cell_contents for cell in closure]
        except ValueError:
            return None
    if fn.__defaults__:
        values += fn.__defaults__
    return tuple(values)


def _unchanging(values: tuple) -> bool:
    """Whether each object stays what it is: immutable plain values, and library modules and
    functions (taken by name). An array, a list or a function of the user's may change in place."""
    return all(type(v) in _IMMUTABLE or v is _ABSENT or _library_marker(v) is not None for v in values)


def _same(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(map(operator.is_, a, b))


class _Eager:
    """A signature that runs as written, and why."""

    def __init__(self, why: str) -> None:
        self.why = why
        self.text = f"runs as written (the undecorated function): {why}"


class _Compiled:
    """A signature's plan: the runner and its description."""

    def __init__(self, plan: _lower.Plan, run: Callable, source: str, lines: list[str]) -> None:
        self.plan = plan
        self.run = run
        self.source = source
        self.text = "\n".join(lines)
        self.proven = False       # set after the first call returned


# Types whose every value is an array (NumPy's, CuPy's) or a scalar (NumPy's), found by
# ``argument_kind`` once per type: the signature is taken on every call.
_ARRAY_TYPES: set[type] = {ndarray}
_SCALAR_TYPES: set[type] = {float, complex}


def _signature(args: tuple, kwargs: dict) -> tuple:
    """What a trace depends on: array types, shapes and dtypes, scalar types, other values."""
    out = [_signature_of(a) for a in args]
    if kwargs:
        out += [(k, _signature_of(v)) for k, v in sorted(kwargs.items())]
    return tuple(out)


def _signature_of(value: Any) -> Any:
    t = type(value)
    if t in _ARRAY_TYPES:
        return (t, value.shape, value.dtype)
    if t in _SCALAR_TYPES:
        return t
    kind = _trace.argument_kind(value)
    if kind == "array":
        # A CuPy array's kind is its type's (never a Dask array's unknown sizes): known from now on.
        if t.__module__.partition(".")[0] == "cupy":
            _ARRAY_TYPES.add(t)
            return (t, value.shape, value.dtype)
        return (t, tuple(value.shape), str(value.dtype))
    if kind == "scalar":
        if t.__module__.partition(".")[0] == "numpy":
            _SCALAR_TYPES.add(t)
        return t
    return ("static", t, value)


def _cupy_standins(fn: Callable) -> dict[str, Any]:
    """Globals and closure variables of ``fn`` naming CuPy's modules or FFT functions, replaced by
    stand-ins while tracing (CuPy's functions do not dispatch to other array types as NumPy's do)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return {}
    values = {name: fn.__globals__[name] for name in code.co_names if name in fn.__globals__}
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            values[name] = cell.cell_contents
        except ValueError:  # a cell not filled yet
            pass
    out: dict[str, Any] = {}
    for name, value in values.items():
        module = getattr(value, "__name__", "") if isinstance(value, types.ModuleType) else ""
        if module == "cupy":
            out[name] = _trace.CupyNamespace
        elif module in ("cupy.fft", "cupyx.scipy.fft"):
            out[name] = _trace.CupyNamespace.fft
        elif callable(value) and (getattr(value, "__module__", "") or "").startswith(("cupy.fft", "cupyx.scipy.fft")) \
                and getattr(value, "__name__", "") in _trace.FFT_NAMES:
            out[name] = getattr(_trace.CupyNamespace.fft, value.__name__)
    return out


class FusedFunction:
    """A function whose elementwise steps around FFTs run fused into them: see :func:`fuse`."""

    def __init__(self, fn: Callable, execution: Any = None, strict: bool = False) -> None:
        if not callable(fn):
            raise TypeError(f"fuse expects a function, got {type(fn).__name__}")
        self.__wrapped__ = fn
        self.execution = execution
        self.strict = strict
        self._plans: dict[tuple, Any] = {}
        self._lock = threading.Lock()
        # The last fingerprint, with the very (immutable) objects it was taken from: while the
        # function reads the same objects it cannot have changed, and a call skips the walk.
        self._fingerprint_memo: tuple[tuple, str, Any] | None = None
        self.trace_count = 0
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        entry = self._entry(args, kwargs)
        if type(entry) is _Compiled:
            if entry.proven:
                return entry.run(args, kwargs)
            return self._first_run(entry, args, kwargs)
        return self.__wrapped__(*args, **kwargs)

    def explain(self, *args: Any, **kwargs: Any) -> str:
        """The plan for these arguments (traced now if not yet), printed and returned: the FFTs,
        what is fused into each as prolog or epilog, what runs as written and why, the route."""
        entry = self._entry(args, kwargs)
        print(entry.text)
        return entry.text

    def cache_info(self) -> dict[str, int]:
        """Signatures planned, and traces taken so far (a new scalar value takes none)."""
        return {"plans": len(self._plans), "traces": self.trace_count}

    # -- internals ---------------------------------------------------------------------------

    def _entry(self, args: tuple, kwargs: dict) -> Any:
        try:
            key = (_signature(args, kwargs), self._fingerprint())
        except UncacheableError as exc:
            return _Eager(f"the function cannot be fingerprinted ({exc}), so a changed value would go unseen")
        try:
            entry = self._plans.get(key)
        except TypeError:
            return _Eager("an argument that is neither an array nor a scalar is not hashable, so no plan "
                          "can be kept for it")
        if entry is None:
            with self._lock:
                entry = self._plans.get(key)
                if entry is None:
                    entry = self._plans[key] = self._build(args, kwargs)
        return entry

    def _fingerprint(self) -> str:
        fn = self.__wrapped__
        read = _read_values(fn)
        memo = self._fingerprint_memo
        if read is not None and memo is not None and fn.__code__ is memo[2] and _same(read, memo[0]):
            return memo[1]  # the same unchanging objects as when it was taken
        digest = trace_fingerprint(fn)
        if read is not None and _unchanging(read):
            self._fingerprint_memo = (read, digest, fn.__code__)
        return digest

    def _build(self, args: tuple, kwargs: dict) -> Any:
        self.trace_count += 1
        fn = self.__wrapped__
        try:
            traced = _trace.trace(fn, args, kwargs, _cupy_standins(fn))
        except _trace.TraceError as exc:
            if self.strict:
                raise _trace.TraceError(f"{fn.__name__} cannot be traced: {exc.what}", exc.line) from None
            return _Eager(f"{exc.what} (line {exc.line})")
        plan = _lower.lower(traced)
        if not plan.fused:
            return _Eager("no FFT the plan can run through nvmath.fft (nothing to fuse)")
        import nvmath.fft as nvfft

        namespace: dict[str, Any] = {"_nvfft": nvfft, "cmath": cmath, "math": math}
        callbacks = "".join(cb.source for f in plan.fused for cb in (f.prolog, f.epilog) if cb)
        exec(compile(callbacks, f"<fused {fn.__qualname__}>", "exec"), namespace)
        chains = _lower.plan_chains(plan, namespace, args, kwargs, self.execution)  # may split a pair
        source, names = _lower.runner_source(plan, self.execution)
        namespace.update(names)
        exec(compile(source, f"<fused {fn.__qualname__}>", "exec"), namespace)
        lines = [f"plan of {fn.__qualname__}:"] + _lower.describe(plan, _route(args, kwargs, self.execution), chains)
        return _Compiled(plan, namespace["_run"], callbacks + source, lines)

    def _first_run(self, entry: _Compiled, args: tuple, kwargs: dict) -> Any:
        """The first call of a plan: where the fused FFT refuses something the trace could not
        see, this signature runs as written from now on (never a wrong or failed answer)."""
        try:
            out = entry.run(args, kwargs)
        except (TypeError, ValueError, NotImplementedError, RuntimeError) as exc:
            if self.strict:
                raise
            for key, value in list(self._plans.items()):
                if value is entry:
                    self._plans[key] = _Eager(f"the fused plan failed on its first call ({type(exc).__name__}: "
                                              f"{exc})")
            return self.__wrapped__(*args, **kwargs)
        entry.proven = True
        return out


def _route(args: tuple, kwargs: dict, execution: Any) -> str:
    libraries = {type(v).__module__.split(".")[0] for v in list(args) + list(kwargs.values())
                 if _trace.argument_kind(v) == "array"}
    if "dask" in libraries:
        return "Dask: each chunk runs the fused FFTs (callbacks compiled once on the client)"
    if "cupy" in libraries:
        return "GPU: cuFFT with LTO callbacks"
    if execution is not None:
        return f"execution={execution!r}: the fused FFTs run there"
    return "NumPy arrays: nvmath.fft's default execution, the CPU executor (ducc0 FFT + numba-compiled callbacks; " \
           "fuse(execution='cuda') runs them on the GPU)"


def fuse(fn: Callable | None = None, *, execution: Any = None, strict: bool = False) -> Any:
    """Fuse the elementwise steps around the FFTs of plain array code into the FFTs.

    Use as a decorator (``@fuse`` or ``@fuse(execution="cpu")``) or a function (``fuse(fn)``).
    On the first call for given argument shapes, dtypes and array library, the function runs once
    on stand-in arrays that record its steps (tracing). Each FFT call (``numpy.fft``,
    ``scipy.fft``, ``nvmath.fft``, ``cupy.fft`` or the array API's ``xp.fft``: ``fft``, ``ifft``,
    ``rfft``, ``irfft`` and their ``2``/``n`` forms) becomes an ``nvmath.fft`` call; the
    elementwise steps just before it become its prolog and those just after it its epilog, as
    generated callbacks of the value form (``f(x)``, ``f(x, d)`` with one array the steps read as
    data, broadcast as it broadcasts, and Python/NumPy scalars as runtime parameters: a new
    scalar value compiles nothing and plans nothing). A forward FFT whose result, after its
    steps, goes straight into the inverse over the same axes runs with it as one
    ``nvmath.fft.filtered`` call (the steps between them its pointwise step, the two ``norm``
    arguments its one), so the planner's chain routes apply.

    Never a wrong answer: what the trace cannot follow (reductions, reshapes, indexing, a branch
    on a value such as ``if x.sum() > 0``, another function of NumPy) makes the whole call run
    as written; steps it follows but cannot fuse (a second data array, a change of shape or of
    dtype, a value used twice, ``n=``/``s=``/``out=``) run as written between the fused FFTs.
    ``f.explain(*args)`` prints and returns the plan, and says why each step runs as written.

    Dtypes follow NumPy 2's rules as the undecorated code would: each step's dtype is the one
    NumPy gives (a Python float times complex64 stays complex64; a NumPy float64 scalar or array
    times complex64 gives complex128), and a callback is fused only where the steps it holds end
    in the FFT's own element type, so the result dtype is always NumPy's. NumPy 2's FFTs keep
    single precision (complex64 in, complex64 out), as nvmath's do; ``numpy.fft``'s default
    ``norm`` ("backward": the inverse divides by n) is kept, and ``nvmath.fft``'s (none) too.
    Inside a callback, intermediate steps may compute in a wider type than NumPy would (a
    Python int parameter is int64), never a narrower one.

    The function runs on stand-ins once per signature, so its side effects (printing, appending
    to a list) happen while tracing, not on later calls; in-place operators on its array
    arguments stop the trace (the call then runs as written, changing the caller's array as it
    would).

    The trace is kept per signature in memory; the function's fingerprint (bytecode, closure,
    globals read, by value) is checked on each call, so a changed global or closure value traces
    again (where every value it reads is immutable or a library's, the check is that they are the
    same objects as last time; an array it reads is hashed on every call). Python ints, strings
    and other non-array arguments are part of the signature (they may be axes), so a new value
    traces again (generating the same callbacks, which compile nothing new).

    Args:
        fn: the function to fuse.
        execution: passed to every fused FFT (e.g. "cpu"); None keeps ``nvmath.fft``'s default.
        strict: raise :class:`TraceError` naming the line the trace cannot follow, instead of
            running the function as written.

    >>> import numpy as np
    >>> @fuse(execution="cpu")
    ... def spectrum(x, s):
    ...     return np.fft.fft(x * s, axis=-1) * 2
    >>> x = np.arange(8, dtype=np.complex64)
    >>> bool(np.allclose(spectrum(x, 0.5), np.fft.fft(x * 0.5) * 2, atol=1e-4))
    True
    """
    if fn is None:
        return lambda f: FusedFunction(f, execution, strict)
    return FusedFunction(fn, execution, strict)
