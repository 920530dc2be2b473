"""A ctypes binding of the part of NVIDIA's libmathdx that builds cuFFTDx device functions.

libmathdx (pip wheels ``nvidia-libmathdx-cu12`` 0.3.x, ``nvidia-libmathdx-cu13`` 0.4.x) turns a
cuFFTDx descriptor into traits and LTO-IR on the host, with NVRTC: no GPU or driver is needed.
Only the C functions both versions export are bound.

Nothing loads at import time. The library is looked for, in order, at ``$FFTFUSE_LIBMATHDX``
(a file), in ``nvidia/cu13/lib`` and ``nvidia/cu12/lib`` under every ``sys.path`` entry (pip
installs, ``pip install --target`` included, which cuda-pathfinder may miss), through
cuda-pathfinder, then by the system loader. Every call's status is checked; a failure raises
:class:`MathDxError` with the call, the status and libmathdx's own last error text.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from typing import Any, Callable

__all__ = [
    "MathDxError",
    "Descriptor",
    "Code",
    "STATUS_NAMES",
    "cufftdx_version",
    "library_path",
    "version",
]

ENV_LIBRARY = "FFTFUSE_LIBMATHDX"

STATUS_NAMES = (
    "COMMONDX_SUCCESS",
    "COMMONDX_INVALID_VALUE",
    "COMMONDX_INTERNAL_ERROR",
    "COMMONDX_COMPILATION_ERROR",
    "COMMONDX_CUFFT_ERROR",
    "COMMONDX_FILE_ERROR",
)

# libcommondx.h: commondxOption, commondxCodeContainer
OPTION_TARGET_SM = 1
OPTION_CODE_CONTAINER = 2
OPTION_CODE_ISA = 3
OPTION_EXTRA_NVRTC_ARGS = 4
CODE_CONTAINER_LTOIR = 0
ARCH_MODIFIER_ARCH_SPECIFIC = 1

# libcufftdx.h: cufftdxOperatorType
OP_SIZE, OP_DIRECTION, OP_TYPE, OP_PRECISION, OP_SM, OP_EXECUTION = 0, 1, 2, 3, 4, 5
OP_FFTS_PER_BLOCK, OP_ELEMENTS_PER_THREAD, OP_BLOCK_DIM, OP_REAL_FFT_OPTIONS, OP_API = 6, 7, 8, 9, 10
# cufftdxKnobType
KNOB_ELEMENTS_PER_THREAD, KNOB_FFTS_PER_BLOCK = 0, 1
# cufftdxTraitType
TRAIT_VALUE_TYPE, TRAIT_INPUT_TYPE, TRAIT_OUTPUT_TYPE, TRAIT_IMPLICIT_TYPE_BATCHING = 0, 1, 2, 3
TRAIT_ELEMENTS_PER_THREAD, TRAIT_STORAGE_SIZE, TRAIT_STRIDE, TRAIT_BLOCK_DIM = 4, 5, 6, 7
TRAIT_SHARED_MEMORY_SIZE, TRAIT_FFTS_PER_BLOCK, TRAIT_SYMBOL_NAME = 8, 9, 10
TRAIT_INPUT_LENGTH, TRAIT_OUTPUT_LENGTH = 11, 12
TRAIT_INPUT_ELEMENTS_PER_THREAD, TRAIT_OUTPUT_ELEMENTS_PER_THREAD, TRAIT_SUGGESTED_FFTS_PER_BLOCK = 13, 14, 15


class MathDxError(RuntimeError):
    """A libmathdx call returned a status other than ``COMMONDX_SUCCESS``.

    ``call`` is the C function, ``status`` the integer status, ``name`` its enum name,
    ``detail`` libmathdx's last error text (compilation errors) and ``context`` what the
    caller was doing.
    """

    def __init__(self, call: str, status: int, detail: str | None = None, context: str | None = None) -> None:
        self.call = call
        self.status = int(status)
        self.name = STATUS_NAMES[self.status] if 0 <= self.status < len(STATUS_NAMES) else f"status {status}"
        self.detail = detail
        self.context = context
        super().__init__(self._message())

    def with_context(self, context: str) -> MathDxError:
        """Add what the caller was doing to the message; returns ``self`` for ``raise``."""
        self.context = f"{self.context}; {context}" if self.context else context
        self.args = (self._message(),)
        return self

    def _message(self) -> str:
        message = f"{self.call} failed with {self.name} ({self.status})"
        if self.detail:
            message += f": {self.detail.strip()}"
        if self.context:
            message += f" [{self.context}]"
        return message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.call, self.status, self.detail, self.context))


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

_SONAME = "libmathdx.so.0"
# The package extras that install libmathdx with its CCCL headers, one per CUDA major version.
INSTALL_HINT = "pip install \"fftfuse[cu12,dx12]\" (CUDA 12) or \"fftfuse[cu13,dx13]\" (CUDA 13)"


def candidate_paths() -> list[str]:
    """Where libmathdx is looked for before cuda-pathfinder and the system loader, in order."""
    paths = []
    override = os.environ.get(ENV_LIBRARY)
    if override:
        paths.append(override)
    for entry in sys.path:
        for flavour in ("cu13", "cu12"):
            path = os.path.join(os.path.abspath(entry or "."), "nvidia", flavour, "lib", _SONAME)
            if os.path.isfile(path) and path not in paths:
                paths.append(path)
    return paths


def _preload_nvrtc() -> None:
    """Load NVRTC first: libmathdx needs libnvrtc.so.N but only looks for it in /usr/local/cuda, while
    pip puts it in another folder. Once loaded, the dynamic loader reuses it by its soname."""
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib

        load_nvidia_dynamic_lib("nvrtc")
    except Exception:  # not installed this way: libmathdx's own search may still find it
        pass


@functools.lru_cache(maxsize=None)
def _library() -> ctypes.CDLL:
    _preload_nvrtc()
    problems = []
    override = os.environ.get(ENV_LIBRARY)
    for path in candidate_paths():
        try:
            return ctypes.CDLL(path)
        except OSError as exc:
            if path == override:  # an explicit choice that fails is an error, not a hint to look elsewhere
                raise RuntimeError(f"${ENV_LIBRARY}={override} could not be loaded: {exc}") from exc
            problems.append(str(exc))
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib

        loaded = load_nvidia_dynamic_lib("mathdx")
        if loaded.abs_path:
            return ctypes.CDLL(loaded.abs_path)
    except Exception as exc:  # ImportError, or pathfinder does not know or find it
        problems.append(f"cuda-pathfinder: {exc}")
    try:
        return ctypes.CDLL(_SONAME)
    except OSError as exc:
        problems.append(str(exc))
    raise RuntimeError(
        "Could not load libmathdx, which nvmath.device needs to build cuFFTDx functions. Install it with "
        f"{INSTALL_HINT} (the nvidia-libmathdx-cu12 / -cu13 wheels), or point ${ENV_LIBRARY} at "
        "libmathdx.so.0. Tried: " + " | ".join(problems)
    )


def library_path() -> str:
    """Path of the loaded libmathdx (loads it)."""
    return str(_library()._name)


_ll = ctypes.c_longlong
_ll_p = ctypes.POINTER(ctypes.c_longlong)
_int_p = ctypes.POINTER(ctypes.c_int)
_size_p = ctypes.POINTER(ctypes.c_size_t)

_PROTOTYPES: dict[str, tuple[Any, ...]] = {
    "mathdxGetVersion": (_int_p,),
    "cufftdxGetVersion": (_int_p, _int_p, _int_p),
    "commondxCreateCode": (_ll_p,),
    "commondxDestroyCode": (_ll,),
    "commondxSetCodeOptionInt64": (_ll, ctypes.c_int, _ll),
    "commondxSetCodeOptionInt64s": (_ll, ctypes.c_int, ctypes.c_size_t, _ll_p),
    "commondxSetCodeOptionStr": (_ll, ctypes.c_int, ctypes.c_char_p),
    "commondxGetCodeOptionInt64": (_ll, ctypes.c_int, _ll_p),
    "commondxGetCodeNumLTOIRs": (_ll, _size_p),
    "commondxGetCodeLTOIRSize": (_ll, _size_p),
    "commondxGetCodeLTOIR": (_ll, ctypes.c_size_t, ctypes.c_void_p),
    "commondxGetLastErrorStrSize": (_size_p,),
    "commondxGetLastErrorStr": (_int_p, ctypes.c_size_t, ctypes.c_char_p),
    "cufftdxCreateDescriptor": (_ll_p,),
    "cufftdxDestroyDescriptor": (_ll,),
    "cufftdxSetOperatorInt64": (_ll, ctypes.c_int, _ll),
    "cufftdxSetOperatorInt64s": (_ll, ctypes.c_int, ctypes.c_size_t, _ll_p),
    "cufftdxIsSupported": (_ll, _int_p),
    "cufftdxGetKnobInt64Size": (_ll, ctypes.c_size_t, _int_p, _size_p),
    "cufftdxGetKnobInt64s": (_ll, ctypes.c_size_t, _int_p, ctypes.c_size_t, _ll_p),
    "cufftdxGetTraitInt64": (_ll, ctypes.c_int, _ll_p),
    "cufftdxGetTraitInt64s": (_ll, ctypes.c_int, ctypes.c_size_t, _ll_p),
    "cufftdxGetTraitStrSize": (_ll, ctypes.c_int, _size_p),
    "cufftdxGetTraitStr": (_ll, ctypes.c_int, ctypes.c_size_t, ctypes.c_char_p),
    "cufftdxGetTraitCommondxDataType": (_ll, ctypes.c_int, _int_p),
    "cufftdxFinalizeCode": (_ll, _ll),
}


@functools.lru_cache(maxsize=None)
def _function(name: str) -> Callable[..., int]:
    try:
        fn = getattr(_library(), name)
    except AttributeError:
        raise RuntimeError(f"{library_path()} does not export {name}: libmathdx 0.3 or newer is needed") from None
    fn.argtypes = _PROTOTYPES[name]
    fn.restype = ctypes.c_int
    return fn


def _last_error() -> str | None:
    """libmathdx's text for this thread's last error (compilation errors), if it has one."""
    size = ctypes.c_size_t()
    if _function("commondxGetLastErrorStrSize")(ctypes.byref(size)) != 0 or size.value <= 1:
        return None
    buffer = ctypes.create_string_buffer(size.value)
    code = ctypes.c_int()
    if _function("commondxGetLastErrorStr")(ctypes.byref(code), size.value, buffer) != 0:
        return None
    return buffer.value.decode(errors="replace")


def _call(name: str, *args: Any) -> None:
    status = _function(name)(*args)
    if status != 0:
        raise MathDxError(name, status, _last_error() if status == 3 else None)


@functools.lru_cache(maxsize=None)
def version() -> tuple[int, int, int]:
    """libmathdx's (major, minor, patch), e.g. (0, 3, 1) (needs no GPU)."""
    value = ctypes.c_int()
    _call("mathdxGetVersion", ctypes.byref(value))
    v = value.value  # 1000 * major + 100 * minor + patch
    return v // 1000, v % 1000 // 100, v % 100


