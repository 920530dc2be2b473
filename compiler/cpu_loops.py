"""The per-block loops that apply a CPU callback, written once for numba and the debug mode.

A loop walks ``rows`` rows of ``shape[-1]`` elements of two equally shaped strided views
(``shape`` and the strides list the axes outermost first) and calls the cuFFT-form callback
once per element with the element's offset in the FFT's input (prolog) or output (epilog).
Offsets are unsigned as in cuFFT, which also keeps numba from adding negative-index checks
that stop LLVM vectorizing. The in-place loops read and write one array at one offset, so
LLVM sees that iterations are independent, where two views of the same memory make it give up.

Nothing here imports numba: ``cpu_backend`` compiles these loops with the callback inlined
into one native function per loop, and the debug mode runs them as plain Python.
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


def make_loops(kind: str, cb: Callable, jit: Callable, start: Callable = row_start) -> tuple[Callable, Callable]:
    """``(apart, in_place)``: the loops that apply ``cb``, each jitted by ``jit``.

    ``apart(src, src_base, src_strides, dst, dst_base, dst_strides, info, rows, shape)`` reads
    ``src`` and writes ``dst``; ``in_place(data, base, strides, info, rows, shape)`` reads and
    writes ``data``. The callback is closed over, so numba compiles it into the loop (inlined,
    vectorized). ``start`` is ``row_start`` as the loops can call it (jitted for numba).
    """
    if kind == "prolog":

        def apart(data_in, in_base, in_strides, dst, dst_base, dst_strides, info, rows, shape):  # noqa: ANN001, ANN202
            n, si, sd = shape[-1], in_strides[-1], dst_strides[-1]
            for r in range(rows):
                a, b = start(r, shape, in_base, in_strides, dst_base, dst_strides)
                for j in range(n):
                    dst[b + j * sd] = cb(data_in, a + j * si, info, None)

        def in_place(data, base, strides, info, rows, shape):  # noqa: ANN001, ANN202
            n, step = shape[-1], strides[-1]
            for r in range(rows):
                a, _ = start(r, shape, base, strides, base, strides)
                for j in range(n):
                    data[a + j * step] = cb(data, a + j * step, info, None)

    else:

        def apart(src, src_base, src_strides, data_out, out_base, out_strides, info, rows, shape):  # noqa: ANN001, ANN202
            n, ss, so = shape[-1], src_strides[-1], out_strides[-1]
            for r in range(rows):
                a, b = start(r, shape, src_base, src_strides, out_base, out_strides)
                for j in range(n):
                    cb(data_out, b + j * so, src[a + j * ss], info, None)

        def in_place(data, base, strides, info, rows, shape):  # noqa: ANN001, ANN202
            n, step = shape[-1], strides[-1]
            for r in range(rows):
                a, _ = start(r, shape, base, strides, base, strides)
                for j in range(n):
                    cb(data, a + j * step, data[a + j * step], info, None)

    return jit(apart), jit(in_place)
