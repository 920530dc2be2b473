"""Python function -> callback the CPU executor calls, with numba's ``njit``.

The CPU twin of ``cuda_backend``: the same forms, the same type checks and the same cuFFT-form
wrapper (``wrappers.make_wrapper``), with 1-D NumPy arrays where cuFFT passes pointers and
``None`` for cuFFT's unused shared-memory pointer. The offset stays ``uint64`` as on the GPU,
so a callback that types on the CPU types the same way on the GPU.

Each callback becomes two native loops (``cpu_loops``: one reading and writing apart, one in
place) with the callback inlined, compiled by numba as C functions. Their native code for this
machine (``cpu_native``: a shared library where a linker exists, else object code) goes into
the same store as the GPU artifacts, as raw bytes with JSON metadata, under a key made by the
same rules (the function's fingerprint, taken on every call so a changed global gives a new
key; the toolchain stamp; form and dtypes) plus this machine's identity (platform, CPU model
and features). A new process loads the loops from the store without importing numba (nor,
for a shared library, llvmlite) and without compiling. A callback that cannot be fingerprinted,
or whose code needs numba's runtime, is compiled in every process, as before.

``python_callback`` builds the same wrapper around the plain Python function, for the debug
mode: no numba, so ``print`` and breakpoints work inside the callback.

Errors. numba's C functions print an exception and carry on, so the compiled loops never let
one reach numba: they stop at the first failing element and return its position (see
``cpu_loops``), which the executor reports by rerunning that one element. A cuFFT-form
callback indexes its buffers through bounds-checked buffers where ``bounds_checks()`` says so
(``cpu_errors``; off by default, for what they cost). Arithmetic follows NumPy's error model:
a float division by zero gives inf or nan, while an integer division or modulo by zero raises
ZeroDivisionError (NumPy's silent 0 would be a wrong result; Python raises too), as does
numba's complex division by zero.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import logging
import os
import threading
import time
import types as pytypes
from typing import Any, Callable

from .fingerprint import UncacheableError, function_fingerprint
from .forms import Form, callback_error, python_function
from .terms import Terms
from .toolchain import toolchain_stamp

log = logging.getLogger("fftfuse.compiler")

SOURCES = ("compiled", "cache", "python")

#: Environment switch of the cuFFT-form callbacks' bounds checks: "1" turns them on. They are
#: off by default: they cost 5.6-9.6% of a 1024 x 1024 complex64 FFT with a cuFFT-form filter
#: epilog (the checked loop does not vectorize; ``benchmarks/NOTES.md``, section 12), over the
#: 5% allowed. The debug mode (``FFTOptions(debug=True)``) checks every offset too.
BOUNDS_CHECKS_ENV = "FFTFUSE_BOUNDS_CHECKS"
# Raised whenever the compiled loops change in a way their source digest cannot see (options
# given to numba here, or to LLVM by cpu_native): a stored loop of an older revision is never
# served. 2: guarded loops returning a status, checked buffers, integer division by zero raises;
# 3: shared libraries compiled for the small code model.
_LOOPS_REVISION = 3


def bounds_checks() -> bool:
    """Whether compiled cuFFT-form callbacks check their offsets (``FFTFUSE_BOUNDS_CHECKS=1``;
    off by default).

    >>> bounds_checks() in (True, False)
    True
    """
    value = os.environ.get(BOUNDS_CHECKS_ENV, "0").strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no", ""):
        return False
    raise ValueError(f"{BOUNDS_CHECKS_ENV}={value!r} is not understood; use 1 (bounds checks on) or 0 (off)")


class Loops:
    """One callback's two loops as the executor calls them (see ``cpu_loops.make_loops``).

    ``apart(src, src_base, src_strides, dst, dst_base, dst_strides, info, rows, shape)`` and
    ``in_place(data, base, strides, info, rows, shape)``: the buffers are 1-D arrays, the bases
    and ``rows`` integers, the strides and ``shape`` uint64 arrays.
    """

    native = False

    def __init__(self, apart: Callable, in_place: Callable) -> None:
        self._apart, self._in_place = apart, in_place

    def native_functions(self) -> tuple[Callable, Callable] | None:
        """``(apart, in_place)`` as C functions taking addresses (see ``_ABI``), for a caller
        that computes the addresses once; None where the loops are not native."""
        return None

    def ready(self) -> Loops:
        """The loops, compiled (lazy loops compile on this first call)."""
        return self

    def apart(self, src, src_base, src_strides, dst, dst_base, dst_strides, info, rows, shape) -> int:  # noqa: ANN001
        """0, or 1 + the position of the element whose callback raised (guarded loops only)."""
        ints = _ints
        return self._apart(src, int(src_base), ints(src_strides), dst, int(dst_base), ints(dst_strides), info,
                           int(rows), ints(shape))

    def in_place(self, data, base, strides, info, rows, shape) -> int:  # noqa: ANN001
        """As ``apart``."""
        return self._in_place(data, int(base), _ints(strides), info, int(rows), _ints(shape))


def _ints(values: Any) -> list[int]:
    return [int(v) for v in values]


_U64, _PTR = ctypes.c_uint64, ctypes.c_void_p
_ABI = ("apart(src,n,base,strides,dst,n,base,strides,info,n,rows,shape,ndim)->i64 "
        "in_place(data,n,base,strides,info,n,rows,shape,ndim)->i64")
# The C signatures of the native loops: each buffer is passed as (pointer, elements); they
# return 0, or 1 + the position of the element whose callback raised.
_APART = ctypes.CFUNCTYPE(ctypes.c_int64, _PTR, _U64, _U64, _PTR, _PTR, _U64, _U64, _PTR, _PTR, _U64, _U64, _PTR,
                          _U64)
_IN_PLACE = ctypes.CFUNCTYPE(ctypes.c_int64, _PTR, _U64, _U64, _PTR, _PTR, _U64, _U64, _PTR, _U64)


def _address(a: Any) -> int:
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(a))  # 3x faster than __array_interface__
    except (TypeError, ValueError, BufferError):  # read-only
        return a.__array_interface__["data"][0]


class NativeLoops(Loops):
    """The loops as native functions at two addresses, called through ctypes (which releases
    the GIL, so blocks run in parallel). ``owner`` keeps the code they live in alive."""

    native = True

    def __init__(self, apart: int, in_place: int, owner: Any) -> None:
        super().__init__(_APART(apart), _IN_PLACE(in_place))
        self._owner = owner

    def native_functions(self) -> tuple[Callable, Callable] | None:
        return self._apart, self._in_place

    def apart(self, src, src_base, src_strides, dst, dst_base, dst_strides, info, rows, shape) -> int:  # noqa: ANN001
        return self._apart(_address(src), src.shape[0], src_base, _address(src_strides), _address(dst),
                           dst.shape[0], dst_base, _address(dst_strides), _address(info), info.shape[0], rows,
                           _address(shape), shape.shape[0])

    def in_place(self, data, base, strides, info, rows, shape) -> int:  # noqa: ANN001
        return self._in_place(_address(data), data.shape[0], base, _address(strides), _address(info), info.shape[0],
                              rows, _address(shape), shape.shape[0])


class JitLoops(Loops):
    """The loops as numba dispatchers (for ``user_info`` tuples, which C signatures cannot take)."""

    def apart(self, src, src_base, src_strides, dst, dst_base, dst_strides, info, rows, shape) -> int:  # noqa: ANN001
        u = _np().uint64
        return int(self._apart(src, u(src_base), src_strides, dst, u(dst_base), dst_strides, info, u(rows), shape))

    def in_place(self, data, base, strides, info, rows, shape) -> int:  # noqa: ANN001
        u = _np().uint64
        return int(self._in_place(data, u(base), strides, info, u(rows), shape))


def _np() -> Any:
    import numpy

    return numpy


class LazyLoops(Loops):
    """Native loops compiled on first use: ``compile_cpu`` type-checks a callback at once, and
    its loops (two numba cfuncs, some 0.5 s) are compiled when an executor first needs them."""

    native = True

    def __init__(self, build: Callable[[], Loops]) -> None:
        self._build, self._loops, self._lock = build, None, threading.Lock()

    def ready(self) -> Loops:
        if self._loops is None:
            with self._lock:
                if self._loops is None:
                    self._loops = self._build()
        return self._loops

    def native_functions(self) -> tuple[Callable, Callable] | None:
        return self.ready().native_functions()

    def apart(self, *args: Any) -> int:
        return self.ready().apart(*args)

    def in_place(self, *args: Any) -> int:
        return self.ready().in_place(*args)


@dataclasses.dataclass(frozen=True)
class CpuCallback:
    """A callback ready for the CPU executor, in cuFFT form, with the loops that apply it.

    ``wrapper`` is called as ``wrapper(data_in, offset, user_info, None)`` (prolog) or
    ``wrapper(data_out, offset, value, user_info, None)`` (epilog) with 1-D arrays; it is a
    numba dispatcher, a plain Python function when ``source`` is ``"python"``, or None when the
    loops were loaded from the store.
    """

    wrapper: Callable | None
    function: Callable  # what the user passed
    kind: str
    form: Form
    element_dtype: str
    user_dtype: str
    source: str  # "compiled", "cache" (found compiled, in this process or the store) or "python"
    loops: Loops
    terms: Terms | None = None  # indices, broadcast data, runtime parameters (``terms.Terms``)
    narrow: bool = False  # Python float literals compiled in single precision
    checked: bool = False  # a cuFFT-form callback's buffers are bounds-checked

    @property
    def name(self) -> str:
        return getattr(python_function(self.function), "__qualname__", repr(self.function))

    @property
    def data_dtype(self) -> str | None:
        """The user data's type as given when compiling: None for the forms that read no data."""
        return None if self.form in (Form.VALUE, Form.VALUE_INDEX) else self.user_dtype

    @property
    def elementwise(self) -> bool:
        """Whether it touches only the element at its own offset (the value forms)."""
        return self.form is not Form.CUFFT


