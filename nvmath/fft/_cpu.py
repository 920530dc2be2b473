"""The CPU executor: SciPy's FFT with the callbacks applied by numba loops, on the offsets cuFFT uses.

One execution has three steps, each walking the problem's layouts (``FFTProblem.input`` and
``.output``): *stage* (the prolog, applied while filling the array the FFT reads), the FFT
(``scipy.fft``, unnormalized both ways like cuFFT) and *finish* (the epilog, applied while
writing the FFT's result into the output). A callback's ``offset`` is the element's offset in
the input (prolog) or output (epilog) layout, computed on the fly from shape and strides.

Batched problems run *pipelined*: the batch is cut into blocks of about ``BLOCK_BYTES`` and
each worker thread stages, transforms and finishes one block at a time, so the epilog reads
the FFT's result while it is still in cache. Other problems run *phased*: every step over the
whole problem, the FFT threaded by SciPy and the callback loops split among the threads.

No full-size temporary is made beyond what the FFT needs: for C2C the input (or the prolog's
result) is staged into the output, where the FFT then runs in place and an elementwise epilog
rewrites it; other temporaries are one block large (SciPy's R2C/C2R results).

The numba loops close over their callback, so numba compiles one loop per callback with the
callback inlined (and vectorized): about 0.2 s per new callback. A first-class function
pointer would compile the loops once, but a call through the pointer per element measured 8x
slower than the inlined loop; passing the callback as an argument costs 10 us per call while
numba types it.

With ``debug=True`` the callbacks run as plain Python (``print`` and breakpoints work) on
bounds-checked views of the buffers: an offset outside a buffer raises
:class:`CallbackIndexError` naming the callback, the buffer, the offset and the layout.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import operator
import os
import threading
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import numpy as np

from ._layout import FFTProblem, Layout, data_layout_matches
from ._tensor import flat_view

if TYPE_CHECKING:
    from compiler.cpu_backend import CpuCallback

__all__ = ["BLOCK_BYTES", "CallbackIndexError", "CheckedBuffer", "CpuExecutor"]

#: Stage bytes per block of a pipelined execution: large enough that the Python, SciPy and
#: numba costs of each call vanish, small enough to give every thread several blocks and keep
#: them in the shared cache (4 MiB measured best on a 2-core EPYC; 1 MiB blocks cost 15% more).
BLOCK_BYTES = 4 << 20


class CallbackIndexError(IndexError):
    """A callback indexed a buffer outside its elements (raised in debug mode only)."""


class CheckedBuffer:
    """A 1-D buffer that refuses offsets outside it, saying which callback and buffer erred.

    >>> buf = CheckedBuffer(np.zeros(4), "user_info", "epilog 'scale'", "laid out like the output")
    >>> buf[3] = 1.0
    >>> buf[4]
    Traceback (most recent call last):
    ...
    nvmath.fft._cpu.CallbackIndexError: epilog 'scale' read user_info at offset 4, outside its 4 elements (valid offsets 0..3); user_info is laid out like the output
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


class _Loops(NamedTuple):
    """One callback's loops, and how their walk arguments are passed (numba: uint64; Python: int)."""

    apart: Callable  # reads one buffer, writes another
    in_place: Callable  # reads and writes one buffer at the same offsets
    scalar: Callable[[int], Any]
    vector: Callable[[np.ndarray], Any]


def _row_start(r, shape, a_base, a_strides, b_base, b_strides):  # noqa: ANN001, ANN202
    """Offsets in two buffers of the first element of row ``r`` (all axes but the last)."""
    a, b, rest = a_base, b_base, r
    for k in range(len(shape) - 2, -1, -1):
        q = rest // shape[k]
        i = rest - q * shape[k]
        a += i * a_strides[k]
        b += i * b_strides[k]
        rest = q
    return a, b


