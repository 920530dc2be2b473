"""compile_callback: a Python function in, cached LTO-IR out.

The cache key is the function's fingerprint (code, constants, defaults, closure and the
globals it reads, by value) with the callback kind, form, dtypes, architecture and the
toolchain stamp. A function whose fingerprint cannot be taken is compiled and not cached.
The fingerprint is taken on every call, so a changed global is never served stale.
"""

from __future__ import annotations

import functools
import sys
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from fftfuse_cache import ArtifactMeta, artifact_key, compiled_through, default_store

from .dtypes import element_dtype_name, single_precision_literals
from .fingerprint import UncacheableError, function_fingerprint
from .forms import (Form, callback_error, infer_form, no_result_cause, python_function, raise_statements,
                    runtime_parameters)
from .thunk import CONSTRUCTION, ltoir_record
from .toolchain import check_supported_arch, resolve_arch, toolchain_stamp

if TYPE_CHECKING:  # terms is a dataclass module: importing it loads dataclasses and inspect
    from .terms import Terms

# The cache-hit path imports neither dataclasses (inspect) nor logging nor NumPy: each costs
# milliseconds in a fresh process, and a hit is meant to take about ten.


class CompiledCallback(NamedTuple):
    """LTO-IR of one callback and what it was compiled for."""

    ltoir: bytes
    symbol: str
    kind: str
    form: Form
    element_dtype: str
    user_dtype: str
    arch: int
    indirect: bool
    toolkit: tuple[int, int]
    source: str  # "compiled" or "cache": where this call found it

    @property
    def from_cache(self) -> bool:
        return self.source != "compiled"


_DTYPE_NAMES = frozenset(
    ("float32", "float64", "complex64", "complex128", "int8", "int16", "int32", "int64",
     "uint8", "uint16", "uint32", "uint64", "float16", "bool")
)


def user_dtype_name(user_dtype: Any) -> str | None:
    """Canonical spelling of a user-data type: a NumPy dtype name, or a numba type's repr."""
    if user_dtype is None:
        return None
    if type(user_dtype).__module__.startswith("numba"):
        return f"numba:{user_dtype!r}"
    if isinstance(user_dtype, str) and user_dtype in _DTYPE_NAMES:
        return user_dtype
    import numpy as np

    try:
        name = np.dtype(user_dtype).name
    except TypeError:
        name = str(user_dtype).rsplit(".", 1)[-1]
        if name not in _UNREADABLE:
            raise ValueError(
                f"user_info_dtype={user_dtype!r} is not understood; pass a NumPy dtype (e.g. 'complex64') "
                "or a numba type"
            ) from None
    if name in _UNREADABLE:
        raise TypeError(
            f"callback user data of type {name} cannot be read by a compiled callback (numba has no {name} "
            "type); convert the data to float32/complex64 (e.g. data.astype('complex64'))"
        )
    return name


# Element types that exist in PyTorch or ml_dtypes but not in numba.
_UNREADABLE = frozenset(("bfloat16", "complex32", "float8_e4m3fn", "float8_e5m2"))


def describe_callback(fn: Any, kind: str, element_dtype: Any, user_dtype: Any,
                      terms: Terms | None = None) -> tuple[Form, str, str | None]:
    """The callback's form, element type name and user-data type name (None: no user data).

    A ``user_dtype`` already canonical (a "numba:..." name from a compiled callback) passes as it is.
    With ``terms`` (from the planner, who knows the array) the index forms are recognised too.
    """
    if terms is None:
        form = infer_form(fn, kind)
    else:
        form = infer_form(fn, kind, ndim=len(terms.shape), data=user_dtype is not None)
    names = runtime_parameters(fn)
    if names != tuple(n for n, _ in (terms.params if terms else ())):
        raise callback_error(
            fn, kind, f"its keyword-only parameters {list(names)} are runtime parameters, whose values come with "
            f"the FFT call: pass {{'fn': f, 'params': {{{', '.join(repr(n) + ': value' for n in names)}}}}} as the "
            f"{kind} of fft()/FFT.plan()"
        )
    if kind == "epilog" and form is Form.CUFFT:
        code = getattr(python_function(fn), "__code__", None)
        if code is not None and _returns_value(code):
            raise callback_error(fn, kind, "it is in cuFFT's form, which stores its result with "
                                 "data_out[offset] = ..., but it returns a value, which cuFFT would drop. "
                                 "Store the value, or use the value form f(x) -> y")
    if not (kind == "epilog" and form is Form.CUFFT) and raise_statements(fn)[1]:
        # Never returns: numba would type the result as None, or lower a wrapper NVVM refuses.
        raise callback_error(fn, kind, no_result_cause(fn, kind))
    element = element_dtype_name(element_dtype)
    canonical = isinstance(user_dtype, str) and user_dtype.startswith("numba:")
    user_name = user_dtype if canonical else user_dtype_name(user_dtype)
    if user_name is None and form.takes_data_element:
        name = getattr(getattr(fn, "py_func", fn), "__qualname__", fn)
        raise TypeError(
            f"{kind} {name!r} takes a user-data element (form f(x, d)) but no user data type was given: "
            "pass user_info_dtype, or data= with the FFT call"
        )
    return form, element, user_name


