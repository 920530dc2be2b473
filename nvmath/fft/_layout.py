"""From an FFT problem to the buffers cuFFT walks: the part both executors share.

Everything is in elements, never bytes. A ``Layout`` is a logical shape with element strides
relative to a buffer's first element; a callback's ``offset`` is ``sum(index * stride)`` in the
layout of the buffer it reads (prolog: the FFT input, epilog: the FFT output). The GPU and CPU
executors take the same ``FFTProblem`` decisions, so a callback that indexes user data by
``offset`` means the same element on both.

cuFFT's advanced layout describes a batch of FFTs with one stride per FFT dimension (each an
integer multiple of the next, by at least its length) and a single batch distance. A buffer
whose strides fit is used as it is; any other is copied into a dense buffer first.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

from fftfuse_compiler.dtypes import COMPLEX_OF, REAL_OF


@dataclasses.dataclass(frozen=True)
class Layout:
    """Shape and element strides of one buffer, in the operand's axis order."""

    shape: tuple[int, ...]
    strides: tuple[int, ...]

    @functools.cached_property  # asked on every execution
    def span(self) -> int:
        """Elements from the first to one past the last addressed element."""
        if 0 in self.shape:
            return 0
        return 1 + sum((n - 1) * s for n, s in zip(self.shape, self.strides))

    @property
    def size(self) -> int:
        out = 1
        for n in self.shape:
            out *= n
        return out

    def offset(self, index: Sequence[int]) -> int:
        return sum(i * s for i, s in zip(index, self.strides))


def dense_strides(shape: Sequence[int], order: Sequence[int]) -> tuple[int, ...]:
    """Strides of a dense buffer whose axes, from outermost to innermost, are ``order``."""
    strides = [0] * len(shape)
    step = 1
    for axis in reversed(order):
        strides[axis] = step
        step *= max(shape[axis], 1)
    return tuple(strides)


def outer_batch_axis(shape: Sequence[int], strides: Sequence[int], fft_axes: Sequence[int]) -> int | None:
    """The batch axis (not transformed, longer than 1) whose stride is largest, or None: where
    a batch is cut into pieces of whole transforms, each piece lying together in memory.

    >>> outer_batch_axis((4, 8, 16), (16, 64, 1), (2,)), outer_batch_axis((1, 16), (16, 1), (1,))
    (1, None)
    """
    batch = [a for a in range(len(shape)) if a not in fft_axes and shape[a] > 1]
    return max(batch, key=lambda a: abs(strides[a])) if batch else None


def stride_order(layout: Layout) -> tuple[int, ...]:
    """Axes from outermost (largest stride) to innermost; ties keep the axis order."""
    return tuple(sorted(range(len(layout.shape)), key=lambda a: (-layout.strides[a], a)))


@dataclasses.dataclass(frozen=True)
class CufftGeometry:
    """The arguments of cufftXtMakePlanMany for one side (input or output)."""

    embed: tuple[int, ...]
    stride: int
    dist: int


