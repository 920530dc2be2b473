"""Device-side FFTs: cuFFTDx functions called from inside numba-cuda kernels.

``FFT(...)`` (nvmath-python 1.0's spelling, ``fft.execute(...)`` in a kernel) and ``fft(...)``
(the earlier spelling, ``fft_fwd(thread_data, shared_mem)`` and ``cuda.jit(link=fft_fwd.files)``)
describe one FFT. Code comes from NVIDIA's libmathdx (the ``dx`` extra), is generated once per
machine and kept in fftfuse's cache; kernels that call it are linked once too (see
:mod:`nvmath.device.link_cache`). Descriptors and traits need no GPU when ``sm=`` is given.
"""

from ._api import FFT, ComputeCapability, Dim3, current_device_sm, fft
from ._mathdx import MathDxError

__all__ = ["FFT", "fft", "Dim3", "ComputeCapability", "current_device_sm", "MathDxError"]
