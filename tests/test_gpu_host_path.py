"""The reused stateless path on the GPU (marked gpu): each call's stream, against NumPy float64
references. Each call's data laid out anew and each call's input copied run on every execution in
test_callbacks.py."""

from __future__ import annotations

import numpy as np
import pytest

import nvmath

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")

from helpers import assert_close, rand  # noqa: E402


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
