"""The stateless CPU hot path: a repeated ``fft(x, epilog=...)`` on NumPy arrays reruns the engine
of an earlier call, its data passed as given and the executor's fast path taking the layout
decisions once (``CpuExecutor.run``). Every rerun must
give what a fresh engine gives: each call's operand and data, read where they lie, against
float64 references with random inputs."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import nvmath
from nvmath.fft import _reuse

RNG = np.random.default_rng(11)


@pytest.fixture(autouse=True)
def own_engines(monkeypatch):
    monkeypatch.setattr(_reuse.stateless_engines, "local", threading.local())
    monkeypatch.delenv("FFTFUSE_DEBUG", raising=False)


def cplx(shape, dtype=np.complex64):
    return (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(dtype)


def real(shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def engine_of(*call):
    """The engine the hot path keeps for a call (``direct_data``: its rerun without ``execute``)."""
    return _reuse.stateless_engines.mine()[_reuse.reuse_key(call[:1], *call[1:])][0]


def mul(v, d):
    return v * d


def add_one(v):
    return v + 1


@pytest.mark.parametrize("shape", [(1, 1024), (3, 64), (64,)])
def test_each_call_filters_its_own_operand_with_its_own_data(shape):
    for _ in range(4):
        x, h = cplx(shape), cplx(shape[-1:])
        y = nvmath.fft.fft(x, axes=[-1], epilog={"fn": mul, "data": h})
        expect = np.fft.fft(x.astype(np.complex128), axis=-1) * h
        np.testing.assert_allclose(y, expect, rtol=2e-5, atol=2e-4 * np.sqrt(shape[-1]))
    engine = engine_of("fft", x, [-1], None, None, None, {"fn": mul, "data": h})
    assert engine.direct_data == (False, True)
    assert engine._executor._fast_run("forward") is not None


def test_data_changed_in_place_is_read_on_the_next_call():
    x, h = cplx((2, 32)), cplx((32,))
    first = nvmath.fft.fft(x, axes=[-1], epilog={"fn": mul, "data": h})
    second = nvmath.fft.fft(x, axes=[-1], epilog={"fn": mul, "data": h})
    h *= 3
    third = nvmath.fft.fft(x, axes=[-1], epilog={"fn": mul, "data": h})
    np.testing.assert_allclose(second, first, rtol=0, atol=0)
    np.testing.assert_allclose(third, 3 * first, rtol=1e-6, atol=1e-4)


def test_results_are_new_arrays_and_the_operand_is_untouched():
    x = cplx((4, 16))
    kept = x.copy()
    ys = [nvmath.fft.fft(x, prolog=add_one, epilog={"fn": mul, "data": cplx((4, 16))}) for _ in range(3)]
    assert len({y.ctypes.data for y in ys}) == 3
    np.testing.assert_array_equal(x, kept)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_prolog_and_epilog_c2c_both_directions(dtype):
    for direction, reference in (("forward", np.fft.fft), ("inverse", lambda a, axis: np.fft.ifft(a, axis=axis) * a.shape[axis])):
        for _ in range(3):
            x, h = cplx((3, 40), dtype), cplx((40,), dtype)
            y = nvmath.fft.fft(x, axes=[-1], prolog=add_one, epilog={"fn": mul, "data": h}, direction=direction)
            expect = reference((x + 1).astype(np.complex128), axis=-1) * h
            np.testing.assert_allclose(y, expect, rtol=1e-4, atol=1e-3)


def test_rfft_and_irfft_with_prolog_and_epilog():
    for _ in range(3):
        x, h = real((5, 64)), cplx((33,))
        y = nvmath.fft.rfft(x, axes=[-1], prolog=add_one, epilog={"fn": mul, "data": h})
        np.testing.assert_allclose(y, np.fft.rfft(x.astype(np.float64) + 1, axis=-1) * h, rtol=1e-4, atol=1e-3)
    for _ in range(3):
        s, w = cplx((5, 33)), real((64,))
        z = nvmath.fft.irfft(s, axes=[-1], prolog=add_one, epilog={"fn": mul, "data": w})
        np.testing.assert_allclose(z, np.fft.irfft(s.astype(np.complex128) + 1, n=64, axis=-1) * 64 * w,
                                   rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(s, s.copy())  # irfft reads its operand without overwriting it


def test_strided_operand_and_data_that_must_be_copied():
    base = cplx((8, 128))
    x = base[::2, ::2]  # strided operand: read where it lies
    h_base = cplx((4, 64, 2))
    for _ in range(3):
        h = h_base[..., 0]  # data of the output shape, other strides: laid out (a copy) on each call
        y = nvmath.fft.fft(x, axes=[-1], epilog={"fn": mul, "data": h})
        np.testing.assert_allclose(y, np.fft.fft(x.astype(np.complex128), axis=-1) * h, rtol=1e-4, atol=1e-3)
        h_base *= 2


def test_cufft_form_epilog_takes_the_full_path_and_stays_right():
    def swap(data_out, offset, value, user_info, shared):  # writes its neighbour: not elementwise
        data_out[offset] = value * user_info[offset]

    x, h = cplx((2, 16)), cplx((2, 16))
    for _ in range(3):
        y = nvmath.fft.fft(x, axes=[-1], epilog={"fn": swap, "data": h.reshape(-1)})
        np.testing.assert_allclose(y, np.fft.fft(x.astype(np.complex128)) * h, rtol=1e-4, atol=1e-3)
    assert engine_of("fft", x, [-1], None, None, None, {"fn": swap, "data": h.reshape(-1)})._executor._fast_run(
        "forward") is None


def test_runtime_parameters_on_the_cpu_take_the_hot_path_with_each_calls_values(monkeypatch):
    from nvmath.fft import _api

    made = []
    planned = _api.make_plan
    monkeypatch.setattr(_api, "make_plan", lambda *a, **k: made.append(1) or planned(*a, **k))

    def gain(v, d, *, g=2.0, k=1):
        return v * d * g + k

    x, h = cplx((2, 16)), cplx((16,))
    for g, k in ((1.5, 1), (4.0, -3), (0.25, 7)):
        y = nvmath.fft.fft(x, axes=[-1], epilog={"fn": gain, "data": h, "params": {"g": g, "k": k}})
        np.testing.assert_allclose(y, np.fft.fft(x.astype(np.complex128)) * h * g + k, rtol=1e-4, atol=1e-3)
    assert len(made) == 1  # new values, the same plan
    y = nvmath.fft.fft(x, axes=[-1], epilog={"fn": gain, "data": h, "params": {"g": 2, "k": 1.5}})  # other types
    np.testing.assert_allclose(y, np.fft.fft(x.astype(np.complex128)) * h * 2 + 1.5, rtol=1e-4, atol=1e-3)
    assert len(made) == 2


def test_a_chain_with_runtime_parameters_on_the_cpu_reuses_its_plans_with_each_calls_values(monkeypatch):
    from nvmath.fft import _api

    made = []
    planned = _api.make_plan
    monkeypatch.setattr(_api, "make_plan", lambda *a, **k: made.append(1) or planned(*a, **k))

    def scale(v, *, s):
        return v * s

    x, h = cplx((3, 32)), cplx((32,))
    for s in (0.5, 3.0):
        y = nvmath.fft.filtered(x, axes=[-1], pointwise={"fn": lambda v, d: v * d, "data": h},
                                epilog={"fn": scale, "params": {"s": s}})
        expect = np.fft.ifft(np.fft.fft(x.astype(np.complex128)) * h) * s
        np.testing.assert_allclose(y, expect, rtol=1e-4, atol=1e-4)
    assert len(made) == 2  # the forward and the inverse plan, once


def test_read_only_data_is_read():
    x, h = cplx((2, 32)), cplx((32,))
    h.flags.writeable = False
    for _ in range(3):
        y = nvmath.fft.fft(x, axes=[-1], epilog={"fn": mul, "data": h})
    np.testing.assert_allclose(y, np.fft.fft(x.astype(np.complex128)) * h, rtol=1e-4, atol=1e-3)


def test_stateful_execute_follows_reset_operand_and_replanning():
    x, h = cplx((4, 64)), cplx((64,))
    with nvmath.fft.FFT(x, axes=[-1]) as f:
        f.plan(epilog={"fn": mul, "data": h})
        for _ in range(2):
            np.testing.assert_allclose(f.execute(), np.fft.fft(x.astype(np.complex128)) * h, rtol=1e-4, atol=1e-3)
        x2 = cplx((4, 64))
        f.reset_operand(x2)
        np.testing.assert_allclose(f.execute(), np.fft.fft(x2.astype(np.complex128)) * h, rtol=1e-4, atol=1e-3)
        h2 = cplx((4, 64))  # planned again with other data (of another shape): the new data is read
        f.plan(prolog=add_one, epilog={"fn": mul, "data": h2})
        np.testing.assert_allclose(f.execute(), np.fft.fft(x2.astype(np.complex128) + 1) * h2, rtol=1e-4, atol=1e-3)
        inverse = f.execute(direction="inverse")
        np.testing.assert_allclose(inverse, np.fft.ifft(x2.astype(np.complex128) + 1) * 64 * h2, rtol=1e-4, atol=1e-3)


def test_length_one_fft_axes_are_skipped_without_changing_the_result():
    for shape, axes in (((1, 256), None), ((1, 8, 32), (0, 1, 2)), ((5, 1, 16), (1, 2))):
        x = cplx(shape)
        for _ in range(2):
            y = nvmath.fft.fft(x, axes=axes, epilog=add_one)
            np.testing.assert_allclose(y, np.fft.fftn(x.astype(np.complex128), axes=axes) + 1, rtol=1e-4, atol=1e-3)
        r = real(shape)
        z = nvmath.fft.rfft(r, axes=axes)
        np.testing.assert_allclose(z, np.fft.rfftn(r.astype(np.float64), axes=axes), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("threads", [1, 3])
def test_small_problems_give_the_fft_to_ducc0s_threads(monkeypatch, threads):
    """Below THREAD_BYTES the loops run on the calling thread and ducc0 threads the FFT itself,
    with the threads asked for (one per 64 KiB at most): on the general path and the quick one."""
    import ducc0

    monkeypatch.setenv("FFTFUSE_CPU_ENGINE", "ducc0")  # threaded calls are measured: keep ducc0's
    seen = []
    real = ducc0.fft.c2c

    def c2c(*args, **kwargs):
        seen.append(kwargs["nthreads"] if "nthreads" in kwargs else args[5])
        return real(*args, **kwargs)

    monkeypatch.setattr(ducc0.fft, "c2c", c2c)
    x, h = cplx((256, 128)), cplx((128,))  # 256 KiB: up to 4 threads
    execution = nvmath.fft.ExecutionCPU(num_threads=threads)
    with nvmath.fft.FFT(x, axes=[-1], execution=execution) as f:
        f.plan(epilog={"fn": mul, "data": h})
        for _ in range(2):
            np.testing.assert_allclose(f.execute(), np.fft.fft(x.astype(np.complex128)) * h, rtol=1e-4, atol=1e-3)
    y = nvmath.fft.fft(x, axes=[-1], execution=execution, epilog={"fn": mul, "data": h})
    np.testing.assert_allclose(y, np.fft.fft(x.astype(np.complex128)) * h, rtol=1e-4, atol=1e-3)
    assert seen and set(seen) == {threads}
    seen.clear()
    one_row = cplx((1, 1024))  # 8 KiB: one thread, whatever is asked
    nvmath.fft.fft(one_row, axes=[-1], execution=execution, epilog={"fn": mul, "data": cplx((1024,))})
    assert seen == [1]


def test_in_place_c2c_with_prolog_and_epilog_overwrites_the_operand():
    x, h = cplx((8, 32)), cplx((32,))
    with nvmath.fft.FFT(x, axes=[-1], options={"inplace": True}) as f:
        f.plan(prolog=add_one, epilog={"fn": mul, "data": h})
        for _ in range(3):
            expect = np.fft.fft(x.astype(np.complex128) + 1) * h
            y = f.execute()
            assert y is x
            np.testing.assert_allclose(x, expect, rtol=1e-4, atol=1e-3)


def test_device_callable_and_parser_spellings_take_the_hot_path_with_each_calls_data(monkeypatch):
    from nvmath.fft import _api

    made = []
    real = _api.make_plan
    monkeypatch.setattr(_api, "make_plan", lambda *a, **k: made.append(1) or real(*a, **k))
    x = cplx((3, 48))
    spellings = (lambda h: nvmath.fft.DeviceCallable(fn=mul, data=h),
                 lambda h: {"fn": mul, "data": h, "params": None})
    for make in spellings:
        for _ in range(3):
            h = cplx((48,))
            y = nvmath.fft.fft(x, axes=[-1], epilog=make(h))
            np.testing.assert_allclose(y, np.fft.fft(x.astype(np.complex128), axis=-1) * h, rtol=2e-5, atol=2e-3)
    assert len(made) == 1  # one engine: the spellings of one callback share it
    callable_ = nvmath.fft.DeviceCallable(fn=mul, data=cplx((48,)))
    nvmath.fft.fft(x, axes=[-1], epilog=callable_)
    callable_.data = h = cplx((48,))  # the same object, other data: read on the next call
    y = nvmath.fft.fft(x, axes=[-1], epilog=callable_)
    np.testing.assert_allclose(y, np.fft.fft(x.astype(np.complex128), axis=-1) * h, rtol=2e-5, atol=2e-3)
    callable_.fn = lambda v, d: v + d  # other code: planned again
    y = nvmath.fft.fft(x, axes=[-1], epilog=callable_)
    np.testing.assert_allclose(y, np.fft.fft(x.astype(np.complex128), axis=-1) + h, rtol=2e-5, atol=2e-3)
    assert len(made) == 2


@pytest.mark.parametrize("value, on", [(None, False), ("", False), ("0", False), ("off", False), ("No", False),
                                       ("1", True), ("yes", True), ("TRUE", True)])
def test_the_debug_switch_is_read_from_the_environment_on_every_call(monkeypatch, value, on):
    from nvmath.fft._options import debug_env

    monkeypatch.setenv("FFTFUSE_DEBUG", "1")
    assert debug_env()
    if value is None:
        monkeypatch.delenv("FFTFUSE_DEBUG")
    else:
        monkeypatch.setenv("FFTFUSE_DEBUG", value)
    assert debug_env() is on
