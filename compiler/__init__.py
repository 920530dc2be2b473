"""Python functions -> cuFFT callbacks: forms, fingerprints, and the numba back ends."""

__fftfuse_package__ = True

from .api import CompiledCallback, compile_callback
from .dtypes import ELEMENT_DTYPES
from .forms import Form, infer_form

__all__ = ["CompiledCallback", "compile_callback", "ELEMENT_DTYPES", "Form", "infer_form"]
