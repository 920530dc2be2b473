"""Fused FFTs on the GPU against NumPy float64 references (marked gpu: skipped without one)."""

from __future__ import annotations

import math

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
    scale = max(np.abs(want).max(), 1.0)
    err = np.abs(got - want).max() / scale
    assert err < RTOL[np.dtype(dtype).name] * 10, f"max relative error {err:.3g}"


def reference(kind, x, axes, n_last=None):
    x = np.asarray(x).astype(np.complex128 if np.iscomplexobj(x) else np.float64)
    if kind == "fft":
        return np.fft.fftn(x, axes=axes)
    if kind == "ifft":
        return np.fft.ifftn(x, axes=axes, norm="forward")
    if kind == "rfft":
        return np.fft.rfftn(x, axes=axes)
    s = [x.shape[a] for a in axes[:-1]] + [n_last]
    return np.fft.irfftn(x, s=s, axes=axes, norm="forward")


def test_seed_example_unchanged():
    import cupy as cp  # noqa: F811 (the example, verbatim)

    B, N = 256, 1024
    a = cp.random.rand(B, N, dtype=cp.float64) + 1j * cp.random.rand(B, N, dtype=cp.float64)
    norm_factor = 1.0 / math.sqrt(N)

    def rescale(data_out, offset, data, user_info, unused):
        data_out[offset] = data * norm_factor

    with cp.cuda.Device():
        epilog = nvmath.fft.compile_epilog(rescale, "complex128", "complex128")
    r = nvmath.fft.fft(a, axes=[-1], epilog={"ltoir": epilog})
    assert cp.allclose(r, cp.fft.fftn(a, axes=[-1], norm="ortho"))


CASES = [
    # kind, shape, axes, dtype
    ("fft", (64, 256), [-1], "complex64"),
    ("fft", (16, 32, 48), [1, 2], "complex128"),
    ("fft", (8, 16, 16, 12), [1, 2, 3], "complex64"),
    ("ifft", (32, 128), [-1], "complex128"),
    ("rfft", (64, 256), [-1], "float32"),
    ("rfft", (8, 30, 20), [1, 2], "float64"),
    ("irfft", (64, 129), [-1], "complex64"),
    ("irfft", (4, 10, 8, 9), [1, 2, 3], "complex128"),
]


@pytest.mark.parametrize("kind,shape,axes,dtype", CASES)
@pytest.mark.parametrize("which", ["prolog", "epilog", "both"])
def test_problem_kinds_with_callbacks(kind, shape, axes, dtype, which):
    x = rand(shape, dtype, 1)
    problem_in = x
    in_real = np.dtype(dtype).kind == "f"
    out_real = kind == "irfft"
    window = rand(shape, np.float32 if dtype in ("complex64", "float32") else np.float64, 2)
    prolog = epilog = None
    want_in = x.astype(np.complex128 if not in_real else np.float64)
    if which in ("prolog", "both"):
        prolog = {"fn": lambda v, w: v * w, "data": cp.asarray(window)}
        want_in = want_in * window
    n_last = 2 * (shape[-1] - 1) if kind == "irfft" else None
    want = reference(kind, want_in, axes, n_last)
    if which in ("epilog", "both"):
        single = dtype in ("complex64", "float32")
        filt_dtype = (np.float32 if single else np.float64) if out_real else (np.complex64 if single else np.complex128)
        filt = rand(want.shape, filt_dtype, 3)
        epilog = {"fn": lambda v, f: v * f, "data": cp.asarray(filt)}
        want = want * filt
    got = getattr(nvmath.fft, kind)(cp.asarray(problem_in), axes=axes, prolog=prolog, epilog=epilog)
    assert isinstance(got, cp.ndarray) and got.shape == want.shape
    close(got, want, dtype)