_compiled: dict[str, CpuCallback] = {}
_lock = threading.Lock()


def compile_cpu(fn: Any, kind: str, element_dtype: Any, user_dtype: Any = None, *, literals: str = "element",
                terms: Terms | None = None, store: Any = None, checks: bool | None = None) -> CpuCallback:
    """Compile ``fn`` as a CPU ``kind`` ("prolog"/"epilog") callback, through the caches.

    ``element_dtype`` is the FFT input type (prolog) or output type (epilog); ``user_dtype``
    the element type of the user data, if the callback reads any; ``terms`` as for the GPU
    (``api.compile_callback``), with ``user_info`` the tuple ``(data, *params)`` when there are
    runtime parameters. A callback compiled in an earlier process is loaded from ``store``
    (default: the process-wide store). ``checks``: whether a cuFFT-form callback's offsets are
    bounds-checked (default: ``bounds_checks()``); the value forms index nothing themselves.

    >>> cb = compile_cpu(lambda x: 2 * x + 0.25, "epilog", "complex64")
    >>> cb.form.value, cb.source in ("compiled", "cache")
    ('value', True)
    >>> compile_cpu(lambda x: 2 * x + 0.25, "epilog", "complex64").source
    'cache'
    """
    from .api import single_precision_literals

    form, element, user_name = _describe(fn, kind, element_dtype, user_dtype, terms)
    narrow = single_precision_literals(literals, element)
    checked = form is Form.CUFFT and (bounds_checks() if checks is None else bool(checks))
    key = fingerprint = None
    try:
        fingerprint = function_fingerprint(fn)
    except UncacheableError as exc:
        from .api import report_uncacheable

        report_uncacheable(kind, fn, exc)
    else:
        key = native_key(fingerprint, kind, form, element, user_name, narrow, terms, checked)
        with _lock:
            hit = _compiled.get(key)
        if hit is not None:
            return dataclasses.replace(hit, function=fn, source="cache")
        if store is None:
            from fftfuse_cache import default_store

            store = default_store()
        loops = _load(store, key, {"target": "cpu", "kind": kind, "form": form.value, "element_dtype": element,
                                   "user_dtype": user_name or element, "fingerprint": fingerprint})
        if loops is not None:
            callback = CpuCallback(None, fn, kind, form, element, user_name, "cache", loops, terms, narrow, checked)
            with _lock:
                _compiled[key] = callback
            return callback

    from .api import quiet_numba

    quiet_numba()
    started = time.perf_counter()
    wrapper, build = _compile(fn, kind, form, element, user_name, user_dtype, narrow, terms, checked)

    def native() -> NativeLoops:
        cfuncs = build()
        if key is not None and fingerprint is not None and not isinstance(cfuncs, Loops):
            _persist(store, key, fingerprint, callback, cfuncs)
        return cfuncs if isinstance(cfuncs, Loops) else NativeLoops(cfuncs[0].address, cfuncs[1].address, cfuncs)

    callback = CpuCallback(wrapper, fn, kind, form, element, user_name, "compiled", LazyLoops(native), terms, narrow,
                           checked)
    if log.isEnabledFor(logging.INFO):
        log.info("CPU %s %r (%s form, %s) compiled in %.1f ms", kind, getattr(fn, "__qualname__", fn), form.value,
                 element, 1e3 * (time.perf_counter() - started))
    if key is not None:
        with _lock:
            _compiled[key] = callback
    return callback


