"""The CPU executor: an FFT engine's FFT with the callbacks applied by native loops, on the offsets cuFFT uses.

One execution has three steps, each walking the problem's layouts (``FFTProblem.input`` and
``.output``): *stage* (the prolog, applied while filling the array the FFT reads), the FFT
(ducc0, or another engine of ``_cpu_engines`` chosen at planning, unnormalized both ways like
cuFFT, writing into the output where it can) and
*finish* (the epilog, applied to the FFT's result in the output). A callback's ``offset`` is the element's offset in
the input (prolog) or output (epilog) layout, computed on the fly from shape and strides.

Problems smaller than ``THREAD_BYTES`` (one block) run each step once over the whole problem:
the callbacks' loops on the calling thread, the FFT threaded by ducc0 itself (its C++ threads
cost less than a Python thread pool at that size). Problems above ``THREAD_BYTES`` run
*pipelined*: the batch is cut into blocks of about ``BLOCK_BYTES`` and each worker thread
stages, transforms and finishes one block at a time, so the epilog reads the FFT's result
while it is still in cache. Other large problems run *phased*: every step over the whole
problem, the FFT threaded by its engine and the callback loops split among the threads. The
number of threads is ``workers`` (``num_threads`` of the options or of ``ExecutionCPU``), all
cores by default; a problem with blocks may pipeline on fewer, or run phased after all, as
measured on its first runs (``_cpu_threads``: the blocks' Python shares the GIL, all share the
memory bus, and an engine may thread one large FFT better than our pool threads its blocks).

No full-size temporary is made beyond what the FFT needs: for C2C the input (or the prolog's
result) is staged into the output, where the FFT then runs in place; R2C and C2R write their
result into the output; an elementwise epilog then rewrites it in place. Only a cuFFT-form
epilog (which may write other offsets) reads the FFT's result from a block-sized temporary.

A run given no output (``out=None``: any new array laid out as the problem's output will do, as
for the results of ``FFT.execute`` and the stateless functions) on an engine that allocates its
result (SciPy's), where it runs the whole problem at once (below ``THREAD_BYTES``, or as
measured), returns the engine's own array, the epilog applied in place on it: no output is
allocated before the FFT and nothing is copied, as in the unfused ``y = scipy.fft.fft(x); y *=
h``. Given an output, the run writes it.

``run`` is the one way in. It keeps a fast path per direction for problems that run in one
piece on the calling thread with native loops and ducc0 (the small calls, where Python's own
cost is the cost): every layout decision taken once, each call checking only that its arrays
are the planned ones (else the general path runs, which checks and explains).

The loops (``fftfuse_compiler.cpu_loops``) are compiled with the callback inlined into one native
function each (``fftfuse_compiler.cpu_backend``) and called through ctypes, which releases the GIL.

With ``debug=True`` the callbacks run as plain Python (``print`` and breakpoints work) on
bounds-checked views of the buffers: an offset outside a buffer raises
:class:`CallbackIndexError` naming the callback, the buffer, the offset and the layout.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import time
import weakref
from ctypes import addressof, c_char, c_uint64, c_void_p
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from . import _cpu_engines, _cpu_threads
from ._checked import CallbackIndexError, CheckedBuffer, checked_views
from ._executor import CallArgs, CallData
from ._layout import FFTProblem, Layout, data_layout_matches, dense_strides
from ._tensor import empty_factory, flat_view

if TYPE_CHECKING:
    from fftfuse_compiler.cpu_backend import CpuCallback

__all__ = ["BLOCK_BYTES", "PIECE_BYTES", "THREAD_BYTES", "CallbackIndexError", "CheckedBuffer", "CpuExecutor",
           "checked_views"]

#: Stage bytes per block of a pipelined execution: large enough that the Python, SciPy and
#: numba costs of each call vanish, small enough to give every thread several blocks and keep
#: them in the shared cache (4 MiB measured best on a 2-core EPYC; 1 MiB blocks cost 15% more).
BLOCK_BYTES = 4 << 20

#: Problems whose input is smaller than this (one block) run their loops on the calling thread
#: (and the FFT on ducc0's threads); larger ones are pipelined over our threads. Measured on
#: the 2-core CI VM, otherwise idle (benchmarks/cpu_callbacks.py --threads, filter epilog on
#: B x 1024 complex64, two runs): one thread won up to 64 x 1024 (512 KiB); at 256 x 1024 (2 MiB)
#: each won one run; two threads won both from 1024 x 1024 (8 MiB: 3.4-3.9 against 4.6-4.8 ms;
#: 32 MiB: 15.5-15.8 against 21.8-25.7 ms). With other jobs on its two vCPUs, one thread had won
#: at every size: threads pay only where cores are free.
THREAD_BYTES = BLOCK_BYTES

#: A pass of the callback loops split among threads (a run of the whole problem at once) gives
#: each thread at least this many bytes to write: every piece costs a pool hand-over and its
#: Python holds the GIL, which sixteen threads queue for. On the 16-core host, R2C 1024 x 1024
#: complex64 with a scale epilog split 16 ways took 2.4 ms a call, SciPy's FFT on 16 threads
#: then NumPy's multiply on one 1.1 ms.
PIECE_BYTES = 1 << 20


@functools.lru_cache(maxsize=512)
def _walk(shape: tuple[int, ...], a_strides: tuple[int, ...], b_strides: tuple[int, ...]) -> tuple:
    """How to visit every element of two equally shaped strided arrays, ``b`` in memory order.

    Returns ``(rows, shape, a_strides, b_strides)`` (the last three uint64 arrays) with length-1 axes dropped and
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
    table = np.array(dims, dtype=np.uint64).T.copy()  # shared by every call through the cache: never written
    rows = 1
    for n in table[0][:-1]:
        rows *= int(n)
    return rows, table[0], table[1], table[2]


