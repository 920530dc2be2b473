"""FFTs with Python prologs and epilogs fused in: cuFFT LTO callbacks on the GPU, SciPy+numba on the CPU."""

import importlib
from typing import Any

# Light: the compiler loads only when a callback is compiled.
from ._compile import compile_epilog, compile_prolog

__all__ = [
    "FFT", "FFTOptions", "ExecutionCPU", "ExecutionCUDA", "DeviceCallable", "LayoutError",
    "fft", "ifft", "rfft", "irfft", "compile_prolog", "compile_epilog",
]

# The FFT machinery imports NumPy; resolving it on first use keeps a process that only
# fetches cached LTO-IR (compile_prolog/compile_epilog) free of that start-up cost.
_LAZY = {
    "FFT": "._api", "FFTOptions": "._api", "ExecutionCPU": "._api", "ExecutionCUDA": "._api",
    "fft": "._api", "ifft": "._api", "rfft": "._api", "irfft": "._api",
    "DeviceCallable": "._callbacks", "LayoutError": "._layout",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