def test_three_forms_agree():
    x = cp.asarray(rand((32, 512), "complex64", 4))
    d = cp.asarray(rand((32, 512), "complex64", 5))
    want = np.fft.fft(cp.asnumpy(x).astype(np.complex128), axis=-1) * cp.asnumpy(d)

    def raw(data_out, offset, value, user_info, unused):
        data_out[offset] = value * user_info[offset]

    forms = [
        {"fn": lambda v, u: v * u, "data": d},
        {"fn": raw, "data": d},
        {"ltoir": nvmath.fft.compile_epilog(raw, "complex64", "complex64"), "data": int(d.data.ptr)},
    ]
    for epilog in forms:
        close(nvmath.fft.fft(x, axes=[-1], epilog=epilog), want, "complex64")
    scale = 0.25
    close(nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v * scale), np.fft.fft(cp.asnumpy(x), axis=-1) * scale,
          "complex64")


@pytest.mark.parametrize("layout", ["transposed", "strided", "leading_axis"])
def test_non_contiguous_operands_and_data(layout):
    base = rand((96, 64), "complex64", 6)
    if layout == "transposed":
        x, axes = base.T, [-1]
    elif layout == "strided":
        x, axes = base[:, ::2], [-1]
    else:
        x, axes = base, [0]
    w = rand(x.shape, "float32", 7)
    w_dev = cp.asarray(np.asfortranarray(w))  # data in yet another layout: the planner re-lays it
    got = nvmath.fft.fft(cp.asarray(x) if layout != "strided" else cp.asarray(base)[:, ::2], axes=axes,
                         prolog={"fn": lambda v, d: v * d, "data": w_dev},
                         epilog={"fn": lambda v, d: v + d, "data": cp.asarray(w)})
    want = np.fft.fftn(x.astype(np.complex128) * w, axes=axes) + w
    close(got, want, "complex64")


def test_new_data_array_reuses_plan():
    x = cp.asarray(rand((16, 1024), "complex64", 8))
    fn = lambda v, f: v * f  # noqa: E731
    f1 = cp.asarray(rand((16, 1024), "complex64", 9))
    f2 = cp.asarray(rand((16, 1024), "complex64", 10))
    r1 = nvmath.fft.fft(x, axes=[-1], epilog={"fn": fn, "data": f1})
    before = _gpu.plan_cache.created
    r2 = nvmath.fft.fft(x, axes=[-1], epilog={"fn": fn, "data": f2})
    r3 = nvmath.fft.fft(x, axes=[-1], epilog={"fn": fn, "data": f1})
    assert _gpu.plan_cache.created == before, "a new data array must not build a new cuFFT plan"
    plain = np.fft.fft(cp.asnumpy(x).astype(np.complex128), axis=-1)
    close(r1, plain * cp.asnumpy(f1), "complex64")
    close(r2, plain * cp.asnumpy(f2), "complex64")
    close(r3, plain * cp.asnumpy(f1), "complex64")


def test_changed_global_is_not_served_stale():
    x = cp.asarray(rand((4, 256), "complex64", 11))
    global GAIN
    GAIN = 2.0
    r1 = nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v * GAIN)
    GAIN = 3.0
    r2 = nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v * GAIN)
    plain = np.fft.fft(cp.asnumpy(x).astype(np.complex128), axis=-1)
    close(r1, plain * 2, "complex64")
    close(r2, plain * 3, "complex64")


def test_streams_and_stateful():
    x = cp.asarray(rand((8, 512), "complex128", 12))
    d = cp.asarray(rand((8, 512), "complex128", 13))
    s = cp.cuda.Stream(non_blocking=True)
    with nvmath.fft.FFT(x, axes=[-1], stream=s) as f:
        f.plan(prolog={"fn": lambda v, w: v * w, "data": d})
        r = f.execute(stream=s)
        s.synchronize()
        close(r, np.fft.fft(cp.asnumpy(x * d), axis=-1), "complex128")
        y = cp.asarray(rand((8, 512), "complex128", 14))
        f.reset_operand(y)
        r = f.execute(direction="inverse", stream=s)
        s.synchronize()
        close(r, np.fft.ifft(cp.asnumpy(y * d), axis=-1, norm="forward"), "complex128")