@functools.lru_cache(maxsize=256)
def _returns_value(code: Any) -> bool:
    """Whether a function returns something other than None somewhere (read off its bytecode)."""
    import dis

    previous = None
    for ins in dis.get_instructions(code):
        if ins.opname == "RETURN_CONST" and ins.argval is not None:
            return True
        if ins.opname == "RETURN_VALUE" and not (previous is not None and previous.opname == "LOAD_CONST"
                                                 and previous.argval is None):
            return True
        previous = ins
    return False


_reported: set[tuple[str, str]] = set()


def report_uncacheable(kind: str, fn: Any, exc: UncacheableError) -> None:
    """Log, once per function and reason, that ``fn`` is compiled without the cache."""
    name = getattr(getattr(fn, "py_func", fn), "__qualname__", repr(fn))
    if (name, exc.reason) in _reported:
        return
    if len(_reported) >= 4096:
        _reported.clear()
    _reported.add((name, exc.reason))
    import logging

    logging.getLogger("fftfuse.compiler").info("not caching %s %r (compiled on every call): %s", kind, name, exc)


def compile_callback(
    fn: Any,
    kind: str,
    element_dtype: Any,
    user_dtype: Any = None,
    *,
    compute_capability: Any = None,
    indirect: bool = False,
    literals: str = "element",
    store: Any = None,
    terms: Terms | None = None,
) -> CompiledCallback:
    """Compile ``fn`` as an FFT ``kind`` ("prolog"/"epilog") callback to LTO-IR, through the cache.

    ``element_dtype`` is the FFT input type (prolog) or output type (epilog); ``user_dtype``
    is the element type of the user data the callback reads, if any. ``literals="element"``
    (the default) computes Python float literals and float globals in the element's precision
    for single-precision elements; ``"double"`` keeps Python's double precision. ``terms`` (from the
    planner) gives the index forms, broadcast data and runtime parameters (``terms.Terms``);
    parameters need ``indirect``, as they live in the slot.
    """
    form, element, user_name = describe_callback(fn, kind, element_dtype, user_dtype, terms)
    if terms is not None and terms.params and not indirect:
        raise ValueError("runtime parameters are read from the callback's slot: compile with indirect=True")
    arch = resolve_arch(compute_capability)
    narrow = single_precision_literals(literals, element)
    if store is None:
        store = default_store()

    key = None
    name = getattr(python_function(fn), "__qualname__", fn)
    try:
        fingerprint = function_fingerprint(fn)
    except UncacheableError as exc:
        fingerprint = None
        report_uncacheable(kind, fn, exc)
    else:
        key = artifact_key(
            target="ltoir", fingerprint=fingerprint, kind=kind, form=form.value, element=element,
            user=user_name, arch=arch, indirect=indirect, narrow=narrow, toolchain=toolchain_stamp(),
            construction=CONSTRUCTION,
            **({"terms": terms.key()} if terms is not None else {}),
        )

    def compile_now() -> tuple[bytes, ArtifactMeta]:
        started = time.perf_counter()
        check_supported_arch(arch)
        numba_user = user_name is not None and user_name.startswith("numba:")
        # One expression of arithmetic needs no numba (see direct_ir): milliseconds, not a second.
        found = None if numba_user else _compile_directly(fn, kind, form, element, user_name, arch,
                                                          indirect=indirect, narrow=narrow, terms=terms)
        if found is not None:
            ltoir, meta = found
        else:
            quiet_numba()
            from .cuda_backend import compile_ltoir

            ltoir, meta = compile_ltoir(fn, kind, form, element, user_dtype if numba_user else user_name, arch,
                                        indirect=indirect, narrow=narrow, terms=terms)
        _log(_INFO, "%s %r (%s form, %s, sm_%d) compiled in %.1f ms: key %s, %d bytes", kind, name, form.value,
             element, arch, 1e3 * (time.perf_counter() - started), key, len(ltoir))
        return ltoir, _record(meta, fingerprint)

    # The store serves only the entry written under this key; the fields below guard against
    # an entry whose metadata disagrees with what is asked for (it is dropped and compiled again).
    found = compiled_through(store, key, {
        "target": "ltoir", "fingerprint": fingerprint, "kind": kind, "form": form.value, "element_dtype": element,
        "arch": arch, "indirect": indirect, "narrow": narrow, "construction": CONSTRUCTION,
    }, compile_now)
    if found.source == "cache":
        _log(_DEBUG, "%s %r (%s, sm_%d) found in the cache: key %s, %d bytes", kind, name, element, arch,
             key, len(found.payload))
    return _artifact(found.payload, found.meta, form, user_name, source=found.source)


