"""fftfuse's ``nvmath``: FFTs with Python prologs and epilogs fused in by cuFFT, and a CPU twin.

The public API mirrors nvmath-python's ``nvmath.fft`` callback API. Importing this package is
cheap: numba, CuPy and cuFFT load only when first needed.
"""

from ._packages import check_other_distribution, sibling

check_other_distribution()
sibling("compiler")
sibling("cache")

from . import fft  # noqa: E402

__all__ = ["fft"]


def __getattr__(name: str) -> str:
    if name == "__version__":  # read on demand: importlib.metadata costs milliseconds at import
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("fftfuse")
        except PackageNotFoundError:  # run from a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module 'nvmath' has no attribute {name!r}")
