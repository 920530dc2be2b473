"""A ctypes binding of the part of cuFFT that fftfuse uses: plans, execution, LTO callbacks.

Nothing loads at import time: the library is found on first use, through cuda-pathfinder
(NVIDIA wheels, conda, system toolkit), falling back to the system loader. Every call's status is
checked; a failure raises :class:`CuFFTError`, which names the call and the status, and to which
callers can add what they were doing.

The LTO callback setter has two exported names: CUDA 12 builds of cuFFT (11.3+) export the
current form as ``__cufftXtSetJITCallback_12_7`` (their ``cufftXtSetJITCallback`` is an older,
incompatible entry point, reached from C only through a header inline that forwards to
``_12_7``); CUDA 13's cuFFT 12 exports it as ``cufftXtSetJITCallback``. The right one is chosen
when the library is loaded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Sequence
from typing import Any, Callable

__all__ = [
    "CUDA_DATA_TYPE",
    "CUFFT_FORWARD",
    "CUFFT_INVERSE",
    "CuFFTError",
    "PLAN_PROPERTY_PATIENT_JIT",
    "PLAN_PROPERTY_MAX_NUM_HOST_THREADS",
    "STATUS_NAMES",
    "create",
    "cufft_version",
    "destroy",
    "format_version",
    "get_size",
    "jit_callback_setter_name",
    "library_path",
    "require_lto_callbacks",
    "set_auto_allocation",
    "set_plan_property_int64",
    "set_stream",
    "set_work_area",
    "xt_exec",
    "xt_make_plan_many",
    "xt_set_jit_callback",
]

# cudaDataType values for the FFT element types (half precision: CUDA_R_16F, CUDA_C_16F).
CUDA_R_32F, CUDA_R_64F, CUDA_R_16F, CUDA_C_32F, CUDA_C_64F, CUDA_C_16F = 0, 1, 2, 4, 5, 6
CUDA_DATA_TYPE = {"float32": CUDA_R_32F, "float64": CUDA_R_64F, "complex64": CUDA_C_32F, "complex128": CUDA_C_64F,
                  "float16": CUDA_R_16F, "complex32": CUDA_C_16F}

CUFFT_FORWARD = -1
CUFFT_INVERSE = 1

# cufftProperty (cuFFT 11.3+): patient JIT spends longer at plan time for faster kernels.
PLAN_PROPERTY_PATIENT_JIT = 1
PLAN_PROPERTY_MAX_NUM_HOST_THREADS = 2

LTO_MIN_VERSION = 11300  # cuFFT 11.3, shipped with CUDA 12.6 Update 2

STATUS_NAMES = (
    "CUFFT_SUCCESS",
    "CUFFT_INVALID_PLAN",
    "CUFFT_ALLOC_FAILED",
    "CUFFT_INVALID_TYPE",
    "CUFFT_INVALID_VALUE",
    "CUFFT_INTERNAL_ERROR",
    "CUFFT_EXEC_FAILED",
    "CUFFT_SETUP_FAILED",
    "CUFFT_INVALID_SIZE",
    "CUFFT_UNALIGNED_DATA",
    "CUFFT_INCOMPLETE_PARAMETER_LIST",
    "CUFFT_INVALID_DEVICE",
    "CUFFT_PARSE_ERROR",
    "CUFFT_NO_WORKSPACE",
    "CUFFT_NOT_IMPLEMENTED",
    "CUFFT_LICENSE_ERROR",
    "CUFFT_NOT_SUPPORTED",
)

# A line on what a status usually means, by status and, where it differs, by call;
# cuFFT itself says no more than the name.
_LTO_CALLS = ("cufftXtSetJITCallback", "cufftXtMakePlanMany")
_STATUS_HINTS = {
    1: "the handle is not a live cuFFT plan",
    2: "cuFFT could not allocate GPU or host memory",
    7: "the CUDA driver or GPU could not be set up",
    13: "no work area was set on a plan made without auto-allocation",
    16: "this cuFFT build does not support the request",
}
_LTO_INTERNAL_ERROR_HINT = (
    "with LTO callbacks this is how cuFFT reports a callback it cannot link (wrong symbol name "
    "or signature, LTO-IR from a newer compiler than its nvJitLink) or a missing nvJitLink/NVRTC"
)


def _hint(call: str, status: int) -> str | None:
    if status == 5 and call in _LTO_CALLS:
        return _LTO_INTERNAL_ERROR_HINT
    if status == 5 and call == "cufftCreate":
        return "often no usable CUDA driver or GPU"
    return _STATUS_HINTS.get(status)


_JIT_SETTER_NAMES = ("__cufftXtSetJITCallback_12_7", "cufftXtSetJITCallback")


class CuFFTError(RuntimeError):
    """A cuFFT call returned a status other than ``CUFFT_SUCCESS``.

    ``call`` is the C function's name, ``status`` the integer status, ``name`` its enum name and
    ``context`` what the caller was doing (see :meth:`with_context`).
    """

    def __init__(self, call: str, status: int, context: str | None = None) -> None:
        self.call = call
        self.status = int(status)
        self.name = status_name(self.status)
        self.context = context
        super().__init__(self._message())

    def with_context(self, context: str) -> CuFFTError:
        """Add what the caller was doing to the message; returns ``self`` for ``raise``."""
        self.context = f"{self.context}; {context}" if self.context else context
        self.args = (self._message(),)
        return self

    def _message(self) -> str:
        message = f"{self.call} failed with {self.name} ({self.status})"
        hint = _hint(self.call, self.status)
        if hint:
            message += f": {hint}"
        if self.context:
            message += f" [{self.context}]"
        return message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.call, self.status, self.context))


def status_name(status: int) -> str:
    """The ``cufftResult`` enum name of ``status`` (``"CUFFT_INVALID_PLAN"`` for 1)."""
    if 0 <= status < len(STATUS_NAMES):
        return STATUS_NAMES[status]
    return f"unknown cufftResult {status}"


def format_version(version: int) -> str:
    """``11401`` -> ``"11.4.1"``, as cuFFT encodes its version."""
    return f"{version // 1000}.{version % 1000 // 100}.{version % 100}"


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _load_dynamic(name: str, fallback_names: Sequence[str]) -> ctypes.CDLL:
    """Load an NVIDIA library via cuda-pathfinder, else by the system loader's search."""
    problems = []
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib

        loaded = load_nvidia_dynamic_lib(name)
        if loaded.abs_path:
            return ctypes.CDLL(loaded.abs_path)
        problems.append(f"cuda-pathfinder found {name} without a path")
    except Exception as exc:  # ImportError or one of pathfinder's not-found errors
        problems.append(f"cuda-pathfinder: {exc}")
    candidates = [ctypes.util.find_library(name), *fallback_names]
    for candidate in filter(None, candidates):
        try:
            return ctypes.CDLL(candidate)
        except OSError as exc:
            problems.append(str(exc))
    raise RuntimeError(f"Could not load the {name} shared library. " + " | ".join(problems))


