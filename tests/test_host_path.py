"""The GPU hot path on the CPU (CuPy and cuFFT faked, tests/fake_gpu.py): a reused stateless
engine and a stateful FFT hand cuFFT each call's operand, output, data, stream and device, and
anything that changes the callbacks' meaning takes the full path again."""

from __future__ import annotations

import gc
import sys
import threading

import numpy as np
import pytest

import nvmath
from fake_gpu import FakeGpu, read
from nvmath.fft import _gpu, _reuse

GAIN = 2.0  # read by a callback below; the tests change it


@pytest.fixture
def gpu(monkeypatch):
    fake = FakeGpu().install(monkeypatch, keep_memory=True)
    monkeypatch.setattr(_gpu, "plan_cache", _gpu.PlanCache())
    monkeypatch.setattr(_reuse.stateless_engines, "local", threading.local())  # this test's engines only
    monkeypatch.delenv("FFTFUSE_DEBUG", raising=False)
    yield fake
    # Engines and plans of the fake go while it is in place (freeing calls the fake cuFFT).
    _reuse.stateless_engines.mine().clear()
    gc.collect()
    _gpu.plan_cache.clear()


def device_array(shape, dtype=np.complex64, seed=0):
    cupy = sys.modules["cupy"]
    rng = np.random.default_rng(seed)
    host = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if np.dtype(dtype).kind == "c" else 0)
    return cupy.asarray(host.astype(dtype))


def test_a_reused_engine_gets_each_calls_operand_and_a_new_output(gpu):
    xs = [device_array((4, 64), seed=k) for k in range(3)]
    ys = [nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v * 2) for x in xs]  # a new lambda each call
    assert gpu.plans_made == 1 and len(gpu.launches) == 3
    for x, y, launch in zip(xs, ys, gpu.launches):
        assert (launch.input, launch.output, launch.direction) == (x.data.ptr, y.data.ptr, -1)
        assert y.shape == (4, 64) and y.dtype == np.complex64
    assert len({y.data.ptr for y in ys}) == 3
    y = nvmath.fft.ifft(xs[0], axes=[-1], epilog=lambda v: v * 2)
    assert gpu.plans_made == 2 and gpu.launches[-1].direction == 1 and gpu.launches[-1].output == y.data.ptr


def test_each_calls_data_reaches_the_slot(gpu):
    x = device_array((4, 64))
    filters = [device_array((4, 64), seed=k) for k in (1, 2, 1)]
    for f in filters:
        nvmath.fft.fft(x, axes=[-1], epilog={"fn": lambda v, d: v * d, "data": f})
    assert gpu.plans_made == 1
    assert [next(iter(launch.caller_info.values()))[1] for launch in gpu.launches] == [f.data.ptr for f in filters]


def filter_by_offset(data_out, offset, element, user_info, unused):  # cuFFT's form: it indexes the data
    data_out[offset] = element * user_info[offset]


def test_data_in_another_layout_is_copied_on_each_call(gpu):
    x = device_array((4, 64))
    for seed in (1, 2):
        wide = device_array((4, 128), seed=seed)
        data = wide[:, ::2]  # the output's shape, strides the offsets do not walk
        nvmath.fft.fft(x, axes=[-1], epilog={"fn": filter_by_offset, "data": data})
        slot = next(iter(gpu.launches[-1].caller_info.values()))[1]
        assert slot != data.data.ptr
        np.testing.assert_array_equal(read(slot, np.complex64, 4 * 64), data.get().reshape(-1))
    assert gpu.plans_made == 1


def test_an_operand_cufft_would_overwrite_is_copied_on_each_call(gpu):
    for seed in (1, 2):
        x = device_array((4, 33), seed=seed)
        nvmath.fft.irfft(x, axes=[-1], epilog=lambda v: v * 2)  # C2R overwrites its input
        launch = gpu.launches[-1]
        assert launch.input != x.data.ptr
        np.testing.assert_array_equal(read(launch.input, np.complex64, 4 * 33), x.get().reshape(-1))
    assert gpu.plans_made == 1


def test_outputs_in_the_optimized_layout_are_allocated_strided(gpu):
    x = device_array((64, 4))
    ys = [nvmath.fft.fft(x, axes=[0], epilog=lambda v: v * 2) for _ in range(2)]  # FFT axis innermost
    for y, launch in zip(ys, gpu.launches):
        assert y.shape == (64, 4) and y.strides == (8, 64 * 8) and launch.output == y.data.ptr
    assert ys[0].data.ptr != ys[1].data.ptr


def gain_by(v, *, g):  # g: a runtime parameter, in the data slot after the pointer
    return v * g


def test_each_calls_runtime_parameters_reach_the_slot(gpu):
    x = device_array((4, 64), np.complex128)
    for g in (2.0, 3.0, 2.5):
        nvmath.fft.fft(x, axes=[-1], epilog={"fn": gain_by, "params": {"g": g}})
    assert gpu.plans_made == 1
    slots = [next(iter(launch.slot_bytes.values())) for launch in gpu.launches]
    assert [float(np.frombuffer(s[8:16], np.float64)[0]) for s in slots] == [2.0, 3.0, 2.5]


