"""Operands in another memory space than the execution space on a real GPU (marked gpu): a CuPy
array or CUDA tensor with ``execution="cpu"`` is transformed on the host, with its callbacks and
their GPU data, and returned on its GPU in the order of the call's stream; a NumPy operand with
``execution="cuda"`` returns NumPy. Against float64 NumPy references on random inputs."""

from __future__ import annotations

import numpy as np
import pytest

import nvmath
from nvmath.fft import FFT, ExecutionCPU, FilteredFFT, filtered

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")

from helpers import assert_close, rand  # noqa: E402


def mul(v, d):
    return v * d


@pytest.mark.parametrize("execution", ["cpu", {"name": "cpu", "num_threads": 2}, ExecutionCPU(num_threads=1)])
@pytest.mark.parametrize("dtype", ["complex64", "complex128", "float32", "float64"])
def test_stateless_gpu_operands_on_the_cpu(execution, dtype):
    h = rand((16, 96), dtype, 1)
    x = cp.asarray(h)
    if np.dtype(dtype).kind == "c":
        got, want = nvmath.fft.fft(x, axes=[-1], execution=execution), np.fft.fft(h.astype(np.complex128), axis=-1)
        back = nvmath.fft.ifft(x, axes=[-1], execution=execution, norm="backward")
        assert_close(back, np.fft.ifft(h.astype(np.complex128), axis=-1), dtype)
    else:
        got, want = nvmath.fft.rfft(x, axes=[-1], execution=execution), np.fft.rfft(h.astype(np.float64), axis=-1)
        back = nvmath.fft.irfft(got, axes=[-1], execution=execution, norm="backward")
        assert isinstance(back, cp.ndarray) and back.dtype == np.dtype(dtype)
        assert_close(back, h.astype(np.float64), dtype)
    assert isinstance(got, cp.ndarray) and got.device == x.device
    assert_close(got, want, dtype)


def test_n_d_and_strided_gpu_operands_on_the_cpu():
    h = rand((6, 8, 40), "complex128", 2)
    view = cp.asarray(h)[:, :, ::2]
    assert_close(nvmath.fft.fft(view, execution="cpu"), np.fft.fftn(h[:, :, ::2]), "complex128")
    assert_close(nvmath.fft.fft(cp.asarray(h), axes=[0, 1], execution="cpu"), np.fft.fftn(h, axes=(0, 1)), "complex128")


def test_callbacks_with_gpu_data_run_on_the_host():
    h = rand((32, 128), "complex64", 3)
    w, f = rand((128,), "complex64", 4), rand((32, 128), "complex64", 5)
    got = nvmath.fft.fft(cp.asarray(h), axes=[-1], execution="cpu",
                         prolog={"fn": mul, "data": cp.asarray(w)}, epilog={"fn": mul, "data": cp.asarray(f)})
    assert_close(got, np.fft.fft(h.astype(np.complex128) * w, axis=-1) * f, "complex64")


def test_stateful_reset_operand_and_inplace():
    hs = [rand((8, 64), "complex128", s) for s in (6, 7)]
    f = cp.asarray(rand((64,), "complex128", 8))
    with FFT(cp.asarray(hs[0]), axes=[-1], execution="cpu") as engine:
        engine.plan(epilog={"fn": mul, "data": f})
        assert_close(engine.execute(), np.fft.fft(hs[0], axis=-1) * f.get(), "complex128")
        engine.reset_operand(cp.asarray(hs[1]))
        assert_close(engine.execute(), np.fft.fft(hs[1], axis=-1) * f.get(), "complex128")
        with pytest.raises(ValueError, match="memory space"):
            engine.reset_operand(hs[1])
    x = cp.asarray(hs[0])
    assert nvmath.fft.fft(x, axes=[-1], execution="cpu", options={"inplace": True}) is x
    assert_close(x, np.fft.fft(hs[0], axis=-1), "complex128")


def test_the_copies_follow_the_calls_stream():
    s = cp.cuda.Stream(non_blocking=True)
    h = rand((64, 1024), "complex64", 9)
    with s:
        x = cp.asarray(h)
        for _ in range(20):  # queued work the copy to the host must wait for
            x = x * 1.0
        x *= 2
        y = nvmath.fft.fft(x, axes=[-1], execution="cpu", stream=s)
        z = y * 1  # ordered after the result's copy to the device
    s.synchronize()
    assert_close(z, 2 * np.fft.fft(h.astype(np.complex128), axis=-1), "complex64")


def test_chains_of_gpu_operands_on_the_cpu():
    h = rand((16, 64), "float64", 10)
    f = rand((33,), "complex128", 11)
    want = np.fft.irfft(np.fft.rfft(h, axis=-1) * f, n=64, axis=-1)
    got = filtered(cp.asarray(h), axes=[-1], execution="cpu", pointwise={"fn": mul, "data": cp.asarray(f)})
    assert isinstance(got, cp.ndarray)
    assert_close(got, want, "float64")
    with FilteredFFT(cp.asarray(h), axes=[-1], execution="cpu") as chain:
        chain.plan(pointwise={"fn": mul, "data": cp.asarray(f)})
        assert_close(chain.execute(), want, "float64")


def test_a_host_operand_on_the_gpu_returns_numpy():
    h = rand((8, 128), "complex64", 12)
    got = nvmath.fft.fft(h, axes=[-1], execution="cuda", epilog=lambda v: v * 2)
    assert isinstance(got, np.ndarray)
    assert_close(got, 2 * np.fft.fft(h.astype(np.complex128), axis=-1), "complex64")
    s = cp.cuda.Stream(non_blocking=True)
    got = nvmath.fft.fft(h, axes=[-1], execution="cuda", stream=s, options={"blocking": False})
    assert_close(got, np.fft.fft(h.astype(np.complex128), axis=-1), "complex64")


def test_torch_cuda_tensors_on_the_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    h = rand((8, 64), "complex64", 13)
    x = torch.from_numpy(h).cuda()
    got = nvmath.fft.fft(x, axes=[-1], execution="cpu", stream=torch.cuda.current_stream())
    assert isinstance(got, torch.Tensor) and got.is_cuda and got.device == x.device
    assert_close(got.cpu().numpy(), np.fft.fft(h.astype(np.complex128), axis=-1), "complex64")
