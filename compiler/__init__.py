"""Python functions -> cuFFT callbacks: forms, fingerprints, and the numba back ends."""

import importlib
from typing import Any

__fftfuse_package__ = True

__all__ = ["CompiledCallback", "compile_callback", "ELEMENT_DTYPES", "Form", "infer_form"]

# Submodules load on first use, so importing the package (nvmath does, to check it is ours)
# costs nothing until something is compiled or looked up.
_LAZY = {
    "CompiledCallback": ".api", "compile_callback": ".api",
    "ELEMENT_DTYPES": ".dtypes", "Form": ".forms", "infer_form": ".forms",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
