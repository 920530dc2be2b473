"""FFTs with fused callbacks over Dask arrays: one lazy ``map_blocks`` over NumPy or CuPy chunks.

The stateless functions hand a ``dask.array.Array`` operand here (only then is Dask imported).
Everything that can fail is checked on the client before the graph exists: the FFT layout of a
chunk, the callbacks' forms and types, the user data's shape. Then:

* CuPy chunks: each callback is compiled (or fetched from the cache) on the client, once, and
  the graph carries its LTO-IR; workers pass it on as ``{"ltoir": bytes, "data": ...}``, so
  they neither import numba nor compile. The data block a chunk's callback reads is copied into
  a buffer kept per (device, stream, layout), whose address is what cuFFT's plan holds: every
  chunk of one shape then reuses one planned engine, and chunks that read the same data block
  skip the copy. Data that broadcasts (a block smaller than the chunk, such as an (n,) filter)
  stays that size: the client also compiles, per chunk layout, LTO-IR that reads it in place at
  its broadcast position. Data chunked like the operand is read at the element's offset.
* NumPy chunks (and the debug mode): the graph carries the Python function; each worker process
  compiles it once through the CPU compiler's cache, its threads waiting for the first chunk.

User data is any array (NumPy, CuPy or Dask) that broadcasts to the operand's shape (prolog) or
the result's shape (epilog). It becomes a Dask array chunked like the operand along the axes it
spans (a single chunk where it has extent 1), so each task receives only its own data block and
no large array is copied into every task.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import itertools
import threading
import warnings
from typing import Any, Callable

import numpy as np

from fftfuse_compiler.terms import broadcast_strides

from ._api import FFT
from ._callbacks import parse_callback
from ._layout import dense_strides, normalize_axes
from ._options import ExecutionCPU, FFTOptions, cpu_threads
from ._planner import check_links_here, device_arch, function_transform, fused_norm, planned_direction, problem_for
from ._reuse import ThreadEngines, run_stateless

_SIDES = ("prolog", "epilog")


@dataclasses.dataclass(frozen=True)
class _Side:
    """One callback as the graph carries it."""

    kind: str
    fn: Callable | None  # shipped for CPU chunks and the debug mode
    ltoir: bytes | None  # shipped for CuPy chunks
    arch: int | None  # the architecture ``ltoir`` was compiled for
    toolkit: tuple[int, int] | None  # the CUDA version of the NVVM that compiled it
    data: str | None  # the name of the Dask array of user data, if any
    user_dtype: str | None
    element_dtype: str
    # For data that broadcasts (a data block smaller than the chunk): LTO-IR that reads it in place,
    # per chunk layout ((shape, strides) of the callback's side), compiled on the client.
    broadcast: tuple[tuple[tuple, bytes], ...] = ()


def dask_fft(transform: str, operand: Any, axes: Any, options: Any, execution: Any, prolog: Any, epilog: Any,
             stream: Any, direction: Any = None, norm: Any = None) -> Any:
    """``transform`` ("fft", "ifft", "rfft", "irfft") over a Dask array, as a lazy Dask array.

    ``norm=`` is fused into the callbacks here, on the client, so what the graph carries is
    already scaled; ``direction=`` goes to every chunk's FFT.
    """
    import dask.array as da
    from dask.base import tokenize

    if stream is not None:
        raise TypeError("stream= has no meaning for a Dask operand: each chunk runs on its worker's current "
                        "stream. Leave stream=None")
    opts = FFTOptions.of(options)
    transform = function_transform(transform, opts, np.dtype(operand.dtype).name)  # as FFT decides it
    if opts.inplace:
        raise ValueError("inplace=True cannot apply to a Dask operand (its chunks are shared, read-only "
                         "inputs of the graph); set inplace=False")
    if any(n != n for n in operand.shape):  # NaN: chunk sizes Dask does not know yet
        raise ValueError(f"this Dask array's shape {operand.shape} has unknown extents; call "
                         "x.compute_chunk_sizes() first, as the FFT must know each chunk's shape")
    fft_axes = normalize_axes(axes, operand.ndim)
    x = _whole_fft_axes(operand, fft_axes)
    on_gpu = _is_cupy(x._meta)
    if on_gpu and execution is not None and _names_cpu(execution):
        raise ValueError("execution='cpu' needs NumPy chunks; this Dask array holds CuPy chunks. Convert them "
                         "with x.map_blocks(cupy.asnumpy)")
    if not on_gpu and execution is not None and not _names_cpu(execution):
        raise ValueError("a Dask array of NumPy chunks runs on the CPU; for the GPU give it CuPy chunks "
                         "(x.map_blocks(cupy.asarray)) and leave execution=None")

    if np.dtype(x.dtype).name == "float16":
        raise TypeError("half-precision (float16) Dask arrays are not transformed yet: a chunk's complex32 result "
                        "is float16 pairs, one axis more than Dask's blocks have. Convert the chunks with "
                        "x.astype('float32') (or 'complex64' for pairs)")
    first = tuple(c[0] for c in x.chunks)
    problem = problem_for(transform, first, _c_strides(first), np.dtype(x.dtype).name, fft_axes, False,
                          opts.last_axis_parity, opts.result_layout)
    result_shape = tuple(problem.output.shape[a] if a in fft_axes else n for a, n in enumerate(x.shape))
    out_chunks = tuple((problem.output.shape[a],) if a in fft_axes else c for a, c in enumerate(x.chunks))
    shipped = not opts.debug_mode and on_gpu  # LTO-IR in the graph, no Python function
    if direction is not None:
        direction = planned_direction(problem, direction)
    prolog, epilog = fused_norm(problem, direction, norm, prolog, epilog)

    # Each distinct chunk's layouts as a dense CuPy chunk gives them (the usual chunk; a worker
    # whose chunk differs reads broadcast data from a chunk-sized copy instead).
    layouts: dict[str, list] = {"prolog": [], "epilog": []}
    if shipped:
        for chunk in itertools.product(*(sorted(set(c)) for c in x.chunks)):
            p = problem_for(transform, chunk, _c_strides(chunk), np.dtype(x.dtype).name, fft_axes, False,
                            opts.last_axis_parity, opts.result_layout)
            layouts["prolog"].append(p.input)
            layouts["epilog"].append(p.output)
    sides, extra = [], []
    for cb_kind, value in zip(_SIDES, (prolog, epilog)):
        shape = x.shape if cb_kind == "prolog" else result_shape
        chunks = x.chunks if cb_kind == "prolog" else out_chunks
        element = problem.input_dtype if cb_kind == "prolog" else problem.output_dtype
        side, dask_data = _side(cb_kind, value, shape, chunks, element, shipped, opts, da, layouts[cb_kind])
        sides.append(side)
        if dask_data is not None:
            extra.append(dask_data)

    if not on_gpu and cpu_threads(execution, opts) is None:
        # Dask runs chunks in parallel already: a chunk's FFT threads would only oversubscribe.
        options = dataclasses.replace(opts, num_threads=1)
    job = _ChunkFFT(transform, fft_axes, options, execution, direction, sides[0], sides[1], tokenize(transform, *sides))
    meta = _empty_like_meta(x._meta, problem.output_dtype, x.ndim)
    return da.map_blocks(job, x, *extra, chunks=out_chunks, dtype=problem.output_dtype, meta=meta,
                         name=f"fftfuse-{transform}-" + tokenize(x, *extra, job))


def _side(kind: str, value: Any, shape: tuple, chunks: tuple, element: str, shipped: bool, opts: FFTOptions,
          da: Any, layouts: list) -> tuple[_Side | None, Any]:
    if value is None:
        return None, None
    arg = parse_callback(value, kind)
    if arg.fn is None:
        raise TypeError(
            f"{kind} of a Dask operand must be a Python function or {{'fn': f, 'data': array}}: it is compiled "
            "once on the client and shipped to the workers (LTO-IR with a raw pointer cannot follow a chunk)"
        )
    if arg.params is not None:
        raise TypeError(f"{kind} of a Dask operand takes 'fn' and optionally 'data': runtime parameters ('params') "
                        "are not carried to the workers; write the values into the function (as constants or a closure)")
    fn, data = arg.fn, arg.data
    _refuse_index_form(fn, kind, len(shape), data is not None)
    user = dask_data = None
    if data is not None:
        dask_data = _data_array(kind, data, shape, chunks, da)
        user = np.dtype(data.dtype).name
    ltoir = arch = toolkit = None
    broadcast: tuple = ()
    if shipped:
        from fftfuse_compiler import compile_callback

        compiled = compile_callback(fn, kind, element, user, literals=opts.float_literals)
        ltoir, arch, toolkit = compiled.ltoir, compiled.arch, tuple(compiled.toolkit)
        if dask_data is not None:
            broadcast = _broadcast_variants(fn, kind, element, data, dask_data, layouts, opts)
        fn = None
    else:
        from fftfuse_compiler.api import describe_callback

        describe_callback(fn, kind, element, user)  # a wrong form fails here, not on a worker
    name = None if dask_data is None else dask_data.name
    return _Side(kind, fn, ltoir, arch, toolkit, name, user, element, broadcast), dask_data


def _broadcast_variants(fn: Callable, kind: str, element: str, data: Any, dask_data: Any, layouts: list,
                        opts: FFTOptions) -> tuple[tuple[tuple, bytes], ...]:
    """LTO-IR of ``fn`` reading its data block in place at broadcast positions, per chunk layout
    where the block is smaller than the chunk (empty where the data is chunked like the operand)."""
    from fftfuse_compiler import compile_callback

    from ._callbacks import callback_form, callback_spec, callback_terms

    variants = []
    for target in layouts:
        block = _data_block_shape(dask_data, target.shape)
        if block == tuple(target.shape):
            continue  # data chunked like the operand: read at the offset (each chunk's block is copied)
        spec = callback_spec({"fn": fn, "data": np.empty(block, data.dtype)}, kind)
        form = callback_form(spec, target)
        strides = broadcast_strides(block, _c_strides(block), target.shape)
        single = opts.single_literals(element)
        terms = callback_terms(spec, form, target, strides if form.takes_data_element else None, single)
        compiled = compile_callback(fn, kind, element, np.dtype(data.dtype).name, literals=opts.float_literals,
                                    terms=terms)
        variants.append(((tuple(target.shape), tuple(target.strides)), compiled.ltoir))
    return tuple(variants)


def _data_block_shape(dask_data: Any, target_shape: tuple) -> tuple:
    """The shape of the data block a chunk of ``target_shape`` receives (1 where the data repeats)."""
    offset = len(target_shape) - dask_data.ndim
    return tuple(1 if n == 1 else target_shape[k + offset] for k, n in enumerate(dask_data.shape))


def _refuse_index_form(fn: Callable, kind: str, ndim: int, data: bool) -> None:
    """The index forms are refused over Dask arrays: a chunk's FFT would number its elements from
    the chunk's corner, not the array's, and give another result than the same call on the array."""
    from fftfuse_compiler.forms import Form, infer_form

    try:
        form = infer_form(fn, kind, ndim=ndim, data=data)
    except TypeError:
        return  # not a callback at all: the compiler's own error says so, with the forms
    if form in (Form.VALUE_INDEX, Form.VALUE_DATA_INDEX):
        raise ValueError(
            f"{kind}: the index form f(x, {'d, ' if data else ''}i, ...) is not supported over a Dask array, as each "
            "chunk's FFT would number its elements from the chunk's corner. Compute what depends on the index as "
            "user data instead ({'fn': f, 'data': array} with f(x, d), the array broadcast along the batch, e.g. a "
            "phase ramp of shape (n,)), or call the FFT on the NumPy/CuPy array"
        )


def _data_array(kind: str, data: Any, shape: tuple, chunks: tuple, da: Any) -> Any:
    """User data as a Dask array chunked like the ``shape``/``chunks`` it broadcasts to."""
    side = "input" if kind == "prolog" else "result"
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        raise TypeError(f"{kind} data must be an array (NumPy, CuPy or Dask), got {type(data).__name__}")
    try:
        fits = np.broadcast_shapes(tuple(data.shape), shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{kind}: data of shape {tuple(data.shape)} does not broadcast to the {side} shape {shape}; pass an "
            "array of that shape, or one with 1 (or nothing) along the axes where it repeats"
        )
    if data.ndim == 0:
        data = data.reshape(1)
    offset = len(shape) - data.ndim  # broadcasting aligns the trailing axes
    data_chunks = tuple((1,) if n == 1 else chunks[k + offset] for k, n in enumerate(data.shape))
    if type(data).__module__.startswith("dask."):
        return data.rechunk(data_chunks)
    return da.from_array(data, chunks=data_chunks)


@dataclasses.dataclass(frozen=True)
class _ChunkFFT:
    """The task body: the FFT of one chunk with its callbacks (what every task of the graph runs)."""

    transform: str
    axes: tuple[int, ...]
    options: Any
    execution: Any
    direction: str | None
    prolog: _Side | None
    epilog: _Side | None
    token: str  # the callbacks' identity: a worker's first chunk of them compiles them, alone

    def __call__(self, block: Any, *data_blocks: Any, block_info: Any = None) -> Any:
        _count("chunks")
        # Each side's data block, where it lies in its array, and the chunk shape it covers.
        blocks = iter(enumerate(data_blocks, start=1))
        data = {}
        for s in self._sides():
            if s.data is not None:
                arg, values = next(blocks)
                shape = tuple(block.shape) if s.kind == "prolog" else tuple(block_info[None]["chunk-shape"])
                data[s.kind] = (values, tuple(block_info[arg]["chunk-location"]), shape)
        if _is_cupy(block) and self._shipped():
            return self._gpu(block, data)
        callbacks = {}
        for s in self._sides():
            # The block as it is: the FFT engine reads broadcast data at its broadcast position.
            callbacks[s.kind] = {"fn": s.fn, "data": data[s.kind][0]} if s.kind in data else s.fn
        run = functools.partial(run_stateless, self.transform, block, self.axes, self.options, self.execution,
                                callbacks.get("prolog"), callbacks.get("epilog"), None, self.direction)
        if self.token in _compiled:
            return run()
        with _compile_lock:  # a worker's threads would otherwise each compile on a first miss
            result = run()
            _compiled.add(self.token)
        return result

    def _sides(self) -> list[_Side]:
        return [s for s in (self.prolog, self.epilog) if s is not None]

    def _shipped(self) -> bool:
        return all(s.ltoir is not None for s in self._sides())

    def _gpu(self, block: Any, data: dict) -> Any:
        import cupy

        _count("gpu_chunks")
        opts = FFTOptions.of(self.options)
        device = int(block.device.id)
        with cupy.cuda.Device(device), contextlib.ExitStack() as held:
            arch = device_arch(device)
            stream = cupy.cuda.get_current_stream().ptr
            problem = None
            callbacks = {}
            for s in self._sides():
                check_links_here(s.kind, s.arch, s.toolkit, arch)
                if s.data is None:
                    callbacks[s.kind] = {"ltoir": s.ltoir}
                    continue
                if problem is None:
                    problem = problem_for(self.transform, tuple(block.shape), _element_strides(block), block.dtype.name,
                                          self.axes, False, opts.last_axis_parity, opts.result_layout)
                target = problem.input if s.kind == "prolog" else problem.output
                values, location, _ = data[s.kind]
                # Broadcast data is kept as its block (read in place by LTO-IR for this layout);
                # other data is copied into a buffer of the chunk's layout and read at the offset.
                ltoir = dict(s.broadcast).get((tuple(target.shape), tuple(target.strides)))
                shape, strides = (values.shape, _c_strides(values.shape)) if ltoir else (target.shape, target.strides)
                span = int(np.prod(shape)) if ltoir else target.span
                buffer = _buffer(device, stream, s.kind, tuple(shape), tuple(strides), span, s.user_dtype)
                held.enter_context(buffer.lock)  # held until the FFT is queued behind the copy
                key = (s.data, location)  # chunks reading the same data block share its copy
                if buffer.token != key:
                    buffer.fill(cupy.asarray(values), key)
                # LTO-IR with a pointer: the plan reads the buffer's address, which stays.
                callbacks[s.kind] = ({"ltoir": ltoir, "data": int(buffer.array.data.ptr)} if ltoir else
                                     {"ltoir": s.ltoir, "data": buffer.array})
            # The chunks of one shape reuse one planned engine: its plan reads the data at the
            # buffer's address, which the key holds, so only the operand changes.
            pointers = tuple(_address(c.get("data", 0)) for c in callbacks.values())
            key = (self.token, device, stream, tuple(block.shape), block.strides, block.dtype.str, pointers)
            engine = _engines.get_or_build(key, lambda: self._new_engine(block, callbacks))
            engine.reset_operand(block)
            try:
                return engine.execute()
            finally:
                engine.reset_operand(None)  # a kept engine holds no chunk

    def _new_engine(self, block: Any, callbacks: dict) -> Any:
        engine = FFT(block, axes=self.axes, options=self.options, execution=self.execution, _transform=self.transform,
                     _shared_plans=True)
        engine.plan(direction=self.direction, **callbacks)
        return engine


class _Buffer:
    """User data laid out as a plan's callback reads it, at an address that stays (so the plan does)."""

    def __init__(self, array: Any):
        self.array = array
        self.lock = threading.Lock()
        self.token: Any = None

    def fill(self, values: Any, token: Any) -> None:
        self.array[...] = values  # on the current stream, ahead of the FFT that reads it
        self.token = token


