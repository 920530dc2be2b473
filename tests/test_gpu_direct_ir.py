"""One-expression callbacks written without numba, run by cuFFT: the same bits as numba's route,
and the float64 reference's values (``fftfuse_compiler.direct_ir``; its CPU tests compare PTX)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import nvmath
from fftfuse_compiler import Form
from fftfuse_compiler.cuda_backend import compile_ltoir
from fftfuse_compiler.direct_ir import direct_ir
from helpers import assert_close, rand

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")

SCALE = 0.5
SHAPE = (8, 256)

def raw_filter(data_out, offset, element, user_info, unused):  # nvmath-python's spelling
    data_out[offset] = element * user_info[offset] * SCALE


# (name, function, form, kind, element, data dtype, the float64 reference of the callback)
CASES = [
    ("filter_epilog", lambda x, d: x * d * SCALE, Form.VALUE_DATA, "epilog", "complex64", "complex64",
     lambda x, d: x * d * SCALE),
    ("window_prolog", lambda x, d: x * d - 0.25, Form.VALUE_DATA, "prolog", "complex128", "float64",
     lambda x, d: x * d - 0.25),
    ("raw_filter_epilog", raw_filter, Form.CUFFT, "epilog", "complex64", "complex64", lambda x, d: x * d * SCALE),
    ("matched_filter", lambda x, d: x * d.conjugate(), Form.VALUE_DATA, "epilog", "complex64", "complex64",
     lambda x, d: x * np.conj(d)),
    ("negated_scale", lambda x: -x * 3 + 1j, Form.VALUE, "epilog", "complex128", None, lambda x, d: -x * 3 + 1j),
    ("real_window_prolog", lambda x, d: x * d / 4.0, Form.VALUE_DATA, "prolog", "float32", "float32",
     lambda x, d: x * d / 4.0),
    ("real_epilog", lambda x: (x - 1.5) * SCALE, Form.VALUE, "epilog", "float64", None, lambda x, d: (x - 1.5) * SCALE),
]


def _transform(kind: str, element: str):
    """The FFT that has ``element`` on the callback's side, and its NumPy reference."""
    if element.startswith("float"):
        if kind == "prolog":
            return nvmath.fft.rfft, np.fft.rfft, element, SHAPE
        unnormalized = functools.partial(np.fft.irfft, norm="forward")  # cuFFT scales neither way
        return nvmath.fft.irfft, unnormalized, "complex64" if element == "float32" else "complex128", \
            (SHAPE[0], SHAPE[1] // 2 + 1)
    return nvmath.fft.fft, np.fft.fft, element, SHAPE


@pytest.mark.parametrize("name, fn, form, kind, element, user, reference", CASES, ids=[c[0] for c in CASES])
def test_direct_and_numba_routes_give_the_same_bits_through_cufft(name, fn, form, kind, element, user, reference):
    assert direct_ir(fn, kind, form, element, user, indirect=False, narrow=True) is not None
    arch = int("".join(map(str, cp.cuda.Device().compute_capability)))
    compile_ = nvmath.fft.compile_prolog if kind == "prolog" else nvmath.fft.compile_epilog
    direct = compile_(fn, element, user, compute_capability=arch)
    through_numba, _ = compile_ltoir(fn, kind, form, element, user, arch, narrow=True)
    assert direct != through_numba  # two routes, two modules

    transform, np_transform, operand_dtype, operand_shape = _transform(kind, element)
    x = rand(operand_shape, operand_dtype, 1)
    if transform is nvmath.fft.irfft:  # a real signal's spectrum: C2R ignores what does not fit one
        x = np.fft.rfft(rand(SHAPE, element, 1), axis=-1).astype(operand_dtype)
    data_shape = operand_shape if kind == "prolog" else (np_transform(x, axis=-1).shape if element.startswith("float")
                                                          else operand_shape)
    d = rand(data_shape, user, 2) if user else None
    gx, gd = cp.asarray(x), cp.asarray(d) if user else None

    def run(ltoir: bytes):
        spec = {"ltoir": ltoir, **({"data": gd.data.ptr} if user else {})}
        return transform(gx, axes=[-1], **{kind: spec})

    got = run(direct)
    cp.testing.assert_array_equal(got, run(through_numba))
    x64 = x.astype(np.complex128 if operand_dtype.startswith("complex") else np.float64)
    d64 = d.astype(np.complex128 if user.startswith("complex") else np.float64) if user else None
    if kind == "prolog":
        want = np_transform(reference(x64, d64), axis=-1)
    else:
        want = reference(np_transform(x64, axis=-1), d64)
    assert_close(got, want, np.dtype(element))


def test_a_broadcast_filter_through_the_public_api():
    # One filter row for every row: the data's position is decoded from the offset.
    x, h = rand((64, 1000), "complex64", 3), rand(1000, "complex64", 4)
    got = nvmath.fft.fft(cp.asarray(x), axes=[-1], epilog={"fn": lambda v, f: v * f - 0.5, "data": cp.asarray(h)})
    assert_close(got, np.fft.fft(x.astype(np.complex128), axis=-1) * h - 0.5, np.dtype("complex64"))
