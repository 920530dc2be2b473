"""FFTs with Python prologs and epilogs fused in: cuFFT LTO callbacks on the GPU, SciPy+numba on the CPU."""

from ._api import FFT, ExecutionCPU, ExecutionCUDA, FFTOptions, fft, ifft, irfft, rfft
from ._callbacks import DeviceCallable
from ._compile import compile_epilog, compile_prolog
from ._layout import LayoutError

__all__ = [
    "FFT", "FFTOptions", "ExecutionCPU", "ExecutionCUDA", "DeviceCallable", "LayoutError",
    "fft", "ifft", "rfft", "irfft", "compile_prolog", "compile_epilog",
]
