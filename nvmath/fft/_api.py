"""The FFT engine: the stateful ``FFT``, and ``ReusableFFT``, the engine the stateless functions
(``_reuse``) and chains (``_chain``) run again with later calls' arrays.

``FFT`` is a client of the planner: it asks ``_planner`` for its buffers and its ``Plan``,
``_binding`` for its callbacks' data laid out and the ``CallData`` every run passes, and
``_build`` for the executor (callbacks compiled through the cache, the cuFFT plan or the CPU
executor). What remains here is the run: the input copy, the output, one ``CallArgs`` per run
handed to the executor, and the result where the plan says it goes. Engines of stateless calls
borrow plans from a per-device cache instead of building their own.
"""

from __future__ import annotations

import logging
import numbers
import time
from typing import Any, Callable, Sequence, Union

import numpy as np

from ._binding import Binding, bind
from ._build import build_executor
from ._callbacks import DeviceCallable, call_arguments
from ._docs import shared_doc
from ._executor import CallArgs, CallData
from ._gpu_presence import describe_execution
from ._log import fft_logger
from ._memory_space import TO_GPU, ResultPlace, crossing
from ._options import DirectionLike, Execution, FFTOptions, Norm, cpu_threads, execution_target
from ._planner import Plan, execution_device, function_transform, make_plan, planned_direction, problem_for, \
    request_key, transform_for
