"""A persistent cache of whole numba-cuda kernels, keyed by the kernel's content fingerprint.

:mod:`fftfuse_compiler.link_cache` skips the nvJitLink link of a kernel that calls a device FFT,
but numba still types and lowers the kernel in every process to produce the LTO-IR that key
is made of (0.6 to 0.9 s for a small kernel). This cache keys the kernel by what it is made
from instead, so a warm process loads the linked cubin and launches it without numba typing,
lowering or linking anything.

What is in the key (:func:`kernel_key`): the kernel's Python function by content
(:func:`~fftfuse_compiler.fingerprint.function_fingerprint`: its code, and the globals,
closure values and defaults it reads, by value; a device FFT by its description and the
versions of the code generator, through ``__fftfuse_fingerprint__``), the argument types,
every target option of the dispatcher (``fastmath``, ``opt``, ``lineinfo``, ``max_registers``,
``launch_bounds``, ``lto``, ...; linked files by the SHA-256 of their bytes), the GPU's compute
capability, numba-cuda's version, numba's code-generation settings (``NUMBA_OPT``, debug info,
bounds checking), nvJitLink's version, the toolchain stamp and :data:`LAYOUT` (raised when what
is stored changes).

Why an entry is never stale: every input numba compiles the kernel from is in the key, by
value, so a changed kernel, global, closure value, FFT description, option, linked file or
toolchain is another key. A value the fingerprint cannot read by value (a list, an object of
the user's) makes the kernel uncacheable: it compiles as before. What the key cannot see:
the implementations of numba extensions (``@overload``, ``@intrinsic``, ``@lower_builtin``)
a kernel calls are numba's registrations, not values the kernel reads: they are keyed by name
only (and through the toolchain stamp for numba's own, :data:`LAYOUT` and the device FFT's
lowering revision for fftfuse's).

What is stored: the linked cubin (the entry's payload) and, in the entry's JSON metadata, the
few fields numba-cuda needs to launch it (entry name, register limit, cooperative launch,
shared-memory carveout, ...). No pickle: the store serves raw bytes only, so a tampered entry
can at worst be a wrong cubin, which the store's checksum refuses. A hit is rebuilt with
numba-cuda's own ``CUDACodeLibrary._rebuild`` and ``_Kernel._rebuild`` (as numba's disk cache
does), bound to the GPU, and registered on the dispatcher as numba registers a compiled kernel.

What is not cached (compiled as before): kernels that call no device FFT, device functions,
``debug=True`` kernels (their exception reporting holds Python objects), kernels with
``extensions`` (Python objects run at launch), kernels linking CUDA C++ sources (the headers
they include are not in the key), NRT or setup-function kernels, launch-config-sensitive
kernels, dispatchers with numba's own ``cache=True``, and anything uncacheable. Any failure to
rebuild an entry falls back to compiling (the fresh kernel replaces the entry).

:func:`install` wraps ``CUDADispatcher.compile`` once per process; ``nvmath.device`` installs it
for kernels that use a device FFT. ``FFTFUSE_CACHE=0`` turns the disk layer off (as for every
artifact of the store): a fresh process then compiles.
"""

from __future__ import annotations

from typing import Any, Callable

from fftfuse_cache import ArtifactMeta, artifact_key, default_store, keep_artifact, stored_artifact

from .fingerprint import UncacheableError, function_fingerprint
from .link_cache import file_digest, object_code

__all__ = ["LAYOUT", "NotStorable", "install", "kernel_key", "current_cc", "compile_through_cache", "reduce_kernel", "rebuild_kernel", "stats"]

#: The layout of a stored kernel; raised whenever what is stored or how it is rebuilt changes.
LAYOUT = 1

TARGET, KIND = "numba-kernel", "kernel"
_EXPECT = {"target": TARGET, "kind": KIND}

# numba settings that change the code of every kernel (read off numba.cuda.core.config).
_CONFIG_NAMES = ("OPT", "DEBUGINFO_DEFAULT", "CUDA_DEBUGINFO_DEFAULT", "BOUNDSCHECK", "CUDA_ENABLE_NRT")

_selects: list[Callable[[Any], bool]] = []
_stats = {"hits": 0, "misses": 0, "failed_rebuilds": 0}


class NotStorable(Exception):
    """A compiled kernel whose launch needs more than a cubin and plain fields."""


def stats() -> dict[str, int]:
    """Hits, misses and failed rebuilds of the kernel cache in this process."""
    return dict(_stats)


def _selected(obj: Any) -> bool:
    return any(select(obj) for select in _selects)


def _logger() -> Any:
    import logging  # only when there is something to report

    return logging.getLogger("fftfuse.cache")


# -- the key ----------------------------------------------------------------------------------------

