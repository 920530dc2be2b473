"""FFTs with Python prologs and epilogs fused in: cuFFT LTO callbacks on the GPU, SciPy+numba on the CPU."""


from fftfuse_compiler._lazy import lazy_attributes

# Light: the compiler loads only when a callback is compiled.
from ._compile import compile_epilog, compile_prolog

__all__ = [
    "FFT", "FFTOptions", "FFTDirection", "ExecutionCPU", "ExecutionCUDA", "DeviceCallable", "LayoutError",
    "UnsupportedLayoutError", "NoGPUError", "fft", "ifft", "rfft", "irfft", "compile_prolog", "compile_epilog",
    "fuse", "FusedFunction", "TraceError",
    "filtered", "FilteredFFT", "tune_chains",
]

# The FFT machinery imports NumPy; resolving it on first use keeps a process that only
# fetches cached LTO-IR (compile_prolog/compile_epilog) free of that start-up cost.
_LAZY = {
    "FFT": "._api", "FFTOptions": "._options", "ExecutionCPU": "._options", "ExecutionCUDA": "._options",
    "FFTDirection": "._options", "UnsupportedLayoutError": "._layout",
    "fft": "._stateless", "ifft": "._stateless", "rfft": "._stateless", "irfft": "._stateless",
    "DeviceCallable": "._callbacks", "LayoutError": "._layout",
    "NoGPUError": "._gpu_presence",
    "fuse": "._fuse", "FusedFunction": "._fuse", "TraceError": "._trace",
    "filtered": "._chain", "FilteredFFT": "._chain", "tune_chains": "._tuning",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
