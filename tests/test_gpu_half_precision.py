"""Half precision on the GPU (marked gpu: skipped without one), against float64 NumPy references.

cuFFT transforms float16 and complex32 itself when no callback is given; with callbacks the
single-precision twin runs between a promotion of the input and a rounding of the result. The
CPU side, and what reaches cuFFT, are in test_half_precision.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import nvmath
from nvmath.fft import FFT, LayoutError

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")

RNG = np.random.default_rng(53)
TOL = 1e-2  # relative to the reference's norm: half precision keeps about three digits


def pairs(z):
    return np.stack([z.real, z.imag], axis=-1).astype(np.float16)


def unpair(p):
    p = np.asarray(cp.asnumpy(p) if isinstance(p, cp.ndarray) else p, dtype=np.float64)
    return p[..., 0] + 1j * p[..., 1]


def crandn(*shape):
    return RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)


def rel_err(got, want):
    got = cp.asnumpy(got) if isinstance(got, cp.ndarray) else got
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


# -- cuFFT's own half precision ------------------------------------------------------------------

@pytest.mark.parametrize("shape, axes", [((8, 256), [-1]), ((64, 32), [0, 1]), ((256, 4), [0]), ((2, 16, 32, 8), [1, 2, 3])])
def test_rfft_of_cupy_float16(shape, axes):
    x = RNG.standard_normal(shape).astype(np.float16)
    y = nvmath.fft.rfft(cp.asarray(x), axes=axes)
    assert isinstance(y, cp.ndarray) and y.dtype == np.float16 and y.shape[-1] == 2
    assert rel_err(unpair(y), np.fft.rfftn(x.astype(np.float64), axes=axes)) < TOL


@pytest.mark.parametrize("transform", ["fft", "ifft"])
def test_c2c_of_cupy_float16_pairs(transform):
    p = pairs(crandn(16, 1024))
    y = getattr(nvmath.fft, transform)(cp.asarray(p), axes=[-1])
    assert y.shape == (16, 1024, 2) and y.dtype == np.float16
    z = unpair(p)
    want = np.fft.fft(z, axis=-1) if transform == "fft" else 1024 * np.fft.ifft(z, axis=-1)
    assert rel_err(unpair(y), want) < TOL


@pytest.mark.parametrize("axes", [[-1], [0]])
def test_irfft_of_pairs_gives_float16(axes):
    x = RNG.standard_normal((256, 256))
    spectrum = pairs(np.fft.rfft(x, axis=axes[0]) / 16)
    y = nvmath.fft.irfft(cp.asarray(spectrum), axes=axes)
    assert y.dtype == np.float16 and y.shape == (256, 256)
    want = np.fft.irfft(unpair(spectrum), n=256, axis=axes[0]) * 256
    assert rel_err(cp.asnumpy(y).astype(np.float64), want) < TOL


def test_inplace_c2c_and_a_stateful_fft_with_reset_operand():
    a, b = pairs(crandn(4, 512)), pairs(crandn(4, 512))
    x = cp.asarray(a)
    assert nvmath.fft.fft(x, axes=[-1], options={"inplace": True}) is x
    assert rel_err(unpair(x), np.fft.fft(unpair(a), axis=-1)) < TOL
    with FFT(cp.asarray(a), axes=[-1], options={"fft_type": "C2C"}) as f:
        f.plan()
        first = f.execute()
        f.reset_operand(cp.asarray(b))
        second = f.execute()
    assert rel_err(unpair(first), np.fft.fft(unpair(a), axis=-1)) < TOL
    assert rel_err(unpair(second), np.fft.fft(unpair(b), axis=-1)) < TOL


def test_numpy_float16_executed_on_the_gpu():
    x = RNG.standard_normal((4, 128)).astype(np.float16)
    y = nvmath.fft.rfft(x, axes=[-1], execution="cuda")
    assert isinstance(y, np.ndarray) and y.shape == (4, 65, 2)
    assert rel_err(unpair(y), np.fft.rfft(x.astype(np.float64), axis=-1)) < TOL


def test_gpu_and_cpu_agree_within_half_precision():
    p = pairs(crandn(8, 256))
    gpu = unpair(nvmath.fft.fft(cp.asarray(p), axes=[-1]))
    cpu = unpair(nvmath.fft.fft(p, axes=[-1]))
    assert rel_err(gpu, cpu) < TOL


def test_lengths_other_than_powers_of_two_are_refused_before_cufft():
    with pytest.raises(LayoutError, match="power-of-two lengths"):
        nvmath.fft.rfft(cp.ones((4, 100), np.float16), axes=[-1])


# -- callbacks: the single-precision twin between a promotion and a rounding -------------------

def test_epilog_on_pairs():
    p = pairs(crandn(8, 256))
    y = nvmath.fft.fft(cp.asarray(p), axes=[-1], epilog=lambda v: v * 0.5)
    assert rel_err(unpair(y), 0.5 * np.fft.fft(unpair(p), axis=-1)) < TOL


def test_callback_sees_single_precision():
    p = pairs(crandn(4, 256))
    y = nvmath.fft.fft(cp.asarray(p), axes=[-1], epilog=lambda v: v * 70000.0 / 70000.0)  # > float16's max
    assert bool(cp.isfinite(y).all())
    assert rel_err(unpair(y), np.fft.fft(unpair(p), axis=-1)) < TOL


def test_window_prolog_and_filter_epilog_on_rfft():
    x = RNG.standard_normal((4, 256)).astype(np.float16)
    window = cp.asarray(np.hanning(256).astype(np.float32))
    filt = cp.asarray(crandn(129).astype(np.complex64))
    y = nvmath.fft.rfft(cp.asarray(x), axes=[-1], prolog={"fn": lambda v, w: v * w, "data": window},
                        epilog={"fn": lambda v, f: v * f, "data": filt})
    want = np.fft.rfft(x.astype(np.float64) * cp.asnumpy(window), axis=-1) * cp.asnumpy(filt)
    assert rel_err(unpair(y), want) < TOL


def test_norm_and_repeated_stateless_calls():
    for seed in range(3):
        p = pairs(np.random.default_rng(seed).standard_normal((2, 512)) + 0j)
        y = nvmath.fft.ifft(cp.asarray(p), axes=[-1], norm="backward")
        assert rel_err(unpair(y), np.fft.ifft(unpair(p), axis=-1)) < TOL


def test_inplace_with_a_callback():
    a = pairs(crandn(4, 128))
    x = cp.asarray(a)
    with FFT(x, axes=[-1], options={"fft_type": "C2C", "inplace": True}) as f:
        f.plan(epilog=lambda v: v * 2)
        assert f.execute() is x
    assert rel_err(unpair(x), 2 * np.fft.fft(unpair(a), axis=-1)) < TOL


# -- PyTorch complex32 and float16 -----------------------------------------------------------------

def test_torch_complex32_and_float16():
    torch = pytest.importorskip("torch")
    z = crandn(4, 256)
    t = torch.from_numpy(z.astype(np.complex64)).to("cuda").to(torch.complex32)
    y = nvmath.fft.fft(t, axes=[-1])
    assert isinstance(y, torch.Tensor) and y.dtype == torch.complex32 and y.is_cuda
    got = y.to(torch.complex64).cpu().numpy()
    want = np.fft.fft(t.to(torch.complex64).cpu().numpy().astype(np.complex128), axis=-1)
    assert rel_err(got, want) < TOL
    r = torch.from_numpy(RNG.standard_normal((4, 256)).astype(np.float16)).to("cuda")
    s = nvmath.fft.rfft(r, axes=[-1])
    assert s.dtype == torch.complex32 and tuple(s.shape) == (4, 129)
    want = np.fft.rfft(r.cpu().numpy().astype(np.float64), axis=-1)
    assert rel_err(s.to(torch.complex64).cpu().numpy(), want) < TOL
