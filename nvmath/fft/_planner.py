"""The planner: from a request (operand layout, transform, callbacks, options) to an immutable ``Plan``.

Everything that decides how an FFT runs is decided here, once, for ``FFT``, the stateless
functions and Dask alike: the buffers (``_layout``), the transform an operand dtype implies, the
points ``norm=`` counts and the callback it is fused into, the parsed callbacks with their data
on the executing side, the single-precision literal rule per side, the executor, and the keys
(of a request: ``request_key``; of a shared cuFFT plan: ``gpu_plan_key``). Compiling, laying out
data and launching stay with the engine (``_api``) and the executors (``_gpu``, ``_cpu``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

from fftfuse_compiler.dtypes import callback_element

from ._callbacks import CallbackSpec, callback_spec, parse_callback, plan_key
from ._layout import FFTProblem, LayoutError, plan_problem
from ._memory_space import SAME, ResultPlace, host_copy, result_place
from ._norm import fuse_scale, norm_scale, scaled_callback
from ._options import FFTOptions, cpu_threads, direction_name, execution_target
from ._tensor import as_tensor

TRANSFORM_TYPES = {"fft": "C2C", "ifft": "C2C", "rfft": "R2C", "irfft": "C2R"}
_TRANSFORMS = {"C2C": "fft", "R2C": "rfft", "C2R": "irfft"}


@functools.lru_cache(maxsize=1024)
def problem_for(transform: str, shape: tuple, strides: tuple, dtype: str, axes: tuple | None, inplace: bool = False,
                parity: str = "even", layout: str = "natural") -> FFTProblem:
    """The buffers and geometry of a transform of this operand layout (cached: the hot paths ask
    again for every new engine); a layout that cannot be planned raises ``LayoutError``."""
    try:
        return plan_problem(transform, shape, strides, dtype, axes, inplace=inplace, last_axis_parity=parity,
                            result_layout=layout)
    except LayoutError:
        raise
    except ValueError as exc:
        raise LayoutError(str(exc)) from None


def transform_for(dtype: str, options: FFTOptions) -> str:
    """The transform ("fft", "rfft", "irfft") of ``FFT`` on an operand of ``dtype``: the options'
    ``fft_type``, else C2C for complex operands and R2C for real ones."""
    fft_type = options.fft_type
    if fft_type is None:
        return "fft" if dtype.startswith("complex") else "rfft"
    if fft_type not in _TRANSFORMS:
        raise ValueError(f"fft_type must be one of {sorted(_TRANSFORMS)}, got {fft_type!r}")
    return _TRANSFORMS[fft_type]


# A stateless function's direction with options.fft_type: the transform that runs.
_BY_DIRECTION = {("forward", "C2C"): "fft", ("inverse", "C2C"): "ifft", ("forward", "R2C"): "rfft",
                 ("inverse", "C2R"): "irfft"}


def function_transform(transform: str, options: FFTOptions, dtype: str) -> str:
    """The transform a stateless function runs on an operand of ``dtype``, given ``options.fft_type``.

    ``fft`` and ``ifft`` give the direction and ``fft_type`` the type, as nvmath-python decides: a
    type that runs in that direction is taken (``ifft`` with ``fft_type='C2R'`` is a C2R
    transform), one that does not is refused. ``rfft`` and ``irfft`` name their type: another
    ``fft_type`` is refused.

    >>> function_transform("ifft", FFTOptions(fft_type="C2R"), "complex64")
    'irfft'
    >>> function_transform("fft", FFTOptions(fft_type="C2R"), "complex64")
    Traceback (most recent call last):
    ...
    ValueError: fft() runs forward, and a C2R transform runs inverse only (options.fft_type='C2R'); call irfft (or ifft with fft_type='C2R'), or drop fft_type
    """
    fft_type, own = options.fft_type, TRANSFORM_TYPES[transform]
    if fft_type is None or fft_type == own:
        return transform
    if transform in ("rfft", "irfft"):
        raise ValueError(f"{transform}() runs a {own} transform but options.fft_type is {fft_type!r}; drop fft_type "
                         f"or call the function of that type")
    direction = "inverse" if transform == "ifft" else "forward"
    chosen = _BY_DIRECTION.get((direction, fft_type))
    if chosen is None:
        runs, other = ("forward", "rfft (or fft") if fft_type == "R2C" else ("inverse", "irfft (or ifft")
        raise ValueError(f"{transform}() runs {direction}, and a {fft_type} transform runs {runs} only "
                         f"(options.fft_type={fft_type!r}); call {other} with fft_type={fft_type!r}), or drop fft_type")
    wanted = "real" if fft_type == "R2C" else "complex"
    if dtype.startswith("complex") != (wanted == "complex"):
        raise LayoutError(f"options.fft_type={fft_type!r} transforms a {wanted} operand, got {dtype}; drop fft_type "
                          f"for a C2C transform")
    return chosen


def logical_size(problem: FFTProblem) -> int:
    """n of ``norm=``: the points of one transform (the real side's for rfft/irfft).

    >>> logical_size(problem_for("irfft", (4, 5), (5, 1), "complex64", (1,)))
    8
    """
    side = problem.output if problem.fft_type == "C2R" else problem.input
    n = 1
    for axis in problem.axes:
        n *= side.shape[axis]
    return n


def planned_direction(problem: FFTProblem, direction: Any) -> str:
    """``direction`` by name (None: the transform's own); R2C and C2R run one way only."""
    if direction is None:
        return problem.direction
    direction = direction_name(direction)
    if problem.fft_type != "C2C" and direction != problem.direction:
        raise ValueError(f"direction {direction!r} was asked of a {problem.fft_type} FFT, which runs "
                         f"{problem.direction} only; drop direction= (or use a C2C FFT of a complex operand)")
    return direction


def fused_norm(problem: FFTProblem, direction: str | None, norm: str | None, prolog: Any, epilog: Any,
               ndim: int | None = None) -> tuple[Any, Any]:
    """``(prolog, epilog)`` with ``norm=``'s scale fused into one of them (unchanged where none)."""
    scale = norm_scale(norm, direction or problem.direction, logical_size(problem))
    if scale is None:
        return prolog, epilog
    return fuse_scale(prolog, epilog, scale, ndim=ndim)


def execution_device(execution: Any, options: FFTOptions) -> int:
    """The GPU a host operand runs on: the execution's device_id, else the options', else 0."""
    device_id = execution.get("device_id") if isinstance(execution, dict) else getattr(execution, "device_id", None)
    return device_id if device_id is not None else (options.device_id or 0)


@functools.lru_cache(maxsize=None)
def device_arch(device_id: int) -> int:
    """The compute capability of GPU ``device_id`` as an int (90 for sm_90)."""
    import cupy

    return int(cupy.cuda.Device(device_id).compute_capability)


@functools.lru_cache(maxsize=None)
def linker_version() -> tuple[int, int]:
    """The CUDA version of this process's nvJitLink, which links every LTO-IR the plans read."""
    from fftfuse_compiler.linkcheck import nvjitlink_version

    return nvjitlink_version()


def check_links_here(kind: str, arch: int, toolkit: tuple[int, int], device_arch_here: int) -> None:
    """LTO-IR compiled elsewhere (a Dask client) for ``arch`` by ``toolkit``'s NVVM must link on this
    GPU with this nvJitLink: refuse it, saying why, before cuFFT fails without a reason."""
    if arch > device_arch_here:
        raise RuntimeError(
            f"{kind} was compiled on the client for sm_{arch}, newer than this worker's GPU "
            f"(sm_{device_arch_here}); compile on a client whose GPU is no newer than the workers' (LTO-IR links "
            "on any newer GPU), or on one without a GPU (the oldest supported architecture)"
        )
    linker = linker_version()
    if toolkit > linker:
        raise RuntimeError(
            f"{kind} was compiled on the client by CUDA {toolkit[0]}.{toolkit[1]}'s NVVM, newer "
            f"than this worker's nvJitLink {linker[0]}.{linker[1]}; give the workers a CUDA toolkit at "
            "least as new as the client's"
        )


def place_data(spec: CallbackSpec | None, target: str, device_id: int | None, stream: Any = None) -> CallbackSpec | None:
    """``spec`` once its data is where the FFT runs: checked to be on its GPU ``device_id`` for
    ``target`` "cuda"; on the host for "cpu", where data on a GPU is copied (the CPU cannot read
    it), in the order of ``stream`` where it lies on ``device_id`` (a GPU operand's, run on the
    CPU), else of its device's current stream."""
    if spec is None or spec.data is None:
        return spec
    data = spec.data
    if target == "cuda":
        if not data.on_gpu:
            raise ValueError(f"{spec.name}: its data is in host memory but the FFT runs on GPU "
                             f"{device_id}; move the data to that device")
        if data.device_id != device_id:
            raise ValueError(f"{spec.name}: its data is on GPU {data.device_id} but the operand is on GPU "
                             f"{device_id}; user data must be on the operand's device")
    elif data.on_gpu:
        return spec.with_data(host_copy(data, stream if data.device_id == device_id else None))
    return spec


@dataclasses.dataclass(frozen=True)
class Plan:
    """How one planned FFT runs: decided by ``make_plan``, never changed (a new plan replaces it).

    ``prolog``/``epilog`` are the parsed callbacks after ``norm=`` was fused in, their data on
    the executing side; ``single`` says per side whether Python float literals are float32;
    ``executor`` names the executor ("cufft", "cpu" or "cpu-debug"); ``shared``: the cuFFT plan
    comes from the per-device cache (stateless engines), else the FFT owns it; ``result``: where
    ``execute``'s result goes (``_memory_space.ResultPlace``).
    """

    problem: FFTProblem
    target: str
    executor: str
    direction: str | None  # given to plan(); None: the transform's own
    norm: str | None
    prolog: CallbackSpec | None
    epilog: CallbackSpec | None
    single: tuple[bool, bool]
    shared: bool
    run_direction: str  # what execute runs unless told otherwise: ``direction``, else the transform's own
    result: ResultPlace = ResultPlace.WRAP

    def element_dtype(self, kind: str) -> str:
        """The element type a ``kind`` callback sees: the FFT's input (prolog) or output (epilog),
        in single precision where that is half precision (``_half``)."""
        return callback_element(self.problem.input_dtype if kind == "prolog" else self.problem.output_dtype)

    def without_data(self) -> "Plan":
        """This plan holding none of the caller's arrays (a cached engine between calls)."""
        return dataclasses.replace(self, prolog=self.prolog and self.prolog.with_data(None),
                                   epilog=self.epilog and self.epilog.with_data(None))


def make_plan(problem: FFTProblem, target: str, options: FFTOptions, prolog: Any, epilog: Any, *,
              direction: Any = None, norm: str | None = None, shared: bool = False, device_id: int | None = None,
              stream: Any = None, route: str = SAME) -> Plan:
    """The ``Plan`` of a request: ``prolog``/``epilog`` as the user passed them (parsed here once),
    ``direction`` and ``norm`` as given to ``plan()``; ``device_id`` is the GPU the FFT touches
    (where it runs, or where its operand lives when it runs on the CPU) and ``stream`` the plan's,
    which orders the copies of GPU data to the host (``place_data``); ``route`` is how the operand
    reaches where it runs (``_memory_space.Crossing.route``), which decides where the result goes."""
    direction = None if direction is None else planned_direction(problem, direction)
    if norm is not None:
        prolog, epilog = fused_norm(problem, direction, norm, prolog, epilog, ndim=len(problem.operand.shape))
    specs = tuple(place_data(callback_spec(value, kind), target, device_id, stream)
                  for value, kind in ((prolog, "prolog"), (epilog, "epilog")))
    single = (options.single_literals(problem.input_dtype), options.single_literals(problem.output_dtype))
    executor = "cufft" if target == "cuda" else ("cpu-debug" if options.debug_mode else "cpu")
    return Plan(problem, target, executor, direction, norm, specs[0], specs[1], single, shared,
                direction or problem.direction, result_place(route, problem.inplace))


def request_key(operand: Any, axes: tuple | None, options: FFTOptions, execution: Any, prolog: Any,
                epilog: Any) -> tuple:
    """A hashable key of a request (``FFT.create_key``): equal keys can share one planned FFT."""
    tensor = as_tensor(operand)
    target = execution_target(execution, tensor, options)
    device = tensor.device_id if tensor.on_gpu else (execution_device(execution, options) if target == "cuda" else None)
    transform = transform_for(tensor.dtype, options)
    problem = problem_for(transform, tensor.shape, tensor.strides, tensor.dtype, axes, options.inplace,
                          options.last_axis_parity, options.result_layout)
    settings = tuple(getattr(options, f) for f in ("user_data_copy", "debug_mode", "float_literals", "patient_jit",
                                                   "blocking", "cpu_engine"))
    return (problem, target, device, tensor.framework, settings, id(options.allocator) if options.allocator else None,
            cpu_threads(execution, options) if target == "cpu" else None,
            plan_key(parse_callback(prolog, "prolog")), plan_key(parse_callback(epilog, "epilog")))


def gpu_plan_key(device: int, problem: FFTProblem, patient: bool, allocator: Any, attached: tuple) -> tuple:
    """The key of a shared cuFFT plan: its problem, device, JIT patience, workspace allocator (plans
    of other allocators are others) and attached callbacks (code and how user_info is read)."""
    return (device, problem, patient, id(allocator) if allocator is not None else None,
            *(a.key() if a else None for a in attached))


def indirect_callback(shared: bool, has_data: bool, has_params: bool) -> bool:
    """Whether a callback compiled from Python reads its user data through a slot (*indirect*).

    A shared plan (the stateless functions') reads the data pointer from a slot, so new data reuses
    the plan; a plan the FFT owns gets the pointer itself, one load less per element. Runtime
    parameters always live in the slot (after the pointer). ``fftfuse precompile`` asks this too,
    so that it compiles under the keys the FFT calls look up.

    >>> [indirect_callback(shared, True, False) for shared in (True, False)]
    [True, False]
    >>> indirect_callback(True, False, False), indirect_callback(False, False, True)
    (False, True)
    """
    return (shared and has_data) or has_params


# -- chains: prolog -> FFT -> pointwise -> inverse FFT -> epilog ---------------------------------------
CHAIN_TRANSFORMS = {"C2C": ("fft", "ifft"), "R2C": ("rfft", "irfft")}


@dataclasses.dataclass(frozen=True)
class ChainPlan:
    """How one chain runs: decided by ``plan_chain``, never changed.

    ``route`` names the way it runs: "two-plans" is a forward FFT with the prolog as its prolog and
    the pointwise step as its epilog, then an inverse FFT with the epilog as its epilog (cuFFT
    callbacks on the GPU, the compiled loops on the CPU, plain Python in the debug mode);
    "one-kernel" is one numba-cuda kernel around cuFFTDx device FFTs (``kernel``, a
    ``_chain_kernel.KernelConfig``, says how: FFTs per block, elements per thread, ...).
    ``reason`` says why this route and not another; ``scales`` are what ``norm`` applies to the
    forward and the inverse transform (1.0: nothing).
    """

    route: str
    reason: str
    executor: str
    forward: FFTProblem
    transforms: tuple[str, str]
    parity: str  # of the real result's last axis (C2R), "even" for C2C
    norm: str | None
    scales: tuple[float, float]
    steps: tuple[str | None, str | None, str | None]  # names of prolog, pointwise, epilog (None: none)
    kernel: Any = None  # the one kernel's configuration (route "one-kernel" only)

    def describe(self) -> str:
        """The plan in words: route, why, each transform and what is fused into it."""
        p = self.forward
        first, second = self.transforms
        prolog, pointwise, epilog = (s or "none" for s in self.steps)
        where = {"cufft": "cuFFT with LTO callbacks", "cpu": "the CPU executor (ducc0 and compiled loops)",
                 "cpu-debug": "the debug mode (plain Python callbacks on the host)",
                 "cufftdx": "one numba-cuda kernel with cuFFTDx device FFTs"}[self.executor]
        lines = [
            f"chain {p.fft_type}/{'C2C' if p.fft_type == 'C2C' else 'C2R'} {p.input_dtype} n={p.fft_lengths} "
            f"axes={p.axes} batch={p.batch}, norm={self.norm!r}",
            f"route: {self.route} on {where}",
            f"why: {self.reason}",
        ]
        if self.kernel is not None:
            lines += [
                f"kernel: {self.kernel.describe()}",
                f"1. load, prolog={prolog}",
                f"2. {first} in registers, pointwise {pointwise}, scale {self.scales[0]:.6g}",
                f"3. {second} in registers, scale {self.scales[1]:.6g}, epilog={epilog}, store",
            ]
        else:
            lines += [
                f"1. {first}: prolog={prolog}, epilog=pointwise {pointwise}, scale {self.scales[0]:.6g}",
                f"2. {second}: epilog={epilog}, scale {self.scales[1]:.6g}",
            ]
        return "\n".join(lines)

    def placed(self, prolog: Any, pointwise: Any, epilog: Any) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
        """``((prolog, epilog) of the forward, (prolog, epilog) of the inverse)`` of the two-plans
        route, with ``norm``'s scales fused where each step sees the normalized transform: the
        forward's after the prolog (so the pointwise step sees the scaled spectrum), the
        inverse's after the pointwise step (so the epilog sees the scaled result); the FFTs
        being linear, a scale moves freely between a transform's input and output."""
        ndim = len(self.forward.operand.shape)
        s_forward, s_inverse = self.scales
        if pointwise is None:  # nothing but linear steps up to the epilog: one scale
            s_forward, s_inverse = s_forward * s_inverse, 1.0
        inverse_prolog = None
        if s_forward != 1.0:
            scaled = scaled_callback(prolog, "prolog", s_forward, ndim)
            if scaled is None and pointwise is not None:
                raise ValueError(f"norm={self.norm!r} cannot be fused: the prolog is CUDA C++ or LTO-IR, and the "
                                 "pointwise step must see the scaled spectrum. Scale in your prolog and pass norm=None")
            if scaled is None:
                inverse_prolog = scaled_callback(None, "prolog", s_forward)
            else:
                prolog = scaled
        if s_inverse != 1.0:
            scaled = scaled_callback(pointwise, "epilog", s_inverse, ndim)
            if scaled is None:  # the pointwise step stores its own value: scale the inverse's input
                inverse_prolog = scaled_callback(None, "prolog", s_inverse)
            else:
                pointwise = scaled
        return (prolog, pointwise), (inverse_prolog, epilog)


def _callback_name(value: Any, kind: str) -> str | None:
    arg = parse_callback(value, kind)
    if arg is None:
        return None
    if arg.fn is not None:
        return getattr(arg.fn, "__name__", type(arg.fn).__name__)
    return "CUDA C++" if arg.source is not None else "LTO-IR"


ROUTES = ("auto", "one-kernel", "two-plans")


def one_kernel_declines(forward: FFTProblem, target: str, prolog: Any = None, pointwise: Any = None,
                        epilog: Any = None) -> str:
    """Why a chain does not run as one kernel (load, transform, pointwise step, inverse, store,
    through a device-side FFT), or "" where it would: the reason ``describe`` gives. The problem
    and the steps decide first; then whether this process can build the kernel at all."""
    from ._chain_kernel import declines, unavailable

    return declines(forward, target, prolog, pointwise, epilog) or unavailable()


def _check_route(route: Any) -> str:
    if route not in ROUTES:
        raise ValueError(f"route={route!r} is not a chain route; expected one of {', '.join(map(repr, ROUTES))}")
    return route


# "auto" takes one kernel where a chain fits it. Its first compile on a machine takes seconds
# (later processes load it from the store, typing nothing); this switch set to 0 keeps "auto" on
# the two cuFFT plans, which compile in a fraction of a second.
ONE_KERNEL_ENV = "FFTFUSE_ONE_KERNEL"


def auto_takes_one_kernel() -> bool:
    """Whether ``route="auto"`` takes one kernel where a chain fits it (unless ``$FFTFUSE_ONE_KERNEL=0``)."""
    return os.environ.get(ONE_KERNEL_ENV) != "0"


def plan_chain(forward: FFTProblem, target: str, options: FFTOptions, norm: str | None, prolog: Any,
               pointwise: Any, epilog: Any, *, route: str = "auto", device_id: int | None = None) -> ChainPlan:
    """The ``ChainPlan`` of a chain whose forward transform is ``forward`` (C2C or R2C), run on
    ``target`` (GPU ``device_id``); the callbacks are parsed here only to be named and fitted
    (each engine, or the one kernel, plans its own).

    ``route`` "auto" takes one kernel (``_chain_kernel``: the device-side FFT) where the length,
    precision, layout and every step fit and the GPU and libmathdx are there (unless
    ``$FFTFUSE_ONE_KERNEL=0``), else two plans;
    "one-kernel" raises saying why where it does not fit; "two-plans" never tries it."""
    if forward.fft_type not in CHAIN_TRANSFORMS:
        raise ValueError(f"a chain starts with a C2C or R2C transform, not {forward.fft_type}")
    route = _check_route(route)
    n = logical_size(forward)
    scales = tuple(norm_scale(norm, d, n) or 1.0 for d in ("forward", "inverse"))
    executor = "cufft" if target == "cuda" else ("cpu-debug" if options.debug_mode else "cpu")
    steps = (_callback_name(prolog, "prolog"), _callback_name(pointwise, "epilog"), _callback_name(epilog, "epilog"))
    parity = "odd" if forward.fft_type == "R2C" and forward.fft_lengths[-1] % 2 else "even"
    transforms = CHAIN_TRANSFORMS[forward.fft_type]
    if route == "two-plans":
        reason = "route='two-plans' was asked for"
    else:
        reason = one_kernel_declines(forward, target, prolog, pointwise, epilog)
        if not reason and route == "auto" and not auto_takes_one_kernel():
            reason = (f"one kernel would fit, but ${ONE_KERNEL_ENV}=0 keeps route='auto' on two plans; unset it or "
                      "pass route='one-kernel' to run it")
        elif not reason:
            from ._chain_kernel import kernel_config

            single = options.single_literals(forward.input_dtype)
            kernel, reason = kernel_config(forward, device_arch(device_id or 0), scales, single, prolog, pointwise,
                                           epilog)
            if kernel is not None:
                why = ("route='one-kernel' was asked for" if route == "one-kernel" else
                       "the length, precision, layout and every step fit one kernel: the data is read and written once")
                return ChainPlan("one-kernel", why, "cufftdx", forward, transforms, parity, norm, scales, steps, kernel)
        if route == "one-kernel":
            raise ValueError(f"route='one-kernel' cannot run this chain: {reason}. Pass route='auto' to run it as "
                             "two plans where one kernel does not fit")
    return ChainPlan("two-plans", reason, executor, forward, transforms, parity, norm, scales, steps)