@functools.lru_cache(maxsize=None)
def _library() -> ctypes.CDLL:
    return _load_dynamic("cufft", ("libcufft.so.12", "libcufft.so.11", "libcufft.so"))


def library_path() -> str:
    """Path of the loaded libcufft (loads it)."""
    return str(_library()._name)


_c_int_p = ctypes.POINTER(ctypes.c_int)
_c_ll_p = ctypes.POINTER(ctypes.c_longlong)
_c_size_t_p = ctypes.POINTER(ctypes.c_size_t)
_c_void_pp = ctypes.POINTER(ctypes.c_void_p)
_handle = ctypes.c_int  # cufftHandle is a typedef of int

# C prototypes (all return cufftResult, an int).
_PROTOTYPES: dict[str, tuple[Any, ...]] = {
    "cufftGetVersion": (_c_int_p,),
    "cufftCreate": (_c_int_p,),
    "cufftDestroy": (_handle,),
    "cufftSetStream": (_handle, ctypes.c_void_p),
    "cufftSetAutoAllocation": (_handle, ctypes.c_int),
    "cufftSetWorkArea": (_handle, ctypes.c_void_p),
    "cufftGetSize": (_handle, _c_size_t_p),
    "cufftXtMakePlanMany": (
        _handle, ctypes.c_int, _c_ll_p,  # plan, rank, n
        _c_ll_p, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_int,  # inembed, istride, idist, type
        _c_ll_p, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_int,  # onembed, ostride, odist, type
        ctypes.c_longlong, _c_size_t_p, ctypes.c_int,  # batch, workSize, executiontype
    ),
    "cufftXtExec": (_handle, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int),
    "cufftSetPlanPropertyInt64": (_handle, ctypes.c_int, ctypes.c_longlong),
    # plan, symbol name, LTO-IR, its size, cufftXtCallbackType, caller_info (void*[n_gpus])
    "cufftXtSetJITCallback": (_handle, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, _c_void_pp),
}
_PROTOTYPES["__cufftXtSetJITCallback_12_7"] = _PROTOTYPES["cufftXtSetJITCallback"]

