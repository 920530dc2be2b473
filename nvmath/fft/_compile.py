"""compile_prolog / compile_epilog: nvmath-python's compile helpers, with our cache and forms."""

from __future__ import annotations

from typing import Any, Callable


def _compile(fn: Callable, kind: str, element_dtype: Any, user_info_dtype: Any, compute_capability: Any,
             literals: str) -> bytes:
    from compiler import compile_callback

    if element_dtype is None:
        raise TypeError(
            f"compile_{kind} needs element_dtype (the FFT {'input' if kind == 'prolog' else 'output'} type) "
            f"when compiling ahead of an FFT call; or pass the function itself as {kind}= to the FFT, which "
            "infers it"
        )
    return compile_callback(fn, kind, element_dtype, user_info_dtype, compute_capability=compute_capability,
                            literals=literals).ltoir


def compile_prolog(prolog_fn: Callable, element_dtype: Any = None, user_info_dtype: Any = None, *,
                   compute_capability: Any = None, literals: str = "element") -> bytes:
    """Compile a prolog to LTO-IR bytes for ``prolog={"ltoir": ..., "data": pointer}``.

    ``prolog_fn`` is ``f(data_in, offset, user_info, unused) -> value`` (cuFFT's form), or
    ``f(x) -> y`` / ``f(x, d) -> y``. ``element_dtype`` is the FFT input type ("float32",
    "float64", "complex64", "complex128"); ``user_info_dtype`` the type of the data ``user_info``
    points to (a dtype name or a numba type). ``compute_capability`` ("90", 90 or (9, 0))
    defaults to the current GPU, or without one the oldest architecture the toolkit supports.
    ``literals="element"`` computes Python float literals of a single-precision callback in single
    precision ("double" keeps them double). Results are cached on disk: see ``cache``.

    >>> ltoir = compile_prolog(lambda x: x * 2, "float32")  # doctest: +SKIP
    """
    return _compile(prolog_fn, "prolog", element_dtype, user_info_dtype, compute_capability, literals)


def compile_epilog(epilog_fn: Callable, element_dtype: Any = None, user_info_dtype: Any = None, *,
                   compute_capability: Any = None, literals: str = "element") -> bytes:
    """Compile an epilog to LTO-IR bytes for ``epilog={"ltoir": ..., "data": pointer}``.

    ``epilog_fn`` is ``f(data_out, offset, value, user_info, unused)`` (cuFFT's form), or
    ``f(x) -> y`` / ``f(x, d) -> y``; ``element_dtype`` is the FFT output type. Otherwise as
    ``compile_prolog``.
    """
    return _compile(epilog_fn, "epilog", element_dtype, user_info_dtype, compute_capability, literals)
