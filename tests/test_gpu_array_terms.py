"""Callbacks in array terms on the GPU (marked gpu): broadcast user data, the index forms and
runtime parameters, against float64 NumPy references, and against the CPU executor and the
debug mode on the same callbacks."""

from __future__ import annotations

import cmath
import numpy as np
import pytest

import nvmath
from nvmath.fft import _gpu

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")

RTOL = {"complex64": 2e-4, "complex128": 1e-10, "float32": 2e-4, "float64": 1e-10}


def rand(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if np.dtype(dtype).kind == "c" else 0)
    return x.astype(dtype)


def close(got, want, dtype):
    got = cp.asnumpy(got) if isinstance(got, cp.ndarray) else np.asarray(got)
    assert got.shape == want.shape
    scale = max(np.abs(want).max(), 1.0)
    err = np.abs(got - want).max() / scale
    assert err < RTOL[np.dtype(dtype).name] * 10, f"max relative error {err:.3g}"


def wide(x):
    x = cp.asnumpy(x) if isinstance(x, cp.ndarray) else np.asarray(x)
    return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)


def reference(kind, x, axes):
    x = wide(x)
    if kind == "fft":
        return np.fft.fftn(x, axes=axes)
    if kind == "ifft":
        return np.fft.ifftn(x, axes=axes, norm="forward")
    if kind == "rfft":
        return np.fft.rfftn(x, axes=axes)
    s = [x.shape[a] for a in axes[:-1]] + [2 * (x.shape[axes[-1]] - 1)]
    return np.fft.irfftn(x, s=s, axes=axes, norm="forward")


def operand(kind, shape, dtype, axes, seed):
    if kind == "irfft":  # the spectrum of real data: DC and Nyquist terms real, as cuFFT assumes
        real = rand(shape[:-1] + (2 * (shape[-1] - 1),), np.float64, seed)
        return np.fft.rfftn(real, axes=axes).astype(dtype)
    return rand(shape, dtype, seed)


def mul(x, d):
    return x * d


# kind, operand shape, axes, dtype
PROBLEMS = [
    ("fft", (64, 256), (1,), "complex64"),
    ("ifft", (32, 128), (1,), "complex128"),
    ("rfft", (64, 256), (1,), "float32"),
    ("irfft", (64, 129), (1,), "complex64"),
    ("fft", (8, 32, 48), (1, 2), "complex64"),
    ("fft", (256, 12), (0,), "complex128"),
]


def data_shapes(shape, axes):
    """(N,), (1, N), (B, 1) and 0-d for a batched 1-D array; a 2-D mask and (B, 1, 1) over 3-D."""
    if len(shape) == 3:
        return [shape[1:], (shape[0], 1, 1), ()]
    return [shape[-1:], (1, shape[-1]), (shape[0], 1), ()]


@pytest.mark.parametrize("kind,shape,axes,dtype", PROBLEMS)
@pytest.mark.parametrize("side", ["prolog", "epilog"])
def test_broadcast_data(kind, shape, axes, dtype, side):
    x = operand(kind, shape, dtype, axes, 1)
    sees = x.shape if side == "prolog" else reference(kind, x, axes).shape
    single = dtype in ("complex64", "float32")
    element_complex = (np.dtype(dtype).kind == "c") if side == "prolog" else kind != "irfft"
    for seed, dshape in enumerate(data_shapes(sees, axes)):
        d = np.random.default_rng(10 + seed).uniform(0.5, 1.5, dshape)
        if element_complex and not (kind == "irfft" and side == "prolog"):  # keep DC/Nyquist real
            d = d + 0.25j * np.random.default_rng(20 + seed).standard_normal(dshape)
        d = d.astype((np.complex64 if d.dtype.kind == "c" else np.float32) if single else d.dtype)
        want = reference(kind, wide(x) * d, axes) if side == "prolog" else reference(kind, x, axes) * d
        got = getattr(nvmath.fft, kind)(cp.asarray(x), axes=list(axes), **{side: {"fn": mul, "data": cp.asarray(d)}})
        close(got, want, dtype)


def test_broadcast_view_and_refusal():
    x = cp.asarray(rand((16, 512), "complex64", 2))
    w = cp.asarray(rand((512,), "float32", 3))
    got = nvmath.fft.fft(x, axes=[-1], prolog={"fn": mul, "data": cp.broadcast_to(w, (16, 512))})
    close(got, np.fft.fft(wide(x) * wide(w), axis=-1), "complex64")
    with pytest.raises(ValueError, match=r"data of shape \(16, 2\) does not broadcast to the result shape \(16, 512\)"):
        nvmath.fft.fft(x, axes=[-1], epilog={"fn": mul, "data": cp.ones((16, 2), cp.complex64)})


def ramp(x, b, k):
    return x * (1.0 + 0.01 * k) + 0.5 * b


def ramp_3d(x, b, i, j):
    return x * (1.0 + 0.01 * i - 0.003 * j) + 0.25 * b


@pytest.mark.parametrize("kind,shape,axes,dtype", PROBLEMS)
@pytest.mark.parametrize("side", ["prolog", "epilog"])
def test_index_form_matches_np_indices(kind, shape, axes, dtype, side):
    x = operand(kind, shape, dtype, axes, 4)
    fn = ramp_3d if len(shape) == 3 else ramp

    def apply(v):
        ix = np.indices(v.shape)
        if len(shape) == 3:
            return v * (1.0 + 0.01 * ix[1] - 0.003 * ix[2]) + 0.25 * ix[0]
        return v * (1.0 + 0.01 * ix[1]) + 0.5 * ix[0]

    want = reference(kind, apply(wide(x)), axes) if side == "prolog" else apply(reference(kind, x, axes))
    got = getattr(nvmath.fft, kind)(cp.asarray(x), axes=list(axes), **{side: fn})
    close(got, want, dtype)


