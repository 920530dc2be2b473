"""Element types that cuFFT callbacks can see, and the names cuFFT gives them.

Everything here is plain data: no numba, no CUDA. Other modules ask this one how an element
type is spelled (``"complex64"``), which C type and mangled name cuFFT expects for it, and
which ``cufftXtCallbackType`` code registers it.
"""

from __future__ import annotations

from typing import Any

ELEMENT_DTYPES = ("float32", "float64", "complex64", "complex128")

# cuFFT's suffix of the callback prototype name for each element type
# (cufftJITCallbackLoadComplex, cufftJITCallbackStoreDoubleReal, ...).
_CUFFT_SUFFIX = {
    "float32": "Real",
    "float64": "DoubleReal",
    "complex64": "Complex",
    "complex128": "DoubleComplex",
}

# Itanium-mangled spelling of the element's C type (float, double, float2, double2).
_MANGLED_TYPE = {"float32": "f", "float64": "d", "complex64": "6float2", "complex128": "7double2"}

# C spelling, for the link-check harness and error messages.
C_TYPE = {"float32": "float", "float64": "double", "complex64": "float2", "complex128": "double2"}

# cufftXtCallbackType: LD_COMPLEX=0, LD_COMPLEX_DOUBLE=1, LD_REAL=2, LD_REAL_DOUBLE=3, ST_* = LD_* + 4.
_CALLBACK_TYPE_CODE = {"complex64": 0, "complex128": 1, "float32": 2, "float64": 3}

KINDS = ("prolog", "epilog")

# What a callback's user data may hold, one number per element: what the CPU and the GPU backends
# both compile. Half-precision data (float16) is refused: the CPU backend has no half arithmetic.
DATA_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
               "float32", "float64", "complex64", "complex128")

# The FFT's own element types: the callbacks' four and half precision. NumPy and CuPy have no
# complex32; its arrays are float16 arrays whose last axis holds (real, imaginary).
REAL_OF = {"complex64": "float32", "complex128": "float64", "float32": "float32", "float64": "float64",
           "complex32": "float16", "float16": "float16"}
COMPLEX_OF = {"float32": "complex64", "float64": "complex128", "complex64": "complex64", "complex128": "complex128",
              "float16": "complex32", "complex32": "complex32"}

# Half-precision FFT elements and the single-precision type a callback sees them as: the element
# is promoted on load, and the callback's result rounded back to half precision on store.
HALF_PROMOTED = {"float16": "float32", "complex32": "complex64"}


def callback_element(fft_dtype: str) -> str:
    """The element type a callback on an FFT buffer of ``fft_dtype`` sees (half: promoted).

    >>> callback_element("complex32"), callback_element("float64")
    ('complex64', 'float64')
    """
    return HALF_PROMOTED.get(fft_dtype, fft_dtype)


def element_dtype_name(dtype: Any, *, what: str = "element_dtype") -> str:
    """Return the canonical name ("float32", ...) of an FFT element type.

    Accepts the name itself, a NumPy dtype or scalar type, or a numba type.

    >>> import numpy as np
    >>> element_dtype_name(np.complex64), element_dtype_name("float64")
    ('complex64', 'float64')
    """
    name = _dtype_name(dtype)
    if name not in ELEMENT_DTYPES:
        raise ValueError(
            f"{what}={dtype!r} is not an FFT element type; expected one of {', '.join(ELEMENT_DTYPES)}."
        )
    return name


def _dtype_name(dtype: Any) -> str | None:
    if isinstance(dtype, str):
        return dtype
    numba_name = getattr(dtype, "name", None)
    if type(dtype).__module__.startswith("numba") and isinstance(numba_name, str):
        return numba_name
    try:
        import numpy as np

        return np.dtype(dtype).name
    except TypeError:
        return None


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"callback kind must be 'prolog' or 'epilog', got {kind!r}")
    return kind


def callback_symbol(kind: str, element_dtype: str) -> str:
    """The C++-mangled name cuFFT looks up for a callback of this kind and element type.

    >>> callback_symbol("epilog", "complex64")
    '_Z28cufftJITCallbackStoreComplexPvy6float2S_S_'
    >>> callback_symbol("prolog", "float64")
    '_Z30cufftJITCallbackLoadDoubleRealPvyS_S_'
    """
    check_kind(kind)
    ident = f"cufftJITCallback{'Load' if kind == 'prolog' else 'Store'}{_CUFFT_SUFFIX[element_dtype]}"
    # Parameters: void*, unsigned long long, [element,] void*, void*; "S_" repeats void*.
    params = "Pvy" + ("" if kind == "prolog" else _MANGLED_TYPE[element_dtype]) + "S_S_"
    return f"_Z{len(ident)}{ident}{params}"


def callback_type_code(kind: str, element_dtype: str) -> int:
    """The ``cufftXtCallbackType`` value that registers this callback.

    >>> callback_type_code("epilog", "complex64")
    4
    """
    check_kind(kind)
    return _CALLBACK_TYPE_CODE[element_dtype] + (4 if kind == "epilog" else 0)


def single_precision_literals(literals: str, element: str) -> bool:
    """The single-precision literal rule, the one place it is written: whether a callback's Python
    float literals (and float parameters) are narrowed to single precision for this element type.

    >>> single_precision_literals("element", "complex64"), single_precision_literals("element", "float64")
    (True, False)
    >>> single_precision_literals("double", "float32"), single_precision_literals("element", "complex32")
    (False, True)
    """
    if literals not in ("element", "double"):
        raise ValueError(f"literals must be 'element' or 'double', got {literals!r}")
    return literals == "element" and callback_element(element) in ("float32", "complex64")


_FLOAT32_MAX = 3.4028234663852886e38
_FLOAT32_TINY = 1.1754943508222875e-38  # the smallest normal float32


def single_holds(v: float) -> bool:
    """Whether float32 holds ``v`` to within its own rounding (inf and nan stay what they are).

    >>> [single_holds(v) for v in (0.1, 1e38, 1e39, 1e-38, 1e-30, 0.0, float("inf"))]
    [True, True, False, False, True, True, True]
    """
    a = abs(v)
    return a == 0.0 or a != a or a == float("inf") or _FLOAT32_TINY <= a <= _FLOAT32_MAX