_compile_lock = threading.Lock()
_compiled: set[str] = set()  # tokens of the callbacks this process has run (so compiled)
_buffers: collections.OrderedDict[tuple, _Buffer] = collections.OrderedDict()
_buffers_lock = threading.Lock()
_MAX_BUFFERS = 16


# The chunks of one shape on a worker thread reuse one planned engine (an engine runs one chunk at a time).
_engines = ThreadEngines(8, lambda engine: engine.free())


def _buffer(device: int, stream: int, kind: str, shape: tuple, strides: tuple, span: int, dtype: str) -> _Buffer:
    from ._tensor import empty_strided

    key = (device, stream, kind, shape, strides, dtype)
    with _buffers_lock:
        found = _buffers.get(key)
        if found is not None:
            _buffers.move_to_end(key)
            return found
        import cupy

        found = _buffers[key] = _Buffer(empty_strided(cupy, shape, strides, dtype, span))
        while len(_buffers) > _MAX_BUFFERS:
            _buffers.popitem(last=False)  # a holder of its lock keeps its own reference
        return found


# -- helpers -------------------------------------------------------------------------------------
def _whole_fft_axes(x: Any, fft_axes: tuple[int, ...]) -> Any:
    """``x`` with each FFT axis in one chunk: rechunked, with a warning that says what it costs."""
    split = [a for a in fft_axes if len(x.chunks[a]) > 1]
    if not split:
        return x
    from dask.array.core import PerformanceWarning

    y = x.rechunk({a: (-1 if a in fft_axes else "auto") for a in range(x.ndim)})
    chunk = tuple(c[0] for c in y.chunks)
    chunk_mib = int(np.prod(chunk)) * x.dtype.itemsize / 2**20
    warnings.warn(
        f"the FFT axes {split} of this Dask array are split across chunks ({', '.join(f'axis {a}: {len(x.chunks[a])} chunks' for a in split)}); "
        f"rechunked to chunks of {chunk} ({chunk_mib:.1f} MiB each), which moves the whole array "
        f"({x.nbytes / 2**20:.1f} MiB) between workers once before the FFT. Rechunk it yourself, e.g. "
        f"x.rechunk({{{', '.join(f'{a}: -1' for a in split)}}}), to choose the batch chunks and silence this",
        PerformanceWarning, stacklevel=5,  # the caller of nvmath.fft.fft
    )
    return y