@functools.lru_cache(maxsize=None)
@functools.lru_cache(maxsize=None)  # resolved and typed once: execution calls it every time
def _function(name: str) -> Callable[..., int] | None:
    """The bound C function ``name``, or None when this libcufft does not export it."""
    try:
        fn = getattr(_library(), name)
    except AttributeError:
        return None
    fn.argtypes = _PROTOTYPES[name]
    fn.restype = ctypes.c_int
    return fn


def _call(name: str, *args: Any, label: str | None = None) -> None:
    """Call the C function ``name``; a failure is reported under ``label`` (default: ``name``)."""
    fn = _function(name)
    if fn is None:
        raise RuntimeError(f"{library_path()} does not export {name}")
    status = fn(*args)
    if status != 0:
        raise CuFFTError(label or name, status)


def _resolve_jit_setter(has_symbol: Callable[[str], bool], version: int) -> str:
    """Which exported name takes the current LTO callback form, for a cuFFT of ``version``."""
    for name in _JIT_SETTER_NAMES:
        if has_symbol(name):
            # Before cuFFT 12, the plainly named export is the older, incompatible form.
            if name == "cufftXtSetJITCallback" and version < 12000:
                break
            return name
    raise RuntimeError(
        f"cuFFT {format_version(version)} has no usable LTO callback setter "
        f"(looked for {' or '.join(_JIT_SETTER_NAMES)}); "
        f"LTO callbacks need cuFFT 11.3 / CUDA 12.6 Update 2 or newer."
    )


@functools.lru_cache(maxsize=None)
def jit_callback_setter_name() -> str:
    """The exported name bound as ``cufftXtSetJITCallback`` in this process."""
    return _resolve_jit_setter(lambda name: _function(name) is not None, cufft_version())


# ---------------------------------------------------------------------------------------------
# Versions and requirements
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def cufft_version() -> int:
    """cuFFT's version number, e.g. 11401 for cuFFT 11.4.1, 12000 for 12.0.0 (needs no GPU)."""
    version = ctypes.c_int()
    _call("cufftGetVersion", ctypes.byref(version))
    return version.value


def _can_load(name: str, fallback_names: Sequence[str]) -> str | None:
    """None when the library loads, else why not."""
    try:
        _load_dynamic(name, fallback_names)
    except RuntimeError as exc:
        return str(exc)
    return None


def _lto_problem(version: int, missing: dict[str, str]) -> str | None:
    """What stops LTO callbacks, given cuFFT's version and the libraries that failed to load."""
    if version < LTO_MIN_VERSION:
        return (
            f"LTO callbacks need cuFFT 11.3 / CUDA 12.6 Update 2 or newer; found cuFFT "
            f"{format_version(version)} ({library_path()})."
        )
    if missing:
        names = " and ".join(missing)
        details = "\n".join(f"  {name}: {why}" for name, why in missing.items())
        return (
            f"cuFFT links LTO callbacks at plan time with {names}, which could not be loaded. "
            f"Install the matching wheels (nvidia-nvjitlink-cu12 / nvidia-cuda-nvrtc-cu12 for "
            f"CUDA 12, nvidia-nvjitlink / nvidia-cuda-nvrtc for CUDA 13) or a CUDA toolkit.\n{details}"
        )
    return None


@functools.lru_cache(maxsize=None)
def _lto_callback_problem() -> str | None:
    try:
        version = cufft_version()
    except (RuntimeError, CuFFTError) as exc:
        return f"cuFFT is not usable: {exc}"
    # Loading them here also helps cuFFT: its own dlopen by soname finds an already-loaded
    # library, so wheel-installed copies off the default search path are used.
    missing = {}
    for name, fallbacks in (("nvJitLink", ("libnvJitLink.so",)), ("nvrtc", ("libnvrtc.so",))):
        why = _can_load(name, fallbacks)
        if why is not None:
            missing[name] = why
    problem = _lto_problem(version, missing)
    if problem is None:
        try:
            jit_callback_setter_name()
        except RuntimeError as exc:
            problem = str(exc)
    return problem


def require_lto_callbacks() -> None:
    """Raise RuntimeError, saying why, if cuFFT here cannot take LTO callbacks.

    Checks once per process: cuFFT >= 11.3, an LTO callback setter, and loadable nvJitLink and
    NVRTC libraries (cuFFT needs both at plan time).
    """
    problem = _lto_callback_problem()
    if problem is not None:
        raise RuntimeError(problem)


# ---------------------------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------------------------

# Buffers handed to cuFFT by pointer (LTO-IR, symbol, caller_info array), held until the plan is
# destroyed: cuFFT may read them again when the plan is made, after the setter has returned.
_keepalive: dict[int, list[object]] = {}


