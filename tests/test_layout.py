"""plan_problem: the buffers cuFFT walks, their geometry, and the offsets callbacks see.

The property test at the end is the one that matters most: for random operands, every element
cuFFT addresses through (embed, stride, dist) is the element at ``Layout.offset(index)``, on
the input and on the output side, so a callback's ``offset`` means the same element on the GPU
(cuFFT's walk) and on the CPU (the executor's walk of the layout).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nvmath.fft._layout import (
    CufftGeometry,
    Layout,
    LayoutError,
    batch_order,
    cufft_geometry,
    plan_problem,
)


def element_strides(a: np.ndarray) -> tuple[int, ...]:
    return tuple(s // a.itemsize for s in a.strides)


def plan(kind: str, a: np.ndarray, axes=None, **options):
    return plan_problem(kind, a.shape, element_strides(a), a.dtype.name, axes, **options)


def complex_array(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.complex64)


# ---------------------------------------------------------------------------------------------
# Geometry of typical operands
# ---------------------------------------------------------------------------------------------


def test_contiguous_batch():
    p = plan("fft", complex_array(4, 16), axes=(-1,))
    assert not p.copy_input and p.input == p.operand
    assert p.axes == (1,) and p.batch_axes == (0,) and p.batch == 4
    assert p.input_geometry == CufftGeometry(embed=(16,), stride=1, dist=16)
    assert p.output == Layout((4, 16), (16, 1))
    assert p.output_geometry == CufftGeometry(embed=(16,), stride=1, dist=16)


def test_transposed_operand_is_used_where_it_lies():
    x = complex_array(16, 4).T  # shape (4, 16), strides (1, 4)
    p = plan("fft", x, axes=(-1,))
    assert not p.copy_input and p.input.strides == (1, 4)
    assert p.input_geometry == CufftGeometry(embed=(16,), stride=4, dist=1)
    assert p.output.strides == (1, 4)  # "natural": the result keeps the operand's memory order


def test_strided_operand():
    x = complex_array(6, 48)[:, ::2]  # strides (48, 2)
    p = plan("fft", x, axes=(-1,))
    assert not p.copy_input
    assert p.input_geometry == CufftGeometry(embed=(24,), stride=2, dist=48)
    assert p.output == Layout((6, 24), (24, 1))


def test_leading_axis():
    p = plan("fft", complex_array(32, 5), axes=(0,))
    assert not p.copy_input and p.axes == (0,) and p.batch_axes == (1,)
    assert p.input_geometry == CufftGeometry(embed=(32,), stride=5, dist=1)
    assert p.output_geometry == CufftGeometry(embed=(32,), stride=5, dist=1)


def test_non_adjacent_fft_axes():
    x = complex_array(8, 6, 10)[:, :, ::2]  # shape (8, 6, 5), strides (60, 10, 2)
    p = plan("fft", x, axes=(0, 2))
    assert not p.copy_input and p.axes == (0, 2) and p.batch_axes == (1,)
    assert p.input_geometry == CufftGeometry(embed=(8, 30), stride=2, dist=10)
    assert p.output == Layout((8, 6, 5), (30, 5, 1))
    assert p.output_geometry == CufftGeometry(embed=(8, 30), stride=1, dist=5)


def test_non_collapsible_batch_forces_copy():
    x = complex_array(4, 10, 16)[:, :5, :]  # batch strides (160, 16): 16 * 5 != 160
    assert cufft_geometry(Layout(x.shape, element_strides(x)), (2,), (0, 1)) is None
    p = plan("fft", x, axes=(-1,))
    assert p.copy_input
    assert p.input == Layout((4, 5, 16), (80, 16, 1))
    assert p.input_geometry == CufftGeometry(embed=(16,), stride=1, dist=16)


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.broadcast_to(complex_array(16), (4, 16)),  # zero stride
        lambda: np.lib.stride_tricks.as_strided(complex_array(32), (4, 16), (8, 8)),  # rows overlap
        lambda: np.lib.stride_tricks.as_strided(complex_array(32), (16, 4), (8, 8)).T,
    ],
    ids=["broadcast", "overlapping", "overlapping-transposed"],
)
def test_overlapping_or_broadcast_operand_forces_copy(make):
    p = plan("fft", make(), axes=(-1,))
    assert p.copy_input
    assert 0 not in p.input.strides and p.input.span == p.input.size


def test_negative_strides_force_copy():
    p = plan("fft", complex_array(4, 16)[:, ::-1], axes=(-1,))
    assert p.copy_input and p.input == Layout((4, 16), (16, 1))


@pytest.mark.parametrize(
    "kind, shape, strides, axes",
    [
        ("fft", (1, 5), (2, 4), (1, 0)),  # innermost FFT axis of length 1, stride 2
        ("ifft", (1, 2, 4), (4, 8, 1), (0, 1)),
        ("rfft", (1, 3), (6, 2), (1, 0)),  # the output's length-1 axis used to fail the plan
        ("fft", (3, 1, 4), (4, 7, 1), (0, 1, 2)),  # a length-1 middle axis with an odd stride
    ],
)
def test_length_one_fft_axes_take_any_stride(kind, shape, strides, axes):
    dtype = "float32" if kind == "rfft" else "complex64"
    p = plan_problem(kind, shape, strides, dtype, axes)
    order = batch_order(p.input, p.batch_axes)
    for layout, geometry in ((p.input, p.input_geometry), (p.output, p.output_geometry)):
        for index, offset in cufft_offsets(layout, geometry, p.axes, order).items():
            assert offset == layout.offset(index)


def test_c2c_axes_follow_memory_order():
    x = complex_array(8, 6, 10).transpose(2, 0, 1)  # shape (10, 8, 6), strides (1, 60, 10)
    assert plan("fft", x).axes == (1, 2, 0)
    assert plan("ifft", x, axes=(0, 2)).axes == (2, 0)
    assert not plan("fft", x).copy_input


def test_r2c_keeps_the_axes_as_given():
    x = np.zeros((8, 6, 10), np.float32).transpose(2, 0, 1)
    p = plan("rfft", x, axes=(0, 1))
    assert p.axes == (0, 1)  # the last given axis is the halved one
    assert p.output.shape == (10, 5, 6)


@pytest.mark.parametrize("n, half", [(16, 9), (15, 8), (1, 1), (2, 2)])
def test_r2c_output_shape(n, half):
    p = plan("rfft", np.zeros((4, n), np.float64), axes=(-1,))
    assert (p.fft_type, p.direction) == ("R2C", "forward")
    assert (p.input_dtype, p.output_dtype) == ("float64", "complex128")
    assert p.output.shape == (4, half) and p.fft_lengths == (n,)


@pytest.mark.parametrize("m, parity, n", [(9, "even", 16), (9, "odd", 17), (2, "even", 2), (1, "odd", 1)])
def test_c2r_output_shape_and_parity(m, parity, n):
    p = plan("irfft", complex_array(3, m), axes=(-1,), last_axis_parity=parity)
    assert (p.fft_type, p.direction) == ("C2R", "inverse")
    assert (p.input_dtype, p.output_dtype) == ("complex64", "float32")
    assert p.output.shape == (3, n) and p.fft_lengths == (n,)
    assert p.copy_input  # cuFFT's C2R overwrites its input


def test_c2r_multi_axis_lengths():
    p = plan("irfft", complex_array(4, 6, 5), axes=(0, 2), last_axis_parity="odd")
    assert p.fft_lengths == (4, 9) and p.output.shape == (4, 6, 9)


def test_default_axes_are_the_last_three():
    assert plan("fft", complex_array(2, 3, 4, 5)).axes == (1, 2, 3)
    assert plan("fft", complex_array(2, 3)).axes == (0, 1)


def test_optimized_result_layout_puts_fft_axes_innermost():
    x = complex_array(16, 4).T
    p = plan("fft", x, axes=(-1,), result_layout="optimized")
    assert p.output.strides == (16, 1)
    p = plan("fft", complex_array(6, 8, 5), axes=(1,), result_layout="optimized")
    assert p.output == Layout((6, 8, 5), (40, 1, 8))
    assert p.output_geometry == CufftGeometry(embed=(8,), stride=1, dist=8)


def test_inplace_c2c_writes_the_input():
    p = plan("fft", complex_array(4, 16), axes=(-1,), inplace=True)
    assert p.inplace and p.output == p.input == p.operand


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, array, axes, options, match",
    [
        ("fft", complex_array(2, 3, 4, 5), (0, 1, 2, 3), {}, "4-D FFT"),
        ("fft", complex_array(2, 3), (), {}, "0-D FFT"),
        ("fft", complex_array(4, 4), (1, -1), {}, "repeat an axis"),
        ("fft", complex_array(4, 4), (2,), {}, "out of range"),
        ("rfft", np.zeros((4, 8)), (-1,), {"inplace": True}, "in-place"),
        ("irfft", complex_array(4, 8), (-1,), {"inplace": True}, "in-place"),
        ("rfft", complex_array(4, 8), (-1,), {}, "real operand"),
        ("irfft", np.zeros((4, 8), np.float32), (-1,), {}, "complex operand"),
        ("fft", np.zeros(8, np.int32), None, {}, "not supported"),
        ("irfft", complex_array(4, 1), (-1,), {}, "gives a result of length 0"),
        ("irfft", complex_array(4, 5), (-1,), {"last_axis_parity": "odd-ish"}, "last_axis_parity"),
        ("fft", complex_array(4, 8), (-1,), {"result_layout": "fancy"}, "result_layout"),
        ("fft", complex_array(4, 10, 16)[:, :5, :], (-1,), {"inplace": True}, "inplace=True"),
        ("fft", complex_array(4, 0), (-1,), {}, "empty"),
        ("dct", complex_array(4), None, {}, "unknown transform"),
    ],
)
def test_errors(kind, array, axes, options, match):
    with pytest.raises(LayoutError, match=match):
        plan(kind, array, axes, **options)


def test_zero_dimensional_operand():
    with pytest.raises(LayoutError, match="0-dimensional"):
        plan_problem("fft", (), (), "complex64")


# ---------------------------------------------------------------------------------------------
# Property: cuFFT's walk of (embed, stride, dist) visits exactly Layout.offset(index)
# ---------------------------------------------------------------------------------------------


def cufft_offsets(layout: Layout, geometry: CufftGeometry, fft_axes, order) -> dict[tuple[int, ...], int]:
    """Offset cuFFT computes for each logical index: ``b * dist + stride * (row-major FFT
    index over embed)``, ``b`` counting the batch axes in ``order`` (outermost first)."""
    offsets = {}
    for index in itertools.product(*(range(n) for n in layout.shape)):
        fft_part = 0
        for k, axis in enumerate(fft_axes):
            fft_part = fft_part * (geometry.embed[k] if k else 1) + index[axis]
        b = 0
        for axis in order:
            b = b * layout.shape[axis] + index[axis]
        offsets[index] = b * geometry.dist + geometry.stride * fft_part
    return offsets


def random_operand(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, tuple[int, ...]]:
    ndim = int(rng.integers(1, 5))
    dtype = np.float32 if kind == "rfft" else np.complex64
    shape = [int(rng.integers(1, 6)) for _ in range(ndim)]
    steps = [int(rng.integers(1, 3)) for _ in range(ndim)]
    base = np.zeros([n * step for n, step in zip(shape, steps)], dtype)
    view = base[tuple(slice(None, None, step) for step in steps)].transpose(rng.permutation(ndim))
    if rng.random() < 0.15:
        view = view[tuple(slice(None, None, -1) if rng.random() < 0.5 else slice(None) for _ in range(ndim))]
    if rng.random() < 0.1:
        axis = int(rng.integers(ndim))
        view = np.broadcast_to(view.take([0], axis=axis), view.shape[:axis] + (3,) + view.shape[axis + 1:])
    nax = int(rng.integers(1, min(3, view.ndim) + 1))
    axes = tuple(int(a) for a in rng.choice(view.ndim, size=nax, replace=False))
    if kind == "irfft" and view.shape[axes[-1]] < 2:
        view = np.zeros(view.shape[: axes[-1]] + (2,) + view.shape[axes[-1] + 1:], dtype)
    return view, axes


@pytest.mark.parametrize("kind", ["fft", "ifft", "rfft", "irfft"])
def test_cufft_walk_equals_layout_offsets(kind):
    rng = np.random.default_rng({"fft": 1, "ifft": 2, "rfft": 3, "irfft": 4}[kind])
    checked = 0
    for _ in range(300):
        x, axes = random_operand(rng, kind)
        options = {
            "last_axis_parity": str(rng.choice(["even", "odd"])),
            "result_layout": str(rng.choice(["natural", "optimized"])),
        }
        p = plan(kind, x, axes, **options)
        order = batch_order(p.input, p.batch_axes)
        assert batch_order(p.output, p.batch_axes) == order, "both sides must count batches alike"
        for layout, geometry in ((p.input, p.input_geometry), (p.output, p.output_geometry)):
            walked = cufft_offsets(layout, geometry, p.axes, order)
            for index, offset in walked.items():
                assert offset == layout.offset(index), (kind, x.shape, element_strides(x), axes, index)
            # every element has its own offset, inside the buffer
            assert len(set(walked.values())) == layout.size
            assert max(walked.values()) < layout.span
            checked += 1
    assert checked == 600