def cufft_geometry(layout: Layout, fft_axes: Sequence[int], batch_axes: Sequence[int]) -> CufftGeometry | None:
    """cuFFT's (embed, stride, dist) for ``layout``, or None where cuFFT cannot walk it."""
    strides = [layout.strides[a] for a in fft_axes]
    sizes = [layout.shape[a] for a in fft_axes]
    if any(s <= 0 for s, n in zip(strides, sizes) if n > 1):
        return None
    # A length-1 FFT axis may carry any stride. Give it one that keeps the embeds exact ratios of
    # neighbouring strides (which is what makes cuFFT's offsets equal the layout's): its outer
    # neighbour's, or, ahead of the first longer axis, the tight stride over that axis.
    longer = [k for k, n in enumerate(sizes) if n > 1]
    for k in range(len(sizes)):
        if sizes[k] == 1:
            if not longer:
                strides[k] = 1
            elif k < longer[0]:
                strides[k] = strides[longer[0]] * sizes[longer[0]]
            else:
                strides[k] = strides[k - 1]
    embed = [sizes[0]]
    for k in range(1, len(fft_axes)):
        outer, inner = strides[k - 1], strides[k]
        if outer % inner or outer // inner < sizes[k]:
            return None
        embed.append(outer // inner)
    stride = strides[-1]
    # Batch axes must collapse into one: each stride is the next one's times its length.
    live = sorted((a for a in batch_axes if layout.shape[a] > 1), key=lambda a: layout.strides[a])
    for inner, outer in zip(live, live[1:]):
        if layout.strides[outer] != layout.strides[inner] * layout.shape[inner]:
            return None
    if live:
        dist = layout.strides[live[0]]
        if dist <= 0:
            return None
    else:
        dist = embed[0] * stride
        for e in embed[1:]:
            dist *= e
    return CufftGeometry(tuple(embed), stride, dist)


def batch_order(layout: Layout, batch_axes: Sequence[int]) -> tuple[int, ...]:
    """Batch axes of length > 1 from outermost to innermost, as cuFFT counts batches."""
    live = [a for a in batch_axes if layout.shape[a] > 1]
    return tuple(sorted(live, key=lambda a: -layout.strides[a]))


TRANSFORMS = {
    # name: (fft type, direction)
    "fft": ("C2C", "forward"),
    "ifft": ("C2C", "inverse"),
    "rfft": ("R2C", "forward"),
    "irfft": ("C2R", "inverse"),
}


class LayoutError(ValueError):
    """The operand, axes or options describe an FFT this library does not run."""


# nvmath-python's name. Strides cuFFT cannot walk are copied into a dense buffer here, never
# refused, so code that catches it to transpose and retry keeps working and never needs to.
UnsupportedLayoutError = LayoutError


@dataclasses.dataclass(frozen=True)
class FFTProblem:
    """Everything both executors decide alike about one FFT call."""

    fft_type: str  # "C2C", "R2C", "C2R"
    direction: str  # "forward" or "inverse"
    input_dtype: str
    output_dtype: str
    axes: tuple[int, ...]  # FFT axes, outermost FFT dimension first (cuFFT's n[] order)
    batch_axes: tuple[int, ...]
    fft_lengths: tuple[int, ...]  # logical transform lengths n[] (real-side length for R2C/C2R)
    operand: Layout
    input: Layout  # the buffer cuFFT reads: the operand itself or a dense copy
    output: Layout  # the buffer cuFFT writes
    copy_input: bool
    inplace: bool

    def __hash__(self) -> int:
        # Plan-cache lookups hash the problem on every call: compute it once.
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(dataclasses.astuple(self))
            object.__setattr__(self, "_hash", cached)
        return cached

    @property
    def input_geometry(self) -> CufftGeometry:
        geometry = cufft_geometry(self.input, self.axes, self.batch_axes)
        assert geometry is not None
        return geometry

    @property
    def output_geometry(self) -> CufftGeometry:
        geometry = cufft_geometry(self.output, self.axes, self.batch_axes)
        assert geometry is not None
        return geometry

    @property
    def batch(self) -> int:
        out = 1
        for a in self.batch_axes:
            out *= self.operand.shape[a]
        return out


def normalize_axes(axes: Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    if axes is None:
        if ndim == 0:
            raise LayoutError("cannot transform a 0-dimensional operand")
        axes = range(max(ndim - 3, 0), ndim)
    try:
        out = tuple(int(a) + ndim if int(a) < 0 else int(a) for a in axes)
    except TypeError:
        raise LayoutError(f"axes must be a sequence of integers, got {axes!r}") from None
    if not 1 <= len(out) <= 3:
        raise LayoutError(f"axes={tuple(axes)} gives a {len(out)}-D FFT; cuFFT runs 1-D to 3-D transforms")
    if any(not 0 <= a < ndim for a in out):
        raise LayoutError(f"axes={tuple(axes)} are out of range for an operand of {ndim} dimensions")
    if len(set(out)) != len(out):
        raise LayoutError(f"axes={tuple(axes)} repeat an axis")
    return out


def plan_problem(
    transform: str,
    shape: Sequence[int],
    strides: Sequence[int],
    dtype: str,
    axes: Sequence[int] | None = None,
    *,
    inplace: bool = False,
    last_axis_parity: str = "even",
    result_layout: str = "natural",
) -> FFTProblem:
    """Decide the buffers for ``transform`` ("fft", "ifft", "rfft", "irfft") on one operand.

    ``strides`` are the operand's strides in elements. ``result_layout`` "natural" gives the
    result the operand's axis order (dense); "optimized" puts the FFT axes innermost.
    """
    if transform not in TRANSFORMS:
        raise LayoutError(f"unknown transform {transform!r}; expected one of {sorted(TRANSFORMS)}")
    fft_type, direction = TRANSFORMS[transform]
    shape, strides = tuple(int(n) for n in shape), tuple(int(s) for s in strides)
    ndim = len(shape)
    fft_axes = normalize_axes(axes, ndim)
    if TRANSFORMS[transform][0] == "C2C":
        # A C2C transform is the same in any axis order: take the one memory already has.
        fft_axes = tuple(sorted(fft_axes, key=lambda a: -strides[a]))
    batch_axes = tuple(a for a in range(ndim) if a not in fft_axes)
    if any(shape[a] == 0 for a in range(ndim)):
        raise LayoutError(f"operand of shape {shape} is empty; nothing to transform")

    input_dtype, output_dtype = _dtypes(fft_type, dtype)
    last = fft_axes[-1]
    out_shape = list(shape)
    lengths = [shape[a] for a in fft_axes]
    if fft_type == "R2C":
        out_shape[last] = shape[last] // 2 + 1
    elif fft_type == "C2R":
        if last_axis_parity not in ("even", "odd"):
            raise LayoutError(f"last_axis_parity must be 'even' or 'odd', got {last_axis_parity!r}")
        n = 2 * (shape[last] - 1) + (last_axis_parity == "odd")
        if n < 1:
            raise LayoutError(f"a C2R transform of {shape[last]} complex elements along the last FFT axis gives a "
                              f"result of length 0 there (last_axis_parity='even': 2*(m-1)); pass at least 2 "
                              f"elements, or last_axis_parity='odd' for a result of length 2*m-1")
        out_shape[last] = n
        lengths[-1] = n

    if inplace and fft_type != "C2C":
        raise LayoutError(f"in-place transforms are supported for C2C only, not {fft_type}; set inplace=False")

    operand = Layout(shape, strides)
    natural = cufft_geometry(operand, fft_axes, batch_axes) is not None and _no_overlap(operand)
    half = input_dtype in HALF_DTYPES
    if half and fft_type == "R2C" and natural and cufft_geometry(operand, fft_axes, batch_axes).stride != 1:
        natural = False  # cuFFT's half R2C reads its real input at unit stride only: copy it so
    # cuFFT's C2R overwrites its input, and a real operand of a C2C transform must become
    # complex first: both read a private copy.
    copy_input = fft_type == "C2R" or not natural or dtype != input_dtype
    if inplace and dtype != input_dtype:
        raise LayoutError(f"inplace=True needs a complex operand to hold the complex result, got {dtype}; "
                          "pass a complex operand or set inplace=False")
    if inplace and copy_input:
        why = ("its elements overlap" if not _no_overlap(operand) else
               "cuFFT's layout needs the batch axes to form one run of equally spaced FFTs, and these do not")
        raise LayoutError(
            f"inplace=True cannot transform a {dtype} operand of shape {shape} (strides {strides} elements) over "
            f"axes {fft_axes} where it lies: {why}. Set inplace=False (the result is a new array), or choose "
            "axes whose batch axes are contiguous in memory"
        )
    if copy_input:
        order = stride_order(operand) if natural else batch_axes + fft_axes
        inp = Layout(shape, dense_strides(shape, order))
    else:
        inp = operand
    if inplace:
        out = inp
    else:
        if result_layout not in ("natural", "optimized"):
            raise LayoutError(f"result_layout must be 'natural' or 'optimized', got {result_layout!r}")
        order = stride_order(inp)
        if result_layout == "optimized" or (half and fft_type == "C2R"):
            # (cuFFT's half C2R writes its real output at unit stride only: FFT axes innermost.)
            order = tuple(a for a in order if a in batch_axes) + fft_axes
        out = Layout(tuple(out_shape), dense_strides(out_shape, order))
        # cuFFT counts batches in one order for both sides: keep the input's batch order.
        if batch_order(out, batch_axes) != batch_order(inp, batch_axes):
            order = batch_order(inp, batch_axes) + fft_axes
            out = Layout(tuple(out_shape), dense_strides(out_shape, order))
    problem = FFTProblem(
        fft_type=fft_type, direction=direction, input_dtype=input_dtype, output_dtype=output_dtype,
        axes=fft_axes, batch_axes=batch_axes, fft_lengths=tuple(lengths), operand=operand,
        input=inp, output=out, copy_input=copy_input, inplace=inplace,
    )
    assert cufft_geometry(inp, fft_axes, batch_axes) is not None
    assert cufft_geometry(out, fft_axes, batch_axes) is not None
    if half:
        check_half(dtype, problem.fft_lengths, (inp.span, out.span))
    return problem


def _dtypes(fft_type: str, dtype: str) -> tuple[str, str]:
    if dtype not in REAL_OF:
        hint = ("; bfloat16 has no cuFFT transform: convert it to float16 or float32" if dtype == "bfloat16" else
                "")
        raise LayoutError(
            f"operand dtype {dtype} is not supported; use float32, float64, complex64 or complex128 (or, at "
            f"power-of-two lengths, half precision: float16, and complex32 as PyTorch's or float16 pairs){hint}"
        )
    if fft_type == "C2C":
        c = COMPLEX_OF[dtype]
        return c, c
    if fft_type == "R2C":
        if dtype.startswith("complex"):
            raise LayoutError(f"rfft needs a real operand, got {dtype}; use fft for complex input")
        return dtype, COMPLEX_OF[dtype]
    if not dtype.startswith("complex"):
        raise LayoutError(f"irfft needs a complex operand, got {dtype}; use rfft/fft for real input")
    return dtype, REAL_OF[dtype]


HALF_DTYPES = ("float16", "complex32")
_HALF_MAX_ELEMENTS = 1 << 32  # cuFFT's half-precision transforms address at most 4 Gi elements


def check_half(dtype: str, lengths: Sequence[int], spans: Sequence[int]) -> None:
    """cuFFT transforms half precision only at power-of-two lengths, within 4 Gi elements: refuse
    anything else here, before cuFFT does with a bare status (both executors keep the rule, so a
    program that runs on the CPU runs on the GPU)."""
    odd = [n for n in lengths if n & (n - 1)]
    if odd:
        raise LayoutError(
            f"half-precision ({dtype}) FFTs need power-of-two lengths (cuFFT's rule), but the transform lengths "
            f"are {tuple(lengths)} ({', '.join(map(str, odd))} not a power of two). Pad the axes to a power of two "
            f"(e.g. {', '.join(str(1 << (n - 1).bit_length()) for n in odd)}), or convert the operand to "
            f"{'float32' if dtype == 'float16' else 'complex64'}"
        )
    if max(spans) > _HALF_MAX_ELEMENTS:
        raise LayoutError(
            f"a half-precision ({dtype}) FFT spans {max(spans)} elements; cuFFT transforms half precision over at "
            f"most {_HALF_MAX_ELEMENTS} (4 Gi). Split the batch, or convert the operand to single precision"
        )


def _no_overlap(layout: Layout) -> bool:
    """True when no two elements share memory (broadcast or overlapping views do)."""
    axes = [a for a in stride_order(layout) if layout.shape[a] > 1]
    extent = 1
    for a in reversed(axes):
        if layout.strides[a] < extent:
            return False
        extent = layout.strides[a] * layout.shape[a]
    return True


def data_layout_matches(data_shape: Sequence[int], data_strides: Sequence[int], target: Layout) -> bool:
    """Whether user data already sits at the target's offsets (length-1 axes don't matter)."""
    if tuple(data_shape) != target.shape:
        return False
    return all(n == 1 or s == t for n, s, t in zip(target.shape, data_strides, target.strides))
