"""Half precision (float16, complex32): how its operands are read and how each executor runs it.

NumPy and CuPy have no complex32. Their spelling of a complex32 array is a float16 array whose
last axis has length 2 and unit stride, holding (real, imaginary): a float16 operand is read so
by the transforms that take complex input (``fft``, ``ifft``, ``irfft``, ``fft_type`` "C2C" or
"C2R"), and complex32 results come back so. PyTorch's ``complex32`` tensors are read and returned
as themselves (``_tensor``).

cuFFT transforms half precision natively (power-of-two lengths, sm_53 and newer; the rules are
checked in ``_layout.check_half`` and ``check_gpu``): that is how the GPU runs a half-precision
FFT without callbacks. cuFFT has no half-precision callback type (its callbacks load and store
single or double precision), and the CPU's FFT engines have no half precision at all: there the
executor runs the single-precision twin of the problem (``promoted``) on a promoted copy of the
input and rounds its result back to half precision (``PromotedCpuExecutor``, and on the GPU,
with callbacks, ``PromotedGpuExecutor``). A callback thus sees the element in single precision,
and its result is rounded to half precision when stored, on either executor.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from fftfuse_compiler.dtypes import HALF_PROMOTED

from ._executor import CallArgs
from ._layout import FFTProblem, Layout, LayoutError
from ._tensor import Tensor, empty_factory, empty_strided

# Transforms whose operand is complex: a NumPy/CuPy float16 operand of theirs holds pairs.
_COMPLEX_INPUT = frozenset({"fft", "ifft", "irfft"})


def is_half(problem: FFTProblem) -> bool:
    """Whether ``problem`` transforms half-precision elements."""
    return problem.input_dtype in HALF_PROMOTED


def operand_dtype(tensor: Tensor, options: Any) -> str:
    """The element type ``options.fft_type`` is checked against: complex32 for a NumPy/CuPy float16
    operand of a type with complex input (it holds float16 pairs), else the operand's dtype."""
    if tensor.dtype == "float16" and tensor.framework != "torch" and options.fft_type in ("C2C", "C2R"):
        return "complex32"
    return tensor.dtype


def complex_operand(tensor: Tensor, transform: str) -> Tensor:
    """``tensor`` as the transform reads it: a NumPy/CuPy float16 operand of a transform with
    complex input is complex32, its last axis the (real, imaginary) pair; anything else as it is."""
    if tensor.pairs or transform not in _COMPLEX_INPUT or tensor.dtype != "float16" or tensor.framework == "torch":
        return tensor
    array = tensor.array
    if array.ndim < 2 or array.shape[-1] != 2 or array.strides[-1] != array.itemsize:
        name = {"fft": "fft()", "ifft": "ifft()", "irfft": "irfft()"}[transform]
        raise LayoutError(
            f"{name} (fft_type {'C2R' if transform == 'irfft' else 'C2C'}) reads a float16 NumPy/CuPy operand as "
            f"complex32: interleaved (real, imaginary) float16 pairs in a last axis of length 2 and unit stride; "
            f"got shape {tuple(array.shape)}, strides {tuple(array.strides)} bytes. Pass pairs (e.g. "
            f"np.stack([x.real, x.imag], axis=-1).astype('float16')), or use rfft() for a real float16 operand"
        )
    return dataclasses.replace(tensor, pairs=True)


def result_pairs(problem: FFTProblem) -> bool:
    """Whether the result array holds complex32 as float16 pairs."""
    return problem.output_dtype == "complex32"


def promoted(problem: FFTProblem) -> FFTProblem:
    """The single-precision twin of a half-precision problem: the same buffers, element for
    element (callback offsets are the same), of float32/complex64."""
    return dataclasses.replace(problem, input_dtype=HALF_PROMOTED[problem.input_dtype],
                               output_dtype=HALF_PROMOTED[problem.output_dtype])


def check_gpu(arch: int, problem: FFTProblem) -> None:
    """cuFFT's half precision needs sm_53 or newer."""
    if arch < 53:
        raise ValueError(
            f"half-precision ({problem.input_dtype}) FFTs need a GPU of compute capability 5.3 or newer (cuFFT's "
            f"rule); this one is sm_{arch}. Convert the operand to {HALF_PROMOTED[problem.input_dtype]}"
        )


