"""nvmath-python's documented ``nvmath.fft`` API on the GPU, against float64 NumPy references
(marked gpu: skipped without one). The CPU side is in test_compat.py."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import nvmath
from helpers import assert_close
from nvmath.fft import FFT, DeviceCallable, ExecutionCUDA, FFTDirection, FFTOptions, LayoutError
from nvmath.memory import MemoryPointer

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")


def crandn(shape, dtype=np.complex64, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def test_inplace_numpy_operand_on_the_gpu_is_overwritten():
    x = crandn((4, 64), seed=1)
    want = np.fft.fft(x.astype(np.complex128), axis=-1)
    r = nvmath.fft.fft(x, axes=[-1], options={"inplace": True}, execution="cuda")
    assert r is x
    assert_close(x, want)


def test_inplace_numpy_operand_with_an_epilog_stateful():
    x = crandn((8, 32), seed=2)
    want = 2 * np.fft.ifft(x.astype(np.complex128), axis=-1) * 32
    with FFT(x, axes=[-1], options=FFTOptions(inplace=True), execution=ExecutionCUDA(device_id=0)) as f:
        f.plan(epilog=lambda v: v * 2)
        r = f.execute(direction="inverse")
    assert r is x
    assert_close(x, want)


def test_inplace_cpu_torch_tensor_on_the_gpu_is_overwritten():
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(crandn((4, 16), seed=3))
    want = np.fft.fft(x.numpy().astype(np.complex128), axis=-1)
    r = nvmath.fft.fft(x, axes=[-1], options={"inplace": True}, execution="cuda")
    assert r is x
    assert_close(x.numpy(), want)


# -- direction, keys, operand, workspace -------------------------------------------------------

@pytest.mark.parametrize("direction", ["INVERSE", 1, FFTDirection.INVERSE])
def test_direction_spellings_on_the_gpu(direction):
    x = crandn((4, 128), seed=4)
    r = nvmath.fft.fft(cp.asarray(x), axes=[-1], direction=direction)
    assert_close(r, np.fft.ifft(x.astype(np.complex128), axis=-1) * 128)


def test_documented_plan_caching_pattern_on_the_gpu():
    cache = {}
    try:
        h = cp.asarray(crandn((16, 64), seed=5))
        epilog = {"fn": lambda v, d: v * d, "data": h}
        for seed in range(3):
            a = cp.asarray(crandn((16, 64), seed=10 + seed))
            key = FFT.create_key(a, axes=[-1], epilog=epilog)
            if key in cache:
                f = cache[key]
                f.reset_operand(a)
            else:
                f = cache[key] = FFT(a, axes=[-1])
                f.plan(epilog=epilog)
            r = f.execute()
            f.reset_operand()
            assert_close(r, np.fft.fft(cp.asnumpy(a).astype(np.complex128), axis=-1) * cp.asnumpy(h))
        assert len(cache) == 1
        assert next(iter(cache.values())).operand is None
    finally:
        for f in cache.values():
            f.free()


class CountingAllocator:
    """cudaMalloc/cudaFree through nvmath.memory.MemoryPointer, counting both."""

    def __init__(self):
        self.allocated, self.freed = [], 0

    def memalloc(self, size):
        pointer = cp.cuda.runtime.malloc(size)
        self.allocated.append(size)

        def finalizer():
            cp.cuda.runtime.free(pointer)
            self.freed += 1

        return MemoryPointer(pointer, size, finalizer=finalizer)


def test_allocator_draws_the_workspace_and_release_workspace_returns_it():
    allocator = CountingAllocator()
    x = cp.asarray(crandn((64, 256), seed=6))
    with FFT(x, axes=[-1], options={"allocator": allocator}) as f:
        f.plan()
        assert len(allocator.allocated) == 1
        r1 = f.execute(release_workspace=True)
        cp.cuda.get_current_stream().synchronize()
        assert allocator.freed == 1
        r2 = f.execute()
        assert len(allocator.allocated) == 2
    want = np.fft.fft(cp.asnumpy(x).astype(np.complex128), axis=-1)
    assert_close(r1, want)
    assert_close(r2, want)


def test_allocator_with_the_stateless_function():
    allocator = CountingAllocator()
    x = crandn((32, 128), seed=7)
    r = nvmath.fft.fft(cp.asarray(x), axes=[-1], options=FFTOptions(allocator=allocator), epilog=lambda v: v * 3)
    assert allocator.allocated
    assert_close(r, 3 * np.fft.fft(x.astype(np.complex128), axis=-1))


# -- callbacks -------------------------------------------------------------------------------

def test_device_callable_with_size_from_compile_epilog():
    def scale(data_out, offset, value, user_info, unused):
        data_out[offset] = value * 0.5

    ltoir = nvmath.fft.compile_epilog(scale, "complex64", "complex64")
    x = crandn((4, 64), seed=8)
    r = nvmath.fft.fft(cp.asarray(x), axes=[-1], epilog=DeviceCallable(ltoir=ltoir, size=len(ltoir)))
    assert_close(r, 0.5 * np.fft.fft(x.astype(np.complex128), axis=-1))
    r = nvmath.fft.fft(cp.asarray(x), axes=[-1], epilog={"ltoir": ltoir, "size": len(ltoir)})
    assert_close(r, 0.5 * np.fft.fft(x.astype(np.complex128), axis=-1))


def test_cufft_form_epilog_returning_a_value_is_refused_on_the_gpu():
    def returns(data_out, offset, value, user_info, unused):
        return value * 2

    with pytest.raises(TypeError, match="returns a value"):
        nvmath.fft.fft(cp.asarray(crandn(64)), epilog=returns)


def test_half_precision_operand_of_a_length_cufft_cannot_transform_says_why():
    assert nvmath.fft.rfft(cp.ones(64, dtype=cp.float16)).shape == (33, 2)  # complex32 as float16 pairs
    with pytest.raises(LayoutError, match="half-precision.*power-of-two lengths"):
        nvmath.fft.rfft(cp.ones(48, dtype=cp.float16))


# -- logging ---------------------------------------------------------------------------------

def test_options_logger_gets_the_gpu_plan_and_the_compile(caplog):
    mine = logging.getLogger("user.gpu.fft")
    with caplog.at_level(logging.DEBUG, logger="user.gpu.fft"):
        with FFT(cp.asarray(crandn(256, seed=11)), options={"logger": mine}) as f:
            f.plan(epilog=lambda v: v * 7)
            f.execute()
    messages = [r.getMessage() for r in caplog.records if r.name == "user.gpu.fft"]
    assert any("planned C2C complex64" in m and "GPU 0" in m for m in messages), messages
    assert any("epilog" in m and ("compiled" in m or "found in the cache" in m) for m in messages), messages