def native_key(fingerprint: str, kind: str, form: Form, element: str, user: str, narrow: bool,
               terms: Terms | None = None, checked: bool = False) -> str:
    """The store key of a callback's native loops: the GPU's rules plus this CPU's identity, the
    loops' revision and whether they check offsets."""
    from fftfuse_cache import artifact_key

    from .cpu_native import cpu_identity

    return artifact_key(target="cpu", fingerprint=fingerprint, kind=kind, form=form.value, element=element,
                        user=user, narrow=narrow, toolchain=toolchain_stamp(), loops=_loops_stamp(), checked=checked,
                        **({"terms": terms.key()} if terms is not None else {}), **cpu_identity())


@functools.cache
def _loops_stamp() -> str:
    """A digest of the loops' source, their C signature and revision: a change gives new keys."""
    here = os.path.dirname(__file__)
    digest = hashlib.sha256(f"revision {_LOOPS_REVISION}\n".encode())
    for name in ("cpu_loops.py", "wrappers.py", "cpu_errors.py"):
        with open(os.path.join(here, name), "rb") as f:
            digest.update(f.read())
    digest.update(_ABI.encode())
    return digest.hexdigest()[:16]


def _persist(store: Any, key: str, fingerprint: str, callback: CpuCallback, cfuncs: tuple) -> None:
    """Store the native code of ``cfuncs`` (numba's apart and in-place loops) under ``key``."""
    from .cpu_native import cpu_identity, cpu_summary, persistable

    why = _raises(python_function(callback.function))
    symbols = [c.native_name for c in cfuncs]
    if why is None:
        try:
            code, form = persistable([c.inspect_llvm() for c in cfuncs], symbols)
        except (ValueError, RuntimeError) as exc:  # llvmlite reports its failures as RuntimeError
            why = str(exc)
    if why is not None:
        log.info("CPU %s %r is compiled in every process: %s", callback.kind, callback.name, why)
        return
    from fftfuse_cache import ArtifactMeta, keep_artifact

    identity = cpu_identity()
    keep_artifact(store, key, code, ArtifactMeta(
        # No user data is recorded as the element type, as for the GPU.
        "cpu", callback.kind, callback.form.value, callback.element_dtype, callback.user_dtype or callback.element_dtype,
        cpu_summary(identity), callback.name, fingerprint, toolchain_stamp(),
        extra={"symbols": symbols, "format": form, **identity},
    ))


