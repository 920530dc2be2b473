"""``options.fft_type`` with the stateless functions, against float64 references.

``fft`` and ``ifft`` give the direction and ``fft_type`` the transform type (nvmath-python's
rule): ``ifft(x, options={"fft_type": "C2R"})`` is a C2R transform and ``fft(x, options=
{"fft_type": "R2C"})`` an R2C one; a type that does not run in the function's direction is
refused. ``rfft``/``irfft`` name their type and refuse another."""

from __future__ import annotations

import numpy as np
import pytest

import nvmath

RNG = np.random.default_rng(26)


def hermitian(shape, n, dtype=np.complex128):
    """The half spectrum of a real signal of length ``n`` on the last axis."""
    return np.fft.rfft(RNG.standard_normal(shape[:-1] + (n,)), axis=-1).astype(dtype)


@pytest.mark.parametrize("parity, n", [("even", 16), ("odd", 15)])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_ifft_with_fft_type_c2r_is_the_c2r_transform(parity, n, dtype):
    x = hermitian((3, n // 2 + 1), n, dtype)
    y = nvmath.fft.ifft(x, axes=[-1], options={"fft_type": "C2R", "last_axis_parity": parity}, execution="cpu")
    expect = np.fft.irfft(x.astype(np.complex128), n=n, axis=-1) * n  # unnormalized, as cuFFT
    assert y.shape == (3, n) and y.dtype == (np.float32 if dtype == np.complex64 else np.float64)
    np.testing.assert_allclose(y, expect, rtol=1e-5, atol=1e-4 * n)
    same = nvmath.fft.irfft(x, axes=[-1], options={"last_axis_parity": parity}, execution="cpu")
    np.testing.assert_allclose(y, same, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fft_with_fft_type_r2c_is_the_r2c_transform(dtype):
    x = RNG.standard_normal((4, 24)).astype(dtype)
    y = nvmath.fft.fft(x, axes=[-1], options={"fft_type": "R2C"}, execution="cpu")
    assert y.shape == (4, 13) and y.dtype.kind == "c"
    np.testing.assert_allclose(y, np.fft.rfft(x.astype(np.float64), axis=-1), rtol=1e-5, atol=1e-4 * 24)


def test_fft_type_c2c_leaves_fft_and_ifft_as_they_are():
    x = (RNG.standard_normal((2, 32)) + 1j * RNG.standard_normal((2, 32))).astype(np.complex128)
    c2c = {"fft_type": "C2C"}
    np.testing.assert_allclose(nvmath.fft.fft(x, axes=[-1], options=c2c, execution="cpu"), np.fft.fft(x), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(nvmath.fft.ifft(x, axes=[-1], options=c2c, execution="cpu"), np.fft.ifft(x) * 32, rtol=1e-12,
                               atol=1e-10)


def test_a_stateless_c2r_through_ifft_takes_the_inverse_only():
    x = hermitian((2, 9), 16)
    with pytest.raises(ValueError, match="direction 'forward' was asked of a C2R FFT, which runs inverse only"):
        nvmath.fft.ifft(x, options={"fft_type": "C2R"}, execution="cpu", direction="forward")


def test_dask_decides_the_transform_as_fft_does():
    da = pytest.importorskip("dask.array")
    x = hermitian((6, 9), 16)
    lazy = nvmath.fft.ifft(da.from_array(x, chunks=(3, 9)), axes=[-1], options={"fft_type": "C2R"})
    assert lazy.shape == (6, 16)
    np.testing.assert_allclose(lazy.compute(), np.fft.irfft(x, n=16, axis=-1) * 16, rtol=1e-10, atol=1e-9)
    with pytest.raises(ValueError, match="fft\\(\\) runs forward, and a C2R transform runs inverse only"):
        nvmath.fft.fft(da.from_array(x, chunks=(3, 9)), axes=[-1], options={"fft_type": "C2R"})