@pytest.mark.parametrize("layout", ["transposed", "strided"])
def test_index_and_broadcast_on_permuted_and_strided_operands(layout):
    base = rand((96, 64), "complex64", 5)
    x_host = base.T if layout == "transposed" else base[:, ::2]
    x = cp.asarray(base).T if layout == "transposed" else cp.asarray(base)[:, ::2]
    h = rand((x_host.shape[-1],), "complex64", 6)
    got = nvmath.fft.fft(x, axes=[-1], prolog=ramp, epilog={"fn": lambda v, d, b, k: v * d - 0.125 * k,
                                                            "data": cp.asarray(h)})
    b, k = np.indices(x_host.shape)
    want = np.fft.fft(wide(x_host) * (1.0 + 0.01 * k) + 0.5 * b, axis=-1) * h - 0.125 * k
    close(got, want, "complex64")


def test_fftshift_by_sign_flip():
    x = rand((4, 64, 32), "complex128", 7)
    got = nvmath.fft.fft(cp.asarray(x), axes=[1, 2], prolog=lambda v, b, i, j: v * (-1) ** (i + j))
    close(got, np.fft.fftshift(np.fft.fftn(x, axes=(1, 2)), axes=(1, 2)), "complex128")


def phase_ramp(v, b, k, *, shift, gain):
    return v * gain * cmath.exp(2j * cmath.pi * k * shift / 256)


@pytest.fixture
def compiles(monkeypatch):
    from compiler import cuda_backend

    count = [0]
    original = cuda_backend.compile_ltoir

    def counting(*args, **kwargs):
        count[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(cuda_backend, "compile_ltoir", counting)
    return count


def test_parameters_change_between_stateless_calls_without_compile_or_plan(compiles):
    x = cp.asarray(rand((32, 256), "complex64", 8))
    nvmath.fft.fft(x, axes=[-1], epilog={"fn": phase_ramp, "params": {"shift": 0.0, "gain": 1.0}})
    plans, compiled = _gpu.plan_cache.created, compiles[0]
    b, k = np.indices((32, 256))
    for seed, shift in enumerate((0.25, 3.5, -7.0)):
        x = cp.asarray(rand((32, 256), "complex64", 20 + seed))  # fresh data each call
        got = nvmath.fft.fft(x, axes=[-1], epilog={"fn": phase_ramp, "params": {"shift": shift, "gain": 2.0}})
        close(got, np.fft.fft(wide(x), axis=-1) * 2.0 * np.exp(2j * np.pi * k * shift / 256), "complex64")
    assert (_gpu.plan_cache.created, compiles[0]) == (plans, compiled)


def test_parameters_change_on_a_stateful_plan_in_stream_order(compiles):
    """Executions queued back to back on one stream, each with its own values, see their own."""
    x = cp.asarray(rand((16, 256), "complex128", 9))
    w = cp.asarray(rand((256,), "float64", 10))
    s = cp.cuda.Stream(non_blocking=True)
    values = [(0.0, 1.0, 1.0), (1.5, 2.0, 2.0), (-4.25, 0.5, 0.0), (9.0, 3.0, 3.0)]
    with nvmath.fft.FFT(x, axes=[-1], stream=s) as f:
        f.plan(prolog={"fn": lambda v, d, *, p: v * d**p, "data": w, "params": {"p": 1.0}},
               epilog={"fn": phase_ramp, "params": {"shift": 0.0, "gain": 1.0}})
        executor, compiled = f._executor, compiles[0]
        results = []
        for shift, gain, p in values:
            f.set_params(prolog={"p": p}, epilog={"shift": shift, "gain": gain})
            results.append(f.execute(stream=s))
        s.synchronize()
        assert f._executor is executor and compiles[0] == compiled
    b, k = np.indices((16, 256))
    for (shift, gain, p), got in zip(values, results):
        want = np.fft.fft(wide(x) * wide(w) ** p, axis=-1) * gain * np.exp(2j * np.pi * k * shift / 256)
        close(got, want, "complex128")


def test_gpu_cpu_and_debug_mode_agree():
    xh = rand((6, 10, 16), "float64", 11)
    mask = np.random.default_rng(12).uniform(0.0, 1.0, (10, 9))
    spec = lambda data: {"fn": lambda v, d, b, i, j, *, s: v * d * (1 + s * j) + b, "data": data,  # noqa: E731
                         "params": {"s": 0.125}}
    gpu = nvmath.fft.rfft(cp.asarray(xh), axes=[1, 2], epilog=spec(cp.asarray(mask)))
    cpu = nvmath.fft.rfft(xh, axes=[1, 2], epilog=spec(mask))
    debug = nvmath.fft.rfft(cp.asarray(xh), axes=[1, 2], epilog=spec(cp.asarray(mask)), options={"debug": True})
    np.testing.assert_allclose(cp.asnumpy(gpu), cpu, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(cp.asnumpy(debug), cpu, rtol=1e-9, atol=1e-9)
    b, i, j = np.indices(cpu.shape)
    close(gpu, np.fft.rfftn(xh, axes=(1, 2)) * mask * (1 + 0.125 * j) + b, "float64")