@functools.lru_cache(maxsize=512)
def _walk_bytes(shape: tuple[int, ...], a_strides: tuple[int, ...], a_item: int, b_strides: tuple[int, ...],
                b_item: int) -> tuple:
    return _walk(shape, tuple(s // a_item for s in a_strides), tuple(s // b_item for s in b_strides))


def _walk_arrays(a: np.ndarray, b: np.ndarray) -> tuple:
    """``_walk`` of two arrays, keyed by their byte strides (no per-call conversion)."""
    return _walk_bytes(a.shape, a.strides, a.itemsize, b.strides, b.itemsize)


def _strides(a: np.ndarray) -> tuple[int, ...]:
    item = a.dtype.itemsize
    return tuple(s // item for s in a.strides)


def _flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view from ``a``'s first element over every element it addresses."""
    if a.flags.c_contiguous:
        return a.reshape(-1)
    return flat_view(a, Layout(a.shape, _strides(a)).span)


def _address(a: Any) -> int:
    try:
        return addressof(c_char.from_buffer(a))  # 3x faster than __array_interface__
    except (TypeError, ValueError, BufferError):  # read-only or not contiguous
        return a.__array_interface__["data"][0]


def _dense_address(a: np.ndarray) -> int | None:
    """``a``'s address where it is C-contiguous, else None."""
    return _address(a) if a.flags.c_contiguous else None


def _data_read(data: np.ndarray | None, no_data: tuple[int, int] | None, reads: int,
               dtype: np.dtype | None) -> tuple[int, int] | None:
    """(address, elements) a fast-path loop reads a callback's ``data`` from, or None where the
    general path must run: no data where the plan has some (``no_data`` None; else what it reads
    instead), fewer than ``reads`` elements, another dtype, or not C-contiguous."""
    if data is None:
        return no_data
    n = data.size
    # dtypes of NumPy's own types are singletons: ``is`` decides without a comparison
    if n < reads or (dtype is not None and data.dtype is not dtype and data.dtype != dtype):
        return None
    address = _dense_address(data)
    return None if address is None else (address, n)


def _data_reader(no_data: tuple[int, int] | None, reads: int,
                 dtype: np.dtype | None) -> Callable[[Any], tuple[int, int] | None]:
    """:func:`_data_read` for one callback of a fast path, which answers again without checking
    for the array it last accepted (a plan's data is the same array on every run: 0.2 us a call
    instead of 1 on the CI VM). The same array object keeps its address and elements while its
    size, type and strides stay (NumPy moves an array's memory only to change its size); it is
    remembered by a weak reference, so the plan does not keep a stateless call's data alive."""
    seen: list = [None]  # (weak reference, size, dtype, strides, answer), replaced whole

    def read(data: Any) -> tuple[int, int] | None:
        if data is None:
            return no_data
        memo = seen[0]
        if (memo is not None and memo[0]() is data and data.size == memo[1] and data.dtype is memo[2]
                and data.strides == memo[3]):
            return memo[4]
        answer = _data_read(data, no_data, reads, dtype)
        if answer is not None and isinstance(data, np.ndarray):
            seen[0] = (weakref.ref(data), data.size, data.dtype, data.strides, answer)
        return answer

    return read


def _array_at(address: int, n: int, dtype: str) -> np.ndarray:
    """The ``n`` elements of ``dtype`` at ``address`` as an array (the fast path's user data, for
    reporting a failure: it holds addresses only)."""
    import ctypes

    dtype = np.dtype(dtype if not dtype.startswith("numba:") else np.uint8)
    return np.frombuffer((ctypes.c_char * (n * dtype.itemsize)).from_address(address), dtype=dtype)


def _same_view(a: np.ndarray, b: np.ndarray) -> bool:
    if a is b:
        return True
    return a.shape == b.shape and a.strides == b.strides and _address(a) == _address(b)


_pools: dict[int, Any] = {}
_pools_lock = threading.Lock()


def _pool(workers: int) -> Any:
    """The process's thread pool of ``workers`` threads (concurrent.futures is imported only here:
    small problems never need it, and a fresh process saves the import)."""
    import concurrent.futures

    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = _pools[workers] = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="fftfuse-cpu")
        return pool


def _spread(task: Callable[[Any], None], items: list, threads: int) -> None:
    """``task(item)`` for every item, on ``threads`` threads: the calling thread and
    ``threads - 1`` of a pool, each taking the next item left until none is. The caller works
    instead of waiting, and one thread fewer is woken: a pool's hand-over costs tens of
    microseconds on a shared VM (a 2-thread pool mapping two no-op calls: 60-80 us on 2 cores).
    The first exception raised is re-raised once every thread has stopped."""
    if threads <= 1 or len(items) <= 1:
        for item in items:
            task(item)
        return
    pending, lock = iter(items), threading.Lock()

    def drain() -> None:
        while True:
            with lock:  # the iterator is shared (a lock, not the GIL, keeps it consistent)
                item = next(pending, _DONE)
            if item is _DONE:
                return
            task(item)

    pool = _pool(threads - 1)  # one pool per thread count, however many items
    futures = [pool.submit(drain) for _ in range(min(threads, len(items)) - 1)]
    try:
        drain()
    finally:
        errors = [f.exception() for f in futures]  # waits for each helper
    raised = next((e for e in errors if e is not None), None)
    if raised is not None:
        raise raised


_DONE = object()


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
    out: np.ndarray | None  # None until the engine's array becomes the output (``_adopted``)
    direction: str
    data_in: Any  # flat input as the prolog sees it (bounds-checked in debug mode)
    data_out: Any  # flat output as the epilog sees it
    prolog_info: Any
    epilog_info: Any
    stage_to_out: bool  # the stage step writes the output, where the FFT then runs in place
    result_to_out: bool  # the FFT writes its result into the output (the epilog then runs in place)
    overlap: bool  # input and output share memory
    inp_writable: bool  # the FFT may overwrite the input
    hazard: bool  # input and output overlap and a callback may touch other offsets


class CpuExecutor:
    """Runs one planned FFT on the CPU with an optional prolog and epilog.

    >>> from nvmath.fft._layout import plan_problem
    >>> from fftfuse_compiler.cpu_backend import python_callback
    >>> x = np.arange(8, dtype=np.complex128).reshape(2, 4)
    >>> problem = plan_problem("fft", x.shape, (4, 1), "complex128", axes=(1,))
    >>> epilog = python_callback(lambda v: 2 * v, "epilog", "complex128")
    >>> out = np.empty_like(x)
    >>> _ = CpuExecutor(problem, None, epilog, workers=1).execute(x, out, "forward", None, None)
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
        engine: str | None = None,
    ) -> None:
        _check_callback(prolog, "prolog", problem.input_dtype)
        _check_callback(epilog, "epilog", problem.output_dtype)
        self.problem = problem
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1):
            raise ValueError(f"num_threads must be a positive integer (or None for all cores), got {workers!r}")
        self.workers = int(workers or os.cpu_count() or 1)
        self.debug = bool(debug) or any(cb is not None and cb.source == "python" for cb in (prolog, epilog))
        if self.debug:
            prolog, epilog = (_as_python(cb) for cb in (prolog, epilog))
        self.prolog, self.epilog = prolog, epilog
        for cb in (prolog, epilog):
            if cb is not None:
                cb.loops.ready()  # compiled at planning, not by the first execution
        self._dummies: dict[str, np.ndarray] = {}
        self._seen_in: tuple = ()
        self._seen_out: tuple = ()
        self._blocks: dict[int, Any] = {}
        self._runs: dict[str, Callable[..., Any]] = {}  # per direction: the fast path, or the general one
        self._trial_runs: dict[tuple[str, str], Callable[..., Any]] = {}  # per engine trial's candidate, direction
        self._elementwise_only = all(cb is None or cb.elementwise for cb in (prolog, epilog))
        out = problem.output
        self._new_output = empty_factory(np, out.shape, out.strides, problem.output_dtype, out.span)
        # Whether a run given no output may return an array the engine made (epilog in place on it).
        may_adopt = not problem.inplace and (epilog is None or epilog.elementwise)
        # The FFT engine (_cpu_engines): chosen now, at planning, so no execution measures it; for
        # a call in one piece, with the FFT's thread count.
        self._measured_fft_threads = 0
        measured_call = self._fft_call(may_adopt)  # its threads: the rule's (a "ducc0" timing's count)
        self.engine_choice = _cpu_engines.choose(measured_call, engine)
        self._engine = _cpu_engines.engine(self.engine_choice.engine)
        self._measured_fft_threads = min(self.engine_choice.threads, self.workers)
        fft_call = self._fft_call(may_adopt)  # with the FFT's threads as measured
        self._whole_call = dataclasses.replace(fft_call, shape=problem.input.shape, threads=self.workers)
        # The engine of a run of the whole problem at once: the same, unless the problem has blocks
        # to pipeline, whose engine was measured a block at a time; the whole run's FFT is then
        # one threaded call, measured as one (SciPy may thread a whole FFT best where ducc0 runs a
        # block best on one thread).
        self.whole_choice, self._whole_engine = self.engine_choice, self._engine
        if self.threads() > 1 and self._whole_call.parallel > 1:
            self.whole_choice = _cpu_engines.choose(dataclasses.replace(self._whole_call, parallel=1,
                                                                        other_threads=()), engine)
            self._whole_engine = _cpu_engines.engine(self.whole_choice.engine)
        self._may_adopt, self._mode, self._measured_choice = may_adopt, engine, self.engine_choice
        self._adopts = may_adopt and self._whole_engine.allocates  # only a whole run adopts
        # The engine was measured on a sample in cache with NumPy's multiply, where the runs have
        # the compiled loops, and large ones stream through memory: it is tried against close
        # runners-up on the first runs (_cpu_threads.EngineTrial), which take the general path.
        self.engine_trial = _cpu_threads.engine_trial(fft_call, self.engine_choice, self._whole_call)
        self._trial_on_one_thread = self.threads() == 1 and self.engine_trial is not None and all(
            min(_cpu_engines.split_timing_name(c)[1] or measured_call.threads, self.workers) == 1
            for c in self.engine_trial.candidates)
        if self.engine_trial is not None and self.engine_trial.chosen is not None:
            self._use_engine(self.engine_trial.chosen)
        self.thread_count = self._new_thread_count()

    def _new_thread_count(self) -> _cpu_threads.ThreadCount | None:
        """Pipelined on how many threads, or whole (_cpu_threads): measured on the first runs of
        a problem run on several threads, for its engines (built again once an engine trial has
        chosen another)."""
        if self.threads() == 1:
            return None
        return _cpu_threads.thread_count(self._whole_call, self._engine.name, self.workers, self._mode,
                                         self.prolog is not None, self._adopts, self._whole_engine.name)

    def _use_engine(self, candidate: str) -> None:
        """Run blocks on the engine an engine trial's turn or choice names (``engine`` or
        ``engine@threads``, see ``_cpu_engines.timing_name``), and whole runs too, where they
        have no engine of their own."""
        name, fft_threads = _cpu_engines.split_timing_name(candidate)
        measured = self._measured_choice
        if name == self._engine.name and fft_threads == self.engine_choice.threads:
            return
        self._runs.clear()  # a fast path runs the engine and thread count it was built for
        shared = self._whole_engine is self._engine
        self._engine = _cpu_engines.engine(name)
        self._measured_fft_threads = min(fft_threads, self.workers)
        same = (name, fft_threads) == (measured.engine, measured.threads)
        self.engine_choice = measured if same else dataclasses.replace(measured, engine=name, threads=fft_threads,
                                                                       how="tried")
        if shared:
            self._whole_engine, self.whole_choice = self._engine, self.engine_choice
        self._adopts = self._may_adopt and self._whole_engine.allocates

    # -- the executor interface (nvmath.fft._executor.Executor) --------------------------------

    def run(self, call: CallArgs) -> np.ndarray:
        """Transform ``call.inp`` (layout ``problem.input``) into ``call.out`` (layout
        ``problem.output``), or with ``call.out=None`` into a new array of that layout, possibly the
        engine's own; returns the result. ``call.stream`` is None (the CPU has none); the callbacks'
        data in ``call.data`` are None, a 1-D array, or a C-contiguous one (its elements in order),
        their runtime parameters tuples of values (see ``fftfuse_compiler.terms``)."""
        direction, data = call.direction, call.data
        trial = self.engine_trial
        if trial is not None and trial.chosen is None:  # the general path alternates the engines
            return self._general(call.inp, call.out, direction, data.prolog_data, data.epilog_data,
                                 (data.prolog_params, data.epilog_params))
        fast = self._runs.get(direction)
        if fast is None and direction in _DIRECTIONS:
            fast = self._runs[direction] = self._fast_run(direction) or _no_fast_path
        if fast is not None:
            result = fast(call.inp, call.out, data.prolog_data, data.epilog_data)
            if result is not None:
                return result
        # Not the planned arrays, or no fast path: the general path checks and says what is wrong.
        return self._general(call.inp, call.out, direction, data.prolog_data, data.epilog_data,
                             (data.prolog_params, data.epilog_params))

    def release(self) -> None:
        """Nothing is held between runs."""

    def free(self) -> None:
        """Nothing to free: the loops belong to the cache, the threads to the pool."""

    # -- public ------------------------------------------------------------------------------
    def execute(
        self,
        inp: np.ndarray,
        out: np.ndarray | None,
        direction: str,
        prolog_data: np.ndarray | None,
        epilog_data: np.ndarray | None,
        *,
        params: tuple[tuple, tuple] = ((), ()),
    ) -> np.ndarray:
        """``run`` without a stream: the result, in ``out`` where given.

        ``params``: the prolog's and the epilog's runtime parameter values (see ``fftfuse_compiler.terms``)."""
        return self.run(CallArgs(inp, out, direction, None, CallData(prolog_data, params[0], epilog_data, params[1])))

    def _general(self, inp: np.ndarray, out: np.ndarray | None, direction: str, prolog_data: Any,
                 epilog_data: Any, params: tuple[tuple, tuple] = ((), ())) -> np.ndarray:
        """Every run the fast path does not take: arrays checked, then staged, transformed and
        finished whole or block by block."""
        p = self.problem
        if out is None and p.inplace:
            out = inp
        seen = (inp.dtype, inp.shape, inp.strides)
        if type(inp) is not np.ndarray or seen != self._seen_in:
            _check_array(inp, p.input, p.input_dtype, "input")
            self._seen_in = seen  # layout already checked: later calls compare three values
        if out is not None:
            seen = (out.dtype, out.shape, out.strides)
            if type(out) is not np.ndarray or seen != self._seen_out:
                _check_array(out, p.output, p.output_dtype, "output")
                self._seen_out = seen
        if direction not in ("forward", "inverse") or (p.fft_type != "C2C" and direction != p.direction):
            raise ValueError(f"direction {direction!r} is not valid for a {p.fft_type} FFT")
        workers = self.threads()
        trial = self.engine_trial
        if trial is not None and trial.chosen is None:
            # One of the first runs: on the engine whose turn it is, pipelined on every thread,
            # or on its fast path where the run can take one (as the runs after the trial will:
            # the general path's Python differs by engine, a few us that decide a small call).
            name = trial.start()
            self._use_engine(name)
            fast = self._trial_runs.get((name, direction))  # the direction was checked above
            if fast is None:
                fast = self._trial_runs[name, direction] = self._fast_run(direction) or _no_fast_path
            # One thread: its CPU time, which other jobs on a shared machine do not inflate (every
            # candidate on the same clock: they may thread the FFT differently).
            clock = time.thread_time if self._trial_on_one_thread else time.perf_counter
            started = clock()
            result = fast(inp, out, prolog_data, epilog_data)
            if result is None:
                result = self._run_general(inp, out, direction, prolog_data, epilog_data, params, workers)
            trial.finish(name, clock() - started)
            if trial.chosen is not None:
                self._use_engine(trial.chosen)
                self._trial_runs.clear()
                self.thread_count = self._new_thread_count()  # the thread counts of that engine
            return result
        counts = self.thread_count if workers > 1 else None
        if counts is None:
            return self._run_general(inp, out, direction, prolog_data, epilog_data, params, workers)
        count = counts.start()  # pipelined on `count` threads, or WHOLE
        started = time.perf_counter()
        result = self._run_general(inp, out, direction, prolog_data, epilog_data, params, count)
        counts.finish(count, time.perf_counter() - started)
        return result

    def _run_general(self, inp: np.ndarray, out: np.ndarray | None, direction: str, prolog_data: Any,
                     epilog_data: Any, params: tuple[tuple, tuple], workers: int) -> np.ndarray:
        """``_general``'s run on checked arrays, pipelined on ``workers`` threads where the
        problem has blocks (one thread: block by block), else (and for ``WHOLE``) phased."""
        whole = workers in (1, _cpu_threads.WHOLE)
        if whole:
            workers = self.threads()
        if out is None:
            if self._adopts and whole:
                return self._adopted(inp, direction, prolog_data, epilog_data, params)
            out = self._new_output()
        call = self._call(inp, out, direction, prolog_data, epilog_data, params)
        blocks = self._blocks.get(workers, ())
        if blocks == ():  # depends on the problem and the threads only: computed once
            blocks = self._blocks[workers] = self._batch_blocks(workers)
        if call.hazard or blocks is None or len(blocks) == 1 or (whole and workers > 1):
            self._phased(call, workers)
        elif workers == 1:  # block by block on this thread: each block's epilog reads it in cache
            for block in blocks:
                self._block(call, block)
        else:
            _spread(lambda block: self._block(call, block), blocks, workers)
        return out

    def _adopted(self, inp: np.ndarray, direction: str, prolog_data: Any, epilog_data: Any,
                 params: tuple[tuple, tuple]) -> np.ndarray:
        """The whole problem at once on an engine that allocates its result: that array becomes
        the output (where it has the output's layout), the epilog applied to it in place, split
        over the threads; the FFT threaded by the engine. No output allocated ahead, no copy."""
        p = self.problem
        workers = self.threads()
        call = self._call(inp, None, direction, prolog_data, epilog_data, params)
        x, owned = self._stage(call, (), workers)
        result = self._whole_engine.run(p.fft_type, x, _live_axes(p), direction == "forward", None,
                                        p.fft_lengths[-1], self.fft_threads(), owned)
        # Not the input's memory: a copied input (a real operand made complex, a layout cuFFT could
        # not read) is the caller's buffer for the next call too, which SciPy may have overwritten.
        ours = result is not inp and (x is not inp or not np.may_share_memory(result, inp))
        out = result if ours and self._is_output(result) else self._new_output()
        self._bind_output(call, out, epilog_data, params[1])
        self._finish(call, result, (), workers)
        return out

    def _is_output(self, a: np.ndarray) -> bool:
        """Whether ``a`` is laid out as the problem's output (so it can be returned as it)."""
        p = self.problem
        return (a.dtype == np.dtype(p.output_dtype) and a.flags.writeable
                and data_layout_matches(a.shape, _strides(a), p.output))

    def threads(self) -> int:
        """How many threads run the callbacks' loops: 1 below ``THREAD_BYTES`` and in debug mode,
        else ``workers`` at most (a pipelined run takes its count from ``thread_count``).

        >>> from nvmath.fft._layout import plan_problem
        >>> small = plan_problem("fft", (4, 1024), (1024, 1), "complex64", axes=(1,))
        >>> CpuExecutor(small, None, None, workers=4).threads()
        1
        >>> large = plan_problem("fft", (16384, 1024), (1024, 1), "complex64", axes=(1,))
        >>> CpuExecutor(large, None, None, workers=4, engine="rules").threads()
        4
        """
        p = self.problem
        if self.debug or p.input.size * np.dtype(p.input_dtype).itemsize < THREAD_BYTES:
            return 1
        return self.workers

    def _fast_run(self, direction: str) -> Callable[..., np.ndarray | None] | None:
        """``run``'s fast path in ``direction``: ``fast(inp, out, prolog_data, epilog_data)``, the
        result, or None where these arrays are not the planned ones (the general path then runs).
        Everything else ``run`` decides on every call is decided here, once. None where the
        problem has no fast path (more than one thread or block, the debug mode, runtime
        parameters, cuFFT-form callbacks, loops that are not native, an in-place R2C or C2R).

        Each call checks, cheaply, what the general path would: ``inp`` laid out as
        ``problem.input``; ``out`` None (a new array is made), or ``inp`` itself for an in-place
        C2C (any other output takes the general path, which checks overlaps); each ``*_data`` a
        C-contiguous array of the callback's data type, with as many elements as it reads (a
        plan's data, the same array every run, once: ``_data_reader``). The engine's call is
        bound once too (``Engine.runner``).

        On ducc0 (whole or in chunks) the FFT writes the output; on the padded engine its own
        buffer, which the epilog (or a copy) reads into the output; on SciPy's engine (which
        allocates), where the run may return its array, that new array becomes the output, as on
        the general path, where it is laid out as the output (else it is copied into one), and a
        prolog stages into a dense array the FFT may overwrite; where it may not (an in-place
        plan), SciPy writes the output as ducc0 does.
        """
        p = self.problem
        adopts = self._adopts and self._engine.allocates  # SciPy's new array becomes the output
        padded = self._engine.name == "ducc0-padded"  # into its own buffer: the epilog reads it from there
        if (self.debug or self.threads() != 1 or (p.inplace and p.fft_type != "C2C")
                or (p.fft_type != "C2C" and direction != p.direction)
                or min(p.input.strides + p.output.strides, default=0) < 0):
            return None
        blocks = self._batch_blocks(1)
        if blocks is not None and len(blocks) > 1:
            return None
        native = []
        for cb in (self.prolog, self.epilog):
            if cb is not None and (not cb.elementwise or (cb.terms is not None and cb.terms.params)
                                   or cb.loops.native_functions() is None):
                return None
            native.append(None if cb is None else cb.loops.native_functions())
        fft_type, axes, forward, last = p.fft_type, _live_axes(p), direction == "forward", p.fft_lengths[-1]
        n_in, n_out = p.input.span, p.output.span
        # The prolog writes the output (C2C, which then transforms in place) or a dense stage buffer.
        stage_out = fft_type == "C2C" and not adopts
        stage = p.output.strides if stage_out else dense_strides(p.input.shape, range(len(p.input.shape)))
        prolog_walk = _walk(p.input.shape, p.input.strides, stage)
        epilog_walk = _walk(p.output.shape, p.output.strides, p.output.strides)
        # What a callback reads that takes no data (a one-element dummy), held with the walks'
        # arrays, whose addresses the loops are given.
        dummies = [None if cb is None or cb.form.takes_data_element else self._user_data(cb, None, layout)
                   for cb, layout in ((self.prolog, p.input), (self.epilog, p.output))]
        no_data = [None if d is None else (d.ctypes.data, 1) for d in dummies]
        # Per callback: (data type or None where untyped, elements it reads at least).
        wants = [None if cb is None else (
            np.dtype(cb.user_dtype) if not cb.user_dtype.startswith("numba:") else None,
            (layout.span if cb.terms is None or cb.terms.data is None else cb.terms.data_span)
            if cb.form.takes_data_element else 0)
            for cb, layout in ((self.prolog, p.input), (self.epilog, p.output))]
        rows_in, shape_in, strides_in, strides_stage = prolog_walk
        rows_out, shape_out, _, strides_out = epilog_walk
        prolog, epilog = native[0] and native[0][0], native[1] and native[1][1]
        shape_in_at, strides_in_at, stage_at = (a.ctypes.data for a in (shape_in, strides_in, strides_stage))
        shape_out_at, strides_out_at = shape_out.ctypes.data, strides_out.ctypes.data
        ndim_in, ndim_out = len(shape_in), len(shape_out)
        n_stage = n_out if stage_out else int(np.prod(p.input.shape))
        input_dtype, input_shape = np.dtype(p.input_dtype), p.input.shape
        in_strides = tuple(s * input_dtype.itemsize for s in p.input.strides)
        inplace, new_output = p.inplace, self._new_output
        engine_run = self._engine.runner(fft_type, axes, forward, last, self.fft_threads())
        output_dtype = np.dtype(p.output_dtype)
        out_strides = tuple(s * output_dtype.itemsize for s in p.output.strides)

        (p_dtype, p_reads), (e_dtype, e_reads) = (w or (None, 0) for w in wants)
        read_prolog_data = _data_reader(no_data[0], p_reads, p_dtype)
        read_epilog_data = _data_reader(no_data[1], e_reads, e_dtype)
        # The loops' fixed arguments as ctypes values, which a call passes as they are (a Python
        # int is converted on every call: 0.2-0.3 us of a loop's 0.9 us call)
        c_n_in, c_n_stage, c_n_out, c_zero, c_rows_in, c_rows_out, c_ndim_in, c_ndim_out = (
            c_uint64(v) for v in (n_in, n_stage, n_out, 0, rows_in, rows_out, ndim_in, ndim_out))
        c_strides_in, c_stage, c_shape_in, c_strides_out, c_shape_out = (
            c_void_p(v) for v in (strides_in_at, stage_at, shape_in_at, strides_out_at, shape_out_at))
        if padded:  # the padded buffer's layout, the same for every thread's buffer of this shape
            kept = self._engine.buffer(np.broadcast_to(np.empty((), input_dtype), input_shape))
            kept_strides = _strides(kept)
            padded_walk = _walk(p.output.shape, kept_strides, p.output.strides)
            n_kept = Layout(p.output.shape, kept_strides).span
            rows_kept, shape_kept, strides_kept, strides_kept_out = padded_walk
            c_kept, c_kept_out, c_shape_kept = (c_void_p(a.ctypes.data)
                                                for a in (strides_kept, strides_kept_out, shape_kept))
            c_n_kept, c_rows_kept, c_ndim_kept = (c_uint64(v) for v in (n_kept, rows_kept, len(shape_kept)))
            epilog_apart = native[1] and native[1][0]

        def fast(inp: np.ndarray, out: np.ndarray | None, prolog_data: Any, epilog_data: Any) -> np.ndarray | None:
            # dtypes of NumPy's own types are singletons: ``is`` decides without a comparison
            if (type(inp) is not np.ndarray or inp.shape != input_shape or inp.strides != in_strides
                    or (inp.dtype is not input_dtype and inp.dtype != input_dtype)):
                return None
            if epilog is not None:  # its data first: nothing is written before every check passed
                e_found = read_epilog_data(epilog_data)
                if e_found is None:
                    return None
                e_info, e_n = e_found
            if adopts:
                if out is not None:
                    return None
            elif out is None:
                out = inp if inplace else new_output()
            elif out is not inp or not inplace:
                return None
            src = inp
            if prolog is not None:
                p_found = read_prolog_data(prolog_data)
                if p_found is None:
                    return None
                info, n_info = p_found
                dst = out if stage_out else np.empty(input_shape, input_dtype)
                status = prolog(_address(inp), c_n_in, c_zero, c_strides_in, _address(dst), c_n_stage, c_zero, c_stage,
                                info, n_info, c_rows_in, c_shape_in, c_ndim_in)
                if status:
                    self._failed(self.prolog, status, (shape_in, 0, strides_in, 0, strides_stage),
                                 flat_view(inp, n_in), _array_at(info, n_info, self.prolog.user_dtype))
                src = dst
            if adopts:  # SciPy's new array is the result, where laid out as the output
                result = engine_run(src, None, src is not inp)
                if result.strides == out_strides and result.dtype is output_dtype:
                    out = result
                else:
                    out = new_output()
                    np.copyto(out, result)
            elif not padded:  # into the output
                result = engine_run(src, out, src is not inp)
                if result is not out:  # scipy.fft, where SciPy's compiled module is not usable
                    np.copyto(out, result)
            else:
                result = engine_run(src, None, src is not inp)
                if epilog is None:
                    np.copyto(out, result)
                    return out
                at = result.__array_interface__["data"][0]
                status = epilog_apart(at, c_n_kept, c_zero, c_kept, _address(out), c_n_out, c_zero, c_kept_out, e_info,
                                      e_n, c_rows_kept, c_shape_kept, c_ndim_kept)
                if status:
                    self._failed(self.epilog, status, (shape_kept, 0, strides_kept, 0, strides_kept_out),
                                 flat_view(out, n_out), _array_at(e_info, e_n, self.epilog.user_dtype),
                                 _array_at(at, n_kept, p.output_dtype))
                return out
            if epilog is not None:
                status = epilog(_address(out), c_n_out, c_zero, c_strides_out, e_info, e_n, c_rows_out, c_shape_out,
                                c_ndim_out)
                if status:
                    flat_out = flat_view(out, n_out)
                    self._failed(self.epilog, status, (shape_out, 0, strides_out, 0, strides_out), flat_out,
                                 _array_at(e_info, e_n, self.epilog.user_dtype), flat_out)
            return out

        fast.held = (prolog_walk, epilog_walk, dummies, padded and padded_walk)  # type: ignore[attr-defined]
        return fast

    def fft_threads(self) -> int:
        """ducc0's threads for the FFT of a problem run in one piece (below ``THREAD_BYTES``, or
        when it cannot be cut into blocks): ducc0 threads it itself, in C++, for less than our
        pool costs (2 MiB on 2 cores: 0.58 ms, against 1.01 ms on one thread and 0.87 ms over our
        pool), one thread per 64 KiB of input at most, as waking a thread costs more than that
        much work saves (8 x 1024 complex64 on 2 cores: 20 us on two threads, 25 us on one).
        That rule is where measuring is not wanted; a measured engine choice measures one thread,
        the rule's count and all, with the engine (on 16 cores the best count depends on the
        engine: ``_cpu_engines.FFTCall.other_threads``).

        >>> from nvmath.fft._layout import plan_problem
        >>> one_row = plan_problem("fft", (1, 1024), (1024, 1), "complex64", axes=(1,))
        >>> rows = plan_problem("fft", (64, 1024), (1024, 1), "complex64", axes=(1,))
        >>> CpuExecutor(one_row, None, None, workers=16).fft_threads()
        1
        >>> CpuExecutor(rows, None, None, workers=4, engine="rules").fft_threads()  # measured under "auto"
        4
        """
        if self._measured_fft_threads:
            return self._measured_fft_threads
        p = self.problem
        return max(1, min(self.workers, p.input.size * np.dtype(p.input_dtype).itemsize >> 16))

    def _fft_call(self, adopt: bool = False) -> _cpu_engines.FFTCall:
        """The FFT call ``run`` makes: a block on one thread where it pipelines, else the whole
        problem; ``adopt``: an engine's own array may become the result."""
        p = self.problem
        shape, threads, parallel = p.input.shape, self.fft_threads(), 1
        blocks = self._batch_blocks(self.threads())
        if blocks is not None and len(blocks) > 1:
            axis, lo, hi = blocks[0]
            shape, threads, parallel = shape[:axis] + (hi - lo,) + shape[axis + 1:], 1, min(self.threads(), len(blocks))
        # In one piece, the FFT's threads are measured too: one, the rule's, all.
        others = () if parallel > 1 or self.debug else tuple(sorted({1, self.workers} - {threads}))
        return _cpu_engines.FFTCall(p.fft_type, p.input_dtype, shape, p.input.strides, _live_axes(p),
                                    p.fft_lengths[-1], threads, parallel, self.epilog is not None, adopt, others)

    # -- planning one call -------------------------------------------------------------------
    def _call(self, inp: np.ndarray, out: np.ndarray | None, direction: str, prolog_data: Any, epilog_data: Any,
              params: tuple[tuple, tuple] = ((), ())) -> _Call:
        """One run's arrays and decisions; with ``out=None`` the output is bound later
        (``_bind_output``), once the engine has made it."""
        p = self.problem
        overlap = p.inplace or (out is not None and bool(np.may_share_memory(inp, out)))
        hazard = overlap and not self._elementwise_only
        epilog_in_place = self.epilog is None or self.epilog.elementwise
        data_in = flat_view(inp, p.input.span) if self.prolog else None
        prolog_info = self._user_data(self.prolog, prolog_data, p.input)
        if self.debug and self.prolog is not None:
            data_in, prolog_info = checked_views(self.prolog, data_in, prolog_info, p.input)
        # With runtime parameters, user_info is (data, *params), as the wrappers read it.
        prolog_info = _with_params(self.prolog, prolog_info, params[0])
        call = _Call(
            inp, None, direction, data_in, None, prolog_info, None,
            stage_to_out=p.fft_type == "C2C" and epilog_in_place and not hazard and out is not None,
            result_to_out=epilog_in_place,
            overlap=overlap,
            inp_writable=(p.copy_input or p.inplace) and not hazard,
            hazard=hazard,
        )
        if out is not None:
            self._bind_output(call, out, epilog_data, params[1])
        return call

    def _bind_output(self, call: _Call, out: np.ndarray, epilog_data: Any, params: tuple) -> None:
        """Make ``out`` the output of ``call``, with the epilog's views of it and of its data."""
        p = self.problem
        call.out = out
        if self.epilog is None:
            return
        data_out = flat_view(out, p.output.span)
        epilog_info = self._user_data(self.epilog, epilog_data, p.output)
        if self.debug:
            data_out, epilog_info = checked_views(self.epilog, data_out, epilog_info, p.output)
        call.data_out, call.epilog_info = data_out, _with_params(self.epilog, epilog_info, params)

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
            if not data.flags.c_contiguous:
                raise ValueError(f"{cb.kind} user data must be 1-D (element offset -> value) or C-contiguous (its "
                                 f"elements in order), got shape {data.shape}, strides {data.strides}")
            data = data.reshape(-1)
        if typed and data.dtype != np.dtype(cb.user_dtype):
            raise ValueError(f"{cb.kind} {cb.name!r} was compiled for user data of {cb.user_dtype}, got {data.dtype}")
        reach = layout.span if cb.terms is None or cb.terms.data is None else cb.terms.data_span
        if cb.form.takes_data_element and data.shape[0] < reach:
            raise ValueError(
                f"{cb.kind} {cb.name!r} reads user data at positions up to {reach - 1}, but the data "
                f"has {data.shape[0]} elements"
            )
        return np.ascontiguousarray(data)

    def _batch_blocks(self, workers: int) -> list[tuple[int, int, int]] | None:
        """Blocks ``(axis, lo, hi)`` along a batch axis for pipelined execution, or None."""
        p = self.problem
        live = [a for a in p.batch_axes if p.input.shape[a] > 1]
        if not live:
            return None
        axis = max(live, key=lambda a: (p.input.shape[a], p.input.strides[a]))
        n = p.input.shape[axis]
        if n < workers:
            return None  # too few blocks to keep every thread busy: let ducc0 thread the FFT
        slab = (p.input.size // n) * np.dtype(p.input_dtype).itemsize
        per_block = max(1, min(BLOCK_BYTES // max(slab, 1), -(-n // workers)))
        return [(axis, lo, min(n, lo + per_block)) for lo in range(0, n, per_block)]

    # -- the three steps ---------------------------------------------------------------------
    def _block(self, call: _Call, block: tuple[int, int, int]) -> None:
        index = _index(len(self.problem.input.shape), *block)
        x, owned = self._stage(call, index, 1)
        result = self._transform(call, x, owned, call.out[index], 1, self._engine)
        self._finish(call, result, index, 1)

    def _phased(self, call: _Call, workers: int) -> None:
        whole = ()  # indexes nothing away: the whole arrays, without making views of them
        x, owned = self._stage(call, whole, workers)
        result = self._transform(call, x, owned, call.out, self.fft_threads(), self._whole_engine)
        self._finish(call, result, whole, workers)

    def _stage(self, call: _Call, index: tuple[slice, ...], parts: int) -> tuple[np.ndarray, bool]:
        """The array the FFT reads for ``index`` (prolog applied) and whether it may overwrite it."""
        inp = call.inp[index] if index else call.inp
        if self.prolog is not None or call.hazard:
            dst = (call.out[index] if index else call.out) if call.stage_to_out else np.empty_like(inp, order="K")
            step = self._prolog_step if self.prolog is not None else _copy_step
            self._elementwise(step, call, inp, dst, parts)
            return dst, True
        return inp, call.inp_writable

    def _transform(self, call: _Call, x: np.ndarray, owned: bool, out: np.ndarray, workers: int,
                   engine: _cpu_engines.Engine) -> np.ndarray:
        """The FFT of ``x`` on ``engine``, written into ``out`` (the output's block) where the
        finish step allows and the engine can (else the finish step reads it from the array
        returned)."""
        p = self.problem
        same = _same_view(x, out)
        dst = out if call.result_to_out and (same or not call.overlap) else None
        if same and p.fft_type != "C2C":
            dst = None  # R2C and C2R cannot run in place
        return engine.run(p.fft_type, x, _live_axes(p), call.direction == "forward", dst, p.fft_lengths[-1], workers,
                          owned)

    def _finish(self, call: _Call, result: np.ndarray, index: tuple[slice, ...], parts: int) -> None:
        out = call.out[index] if index else call.out
        if self.epilog is not None:
            self._elementwise(self._epilog_step, call, result, out, parts)
        elif not _same_view(result, out):
            self._elementwise(_copy_step, call, result, out, parts)

    # -- element loops -----------------------------------------------------------------------
    def _elementwise(self, step: Callable, call: _Call, src: np.ndarray, dst: np.ndarray, parts: int) -> None:
        """``step(call, src, dst)``, split into ``parts`` pieces run on as many threads (the caller's too)."""
        parts = min(parts, max(1, dst.nbytes // PIECE_BYTES))
        if parts == 1:
            step(call, src, dst)
            return
        # The outermost axis that gives every thread a piece: each piece then spans whole rows in
        # memory (cutting the longest axis instead, often the rows themselves, gave 512 x 1024
        # complex64 on 2 threads a filter epilog 2x slower than one thread's).
        axis = max(range(src.ndim), key=lambda a: (src.shape[a] >= parts, abs(dst.strides[a]), src.shape[a]))
        cuts = _cuts(src.shape[axis], parts)
        if len(cuts) == 1:
            step(call, src, dst)
            return
        pieces = [_index(src.ndim, axis, lo, hi) for lo, hi in cuts]
        _spread(lambda ix: step(call, src[ix], dst[ix]), pieces, parts)

    def _prolog_step(self, call: _Call, src: np.ndarray, dst: np.ndarray) -> None:
        loops = self.prolog.loops
        rows, shape, s_in, s_dst = _walk_arrays(src, dst)
        base = 0 if src is call.inp else (_address(src) - _address(call.inp)) // src.dtype.itemsize
        if _same_view(src, dst):  # an elementwise prolog of an in-place FFT
            status, s_dst = loops.in_place(call.data_in, base, s_in, call.prolog_info, rows, shape), s_in
        else:
            status = loops.apart(call.data_in, base, s_in, _flat(dst), 0, s_dst, call.prolog_info, rows, shape)
        if status:
            self._failed(self.prolog, status, (shape, base, s_in, 0, s_dst), call.data_in, call.prolog_info)

    def _epilog_step(self, call: _Call, src: np.ndarray, dst: np.ndarray) -> None:
        loops = self.epilog.loops
        rows, shape, s_src, s_out = _walk_arrays(src, dst)
        base = 0 if dst is call.out else (_address(dst) - _address(call.out)) // dst.dtype.itemsize
        if _same_view(src, dst):  # the FFT ran in the output
            values, src_base, s_src = call.data_out, base, s_out
            status = loops.in_place(call.data_out, base, s_out, call.epilog_info, rows, shape)
        else:
            values, src_base = _flat(src), 0
            status = loops.apart(values, 0, s_src, call.data_out, base, s_out, call.epilog_info, rows, shape)
        if status:
            self._failed(self.epilog, status, (shape, src_base, s_src, base, s_out), call.data_out, call.epilog_info,
                         values)

    def _failed(self, cb: Any, status: int, walk: tuple, buffer: np.ndarray, info: Any,
                values: np.ndarray | None = None) -> None:
        """Raise the exception that stopped ``cb``'s loop at element ``status - 1`` of ``walk`` =
        ``(shape, base, strides, base, strides)`` of the loop's two buffers; ``buffer`` is the one
        the callback indexes and ``values`` the one an epilog's elements come from."""
        from fftfuse_compiler.cpu_loops import element_offsets

        from ._cpu_failure import raise_failure

        a, b = element_offsets(status - 1, *walk)
        if cb.kind == "prolog":
            raise_failure(cb, a, buffer, info, None, self.problem.input)
        raise_failure(cb, b, buffer, info, values[a], self.problem.output)


_DIRECTIONS = ("forward", "inverse")


def _no_fast_path(inp: Any, out: Any, prolog_data: Any, epilog_data: Any) -> None:
    """The fast path of a problem that has none."""
    return None


def _live_axes(problem: FFTProblem) -> tuple[int, ...]:
    """The FFT axes that transform anything: over a length-1 axis the FFT is the identity, and
    ducc0 would still pass over the data for it (the last axis stays: R2C and C2R halve it).

    >>> from nvmath.fft._layout import plan_problem
    >>> _live_axes(plan_problem("fft", (1, 1024), (1024, 1), "complex64", axes=(0, 1)))
    (1,)
    """
    *rest, last = problem.axes
    return tuple(a for a in rest if problem.input.shape[a] > 1) + (last,)


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
    from fftfuse_compiler.cpu_backend import python_callback

    return python_callback(cb.function, cb.kind, cb.element_dtype, cb.data_dtype, cb.terms)


def _check_array(a: np.ndarray, layout: Layout, dtype: str, what: str) -> None:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"the {what} must be a NumPy array, got {type(a).__name__}")
    if a.dtype != np.dtype(dtype) or not data_layout_matches(a.shape, _strides(a), layout):
        raise ValueError(
            f"the {what} array ({a.dtype}, shape {a.shape}, strides {_strides(a)}) does not match the planned "
            f"{what} ({dtype}, shape {layout.shape}, strides {layout.strides})"
        )

