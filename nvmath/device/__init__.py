"""Device-side FFTs: cuFFTDx functions called from inside numba-cuda kernels.

``FFT(...)`` (nvmath-python 1.0's spelling, ``fft.execute(...)`` in a kernel) and ``fft(...)``
(the earlier spelling, ``fft_fwd(thread_data, shared_mem)`` and ``cuda.jit(link=fft_fwd.files)``)
describe one FFT. Code comes from NVIDIA's libmathdx (the ``dx`` extra), is generated once per
machine and kept in fftfuse's cache; kernels that call it are linked once too (see
:mod:`nvmath.device.link_cache`). Descriptors and traits need no GPU when ``sm=`` is given.

Half precision (``precision=np.float16``) works on ``float16x4`` values, two FFTs at once;
``float16x2``/``float16x4`` and their numba types ``float16x2_type``/``float16x4_type`` are
described in :mod:`nvmath.device.types`.
"""

from ._api import FFT, ComputeCapability, Dim3, current_device_sm, fft
from ._mathdx import MathDxError
from .types import float16x2, float16x4

# float16x2_type and float16x4_type import from here too (see __getattr__), as the numba types
# they are: documented with nvmath.device.types, not star-exported (importing them imports numba).
__all__ = ["FFT", "fft", "Dim3", "ComputeCapability", "current_device_sm", "MathDxError", "float16x2", "float16x4"]


def __getattr__(name: str) -> object:
    # float16x2_type / float16x4_type (half-precision vectors' numba types, nvmath.device.types):
    # numba-cuda is imported on first use, not with this package.
    if name in ("float16x2_type", "float16x4_type"):
        from . import types

        return getattr(types, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
