"""The one-kernel route of a chain: prolog, FFT, pointwise step, inverse FFT, epilog in one kernel.

Each block of a numba-cuda kernel loads ``ffts_per_block`` rows of the operand into registers
(the prolog applied on the way in), transforms them with a cuFFTDx Block FFT
(``nvmath.device``), applies ``norm``'s forward scale and the pointwise step on the spectrum,
the inverse scale, transforms back, and stores the rows through the epilog. The data is read
once and written once; the spectrum never leaves the chip.

What fits (:func:`declines` says why a chain does not): C2C (complex64, complex128) and R2C then
C2R (float32, float64: the pointwise step on the half spectrum, ``n//2 + 1`` elements a row, the
prolog and the epilog on the real elements), one FFT over the last axis of a C-contiguous
operand, a power-of-two length from 16 to 4096, and steps that are Python functions in the value
forms (``f(x)``, ``f(x, d)``, ``f(x, i, ..., k)``, ``f(x, d, i, ..., k)``) with data of the
shape the step sees or broadcast along the last axis (``(n,)``, ``(n//2 + 1,)`` for the pointwise
step of a real operand), C-contiguous and on the operand's GPU. Everything else runs as two plans.

Compiling costs seconds (libmathdx generating the two FFTs, numba typing and lowering the
kernel, nvJitLink linking them): the FFTs' code and the whole linked kernel are kept in the
project's store (``nvmath.device``, ``fftfuse_compiler.kernel_cache``, keyed by the generated
function's content fingerprint, which the steps' code and values are part of), and the compiled
kernel in this process per :class:`KernelConfig` (transform type, length, precision, the steps'
code fingerprints and data kinds, knobs, scales, architecture), so a second chain of the same
kind compiles nothing and a fresh process loads the kernel without typing it.
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
# The precision (real type) of each operand dtype the kernel takes; the transforms follow from it.
PRECISIONS = {"complex64": "float32", "complex128": "float64", "float32": "float32", "float64": "float64"}
FFT_TYPES = {"C2C": "c2c", "R2C": "r2c"}  # the planner's forward type -> the kernel's (cuFFTDx's spelling)


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """What the kernel does with one step: call ``fn`` in ``form`` on each element, with a data
    element read from a row (``data="row"``: data of shape ``(n,)``, or ``(n//2 + 1,)`` for the
    pointwise step of a real operand, broadcast over the batch) or from the full array
    (``data="full"``: the step's own shape), or none."""

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
    precision: str  # "float32" or "float64": the real type of the elements
    ndim: int  # of the operand (the index forms take one index per axis)
    inner_batch: tuple[int, ...]  # batch axes after the first: they turn a row into indices
    ffts_per_block: int
    elements_per_thread: int
    arch: int  # the cuFFTDx code's architecture (the kernel is built for the GPU's own)
    scales: tuple[float, float]  # norm's, after the forward and after the pointwise step
    narrow: bool  # Python float literals of the steps are float32
    steps: tuple[StepPlan | None, StepPlan | None, StepPlan | None]
    fft_type: str = "c2c"  # "c2c" both ways, or "r2c" forward and "c2r" back (a real operand)

    @property
    def dtype(self) -> str:
        """The operand's and the result's dtype (what the prolog and the epilog see)."""
        return self.spectrum_dtype if self.fft_type == "c2c" else self.precision

    @property
    def spectrum_dtype(self) -> str:
        """The spectrum's dtype (what the pointwise step sees)."""
        return "complex64" if self.precision == "float32" else "complex128"

    @property
    def spectrum_length(self) -> int:
        """Elements of a row of the spectrum: ``n``, or ``n//2 + 1`` (the half spectrum) for a real operand."""
        return self.length if self.fft_type == "c2c" else self.length // 2 + 1

    def step_lengths(self) -> tuple[int, int, int]:
        """The row length each step sees: prolog, pointwise step, epilog."""
        return self.length, self.spectrum_length, self.length

    def ffts(self) -> tuple[Any, Any]:
        """The forward and inverse cuFFTDx descriptions (``nvmath.device.FFT``)."""
        return _device_ffts(self.length, self.precision, self.ffts_per_block, self.elements_per_thread, self.arch,
                            self.fft_type)

    def describe(self) -> str:
        fwd = self.ffts()[0]
        kind = "c2c" if self.fft_type == "c2c" else "r2c/c2r"
        return (f"cuFFTDx Block {kind} n={self.length} {self.precision}: {self.ffts_per_block} FFTs per block, "
                f"{self.elements_per_thread} elements per thread, block {tuple(fwd.block_dim)}, "
                f"{fwd.shared_memory_size} B shared memory, sm_{self.arch}")


@functools.lru_cache(maxsize=64)
def _device_ffts(n: int, precision: str, fpb: int, ept: int, arch: int, fft_type: str = "c2c") -> tuple[Any, Any]:
    """The forward and inverse Block FFTs of the kernel: two c2c, or an r2c and a c2r."""
    from nvmath.device import FFT

    real = getattr(np, precision)
    knobs = dict(sm=arch, ffts_per_block=fpb, elements_per_thread=ept)
    if fft_type == "c2c":
        return tuple(FFT(n, real, "c2c", "Block", direction=d, **knobs) for d in ("forward", "inverse"))
    # cuFFTDx's default real layout (complex_layout natural, real_mode normal), which the kernel's
    # indexing assumes: element e of a thread is element tx + e * stride of the real row and of the
    # half spectrum alike.
    return FFT(n, real, "r2c", "Block", **knobs), FFT(n, real, "c2r", "Block", **knobs)


# -- which chains fit ---------------------------------------------------------------------------

def declines(forward: FFTProblem, target: str, prolog: Any, pointwise: Any, epilog: Any) -> str:
    """Why this chain does not run as one kernel ("" where it does), from the problem and the
    steps alone (the GPU and the toolchain are :func:`unavailable`'s part)."""
    if target != "cuda":
        return "one kernel is a GPU route; the CPU runs the chain as two FFTs with their callbacks"
    if forward.fft_type not in FFT_TYPES or forward.input_dtype not in PRECISIONS:
        return (f"the one kernel runs C2C (complex64, complex128) and R2C then C2R (float32, float64); a "
                f"{forward.fft_type} chain on {forward.input_dtype} runs as two plans")
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
    for step, value, shape in zip(STEPS, (prolog, pointwise, epilog), step_shapes(forward)):
        reason = _step_declines(step, value, shape)
        if reason:
            return reason
    return ""


def step_shapes(forward: FFTProblem) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The shape each step sees: the operand's for the prolog and the epilog, the spectrum's for the
    pointwise step (the last axis ``n//2 + 1`` long for a real operand, as R2C writes it).

    >>> from nvmath.fft._planner import problem_for
    >>> step_shapes(problem_for("rfft", (4, 16), (16, 1), "float32", (1,)))
    ((4, 16), (4, 9), (4, 16))
    """
    shape = tuple(forward.operand.shape)
    spectrum = shape if forward.fft_type == "C2C" else shape[:-1] + (shape[-1] // 2 + 1,)
    return shape, spectrum, shape


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


def choose_knobs(n: int, precision: str, arch: int, fft_type: str = "c2c") -> tuple[int, int]:
    """``(ffts_per_block, elements_per_thread)`` for a length-``n`` chain of ``fft_type`` ("c2c",
    or "r2c" for R2C then C2R): the pair asked for by ``$FFTFUSE_CHAIN_KNOBS`` ("FPBxEPT", for
    measuring) where cuFFTDx has it, else the pair ``nvmath.fft.tune_chains`` measured fastest on
    this architecture (``_chain_knobs``; C2C chains only, which it measures), else
    :func:`rule_knobs`."""
    asked = _asked_knobs()
    if asked is not None and fits_one_kernel(n, precision, *asked, arch, fft_type):
        return asked
    if fft_type == "c2c":
        tuned = tuned_knobs(n, precision, arch, lambda fpb, ept: fits_one_kernel(n, precision, fpb, ept, arch))
        if tuned is not None:
            return tuned
    return rule_knobs(n, precision, arch, fft_type)


def rule_knobs(n: int, precision: str, arch: int, fft_type: str = "c2c") -> tuple[int, int]:
    """The knobs where none were measured on this architecture (for ``fft_type`` "c2c" or "r2c").

    Measured on an H100, 512 MiB of complex64 rows (``benchmarks/chain_kernel.py --sweep``,
    ``results/chain_kernel-h100-adb5e58.txt``), GPU ms per chain: at n=1024 with an ``(n,)``
    filter 2 FFTs per block x 16 elements per thread 0.411, 4 x 16 0.421, 8 x 8 0.743 (and
    cuFFTDx's suggested 2 x 32 0.911 earlier); with a full-size filter 2 x 16 0.564, 2 x 32
    0.574, 4 x 16 0.647, 4 x 8 0.783; at n=64 16 x 8 0.400, 32 x 8 0.407, 16 x 4 0.424,
    64 x 16 0.587, 8 x 2 0.664. The rule keeps those points: 16 elements per thread (8 in double
    precision, for the registers), at least 8 for short FFTs and a thread per 32 elements, and
    enough FFTs per block for 128 threads; a pair cuFFTDx has no implementation of halves the
    FFTs per block until one fits. A real chain takes the same rule (not measured apart: it holds
    no more registers than C2C of its length).
    """
    ept = min(16 if precision == "float32" else 8, max(8, n // 32), n)
    fpb = max(1, THREADS_PER_BLOCK // (n // ept))
    while fpb > 1 and not fits_one_kernel(n, precision, fpb, ept, arch, fft_type):
        fpb //= 2
    return fpb, ept


def fits_one_kernel(n: int, precision: str, fpb: int, ept: int, arch: int, fft_type: str = "c2c") -> bool:
    """Whether cuFFTDx implements the pair for both directions of ``fft_type`` with one layout, in a
    block the kernel can launch with the default shared memory."""
    try:
        return not _pair_declines(*_device_ffts(n, precision, fpb, ept, arch, fft_type))
    except ValueError:
        return False


def _pair_declines(fwd: Any, inv: Any) -> str:
    """Why the forward and inverse FFTs cannot run in one launch of the kernel ("" where they can):
    one block shape and one element order for both, at most 1024 threads, the default shared
    memory, and (R2C) the half spectrum within the registers (the kernel walks it there)."""
    if (fwd.block_dim, fwd.stride, fwd.elements_per_thread) != (inv.block_dim, inv.stride, inv.elements_per_thread):
        return f"cuFFTDx lays the forward and inverse FFT of length {fwd.size} out differently"
    threads = int(np.prod(fwd.block_dim))
    if threads > 1024:
        return f"the FFT needs {threads} threads per block, over the 1024 a block has"
    shared = max(fwd.shared_memory_size, inv.shared_memory_size)
    if shared > SHARED_MEMORY_LIMIT:
        return f"the FFT needs {shared} B of shared memory per block, over the {SHARED_MEMORY_LIMIT} B default"
    held = -(-fwd.output_length // fwd.stride)  # spectrum elements per thread, in the natural layout
    if held > min(fwd.storage_size, inv.storage_size):
        return (f"cuFFTDx holds the spectrum of length {fwd.output_length} in {fwd.storage_size} registers per "
                f"thread, not the {held} the kernel walks")
    return ""


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
    precision, fft_type = PRECISIONS[forward.input_dtype], FFT_TYPES[forward.fft_type]
    try:
        fpb, ept = choose_knobs(n, precision, arch, fft_type)
        reason = _pair_declines(*_device_ffts(n, precision, fpb, ept, arch, fft_type))
    except ValueError as exc:
        return None, f"cuFFTDx has no Block FFT of this length here ({exc})"
    if reason:
        return None, reason
    steps = tuple(_step_plan(step, value, seen) for step, value, seen in zip(STEPS, (prolog, pointwise, epilog),
                                                                              step_shapes(forward)))
    index = any(s is not None and Form(s.form).takes_index for s in steps)
    inner = tuple(shape[1:-1]) if index else ()
    return KernelConfig(n, precision, len(shape), inner, fpb, ept, arch, tuple(float(s) for s in scales), narrow,
                        steps, fft_type), ""


def _step_plan(step: str, value: Any, shape: tuple[int, ...]) -> StepPlan | None:
    """The plan of one step seeing elements of ``shape`` (None where there is no step)."""
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
    as the callbacks' wrappers are), over names bound by :func:`kernel_function`.

    A real operand's kernel holds its row as real elements packed in the complex registers
    (``v``, a view of ``t``): the prolog and the epilog run on those, the pointwise step on the
    half spectrum the R2C leaves in ``t``."""
    steps = config.steps
    layout = _layout(config)
    real = config.fft_type == "r2c"
    args = ["x", "y"] + [f"d{j}" for j, s in enumerate(steps) if s is not None and s.data]
    index = any(s is not None and Form(s.form).takes_index for s in steps)
    lines = [f"def chain_kernel({', '.join(args)}):",
             "    t = cuda.local.array(SS, VT)"]
    if real:
        lines += ["    v = t.view(RT)"]
    lines += ["    s = cuda.shared.array(0, VT)",
              "    tx = cuda.threadIdx.x",
              "    row = cuda.blockIdx.x * FPB + cuda.threadIdx.y",
              "    live = row < x.shape[0]"]
    if index:
        lines += _row_indices(config)
    fwd_scale, inv_scale = config.scales
    if steps[1] is None:  # nothing between the transforms but linear steps: one scale
        fwd_scale, inv_scale = fwd_scale * inv_scale, 1.0

    batch = config.ndim - 1
    element = "v[e]" if real else "t[e]"  # an element of the row, as the prolog and the epilog see it
    lines += _loop(layout, "EPT", "N", [f"{element} = {_step_call(0, steps[0], 'x[row, k]', batch)}"])
    lines += ["    FWD(t, s)"]
    value = "t[e]" if fwd_scale == 1.0 else "t[e] * S0"
    value = _step_call(1, steps[1], value, batch)
    if inv_scale != 1.0:
        value = f"{value} * S1"
    if value != "t[e]":  # the identity pass between the transforms is left out
        lines += _loop(layout, "SE", "H", [f"t[e] = {value}"])
    lines += ["    INV(t, s)"]
    lines += _loop(layout, "EPT", "N", [f"y[row, k] = {_step_call(2, steps[2], element, batch)}"])
    return "\n".join(lines) + "\n", (fwd_scale, inv_scale)


def _layout(config: KernelConfig) -> dict[str, int]:
    """The register layout the source names: ``FPB`` rows per block; ``EPT`` elements of a row per
    thread, ``ST`` apart (element ``e`` of thread ``tx`` is ``k = tx + e * ST``), and ``SE`` of its
    spectrum alike (``EPT`` for C2C, about half for R2C); ``SS`` complex registers; ``N`` and ``H``
    the lengths of a row and of its spectrum."""
    fwd, inv = config.ffts()
    return {"FPB": fwd.ffts_per_block, "EPT": fwd.elements_per_thread, "ST": fwd.stride,
            "SE": -(-config.spectrum_length // fwd.stride), "SS": max(fwd.storage_size, inv.storage_size),
            "N": config.length, "H": config.spectrum_length}


def _loop(layout: dict[str, int], count: str, bound: str, body: list[str]) -> list[str]:
    """``body`` for each of the ``count`` elements ``k`` a thread of a live row holds, checked
    against ``bound`` where the threads hold more than the row has."""
    head = ["    if live:", f"        for e in range({count}):", "            k = tx + e * ST"]
    if layout[count] * layout["ST"] != layout[bound]:
        head += [f"            if k < {bound}:"]
        body = ["    " + b for b in body]
    return head + ["            " + b for b in body]


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
    before ``k``) as its form takes them, converted to the element type (``E`` of the row, ``EC``
    of the spectrum for the pointwise step)."""
    if step is None:
        return element
    form = Form(step.form)
    args = [element]
    if form.takes_data_element:
        args.append(f"d{j}[k]" if step.data == "row" else f"d{j}[row, k]")
    if form.takes_index:
        args += [f"i{a}" for a in range(batch)] + ["k"]
    return f"{'EC' if j == 1 else 'E'}(F{j}({', '.join(args)}))"


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
        "cuda": cuda, "FWD": fwd, "INV": inv, "VT": fwd.value_type, "RT": real, "E": element,
        "EC": from_dtype(np.dtype(config.spectrum_dtype)), "S0": real(s0), "S1": real(s1), **_layout(config),
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
    exec(compile(source, f"<fftfuse chain kernel {config.fft_type} n={config.length}>", "exec"), namespace)
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
        current one); ``data``: each step's array or None. Returns a new CuPy array of the
        operand's shape and dtype (real for a real operand)."""
        import cupy
        from numba import cuda

        n = self.config.length
        rows = operand.size // n
        grid = (rows + self.config.ffts_per_block - 1) // self.config.ffts_per_block
        on = cupy_stream(stream)
        with cupy.cuda.Device(self.device_id), on:
            result = cupy.empty(operand.shape, operand.dtype)  # from the pool, in this stream's order
            args = [operand.reshape(rows, n), result.reshape(rows, n)]
            for step, array, length in zip(self.config.steps, data, self.config.step_lengths()):
                if step is not None and step.data:
                    args.append(array.reshape(length) if step.data == "row" else array.reshape(rows, length))
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
