"""The FFT engine: the stateful ``FFT``, which the stateless functions (``_reuse``) use too.

``FFT`` asks the planner (``_planner``) for its buffers and its ``Plan``, then compiles the
callbacks (through the cache, dtypes inferred from the problem and the user's data), lays out
their data and runs them on the GPU (cuFFT with LTO callbacks) or the CPU (ducc0 + numba).
Engines of stateless calls borrow plans from a per-device cache instead of building their own.
"""

from __future__ import annotations

import functools
import logging
import numbers
import time
import weakref
from typing import Any, Callable, Sequence, Union

import numpy as np

from ._callbacks import CallbackSpec, DeviceCallable, callback_form, callback_terms, lay_out_user_data, parameter_values
from ._docs import shared_doc
from ._gpu_presence import describe_execution
from ._log import fft_logger, log_compiled
from ._memory_space import SAME, TO_GPU, crossing
from ._options import DirectionLike, Execution, FFTOptions, Norm, cpu_threads, execution_target
from . import _planner
from ._planner import (Plan, execution_device, function_transform, gpu_plan_key, make_plan, place_data,
                       planned_direction, problem_for, request_key, transform_for)
from ._half import (PromotedCpuExecutor, PromotedGpuExecutor, complex_operand, is_half, operand_dtype, promoted,
                    result_pairs)
from ._streams import check_stream as _check_stream, on_stream as _on_stream
from ._tensor import Tensor, as_tensor, check_writeable, empty_factory, empty_strided, fill

# What prolog= and epilog= take: a Python function, {"fn": f, "data": array}, a DeviceCallable,
# or nvmath-python's {"ltoir": bytes, "data": pointer}.
Callback = Union[Callable, dict, DeviceCallable, None]
Axes = Union[int, Sequence[int], None]



def axes_tuple(axes: Axes) -> tuple[int, ...] | None:
    """``axes`` as a tuple (an int is one axis, as in SciPy); None stays None. Only integers are
    axes: ``1.7`` is refused, not truncated.

    >>> axes_tuple(-1), axes_tuple([0, np.int64(2)])
    ((-1,), (0, 2))
    """
    if axes is None:
        return None
    if _is_integer(axes):
        return (int(axes),)
    if isinstance(axes, (str, bytes)) or not hasattr(axes, "__iter__"):
        raise TypeError(f"axes must be an int or a sequence of ints such as [-1], got {axes!r}")
    out = tuple(axes)
    for a in out:
        if not _is_integer(a):
            raise TypeError(f"axes must be integers, got {a!r} (a {type(a).__name__}) in {axes!r}")
    return tuple(int(a) for a in out)


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