def _c_strides(shape: tuple) -> tuple:
    return dense_strides(shape, range(len(shape)))


def _element_strides(array: Any) -> tuple:
    return tuple(s // array.dtype.itemsize for s in array.strides)


def _address(data: Any) -> int:
    return data if isinstance(data, int) else int(data.data.ptr)


def _is_cupy(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "cupy"


def _module(obj: Any) -> Any:
    import importlib

    return importlib.import_module(type(obj).__module__.split(".")[0])


def _names_cpu(execution: Any) -> bool:
    if isinstance(execution, ExecutionCPU):
        return True
    if isinstance(execution, dict):
        execution = execution.get("name", "")
    return str(execution).lower() == "cpu"


def _empty_like_meta(meta: Any, dtype: str, ndim: int) -> Any:
    xp = _module(meta) if _is_cupy(meta) else np
    return xp.empty((0,) * ndim, dtype=dtype)


_stats: collections.Counter = collections.Counter()
_stats_lock = threading.Lock()


def _count(name: str) -> None:
    with _stats_lock:
        _stats[name] += 1


def chunk_stats() -> dict[str, int]:
    """What this process ran of Dask graphs: ``chunks``, and ``gpu_chunks`` (those that ran LTO-IR
    shipped in the graph). Run it on each worker with ``client.run(chunk_stats)``.

    >>> sorted(chunk_stats())
    ['chunks', 'gpu_chunks']
    """
    with _stats_lock:
        return {name: int(_stats[name]) for name in ("chunks", "gpu_chunks")}
