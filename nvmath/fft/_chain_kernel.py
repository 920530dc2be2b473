"""The one-kernel route of a chain: prolog, FFT, pointwise step, inverse FFT, epilog in one kernel.

Each block of a numba-cuda kernel loads ``ffts_per_block`` rows of the operand into registers
(the prolog applied on the way in), transforms them with a cuFFTDx Block FFT
(``nvmath.device``), applies ``norm``'s forward scale and the pointwise step on the spectrum,
the inverse scale, transforms back, and stores the rows through the epilog. The data is read
once and written once; the spectrum never leaves the chip.

What fits (:func:`declines` says why a chain does not): C2C complex64/complex128, one FFT over
the last axis of a C-contiguous operand, a power-of-two length from 16 to 4096, and steps that
are Python functions in the value forms (``f(x)``, ``f(x, d)``, ``f(x, i, ..., k)``,
``f(x, d, i, ..., k)``) with data of the shape the step sees or broadcast along the last axis
(``(n,)``), C-contiguous and on the operand's GPU. Everything else runs as two plans.

Compiling costs seconds (libmathdx generating the two FFTs, numba typing and lowering the
kernel, nvJitLink linking them): the FFTs' code and the whole linked kernel are kept in the
project's store (``nvmath.device``, ``fftfuse_compiler.kernel_cache``, keyed by the generated
function's content fingerprint, which the steps' code and values are part of), and the compiled
kernel in this process per :class:`KernelConfig` (length, precision, the steps' code fingerprints
and data kinds, knobs, scales, architecture), so a second chain of the same kind compiles nothing
and a fresh process loads the kernel without typing it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
from typing import Any

import numpy as np

from fftfuse_compiler.fingerprint import UncacheableError, function_fingerprint
from fftfuse_compiler.forms import Form, infer_form

from ._callbacks import parse_callback, spec_of
from ._chain_knobs import tuned_knobs
from ._layout import FFTProblem

MIN_LENGTH, MAX_LENGTH = 16, 4096
SHARED_MEMORY_LIMIT = 48 * 1024  # what a block gets without opting in to more
STEPS = ("prolog", "pointwise", "epilog")
_VALUE_FORMS = (Form.VALUE, Form.VALUE_DATA, Form.VALUE_INDEX, Form.VALUE_DATA_INDEX)


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """What the kernel does with one step: call ``fn`` in ``form`` on each element, with a data
    element read from a row (``data="row"``: data of shape ``(n,)``, broadcast over the batch)
    or from the full array (``data="full"``), or none."""

    step: str
    form: str
    data: str | None
    data_dtype: str | None
    code: Any  # the function's fingerprint, or ("object", id) where it has none: equal only to itself
    name: str
    fn: Any = dataclasses.field(compare=False, hash=False, repr=False)


@dataclasses.dataclass(frozen=True)
class KernelConfig:
    """Everything that decides the compiled kernel (its key in this process)."""

    length: int
    precision: str  # "float32" or "float64": of the complex elements
    ndim: int  # of the operand (the index forms take one index per axis)
    inner_batch: tuple[int, ...]  # batch axes after the first: they turn a row into indices
    ffts_per_block: int
    elements_per_thread: int
    arch: int  # the cuFFTDx code's architecture (the kernel is built for the GPU's own)
    scales: tuple[float, float]  # norm's, after the forward and after the pointwise step
    narrow: bool  # Python float literals of the steps are float32
    steps: tuple[StepPlan | None, StepPlan | None, StepPlan | None]

    @property
    def dtype(self) -> str:
        return "complex64" if self.precision == "float32" else "complex128"

    def ffts(self) -> tuple[Any, Any]:
        """The forward and inverse cuFFTDx descriptions (``nvmath.device.FFT``)."""
        return _device_ffts(self.length, self.precision, self.ffts_per_block, self.elements_per_thread, self.arch)

    def describe(self) -> str:
        fwd = self.ffts()[0]
        return (f"cuFFTDx Block c2c n={self.length} {self.precision}: {self.ffts_per_block} FFTs per block, "
                f"{self.elements_per_thread} elements per thread, block {tuple(fwd.block_dim)}, "
                f"{fwd.shared_memory_size} B shared memory, sm_{self.arch}")


@functools.lru_cache(maxsize=64)
def _device_ffts(n: int, precision: str, fpb: int, ept: int, arch: int) -> tuple[Any, Any]:
    from nvmath.device import FFT

    return tuple(FFT(n, getattr(np, precision), "c2c", "Block", sm=arch, direction=d, ffts_per_block=fpb,
                     elements_per_thread=ept) for d in ("forward", "inverse"))


# -- which chains fit ---------------------------------------------------------------------------

def declines(forward: FFTProblem, target: str, prolog: Any, pointwise: Any, epilog: Any) -> str:
    """Why this chain does not run as one kernel ("" where it does), from the problem and the
    steps alone (the GPU and the toolchain are :func:`unavailable`'s part)."""
    if target != "cuda":
        return "one kernel is a GPU route; the CPU runs the chain as two FFTs with their callbacks"
    if forward.fft_type != "C2C":
        return ("a real operand runs R2C then C2R as two plans; the one kernel runs C2C (complex64, "
                "complex128) in this version")
    last = len(forward.operand.shape) - 1
    if forward.axes != (last,):
        return (f"the one kernel transforms the last axis alone; axes={forward.axes} of a "
                f"{len(forward.operand.shape)}-D operand run as two plans")
    if forward.operand.strides != _c_strides(forward.operand.shape):
        return (f"the one kernel reads C-contiguous operands; this one has strides {forward.operand.strides} "
                "(elements): two plans walk them where they lie")
    n = forward.fft_lengths[0]
    if n & (n - 1) or not MIN_LENGTH <= n <= MAX_LENGTH:
        return f"length {n}: the one kernel takes powers of two from {MIN_LENGTH} to {MAX_LENGTH}"
    for step, value in zip(STEPS, (prolog, pointwise, epilog)):
        reason = _step_declines(step, value, forward.operand.shape)
        if reason:
            return reason
    return ""


def _step_declines(step: str, value: Any, shape: tuple[int, ...]) -> str:
    arg = parse_callback(value, "prolog" if step == "prolog" else "epilog")
    if arg is None:
        return ""
    if arg.fn is None:
        what = "CUDA C++" if arg.source is not None else "LTO-IR"
        return f"the {step} is {what}, which cuFFT's callbacks run: two plans"
    if arg.params:
        return f"the {step} has runtime parameters (set_params), which run as two plans in this version"
    try:
        form = infer_form(arg.fn, "prolog" if step == "prolog" else "epilog", ndim=len(shape),
                          data=arg.data is not None)
    except TypeError:
        return ""  # not a callback at all: two plans say why, in the words of fft
    if form not in _VALUE_FORMS:
        return (f"the {step} is in cuFFT's own form (it indexes buffers by offset); the one kernel holds "
                "elements, not buffers: two plans")
    if arg.data is None:
        return ""
    return _data_declines(step, spec_of(arg).data, shape)


def _data_declines(step: str, data: Any, shape: tuple[int, ...]) -> str:
    if not data.on_gpu:
        return f"the {step}'s data is in host memory"
    kind = data_kind(data.shape, data.strides, shape)
    if kind is None:
        return (f"the {step}'s data of shape {data.shape} (strides {data.strides}) is read by the one kernel only "
                f"as a C-contiguous array of the shape {shape} or of shape ({shape[-1]},): two plans read it "
                "where it lies")
    return ""


def data_kind(data_shape: tuple[int, ...], data_strides: tuple[int, ...], shape: tuple[int, ...]) -> str | None:
    """"full" (the step's shape), "row" (``(n,)``, leading length-1 axes allowed) for C-contiguous
    data, or None for data the kernel does not read.

    >>> data_kind((1, 8), (8, 1), (4, 8)), data_kind((4, 8), (8, 1), (4, 8)), data_kind((4, 1), (1, 1), (4, 8))
    ('row', 'full', None)
    """
    if tuple(data_shape) == tuple(shape) and _contiguous(data_shape, data_strides):
        return "full"
    core = tuple(data_shape)
    while core and core[0] == 1:
        core = core[1:]
    if core == (shape[-1],) and len(data_shape) <= len(shape) and data_strides[-1] == 1:
        return "row"
    return None


def _contiguous(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    return all(n == 1 or s == c for n, s, c in zip(shape, strides, _c_strides(tuple(shape))))


def _c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    out, step = [], 1
    for n in reversed(shape):
        out.append(step)
        step *= max(n, 1)
    return tuple(reversed(out))


@functools.lru_cache(maxsize=1)
def unavailable() -> str:
    """Why this process cannot build the kernel ("" where it can): numba-cuda must see a GPU, and
    libmathdx (the ``dx`` extra) must load."""
    try:
        from numba import cuda
    except ImportError:
        return "numba-cuda is not installed"
    try:
        if not cuda.is_available():
            return "numba-cuda finds no usable GPU"
    except Exception as exc:  # a broken driver install: numba says what
        return f"numba-cuda cannot use the GPU ({exc})"
    try:
        from nvmath.device import _mathdx

        _mathdx.version()
    except (RuntimeError, OSError) as exc:
        return f"libmathdx (the dx extra) does not load: {exc}"
    return ""


# -- knobs ----------------------------------------------------------------------------------------

THREADS_PER_BLOCK = 128


# Measuring other knobs (benchmarks/chain_kernel.py --sweep): "FPBxEPT", e.g. "32x8", taken for
# every length cuFFTDx has that pair for. Part of the kernel's configuration, so of its cache keys.
KNOBS_ENV = "FFTFUSE_CHAIN_KNOBS"


def _asked_knobs() -> tuple[int, int] | None:
    value = os.environ.get(KNOBS_ENV)
    if not value:
        return None
    try:
        fpb, ept = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise ValueError(f"${KNOBS_ENV}={value!r}: expected FFTS_PER_BLOCKxELEMENTS_PER_THREAD, e.g. 32x8") from None
    return fpb, ept


def choose_knobs(n: int, precision: str, arch: int) -> tuple[int, int]:
    """``(ffts_per_block, elements_per_thread)`` for a length-``n`` FFT: the pair asked for by
    ``$FFTFUSE_CHAIN_KNOBS`` ("FPBxEPT", for measuring) where cuFFTDx has it, else the pair
    ``nvmath.fft.tune_chains`` measured fastest on this architecture (``_chain_knobs``), else
    :func:`rule_knobs`."""
    asked = _asked_knobs()
    if asked is not None and fits_one_kernel(n, precision, *asked, arch):
        return asked
    tuned = tuned_knobs(n, precision, arch, lambda fpb, ept: fits_one_kernel(n, precision, fpb, ept, arch))
    return tuned if tuned is not None else rule_knobs(n, precision, arch)


def rule_knobs(n: int, precision: str, arch: int) -> tuple[int, int]:
    """The knobs where none were measured on this architecture.

    Measured on an H100, 512 MiB of complex64 rows (``benchmarks/chain_kernel.py --sweep``,
    ``results/chain_kernel-h100-adb5e58.txt``), GPU ms per chain: at n=1024 with an ``(n,)``
    filter 2 FFTs per block x 16 elements per thread 0.411, 4 x 16 0.421, 8 x 8 0.743 (and
    cuFFTDx's suggested 2 x 32 0.911 earlier); with a full-size filter 2 x 16 0.564, 2 x 32
    0.574, 4 x 16 0.647, 4 x 8 0.783; at n=64 16 x 8 0.400, 32 x 8 0.407, 16 x 4 0.424,
    64 x 16 0.587, 8 x 2 0.664. The rule keeps those points: 16 elements per thread (8 in double
    precision, for the registers), at least 8 for short FFTs and a thread per 32 elements, and
    enough FFTs per block for 128 threads; a pair cuFFTDx has no implementation of halves the
    FFTs per block until one fits.
    """
    ept = min(16 if precision == "float32" else 8, max(8, n // 32), n)
    fpb = max(1, THREADS_PER_BLOCK // (n // ept))
    while fpb > 1 and not fits_one_kernel(n, precision, fpb, ept, arch):
        fpb //= 2
    return fpb, ept


def fits_one_kernel(n: int, precision: str, fpb: int, ept: int, arch: int) -> bool:
    """Whether cuFFTDx implements the pair for both directions with one layout, in a block the
    kernel can launch with the default shared memory."""
    try:
        fwd, inv = _device_ffts(n, precision, fpb, ept, arch)
        threads = int(np.prod(fwd.block_dim))
        shared = max(fwd.shared_memory_size, inv.shared_memory_size)
    except ValueError:
        return False
    return (fwd.block_dim == inv.block_dim and fwd.stride == inv.stride and threads <= 1024
            and shared <= SHARED_MEMORY_LIMIT)


def kernel_config(forward: FFTProblem, arch: int, scales: tuple[float, float], narrow: bool, prolog: Any,
                  pointwise: Any, epilog: Any) -> tuple[KernelConfig | None, str]:
    """The kernel of a chain :func:`declines` took, or ``(None, reason)`` where cuFFTDx has no
    fitting implementation for this GPU."""
    from nvmath.device._descriptor import MAX_ARCH, MIN_ARCH

    if arch < MIN_ARCH:
        return None, f"cuFFTDx generates code for sm_{MIN_ARCH} and newer; this GPU is sm_{arch}"
    arch = min(arch, MAX_ARCH)  # newer GPUs link the newest code cuFFTDx makes
    shape = forward.operand.shape
    n = forward.fft_lengths[0]
    precision = "float32" if forward.input_dtype == "complex64" else "float64"
    try:
        fpb, ept = choose_knobs(n, precision, arch)
        fwd, inv = _device_ffts(n, precision, fpb, ept, arch)
        shared = max(fwd.shared_memory_size, inv.shared_memory_size)
    except ValueError as exc:
        return None, f"cuFFTDx has no Block FFT of this length here ({exc})"
    if fwd.block_dim != inv.block_dim or fwd.stride != inv.stride:  # one launch, one element order for both
        return None, f"cuFFTDx lays the forward and inverse FFT of length {n} out differently"
    if shared > SHARED_MEMORY_LIMIT:
        return None, f"the FFT needs {shared} B of shared memory per block, over the {SHARED_MEMORY_LIMIT} B default"
    steps = tuple(_step_plan(step, value, shape) for step, value in zip(STEPS, (prolog, pointwise, epilog)))
    index = any(s is not None and Form(s.form).takes_index for s in steps)
    inner = tuple(shape[1:-1]) if index else ()
    return KernelConfig(n, precision, len(shape), inner, fpb, ept, arch, tuple(float(s) for s in scales), narrow,
                        steps), ""


def _step_plan(step: str, value: Any, shape: tuple[int, ...]) -> StepPlan | None:
    arg = parse_callback(value, "prolog" if step == "prolog" else "epilog")
    if arg is None:
        return None
    data = spec_of(arg).data if arg.data is not None else None
    form = infer_form(arg.fn, "prolog" if step == "prolog" else "epilog", ndim=len(shape), data=data is not None)
    try:
        code: Any = function_fingerprint(arg.fn)
    except UncacheableError:
        code = ("object", id(arg.fn))
    kind = None if data is None else data_kind(data.shape, data.strides, shape)
    name = getattr(getattr(arg.fn, "py_func", arg.fn), "__name__", type(arg.fn).__name__)
    return StepPlan(step, form.value, kind, None if data is None else data.dtype, code, name, arg.fn)


# -- the kernel's source --------------------------------------------------------------------------

def kernel_source(config: KernelConfig) -> tuple[str, tuple[float, float]]:
    """The kernel as Python source, and the scales it multiplies by (``S0`` after the forward FFT,
    ``S1`` after the pointwise step): only the arithmetic its steps need (a generated function,
    as the callbacks' wrappers are), over names bound by :func:`kernel_function`."""
    steps = config.steps
    args = ["x", "y"] + [f"d{j}" for j, s in enumerate(steps) if s is not None and s.data]
    index = any(s is not None and Form(s.form).takes_index for s in steps)
    exact = config.elements_per_thread * config.ffts()[0].stride == config.length
    lines = [f"def chain_kernel({', '.join(args)}):",
             "    t = cuda.local.array(SS, VT)",
             "    s = cuda.shared.array(0, VT)",
             "    tx = cuda.threadIdx.x",
             "    row = cuda.blockIdx.x * FPB + cuda.threadIdx.y",
             "    live = row < x.shape[0]"]
    if index:
        lines += _row_indices(config)
    fwd_scale, inv_scale = config.scales
    if steps[1] is None:  # nothing between the transforms but linear steps: one scale
        fwd_scale, inv_scale = fwd_scale * inv_scale, 1.0

    def loop(body: list[str]) -> list[str]:
        head = ["    if live:", "        for e in range(EPT):", "            k = tx + e * ST"]
        if not exact:
            head += ["            if k < N:"]
            body = ["    " + b for b in body]
        return head + ["            " + b for b in body]

    batch = config.ndim - 1
    x = _step_call(0, steps[0], "x[row, k]", batch)
    lines += loop([f"t[e] = {x}" if steps[0] else "t[e] = x[row, k]"])
    lines += ["    FWD(t, s)"]
    value = "t[e]" if fwd_scale == 1.0 else "t[e] * S0"
    if steps[1] is not None:
        value = _step_call(1, steps[1], value, batch)
    if inv_scale != 1.0:
        value = f"{value} * S1"
    if value != "t[e]":
        lines += loop([f"t[e] = {value}"])
    lines += ["    INV(t, s)"]
    lines += loop([f"y[row, k] = {_step_call(2, steps[2], 't[e]', batch)}" if steps[2] else "y[row, k] = t[e]"])
    return "\n".join(lines) + "\n", (fwd_scale, inv_scale)


def _row_indices(config: KernelConfig) -> list[str]:
    """``i0 .. i{ndim-2}``: the batch indices of ``row`` (C order over the batch axes)."""
    batch_axes = config.ndim - 1
    if batch_axes == 0:
        return []
    lines = ["    r = row"]
    for axis in range(batch_axes - 1, 0, -1):
        size = config.inner_batch[axis - 1]
        lines += [f"    i{axis} = r % {size}", f"    r = r // {size}"]
    return lines + ["    i0 = r"]


def _step_call(j: int, step: StepPlan | None, element: str, batch: int) -> str:
    """The call of step ``j`` on ``element``: with its data element and indices (``batch`` of them
    before ``k``) as its form takes them, converted to the element type."""
    if step is None:
        return element
    form = Form(step.form)
    args = [element]
    if form.takes_data_element:
        args.append(f"d{j}[k]" if step.data == "row" else f"d{j}[row, k]")
    if form.takes_index:
        args += [f"i{a}" for a in range(batch)] + ["k"]
    return f"E(F{j}({', '.join(args)}))"


def kernel_function(config: KernelConfig) -> tuple[Any, tuple[Any, ...]]:
    """The kernel's Python function (names bound: the FFTs, the steps as inlined device
    functions, the constants) and its argument types (numba types)."""
    from numba import cuda
    from numba.cuda import types
    from numba.np.numpy_support import from_dtype

    from fftfuse_compiler.wrappers import jit_tree

    fwd, inv = config.ffts()
    source, (s0, s1) = kernel_source(config)
    real = getattr(np, config.precision)
    element = from_dtype(np.dtype(config.dtype))
    namespace: dict[str, Any] = {
        "cuda": cuda, "FWD": fwd, "INV": inv, "SS": fwd.storage_size, "VT": fwd.value_type, "ST": fwd.stride,
        "EPT": fwd.elements_per_thread, "FPB": fwd.ffts_per_block, "N": config.length, "E": element,
        "S0": real(s0), "S1": real(s1),
    }
    matrix = types.Array(element, 2, "C")
    argtypes: list[Any] = [matrix, matrix]
    for j, step in enumerate(config.steps):
        if step is None:
            continue
        namespace[f"F{j}"] = jit_tree(step.fn, lambda f, o: cuda.jit(device=True, inline="always", **o)(f),
                                      config.narrow)
        if step.data:
            argtypes.append(types.Array(from_dtype(np.dtype(step.data_dtype)), 1 if step.data == "row" else 2, "C"))
    exec(compile(source, f"<fftfuse chain kernel n={config.length}>", "exec"), namespace)
    return namespace["chain_kernel"], tuple(argtypes)


# -- compiled kernels, kept per process ------------------------------------------------------------

_kernels: dict[tuple[KernelConfig, int], Any] = {}
_lock = threading.Lock()
KEPT_KERNELS = 128  # the oldest goes first (steps whose globals keep changing make new ones)


def compiled_kernel(config: KernelConfig, device_id: int) -> Any:
    """The kernel compiled for GPU ``device_id`` (a numba dispatcher), once per process per config:
    a warm process compiles nothing; a fresh one finds the kernel in the store. ``cuda.jit(sig)``
    compiles eagerly through ``CUDADispatcher.compile``, which ``fftfuse_compiler.kernel_cache``
    serves (installed with the device FFTs): the exec'd function fingerprints alike in every
    process (file names do not enter it; its FFTs, steps and constants do, by value)."""
    key = (config, device_id)
    kernel = _kernels.get(key)
    if kernel is not None:
        return kernel
    with _lock:
        kernel = _kernels.get(key)
        if kernel is None:
            from numba import cuda
            from numba.cuda import types

            fn, argtypes = kernel_function(config)
            threads = int(np.prod(config.ffts()[0].block_dim))
            with cuda.gpus[device_id]:
                kernel = cuda.jit(types.void(*argtypes), launch_bounds=threads)(fn)
            if len(_kernels) >= KEPT_KERNELS:
                del _kernels[next(iter(_kernels))]
            _kernels[key] = kernel
    return kernel


def compile_ltoir(config: KernelConfig, cc: tuple[int, int]) -> bytes:
    """The kernel's own LTO-IR for ``cc`` without a GPU (the cuFFTDx functions left to the link)."""
    from numba import cuda
    from numba.cuda import types

    from fftfuse_compiler.cuda_backend import target_architecture

    fn, argtypes = kernel_function(config)
    with target_architecture(cc):
        code, _ = cuda.compile(fn, types.void(*argtypes), device=False, abi="numba", cc=cc, output="ltoir")
    return bytes(code)


def linked_ptx(config: KernelConfig, cc: tuple[int, int]) -> str:
    """The kernel linked with its two FFTs by nvJitLink, as PTX, without a GPU: what proves on a
    machine without one that the kernel compiles and every symbol resolves."""
    from fftfuse_compiler.linkcheck import nvjitlink_ptx

    fwd, inv = config.ffts()
    inputs = [("chain_kernel.ltoir", compile_ltoir(config, cc)), ("fwd.ltoir", fwd.ltoir), ("inv.ltoir", inv.ltoir)]
    return nvjitlink_ptx(inputs, cc[0] * 10 + cc[1], "the chain kernel")


# -- running it -----------------------------------------------------------------------------------

class OneKernel:
    """A planned one-kernel chain on GPU ``device_id``: ``run`` launches it on an operand and the
    steps' data, into a new array."""

    def __init__(self, config: KernelConfig, device_id: int):
        self.config = config
        self.device_id = device_id
        self.kernel = compiled_kernel(config, device_id)
        fwd, inv = config.ffts()
        self.block = tuple(int(d) for d in fwd.block_dim)
        self.shared = max(fwd.shared_memory_size, inv.shared_memory_size)

    def run(self, operand: Any, data: tuple[Any, Any, Any], stream: Any = None) -> Any:
        """``operand`` (CuPy, of the planned shape) through the chain on ``stream`` (None: CuPy's
        current one); ``data``: each step's array or None. Returns a new CuPy array."""
        import cupy
        from numba import cuda

        n = self.config.length
        rows = operand.size // n
        grid = (rows + self.config.ffts_per_block - 1) // self.config.ffts_per_block
        on = cupy_stream(stream)
        with cupy.cuda.Device(self.device_id), on:
            result = cupy.empty(operand.shape, operand.dtype)  # from the pool, in this stream's order
            args = [operand.reshape(rows, n), result.reshape(rows, n)]
            for step, array in zip(self.config.steps, data):
                if step is not None and step.data:
                    args.append(array.reshape(n) if step.data == "row" else array.reshape(rows, n))
            with cuda.gpus[self.device_id]:
                # numba views of CuPy's arrays, without the stream sync numba does for foreign arrays
                # (the launch is ordered on the same stream)
                views = [cuda.as_cuda_array(a, sync=False) for a in args]
                self.kernel[grid, self.block, _numba_stream(int(on.ptr)), self.shared](*views)
        return result


class _Handle:
    """A raw cudaStream_t in the form CuPy 14's ``Stream.from_external`` takes."""

    def __init__(self, pointer: int):
        self.pointer = pointer

    def __cuda_stream__(self) -> tuple[int, int]:
        return (0, self.pointer)


def cupy_stream(stream: Any) -> Any:
    """``stream`` as a CuPy stream object (a context manager making it current): None is CuPy's
    current stream; a CuPy stream is itself; a PyTorch stream or a raw cudaStream_t (int) is
    wrapped."""
    import cupy

    if stream is None:
        return cupy.cuda.get_current_stream()
    if type(stream).__module__.startswith("cupy"):
        return stream
    pointer = stream if isinstance(stream, int) and not isinstance(stream, bool) else getattr(stream, "cuda_stream",
                                                                                              None)
    if pointer is None:
        raise TypeError(f"stream of type {type(stream).__name__} is not understood; pass a CuPy or PyTorch stream "
                        "or a cudaStream_t as int")
    from_external = getattr(cupy.cuda.Stream, "from_external", None)  # CuPy 14+
    if from_external is not None:
        return from_external(_Handle(int(pointer)))
    return cupy.cuda.ExternalStream(int(pointer))


@functools.lru_cache(maxsize=64)
def _numba_stream(pointer: int) -> Any:
    from numba import cuda

    return 0 if pointer == 0 else cuda.external_stream(pointer)