def test_torch_operand_returns_torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    x = torch.randn(8, 256, dtype=torch.complex64, device="cuda")
    r = nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v * 0.5)
    assert isinstance(r, torch.Tensor) and r.is_cuda
    close(cp.asarray(r), np.fft.fft(x.cpu().numpy().astype(np.complex128), axis=-1) * 0.5, "complex64")


def test_errors_before_cufft():
    x = cp.asarray(rand((4, 64), "complex64", 15))
    wrong = nvmath.fft.compile_epilog(lambda v: v, "complex128")
    with pytest.raises(TypeError, match="complex128"):
        nvmath.fft.fft(x, epilog={"ltoir": wrong})
    pro = nvmath.fft.compile_prolog(lambda v: v, "complex64")
    with pytest.raises(TypeError, match="prolog"):
        nvmath.fft.fft(x, epilog={"ltoir": pro})
    with pytest.raises(ValueError, match="host memory"):
        nvmath.fft.fft(x, epilog={"fn": lambda v, d: v * d, "data": np.ones((4, 64), np.complex64)})
    with pytest.raises(ValueError, match="does not broadcast to the result shape"):
        nvmath.fft.fft(x, epilog={"fn": lambda v, d: v * d, "data": cp.ones(10, cp.complex64)})
    with pytest.raises(TypeError, match="real"):
        nvmath.fft.irfft(x, epilog=lambda v: v * 1j)
    with pytest.raises(TypeError, match="was it passed as the epilog by mistake"):
        nvmath.fft.fft(x, epilog=lambda a, b, c, d: a[b])


def test_cpu_and_gpu_agree():
    xh = rand((16, 200), "complex128", 16)
    dh = rand((16, 200), "complex128", 17)
    fn = lambda v, d: v * d + 1  # noqa: E731
    gpu = nvmath.fft.fft(cp.asarray(xh), axes=[-1], epilog={"fn": fn, "data": cp.asarray(dh)})
    cpu = nvmath.fft.fft(xh, axes=[-1], epilog={"fn": fn, "data": dh})
    assert isinstance(cpu, np.ndarray)
    np.testing.assert_allclose(cp.asnumpy(gpu), cpu, rtol=1e-9, atol=1e-9)


def test_raw_and_torch_stream_handles_order_copies_and_fft():
    base = cp.asarray(rand((64, 512), "complex64", 18))
    x = base[:, ::2]  # strided: the planner copies it, on the given stream
    want = np.fft.fft(cp.asnumpy(x).astype(np.complex128), axis=-1) * 2
    s = cp.cuda.Stream(non_blocking=True)
    r = nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v * 2, stream=s.ptr)
    s.synchronize()
    close(r, want, "complex64")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    ts = torch.cuda.Stream()
    xt = torch.from_dlpack(x)
    with torch.cuda.stream(ts):
        r = nvmath.fft.fft(xt, axes=[-1], epilog=lambda v: v * 2, stream=ts)
    ts.synchronize()
    assert isinstance(r, torch.Tensor)
    close(cp.asarray(r), want, "complex64")


def test_hot_path_notices_changed_globals_new_data_and_new_operands():
    global GAIN

    def scaled(v):
        return v * GAIN

    def filtered(v, d):
        return v * d

    for trial in range(3):  # the same code each time: later calls take the reuse path
        GAIN = 1.0 + trial
        x = cp.asarray(rand((8, 256), "complex64", 30 + trial))
        d = cp.asarray(rand((8, 256), "complex64", 40 + trial))
        plain = np.fft.fft(cp.asnumpy(x).astype(np.complex128), axis=-1)
        close(nvmath.fft.fft(x, axes=[-1], epilog=scaled), plain * GAIN, "complex64")
        close(nvmath.fft.fft(x, axes=[-1], epilog={"fn": filtered, "data": d}), plain * cp.asnumpy(d), "complex64")
        close(nvmath.fft.fft(x, axes=[-1], prolog={"fn": filtered, "data": d.real.copy()}),
              np.fft.fft(cp.asnumpy(x * d.real), axis=-1), "complex64")
