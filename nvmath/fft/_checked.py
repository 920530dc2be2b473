"""Bounds-checked views of the buffers a callback indexes, for the debug mode and failure reports.

An offset outside a buffer raises :class:`CallbackIndexError` naming the callback, the buffer,
the offset and the layout, where native code would read or write past the buffer.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ._layout import Layout

__all__ = ["CallbackIndexError", "CheckedBuffer", "checked_views"]


class CallbackIndexError(IndexError):
    """A callback indexed a buffer outside its elements (raised in debug mode only)."""


class CheckedBuffer:
    """A 1-D buffer that refuses offsets outside it, saying which callback and buffer erred.

    >>> buf = CheckedBuffer(np.zeros(4), "user_info", "epilog 'scale'", "laid out like the output")
    >>> buf[3] = 1.0
    >>> buf[4]
    Traceback (most recent call last):
    ...
    nvmath.fft._checked.CallbackIndexError: epilog 'scale' read user_info at offset 4, outside its 4 elements (valid offsets 0..3); user_info is laid out like the output
    """

    __slots__ = ("_flat", "_name", "_callback", "_about")

    def __init__(self, flat: np.ndarray, name: str, callback: str, about: str) -> None:
        self._flat, self._name, self._callback, self._about = flat, name, callback, about

    def __len__(self) -> int:
        return len(self._flat)

    def __getitem__(self, offset: Any) -> Any:
        return self._flat[self._check(offset, "read")]

    def __setitem__(self, offset: Any, value: Any) -> None:
        self._flat[self._check(offset, "wrote")] = value

    def _check(self, offset: Any, verb: str) -> int:
        try:
            i = operator.index(offset)
        except TypeError:
            raise TypeError(
                f"{self._callback} indexed {self._name} with {offset!r}; offsets are integers"
            ) from None
        n = len(self._flat)
        if not 0 <= i < n:
            raise CallbackIndexError(
                f"{self._callback} {verb} {self._name} at offset {i}, outside its {n} elements "
                f"(valid offsets 0..{n - 1}); {self._name} is {self._about}"
            )
        return i



def checked_views(cb: Any, flat: Any, info: Any, layout: Layout) -> tuple[CheckedBuffer, CheckedBuffer]:
    """``cb``'s buffer (its input for a prolog, its output for an epilog) and its user data as
    bounds-checked buffers whose errors name the callback and ``layout``, the buffer's layout."""
    who = f"{cb.kind} {cb.name!r}"
    side = "input" if cb.kind == "prolog" else "output"
    where = f"the FFT {side} of shape {layout.shape} and element strides {layout.strides}"
    buffer = "data_in" if cb.kind == "prolog" else "data_out"
    return (
        CheckedBuffer(flat, buffer, who, where),
        CheckedBuffer(info, "user_info", who, f"the {cb.kind}'s user data, indexed by offsets into {where}"),
    )