@functools.lru_cache(maxsize=None)
def cufftdx_version() -> tuple[int, int, int]:
    """The version of the cuFFTDx that libmathdx generates code from."""
    major, minor, patch = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    _call("cufftdxGetVersion", ctypes.byref(major), ctypes.byref(minor), ctypes.byref(patch))
    return major.value, minor.value, patch.value


class Descriptor:
    """An owned ``cufftdxDescriptor``: set operators, read traits, generate code; destroyed on close."""

    def __init__(self) -> None:
        handle = ctypes.c_longlong()
        _call("cufftdxCreateDescriptor", ctypes.byref(handle))
        self.handle = handle.value

    def __enter__(self) -> Descriptor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            _call("cufftdxDestroyDescriptor", handle)

    def set(self, operator: int, value: int | tuple[int, ...]) -> None:
        if isinstance(value, tuple):
            array = (ctypes.c_longlong * len(value))(*value)
            _call("cufftdxSetOperatorInt64s", self.handle, operator, len(value), array)
        else:
            _call("cufftdxSetOperatorInt64", self.handle, operator, int(value))

    def is_supported(self) -> bool:
        value = ctypes.c_int()
        _call("cufftdxIsSupported", self.handle, ctypes.byref(value))
        return value.value != 0

    def trait(self, trait: int) -> int:
        value = ctypes.c_longlong()
        _call("cufftdxGetTraitInt64", self.handle, trait, ctypes.byref(value))
        return value.value

    def traits(self, trait: int, count: int) -> tuple[int, ...]:
        array = (ctypes.c_longlong * count)()
        _call("cufftdxGetTraitInt64s", self.handle, trait, count, array)
        return tuple(int(v) for v in array)

    def trait_str(self, trait: int) -> str:
        size = ctypes.c_size_t()
        _call("cufftdxGetTraitStrSize", self.handle, trait, ctypes.byref(size))
        buffer = ctypes.create_string_buffer(size.value)
        _call("cufftdxGetTraitStr", self.handle, trait, size.value, buffer)
        return buffer.value.decode()

    def value_type(self, trait: int) -> int:
        value = ctypes.c_int()
        _call("cufftdxGetTraitCommondxDataType", self.handle, trait, ctypes.byref(value))
        return value.value

    def knobs(self, knobs: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The valid combinations of ``knobs`` (cufftdxKnobType values) for this descriptor."""
        kinds = (ctypes.c_int * len(knobs))(*knobs)
        size = ctypes.c_size_t()
        _call("cufftdxGetKnobInt64Size", self.handle, len(knobs), kinds, ctypes.byref(size))
        values = (ctypes.c_longlong * size.value)()
        _call("cufftdxGetKnobInt64s", self.handle, len(knobs), kinds, size.value, values)
        flat = [int(v) for v in values]
        return [tuple(flat[i:i + len(knobs)]) for i in range(0, len(flat), len(knobs))]

    def ltoir(self, arch: int, arch_specific: bool) -> tuple[bytes, int]:
        """LTO-IR of this descriptor's device function for ``arch`` (e.g. 90), with its ISA version."""
        with Code() as code:
            sm = (arch * 10, ARCH_MODIFIER_ARCH_SPECIFIC) if arch_specific else (arch * 10,)
            code.set_ints(OPTION_TARGET_SM, sm)
            # Optimised LTO-IR: nvJitLink then has less to do when the kernel is linked.
            code.set_str(OPTION_EXTRA_NVRTC_ARGS, "-gen-opt-lto")
            _call("cufftdxFinalizeCode", code.handle, self.handle)
            return code.ltoir(), code.get_int(OPTION_CODE_ISA)


class Code:
    """An owned ``commondxCode`` handle."""

    def __init__(self) -> None:
        handle = ctypes.c_longlong()
        _call("commondxCreateCode", ctypes.byref(handle))
        self.handle = handle.value

    def __enter__(self) -> Code:
        return self

    def __exit__(self, *exc: Any) -> None:
        handle, self.handle = self.handle, None
        if handle is not None:
            _call("commondxDestroyCode", handle)

    def set_int(self, option: int, value: int) -> None:
        _call("commondxSetCodeOptionInt64", self.handle, option, value)

    def set_ints(self, option: int, values: tuple[int, ...]) -> None:
        array = (ctypes.c_longlong * len(values))(*values)
        _call("commondxSetCodeOptionInt64s", self.handle, option, len(values), array)

    def set_str(self, option: int, value: str) -> None:
        _call("commondxSetCodeOptionStr", self.handle, option, value.encode())

    def get_int(self, option: int) -> int:
        value = ctypes.c_longlong()
        _call("commondxGetCodeOptionInt64", self.handle, option, ctypes.byref(value))
        return value.value

    def ltoir(self) -> bytes:
        count = ctypes.c_size_t()
        _call("commondxGetCodeNumLTOIRs", self.handle, ctypes.byref(count))
        if count.value != 1:
            raise MathDxError("commondxGetCodeNumLTOIRs", 2, f"expected one LTO-IR module, libmathdx made {count.value}")
        size = ctypes.c_size_t()
        _call("commondxGetCodeLTOIRSize", self.handle, ctypes.byref(size))
        buffer = ctypes.create_string_buffer(size.value)
        _call("commondxGetCodeLTOIR", self.handle, size.value, buffer)
        return buffer.raw