def gain_epilog(v):
    return v * GAIN


def test_a_changed_global_or_closure_value_takes_the_full_path(gpu, monkeypatch):
    x = device_array((4, 64))
    nvmath.fft.fft(x, axes=[-1], epilog=gain_epilog)
    nvmath.fft.fft(x, axes=[-1], epilog=gain_epilog)
    monkeypatch.setattr(sys.modules[__name__], "GAIN", 3.0)
    nvmath.fft.fft(x, axes=[-1], epilog=gain_epilog)  # new constant: new LTO-IR, new plan
    assert gpu.plans_made == 2
    plans = [launch.plan for launch in gpu.launches]
    assert plans[0] == plans[1] != plans[2]

    def scaled(gain):
        return lambda v: v * gain

    for gain in (4.0, 5.0, 4.0, 4.0):
        nvmath.fft.fft(x, axes=[-1], epilog=scaled(gain))
    plans = [launch.plan for launch in gpu.launches[3:]]
    assert plans[0] == plans[2] == plans[3] != plans[1]


def test_each_calls_stream_is_used(gpu):
    cupy = sys.modules["cupy"]
    x = device_array((4, 64))
    s1, s2 = cupy.cuda.Stream(), cupy.cuda.Stream()

    def call(stream=None):  # one code object: the calls after the first reuse its engine
        return nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v * 2, stream=stream)

    call(s1)
    with s2:
        call()  # CuPy's current stream, not the first call's
    call(12345)
    call()
    assert [launch.stream for launch in gpu.launches] == [s1.ptr, s2.ptr, 12345, 0]
    assert gpu.plans_made == 1 and len(_reuse.stateless_engines.mine()) == 1


def test_each_operand_runs_on_its_device(gpu):
    cupy = sys.modules["cupy"]
    x0 = device_array((4, 64))
    with cupy.cuda.Device(1):
        x1 = device_array((4, 64))
    for x in (x0, x1, x0, x1):
        nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v * 2)
        assert cupy.cuda.runtime.getDevice() == 0  # the caller's device is current again
    with cupy.cuda.Device(1):
        nvmath.fft.fft(x0, axes=[-1], epilog=lambda v: v * 2)
        assert cupy.cuda.runtime.getDevice() == 1
    assert [launch.device for launch in gpu.launches] == [0, 1, 0, 1, 0]
    assert gpu.plans_made == 2 and gpu.launches[0].plan == gpu.launches[2].plan != gpu.launches[1].plan


def test_debug_mode_switched_on_between_calls_is_honoured(gpu, monkeypatch):
    x = device_array((2, 16), np.complex128)

    def call():  # one code object: the second call would reuse the first one's engine
        return nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v * 2)

    call()
    monkeypatch.setenv("FFTFUSE_DEBUG", "1")
    y = call()  # on the CPU, as plain Python
    assert len(gpu.launches) == 1
    np.testing.assert_allclose(y.get(), 2 * np.fft.fft(x.get(), axis=-1), rtol=1e-12, atol=1e-12)


def test_stateful_execute_follows_reset_operand_and_replanning(gpu):
    cupy = sys.modules["cupy"]
    x, x2, f = device_array((4, 64)), device_array((4, 64), seed=1), device_array((4, 64), seed=2)
    with nvmath.fft.FFT(x, axes=[-1]) as fft:
        fft.plan(epilog={"fn": lambda v, d: v * d, "data": f})
        y = fft.execute()
        ((info, _),) = gpu.launches[-1].caller_info.values()
        assert info == f.data.ptr  # a stateful plan owns its data: the pointer itself
        assert (gpu.launches[-1].input, gpu.launches[-1].output) == (x.data.ptr, y.data.ptr)
        fft.reset_operand(x2)
        s = cupy.cuda.Stream()
        y2 = fft.execute(stream=s)
        assert (gpu.launches[-1].input, gpu.launches[-1].output, gpu.launches[-1].stream) == (
            x2.data.ptr, y2.data.ptr, s.ptr)
        first = gpu.launches[-1].plan
        f2 = device_array((4, 64), seed=3)
        fft.plan(epilog={"fn": lambda v, d: v * d, "data": f2})  # new data: a new plan, and its pointer
        fft.execute(direction="inverse")
        ((info, _),) = gpu.launches[-1].caller_info.values()
        assert gpu.launches[-1].plan != first and gpu.launches[-1].direction == 1 and info == f2.data.ptr
    with pytest.raises(RuntimeError, match="freed"):
        fft.execute()


def test_stateful_set_params_reaches_the_next_launch(gpu):
    x = device_array((4, 64), np.complex128)
    with nvmath.fft.FFT(x, axes=[-1]) as fft:
        fft.plan(epilog={"fn": gain_by, "params": {"g": 2.0}})
        fft.execute()
        fft.set_params(epilog={"g": 5.0})
        fft.execute()
    slots = [next(iter(launch.slot_bytes.values())) for launch in gpu.launches]
    assert [float(np.frombuffer(s[8:16], np.float64)[0]) for s in slots] == [2.0, 5.0]
