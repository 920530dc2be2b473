"""Filtering in the frequency domain as one call: ``epilog(ifft(pointwise(fft(prolog(x)))))``.

``filtered`` (stateless) and ``FilteredFFT`` (planned once, run many times) ask the planner
(``_planner.plan_chain``) how the chain runs and run that route. "two-plans" is two planned
FFTs: the forward with the prolog as its prolog and the pointwise step as its epilog, the
inverse with the epilog as its epilog; both are ordinary engines (``_api.ReusableFFT``, or the
stateless functions' kept engines), so every callback form, the CPU executor and the debug mode
work as they do for ``fft``/``ifft``. "one-kernel" is one numba-cuda kernel around cuFFTDx
device FFTs (``_chain_kernel.OneKernel``), taken where the planner finds that it fits.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from ._api import Axes, Callback, ReusableFFT, axes_tuple
from ._callbacks import callback_fingerprints, fingerprints_hold, parse_callback
from ._chain_kernel import STEPS, OneKernel
from ._docs import shared_doc
from ._gpu_presence import describe_execution
from ._log import fft_logger
from ._memory_space import TO_HOST, crossing
from ._options import Execution, FFTOptions, Norm, execution_target
from ._planner import ChainPlan, execution_device, plan_chain, problem_for
from ._reuse import ThreadEngines, reuse_key
from ._stateless import fft, ifft, irfft, rfft
from ._streams import check_stream
from ._tensor import Tensor, as_tensor, empty_strided

_STATELESS = {"fft": fft, "ifft": ifft, "rfft": rfft, "irfft": irfft}
_SPECTRUM_TYPES = {"fft": "C2C", "rfft": "R2C", "ifft": "C2C", "irfft": "C2R"}


def _check_options(options: FFTOptions, dtype: str) -> None:
    """Options a chain decides itself: its transforms come from the operand, its result is new."""
    own = "C2C" if dtype.startswith("complex") else "R2C"
    if options.fft_type not in (None, own):
        raise ValueError(f"a chain on a {dtype} operand runs {own} then its inverse; options.fft_type="
                         f"{options.fft_type!r} does not fit it. Drop fft_type (pass a complex operand for C2C)")
    if options.inplace:
        raise ValueError("a chain returns a new array; options.inplace=True is not supported (drop it)")


def _forward_problem(tensor: Tensor, axes: tuple | None, options: FFTOptions) -> Any:
    transform = "fft" if tensor.dtype.startswith("complex") else "rfft"
    return problem_for(transform, tensor.shape, tensor.strides, tensor.dtype, axes, False, "even",
                       options.result_layout)


def _log_route(options: FFTOptions, chain: ChainPlan, level: int) -> None:
    log = fft_logger(options)
    if log.isEnabledFor(level):
        p = chain.forward
        log.log(level, "chain %s n=%s batch=%d %s: route %s on %s (%s)", p.input_dtype, p.fft_lengths, p.batch,
                "->".join(chain.transforms), chain.route, chain.executor, chain.reason)


# The stateless chains' hot path: (planned chain, its callbacks' fingerprints) by request key.
stateless_chains = ThreadEngines(16, lambda kept: kept[0].free())


def _reuse_key(operand: Any, axes: Any, options: Any, execution: Any, norm: Any, prolog: Any, pointwise: Any,
               epilog: Any, route: str = "auto") -> Any:
    """A key under which a planned chain runs this call again with its arrays, or None where the call
    takes the full path (``fft``'s request key, with the norm, the route and three steps)."""
    return reuse_key((norm, route), operand, axes, options, execution, prolog, epilog, (pointwise, "epilog"))


def _fingerprints(prolog: Any, pointwise: Any, epilog: Any) -> tuple:
    return callback_fingerprints(prolog, pointwise), callback_fingerprints(None, epilog)


def _fingerprints_hold(prints: tuple, prolog: Any, pointwise: Any, epilog: Any) -> bool:
    return fingerprints_hold(prints[0], prolog, pointwise) and fingerprints_hold(prints[1], None, epilog)


@shared_doc
def filtered(operand: Any, axes: Axes = None, options: FFTOptions | dict | None = None,
             execution: Execution | None = None, prolog: Callback = None, epilog: Callback = None,
             stream: Any = None, *, pointwise: Callback = None, norm: Norm | None = "backward",
             route: str = "auto") -> Any:
    """``x`` filtered in the frequency domain: ``epilog(ifft(pointwise(fft(prolog(x)))))``, fused.

    The convolution, correlation, band-pass or propagator written in NumPy as
    ``np.fft.ifft(np.fft.fft(w * x) * H) * s`` is ``filtered(x, prolog=..., pointwise=...,
    epilog=...)``, each step a callback fused into a transform, never a pass of its own. A
    complex operand runs C2C both ways; a real one runs R2C, the pointwise step on the half
    spectrum (the last of ``axes`` ``n//2 + 1`` long), then C2R back to a real result of the
    operand's shape. The name says what comes back (the signal, filtered), as ``fft`` does;
    ``FilteredFFT`` plans it once for many runs.

    Parameters:
        {operand}
        {axes}
        {options} ``fft_type`` and ``last_axis_parity`` follow from the operand.
        {execution}
        prolog: runs on each element of ``operand`` before the forward FFT; the forms of ``fft``'s
            ``prolog`` (indices are the operand's).
        epilog: runs on each element of the result after the inverse FFT; the forms of ``fft``'s
            ``epilog`` (indices are the result's).
        {stream}
        pointwise: runs on each element of the spectrum (the forward FFT's result, half of it for
            a real operand) before the inverse FFT; the forms of ``fft``'s ``epilog``: data that
            broadcasts to the spectrum (an ``(n,)`` filter), indices of the spectrum, runtime
            parameters, cuFFT's form, CUDA C++ or LTO-IR.
        norm: ``'backward'`` (the default: the inverse divides by n, so with no callbacks the
            result is ``operand``), ``'ortho'`` (1/sqrt(n) on each transform) or ``'forward'``
            (the forward divides by n, so ``pointwise`` sees the spectrum divided by n); all three
            give the same result for a linear ``pointwise``. None: both unscaled (n times the
            operand). n is the points of one transform (the real side's for a real operand).
        route: how the chain runs. ``'two-plans'``: two FFTs with the steps fused as callbacks,
            which runs every chain. ``'one-kernel'``: one kernel on the GPU (a device-side FFT:
            the data read and written once); it raises a ValueError saying why where the length,
            precision, layout or steps do not fit. ``'auto'`` (the default) runs one kernel where it
            fits and two plans elsewhere (``$FFTFUSE_ONE_KERNEL=0``: two plans always; a kernel's
            first compile on a machine takes seconds). ``FilteredFFT.describe()`` tells the route
            taken and why.

    Returns:
        The filtered signal, of the operand's shape, framework and device; complex for a complex
        operand, real for a real one.

    {raises}

    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((4, 64)).astype(np.complex64)
    >>> h = np.fft.fft(np.hanning(64)).astype(np.complex64)
    >>> y = filtered(x, axes=[-1], pointwise={{"fn": lambda v, f: v * f, "data": h}})
    >>> bool(np.allclose(y, np.fft.ifft(np.fft.fft(x) * h), atol=1e-4))
    True
    """
    if type(operand).__module__.startswith("dask."):
        return _lazy(operand, axes, options, execution, prolog, pointwise, epilog, stream, norm, route)
    key = _reuse_key(operand, axes, options, execution, norm, prolog, pointwise, epilog, route)
    if key is not None:
        hit = stateless_chains.get(key)
        if hit is not None and _fingerprints_hold(hit[1], prolog, pointwise, epilog):
            return hit[0]._rerun(operand, prolog, pointwise, epilog, stream)
        prints = _fingerprints(prolog, pointwise, epilog)  # taken before planning: what the plan compiles
    chain = FilteredFFT(operand, axes=axes, options=options, execution=execution, stream=stream, _shared_plans=True)
    kept = False
    try:
        chain.plan(prolog=prolog, pointwise=pointwise, epilog=epilog, stream=stream, norm=norm, route=route)
        result = chain.execute(stream=stream)
        if key is not None and chain._reusable():
            chain._release_arrays()
            stateless_chains.put(key, (chain, prints))  # replaces (frees) one whose callbacks' globals changed
            kept = True
        return result
    finally:
        if not kept:
            chain.free()


def _lazy(operand: Any, axes: Any, options: Any, execution: Any, prolog: Any, pointwise: Any, epilog: Any,
          stream: Any, norm: Any, route: str) -> Any:
    """A Dask operand: the two-plans route as two lazy transforms, chunk by chunk (each chunk
    holds whole transforms), the scales placed by the planner as for any other operand."""
    if route == "one-kernel":
        raise ValueError("route='one-kernel' cannot run a Dask operand: its chunks run through the two transforms "
                         "lazily. Pass route='auto' or 'two-plans'")
    first, second = ("fft", "ifft") if np.dtype(operand.dtype).kind == "c" else ("rfft", "irfft")
    meta = np.empty((1,) * len(operand.shape), operand.dtype)
    strides = tuple(int(np.prod(operand.shape[k + 1:])) for k in range(len(operand.shape)))
    opts = FFTOptions.of(options)
    _check_options(opts, str(np.dtype(operand.dtype)))
    forward = problem_for(first, tuple(operand.shape), strides, str(meta.dtype), axes_tuple(axes), False, "even",
                          opts.result_layout)
    chain = plan_chain(forward, execution_target(execution, as_tensor(meta), opts), opts, norm, prolog, pointwise,
                       epilog, route="two-plans" if route == "auto" else route)
    (p, e), (ip, ie) = chain.placed(prolog, pointwise, epilog)
    inverse_options = _side_options(opts, chain, 1) if chain.parity == "odd" or options is not None else None
    spectrum = _STATELESS[first](operand, axes, options, execution, p, e, stream)
    return _STATELESS[second](spectrum, axes, inverse_options, execution, ip, ie, stream)


def _step_data(prolog: Any, pointwise: Any, epilog: Any) -> tuple[Any, Any, Any]:
    """Each step's data array (None where it has none), as the one kernel reads it."""
    out = []
    for step, value in zip(STEPS, (prolog, pointwise, epilog)):
        arg = parse_callback(value, "prolog" if step == "prolog" else "epilog")
        out.append(None if arg is None or arg.data is None else as_tensor(arg.data, what=f"{step} data").array)
    return out[0], out[1], out[2]


def _side_options(options: FFTOptions, chain: ChainPlan, side: int) -> FFTOptions:
    """The options of the forward (0) or inverse (1) transform of ``chain``."""
    fields = {"fft_type": _SPECTRUM_TYPES[chain.transforms[side]]}
    if side == 1:
        fields["last_axis_parity"] = chain.parity
    return dataclasses.replace(options, **fields)


class FilteredFFT:
    """``filtered`` planned once and run many times: ``epilog(ifft(pointwise(fft(prolog(x)))))``.

    Parameters:
        operand: as for ``FFT``; a complex one runs C2C both ways, a real one R2C then C2R.
        axes: as for ``FFT``.
        options: as for ``FFT``; ``fft_type`` and ``last_axis_parity`` follow from the operand.
        execution: as for ``FFT``.
        stream: as for ``FFT``.

    ``plan`` asks the planner for the route (``describe()`` tells it), compiles the callbacks and
    builds both transforms (or the one kernel); ``execute`` runs the chain with no compile and no
    new plan, and ``set_params`` changes runtime parameters between runs.

    >>> import numpy as np
    >>> x = np.random.default_rng(1).standard_normal((8, 32))
    >>> def lowpass(v, b, k, *, cut): return v if k < cut else 0j
    >>> with FilteredFFT(x, axes=[-1]) as f:
    ...     f.plan(pointwise={"fn": lowpass, "params": {"cut": 4}})
    ...     a = f.execute()
    ...     f.set_params(pointwise={"cut": 17})     # keeps every bin: the signal itself
    ...     b = f.execute()
    >>> spectrum = np.fft.rfft(x); spectrum[:, 4:] = 0
    >>> bool(np.allclose(a, np.fft.irfft(spectrum, 32))), bool(np.allclose(b, x))
    (True, True)
    """

    def __init__(self, operand: Any, *, axes: Axes = None, options: FFTOptions | dict | None = None,
                 execution: Execution | None = None, stream: Any = None, _shared_plans: bool = False):
        self.options = FFTOptions.of(options)
        # ``filtered`` reuses a chain with later calls' data: its plans read data pointers from slots.
        self._shared = _shared_plans
        tensor = as_tensor(operand)
        _check_options(self.options, tensor.dtype)
        self._target = execution_target(execution, tensor, self.options)
        # An operand in the other memory space crosses once: the spectrum stays where the chain runs.
        self._space = crossing(tensor, self._target, execution_device(execution, self.options),
                               describe_execution(execution))
        self._user_tensor = tensor
        self._axes = axes_tuple(axes)
        self._execution, self._stream = execution, check_stream(stream)
        self._forward_problem = _forward_problem(tensor, self._axes, self.options)
        self._transforms = ("fft", "ifft") if self._forward_problem.fft_type == "C2C" else ("rfft", "irfft")
        x = self._space.inbound(tensor, stream).array if self._space.crosses else operand
        self._operand = as_tensor(x).array  # where the chain runs (NumPy or CuPy): what the one kernel reads
        self._device = as_tensor(x).device_id if self._target == "cuda" else None
        options = dataclasses.replace(self.options, fft_type=_SPECTRUM_TYPES[self._transforms[0]])
        self._forward = ReusableFFT(x, axes=self._axes, options=options, execution=execution,
                                    stream=self._inner(stream), _shared_plans=_shared_plans)
        self._forward_problem = self._forward.problem  # that of the operand where the FFT runs
        self._inverse: ReusableFFT | None = None
        self._chain: ChainPlan | None = None
        self._kernel: OneKernel | None = None  # the one-kernel route's kernel
        self._kernel_data: tuple[Any, Any, Any] = (None, None, None)  # and each step's data

    @property
    def chain_plan(self) -> ChainPlan | None:
        """The planner's ``ChainPlan`` (None before ``plan``)."""
        return self._chain

    @property
    def route(self) -> str | None:
        """The route the chain runs ("one-kernel" or "two-plans"; None before ``plan``)."""
        return self._chain.route if self._chain is not None else None

    def plan(self, *, prolog: Callback = None, pointwise: Callback = None, epilog: Callback = None,
             stream: Any = None, norm: Norm | None = "backward", route: str = "auto") -> None:
        """Decide the route, compile the callbacks (through the cache) and build the transforms
        (or the one kernel), replacing an earlier plan. The arguments are those of ``filtered``."""
        chain = plan_chain(self._forward_problem, self._target, self.options, norm, prolog, pointwise, epilog,
                           route=route, device_id=self._device)
        self._chain = None
        self._kernel, self._kernel_data = None, (None, None, None)
        if chain.route == "one-kernel":
            if self._inverse is not None:
                self._inverse.free()
                self._inverse = None
            self._kernel = OneKernel(chain.kernel, self._device)
            self._kernel_data = _step_data(prolog, pointwise, epilog)
            self._chain = chain
            _log_route(self.options, chain, logging.INFO)
            return
        (forward_prolog, forward_epilog), (inverse_prolog, inverse_epilog) = chain.placed(prolog, pointwise, epilog)
        self._space.settle(stream if stream is not None else self._stream)  # GPU data is read on the host
        self._forward.plan(prolog=forward_prolog, epilog=forward_epilog, stream=self._inner(stream))
        if self._inverse is not None:
            self._inverse.free()
        self._inverse = ReusableFFT(self._spectrum_like(), axes=self._axes,
                                    options=_side_options(self.options, chain, 1), execution=self._execution,
                                    stream=self._inner(self._stream), _shared_plans=self._shared)
        self._inverse.plan(prolog=inverse_prolog, epilog=inverse_epilog, stream=self._inner(stream),
                           direction="inverse")
        self._inverse.reset_operand(None)  # each run hands it that run's spectrum
        self._chain = chain
        _log_route(self.options, chain, logging.INFO)

    def _spectrum_like(self) -> Any:
        """An array laid out as the forward transform's result, to plan the inverse on."""
        out = self._forward.problem.output
        if self._target == "cuda":
            import cupy as xp
        else:
            xp = np
        return empty_strided(xp, out.shape, out.strides, self._forward.problem.output_dtype, out.span)

    def describe(self) -> str:
        """The plan in words: the route, why it was taken, and what runs in each transform."""
        if self._chain is None:
            raise RuntimeError("describe() before plan(): call plan() first")
        return self._chain.describe()

    def set_params(self, *, prolog: dict[str, Any] | None = None, pointwise: dict[str, Any] | None = None,
                   epilog: dict[str, Any] | None = None) -> None:
        """New values of runtime parameters (keyword-only parameters) of the planned steps, used
        from the next ``execute``: no compile, no new plan."""
        self._require_plan("set_params")
        if self._kernel is not None:
            given = [name for name, value in zip(STEPS, (prolog, pointwise, epilog)) if value]
            if given:
                raise ValueError(f"the {', '.join(given)} of this chain has no runtime parameters (it runs as one "
                                 "kernel, which takes steps without them); plan with {'fn': f, 'params': {...}} "
                                 "to set them between runs")
            return
        if prolog is not None or pointwise is not None:
            self._forward.set_params(prolog=prolog, epilog=pointwise)
        if epilog is not None:
            self._inverse.set_params(epilog=epilog)

    def execute(self, stream: Any = None, release_workspace: bool = False) -> Any:
        """Run the chain (planning first, with no callbacks, if ``plan`` was not called).

        Returns:
            The filtered signal, of the operand's shape, framework and device.
        """
        if self._chain is None:
            self.plan()
        if self._kernel is not None:
            stream = stream if stream is not None else self._stream
            return self._result(self._kernel.run(self._operand, self._kernel_data, stream), stream, True)
        inner = self._inner(stream)
        spectrum = self._forward.execute(stream=inner, release_workspace=release_workspace)
        self._inverse.reset_operand(spectrum)
        try:
            result = self._inverse.execute(stream=inner, release_workspace=release_workspace)
        finally:
            self._inverse.reset_operand(None)  # hold no spectrum between runs
        return self._result(result, stream)

    def _result(self, result: Any, stream: Any, wrap: bool = False) -> Any:
        """The chain's result where the operand was (copied back where it crossed, ordered on
        ``stream``); with ``wrap`` (a CuPy result of the one kernel) in the operand's framework."""
        if self._space.crosses:
            return self._space.outbound(result, self._user_tensor, stream if stream is not None else self._stream,
                                        self.options.blocking is True)
        return self._user_tensor.wrap_result(result) if wrap else result

    def reset_operand(self, operand: Any, *, stream: Any = None) -> None:
        """Point the chain at a new operand of the planned shape, strides, dtype and memory space
        (host or GPU, and device: as ``FFT.reset_operand``)."""
        tensor = as_tensor(operand)
        self._space.check_reset(tensor)
        stream = check_stream(stream)
        given = stream if stream is not None else self._stream
        x = self._space.inbound(tensor, given).array if self._space.crosses else operand
        self._forward.reset_operand(x, stream=self._inner(stream))
        self._operand = as_tensor(x).array
        self._user_tensor = tensor

    def _inner(self, stream: Any) -> Any:
        """The stream the two transforms take: none where they run on the host for a GPU operand
        (the chain orders its copies on ``stream`` itself)."""
        return None if self._space.route == TO_HOST else stream

    def free(self) -> None:
        """Release both transforms; the chain cannot run again."""
        self._forward.free()
        if self._inverse is not None:
            self._inverse.free()
        self._kernel, self._kernel_data, self._operand = None, (None, None, None), None

    def _rerun(self, operand: Any, prolog: Any, pointwise: Any, epilog: Any, stream: Any) -> Any:
        """The stateless hot path: this planned chain on a call's operand and callback arguments of
        the planned layouts and code (their data and parameter values are this call's)."""
        if self._kernel is not None:
            return self._kernel.run(operand, _step_data(prolog, pointwise, epilog), stream)
        spectrum = self._forward.rerun(operand, prolog, pointwise, stream)
        return self._inverse.rerun(spectrum, None, epilog, stream)

    def _reusable(self) -> bool:
        """Whether later stateless calls may run this planned chain with their arrays (the one kernel
        reads each call's arrays; a cuFFT plan may hold the address of a copy made for this call)."""
        return self._kernel is not None or (self._forward.reusable() and self._inverse.reusable())

    def _release_arrays(self) -> None:
        """Hold none of the caller's arrays between stateless calls."""
        if self._kernel is not None:
            self._operand, self._kernel_data = None, (None, None, None)
            return
        self._forward.release_arrays()
        self._inverse.release_arrays()

    def _require_plan(self, what: str) -> None:
        if self._chain is None:
            raise RuntimeError(f"{what}() before plan(): call plan() first")

    def __enter__(self) -> "FilteredFFT":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.free()