def _raises(fn: Any, seen: set | None = None) -> str | None:
    """Why ``fn`` (or a function it calls through its globals) may raise, or None.

    A raise is reported to numba's runtime, which a process loading stored code lacks.
    """
    import dis  # compile time only: a process loading stored loops does not need it

    seen = set() if seen is None else seen
    code = getattr(fn, "__code__", None)
    if code is None or id(fn) in seen:
        return None
    seen.add(id(fn))
    for c in _code_objects(code):
        if any(i.opname in ("RAISE_VARARGS", "RERAISE") for i in dis.get_instructions(c)):
            return f"{fn.__qualname__} contains a raise or assert statement"
        for name in c.co_names:
            value = getattr(fn, "__globals__", {}).get(name)
            # Helpers reached as module attributes (mymod.helper) are compiled in too.
            found = [getattr(value, n, None) for n in c.co_names] if isinstance(value, pytypes.ModuleType) else [value]
            for callee in map(python_function, found):
                if isinstance(callee, pytypes.FunctionType):
                    why = _raises(callee, seen)
                    if why:
                        return why
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            callee = python_function(cell.cell_contents)
        except ValueError:
            continue
        if isinstance(callee, pytypes.FunctionType):
            why = _raises(callee, seen)
            if why:
                return why
    return None


def _code_objects(code: pytypes.CodeType) -> list[pytypes.CodeType]:
    out = [code]
    for const in code.co_consts:
        if isinstance(const, pytypes.CodeType):
            out += _code_objects(const)
    return out


