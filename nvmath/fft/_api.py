"""The FFT engine: the stateful ``FFT``, which the stateless functions (``_stateless``) use too.

``FFT`` decides the buffers (``_layout``), compiles the callbacks (through the cache, dtypes
inferred from the problem and the user's data), and runs them on the GPU (cuFFT with LTO
callbacks) or the CPU (SciPy + numba). Engines of stateless calls borrow plans from a
per-device cache instead of building their own.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

import numpy as np

from ._callbacks import CallbackSpec, callback_spec, lay_out_user_data
from ._layout import FFTProblem, LayoutError, check_axes, plan_problem
from ._options import FFTOptions, execution_target, execution_threads
from ._tensor import Tensor, as_tensor, empty_strided


@functools.lru_cache(maxsize=1024)
def _problem(kind, shape, strides, dtype, axes, inplace, parity, layout) -> FFTProblem:
    return plan_problem(kind, shape, strides, dtype, axes, inplace=inplace, last_axis_parity=parity,
                        result_layout=layout)


_FFT_TYPES = {"fft": "C2C", "ifft": "C2C", "rfft": "R2C", "irfft": "C2R"}

# A released engine's spec had data: the next call brings its own (see FFT._release_arrays).
_RELEASED = object()


class FFT:
    """A planned FFT that can run many times, with a prolog and/or epilog fused in.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((4, 16)).astype(np.complex64)
    >>> with FFT(x, axes=[-1]) as f:
    ...     f.plan(epilog=lambda v: v * 2)
    ...     y = f.execute()
    >>> bool(np.allclose(y, 2 * np.fft.fft(x), atol=1e-4))
    True
    """

    def __init__(self, operand: Any, *, axes: Any = None, options: Any = None, execution: Any = None,
                 stream: Any = None, _kind: str | None = None, _shared_plans: bool = False):
        self.options = FFTOptions.of(options)
        self._host_result = False
        tensor = as_tensor(operand)
        self._target = execution_target(execution, tensor, self.options)
        self._threads = self.options.num_threads or execution_threads(execution)
        if self._target == "cuda" and not tensor.on_gpu:
            tensor = _to_device(tensor, execution, self.options)
            self._host_result = True
        elif self._target == "cpu" and tensor.on_gpu:  # debug mode runs GPU operands on the host
            tensor = Tensor(tensor.array.get(), tensor.framework, None)
            self._host_result = "device"
        self._operand = tensor
        self._axes = check_axes(axes)
        self._kind = _kind or self._default_kind(tensor.dtype)
        if _kind is not None and self.options.fft_type not in (None, _FFT_TYPES[_kind]):
            raise ValueError(f"{_kind}() runs a {_FFT_TYPES[_kind]} transform but options.fft_type is "
                             f"{self.options.fft_type!r}; drop fft_type or call the matching function")
        self._shared = _shared_plans
        self._stream = _check_stream(stream)
        self.problem = self._make_problem(tensor)
        self._prolog: CallbackSpec | None = None
        self._epilog: CallbackSpec | None = None
        self._executor: Any = None
        self._release_plan: Any = None  # gives the GPU plan back (weakref.finalize: also when collected)
        self._freed = False
        self._last_stream: Any = None
        self._input_buffer = None
        self._data: dict[str, Any] = {}

    def _default_kind(self, dtype: str) -> str:
        fft_type = self.options.fft_type
        if fft_type is None:
            return "fft" if dtype.startswith("complex") else "rfft"
        kinds = {"C2C": "fft", "R2C": "rfft", "C2R": "irfft"}
        if fft_type not in kinds:
            raise ValueError(f"fft_type must be one of {sorted(kinds)}, got {fft_type!r}")
        return kinds[fft_type]

    def _make_problem(self, t: Tensor) -> FFTProblem:
        o = self.options
        try:
            return _problem(self._kind, t.shape, t.strides, t.dtype, self._axes, o.inplace, o.last_axis_parity,
                            o.result_layout)
        except LayoutError:
            raise
        except ValueError as exc:
            raise LayoutError(str(exc)) from None

    # -- layouts -------------------------------------------------------------------------------
    def get_input_layout(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(shape, strides in elements) of the buffer the prolog's offsets address."""
        return self.problem.input.shape, self.problem.input.strides

    def get_output_layout(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(shape, strides in elements) of the buffer the epilog's offsets address."""
        return self.problem.output.shape, self.problem.output.strides

    # -- planning ------------------------------------------------------------------------------
    def plan(self, *, prolog: Any = None, epilog: Any = None, stream: Any = None) -> None:
        """Compile the callbacks (through the cache) and build the plan (replacing an earlier one)."""
        self._check_live("plan")
        self._free_executor()
        self._plan_stream = _check_stream(stream) if stream is not None else self._stream
        self._prolog = callback_spec(prolog, "prolog")
        self._epilog = callback_spec(epilog, "epilog")
        for spec in (self._prolog, self._epilog):
            if spec is not None and spec.data is not None:
                self._check_data_device(spec)
        # Data first: LTO-IR given as bytes has its user_info pointer fixed in the plan.
        self._data = {s.kind: self._lay_out(s) for s in (self._prolog, self._epilog) if s is not None}
        self._executor = self._plan_gpu() if self._target == "cuda" else self._plan_cpu()

    def _check_data_device(self, spec: CallbackSpec) -> None:
        data = spec.data
        if self._target == "cuda":
            if not data.on_gpu:
                raise ValueError(f"{spec.name}: its data is in host memory but the FFT runs on GPU "
                                 f"{self._operand.device_id}; move the data to that device")
            if data.device_id != self._operand.device_id:
                raise ValueError(f"{spec.name}: its data is on GPU {data.device_id} but the operand is on GPU "
                                 f"{self._operand.device_id}; user data must be on the operand's device")
        elif data.on_gpu:
            if self._host_result == "device":  # debug mode: everything moves to the host
                object.__setattr__(spec, "data", Tensor(data.array.get(), data.framework, None))
            else:
                raise ValueError(f"{spec.name}: its data is on a GPU but the FFT runs on the CPU")

    def _lay_out(self, spec: CallbackSpec) -> Any:
        if spec.data is None:
            return None
        target = self.problem.input if spec.kind == "prolog" else self.problem.output
        if self._target == "cuda":
            import cupy

            with cupy.cuda.Device(self._operand.device_id), _on_stream(self._plan_stream):
                return lay_out_user_data(spec, target, allow_copy=self.options.user_data_copy)
        return lay_out_user_data(spec, target, allow_copy=self.options.user_data_copy)

    def _element_dtype(self, kind: str) -> str:
        return self.problem.input_dtype if kind == "prolog" else self.problem.output_dtype

    def _plan_gpu(self) -> Any:
        from . import _gpu

        device = self._operand.device_id
        attached = [self._attach(s) if s is not None else None for s in (self._prolog, self._epilog)]
        patient = self.options.patient_jit
        build = lambda: _gpu.GpuPlan(self.problem, attached[0], attached[1], device, patient_jit=patient)  # noqa: E731
        if self._shared:
            key = (device, self.problem, patient, *(a.key() if a else None for a in attached))
            plan = _gpu.plan_cache.acquire(key, build)
            self._release_plan = weakref.finalize(self, _gpu.plan_cache.release, plan)
        else:
            plan = build()
            self._release_plan = weakref.finalize(self, plan.free)
        return plan

    def _attach(self, spec: CallbackSpec) -> Any:
        from compiler import compile_callback

        from ._gpu import AttachedCallback

        element = self._element_dtype(spec.kind)
        laid_out = self._data.get(spec.kind)
        pointer = int(laid_out.data.ptr) if laid_out is not None else (spec.pointer or 0)
        if spec.ltoir is not None:
            # nvmath-python's form: user_info is the data pointer itself, fixed in the plan.
            _check_raw_ltoir(spec, element, _device_arch(self._operand.device_id))
            return AttachedCallback(spec.kind, spec.ltoir, element,
                                    indirect=False, pointer=pointer, name=spec.name, toolkit=None)
        # Shared (stateless) plans read the data pointer from a slot, so new data reuses the plan;
        # a stateful plan owns its data and gets the pointer itself, one load less per element.
        indirect = self._shared and spec.data is not None
        arch = _device_arch(self._operand.device_id)
        if spec.source is not None:
            from compiler.cuda_source import compile_source

            compiled = compile_source(spec.source, spec.kind, element, name=spec.source_name,
                                      compute_capability=arch, indirect=indirect)
            return AttachedCallback(spec.kind, compiled.ltoir, element, indirect=indirect,
                                    pointer=None if indirect else pointer, name=spec.name, toolkit=compiled.toolkit)
        compiled = compile_callback(spec.fn, spec.kind, element, spec.data.dtype if spec.data else None,
                                    compute_capability=arch, indirect=indirect, literals=self.options.float_literals)
        return AttachedCallback(spec.kind, compiled.ltoir, element, indirect=indirect,
                                pointer=None if indirect else pointer, name=spec.name, toolkit=compiled.toolkit)

    def _plan_cpu(self) -> Any:
        from compiler.cpu_backend import compile_cpu, python_callback

        from ._cpu import CpuExecutor

        debug = self.options.debug_mode
        compiled = []
        for spec in (self._prolog, self._epilog):
            if spec is None:
                compiled.append(None)
                continue
            if spec.source is not None:
                raise ValueError(f"{spec.name}: CUDA C++ callbacks run only on the GPU; on the CPU pass the Python "
                                 f"function (prolog=f or {{'fn': f, 'data': array}})")
            if spec.fn is None:
                raise ValueError(f"{spec.name}: LTO-IR runs only on the GPU; on the CPU pass the Python function "
                                 f"(prolog=f or {{'fn': f, 'data': array}})")
            args = (spec.fn, spec.kind, self._element_dtype(spec.kind), spec.data.dtype if spec.data else None)
            compiled.append(python_callback(*args) if debug else
                            compile_cpu(*args, literals=self.options.float_literals))
        return CpuExecutor(self.problem, compiled[0], compiled[1], workers=self._threads, debug=debug)

    # -- execution -----------------------------------------------------------------------------
    def execute(self, *, direction: str | None = None, stream: Any = None) -> Any:
        """Run the FFT; returns the result in the operand's framework."""
        self._check_live("execute")
        if self._executor is None:
            self.plan()
        direction = self._direction(direction)
        problem = self.problem
        if self._target == "cuda":
            return self._execute_gpu(direction, stream)  # which checks the stream
        _check_stream(stream)
        inp = self._input()
        out = inp if problem.inplace else empty_strided(
            np, problem.output.shape, problem.output.strides, problem.output_dtype, problem.output.span)
        self._executor.execute(inp, out, direction, self._data.get("prolog"), self._data.get("epilog"))
        return self._result(out)

    def _direction(self, direction: str | None) -> str:
        if direction is None:
            return self.problem.direction
        if direction not in ("forward", "inverse"):
            raise ValueError(f"direction must be 'forward' or 'inverse', got {direction!r}")
        if self.problem.fft_type != "C2C" and direction != self.problem.direction:
            raise ValueError(f"a {self.problem.fft_type} FFT runs {self.problem.direction} only")
        return direction

    def _input(self) -> Any:
        problem, operand = self.problem, self._operand
        if not problem.copy_input:
            return operand.array
        if self._input_buffer is None:  # on the GPU, _execute_gpu has set the device and stream
            layout = problem.input
            self._input_buffer = empty_strided(operand.xp, layout.shape, layout.strides, problem.input_dtype,
                                               layout.span)
        self._input_buffer[...] = operand.array
        return self._input_buffer

    def _execute_gpu(self, direction: str, stream: Any) -> Any:
        import cupy

        from ._cufft import CUFFT_FORWARD, CUFFT_INVERSE

        problem = self.problem
        # Copies, allocations and the FFT all go on the caller's stream, in order.
        with cupy.cuda.Device(self._operand.device_id), _on_stream(stream if stream is not None else self._stream) as s:
            if s.ptr != self._last_stream:
                # The input copy of an execution on another stream may still be read there: take
                # a fresh one from CuPy's pool, which reuses memory in its stream's order.
                self._input_buffer, self._last_stream = None, s.ptr
            inp = self._input()
            out = inp if problem.inplace else empty_strided(
                cupy, problem.output.shape, problem.output.strides, problem.output_dtype, problem.output.span)
            data = [self._data.get(k) for k in ("prolog", "epilog")]
            pointers = [int(d.data.ptr) if d is not None else 0 for d in data]
            self._executor.execute(int(inp.data.ptr), int(out.data.ptr),
                                   CUFFT_FORWARD if direction == "forward" else CUFFT_INVERSE, s.ptr, *pointers)
            if self.options.blocking is True or (self._host_result is True and self.options.blocking == "auto"):
                s.synchronize()
            return self._result(out)

    def _result(self, out: Any) -> Any:
        if self._host_result is True:
            return self._operand.wrap_result(out.get()) if self._operand.framework != "numpy" else out.get()
        if self._host_result == "device":
            import cupy

            return self._operand.wrap_result(cupy.asarray(out))
        return self._operand.wrap_result(out)

    def _rerun(self, operand: Any, prolog: Any, epilog: Any, stream: Any) -> Any:
        """Run this (stateless, planned) engine again on another operand and callback data of the
        same layout; the callbacks' fingerprints have been checked by the caller."""
        self._operand = as_tensor(operand)
        for spec in (self._prolog, self._epilog):
            if spec is not None and spec.data is _RELEASED:
                new = prolog if spec.kind == "prolog" else epilog
                object.__setattr__(spec, "data", as_tensor(new["data"], what=f"{spec.kind} data"))
        self._plan_stream = stream
        self._data = {s.kind: self._lay_out(s) for s in (self._prolog, self._epilog) if s is not None}
        return self.execute(stream=stream)

    def _release_arrays(self) -> None:
        """Drop this engine's references to the caller's arrays and its input copy, so a cached
        engine holds no memory between calls (the GPU may still be reading them: CuPy's pool
        reuses memory in stream order)."""
        self._operand = self._input_buffer = None
        self._data = {}
        for spec in (self._prolog, self._epilog):
            if spec is not None:
                object.__setattr__(spec, "data", None if spec.data is None else _RELEASED)

    def reset_operand(self, operand: Any = None, *, stream: Any = None) -> None:
        """Point the plan at a new operand of the same shape, strides, dtype and device."""
        self._check_live("reset_operand")
        if operand is None:
            return
        tensor = as_tensor(operand)
        if self._host_result is True:
            tensor = _to_device(tensor, None, self.options, device_id=self._operand.device_id)
        same = (tensor.shape, tensor.strides, tensor.dtype, tensor.device_id) == (
            self._operand.shape, self._operand.strides, self._operand.dtype, self._operand.device_id)
        if not same:
            raise ValueError(
                f"reset_operand needs an operand like the planned one (shape {self._operand.shape}, strides "
                f"{self._operand.strides}, {self._operand.dtype}, device {self._operand.device_id}); got shape "
                f"{tensor.shape}, strides {tensor.strides}, {tensor.dtype}, device {tensor.device_id}. Create a new FFT"
            )
        self._operand = tensor

    def free(self) -> None:
        """Release the plan and buffers; the FFT cannot run again (create a new one)."""
        self._free_executor()
        self._input_buffer = None
        self._data = {}
        self._freed = True

    def _free_executor(self) -> None:
        if self._release_plan is not None:
            self._release_plan()  # a shared plan goes back to the cache, an owned one is freed
            self._release_plan = None
        self._executor = None

    def _check_live(self, what: str) -> None:
        if self._freed:
            raise RuntimeError(
                f"{what}() on an FFT that was freed (by free() or at the end of its with-block): its plan "
                "and callbacks are gone. Create a new FFT, or call free() only when done with it"
            )

    def __enter__(self) -> "FFT":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.free()


def _check_raw_ltoir(spec: CallbackSpec, element: str, arch: int) -> None:
    """LTO-IR given as bytes is opaque: link it against cuFFT's prototype before cuFFT does."""
    found = _ltoir_matches(spec.ltoir, spec.kind, element, arch)
    if found is True:
        return
    side = "input" if spec.kind == "prolog" else "output"
    what = f"a {found[0]} for {found[1]} elements" if found else "not a cuFFT callback this FFT can link"
    raise TypeError(
        f"{spec.name}: this LTO-IR is {what}, but it was passed as the {spec.kind} of an FFT whose {side} is "
        f"{element}. Compile it with compile_{spec.kind}(fn, {element!r}, ...)"
    )


@functools.lru_cache(maxsize=64)
def _ltoir_matches(ltoir: bytes, kind: str, element: str, arch: int) -> Any:
    """True when ``ltoir`` defines the callback cuFFT will look for, else what it defines (or None)."""
    from compiler.dtypes import ELEMENT_DTYPES, KINDS
    from compiler.linkcheck import LinkCheckError, link_check

    def links(k: str, d: str) -> bool:
        try:
            link_check(ltoir, k, d, arch)
            return True
        except LinkCheckError:
            return False

    if links(kind, element):
        return True
    return next(((k, d) for k in KINDS for d in ELEMENT_DTYPES if (k, d) != (kind, element) and links(k, d)), None)


def _to_device(tensor: Tensor, execution: Any, options: FFTOptions, device_id: int | None = None) -> Tensor:
    import cupy

    if device_id is None:
        device_id = getattr(execution, "device_id", None) if not isinstance(execution, dict) else execution.get("device_id")
        device_id = device_id if device_id is not None else (options.device_id or 0)
    with cupy.cuda.Device(device_id):
        return Tensor(cupy.asarray(tensor.array), tensor.framework, device_id)


@functools.lru_cache(maxsize=None)
def _device_arch(device_id: int) -> int:
    import cupy

    return int(cupy.cuda.Device(device_id).compute_capability)


class _Current:
    """The context of CuPy's current stream: nothing to switch."""

    def __init__(self, stream: Any):
        self.stream = stream

    def __enter__(self) -> Any:
        return self.stream

    def __exit__(self, *exc: Any) -> None:
        return None


class _StreamHandle:
    """A raw cudaStream_t offered through the CUDA stream protocol."""

    def __init__(self, pointer: int):
        self.pointer = pointer

    def __cuda_stream__(self) -> tuple[int, int]:
        return (0, self.pointer)


def _external_stream(cupy: Any, pointer: int) -> Any:
    from_external = getattr(cupy.cuda.Stream, "from_external", None)  # CuPy 14+
    if from_external is not None:
        return from_external(_StreamHandle(pointer))
    return cupy.cuda.ExternalStream(pointer)


def _check_stream(stream: Any) -> Any:
    """``stream`` unchanged if it is one ``_on_stream`` takes (checked where no GPU is used too)."""
    if stream is None or hasattr(stream, "ptr") or hasattr(stream, "cuda_stream"):
        return stream
    if isinstance(stream, int) and not isinstance(stream, bool):
        if stream < 0:
            raise ValueError(f"stream={stream} is not a cudaStream_t; pass a CuPy or PyTorch stream or a handle >= 0")
        return stream
    raise TypeError(f"stream of type {type(stream).__name__} is not understood; pass a CuPy or PyTorch stream "
                    "or a cudaStream_t as int")


def _on_stream(stream: Any) -> Any:
    """A context in which ``stream`` (CuPy, PyTorch, a raw cudaStream_t int, or None for CuPy's
    current stream) is CuPy's current stream; it yields the CuPy stream object."""
    import cupy

    if stream is None:
        return _Current(cupy.cuda.get_current_stream())
    if isinstance(stream, cupy.cuda.Stream):
        return stream
    if isinstance(stream, int) and not isinstance(stream, bool):
        return _external_stream(cupy, _check_stream(stream))
    pointer = getattr(stream, "cuda_stream", None)  # PyTorch
    if pointer is not None:
        return _external_stream(cupy, int(pointer))
    raise TypeError(f"stream of type {type(stream).__name__} is not understood; pass a CuPy or PyTorch stream "
                    "or a cudaStream_t as int")