def _make_loops(kind: str, cb: Callable, jit: Callable) -> tuple[Callable, Callable]:
    """The loops that apply ``cb``, jitted by ``jit``; one source serves numba and the debug mode.

    The callback is closed over, so numba compiles it into the loop (inlined, vectorized) and a
    call passes only arrays and integers. Each loop walks ``rows`` rows of ``shape[-1]``
    elements; ``shape`` and the strides list the axes outermost first. Offsets are unsigned as
    in cuFFT, which also keeps numba from adding negative-index checks that stop LLVM
    vectorizing. The in-place loops read and write one array at one offset, so LLVM sees that
    iterations are independent, where two views of the same memory make it give up.
    """
    row_start = _row_start_jit() if jit is not _python else _row_start
    if kind == "prolog":

        def apart(data_in, in_base, in_strides, dst, dst_base, dst_strides, info, rows, shape):  # noqa: ANN001, ANN202
            n, si, sd = shape[-1], in_strides[-1], dst_strides[-1]
            for r in range(rows):
                a, b = row_start(r, shape, in_base, in_strides, dst_base, dst_strides)
                for j in range(n):
                    dst[b + j * sd] = cb(data_in, a + j * si, info, None)

        def in_place(data, base, strides, info, rows, shape):  # noqa: ANN001, ANN202
            n, step = shape[-1], strides[-1]
            for r in range(rows):
                a, _ = row_start(r, shape, base, strides, base, strides)
                for j in range(n):
                    data[a + j * step] = cb(data, a + j * step, info, None)

    else:

        def apart(src, src_base, src_strides, data_out, out_base, out_strides, info, rows, shape):  # noqa: ANN001, ANN202
            n, ss, so = shape[-1], src_strides[-1], out_strides[-1]
            for r in range(rows):
                a, b = row_start(r, shape, src_base, src_strides, out_base, out_strides)
                for j in range(n):
                    cb(data_out, b + j * so, src[a + j * ss], info, None)

        def in_place(data, base, strides, info, rows, shape):  # noqa: ANN001, ANN202
            n, step = shape[-1], strides[-1]
            for r in range(rows):
                a, _ = row_start(r, shape, base, strides, base, strides)
                for j in range(n):
                    cb(data, a + j * step, data[a + j * step], info, None)

    return jit(apart), jit(in_place)


def _python(fn: Callable) -> Callable:
    """The debug mode's "jit": the function itself."""
    return fn


@functools.cache
def _row_start_jit() -> Callable:
    import numba

    return numba.njit(nogil=True)(_row_start)


@functools.lru_cache(maxsize=256)
def _loops(kind: str, wrapper: Callable, python: bool) -> _Loops:
    """The loops of one callback wrapper (compiled by numba on first call, unless ``python``)."""
    if python:
        return _Loops(*_make_loops(kind, wrapper, _python), int, lambda a: [int(v) for v in a])
    import numba

    return _Loops(*_make_loops(kind, wrapper, numba.njit(nogil=True)), np.uint64, lambda a: a)


@functools.lru_cache(maxsize=512)
def _walk(shape: tuple[int, ...], a_strides: tuple[int, ...], b_strides: tuple[int, ...]) -> tuple:
    """How to visit every element of two equally shaped strided arrays, ``b`` in memory order.

    Returns ``(rows, shape, a_strides, b_strides)`` (uint64) with length-1 axes dropped and
    axes merged where both arrays step over them as one.

    >>> rows, shape, a, b = _walk((4, 3, 1), (3, 1, 9), (1, 4, 7))
    >>> int(rows), shape.tolist(), a.tolist(), b.tolist()
    (3, [3, 4], [1, 3], [4, 1])
    >>> rows, shape, a, b = _walk((4, 3), (3, 1), (3, 1))
    >>> int(rows), shape.tolist()
    (1, [12])
    """
    axes = sorted((k for k in range(len(shape)) if shape[k] > 1), key=lambda k: (-b_strides[k], -a_strides[k]))
    dims: list[list[int]] = []
    for k in axes:
        n, sa, sb = shape[k], a_strides[k], b_strides[k]
        if sa < 0 or sb < 0:
            raise ValueError(f"negative strides {a_strides}, {b_strides} reached the CPU executor")
        if dims and dims[-1][1] == sa * n and dims[-1][2] == sb * n:
            dims[-1] = [dims[-1][0] * n, sa, sb]  # the outer axis steps exactly over this one
        else:
            dims.append([n, sa, sb])
    dims = dims or [[1, 0, 0]]
    table = np.array(dims, dtype=np.uint64).T.copy()
    table.flags.writeable = False  # shared by every call through the cache
    rows = 1
    for n in table[0][:-1]:
        rows *= int(n)
    return np.uint64(rows), table[0], table[1], table[2]


