"""SciPy's ``norm=`` as a scale fused into the callbacks, never a separate pass over the data.

The scale goes into the epilog (a new one when none is given); an epilog in cuFFT's form stores
its value itself, so there the scale goes into the prolog instead, the FFT being linear.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from ._callbacks import CallbackArg, parse_callback

_NORMS = ("backward", "ortho", "forward")


def norm_scale(norm: str | None, direction: str, n: int) -> float | None:
    """The factor ``norm`` applies to a transform of ``n`` points in ``direction`` (None: none).

    >>> norm_scale("backward", "inverse", 8), norm_scale("ortho", "forward", 4), norm_scale("forward", "inverse", 8)
    (0.125, 0.5, None)
    """
    if norm is None:
        return None
    if norm not in _NORMS:
        raise ValueError(f"norm={norm!r} is not understood; use 'backward', 'ortho', 'forward' or None")
    if norm == "ortho":
        return 1.0 / math.sqrt(n)
    scaled = "inverse" if norm == "backward" else "forward"
    return 1.0 / n if direction == scaled else None


def fuse_scale(prolog: Any, epilog: Any, scale: float, ndim: int | None = None) -> tuple[Any, Any]:
    """``(prolog, epilog)`` with ``scale`` applied in one of them (``ndim``: the operand's, which
    tells the index forms apart)."""
    from fftfuse_compiler.forms import Form, infer_form

    if epilog is None:
        return prolog, _scaled_value(scale)
    arg = _parsed(epilog, "epilog")
    if arg is not None and arg.fn is not None:
        form = infer_form(arg.fn, "epilog", ndim=ndim, data=arg.data is not None if ndim is not None else None)
        if form is not Form.CUFFT:
            return prolog, arg.with_fn(_scaled(arg.fn, scale))
    if prolog is None:
        return _scaled_value(scale), epilog
    arg = _parsed(prolog, "prolog")
    if arg is not None and arg.fn is not None:
        return arg.with_fn(_scaled(arg.fn, scale)), epilog
    parse_callback(epilog, "epilog"), parse_callback(prolog, "prolog")  # a malformed one says so first
    raise ValueError(
        "norm= cannot be fused here: the epilog stores its value itself (cuFFT form, CUDA C++ or LTO-IR) "
        "and the prolog is not a Python function. Apply the scale in your epilog and pass norm=None"
    )


def _parsed(value: Any, kind: str) -> CallbackArg | None:
    """``value`` parsed, or None where it is malformed: the planner reports that, in its order."""
    try:
        return parse_callback(value, kind)
    except TypeError:
        return None


def _scaled_value(scale: float) -> Callable:
    def scale_only(x):
        return x * scale

    return scale_only


def _scaled(fn: Callable, scale: float) -> Callable:
    """``fn(...) * scale`` with ``fn``'s very signature (positional and keyword-only parameters,
    keyword defaults), so its form, indices and runtime parameters read the same."""
    code = getattr(fn, "py_func", fn).__code__
    positional = code.co_varnames[: code.co_argcount]
    keywords = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    signature = ", ".join(positional) + ("".join([", *"] + [f", {k}" for k in keywords]) if keywords else "")
    call = ", ".join(list(positional) + [f"{k}={k}" for k in keywords])
    namespace: dict = {}
    exec(f"def make(fn, scale):\n    def scaled({signature}):\n        return fn({call}) * scale\n    return scaled",
         namespace)
    scaled = namespace["make"](fn, scale)
    scaled.__kwdefaults__ = getattr(getattr(fn, "py_func", fn), "__kwdefaults__", None)
    # Logs and error messages name the user's function, not this wrapper.
    scaled.__name__ = scaled.__qualname__ = getattr(getattr(fn, "py_func", fn), "__name__", "scaled")
    return scaled


def scaled_callback(value: Any, kind: str, scale: float, ndim: int | None = None) -> Any:
    """``value`` with its result multiplied by ``scale`` (a scale-only callback where ``value`` is
    None), or None where that cannot be done: an epilog in cuFFT's form stores its value itself,
    and CUDA C++ or LTO-IR is not a Python function. Data and runtime parameters are kept."""
    from fftfuse_compiler.forms import Form, infer_form

    if value is None:
        return _scaled_value(scale)
    arg = parse_callback(value, kind)
    if arg.fn is None:
        return None
    if kind == "epilog":
        form = infer_form(arg.fn, "epilog", ndim=ndim, data=arg.data is not None if ndim is not None else None)
        if form is Form.CUFFT:
            return None
    return arg.with_fn(_scaled(arg.fn, scale))
