"""On the GPU (marked gpu): callbacks compiled with numba's ``fastmath`` (the hardware's sine and
cosine) and callbacks reading the slot once per thread give the float64 reference's numbers."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import nvmath

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")

B, N, SHIFT = 64, 1024, 3.25
TURN, TAU = np.float32(1 / N), np.float32(2 * math.pi)


@numba.njit(fastmath=True)
def ramp(v, b, k, *, shift):
    t = np.float32(k) * TURN * shift
    a = TAU * (t - np.float32(math.floor(t + np.float32(0.5))))  # in [-pi, pi]
    return v * (math.cos(a) + 1j * math.sin(a))


def operand(seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, N)) + 1j * rng.standard_normal((B, N))).astype(np.complex64)


def error(got, want):
    return float(np.abs(cp.asnumpy(got) - want).max() / np.abs(want).max())


def test_fastmath_phase_ramp_matches_float64_on_one_plan():
    x = operand(1)
    k = np.arange(N)
    with nvmath.fft.FFT(cp.asarray(x), axes=[-1]) as f:
        f.plan(epilog={"fn": ramp, "params": {"shift": SHIFT}})
        for shift in (SHIFT, -7.5, 0.5):
            f.set_params(epilog={"shift": shift})
            want = np.fft.fft(x.astype(np.complex128), axis=-1) * np.exp(2j * np.pi * k * shift / N)
            assert error(f.execute(), want) < 1e-5


def test_broadcast_filter_with_a_parameter_matches_float64():
    x, filt = operand(2), operand(3)[0]
    got = nvmath.fft.fft(cp.asarray(x), axes=[-1],
                         epilog={"fn": lambda v, d, *, g: v * d * g, "data": cp.asarray(filt), "params": {"g": 0.75}})
    want = np.fft.fft(x.astype(np.complex128), axis=-1) * filt.astype(np.complex128) * 0.75
    assert error(got, want) < 1e-5
