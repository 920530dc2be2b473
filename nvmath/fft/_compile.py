"""compile_prolog / compile_epilog: nvmath-python's compile helpers, with our cache and forms."""

from __future__ import annotations

from typing import Any, Callable, Literal


def _compile(fn: Callable, kind: str, element_dtype: Any, user_info_dtype: Any, compute_capability: Any,
             literals: str) -> bytes:
    from fftfuse_compiler import compile_callback

    if element_dtype is None:
        raise TypeError(
            f"compile_{kind} needs element_dtype (the FFT {'input' if kind == 'prolog' else 'output'} type) "
            f"when compiling ahead of an FFT call; or pass the function itself as {kind}= to the FFT, which "
            "infers it"
        )
    return compile_callback(fn, kind, element_dtype, user_info_dtype, compute_capability=compute_capability,
                            literals=literals).ltoir


_COMPILE_PARAMETERS = """element_dtype: the FFT input type for a prolog, the output type for an epilog:
            "float32", "float64", "complex64" or "complex128" (or a NumPy or numba type).
        user_info_dtype: the element type of the data ``user_info`` points to: a NumPy dtype name
            or a numba type; None when the callback reads no user data.
        compute_capability: the target architecture, "90", 90 or (9, 0). Default: the current
            GPU's, or without one the oldest the toolkit supports (LTO-IR links on newer GPUs).
        literals: "element" computes Python float literals of a single-precision callback in
            single precision; "double" keeps Python's double precision.

    Returns:
        The LTO-IR as bytes, cached on disk (see the documentation's cache page, docs/guide/cache.md).

    Raises:
        TypeError: a function that cannot be a callback of this kind: the message names it, the
            forms accepted and the cause.
        ValueError: an element type, user-data type or architecture not understood."""


def compile_prolog(prolog_fn: Callable, element_dtype: Any = None, user_info_dtype: Any = None, *,
                   compute_capability: Any = None, literals: Literal["element", "double"] = "element") -> bytes:
    """Compile a prolog to LTO-IR bytes for ``prolog={{"ltoir": ..., "data": pointer}}``.

    Parameters:
        prolog_fn: ``f(data_in, offset, user_info, unused) -> value`` (cuFFT's form), or
            ``f(x) -> y`` / ``f(x, d) -> y`` (``d``: the user-data element at the same offset).
        {parameters}

    >>> ltoir = compile_prolog(lambda x: x * 2, "float32", compute_capability=90)
    >>> isinstance(ltoir, bytes) and len(ltoir) > 0
    True
    """
    return _compile(prolog_fn, "prolog", element_dtype, user_info_dtype, compute_capability, literals)


def compile_epilog(epilog_fn: Callable, element_dtype: Any = None, user_info_dtype: Any = None, *,
                   compute_capability: Any = None, literals: Literal["element", "double"] = "element") -> bytes:
    """Compile an epilog to LTO-IR bytes for ``epilog={{"ltoir": ..., "data": pointer}}``.

    Parameters:
        epilog_fn: ``f(data_out, offset, value, user_info, unused)`` storing
            ``data_out[offset] = ...`` (cuFFT's form), or ``f(x) -> y`` / ``f(x, d) -> y``.
        {parameters}

    >>> def halve(data_out, offset, value, user_info, unused):
    ...     data_out[offset] = value * 0.5
    >>> len(compile_epilog(halve, "complex64", compute_capability=90)) > 0
    True
    """
    return _compile(epilog_fn, "epilog", element_dtype, user_info_dtype, compute_capability, literals)


for _fn in (compile_prolog, compile_epilog):
    if _fn.__doc__:  # None under python -OO
        _fn.__doc__ = _fn.__doc__.format(parameters=_COMPILE_PARAMETERS)
