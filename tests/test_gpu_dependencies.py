"""On the GPU: a changed global read by a numba-jitted callback or helper reaches the FFT result
(marked gpu: skipped without one). The CPU-side proof is tests/test_dependency_catalogue.py."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from numba import cuda

import nvmath

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")

K = 2.5


@numba.njit
def njit_scale(v):
    return v * K


@cuda.jit(device=True)
def cuda_scale(v):
    return v * K


@numba.vectorize
def vectorize_scale(v):
    return v * K


def via_njit(v):
    return njit_scale(v)


def via_cuda_jit(v):
    return cuda_scale(v)


def via_vectorize(v):
    return vectorize_scale(v)


@numba.njit
def jitted_callback(v):
    return v * K


@pytest.mark.parametrize("fn", [via_njit, via_cuda_jit, via_vectorize, jitted_callback],
                         ids=["njit helper", "cuda.jit helper", "vectorize helper", "njit callback"])
def test_changed_global_reaches_the_fft(fn, monkeypatch):
    rng = np.random.default_rng(11)
    host = (rng.standard_normal((64, 256)) + 1j * rng.standard_normal((64, 256))).astype(np.complex64)
    x = cp.asarray(host)
    plain = np.fft.fft(host.astype(np.complex128), axis=-1)
    for k in (2.5, 3.5, 2.5):  # the second call is the one a stale compile would get wrong
        monkeypatch.setitem(globals(), "K", k)
        got = cp.asnumpy(nvmath.fft.fft(x, axes=[-1], epilog=fn))
        err = np.abs(got - plain * k).max() / np.abs(plain * k).max()
        assert err < 1e-5, f"K={k}: max relative error {err:.3g}"