def _option_value(name: str, value: Any) -> Any:
    """A target option as a JSON value that identifies it; refuses what it cannot identify."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_option_value(name, v) for v in value]
    if isinstance(value, (set, frozenset)):  # fastmath={"nsz", "arcp"}: no order
        return sorted(map(str, value))
    raise UncacheableError(f"target option {name}={value!r} cannot be fingerprinted")


def _link_digest(item: Any) -> list[str]:
    is_path = isinstance(item, str) or hasattr(item, "__fspath__")
    if type(item).__name__ == "CUSource" or (is_path and str(item).endswith(".cu")):
        raise UncacheableError("a linked CUDA C++ source is compiled with headers its bytes do not name")
    return file_digest(item)


def current_cc() -> tuple[Any, ...]:
    """The current GPU's target as numba-cuda's code library names it (``(9, 0, "a")`` for sm_90):
    the key of its cubin cache, so a rebuilt kernel finds its cubin where numba looks."""
    from numba.cuda.codegen import CUDACodeLibrary

    return tuple(CUDACodeLibrary._ensure_cc(None, None))  # no library yet: the rule reads the device only


def _numba_config() -> dict[str, str]:
    from numba.cuda.core import config

    return {name: repr(getattr(config, name, None)) for name in _CONFIG_NAMES}


def kernel_key(py_func: Any, argtypes: tuple[Any, ...], targetoptions: dict[str, Any], cc: tuple[Any, ...],
               select: Callable[[Any], bool]) -> str | None:
    """The store key of the kernel numba compiles from ``py_func`` for ``argtypes``, ``targetoptions``
    and target ``cc`` (:func:`current_cc`); None where the kernel uses nothing ``select`` accepts (neither an
    object met by its fingerprint through ``__fftfuse_fingerprint__`` nor a linked file).

    Raises :class:`UncacheableError` where the kernel cannot be keyed by value.
    """
    found: list[Any] = []
    fingerprint = function_fingerprint(py_func, found)
    link = list(targetoptions.get("link") or ())
    if not any(select(obj) for obj in found) and not any(select(item) for item in link):
        return None
    if targetoptions.get("debug"):
        raise UncacheableError("debug kernels report exceptions through Python objects numba keeps with them")
    if targetoptions.get("extensions"):
        raise UncacheableError("extensions are Python objects numba runs at launch")
    options = {name: _option_value(name, value) for name, value in targetoptions.items()
               if name not in ("link", "extensions")}
    import numba_cuda

    from .toolchain import nvjitlink_version, toolchain_stamp

    return artifact_key(
        target=TARGET, layout=LAYOUT, function=fingerprint,
        argtypes=[f"{type(t).__module__}.{type(t).__qualname__}:{t!r}" for t in argtypes],
        options=options, files=sorted(_link_digest(item) for item in link), cc=[str(c) for c in cc],
        numba_cuda=str(numba_cuda.__version__), config=_numba_config(), nvjitlink=list(nvjitlink_version()),
        toolchain=toolchain_stamp(),
    )


# -- what is stored ---------------------------------------------------------------------------------

def _json_options(options: dict[str, Any]) -> dict[str, Any]:
    return {str(k): sorted(map(str, v)) if isinstance(v, (set, frozenset)) else v for k, v in options.items()}


def reduce_kernel(kernel: Any, cc: tuple[Any, ...]) -> tuple[bytes, ArtifactMeta]:
    """The cubin of a compiled numba-cuda kernel for ``cc`` and the fields its launch needs.

    Raises :class:`NotStorable` for a kernel whose launch needs more (see the module's docstring).
    """
    from numba.cuda.memory_management.nrt import NRT_LIBRARY

    from .toolchain import toolchain_stamp

    library = kernel.library
    if kernel.launch_config_sensitive or kernel.debug or kernel.extensions:
        raise NotStorable("the kernel depends on its launch configuration, debug mode or extensions")
    if library._setup_functions or library._teardown_functions or NRT_LIBRARY in library._linking_files:
        raise NotStorable("the kernel's module needs set-up functions run when it is loaded")
    if library.referenced_objects:
        raise NotStorable("the kernel refers to global device arrays")
    cubin = library.get_cubin(cc)
    info = library.get_linkerinfo(cc)
    extra = {
        "layout": LAYOUT, "library": str(library.name), "signature": [str(t) for t in kernel.argument_types],
        "cooperative": bool(kernel.cooperative), "lineinfo": bool(kernel.lineinfo),
        "carveout": kernel.shared_memory_carveout, "max_registers": library._max_registers,
        "nvvm_options": _json_options(dict(library._nvvm_options or {})), "lto": bool(library._lto),
        "use_cooperative": bool(library.use_cooperative), "needs_cudadevrt": bool(library.needs_cudadevrt),
        "info_log": str(info or "")[:4096],
    }
    meta = ArtifactMeta(TARGET, KIND, arch=int(cc[0]) * 10 + int(cc[1]), function=str(kernel.entry_name),
                        toolchain=toolchain_stamp(), extra=extra)
    return bytes(getattr(cubin, "code", cubin)), meta


def rebuild_kernel(payload: bytes, meta: ArtifactMeta, argtypes: tuple[Any, ...], cc: tuple[Any, ...]) -> Any:
    """A numba-cuda kernel from a stored cubin and its fields, for ``argtypes`` on ``cc`` (not yet bound)."""
    from numba.cuda import types
    from numba.cuda.codegen import CUDACodeLibrary
    from numba.cuda.dispatcher import _Kernel

    extra = meta.extra
    if extra.get("layout") != LAYOUT or meta.function is None:
        raise ValueError(f"a kernel entry of layout {extra.get('layout')!r}; this version reads {LAYOUT}")
    if list(extra["signature"]) != [str(t) for t in argtypes]:  # the key says so; a cheap second look
        raise ValueError(f"the entry is a kernel of {extra['signature']}, not of {[str(t) for t in argtypes]}")
    entry = str(meta.function)
    # The cubin is linked already: the library links nothing (no linking files), it only loads.
    library = CUDACodeLibrary._rebuild(
        codegen=None, name=str(extra["library"]), entry_name=entry, llvm_strs=[], ptx_cache={},
        cubin_cache={cc: object_code(payload)}, linkerinfo_cache={cc: str(extra.get("info_log", ""))},
        max_registers=extra["max_registers"], nvvm_options=dict(extra["nvvm_options"]),
        needs_cudadevrt=bool(extra["needs_cudadevrt"]), nrt=False, use_cooperative=bool(extra["use_cooperative"]),
        lto=bool(extra["lto"]),
    )
    return _Kernel._rebuild(
        cooperative=bool(extra["cooperative"]), name=entry, signature=types.void(*argtypes), codelibrary=library,
        debug=False, lineinfo=bool(extra["lineinfo"]), call_helper=None, extensions=[],
        shared_memory_carveout=extra["carveout"], launch_config_sensitive=False,
    )


# -- the compile ------------------------------------------------------------------------------------

def compile_through_cache(dispatcher: Any, sig: Any, compile_now: Callable[[], Any], *, cc: tuple[Any, ...] | None = None,
                          store: Any = None, bind: bool = True) -> Any:
    """``dispatcher``'s kernel for ``sig``: from the store where it is there, else ``compile_now()``'s
    (numba's compile, which registers the kernel itself), stored for the next process.

    ``cc``: the target (default: :func:`current_cc`); ``store``: default the project's;
    ``bind``: load a rebuilt kernel on the GPU before serving it (a cubin the driver refuses then
    falls back to compiling).
    """
    from numba.cuda.core import sigutils
    from numba.cuda.core.caching import NullCache

    argtypes, _ = sigutils.normalize_signature(sig)
    if (not _selects or dispatcher.specialized or argtypes in dispatcher.overloads
            or not isinstance(dispatcher._cache, NullCache) or not dispatcher._can_compile
            or dispatcher.targetoptions.get("device")):
        return compile_now()  # numba answers these itself (or keeps its own cache)
    try:
        if cc is None:
            cc = current_cc()
        key = kernel_key(dispatcher.py_func, argtypes, dispatcher.targetoptions, cc, _selected)
    except UncacheableError as exc:
        _logger().debug("kernel %s is compiled without the kernel cache: %s", dispatcher.py_func, exc.reason)
        return compile_now()
    except Exception:  # an unforeseen value or numba change must never stop a kernel from compiling
        _logger().debug("kernel cache key of %s failed", dispatcher.py_func, exc_info=True)
        return compile_now()
    if key is None:
        return compile_now()
    if store is None:
        store = default_store()
    found = stored_artifact(store, key, _EXPECT)
    if found is not None:
        try:
            kernel = rebuild_kernel(found.payload, found.meta, argtypes, cc)
            if bind:
                kernel.bind()
        except Exception:  # a numba upgrade, a damaged field: compile, and the entry is replaced
            _stats["failed_rebuilds"] += 1
            _logger().debug("kernel cache entry %s could not be rebuilt", key, exc_info=True)
        else:
            dispatcher.add_overload(kernel, argtypes)  # what numba's compile does with a kernel it built
            _stats["hits"] += 1
            return kernel
    kernel = compile_now()
    _stats["misses"] += 1
    try:
        payload, meta = reduce_kernel(kernel, cc)
        keep_artifact(store, key, payload, meta)
    except Exception:  # NotStorable, or a store that refuses: the kernel runs, the next process compiles
        _logger().debug("kernel %s is not kept in the kernel cache", dispatcher.py_func, exc_info=True)
    return kernel


def install(select: Callable[[Any], bool]) -> None:
    """Serve ``CUDADispatcher.compile`` from the store for kernels using an object ``select`` accepts."""
    if select in _selects:
        return
    _selects.append(select)
    if len(_selects) > 1:
        return
    from numba.cuda.core.compiler_lock import global_compiler_lock
    from numba.cuda.dispatcher import CUDADispatcher

    original = CUDADispatcher.compile

    def compile(self: Any, sig: Any) -> Any:
        with global_compiler_lock:  # as numba's compile: overloads are registered under it
            return compile_through_cache(self, sig, lambda: original(self, sig))

    compile.__wrapped__ = original  # type: ignore[attr-defined]
    compile.__doc__ = original.__doc__
    CUDADispatcher.compile = compile
