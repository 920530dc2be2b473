"""What the CPU executor raises when a compiled callback failed: the callback's own exception.

The compiled loops stop at the first element whose callback raised and return its position
(``fftfuse_compiler.cpu_loops``); numba keeps the exception itself. That one element is run again, as
plain Python on bounds-checked views (the debug mode's way, whose messages name the buffer and
the offset), and where Python does not fail the same way (NumPy's scalars give inf or nan where
numba raises, as in a complex division by zero) through numba's compiled wrapper, which raises
exactly what the loop caught. The exception is raised with a note naming the callback, the
offset and what happened to the result.
"""

from __future__ import annotations

from typing import Any, NoReturn

import numpy as np

from ._checked import checked_views
from ._layout import Layout

__all__ = ["raise_failure"]


def raise_failure(cb: Any, offset: int, buffer: np.ndarray, info: Any, value: Any, layout: Layout) -> NoReturn:
    """Raise the exception of ``cb`` (a ``CpuCallback``) at ``offset`` of ``buffer`` (the prolog's
    input or the epilog's output, 1-D); ``value``: the element an epilog was given; ``info``: the
    user data (1-D) or ``(data, *params)``; ``layout``: the buffer's FFT layout."""
    side = "input" if cb.kind == "prolog" else "output"
    where = f"offset {offset} of the FFT {side} (shape {layout.shape}, element strides {layout.strides})"
    exc, how = _as_python(cb, offset, buffer, info, value, layout), "as Python"
    if exc is None:
        exc, how = _as_compiled(cb, offset, buffer, info, value), "compiled (as Python it did not fail)"
    if exc is None:
        raise RuntimeError(
            f"the {cb.kind} {cb.name!r} raised an exception at {where} in its compiled loop, which stopped there "
            "(the result is incomplete); running that element again did not repeat it. Run with "
            "options={'debug': True} to run the callback as Python and see where it fails"
        )
    exc.add_note(
        f"raised by the {cb.kind} {cb.name!r} at {where} in its compiled loop, which stopped there (the result is "
        f"incomplete); that element was run again {how} to report it. options={{'debug': True}} runs the "
        "callbacks as Python throughout"
    )
    raise exc


def _as_python(cb: Any, offset: int, buffer: np.ndarray, info: Any, value: Any, layout: Layout) -> Exception | None:
    from fftfuse_compiler.cpu_backend import python_callback

    python = python_callback(cb.function, cb.kind, cb.element_dtype, cb.data_dtype, cb.terms)
    data = info[0] if isinstance(info, tuple) else info
    buffer, data = checked_views(python, buffer, data, layout)
    info = (data, *info[1:]) if isinstance(info, tuple) else data
    try:
        with np.errstate(all="ignore"):  # NumPy's warnings would only repeat what is raised next
            if cb.kind == "prolog":
                python.wrapper(buffer, offset, info, None)
            else:
                python.wrapper(buffer, offset, value, info, None)
    except Exception as exc:  # noqa: BLE001 - any exception of the user's code is the one to report
        return exc
    return None


def _as_compiled(cb: Any, offset: int, buffer: np.ndarray, info: Any, value: Any) -> Exception | None:
    from fftfuse_compiler.cpu_backend import compiled_wrapper

    try:
        wrapper = compiled_wrapper(cb)
    except Exception:  # noqa: BLE001 - reporting must not fail for want of a compiler
        return None
    try:
        if cb.kind == "prolog":
            wrapper(buffer, np.uint64(offset), info, None)
        else:
            wrapper(buffer, np.uint64(offset), value, info, None)
    except Exception as exc:  # noqa: BLE001
        return exc
    return None