@shared_doc
class FFT:
    """A planned FFT that can run many times, with a prolog and/or epilog fused in.

    Parameters:
        {operand}
        {axes}
        {options}
        {execution}
        {stream}

    {raises}

    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((4, 16)).astype(np.complex64)
    >>> with FFT(x, axes=[-1]) as f:
    ...     f.plan(epilog=lambda v: v * 2)
    ...     y = f.execute()
    >>> bool(np.allclose(y, 2 * np.fft.fft(x), atol=1e-4))
    True
    """

    def __init__(self, operand: Any, *, axes: Axes = None, options: FFTOptions | dict | None = None,
                 execution: Execution | None = None, stream: Any = None, _transform: str | None = None,
                 _shared_plans: bool = False):
        self.options = FFTOptions.of(options)
        self._execution = execution
        tensor = user_tensor = as_tensor(operand)
        self._target = execution_target(execution, tensor, self.options)
        # An operand in the other memory space is copied to where the FFT runs (_memory_space).
        self._space = crossing(tensor, self._target, execution_device(execution, self.options),
                               describe_execution(execution))
        self._stream = self._check_stream(stream)
        tensor = self._space.inbound(tensor, self._stream)
        self._user_tensor: Tensor | None = user_tensor  # the caller's operand, in its memory space
        self._operand: Tensor | None = tensor  # where the FFT runs
        self._operand_device = tensor.device_id  # reset_operand keeps it
        self._planned_operand = (tensor.shape, tensor.strides, tensor.dtype, tensor.device_id)
        self._user_operand = operand
        self._axes = axes_tuple(axes)
        self._transform = function_transform(_transform, self.options, operand_dtype(tensor, self.options)) \
            if _transform else transform_for(tensor.dtype, self.options)
        tensor = self._operand = complex_operand(tensor, self._transform)  # NumPy/CuPy complex32: float16 pairs
        self._shared = _shared_plans
        o = self.options
        self.problem = problem_for(self._transform, tensor.shape, tensor.strides, tensor.dtype, self._axes, o.inplace,
                                   o.last_axis_parity, o.result_layout)
        if self.problem.inplace:
            check_writeable(user_tensor)
        self._pairs = result_pairs(self.problem)
        self._plan: Plan | None = None  # decided by plan(): callbacks, direction, norm, executor
        self._executor: Any = None
        self._release_plan: Any = None  # gives the GPU plan back (weakref.finalize: also when collected)
        self._freed = False
        self._last_stream: Any = None
        self._input_buffer = None
        self._data: dict[str, Any] = {}
        # Decided when planned for the GPU (see _prepare_launch): the callbacks' data pointers,
        # which data each call may pass where it lies, and how outputs are allocated.
        self._data_pointers: tuple[int, int] = (0, 0)
        self._data_in_place: tuple[bool, bool] = (True, True)
        self._call_varies = False
        self._direct_data: tuple[bool, bool] | None = None  # a stateless CPU rerun's data passed as given
        self._new_output: Callable[[], Any] | None = None
        self._terms: dict[str, Any] = {}  # per callback: compiler.terms.Terms or None
        self._params: dict[str, tuple] = {}  # per callback: runtime parameter values (NumPy scalars)
        self._broadcast: dict[str, bool] = {}  # per callback: its data is read at broadcast positions

    # What the plan decided (nothing before plan()).
    @property
    def _prolog(self) -> CallbackSpec | None:
        return self._plan.prolog if self._plan is not None else None

    @property
    def _epilog(self) -> CallbackSpec | None:
        return self._plan.epilog if self._plan is not None else None

    @property
    def _plan_direction(self) -> str | None:
        return self._plan.direction if self._plan is not None else None

    @property
    def _norm(self) -> str | None:
        return self._plan.norm if self._plan is not None else None

    @property
    def operand(self) -> Any:
        """The operand the next ``execute`` transforms (None after ``reset_operand(None)``)."""
        return self._user_operand

    # -- keys for caching planned FFTs -----------------------------------------------------------
    @staticmethod
    def create_key(operand: Any, *, axes: Axes = None, options: FFTOptions | dict | None = None,
                   execution: Execution | None = None, prolog: Callback = None, epilog: Callback = None) -> tuple:
        """A hashable key of the FFT problem: equal keys can share one planned ``FFT``.

        It covers the operand's shape, strides, dtype and device, the axes, the options, where
        it executes, and the callbacks (their code by fingerprint, their data by address).
        Meant for a dictionary of planned FFTs in this process, reused with ``reset_operand``.

        >>> import numpy as np
        >>> a, b = np.ones((4, 8), np.complex64), np.zeros((4, 8), np.complex64)
        >>> FFT.create_key(a, axes=[-1]) == FFT.create_key(b, axes=[-1])
        True
        >>> FFT.create_key(a, axes=[-1]) == FFT.create_key(a, axes=[0])
        False
        """
        return request_key(operand, axes_tuple(axes), FFTOptions.of(options), execution, prolog, epilog)

    def get_key(self, *, prolog: Callback = None, epilog: Callback = None) -> tuple:
        """``create_key`` of this FFT's operand, axes, options and execution with these callbacks."""
        operand = self._user_tensor
        if operand is None:
            raise RuntimeError("this FFT has no operand (reset_operand(None) released it); reset_operand first")
        return FFT.create_key(operand.array, axes=self._axes, options=self.options, execution=self._execution,
                              prolog=prolog, epilog=epilog)

    # -- layouts -------------------------------------------------------------------------------
    def get_input_layout(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(shape, strides in elements) of the buffer the prolog's offsets address."""
        return self.problem.input.shape, self.problem.input.strides

    def get_output_layout(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(shape, strides in elements) of the buffer the epilog's offsets address."""
        return self.problem.output.shape, self.problem.output.strides

    # -- planning ------------------------------------------------------------------------------
    @shared_doc
    def plan(self, *, prolog: Callback = None, epilog: Callback = None, stream: Any = None,
             direction: DirectionLike | None = None, norm: Norm | None = None) -> None:
        """Compile the callbacks (through the cache) and build the plan (replacing an earlier one).

        Parameters:
            {prolog}
            {epilog}
            {stream}
            {direction} Given here, it is the default of ``execute``.
            {norm}

        {raises}
        """
        self._check_live("plan")
        self._require_operand("plan")
        self._free_executor()
        self._plan = None
        self._plan_stream = self._check_stream(stream) if stream is not None else self._stream
        plan = make_plan(self.problem, self._target, self.options, prolog, epilog, direction=direction, norm=norm,
                         shared=self._shared, device_id=self._space.gpu, stream=self._plan_stream)
        self._plan = plan
        # Data first: LTO-IR given as bytes has its user_info pointer fixed in the plan.
        self._data, self._terms, self._params = {}, {}, {}
        for spec in (self._prolog, self._epilog):
            if spec is not None:
                self._bind(spec)
        started = time.perf_counter()
        self._executor = self._plan_gpu() if self._target == "cuda" else self._plan_cpu()
        if self._target == "cuda":
            self._prepare_launch()
        log = fft_logger(self.options)
        if log.isEnabledFor(logging.INFO):
            p = self.problem
            names = ", ".join(s.name for s in (self._prolog, self._epilog) if s is not None) or "no callbacks"
            log.info("planned %s %s n=%s batch=%d on %s with %s in %.1f ms", p.fft_type, p.input_dtype, p.fft_lengths,
                     p.batch, self._target if self._target == "cpu" else f"GPU {self._operand.device_id}", names,
                     1e3 * (time.perf_counter() - started))

    def set_params(self, *, prolog: dict[str, Any] | None = None, epilog: dict[str, Any] | None = None) -> None:
        """New values of the callbacks' runtime parameters (keyword-only parameters), used from the next
        ``execute``: no compile, no new plan. Values keep the type the plan was compiled for.

        >>> import numpy as np
        >>> x = np.ones((2, 8), np.complex128)
        >>> def gain(v, *, g): return v * g
        >>> with FFT(x, axes=[-1]) as f:
        ...     f.plan(epilog={"fn": gain, "params": {"g": 2.0}})
        ...     a = f.execute()
        ...     f.set_params(epilog={"g": 3.0})
        ...     b = f.execute()
        >>> float(a[0, 0].real), float(b[0, 0].real)
        (16.0, 24.0)
        """
        for spec, given in ((self._prolog, prolog), (self._epilog, epilog)):
            if given is None:
                continue
            terms = self._terms.get(spec.kind) if spec is not None else None
            if terms is None or not terms.params:
                raise ValueError(f"the planned {spec.name if spec else 'FFT'} has no runtime parameters "
                                 f"(keyword-only parameters) to set")
            values = parameter_values(spec, {**dict(zip((n for n, _ in terms.params), self._params[spec.kind])),
                                             **given})
            for (name, dtype), value in zip(terms.params, values.values()):
                if not np.can_cast(np.min_scalar_type(value) if not isinstance(value, np.generic) else value.dtype,
                                   dtype, "same_kind"):
                    raise TypeError(f"{spec.name}: parameter {name!r} was planned as {dtype}; {value!r} does not "
                                    f"convert to it. Plan again for another type")
            self._params[spec.kind] = terms.param_values(values)

    def _bind(self, spec: CallbackSpec) -> None:
        """Lay out ``spec``'s data and decide its terms (indices, broadcast, runtime parameters)."""
        kind = spec.kind
        target = self.problem.input if kind == "prolog" else self.problem.output
        form = callback_form(spec, target) if spec.fn is not None else None
        broadcast = self._broadcast[kind] = form is not None and form.takes_data_element
        self._data[kind], strides = self._lay_out(spec, broadcast)
        if form is None:
            self._terms[kind], self._params[kind] = None, ()
            return
        single = self._plan.single[0 if kind == "prolog" else 1]
        terms = self._terms[kind] = callback_terms(spec, form, target, strides, single)
        self._params[kind] = terms.param_values(parameter_values(spec)) if terms is not None and terms.params else ()

    def _data_on_target(self, spec: CallbackSpec | None) -> CallbackSpec | None:
        """``spec`` once its data is checked to be where this FFT runs (``_planner.place_data``)."""
        return place_data(spec, self._target, self._operand.device_id)

    def _lay_out(self, spec: CallbackSpec, broadcast: bool) -> tuple[Any, Any]:
        if spec.data is None:
            return None, None
        target = self.problem.input if spec.kind == "prolog" else self.problem.output
        copy = self.options.user_data_copy
        if self._target == "cuda":
            import cupy

            with cupy.cuda.Device(self._operand.device_id), _on_stream(self._plan_stream):
                return lay_out_user_data(spec, target, allow_copy=copy, broadcast=broadcast)
        return lay_out_user_data(spec, target, allow_copy=copy, broadcast=broadcast)

    def _element_dtype(self, kind: str) -> str:
        return self._plan.element_dtype(kind)

    def _plan_gpu(self) -> Any:
        from . import _gpu

        device = self._operand.device_id
        attached = [self._attach(s) if s is not None else None for s in (self._prolog, self._epilog)]
        patient = self.options.patient_jit
        allocator = self.options.allocator
        # cuFFT has no half-precision callbacks: with callbacks, half runs in single precision (_half).
        promote = is_half(self.problem) and any(attached)
        problem = promoted(self.problem) if promote else self.problem
        build = lambda: _gpu.GpuPlan(problem, attached[0], attached[1], device,  # noqa: E731
                                     patient_jit=patient, allocator=allocator)
        wrap = (lambda plan: PromotedGpuExecutor(self.problem, plan)) if promote else (lambda plan: plan)
        if self._shared:
            # A plan's workspace comes from its allocator: plans of other allocators are others.
            key = gpu_plan_key(device, problem, patient, allocator, tuple(attached))
            created = _gpu.plan_cache.created
            plan = _gpu.plan_cache.acquire(key, build)
            self._release_plan = weakref.finalize(self, _gpu.plan_cache.release, plan)
            log = fft_logger(self.options)
            if _gpu.plan_cache.created == created and log.isEnabledFor(logging.DEBUG):
                log.debug("reused a cached cuFFT plan for %s n=%s on GPU %d", self.problem.fft_type,
                          self.problem.fft_lengths, device)
            return wrap(plan)
        plan = build()
        self._release_plan = weakref.finalize(self, plan.free)
        return wrap(plan)

    def _attach(self, spec: CallbackSpec) -> Any:
        from compiler import compile_callback

        from ._gpu import AttachedCallback

        element = self._element_dtype(spec.kind)
        laid_out = self._data.get(spec.kind)
        pointer = int(laid_out.data.ptr) if laid_out is not None else (spec.pointer or 0)
        if spec.ltoir is not None:
            # nvmath-python's form: user_info is the data pointer itself, fixed in the plan.
            _check_raw_ltoir(spec, element, _planner.device_arch(self._operand.device_id))
            return AttachedCallback(spec.kind, spec.ltoir, element,
                                    indirect=False, pointer=pointer, name=spec.name, toolkit=None)
        # Runtime parameters live in the slot (after the data pointer), rewritten in stream order.
        terms = self._terms.get(spec.kind)
        params = terms is not None and bool(terms.params)
        indirect = _planner.indirect_callback(self._shared, spec.data is not None, params)
        arch = _planner.device_arch(self._operand.device_id)
        started = time.perf_counter()
        if spec.source is not None:
            from compiler.cuda_source import compile_source

            compiled = compile_source(spec.source, spec.kind, element, name=spec.source_name,
                                      compute_capability=arch, indirect=indirect)
        else:
            compiled = compile_callback(spec.fn, spec.kind, element, spec.data.dtype if spec.data else None,
                                        compute_capability=arch, indirect=indirect,
                                        literals=self.options.float_literals, terms=terms)
        log_compiled(self.options, spec.name, compiled.source, len(compiled.ltoir), time.perf_counter() - started)
        return AttachedCallback(spec.kind, compiled.ltoir, element, indirect=indirect,
                                pointer=None if indirect else pointer, name=spec.name, toolkit=compiled.toolkit,
                                slot_bytes=terms.slot_bytes if params else 8)

    def _plan_cpu(self) -> Any:
        from compiler.cpu_backend import compile_cpu, python_callback

        from ._cpu import CpuExecutor

        debug = self._plan.executor == "cpu-debug"
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
            terms = self._terms.get(spec.kind)
            compiled.append(python_callback(*args, terms=terms) if debug else
                            compile_cpu(*args, literals=self.options.float_literals, terms=terms))
        half = is_half(self.problem)  # run in single precision, rounded to half (_half)
        executor = CpuExecutor(promoted(self.problem) if half else self.problem, compiled[0], compiled[1],
                               workers=cpu_threads(self._execution, self.options), debug=debug,
                               engine=self.options.cpu_engine)
        return PromotedCpuExecutor(self.problem, executor) if half else executor

    # -- execution -----------------------------------------------------------------------------
    @shared_doc
    def execute(self, direction: DirectionLike | None = None, stream: Any = None,
                release_workspace: bool = False) -> Any:
        """Run the FFT (planning first if ``plan`` was not called).

        Parameters:
            {direction} Default: the one given to ``plan``, else the transform's own.
            {stream}
            release_workspace: free the plan's GPU workspace after this run (it is drawn again,
                from the allocator, by the next run).

        Returns:
            The result in the operand's framework and device; with ``inplace=True`` the operand
            itself, overwritten.

        {raises}
        """
        if release_workspace is not False and not isinstance(release_workspace, (bool, np.bool_)):
            raise TypeError(f"release_workspace must be True or False, got {release_workspace!r}")
        self._check_live("execute")
        self._require_operand("execute")
        if self._executor is None:
            self.plan()
        plan = self._plan
        planned = plan.run_direction
        direction = planned_direction(self.problem, direction) if direction is not None else planned
        if plan.norm is not None and direction != planned:
            raise ValueError(f"this FFT was planned with norm={plan.norm!r} for the {planned} direction, whose "
                             "scale is fused in; plan again to run the other direction")
        problem = self.problem
        if self._target == "cuda":
            result = self._execute_gpu(direction, stream)
            if release_workspace:
                self._executor.release()
            return result
        if stream is not None:  # the GPU path checks it as it uses it
            self._check_stream(stream)
        else:
            stream = self._stream  # a GPU operand's result goes back on it
        # No output given: the executor returns a new one (the engine's own array where it makes one).
        inp = self._input(self._operand.array) if problem.copy_input else self._operand.array
        data = self._data
        out = self._executor.run(inp, inp if problem.inplace else None, direction, None, data.get("prolog"),
                                 data.get("epilog"), self._params.get("prolog", ()), self._params.get("epilog", ()))
        return self._result(out, stream)

    def _check_stream(self, stream: Any) -> Any:
        """``stream`` unchanged if this FFT can run on it: any CUDA stream on the GPU, or for a GPU
        operand run on the CPU (its copies are ordered on it); for a host operand on the CPU none
        (or CUDA's default stream, 0), as nothing there would be ordered on it."""
        stream = _check_stream(stream)
        if stream is None or self._target == "cuda" or self._space.crosses or self.options.debug_mode:
            return stream  # the debug mode runs GPU code on the host: its streams are fine there
        pointer = stream if isinstance(stream, int) else getattr(stream, "ptr", getattr(stream, "cuda_stream", None))
        if pointer != 0:
            raise ValueError(f"stream={stream!r} was given, but this FFT runs on the CPU, which has no CUDA streams "
                             "(its result is ready when the call returns). Drop stream= (or pass None), or run on "
                             "the GPU with execution='cuda'")
        return stream

    def _require_operand(self, what: str) -> None:
        if self._operand is None:
            raise RuntimeError(f"cannot {what}: the operand was released by reset_operand(None); "
                               "give this FFT an operand with reset_operand(array) first")

    def _input(self, array: Any) -> Any:
        """What cuFFT reads: ``array`` itself, or its copy in the problem's input buffer."""
        problem = self.problem
        if not problem.copy_input:
            return array
        if self._input_buffer is None:  # on the GPU, the device and stream are set by the caller
            layout = problem.input
            if isinstance(array, np.ndarray):
                xp = np
            else:
                import cupy as xp
            self._input_buffer = empty_strided(xp, layout.shape, layout.strides, problem.input_dtype, layout.span)
        fill(self._input_buffer, array)
        return self._input_buffer

    def _prepare_launch(self) -> None:
        """Take once what every GPU launch of this plan needs."""
        import cupy

        laid = [self._data.get("prolog"), self._data.get("epilog")]
        specs = [self._prolog, self._epilog]
        self._data_pointers = tuple(d.data.ptr if d is not None else 0 for d in laid)
        # What a stateless call brings of its own: data, runtime parameters.
        self._call_varies = any(d is not None for d in laid) or any(self._params.values())
        # Data used where it lies (no copy made) can be used where it lies on every call of that layout.
        self._data_in_place = tuple(d is None or d.data.ptr == s.data.array.data.ptr for d, s in zip(laid, specs))
        out = self.problem.output
        self._new_output = empty_factory(cupy, out.shape, out.strides, self.problem.output_dtype, out.span)

    def _execute_gpu(self, direction: str, stream: Any, array: Any = None, call: tuple | None = None) -> Any:
        """Launch on the plan's device and on ``stream`` (else the FFT's, else CuPy's current one).

        A stateless call passes its CuPy operand ``array`` and ``call`` = (prolog, epilog), whose
        data replace the planned data; it gets the bare output back.
        """
        import cupy

        if stream is None and call is None:
            stream = self._stream  # the FFT's own; a stateless call without one runs on CuPy's current stream
        # Copies, allocations and the FFT all go on the caller's stream, in order.
        if stream is None and cupy.cuda.runtime.getDevice() == self._operand_device:
            out = self._launch(cupy.cuda.get_current_stream(), direction, array, call)  # nothing to switch
        else:
            with cupy.cuda.Device(self._operand_device):
                if stream is None:
                    out = self._launch(cupy.cuda.get_current_stream(), direction, array, call)
                else:
                    with _on_stream(stream) as s:
                        out = self._launch(s, direction, array, call)
        return out if call is not None else self._result(out, stream)

    def _launch(self, s: Any, direction: str, array: Any, call: tuple | None) -> Any:
        """Run on CuPy stream ``s`` (current, on the plan's device); returns the new output."""
        ptr = s.ptr
        if ptr != self._last_stream:
            # The input copy of an execution on another stream may still be read there: take
            # a fresh one from CuPy's pool, which reuses memory in its stream's order.
            self._input_buffer, self._last_stream = None, ptr
        if call is None:
            array, copies = self._operand.array, ()
            data = self._data_pointers + (self._packed("prolog"), self._packed("epilog"))  # set_params may change them
        else:
            data, copies = _call_data(self, *call) if self._call_varies else ((0, 0, b"", b""), ())
        problem = self.problem
        inp = self._input(array) if problem.copy_input else array
        out = inp if problem.inplace else self._new_output()
        self._executor.run(inp.data.ptr, out.data.ptr, direction, ptr, *data)
        blocking = self.options.blocking
        if blocking is True or (blocking == "auto" and self._space.route == TO_GPU):
            s.synchronize()
        del copies  # laid-out data: the launch is queued, CuPy's pool reuses memory in stream order
        return out

    def _packed(self, kind: str) -> bytes:
        """The slot bytes of ``kind``'s runtime parameters (after its data pointer)."""
        values = self._params.get(kind)
        if not values:
            return b""
        return self._terms[kind].pack_params(values)

    def _result(self, out: Any, stream: Any) -> Any:
        """``out`` as the caller gets it: in the operand's memory space and framework, ordered on
        ``stream`` (the execution's) where it goes back to a GPU."""
        space = self._space
        if self.problem.inplace:  # nothing to write back where it ran in place
            space.write_back(out, self._user_tensor, stream, self.options.blocking is True)
            return self._user_operand  # the caller's array (or tensor) itself, overwritten
        if space.route == SAME:
            return self._operand.wrap_result(out, self._pairs)
        return space.outbound(out, self._user_tensor, stream, self.options.blocking is True, self._pairs)

    def reset_operand(self, operand: Any = None, *, stream: Any = None) -> None:
        """Point the plan at a new operand of the same shape, strides, dtype and device.

        ``reset_operand(None)`` releases the operand (and the FFT's input copy), so a cached FFT
        holds no memory of the caller's; give it one again before the next ``execute``. The new
        operand must be in the memory space (host or GPU, and device) of the one the FFT was
        created with, as in nvmath-python; where that is not where the FFT runs, it is copied
        there now, in the order of ``stream`` (default: the FFT's, else CuPy's current stream).
        """
        self._check_live("reset_operand")
        if operand is None:
            self._operand = self._user_operand = self._user_tensor = self._input_buffer = None
            return
        tensor = user = as_tensor(operand)
        if self.problem.inplace:
            check_writeable(tensor)
        self._space.check_reset(tensor)
        if self._space.crosses:
            tensor = self._space.inbound(tensor, self._check_stream(stream) if stream is not None else self._stream)
        expected = self._planned_operand
        same = (tensor.shape, tensor.strides, tensor.dtype, tensor.device_id) == expected
        if not same:
            raise ValueError(
                f"reset_operand needs an operand like the planned one (shape {expected[0]}, strides "
                f"{expected[1]}, {expected[2]}, device {expected[3]}); got shape "
                f"{tensor.shape}, strides {tensor.strides}, {tensor.dtype}, device {tensor.device_id}. Create a new FFT"
            )
        self._operand, self._user_operand, self._user_tensor = complex_operand(tensor, self._transform), operand, user

    def reset_operand_unchecked(self, operand: Any, *, stream: Any = None) -> None:
        """``reset_operand`` for hot loops in nvmath-python; here the same call, checks included
        (they compare four values), as a wrong layout would corrupt memory silently."""
        self.reset_operand(operand, stream=stream)

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


# The stateless functions' engine reuse (``_stateless``): an engine planned by an earlier call is
# run again with this call's arrays, and lets go of them afterwards.
def rerun(engine: FFT, operand: Any, prolog: Any, epilog: Any, stream: Any) -> Any:
    """Run a planned stateless engine on another operand and callback data of the layout it was
    planned for; the caller has checked that the callbacks' fingerprints are the planned ones.
    The engine keeps no reference to the call's arrays."""
    if engine._target != "cuda":
        return _rerun_cpu(engine, operand, prolog, epilog, stream)
    try:
        return engine._execute_gpu(engine._plan.run_direction, stream, operand,
                                   (prolog, epilog))
    finally:
        engine._input_buffer = None


def _rerun_cpu(engine: FFT, operand: Any, prolog: Any, epilog: Any, stream: Any) -> Any:
    direct = engine._direct_data
    if direct is not None and stream is None:  # each call's data read where it lies: no lay-out, no copy
        return engine._executor.run(operand, None, engine._plan.run_direction, None,
                                    prolog["data"] if direct[0] else None, epilog["data"] if direct[1] else None)
    engine._operand = as_tensor(operand)
    engine._user_operand = operand
    try:
        for spec in (engine._plan.prolog, engine._plan.epilog):
            if spec is None:
                continue
            new = prolog if spec.kind == "prolog" else epilog
            if spec.has_data:  # this call's data, laid out as the planned data was
                call = spec.with_data(as_tensor(new["data"], what=f"{spec.kind} data"))
                engine._data[spec.kind] = engine._lay_out(call, engine._broadcast[spec.kind])[0]
            terms = engine._terms.get(spec.kind)
            if terms is not None and terms.params and spec.params is not None:  # this call's values
                engine._params[spec.kind] = terms.param_values(parameter_values(spec, new["params"]))
        engine._direct_data = _direct_data(engine, prolog, epilog)
        return engine.execute(stream=stream)
    finally:
        release_arrays(engine)


def _direct_data(engine: FFT, prolog: Any, epilog: Any) -> tuple[bool, bool] | None:
    """Per side, whether a stateless CPU engine's later calls may pass their data to the executor
    as given (True: C-contiguous, its elements in order), or pass none (False); None where each
    call must lay out its data or take ``execute``'s way (another framework or memory space, in
    place, an input the FFT copies, half precision, runtime parameters).

    The stateless hot path reruns an engine only with arrays of this call's layouts (its key): so
    where this call's data was laid out as the given array itself, from its first element, every
    later call's is too."""
    if (engine._operand.framework != "numpy" or engine._space.crosses or engine.problem.inplace
            or engine.problem.copy_input or is_half(engine.problem)):
        return None
    direct = []
    for spec, given in ((engine._prolog, prolog), (engine._epilog, epilog)):
        terms = None if spec is None else engine._terms.get(spec.kind)
        if terms is not None and terms.params:
            return None
        laid = None if spec is None else engine._data.get(spec.kind)
        if laid is None:
            direct.append(False)
            continue
        array = given["data"]
        if not (laid.flags.c_contiguous and array.flags.c_contiguous and laid.dtype == array.dtype
                and laid.ctypes.data == array.ctypes.data and laid.size <= array.size):
            return None  # laid out in a copy, or from another element: each call lays it out
        direct.append(True)
    return direct[0], direct[1]


def _call_data(engine: FFT, prolog: Any, epilog: Any) -> tuple[tuple, list]:
    """This call's slot values, ``(prolog data pointer, epilog data pointer, prolog parameter bytes,
    epilog parameter bytes)``, and the copies made to lay its data out (held by the caller until
    launched; the device and stream are current)."""
    out, copies = [0, 0, b"", b""], []
    plan = engine._plan
    for i, (spec, given) in enumerate(((plan.prolog, prolog), (plan.epilog, epilog))):
        if spec is None:
            continue
        if spec.has_data:
            array = given["data"]
            if engine._data_in_place[i]:
                out[i] = array.data.ptr
            else:
                target = engine.problem.input if spec.kind == "prolog" else engine.problem.output
                tensor = as_tensor(array, what=f"{spec.kind} data")
                laid = lay_out_user_data(spec.with_data(tensor), target,
                                         allow_copy=engine.options.user_data_copy,
                                         broadcast=engine._broadcast[spec.kind])[0]
                copies.append(laid)
                out[i] = laid.data.ptr
        terms = engine._terms.get(spec.kind)
        if terms is not None and terms.params:
            # Values of a plan without given ones are its function's defaults, fixed at planning.
            values = engine._params[spec.kind] if spec.params is None else terms.param_values(
                parameter_values(spec, given["params"]))
            out[2 + i] = terms.pack_params(values)
    return (out[0], out[1], out[2], out[3]), copies


def reusable(engine: FFT) -> bool:
    """Whether a stateless engine may run again with later calls' arrays of the same layout: not
    when the cuFFT plan holds the address of a copy made for this call (LTO-IR given as bytes gets
    its data's address itself, and a copy does not outlive the call), nor when a GPU plan the engine
    owns holds its data's address (only shared plans read it from a slot on each call)."""
    plan = engine._plan
    direct = engine._target == "cuda" and not engine._shared
    return all(spec is None or not spec.has_data or ((spec.ltoir is None or in_place) and not direct)
               for spec, in_place in zip((plan.prolog, plan.epilog), engine._data_in_place))


def release_arrays(engine: FFT) -> None:
    """Drop an engine's references to the caller's arrays and its input copy, so a cached engine
    holds no memory between calls (the GPU may still be reading them: CuPy's pool reuses memory
    in stream order)."""
    engine._operand = engine._input_buffer = engine._user_operand = engine._user_tensor = None
    engine._data = {}
    engine._plan = engine._plan.without_data()


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
