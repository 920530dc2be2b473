"""The per-block loops that apply a CPU callback, written once for numba and the debug mode.

A loop walks ``rows`` rows of ``shape[-1]`` elements of two equally shaped strided views
(``shape`` and the strides list the axes outermost first) and calls the cuFFT-form callback
once per element with the element's offset in the FFT's input (prolog) or output (epilog).
Offsets are unsigned as in cuFFT, which also keeps numba from adding negative-index checks
that stop LLVM vectorizing. The in-place loops read and write one array at one offset, so
LLVM sees that iterations are independent, where two views of the same memory make it give up.

Nothing here imports numba: ``cpu_backend`` compiles these loops with the callback inlined
into one native function per loop, and the debug mode runs them as plain Python.

Compiled, the loops are *guarded*: an exception raised by the callback (a ``raise``, numba's
complex division by zero, an offset outside a checked buffer) stops the loop, which returns
``1 + r * n + j``, the position of the failing element (row ``r``, element ``j``; 0 when every
element was done). numba itself would print such an exception from a C function and carry on
with the next call, so the caller reruns the failing element to report it. A callback that
cannot raise compiles the handler away: the guard costs nothing then. Unguarded (the debug
mode), the exception propagates and the loops return 0.
"""

from __future__ import annotations

from typing import Callable


def row_start(r, shape, a_base, a_strides, b_base, b_strides):  # noqa: ANN001, ANN201
    """Offsets in two buffers of the first element of row ``r`` (all axes but the last).

    >>> row_start(2, [3, 4], 0, [4, 1], 100, [8, 2])
    (8, 116)
    """
    a, b, rest = a_base, b_base, r
    for k in range(len(shape) - 2, -1, -1):
        q = rest // shape[k]
        i = rest - q * shape[k]
        a += i * a_strides[k]
        b += i * b_strides[k]
        rest = q
    return a, b


def make_loops(kind: str, cb: Callable, jit: Callable, start: Callable = row_start,
               guard: bool = False) -> tuple[Callable, Callable]:
    """``(apart, in_place)``: the loops that apply ``cb``, each jitted by ``jit``.

    ``apart(src, src_base, src_strides, dst, dst_base, dst_strides, info, rows, shape)`` reads
    ``src`` and writes ``dst``; ``in_place(data, base, strides, info, rows, shape)`` reads and
    writes ``data``. The callback is closed over, so numba compiles it into the loop (inlined,
    vectorized). ``start`` is ``row_start`` as the loops can call it (jitted for numba).
    ``guard``: return the failing element's position instead of raising (see above).
    """
    if kind == "prolog":

        def apart(data_in, in_base, in_strides, dst, dst_base, dst_strides, info, rows, shape):  # noqa: ANN001, ANN202
            n, si, sd = shape[-1], in_strides[-1], dst_strides[-1]
            for r in range(rows):
                a, b = start(r, shape, in_base, in_strides, dst_base, dst_strides)
                for j in range(n):
                    dst[b + j * sd] = cb(data_in, a + j * si, info, None)
            return 0

        def apart_guarded(data_in, in_base, in_strides, dst, dst_base, dst_strides, info, rows, shape):  # noqa: ANN001, ANN202
            n, si, sd = shape[-1], in_strides[-1], dst_strides[-1]
            for r in range(rows):
                a, b = start(r, shape, in_base, in_strides, dst_base, dst_strides)
                j = 0
                try:
                    for j in range(n):
                        dst[b + j * sd] = cb(data_in, a + j * si, info, None)
                except Exception:
                    return 1 + r * n + j
            return 0

        def in_place(data, base, strides, info, rows, shape):  # noqa: ANN001, ANN202
            n, step = shape[-1], strides[-1]
            for r in range(rows):
                a, _ = start(r, shape, base, strides, base, strides)
                for j in range(n):
                    data[a + j * step] = cb(data, a + j * step, info, None)
            return 0

        def in_place_guarded(data, base, strides, info, rows, shape):  # noqa: ANN001, ANN202
            n, step = shape[-1], strides[-1]
            for r in range(rows):
                a, _ = start(r, shape, base, strides, base, strides)
                j = 0
                try:
                    for j in range(n):
                        data[a + j * step] = cb(data, a + j * step, info, None)
                except Exception:
                    return 1 + r * n + j
            return 0

    else:

        def apart(src, src_base, src_strides, data_out, out_base, out_strides, info, rows, shape):  # noqa: ANN001, ANN202
            n, ss, so = shape[-1], src_strides[-1], out_strides[-1]
            for r in range(rows):
                a, b = start(r, shape, src_base, src_strides, out_base, out_strides)
                for j in range(n):
                    cb(data_out, b + j * so, src[a + j * ss], info, None)
            return 0

        def apart_guarded(src, src_base, src_strides, data_out, out_base, out_strides, info, rows, shape):  # noqa: ANN001, ANN202
            n, ss, so = shape[-1], src_strides[-1], out_strides[-1]
            for r in range(rows):
                a, b = start(r, shape, src_base, src_strides, out_base, out_strides)
                j = 0
                try:
                    for j in range(n):
                        cb(data_out, b + j * so, src[a + j * ss], info, None)
                except Exception:
                    return 1 + r * n + j
            return 0

        def in_place(data, base, strides, info, rows, shape):  # noqa: ANN001, ANN202
            n, step = shape[-1], strides[-1]
            for r in range(rows):
                a, _ = start(r, shape, base, strides, base, strides)
                for j in range(n):
                    cb(data, a + j * step, data[a + j * step], info, None)
            return 0

        def in_place_guarded(data, base, strides, info, rows, shape):  # noqa: ANN001, ANN202
            n, step = shape[-1], strides[-1]
            for r in range(rows):
                a, _ = start(r, shape, base, strides, base, strides)
                j = 0
                try:
                    for j in range(n):
                        cb(data, a + j * step, data[a + j * step], info, None)
                except Exception:
                    return 1 + r * n + j
            return 0

    if guard:
        return jit(apart_guarded), jit(in_place_guarded)
    return jit(apart), jit(in_place)


def element_offsets(position: int, shape, a_base, a_strides, b_base, b_strides) -> tuple[int, int]:  # noqa: ANN001
    """The offsets in both buffers of the element at ``position`` (``r * n + j``, as the guarded
    loops count) of a walk over ``shape`` with two buffers' strides.

    >>> element_offsets(9, [3, 4], 0, [4, 1], 100, [8, 2])
    (9, 118)
    """
    n = int(shape[-1])
    r, j = divmod(int(position), n)
    a, b = row_start(r, [int(v) for v in shape], int(a_base), [int(v) for v in a_strides], int(b_base),
                     [int(v) for v in b_strides])
    return a + j * int(a_strides[-1]), b + j * int(b_strides[-1])