def _compile_directly(fn: Any, kind: str, form: Form, element: str, user: str | None, arch: int, *,
                      indirect: bool, narrow: bool, terms: Terms | None) -> tuple[bytes, dict] | None:
    """LTO-IR and metadata of ``fn`` written without numba, or None where numba must compile it."""
    from .direct_ir import compile_direct, direct_ir, ir_version

    try:
        version = ir_version()
    except (ImportError, RuntimeError) as exc:  # no libNVVM binding (an older cuda-python): numba's own
        _log(_DEBUG, "%s %r: libNVVM not reachable without numba (%s); numba compiles it", kind, fn, exc)
        return None
    module = direct_ir(fn, kind, form, element, user, indirect=indirect, narrow=narrow, terms=terms,
                       ir_version=version)
    if module is None:
        return None
    meta = ltoir_record(getattr(fn, "__qualname__", repr(fn)), kind, form, element, user or element, arch,
                        indirect=indirect, narrow=narrow, route="direct")
    return compile_direct(module, arch), meta


def _record(meta: dict[str, Any], fingerprint: str | None) -> ArtifactMeta:
    """The store's record of a callback's LTO-IR, from what the backend says it compiled."""
    fields = ("kind", "form", "element_dtype", "user_dtype", "arch", "function")
    return ArtifactMeta("ltoir", *(meta[f] for f in fields), fingerprint=fingerprint, toolchain=toolchain_stamp(),
                        extra={k: v for k, v in meta.items() if k not in fields})


_DEBUG, _INFO = 10, 20  # logging's levels, without importing logging on the cache-hit path


def _log(level: int, message: str, *args: Any) -> None:
    """Log on ``fftfuse.compiler``. Without the logging module loaded nobody has configured it, so
    there is nothing to do and nothing is imported."""
    logging = sys.modules.get("logging")
    if logging is not None:
        log = logging.getLogger("fftfuse.compiler")
        if log.isEnabledFor(level):
            log.log(level, message, *args)


def quiet_numba() -> None:
    """Keep numba's DEBUG records out of the user's root logger, unless its level was set."""
    import logging

    numba_log = logging.getLogger("numba")
    if numba_log.level == logging.NOTSET:
        numba_log.setLevel(logging.WARNING)


def _artifact(ltoir: bytes, meta: ArtifactMeta, form: Form, user_name: str | None, *,
              source: str) -> CompiledCallback:
    return CompiledCallback(
        ltoir=ltoir,
        symbol=meta.extra["symbol"],
        kind=meta.kind,
        form=form,
        element_dtype=meta.element_dtype,
        user_dtype=user_name or meta.element_dtype,
        arch=meta.arch,
        indirect=meta.extra["indirect"],
        toolkit=tuple(meta.extra["toolkit"]),
        source=source,
    )