def _strides(a: np.ndarray) -> tuple[int, ...]:
    item = a.dtype.itemsize
    return tuple(s // item for s in a.strides)


def _flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view from ``a``'s first element over every element it addresses."""
    if a.flags.c_contiguous:
        return a.reshape(-1)
    return flat_view(a, Layout(a.shape, _strides(a)).span)


def _address(a: Any) -> int:
    return a.__array_interface__["data"][0]


def _same_view(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.strides == b.strides and _address(a) == _address(b)


_pools: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = _pools[workers] = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="fftfuse-cpu")
        return pool


def _index(ndim: int, axis: int, lo: int, hi: int) -> tuple[slice, ...]:
    return tuple(slice(lo, hi) if k == axis else slice(None) for k in range(ndim))


def _cuts(n: int, parts: int) -> list[tuple[int, int]]:
    """``range(n)`` cut into at most ``parts`` nearly equal pieces."""
    parts = max(1, min(parts, n))
    return [(n * k // parts, n * (k + 1) // parts) for k in range(parts)]


@dataclasses.dataclass
class _Call:
    """What one execution works on, and the decisions that depend on the arrays."""

    inp: np.ndarray
    out: np.ndarray
    in_address: int
    out_address: int
    direction: str
    data_in: Any  # flat input as the prolog sees it (bounds-checked in debug mode)
    data_out: Any  # flat output as the epilog sees it
    prolog_info: Any
    epilog_info: Any
    stage_to_out: bool  # the stage step writes the output, where the FFT then runs in place
    inp_writable: bool  # the FFT may overwrite the input
    hazard: bool  # input and output overlap and a callback may touch other offsets


class CpuExecutor:
    """Runs one planned FFT on the CPU with an optional prolog and epilog.

    >>> from nvmath.fft._layout import plan_problem
    >>> from compiler.cpu_backend import python_callback
    >>> x = np.arange(8, dtype=np.complex128).reshape(2, 4)
    >>> problem = plan_problem("fft", x.shape, (4, 1), "complex128", axes=(1,))
    >>> epilog = python_callback(lambda v: 2 * v, "epilog", "complex128")
    >>> out = np.empty_like(x)
    >>> CpuExecutor(problem, None, epilog, workers=1).execute(x, out, "forward", None, None)
    >>> bool(np.allclose(out, 2 * np.fft.fft(x)))
    True
    """

    def __init__(
        self,
        problem: FFTProblem,
        prolog: CpuCallback | None,
        epilog: CpuCallback | None,
        *,
        workers: int | None = None,
        debug: bool = False,
    ) -> None:
        _check_callback(prolog, "prolog", problem.input_dtype)
        _check_callback(epilog, "epilog", problem.output_dtype)
        self.problem = problem
        self.workers = max(1, int(workers or os.cpu_count() or 1))
        self.debug = bool(debug) or any(cb is not None and cb.source == "python" for cb in (prolog, epilog))
        if self.debug:
            prolog, epilog = (_as_python(cb) for cb in (prolog, epilog))
        self.prolog, self.epilog = prolog, epilog
        self._prolog_loops = _loops("prolog", prolog.wrapper, self.debug) if prolog else None
        self._epilog_loops = _loops("epilog", epilog.wrapper, self.debug) if epilog else None
        self._dummies: dict[str, np.ndarray] = {}

    # -- public ------------------------------------------------------------------------------
    def execute(
        self,
        inp: np.ndarray,
        out: np.ndarray,
        direction: str,
        prolog_data: np.ndarray | None,
        epilog_data: np.ndarray | None,
        *,
        params: tuple[tuple, tuple] = ((), ()),
    ) -> None:
        """Transform ``inp`` (layout ``problem.input``) into ``out`` (layout ``problem.output``).

        ``params``: the prolog's and the epilog's runtime parameter values (see ``compiler.terms``)."""
        p = self.problem
        _check_array(inp, p.input, p.input_dtype, "input")
        _check_array(out, p.output, p.output_dtype, "output")
        if direction not in ("forward", "inverse") or (p.fft_type != "C2C" and direction != p.direction):
            raise ValueError(f"direction {direction!r} is not valid for a {p.fft_type} FFT")
        call = self._call(inp, out, direction, prolog_data, epilog_data, params)
        blocks = self._batch_blocks()
        workers = 1 if self.debug else self.workers
        if call.hazard or blocks is None:
            self._phased(call, workers)
        elif workers == 1 or len(blocks) == 1:
            for block in blocks:
                self._block(call, block, 1)
        else:
            list(_pool(workers).map(lambda block: self._block(call, block, 1), blocks))

    # -- planning one call -------------------------------------------------------------------
    def _call(self, inp: np.ndarray, out: np.ndarray, direction: str, prolog_data: Any, epilog_data: Any,
              params: tuple[tuple, tuple] = ((), ())) -> _Call:
        p = self.problem
        overlap = p.inplace or bool(np.may_share_memory(inp, out))
        elementwise = all(cb is None or cb.elementwise for cb in (self.prolog, self.epilog))
        hazard = overlap and not elementwise
        epilog_in_place = self.epilog is None or self.epilog.elementwise
        data_in = flat_view(inp, p.input.span) if self.prolog else None
        data_out = flat_view(out, p.output.span) if self.epilog else None
        prolog_info = self._user_data(self.prolog, prolog_data, p.input)
        epilog_info = self._user_data(self.epilog, epilog_data, p.output)
        if self.debug:
            data_in, prolog_info = self._checked(self.prolog, data_in, prolog_info, "input", p.input)
            data_out, epilog_info = self._checked(self.epilog, data_out, epilog_info, "output", p.output)
        # With runtime parameters, user_info is (data, *params), as the wrappers read it.
        prolog_info = _with_params(self.prolog, prolog_info, params[0])
        epilog_info = _with_params(self.epilog, epilog_info, params[1])
        return _Call(
            inp, out, _address(inp), _address(out), direction, data_in, data_out, prolog_info, epilog_info,
            stage_to_out=p.fft_type == "C2C" and epilog_in_place and not hazard,
            inp_writable=(p.copy_input or p.inplace) and not hazard,
            hazard=hazard,
        )

    def _user_data(self, cb: Any, data: np.ndarray | None, layout: Layout) -> np.ndarray | None:
        if cb is None:
            return None
        typed = not cb.user_dtype.startswith("numba:")
        if data is None:
            if cb.form.takes_data_element:
                raise ValueError(f"{cb.kind} {cb.name!r} reads user data (form f(x, d)) but none was given")
            if cb.user_dtype not in self._dummies:
                self._dummies[cb.user_dtype] = np.zeros(1, dtype=cb.user_dtype if typed else np.uint8)
            return self._dummies[cb.user_dtype]
        if data.ndim != 1:
            raise ValueError(f"{cb.kind} user data must be 1-D (element offset -> value), got shape {data.shape}")
        if typed and data.dtype != np.dtype(cb.user_dtype):
            raise ValueError(f"{cb.kind} {cb.name!r} was compiled for user data of {cb.user_dtype}, got {data.dtype}")
        reach = layout.span if cb.terms is None or cb.terms.data is None else cb.terms.data_span
        if cb.form.takes_data_element and data.shape[0] < reach:
            raise ValueError(
                f"{cb.kind} {cb.name!r} reads user data at positions up to {reach - 1}, but the data "
                f"has {data.shape[0]} elements"
            )
        return np.ascontiguousarray(data)

    def _checked(self, cb: Any, flat: Any, info: Any, side: str, layout: Layout) -> tuple[Any, Any]:
        if cb is None:
            return flat, info
        who = f"{cb.kind} {cb.name!r}"
        where = f"the FFT {side} of shape {layout.shape} and element strides {layout.strides}"
        buffer = "data_in" if cb.kind == "prolog" else "data_out"
        return (
            CheckedBuffer(flat, buffer, who, where),
            CheckedBuffer(info, "user_info", who, f"the {cb.kind}'s user data, indexed by offsets into {where}"),
        )

    def _batch_blocks(self) -> list[tuple[int, int, int]] | None:
        """Blocks ``(axis, lo, hi)`` along a batch axis for pipelined execution, or None."""
        p = self.problem
        live = [a for a in p.batch_axes if p.input.shape[a] > 1]
        if not live:
            return None
        axis = max(live, key=lambda a: (p.input.shape[a], p.input.strides[a]))
        n = p.input.shape[axis]
        if n < self.workers and not self.debug:
            return None  # too few blocks to keep every thread busy: let SciPy thread the FFT
        slab = (p.input.size // n) * np.dtype(p.input_dtype).itemsize
        per_block = max(1, min(BLOCK_BYTES // max(slab, 1), -(-n // self.workers)))
        return [(axis, lo, min(n, lo + per_block)) for lo in range(0, n, per_block)]

    # -- the three steps ---------------------------------------------------------------------
    def _block(self, call: _Call, block: tuple[int, int, int], workers: int) -> None:
        index = _index(len(self.problem.input.shape), *block)
        x, owned = self._stage(call, index, 1)
        result = self._transform(x, owned, call.direction, workers)
        self._finish(call, result, index, 1)

    def _phased(self, call: _Call, workers: int) -> None:
        whole = (slice(None),) * len(self.problem.input.shape)
        x, owned = self._stage(call, whole, workers)
        result = self._transform(x, owned, call.direction, self.workers)
        self._finish(call, result, whole, workers)

    def _stage(self, call: _Call, index: tuple[slice, ...], parts: int) -> tuple[np.ndarray, bool]:
        """The array the FFT reads for ``index`` (prolog applied) and whether it may overwrite it."""
        inp = call.inp[index]
        if self.prolog is not None or call.hazard:
            dst = call.out[index] if call.stage_to_out else np.empty_like(inp, order="K")
            step = self._prolog_step if self.prolog is not None else _copy_step
            self._elementwise(step, call, inp, dst, parts)
            return dst, True
        if call.inp_writable:
            return inp, True
        if call.stage_to_out:
            dst = call.out[index]
            self._elementwise(_copy_step, call, inp, dst, parts)
            return dst, True
        return inp, False

    def _transform(self, x: np.ndarray, owned: bool, direction: str, workers: int) -> np.ndarray:
        import scipy.fft as sfft

        p = self.problem
        if p.fft_type == "C2C":
            # cuFFT scales neither way: SciPy's "backward" forward and "forward" inverse don't either.
            if direction == "forward":
                return sfft.fftn(x, axes=p.axes, norm="backward", overwrite_x=owned, workers=workers)
            return sfft.ifftn(x, axes=p.axes, norm="forward", overwrite_x=owned, workers=workers)
        if p.fft_type == "R2C":
            return sfft.rfftn(x, axes=p.axes, norm="backward", workers=workers)
        return sfft.irfftn(x, s=p.fft_lengths, axes=p.axes, norm="forward", overwrite_x=owned, workers=workers)

    def _finish(self, call: _Call, result: np.ndarray, index: tuple[slice, ...], parts: int) -> None:
        out = call.out[index]
        if self.epilog is not None:
            self._elementwise(self._epilog_step, call, result, out, parts)
        elif not _same_view(result, out):
            self._elementwise(_copy_step, call, result, out, parts)

    # -- element loops -----------------------------------------------------------------------
    def _elementwise(self, step: Callable, call: _Call, src: np.ndarray, dst: np.ndarray, parts: int) -> None:
        """``step(call, src, dst)``, split into ``parts`` pieces run on the thread pool."""
        axis = max(range(src.ndim), key=lambda a: src.shape[a])
        cuts = _cuts(src.shape[axis], parts)
        if len(cuts) == 1:
            step(call, src, dst)
            return
        pieces = [_index(src.ndim, axis, lo, hi) for lo, hi in cuts]
        list(_pool(self.workers).map(lambda ix: step(call, src[ix], dst[ix]), pieces))

    def _prolog_step(self, call: _Call, src: np.ndarray, dst: np.ndarray) -> None:
        loops = self._prolog_loops
        rows, shape, s_in, s_dst = _walk(src.shape, _strides(src), _strides(dst))
        base = loops.scalar((_address(src) - call.in_address) // src.dtype.itemsize)
        rows, shape, s_in = loops.scalar(rows), loops.vector(shape), loops.vector(s_in)
        if _same_view(src, dst):  # an elementwise prolog of an in-place FFT
            loops.in_place(call.data_in, base, s_in, call.prolog_info, rows, shape)
        else:
            loops.apart(call.data_in, base, s_in, _flat(dst), loops.scalar(0), loops.vector(s_dst),
                        call.prolog_info, rows, shape)

    def _epilog_step(self, call: _Call, src: np.ndarray, dst: np.ndarray) -> None:
        loops = self._epilog_loops
        rows, shape, s_src, s_out = _walk(src.shape, _strides(src), _strides(dst))
        base = loops.scalar((_address(dst) - call.out_address) // dst.dtype.itemsize)
        rows, shape, s_out = loops.scalar(rows), loops.vector(shape), loops.vector(s_out)
        if _same_view(src, dst):  # the FFT ran in the output
            loops.in_place(call.data_out, base, s_out, call.epilog_info, rows, shape)
        else:
            loops.apart(_flat(src), loops.scalar(0), loops.vector(s_src), call.data_out, base, s_out,
                        call.epilog_info, rows, shape)


def _with_params(cb: Any, info: Any, values: tuple) -> Any:
    if cb is None or cb.terms is None or not cb.terms.params:
        return info
    if len(values) != len(cb.terms.params):
        raise ValueError(f"{cb.kind} {cb.name!r} takes runtime parameters {[n for n, _ in cb.terms.params]}; "
                         f"got {len(values)} values")
    return (info, *values)


def _copy_step(call: _Call, src: np.ndarray, dst: np.ndarray) -> None:
    np.copyto(dst, src)


def _check_callback(cb: Any, kind: str, element_dtype: str) -> None:
    if cb is None:
        return
    if cb.kind != kind:
        raise ValueError(f"a {cb.kind} callback was passed as the {kind}")
    if cb.element_dtype != element_dtype:
        raise ValueError(
            f"{kind} {cb.name!r} was compiled for {cb.element_dtype} elements; this FFT's {kind} sees {element_dtype}"
        )


def _as_python(cb: Any) -> Any:
    if cb is None or cb.source == "python":
        return cb
    from compiler.cpu_backend import python_callback

    return python_callback(cb.function, cb.kind, cb.element_dtype, cb.user_dtype, cb.terms)


def _check_array(a: np.ndarray, layout: Layout, dtype: str, what: str) -> None:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"the {what} must be a NumPy array, got {type(a).__name__}")
    if a.dtype != np.dtype(dtype) or not data_layout_matches(a.shape, _strides(a), layout):
        raise ValueError(
            f"the {what} array ({a.dtype}, shape {a.shape}, strides {_strides(a)}) does not match the planned "
            f"{what} ({dtype}, shape {layout.shape}, strides {layout.strides})"
        )

