"""Element types of device FFTs, under the names nvmath-python 1.0 gives them.

``FFT.value_type`` of a float32/float64 FFT is a NumPy scalar type (``np.complex64`` for float32
FFTs), usable as the ``dtype`` of ``cuda.local.array``/``cuda.shared.array`` and on the host
alike, so ``fft.value_type == complex64`` holds with the names below.

Half precision has no NumPy complex type. cuFFTDx computes two FFTs at once in it ("implicit
type batching", ``fft.implicit_type_batching == 2``), and one element of its data holds the
same element of both: ``float16x4`` (x, y, z, w) = (real of FFT 0, real of FFT 1, imaginary of
FFT 0, imaginary of FFT 1), the "RRII" layout of cuFFTDx's ``complex<__half2>``. The real data
of a half-precision r2c/c2r FFT is ``float16x2`` (x, y) = (FFT 0, FFT 1), ``__half2``; view the
thread data as such with ``thread_data.view(float16x2_type)``.

* ``float16x2``, ``float16x4``: the constructors. In a kernel, ``float16x4(r0, r1, i0, i1)``
  makes a value (any real numbers, converted to float16; vectors count as their lanes, so
  ``float16x4(rr, ii)`` of two ``float16x2`` works, and ``float16x2(c)`` of a complex number
  is ``(c.real, c.imag)``); read its lanes as ``.x .y .z .w``. Both also serve as the ``dtype``
  of ``cuda.local.array``/``cuda.shared.array``. On the host, ``float16x4(1, 2, 3, 4)`` is a
  NumPy scalar of ``np_float16x4``.
* ``float16x2_type``, ``float16x4_type``: the numba types (``array.view(float16x2_type)``,
  signatures); ``FFT(..., precision=np.float16).value_type is float16x4_type``. They need
  numba-cuda and are built on first use.
* ``np_float16x2``, ``np_float16x4``: the NumPy structured dtypes of the same bytes, for host
  arrays. A kernel receives such an array as records; ``arr.view(float16x4_type)`` in the
  kernel reads it as vectors (as it does a float16 array whose last axis holds the lanes).

A vector is as wide as its lanes together and aligned to that width (4 bytes for float16x2, 8
for float16x4), as CUDA's ``__half2`` and cuFFTDx's ``complex<__half2>`` are.
"""

from typing import Any

import numpy as np

# The host (NumPy) equivalents of the half-precision vectors: the same bytes, lane by lane.
from ._half_dtypes import LANES as _LANES
from ._half_dtypes import NP_DTYPES, np_float16x2, np_float16x4

__all__ = [
    "complex64", "complex128", "REAL_NP_TYPES",
    "float16x2", "float16x4", "float16x2_type", "float16x4_type", "np_float16x2", "np_float16x4",
]

complex64 = np.complex64
complex128 = np.complex128

#: The precisions a device FFT takes.
REAL_NP_TYPES = [np.float16, np.float32, np.float64]


class HalfVector:
    """``float16x2`` / ``float16x4``: the constructor of a vector of float16 lanes (see the module).

    The object needs no numba-cuda; a kernel that names it types it through ``_numba_type_``.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.__name__ = f"float16x{count}"
        self.lanes = _LANES[:count]
        self.np_dtype = NP_DTYPES[self.__name__]

    def __repr__(self) -> str:
        return f"nvmath.device.{self.__name__}"

    def __reduce__(self) -> str:
        return self.__name__  # the module's own object: one per name

    def __call__(self, *values: Any) -> Any:
        """On the host: a NumPy scalar of ``np_float16x2``/``np_float16x4`` holding ``values``."""
        if self.count == 2 and len(values) == 1 and isinstance(values[0], (complex, np.complexfloating)):
            values = (values[0].real, values[0].imag)
        if len(values) != self.count:
            raise TypeError(f"{self.__name__}() takes {self.count} values ({', '.join(self.lanes)}), "
                            f"got {len(values)}")
        return np.array(tuple(values), dtype=self.np_dtype)[()]

    @property
    def numba_type(self) -> Any:
        """The numba type (``float16x2_type`` / ``float16x4_type``); needs numba-cuda."""
        return _numba_half_type(self.__name__)

    @property
    def _numba_type_(self) -> Any:
        """What numba types this object as inside a kernel: a constructor that is also a dtype."""
        from . import _numba

        return _numba.half_vector_class(self.__name__)

    def __fftfuse_fingerprint__(self) -> str:
        """Its identity for the kernel cache (fftfuse_compiler.fingerprint): the name and the
        revision of the lowering that implements it."""
        from . import _numba

        return f"{self.__name__}/{_numba.LOWERING_REVISION}"


float16x2 = HalfVector(2)
"""Two float16 lanes ``x, y``: the real side of a half-precision r2c/c2r (one element of each of
the two FFTs a thread computes at once). ``float16x2(a, b)`` in a kernel or on the host."""
float16x4 = HalfVector(4)
"""Four float16 lanes ``x, y, z, w``: one complex element of two half-precision FFTs, real parts
then imaginary parts (RRII), the ``value_type`` of every half-precision FFT."""


def _numba_half_type(name: str) -> Any:
    from . import _numba

    vector_type = _numba.half_vector_type(name)
    if vector_type is None:
        raise ImportError(f"nvmath.device.{name}_type is a numba type: it needs numba-cuda, which is not installed")
    return vector_type


def __getattr__(name: str) -> Any:
    # float16x2_type / float16x4_type: numba types, built (and numba-cuda imported) on first use.
    if name in ("float16x2_type", "float16x4_type"):
        return _numba_half_type(name[: -len("_type")])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
