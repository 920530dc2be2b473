"""Python function -> callback the CPU executor calls, with numba's ``njit``.

The CPU twin of ``cuda_backend``: the same forms, the same type checks and the same cuFFT-form
wrapper (``wrappers.make_wrapper``), with 1-D NumPy arrays where cuFFT passes pointers and
``None`` for cuFFT's unused shared-memory pointer. The offset stays ``uint64`` as on the GPU,
so a callback that types on the CPU types the same way on the GPU.

Compiled callbacks are cached in this process only, keyed like the GPU artifacts (the
function's fingerprint, taken on every call, so a changed global gives a new key). numba's CPU
code lives in the process and persisting it would mean pickling the user's function, which
this library never does; a new process recompiles (about a second per callback).

``python_callback`` builds the same wrapper around the plain Python function, for the debug
mode: no numba, so ``print`` and breakpoints work inside the callback.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Callable

from .fingerprint import UncacheableError, function_fingerprint
from .forms import Form, callback_error, python_function
from .terms import Terms
from .toolchain import toolchain_stamp
from .wrappers import make_wrapper

log = logging.getLogger("fftfuse.compiler")

SOURCES = ("compiled", "cache", "python")


@dataclasses.dataclass(frozen=True)
class CpuCallback:
    """A callback ready for the CPU executor, in cuFFT form.

    ``wrapper`` is called as ``wrapper(data_in, offset, user_info, None)`` (prolog) or
    ``wrapper(data_out, offset, value, user_info, None)`` (epilog) with 1-D arrays; it is a
    numba dispatcher, or a plain Python function when ``source`` is ``"python"``.
    """

    wrapper: Callable
    function: Callable  # what the user passed
    kind: str
    form: Form
    element_dtype: str
    user_dtype: str
    source: str  # "compiled", "cache" (this call found it compiled) or "python"
    terms: Terms | None = None  # indices, broadcast data, runtime parameters (``terms.Terms``)

    @property
    def name(self) -> str:
        return getattr(python_function(self.function), "__qualname__", repr(self.function))

    @property
    def elementwise(self) -> bool:
        """Whether it touches only the element at its own offset (the value forms)."""
        return self.form is not Form.CUFFT


_compiled: dict[str, CpuCallback] = {}
_lock = threading.Lock()


def compile_cpu(fn: Any, kind: str, element_dtype: Any, user_dtype: Any = None, *, literals: str = "element",
                terms: Terms | None = None) -> CpuCallback:
    """Compile ``fn`` as a CPU ``kind`` ("prolog"/"epilog") callback, through the in-process cache.

    ``element_dtype`` is the FFT input type (prolog) or output type (epilog); ``user_dtype``
    the element type of the user data, if the callback reads any; ``terms`` as for the GPU
    (``api.compile_callback``), with ``user_info`` the tuple ``(data, *params)`` when there are
    runtime parameters.

    >>> cb = compile_cpu(lambda x: 2 * x + 0.25, "epilog", "complex64")
    >>> cb.form.value, cb.source
    ('value', 'compiled')
    >>> compile_cpu(lambda x: 2 * x + 0.25, "epilog", "complex64").source
    'cache'
    """
    from .api import single_precision_literals

    form, element, user_name = _describe(fn, kind, element_dtype, user_dtype, terms)
    narrow = single_precision_literals(literals, element)
    key = None
    try:
        fingerprint = function_fingerprint(fn)
    except UncacheableError as exc:
        from .api import report_uncacheable

        report_uncacheable(kind, fn, exc)
    else:
        from cache import artifact_key

        key = artifact_key(
            target="cpu", fingerprint=fingerprint, kind=kind, form=form.value, element=element,
            user=user_name, narrow=narrow, toolchain=toolchain_stamp(),
            **({"terms": terms.key()} if terms is not None else {}),
        )
        with _lock:
            hit = _compiled.get(key)
        if hit is not None:
            return dataclasses.replace(hit, function=fn, source="cache")

    from .api import quiet_numba

    quiet_numba()
    started = time.perf_counter()
    wrapper = _compile(fn, kind, form, element, user_name, user_dtype, narrow, terms)
    callback = CpuCallback(wrapper, fn, kind, form, element, user_name, "compiled", terms)
    if log.isEnabledFor(logging.INFO):
        log.info("CPU %s %r (%s form, %s) compiled in %.1f ms", kind, getattr(fn, "__qualname__", fn), form.value,
                 element, 1e3 * (time.perf_counter() - started))
    if key is not None:
        with _lock:
            _compiled[key] = callback
    return callback


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
    wrapper = make_wrapper(kind, form, python_function(fn), convert, indirect=False, terms=terms, target="python")
    return CpuCallback(wrapper, fn, kind, form, element, user_name, "python", terms)


def clear_cache() -> None:
    """Forget every compiled CPU callback of this process."""
    with _lock:
        _compiled.clear()


def cpu_argument_types(kind: str, form: Form, element: Any, user: Any, terms: Terms | None = None) -> tuple:
    """The numba types the user's function is called with on the CPU: the GPU's
    (``cuda_backend.user_argument_types``) with 1-D arrays for pointers and ``none`` for the
    unused shared pointer."""
    from numba.core import types

    from .cuda_backend import user_argument_types

    def on_cpu(t: Any) -> Any:
        if t == types.voidptr:
            return types.none
        if isinstance(t, types.CPointer):
            return types.Array(t.dtype, 1, "C")
        return t

    return tuple(on_cpu(t) for t in user_argument_types(kind, form, element, user, terms))


def _describe(fn: Any, kind: str, element_dtype: Any, user_dtype: Any, terms: Terms | None) -> tuple[Form, str, str]:
    """As ``api.describe_callback``, with the user type defaulting to the element's."""
    from .api import describe_callback

    form, element, user_name = describe_callback(fn, kind, element_dtype, user_dtype, terms)
    return form, element, user_name or element


def _compile(fn: Any, kind: str, form: Form, element_name: str, user_name: str, user_dtype: Any, narrow: bool,
             terms: Terms | None) -> Any:
    import numba
    from numba.core.errors import NumbaError

    from .cuda_backend import check_result_type, compile_error, numba_type
    from .wrappers import jit_tree

    element = numba_type(element_name)
    user = numba_type(user_dtype if user_name.startswith("numba:") else user_name)
    argtypes = cpu_argument_types(kind, form, element, user, terms)
    try:
        jitted = jit_tree(fn, lambda f, o: numba.njit(**o)(f), narrow)
        jitted.compile(argtypes)
        result = jitted.overloads[argtypes].signature.return_type
        check_result_type(fn, kind, form, element, result)
    except NumbaError as exc:
        if "numba.cuda" in str(exc):
            raise callback_error(
                fn, kind, "it (or a function it calls) uses numba.cuda, which exists only on the GPU; the CPU "
                f"executor compiles callbacks and their helpers, cuda.jit ones included, for the CPU:\n{exc}"
            ) from None
        raise compile_error(fn, kind, exc) from None
    # Compiled lazily, inlined into the executor's loop that calls it.
    return numba.njit(make_wrapper(kind, form, jitted, element, indirect=False, terms=terms))


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
