"""fftfuse's ``nvmath``: FFTs with Python prologs and epilogs fused in by cuFFT, and a CPU twin.

The public API mirrors nvmath-python's ``nvmath.fft`` callback API. Importing this package is
cheap: numba, CuPy and cuFFT load only when first needed.
"""

from ._packages import check_other_distribution
from ._source_tree import install_finder

check_other_distribution()
# Run from a source checkout, fftfuse_compiler and fftfuse_cache are the folders beside nvmath.
install_finder()

from . import fft  # noqa: E402
from ._version import __version__  # noqa: E402

__all__ = ["fft"]
