"""Fused FFTs on the GPU against NumPy float64 references (marked gpu: skipped without one)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nvmath
from helpers import assert_close, rand

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")

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
    assert_close(got, want, "complex64")


def test_streams_and_stateful():
    x = cp.asarray(rand((8, 512), "complex128", 12))
    d = cp.asarray(rand((8, 512), "complex128", 13))
    s = cp.cuda.Stream(non_blocking=True)
    with nvmath.fft.FFT(x, axes=[-1], stream=s) as f:
        f.plan(prolog={"fn": lambda v, w: v * w, "data": d})
        r = f.execute(stream=s)
        s.synchronize()
        assert_close(r, np.fft.fft(cp.asnumpy(x * d), axis=-1), "complex128")
        y = cp.asarray(rand((8, 512), "complex128", 14))
        f.reset_operand(y)
        r = f.execute(direction="inverse", stream=s)
        s.synchronize()
        assert_close(r, np.fft.ifft(cp.asnumpy(y * d), axis=-1, norm="forward"), "complex128")


def test_torch_operand_returns_torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    x = torch.randn(8, 256, dtype=torch.complex64, device="cuda")
    r = nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v * 0.5)
    assert isinstance(r, torch.Tensor) and r.is_cuda
    assert_close(cp.asarray(r), np.fft.fft(x.cpu().numpy().astype(np.complex128), axis=-1) * 0.5, "complex64")


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
    assert_close(r, want, "complex64")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    ts = torch.cuda.Stream()
    xt = torch.from_dlpack(x)
    with torch.cuda.stream(ts):
        r = nvmath.fft.fft(xt, axes=[-1], epilog=lambda v: v * 2, stream=ts)
    ts.synchronize()
    assert isinstance(r, torch.Tensor)
    assert_close(cp.asarray(r), want, "complex64")


