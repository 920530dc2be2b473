"""Inlined callbacks on the GPU: CUDA C++ source and Python, against float64 NumPy references."""

from __future__ import annotations

import numpy as np
import pytest

import nvmath
from helpers import assert_close, rand
from nvmath.fft import _gpu

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")

FILTER = r"""
__device__ void apply_filter(void* out, unsigned long long offset, float2 v, void* info, void* shared) {
    float2 f = ((float2*)info)[offset];
    ((float2*)out)[offset] = make_float2(v.x * f.x - v.y * f.y, v.x * f.y + v.y * f.x);
}
"""

# Unchanged from a CuPy set_cufft_callbacks user: legacy types, size_t offset, the pointer variable.
CUPY_WINDOW = r"""
#include <cufft.h>
__device__ cufftComplex CB_ConvertInputC(void *dataIn, size_t offset, void *callerInfo, void *sharedPtr) {
    cufftComplex x = ((cufftComplex*)dataIn)[offset];
    float w = ((float*)callerInfo)[offset];
    return make_float2(x.x * w, x.y * w);
}
__device__ cufftCallbackLoadC d_loadCallbackPtr = CB_ConvertInputC;
"""

REAL_WINDOW = r"""
__device__ float window(void* in, unsigned long long offset, void* info, void* shared) {
    return ((float*)in)[offset] * ((float*)info)[offset];
}
"""

SCALE_Z = r"""
__device__ void half(void* out, unsigned long long offset, double2 v, void* info, void* shared) {
    ((double2*)out)[offset] = make_double2(v.x * 0.5, v.y * 0.5);
}
__device__ void unused(void* out, unsigned long long offset, double2 v, void* info, void* shared) {}
"""


def test_source_filter_epilog_and_plan_reuse():
    x, h1, h2 = (rand((64, 256), np.complex64, s) for s in (1, 2, 3))
    gx = cp.asarray(x)
    got = nvmath.fft.fft(gx, axes=[-1], epilog={"source": FILTER, "data": cp.asarray(h1)})
    assert_close(got, np.fft.fft(x.astype(np.complex128), axis=-1) * h1, rtol=1e-4)
    created = _gpu.plan_cache.created
    got = nvmath.fft.fft(gx, axes=[-1], epilog={"source": FILTER, "data": cp.asarray(h2)})
    assert_close(got, np.fft.fft(x.astype(np.complex128), axis=-1) * h2, rtol=1e-4)
    assert _gpu.plan_cache.created == created  # new data, same plan (the data pointer is in a slot)


def test_cupy_style_window_prolog_stateful():
    x, w = rand((32, 512), np.complex64, 4), rand((32, 512), np.float32, 5)
    with nvmath.fft.FFT(cp.asarray(x), axes=[-1]) as f:
        f.plan(prolog={"source": CUPY_WINDOW, "data": cp.asarray(w)})
        got = f.execute()
    assert_close(got, np.fft.fft(x.astype(np.complex128) * w, axis=-1), rtol=1e-4)


def test_source_real_prolog_r2c():
    x, w = rand((16, 1024), np.float32, 6), rand((16, 1024), np.float32, 7)
    got = nvmath.fft.rfft(cp.asarray(x), axes=[-1], prolog={"source": REAL_WINDOW, "data": cp.asarray(w)})
    assert_close(got, np.fft.rfft(x.astype(np.float64) * w, axis=-1), rtol=1e-4)


def test_source_named_complex128_epilog():
    x = rand((8, 128), np.complex128, 8)
    got = nvmath.fft.fft(cp.asarray(x), axes=[-1], epilog={"source": SCALE_Z, "name": "half"})
    assert_close(got, np.fft.fft(x, axis=-1) * 0.5, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_python_prolog_and_epilog_through_thunk(dtype):
    x, w, h = rand((32, 256), dtype, 9), rand((32, 256), np.float32, 10), rand((32, 256), dtype, 11)
    got = nvmath.fft.fft(cp.asarray(x), axes=[-1], prolog={"fn": lambda v, d: v * d, "data": cp.asarray(w)},
                         epilog={"fn": lambda v, d: v * d + 1, "data": cp.asarray(h)})
    want = np.fft.fft(x.astype(np.complex128) * w, axis=-1) * h + 1
    assert_close(got, want, rtol=1e-4 if dtype == "complex64" else 1e-6)


def test_python_real_prolog_c2r():
    y = rand((16, 129), np.complex64, 12)
    y[:, 0] = y[:, 0].real  # a Hermitian spectrum: real DC and Nyquist terms
    y[:, -1] = y[:, -1].real
    got = nvmath.fft.irfft(cp.asarray(y), axes=[-1], prolog=lambda v: v * 2, epilog=lambda r: r * 0.25)
    want = np.fft.irfft(y.astype(np.complex128) * 2, n=256, axis=-1, norm="forward") * 0.25
    assert_close(got, want, rtol=1e-4)