def _load(store: Any, key: str, expect: dict[str, Any]) -> Loops | None:
    """The loops stored under ``key``, loaded into this process; None on a miss or a bad entry.

    ``expect``: what the entry must record (the store drops one that records otherwise).
    """
    from fftfuse_cache import stored_artifact

    found = stored_artifact(store, key, expect)
    if found is None:
        return None
    code, meta = found.payload, found.meta.extra
    from .cpu_native import load_native

    try:
        apart, in_place = meta["symbols"]
        library = load_native(code, meta["format"])
        return NativeLoops(library.address(apart), library.address(in_place), library)
    except (KeyError, TypeError, ValueError, RuntimeError, OSError) as exc:
        log.warning("dropping stored CPU callback %s: %s", key, exc)
        store.delete(key)
        return None


def python_callback(fn: Any, kind: str, element_dtype: Any, user_dtype: Any = None,
                    terms: Terms | None = None) -> CpuCallback:
    """The cuFFT-form wrapper around the plain Python ``fn``: runs without numba.

    A result that cannot become the element (complex for a real element) raises TypeError,
    as compiling would.

    >>> import numpy as np
    >>> cb = python_callback(lambda x, d: x * d, "prolog", "float32", "float32")
    >>> cb.wrapper(np.array([1.5, 2.0], np.float32), 1, np.array([3.0, 4.0], np.float32), None)
    np.float32(8.0)
    """
    form, element, user_name = _describe(fn, kind, element_dtype, user_dtype, terms)
    convert = _element_converter(fn, kind, element)
    from .cpu_loops import make_loops
    from .wrappers import make_wrapper

    wrapper = make_wrapper(kind, form, python_function(fn), convert, indirect=False, terms=terms, target="python")
    loops = Loops(*make_loops(kind, wrapper, lambda f: f))
    return CpuCallback(wrapper, fn, kind, form, element, user_name, "python", loops, terms)


def compiled_wrapper(callback: CpuCallback) -> Callable:
    """The numba-compiled cuFFT-form wrapper of ``callback``, callable from Python with 1-D arrays
    (compiled now where the loops came from the store): it raises what the native loops caught,
    as numba raises it, for reporting a failure that the plain Python callback does not repeat."""
    if callback.wrapper is not None and callback.source != "python":
        return callback.wrapper
    from .api import quiet_numba

    quiet_numba()
    user = callback.user_dtype
    wrapper, _ = _compile(callback.function, callback.kind, callback.form, callback.element_dtype, user,
                          None if user.startswith("numba:") else user, callback.narrow, callback.terms,
                          callback.checked)
    return wrapper


def clear_cache() -> None:
    """Forget every compiled CPU callback of this process."""
    with _lock:
        _compiled.clear()


def cpu_argument_types(kind: str, form: Form, element: Any, user: Any, terms: Terms | None = None,
                       checked: bool = False) -> tuple:
    """The numba types the user's function is called with on the CPU: the GPU's
    (``numba_types.user_argument_types``) with 1-D arrays for pointers (bounds-checked buffers
    of them with ``checked``) and ``none`` for the unused shared pointer."""
    from numba.core import types

    from .numba_types import user_argument_types

    def on_cpu(t: Any) -> Any:
        if t == types.voidptr:
            return types.none
        if isinstance(t, types.CPointer):
            array = types.Array(t.dtype, 1, "C")
            if checked:
                from .cpu_errors import checked_type

                return checked_type(array)
            return array
        return t

    return tuple(on_cpu(t) for t in user_argument_types(kind, form, element, user, terms))


def _describe(fn: Any, kind: str, element_dtype: Any, user_dtype: Any, terms: Terms | None) -> tuple[Form, str, str]:
    """As ``api.describe_callback``, with the user type defaulting to the element's."""
    from .api import describe_callback

    form, element, user_name = describe_callback(fn, kind, element_dtype, user_dtype, terms)
    return form, element, user_name or element


