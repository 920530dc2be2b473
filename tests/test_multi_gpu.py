"""Two GPUs in one process (marked multi_gpu: skipped with fewer than two): plans on the operand's
device, one compiled callback for both, plan caches that never mix, data on the wrong device
refused, and concurrent use from threads and streams, each result against a float64 reference."""

from __future__ import annotations

import concurrent.futures
import gc

import numpy as np
import pytest

import nvmath
from helpers import assert_close, rand
from nvmath.fft import _gpu

pytestmark = [pytest.mark.gpu, pytest.mark.multi_gpu]

cp = pytest.importorskip("cupy")

B, N = 512, 256


def close(got, want):
    assert isinstance(got, cp.ndarray)
    assert_close(got, want, rtol=1e-4)


def on(device, host):
    with cp.cuda.Device(device):
        return cp.asarray(host)


def filt(v, d):
    return v * d


def unscale(v):
    return v * (1.0 / N)


def convolve(x, h, stream=None):
    """ifft(fft(x) * h) / N, the filter fused into the forward FFT's epilog."""
    y = nvmath.fft.fft(x, axes=[-1], epilog={"fn": filt, "data": h}, stream=stream)
    return nvmath.fft.ifft(y, axes=[-1], epilog=unscale, stream=stream)


def plans_for(shape):
    """The live cuFFT plans of problems on operands of ``shape``, as (device, plan)."""
    return [(p.device_id, p) for p in gc.get_objects()
            if type(p) is _gpu.GpuPlan and p.handle is not None and p.problem.operand.shape == shape]


def convolution_reference(x, h):
    return np.fft.ifft(np.fft.fft(x.astype(np.complex128), axis=-1) * h, axis=-1)


def test_each_operand_is_planned_and_run_on_its_own_device():
    x, h = rand((B + 3, N), "complex64", 1), rand((B + 3, N), "complex64", 2)  # a shape no other test plans
    for device, other in ((0, 1), (1, 0)):
        xd, hd = on(device, x), on(device, h)
        with cp.cuda.Device(other):  # the current device is the *other* one
            before = _gpu.plan_cache.created
            y = nvmath.fft.fft(xd, axes=[-1], epilog={"fn": filt, "data": hd})
            assert _gpu.plan_cache.created == before + 1
        assert y.device.id == device
        close(y, np.fft.fft(x.astype(np.complex128), axis=-1) * h)
    assert sorted(d for d, _ in plans_for(x.shape)) == [0, 1], "each device's operand planned on that device"


def test_one_compiled_callback_serves_both_devices():
    from fftfuse_cache import default_store

    def ramp(v, d):  # a callback no other test compiles
        return v * d + 0.25

    x, h = rand((64, N), "complex64", 3), rand((64, N), "complex64", 4)
    keys = {key for key, _ in default_store().entries()}
    for device in (0, 1):
        close(nvmath.fft.fft(on(device, x), axes=[-1], epilog={"fn": ramp, "data": on(device, h)}),
              np.fft.fft(x.astype(np.complex128), axis=-1) * h + 0.25)
    new = [meta for key, meta in default_store().entries() if key not in keys]
    archs = {cp.cuda.Device(d).compute_capability for d in (0, 1)}
    assert len(new) == len(archs), f"expected one cache entry per architecture {sorted(archs)}, got {len(new)}"


def test_per_device_plans_never_mix():
    x, h = rand((B + 5, N), "complex64", 5), rand((B + 5, N), "complex64", 6)
    xs, hs = [on(d, x) for d in (0, 1)], [on(d, h) for d in (0, 1)]
    before = _gpu.plan_cache.created
    for _ in range(3):  # alternate: the same problem and callback on each device
        for d in (0, 1):
            y = nvmath.fft.fft(xs[d], axes=[-1], epilog={"fn": filt, "data": hs[d]})
            assert y.device.id == d
            close(y, np.fft.fft(x.astype(np.complex128), axis=-1) * h)
    assert _gpu.plan_cache.created - before == 2, "one plan per device, reused by later calls"
    assert sorted(d for d, _ in plans_for(x.shape)) == [0, 1]


@pytest.mark.parametrize("where", ["prolog", "epilog"])
def test_user_data_on_the_other_device_is_refused(where):
    x = on(0, rand((16, N), "complex64", 7))
    d = on(1, rand((16, N), "complex64", 8))
    with pytest.raises(ValueError, match=r"data is on GPU 1 but the operand is on GPU 0"):
        nvmath.fft.fft(x, axes=[-1], **{where: {"fn": filt, "data": d}})
    with pytest.raises(ValueError, match=r"data is on GPU 1 but the operand is on GPU 0"):
        with nvmath.fft.FFT(x, axes=[-1]) as f:
            f.plan(**{where: {"fn": filt, "data": d}})


def _drive(device, seed, calls, streams_per_gpu):
    """One thread driving one GPU: ``calls`` convolutions over its streams, data new per call."""
    with cp.cuda.Device(device):
        streams = [cp.cuda.Stream(non_blocking=True) for _ in range(streams_per_gpu)]
        work = []
        for i in range(calls):
            x, h = rand((B, N), "complex64", seed + 2 * i), rand((B, N), "complex64", seed + 2 * i + 1)
            stream = streams[i % streams_per_gpu]
            with stream:
                xd, hd = cp.asarray(x), cp.asarray(h)
            work.append((x, h, convolve(xd, hd, stream=stream)))
        for s in streams:
            s.synchronize()
    for x, h, y in work:
        assert y.device.id == device
        close(y, convolution_reference(x, h))
    return len(work)


@pytest.mark.parametrize("streams_per_gpu", [1, 2])
def test_two_threads_each_driving_one_gpu(streams_per_gpu):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        done = list(pool.map(_drive, (0, 1), (100, 200), (8, 8), (streams_per_gpu,) * 2))
    assert done == [8, 8]


def test_fft_objects_on_two_devices_used_alternately_from_one_thread():
    hs = [rand((B, N), "complex64", 10 + d) for d in (0, 1)]
    xs = [rand((B, N), "complex64", 20 + d) for d in (0, 1)]
    ffts = []
    for d in (0, 1):
        f = nvmath.fft.FFT(on(d, xs[d]), axes=[-1])
        f.plan(epilog={"fn": filt, "data": on(d, hs[d])})
        ffts.append(f)
    try:
        for step in range(3):
            for d in (1, 0):  # device 1 first: not the current device
                x = rand((B, N), "complex64", 30 + 2 * step + d)
                ffts[d].reset_operand(on(d, x))
                y = ffts[d].execute()
                assert y.device.id == d
                close(y, np.fft.fft(x.astype(np.complex128), axis=-1) * hs[d])
    finally:
        for f in ffts:
            f.free()