def _single_buffer(layout: Layout, half_dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """A new single-precision array of ``layout`` for a half-precision buffer of ``half_dtype``, and
    the view of it that meets the half array element for element (float32 pairs for complex32)."""
    if half_dtype != "complex32":
        single = empty_strided(np, layout.shape, layout.strides, "float32", layout.span)
        return single, single
    flat = np.empty(2 * max(layout.span, 1), np.float32)
    as_strided = np.lib.stride_tricks.as_strided
    single = as_strided(flat.view(np.complex64), layout.shape, tuple(8 * s for s in layout.strides))
    pairs = as_strided(flat, layout.shape + (2,), tuple(8 * s for s in layout.strides) + (4,))
    return single, pairs


class PromotedGpuExecutor:
    """The cuFFT executor of a half-precision problem with callbacks: ``inner`` (a ``GpuPlan`` of
    ``promoted(problem)``, callbacks attached) runs on a single-precision copy of the input, made
    on the launch's stream, and its result is rounded to half precision into the output there."""

    def __init__(self, problem: FFTProblem, inner: Any):
        self.problem, self.inner = problem, inner

    # -- the executor interface (nvmath.fft._executor.Executor) --------------------------------

    def run(self, call: CallArgs) -> None:
        """``GpuPlan.run`` on device pointers: the plan's device and ``call.stream`` are current
        (CuPy's copies below go on it, in order with the FFT)."""
        import cupy

        p = self.problem
        single_in, view_in = _device_single(cupy, p.input, p.input_dtype)
        view_in[...] = _device_half(cupy, call.inp, p.input, p.input_dtype)  # promoted: exact
        single_out, view_out = (single_in, view_in) if p.inplace else _device_single(cupy, p.output, p.output_dtype)
        self.inner.run(call.on(int(single_in.data.ptr), int(single_out.data.ptr)))
        _device_half(cupy, call.out, p.output, p.output_dtype)[...] = view_out  # rounded (beyond half's range: inf)

    def release(self) -> None:
        self.inner.release()

    def free(self) -> None:
        self.inner.free()


def _device_single(cupy: Any, layout: Layout, half_dtype: str) -> tuple[Any, Any]:
    """``_single_buffer`` on the GPU: a new single-precision array of ``layout`` and the view of it
    that meets the half-precision buffer element for element."""
    if half_dtype != "complex32":
        single = empty_strided(cupy, layout.shape, layout.strides, "float32", layout.span)
        return single, single
    flat = cupy.empty(2 * max(layout.span, 1), np.float32)
    strides = tuple(8 * s for s in layout.strides)
    single = cupy.ndarray(layout.shape, np.complex64, memptr=flat.data, strides=strides)
    pairs = cupy.ndarray(layout.shape + (2,), np.float32, memptr=flat.data, strides=strides + (4,))
    return single, pairs


def _device_half(cupy: Any, pointer: int, layout: Layout, half_dtype: str) -> Any:
    """The half-precision buffer of ``layout`` at device ``pointer`` as a CuPy array (complex32:
    float16 pairs), borrowed: the engine owns the memory."""
    item = 4 if half_dtype == "complex32" else 2
    memory = cupy.cuda.UnownedMemory(pointer, max(layout.span, 1) * item, None, cupy.cuda.runtime.getDevice())
    memptr = cupy.cuda.MemoryPointer(memory, 0)
    strides = tuple(item * s for s in layout.strides)
    if half_dtype == "complex32":
        return cupy.ndarray(layout.shape + (2,), np.float16, memptr=memptr, strides=strides + (2,))
    return cupy.ndarray(layout.shape, np.float16, memptr=memptr, strides=strides)


class PromotedCpuExecutor:
    """The CPU executor of a half-precision problem: ``inner`` (a ``CpuExecutor`` of
    ``promoted(problem)``) runs on a single-precision copy of the input, and its result is
    rounded to half precision into the output."""

    def __init__(self, problem: FFTProblem, inner: Any):
        self.problem, self.inner = problem, inner
        out = problem.output
        self._new_output = empty_factory(np, out.shape, out.strides, problem.output_dtype, out.span)

    # -- the executor interface (nvmath.fft._executor.Executor) --------------------------------

    def run(self, call: CallArgs) -> np.ndarray:
        p = self.problem
        out = call.out
        if out is None:  # a new output, as the inner executor's run makes one
            out = self._new_output()
        single_in, view_in = _single_buffer(p.input, p.input_dtype)
        view_in[...] = call.inp  # promoted: exact
        single_out, view_out = (single_in, view_in) if p.inplace else _single_buffer(p.output, p.output_dtype)
        self.inner.run(call.on(single_in, single_out))
        out[...] = view_out  # rounded to half precision (beyond its range: inf)
        return out

    def release(self) -> None:
        self.inner.release()

    def free(self) -> None:
        self.inner.free()