from ._half import complex_operand, is_half, operand_dtype, result_pairs
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
        # reset_operand's quick check: a NumPy operand used where it lies, as its own array (no
        # float16 pairs), is replaced by an array of the same shape, byte strides and dtype
        # (a native one: the planned dtype was) after a comparison instead of a wrap (5 -> 1 us).
        self._host_layout = ((operand.shape, operand.strides, operand.dtype)
                             if type(operand) is np.ndarray and not self._space.crosses and not tensor.pairs else None)
        self._shared = _shared_plans
        o = self.options
        self.problem = problem_for(self._transform, tensor.shape, tensor.strides, tensor.dtype, self._axes, o.inplace,
                                   o.last_axis_parity, o.result_layout)
        if self.problem.inplace:
            check_writeable(user_tensor)
        self._pairs = result_pairs(self.problem)
        self._plan: Plan | None = None  # decided by plan(): callbacks, direction, norm, executor, result place
        self._binding: Binding | None = None  # the callbacks' data laid out, their terms and parameter values
        self._call_data: CallData | None = None  # what every run passes the executor (plan, set_params)
        self._executor: Any = None
        self._release_plan: Any = None  # gives the GPU plan back (weakref.finalize: also when collected)
        self._freed = False
        self._last_stream: Any = None
        self._input_buffer = None
        self._new_output: Callable[[], Any] | None = None
        self._cupy: Any = None  # CuPy, once planned on the GPU

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
        self._plan = self._binding = None
        stream = self._check_stream(stream) if stream is not None else self._stream
        device = self._operand.device_id
        plan = make_plan(self.problem, self._target, self.options, prolog, epilog, direction=direction, norm=norm,
                         shared=self._shared, device_id=self._space.gpu, stream=stream, route=self._space.route)
        # Data first: LTO-IR given as bytes has its user_info pointer fixed in the plan.
        binding = bind(plan, self.options.user_data_copy, device, stream)
        started = time.perf_counter()
        threads = cpu_threads(self._execution, self.options) if self._target == "cpu" else None
        self._executor, self._release_plan = build_executor(plan, binding, self.options, self, device_id=device,
                                                            threads=threads)
        self._plan, self._binding, self._call_data = plan, binding, binding.call_data()
        if self._target == "cuda":
            import cupy as xp

            self._cupy = xp  # for each run: an import statement costs more than the attribute
        else:
            xp = np
        out = self.problem.output
        self._new_output = empty_factory(xp, out.shape, out.strides, self.problem.output_dtype, out.span)
        log = fft_logger(self.options)
        if log.isEnabledFor(logging.INFO):
            p = self.problem
            names = ", ".join(s.name for s in (plan.prolog, plan.epilog) if s is not None) or "no callbacks"
            log.info("planned %s %s n=%s batch=%d on %s with %s in %.1f ms", p.fft_type, p.input_dtype, p.fft_lengths,
                     p.batch, self._target if self._target == "cpu" else f"GPU {device}", names,
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
        binding = self._binding or Binding(None, None, self._target == "cuda", True, False)  # not planned: none
        self._binding = binding.with_params(prolog, epilog)
        self._call_data = self._binding.call_data()

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
        if direction is not None and direction is not planned:  # the planned name itself: nothing to check
            direction = planned_direction(self.problem, direction)
        else:
            direction = planned
        if plan.norm is not None and direction != planned:
            raise ValueError(f"this FFT was planned with norm={plan.norm!r} for the {planned} direction, whose "
                             "scale is fused in; plan again to run the other direction")
        if self._target == "cuda":
            if stream is None:
                stream = self._stream  # the FFT's own, else CuPy's current one
            result = self._result(self._execute_gpu(self._operand.array, direction, stream), stream)
            if release_workspace:
                self._executor.release()
            return result
        return self._execute_cpu(direction, stream, self._call_data)

    def _execute_cpu(self, direction: str, stream: Any, data: CallData) -> Any:
        """Run on the CPU with the callbacks' ``data``; the result as the caller gets it."""
        if stream is not None:  # the GPU path checks it as it uses it
            self._check_stream(stream)
        else:
            stream = self._stream  # a GPU operand's result goes back on it
        # No output given: the executor returns a new one (the engine's own array where it makes one).
        array, problem = self._operand.array, self.problem
        inp = self._input(array) if problem.copy_input else array
        out = self._executor.run(CallArgs(inp, inp if problem.inplace else None, direction, None, data))
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

    def _execute_gpu(self, array: Any, direction: str, stream: Any, given: tuple | None = None) -> Any:
        """Launch on the plan's device and on ``stream`` (None: CuPy's current one); returns the
        new output. ``given``: a stateless call's (prolog, epilog) values, run instead of the
        planned ones."""
        cupy = self._cupy
        # Copies, allocations and the FFT all go on the caller's stream, in order.
        if stream is None and cupy.cuda.runtime.getDevice() == self._operand_device:
            return self._launch(cupy.cuda.get_current_stream(), array, direction, given)  # nothing to switch
        with cupy.cuda.Device(self._operand_device):
            if stream is None:
                return self._launch(cupy.cuda.get_current_stream(), array, direction, given)
            with _on_stream(stream) as s:
                return self._launch(s, array, direction, given)

    def _launch(self, s: Any, array: Any, direction: str, given: tuple | None) -> Any:
        """Run on CuPy stream ``s`` (current, on the plan's device); returns the new output.

        The run's ``CallData`` is the planned one, or that of the arrays ``given`` by a stateless
        call (``Binding.call_data_of``, which copies data only where the planned data was copied:
        the copies are held until the run is queued, then CuPy's pool reuses them in stream order)."""
        ptr = s.ptr
        if ptr != self._last_stream:
            # The input copy of an execution on another stream may still be read there: take
            # a fresh one from CuPy's pool, which reuses memory in its stream's order.
            self._input_buffer, self._last_stream = None, ptr
        if given is None:
            data, held = self._call_data, None
        else:
            data, held = self._binding.call_data_of(*given)
        problem = self.problem
        inp = self._input(array) if problem.copy_input else array
        out = inp if problem.inplace else self._new_output()
        self._executor.run(CallArgs(inp.data.ptr, out.data.ptr, direction, ptr, data))
        blocking = self.options.blocking
        if blocking is True or (blocking == "auto" and self._space.route == TO_GPU):
            s.synchronize()
        del held
        return out

    def _result(self, out: Any, stream: Any) -> Any:
        """``out`` as the caller gets it, where the plan placed it (``ResultPlace``): in the
        operand's memory space and framework, ordered on ``stream`` (the execution's) where it
        goes back to a GPU."""
        place = self._plan.result
        if place is _WRAP:
            return self._operand.wrap_result(out, self._pairs)
        if place is _MOVE:
            return self._space.outbound(out, self._user_tensor, stream, self.options.blocking is True, self._pairs)
        if place is _WRITE_BACK:
            self._space.write_back(out, self._user_tensor, stream, self.options.blocking is True)
        return self._user_operand  # in place: the caller's array (or tensor) itself, overwritten

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
        if type(operand) is np.ndarray and (operand.shape, operand.strides, operand.dtype) == self._host_layout:
            tensor = Tensor(operand, "numpy", None)
            if self.problem.inplace:
                check_writeable(tensor)
            self._operand = self._user_tensor = tensor
            self._user_operand = operand
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
        self._binding = self._call_data = None
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




_WRAP, _MOVE, _WRITE_BACK = ResultPlace.WRAP, ResultPlace.MOVE, ResultPlace.WRITE_BACK


class ReusableFFT(FFT):
    """An engine the stateless functions (``_reuse``) and chains (``_chain``) keep between calls:
    planned by one call, it runs again with a later call's operand and callback data of the layout
    it was planned for (the caller checks the callbacks' fingerprints), and holds none of a call's
    arrays once it is kept (``release_arrays``). ``_shared_plans=True`` borrows its cuFFT plan
    from the per-device cache."""

    def __init__(self, operand: Any, **kwargs: Any):
        super().__init__(operand, **kwargs)
        # Per side, whether a CPU rerun hands the call's data to the executor as given; decided at the first rerun.
        self._direct: tuple[bool, bool] | None = None
        self._direct_decided = False

    @property
    def direct_data(self) -> tuple[bool, bool] | None:
        """Per side (prolog, epilog), whether a CPU rerun hands the call's data to the executor as
        given (False: that side has none); None where each rerun lays its data out and takes
        ``execute``'s way, or before the first rerun."""
        return self._direct

    def rerun(self, operand: Any, prolog: Any, epilog: Any, stream: Any) -> Any:
        """Run again on ``operand`` with the call's ``prolog``/``epilog`` arguments (as given, of
        the planned code and data layouts); the engine keeps no reference to the call's arrays."""
        if self._target != "cuda":
            return self._rerun_cpu(operand, *call_arguments(prolog, epilog), stream)  # read as dicts there
        try:
            return self._execute_gpu(operand, self._plan.run_direction, stream,
                                     (prolog, epilog) if self._binding.varies else None)
        finally:
            self._input_buffer = None

    def _rerun_cpu(self, operand: Any, prolog: Any, epilog: Any, stream: Any) -> Any:
        """``rerun`` on the CPU, with ``prolog``/``epilog`` as ``_callbacks.call_arguments`` gives them."""
        direct = self._direct
        if direct is not None and stream is None:  # each call's data read where it lies: no lay-out, no copy
            data = CallData(prolog["data"] if direct[0] else None, (), epilog["data"] if direct[1] else None, ())
            return self._executor.run(CallArgs(operand, None, self._plan.run_direction, None, data))
        data = self._binding.call_data_of(prolog, epilog)[0]
        self._operand = as_tensor(operand)
        self._user_operand = operand
        try:
            if not self._direct_decided:
                self._direct, self._direct_decided = self._decide_direct(data, prolog, epilog), True
            self._check_live("execute")
            return self._execute_cpu(self._plan.run_direction, stream, data)
        finally:
            # The call's data went in ``data`` only (the binding holds none since release_arrays).
            self._operand = self._input_buffer = self._user_operand = None

    def _decide_direct(self, data: CallData, prolog: Any, epilog: Any) -> tuple[bool, bool] | None:
        """``direct_data`` from this call's arrays as laid out just now (``data``): None where later
        calls must lay out their data or take ``execute``'s way (another framework or memory space,
        in place, an input the FFT copies, half precision, runtime parameters).

        Reruns come only with arrays of this call's layouts (the reuse key): where this call's data
        was laid out as the given array itself, from its first element, every later call's is too."""
        problem = self.problem
        if (self._operand.framework != "numpy" or self._space.crosses or problem.inplace or problem.copy_input
                or is_half(problem)):
            return None
        direct = []
        for side, laid, given in ((self._binding.prolog, data.prolog_data, prolog),
                                  (self._binding.epilog, data.epilog_data, epilog)):
            if side is not None and side.has_params:
                return None  # each call's parameter values are read from its arguments
            if laid is None:
                direct.append(False)
                continue
            array = given["data"]
            if not (laid.flags.c_contiguous and array.flags.c_contiguous and laid.dtype == array.dtype
                    and laid.ctypes.data == array.ctypes.data and laid.size <= array.size):
                return None  # laid out in a copy, or from another element: each call lays it out
            direct.append(True)
        return direct[0], direct[1]

    def reusable(self) -> bool:
        """Whether this engine may run again with later calls' arrays of the same layout: not when
        the cuFFT plan holds the address of a copy made for this call (LTO-IR given as bytes gets
        its data's address itself, and a copy does not outlive the call), nor when a GPU plan the
        engine owns holds its data's address (only shared plans read it from a slot on each call)."""
        direct = self._target == "cuda" and not self._shared
        return all(side is None or not side.spec.has_data or ((side.spec.ltoir is None or side.in_place) and not direct)
                   for side in (self._binding.prolog, self._binding.epilog))

    def release_arrays(self) -> None:
        """Drop the references to the caller's arrays and the input copy, so a kept engine holds no
        memory between calls (the GPU may still be reading them: CuPy's pool reuses memory in
        stream order)."""
        self._operand = self._input_buffer = self._user_operand = self._user_tensor = None
        self._binding = self._binding.without_data()
        self._call_data = self._binding.call_data()
        self._plan = self._plan.without_data()
