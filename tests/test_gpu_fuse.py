"""nvmath.fft.fuse on CuPy arrays (marked gpu: skipped without one): plain CuPy code gives the
undecorated code's result and dtype, and a forward FFT, a step and the inverse over the same
axes run as one nvmath.fft.filtered call whose route ``explain`` shows."""

from __future__ import annotations

import numpy as np
import pytest

import nvmath
import nvmath.fft
from nvmath.fft import fuse

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")

B, N = 8, 256
SEED = 20261206


def c(shape, dtype=np.complex64, seed=0):
    r = np.random.default_rng(SEED + seed)
    return cp.asarray((r.standard_normal(shape) + 1j * r.standard_normal(shape)).astype(dtype))


def f(shape, dtype=np.float32, seed=0):
    return cp.asarray(np.random.default_rng(SEED + seed).uniform(0.5, 1.5, shape).astype(dtype))


def wide(value):
    """``value`` in double precision: the reference runs the undecorated code on these."""
    if isinstance(value, cp.ndarray):
        return value.astype(cp.complex128 if value.dtype.kind == "c" else cp.float64)
    return value


def check(fused, fn, args):
    """The fused call against the undecorated code: its dtype on the same arguments, its values
    against the undecorated code run in double precision (within single precision's error where
    an argument is single precision)."""
    got = fused(*args)
    same = fn(*args)
    assert type(got) is type(same) and got.dtype == same.dtype and got.shape == same.shape
    want = cp.asnumpy(fn(*(wide(a) for a in args))) if isinstance(same, cp.ndarray) else \
        fn(*(cp.asnumpy(wide(a)) if isinstance(a, cp.ndarray) else a for a in args))
    got = cp.asnumpy(got) if isinstance(got, cp.ndarray) else np.asarray(got)
    single = any(getattr(a, "dtype", None) in (np.complex64, np.float32) for a in args)   # computed in single
    scale = max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got.astype(np.complex128) - want).max()) / scale
    assert err <= (1e-4 if single else 1e-10), f"max error {err:.3g} relative to {scale:.3g}"


@pytest.fixture
def filtered_calls(monkeypatch):
    """The norms of nvmath.fft.filtered calls (the fused runner looks it up on every call)."""
    calls = []
    real = nvmath.fft.filtered

    def counting(*args, **kwargs):
        calls.append(kwargs.get("norm"))
        return real(*args, **kwargs)

    monkeypatch.setattr(nvmath.fft, "filtered", counting)
    return calls


# -- traced functions (module level: ``cp`` is a global, as in user code) ------------------------

def propagate(x, w, H, s):
    X = cp.fft.fft(x * w, axis=-1)
    return cp.fft.ifft(X * H, axis=-1) * s


def convolution(x, H):
    return cp.fft.ifft(cp.fft.fft(x, axis=-1) * H, axis=-1)


def chain_scalars(x, s, t):
    return cp.fft.ifft(cp.fft.fft(x) * s) * t


def chain_ortho(x, H):
    return cp.fft.ifft(cp.fft.fft(x, norm="ortho") * H, norm="ortho")


def chain_forward(x, H):
    return cp.fft.ifft(cp.fft.fft(x, norm="forward") * H, norm="forward")


def chain_unnormalized(x, H):
    return nvmath.fft.ifft(nvmath.fft.fft(x, axes=[-1]) * H, axes=[-1])


def chain_ortho_nonlinear(x):
    return cp.fft.ifft(cp.fft.fft(x, norm="ortho") ** 2 + 1.0, norm="ortho")


def chain_rfft(x, H, s):
    return cp.fft.irfft(cp.fft.rfft(x) * H) * s


def chain_fft2(x, M):
    return cp.fft.ifft2(cp.fft.fft2(x) * M)


def chain_other_axes(x, H):
    return cp.fft.ifft(cp.fft.fft(x, axis=-1) * H, axis=0)


def chain_mixed_norms(x, H):
    return cp.fft.ifft(cp.fft.fft(x, norm="ortho") * H)


def scale(x, s):
    return cp.fft.fft(x, axis=-1) * s


def window(x, w):
    return cp.fft.fft(x * w, axis=-1)


def r2c_scale(x, s):
    return cp.fft.rfft(x, axis=-1) * s


def mask_2d(x, M):
    return cp.fft.fft2(x) * M


