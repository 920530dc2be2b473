"""The reused stateless path on the GPU (marked gpu): each call's data laid out anew, each call's
input copied, each call's stream, against NumPy float64 references."""

from __future__ import annotations

import numpy as np
import pytest

import nvmath

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")

from helpers import assert_close, rand  # noqa: E402


def filter_by_offset(data_out, offset, element, user_info, unused):  # cuFFT's form: it indexes the data
    data_out[offset] = element * user_info[offset]


def test_reruns_lay_out_each_calls_data_anew():
    x = cp.asarray(rand((32, 256), "complex64", 1))
    plain = np.fft.fft(cp.asnumpy(x).astype(np.complex128), axis=-1)
    for seed in (2, 3, 2):  # later calls reuse the first call's engine
        w = rand((32, 256), "complex64", seed)
        d = cp.asarray(np.asfortranarray(w))  # not the layout the offsets walk: copied on each call
        got = nvmath.fft.fft(x, axes=[-1], epilog={"fn": filter_by_offset, "data": d})
        assert_close(got, plain * w, "complex64")


def test_reruns_copy_each_calls_input():
    for seed in (4, 5, 6):
        xh = rand((16, 129), "complex128", seed)  # C2R overwrites its input: cuFFT reads a copy
        got = nvmath.fft.irfft(cp.asarray(xh), axes=[-1], epilog=lambda v: v * 0.5)
        assert_close(got, np.fft.irfft(xh, n=256, axis=-1, norm="forward") * 0.5, "float64")
        rh = rand((16, 256), "float32", seed)  # promoted to complex: a copy too
        got = nvmath.fft.fft(cp.asarray(rh), axes=[-1], epilog=lambda v: v * 2)
        assert_close(got, np.fft.fft(rh.astype(np.float64), axis=-1) * 2, "complex64")


def test_reruns_on_each_calls_stream():
    x = cp.asarray(rand((64, 512), "complex64", 7))
    d = cp.asarray(rand((64, 512), "complex64", 8))
    want = np.fft.fft(cp.asnumpy(x).astype(np.complex128), axis=-1) * cp.asnumpy(d)
    s1, s2 = cp.cuda.Stream(non_blocking=True), cp.cuda.Stream(non_blocking=True)
    fused = {"fn": lambda v, f: v * f, "data": d}
    runs = [(nvmath.fft.fft(x, axes=[-1], epilog=fused, stream=s), s) for s in (s1, s2, s1)]
    with s2:
        runs.append((nvmath.fft.fft(x, axes=[-1], epilog=fused), s2))
    runs.append((nvmath.fft.fft(x, axes=[-1], epilog=fused, stream=s1.ptr), s1))
    runs.append((nvmath.fft.fft(x, axes=[-1], epilog=fused), cp.cuda.get_current_stream()))
    for got, s in runs:
        s.synchronize()
        assert_close(got, want, "complex64")
