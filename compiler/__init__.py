"""Python functions -> cuFFT callbacks: forms, fingerprints, and the numba back ends."""

from ._lazy import lazy_attributes

__all__ = ["CompiledCallback", "compile_callback", "ELEMENT_DTYPES", "Form", "infer_form"]

# Submodules load on first use, so importing the package costs nothing until something is
# compiled or looked up.
_LAZY = {
    "CompiledCallback": ".api", "compile_callback": ".api",
    "ELEMENT_DTYPES": ".dtypes", "Form": ".forms", "infer_form": ".forms",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