def create() -> int:
    """``cufftCreate``: a new, empty plan handle (needs a usable GPU)."""
    handle = ctypes.c_int()
    _call("cufftCreate", ctypes.byref(handle))
    return handle.value


def destroy(plan: int) -> None:
    """``cufftDestroy``, then release what was kept alive for the plan."""
    try:
        _call("cufftDestroy", plan)
    finally:
        _keepalive.pop(plan, None)


def set_stream(plan: int, stream: int) -> None:
    """``cufftSetStream``: ``stream`` is a ``cudaStream_t`` as an integer (0: legacy default)."""
    _call("cufftSetStream", plan, stream or None)


def set_auto_allocation(plan: int, auto_allocate: bool) -> None:
    """``cufftSetAutoAllocation``: call before making the plan to supply the work area yourself."""
    _call("cufftSetAutoAllocation", plan, int(bool(auto_allocate)))


def set_work_area(plan: int, pointer: int) -> None:
    """``cufftSetWorkArea``: a device pointer of at least the plan's work size."""
    _call("cufftSetWorkArea", plan, pointer or None)


def get_size(plan: int) -> int:
    """``cufftGetSize``: the work area size in bytes."""
    size = ctypes.c_size_t()
    _call("cufftGetSize", plan, ctypes.byref(size))
    return size.value


def _ll_array(values: Sequence[int] | None) -> Any:
    return None if values is None else (ctypes.c_longlong * len(values))(*values)


def xt_make_plan_many(
    plan: int,
    shape: Sequence[int],
    *,
    input_type: int,
    output_type: int,
    execution_type: int,
    batch: int = 1,
    inembed: Sequence[int] | None = None,
    istride: int = 1,
    idist: int = 0,
    onembed: Sequence[int] | None = None,
    ostride: int = 1,
    odist: int = 0,
) -> int:
    """``cufftXtMakePlanMany`` (64-bit sizes); returns the work area size in bytes.

    Types are ``cudaDataType`` values (:data:`CUDA_DATA_TYPE`). With ``inembed``/``onembed``
    None, cuFFT uses the basic contiguous layout and ignores the strides and distances.
    """
    rank = len(shape)
    if rank not in (1, 2, 3):
        raise ValueError(f"cuFFT plans have rank 1, 2 or 3, got shape {tuple(shape)}")
    for name, embed in (("inembed", inembed), ("onembed", onembed)):
        if embed is not None and len(embed) != rank:
            raise ValueError(f"{name} must have {rank} entries, got {tuple(embed)}")
    work_size = ctypes.c_size_t()
    _call(
        "cufftXtMakePlanMany",
        plan, rank, _ll_array(shape),
        _ll_array(inembed), istride, idist, input_type,
        _ll_array(onembed), ostride, odist, output_type,
        batch, ctypes.byref(work_size), execution_type,
    )  # fmt: skip
    return work_size.value


def xt_exec(plan: int, input_pointer: int, output_pointer: int, direction: int = CUFFT_FORWARD) -> None:
    """``cufftXtExec`` on the plan's stream; ``direction`` is ignored by R2C and C2R plans."""
    _call("cufftXtExec", plan, input_pointer or None, output_pointer or None, direction)


def xt_set_jit_callback(
    plan: int,
    ltoir: bytes,
    callback_type: int,
    *,
    symbol: str | None = None,
    caller_info: int | Sequence[int] | None = None,
) -> None:
    """``cufftXtSetJITCallback``: attach an LTO callback to a plan not yet made.

    ``callback_type`` is a ``cufftXtCallbackType`` (see ``fftfuse_compiler.dtypes.callback_type_code``).
    ``symbol`` None lets cuFFT look for its prototype's mangled name. ``caller_info`` is the device
    pointer the callback receives as ``callerInfo`` (one per GPU, as a sequence), fixed from here on.
    """
    data = bytes(ltoir)
    name = None if symbol is None else symbol.encode()
    if caller_info is None:
        info = None
    else:
        pointers = [caller_info] if isinstance(caller_info, int) else list(caller_info)
        info = (ctypes.c_void_p * len(pointers))(*[p or None for p in pointers])
    setter = jit_callback_setter_name()
    _call(setter, plan, name, data, len(data), callback_type, info, label="cufftXtSetJITCallback")
    _keepalive.setdefault(plan, []).extend((data, name, info))


def set_plan_property_int64(plan: int, prop: int, value: int) -> bool:
    """``cufftSetPlanPropertyInt64``; returns False (and does nothing) where cuFFT lacks it."""
    if _function("cufftSetPlanPropertyInt64") is None:
        return False
    _call("cufftSetPlanPropertyInt64", plan, prop, value)
    return True