def _compile(fn: Any, kind: str, form: Form, element_name: str, user_name: str, user_dtype: Any, narrow: bool,
             terms: Terms | None, checked: bool = False) -> tuple[Any, Callable[[], Any]]:
    """numba's wrapper of ``fn`` (type-checked now), and what compiles the loops around it: two
    ``cfunc``s, or jitted loops where runtime parameters make ``user_info`` a tuple. With
    ``checked`` a cuFFT-form ``fn`` gets bounds-checked buffers (``cpu_errors``)."""
    import numba
    from numba.core.errors import NumbaError

    from .numba_types import check_result_type, compile_error, numba_type
    from .cpu_loops import make_loops, row_start
    from .wrappers import jit_tree, make_wrapper

    element = numba_type(element_name)
    user = numba_type(user_dtype if user_name.startswith("numba:") else user_name)
    argtypes = cpu_argument_types(kind, form, element, user, terms, checked)
    through = None
    if checked:
        from .cpu_errors import checked as through
    from .cpu_errors import ERROR_MODEL

    # NumPy's error model, as on the GPU, but an integer division by zero raises (cpu_errors).
    jit = numba.njit(error_model=ERROR_MODEL)
    try:
        jitted = jit_tree(fn, lambda f, o: numba.njit(**o, error_model=ERROR_MODEL)(f), narrow)
        jitted.compile(argtypes)
        result = jitted.overloads[argtypes].signature.return_type
        check_result_type(fn, kind, form, element, result)
        wrapper = jit(make_wrapper(kind, form, jitted, element, indirect=False, terms=terms, checked=through))
    except NumbaError as exc:
        if checked and "CheckedBuffer(" in str(exc):
            raise callback_error(
                fn, kind, "with bounds checks on (FFTFUSE_BOUNDS_CHECKS=1) its buffers data_in, data_out and user_info "
                "take integer offsets only, x[offset] and x[offset] = v, as the GPU's pointers do (no len, slices or "
                f"attributes):\n{exc}"
            ) from None
        if "numba.cuda" in str(exc):
            raise callback_error(
                fn, kind, "it (or a function it calls) uses numba.cuda, which exists only on the GPU; the CPU "
                f"executor compiles callbacks and their helpers, cuda.jit ones included, for the CPU:\n{exc}"
            ) from None
        raise compile_error(fn, kind, exc) from None

    def build() -> Any:
        try:
            if terms is not None and terms.params:
                return JitLoops(*make_loops(kind, wrapper, jit, jit(row_start), guard=True))
            return _native_loops(kind, wrapper, element, user)
        except NumbaError as exc:
            raise compile_error(fn, kind, exc) from None

    return wrapper, build


def _native_loops(kind: str, wrapper: Any, element: Any, user: Any) -> tuple:
    """The two loops of ``cpu_loops`` around ``wrapper``, as numba ``cfunc``s of the C signatures
    ``_APART`` and ``_IN_PLACE``."""
    import numba
    from numba import carray
    from numba.core import types

    from .cpu_errors import ERROR_MODEL
    from .cpu_loops import make_loops, row_start

    jit = numba.njit(error_model=ERROR_MODEL)
    apart, in_place = make_loops(kind, wrapper, jit, jit(row_start), guard=True)
    u64, idx, E, U = types.uint64, types.CPointer(types.uint64), types.CPointer(element), types.CPointer(user)
    cfunc = functools.partial(numba.cfunc, error_model=ERROR_MODEL)

    @cfunc(types.int64(E, u64, u64, idx, E, u64, u64, idx, U, u64, u64, idx, u64))
    def c_apart(src, ns, sb, ss, dst, nd, db, ds, info, ni, rows, shape, ndim):  # noqa: ANN001, ANN202
        return apart(carray(src, (ns,)), sb, carray(ss, (ndim,)), carray(dst, (nd,)), db, carray(ds, (ndim,)),
              carray(info, (ni,)), rows, carray(shape, (ndim,)))

    @cfunc(types.int64(E, u64, u64, idx, U, u64, u64, idx, u64))
    def c_in_place(data, n, base, strides, info, ni, rows, shape, ndim):  # noqa: ANN001, ANN202
        return in_place(carray(data, (n,)), base, carray(strides, (ndim,)), carray(info, (ni,)), rows, carray(shape, (ndim,)))

    return c_apart, c_in_place


def _element_converter(fn: Any, kind: str, element: str) -> Callable[[Any], Any]:
    """NumPy's scalar constructor for ``element``, refusing complex -> real like the compiler."""
    import numpy as np

    scalar = np.dtype(element).type
    if np.dtype(element).kind == "c":
        return scalar

    def to_real(value: Any) -> Any:
        if np.iscomplexobj(value):
            raise callback_error(
                fn, kind, f"returns complex ({type(value).__name__}) where the element type is real "
                f"({element}); return .real or abs(...) explicitly"
            )
        return scalar(value)

    return to_real