CHAINED = [
    (propagate, lambda: (c((B, N)), f(N, seed=2), c(N, seed=1), 0.5), "backward"),
    (propagate, lambda: (c((B, N), np.complex128), f(N, np.float64, seed=2), c(N, np.complex128, seed=1), 0.5),
     "backward"),
    (convolution, lambda: (c((B, N)), c(N, seed=1)), "backward"),
    (convolution, lambda: (c((B, N)), c((B, N), seed=9)), "backward"),            # a full-size filter
    (convolution, lambda: (c((N, B)).T, c(N, seed=1)), "backward"),              # a strided operand
    (chain_scalars, lambda: (c((B, N)), 0.75, 2.0 - 1j), "backward"),
    (chain_ortho, lambda: (c((B, N)), c(N, seed=1)), "ortho"),
    (chain_forward, lambda: (c((B, N)), c(N, seed=1)), "forward"),
    (chain_unnormalized, lambda: (c((B, N)), c(N, seed=1)), None),
    (chain_ortho_nonlinear, lambda: (c((B, N)),), "ortho"),
    (chain_rfft, lambda: (f((B, N)) - 1.0, c(N // 2 + 1, seed=4), 0.5), "backward"),
    (chain_fft2, lambda: (c((3, 16, 64)), f((16, 64), seed=3)), "backward"),
    (propagate, lambda: (c((64, 4096)), f(4096, seed=2), c(4096, seed=1), 0.25), "backward"),
]


@pytest.mark.parametrize("fn,make,norm", CHAINED, ids=[f"{i}-{case[0].__name__}" for i, case in enumerate(CHAINED)])
def test_a_pair_on_the_gpu_is_one_filtered_call_and_agrees(fn, make, norm, filtered_calls):
    fused = fuse(fn, strict=True)    # strict: a fused call that fails raises instead of running as written
    args = make()
    text = fused.explain(*args)
    assert "run as one call, nvmath.fft.filtered(" in text and f"norm={norm!r}" in text, text
    assert "\n    route: " in text and "GPU: cuFFT" in text, text    # the chain's describe(), then fuse's route
    check(fused, fn, args)
    assert filtered_calls == [norm]


@pytest.mark.parametrize("fn,make,why", [
    (chain_other_axes, lambda: (c((N, N)), c(N, seed=1)), None),
    (chain_mixed_norms, lambda: (c((B, N)), c(N, seed=1)), "not one of filtered's norms"),
], ids=["other_axes", "mixed_norms"])
def test_pairs_filtered_cannot_run_stay_two_fused_calls_on_the_gpu(fn, make, why, filtered_calls):
    fused = fuse(fn, strict=True)
    args = make()
    text = fused.explain(*args)
    assert "nvmath.fft.filtered" not in text and "epilog:" in text, text
    if why:
        assert why in text, text
    check(fused, fn, args)
    assert filtered_calls == []


@pytest.mark.parametrize("fn,make", [
    (scale, lambda: (c((B, N)), 0.5)),
    (window, lambda: (c((B, N)), f(N, seed=2))),
    (r2c_scale, lambda: (f((B, N)), 1.5)),
    (mask_2d, lambda: (c((3, 16, 64)), f((16, 64), seed=3))),
], ids=["scale", "window", "r2c_scale", "mask_2d"])
def test_single_ffts_on_the_gpu_are_fused_and_agree(fn, make):
    fused = fuse(fn, strict=True)
    args = make()
    text = fused.explain(*args)
    assert ("prolog:" in text or "epilog:" in text) and "runs as written" not in text, text
    check(fused, fn, args)


def test_new_scalars_on_the_gpu_trace_once():
    fused = fuse(propagate, strict=True)
    x, w, H = c((B, N)), f(N, seed=2), c(N, seed=1)
    for s in (0.5, -2.0, 1e-3):
        check(fused, propagate, (x, w, H, s))
    assert fused.cache_info() == {"plans": 1, "traces": 1}


def test_numpy_2_promotion_on_the_gpu():
    x, H = c((B, N)), c(N, seed=1)
    assert fuse(chain_scalars)(x, 0.5, 2.0 + 0j).dtype == cp.complex64

    def promoted_after(x, H):
        return cp.fft.ifft(cp.fft.fft(x) * H) * np.float64(2.0)

    fused = fuse(promoted_after)
    assert fused(x, H).dtype == promoted_after(x, H).dtype == cp.complex128
    check(fused, promoted_after, (x, H))


def test_cupy_imported_inside_the_function_is_traced():
    """``import cupy`` in an enclosing function: the traced code reads CuPy from its closure."""
    import cupy as xp

    def convolve(x, H):
        return xp.fft.ifft(xp.fft.fft(x) * H)

    fused = fuse(convolve, strict=True)
    args = (c((B, N)), c(N, seed=1))
    assert "nvmath.fft.filtered(" in fused.explain(*args)
    check(fused, convolve, args)


def test_a_host_operand_with_execution_cuda_runs_the_chain_on_the_gpu(filtered_calls):
    fused = fuse(chain_scalars_np, execution="cuda", strict=True)
    x = cp.asnumpy(c((B, N)))
    got = fused(x, 0.5, 2.0 + 0j)
    want = np.fft.ifft(np.fft.fft(x.astype(np.complex128)) * 0.5) * 2.0
    assert isinstance(got, np.ndarray) and got.dtype == np.complex64
    assert float(np.abs(got - want).max()) <= 1e-4 * max(1.0, float(np.abs(want).max()))
    assert filtered_calls == ["backward"]


def chain_scalars_np(x, s, t):
    return np.fft.ifft(np.fft.fft(x) * s) * t
