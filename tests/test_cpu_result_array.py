"""The CPU executor's result array: given no output, an engine that allocates its result (SciPy's)
hands its array over as the result, the epilog applied once, in place on it; given an output (the
user's operand with ``inplace=True``, or an array passed to ``run``), that output is written.

Every result is checked against float64 NumPy on random inputs, with data far from 1 so that an
epilog skipped or applied twice is off by far more than the tolerance.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import nvmath
from helpers import assert_close, rand
from fftfuse_compiler.cpu_backend import compile_cpu, python_callback
from nvmath.fft import _cpu, _cpu_engines, _reuse
from nvmath.fft._cpu import CpuExecutor
from nvmath.fft._cpu_engines import forget_choices
from nvmath.fft._executor import CallArgs, CallData
from nvmath.fft._layout import plan_problem

RNG = np.random.default_rng(2024)


@pytest.fixture(autouse=True)
def own_engines(monkeypatch):
    monkeypatch.setattr(_reuse.stateless_engines, "local", threading.local())
    monkeypatch.delenv("FFTFUSE_DEBUG", raising=False)
    forget_choices()
    yield
    forget_choices()


def cplx(shape, dtype=np.complex128):
    return rand(shape, dtype, RNG)


def far_from_one(shape, dtype=np.complex128):
    """Filter values of modulus 2 to 3: a filter applied twice or not at all is off by 2x or more."""
    return (RNG.uniform(2, 3, shape) * np.exp(2j * np.pi * RNG.random(shape))).astype(dtype)


def mul(v, d):
    return v * d


def add_one(x):
    return x + 1


def close(got, want, dtype):
    assert_close(got, want, dtype, rtol=2e-5 if np.dtype(dtype) in (np.complex64, np.float32) else 1e-11)


def call(inp, out, direction, epilog_data):
    """One run's arguments with data for the epilog only."""
    return CallArgs(inp, out, direction, None, CallData(None, (), epilog_data, ()))


class Recorder:
    """Wraps scipy.fft's functions, and those of SciPy's compiled FFT module where the engine calls
    it, to keep every array they return."""

    def __init__(self, monkeypatch):
        import scipy.fft

        self.made = []
        for name in ("fft", "ifft", "rfft", "irfft", "fftn", "ifftn", "rfftn", "irfftn"):
            real = getattr(scipy.fft, name)
            monkeypatch.setattr(scipy.fft, name, self.wrap(real))
        module = _cpu_engines.scipy_fft_module()
        for name in ("c2c", "r2c", "c2r") if module is not None else ():
            monkeypatch.setattr(module, name, self.wrap(getattr(module, name)))

    def wrap(self, real):
        def recorded(*args, **kwargs):
            result = real(*args, **kwargs)
            self.made.append(result)
            return result

        return recorded


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("workers", [1, 2])
def test_stateful_result_is_scipys_array_with_the_epilog_applied_once(monkeypatch, dtype, workers):
    if workers > 1:
        monkeypatch.setattr(_cpu, "THREAD_BYTES", 0)  # threads for the epilog's pass at any size
    recorder = Recorder(monkeypatch)
    x, h = cplx((48, 64), dtype), far_from_one((48, 64), dtype)
    kept = x.copy()
    options = {"cpu_engine": "scipy"}
    with nvmath.fft.FFT(x, axes=[-1], options=options, execution=nvmath.fft.ExecutionCPU(num_threads=workers)) as f:
        f.plan(epilog={"fn": mul, "data": h})
        assert f._executor.engine_choice.engine == "scipy"
        results = []
        for _ in range(3):
            y = f.execute()
            assert any(y is made for made in recorder.made), "the result is not the array SciPy returned"
            results.append(y)
    want = np.fft.fft(x.astype(np.complex128), axis=-1) * h
    for y in results:  # each call's own array: a later call does not overwrite an earlier result
        close(y, want, dtype)
    assert len({y.ctypes.data for y in results}) == 3
    np.testing.assert_array_equal(x, kept)  # the operand is not the engine's scratch


def test_a_copied_input_is_never_handed_out_as_the_result():
    """A real operand of a C2C transform is copied into the FFT's own complex input buffer, which
    SciPy may transform in place: that buffer is reused by the next call, so it must not become
    a result."""
    results, wants = [], []
    x = RNG.standard_normal((12, 32))
    h = far_from_one((12, 32))
    with nvmath.fft.FFT(x, axes=[-1], options={"cpu_engine": "scipy", "fft_type": "C2C"}) as f:
        f.plan(epilog={"fn": mul, "data": h})
        for _ in range(3):
            operand = RNG.standard_normal((12, 32))
            f.reset_operand(operand)
            results.append(f.execute())
            wants.append(np.fft.fft(operand, axis=-1) * h)
    for y, want in zip(results, wants):
        close(y, want, np.complex128)


def test_no_output_is_allocated_when_the_engine_makes_one():
    problem = plan_problem("fft", (16, 32), (32, 1), "complex128", axes=(1,))
    executor = CpuExecutor(problem, None, compile_cpu(mul, "epilog", "complex128", "complex128"), workers=1,
                           engine="scipy")

    def refuse():
        raise AssertionError("an output was allocated although the engine made one")

    executor._new_output = refuse
    x, h = cplx((16, 32)), far_from_one((16, 32))
    y = executor.run(call(x, None, "forward", h.reshape(-1)))
    close(y, np.fft.fft(x, axis=-1) * h, np.complex128)


@pytest.mark.parametrize("engine", ["scipy", "ducc0", "ducc0-chunks", "ducc0-padded"])
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_a_given_output_is_written_and_returned(engine, direction):
    problem = plan_problem("fft", (24, 64), (64, 1), "complex128", axes=(1,))
    executor = CpuExecutor(problem, compile_cpu(add_one, "prolog", "complex128"),
                           compile_cpu(mul, "epilog", "complex128", "complex128"), workers=1, engine=engine)
    x, h = cplx((24, 64)), far_from_one((24, 64))
    out = np.full_like(x, np.nan)
    assert executor.run(call(x, out, direction, h.reshape(-1))) is out
    transform = np.fft.fft if direction == "forward" else (lambda a, axis: np.fft.ifft(a, axis=axis) * a.shape[axis])
    close(out, transform(x + 1, axis=-1) * h, np.complex128)
    fresh = executor.run(call(x, None, direction, h.reshape(-1)))  # no output: a new array
    assert not np.shares_memory(fresh, out) and not np.shares_memory(fresh, x)
    close(fresh, out, np.complex128)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_r2c_and_c2r_on_scipy_apply_prolog_and_epilog_once(dtype):
    complex_dtype = np.result_type(dtype, np.complex64)
    x = RNG.standard_normal((20, 30)).astype(dtype)
    h = far_from_one((20, 16), complex_dtype)
    options = {"cpu_engine": "scipy"}
    with nvmath.fft.FFT(x, axes=[-1], options=options) as f:
        f.plan(prolog=add_one, epilog={"fn": mul, "data": h})
        y = f.execute()
    close(y, np.fft.rfft(x.astype(np.float64) + 1, axis=-1) * h, complex_dtype)
    w = (RNG.uniform(2, 3, (20, 30)) * RNG.choice([-1, 1], (20, 30))).astype(dtype)  # real weights, modulus 2-3
    spectrum = cplx((20, 16), complex_dtype)
    spectrum[:, 0] = spectrum[:, 0].real  # a real signal's spectrum: DC and Nyquist real
    spectrum[:, -1] = spectrum[:, -1].real
    kept = spectrum.copy()
    with nvmath.fft.FFT(spectrum, axes=[-1], options={**options, "fft_type": "C2R", "last_axis_parity": "even"}) as f:
        f.plan(epilog={"fn": mul, "data": w}, direction="inverse")
        z = f.execute(direction="inverse")
    close(z, np.fft.irfft(kept.astype(np.complex128), n=30, axis=-1) * 30 * w, dtype)
    np.testing.assert_array_equal(spectrum, kept)  # C2R may overwrite its input: the operand's copy was used


def test_in_place_writes_the_users_operand_once():
    x, h = cplx((16, 64)), far_from_one((16, 64))
    expect = (np.fft.fft(x + 1, axis=-1)) * h
    with nvmath.fft.FFT(x, axes=[-1], options={"cpu_engine": "scipy", "inplace": True}) as f:
        f.plan(prolog=add_one, epilog={"fn": mul, "data": h})
        y = f.execute()
    assert y is x
    close(x, expect, np.complex128)


def test_stateless_calls_on_scipy_each_get_their_own_result(monkeypatch):
    monkeypatch.setenv("FFTFUSE_CPU_ENGINE", "scipy")
    results, wants = [], []
    for _ in range(4):  # the first plans, the second lays out, the rest pass their data as given
        x, h = cplx((8, 128)), far_from_one((8, 128))
        results.append(nvmath.fft.fft(x, axes=[-1], epilog={"fn": mul, "data": h}))
        wants.append(np.fft.fft(x, axis=-1) * h)
    for y, want in zip(results, wants):
        close(y, want, np.complex128)
    key = _reuse.reuse_key(("fft",), x, [-1], None, None, None, {"fn": mul, "data": h})
    engine = _reuse.stateless_engines.mine()[key][0]
    assert engine._executor.engine_choice.engine == "scipy" and engine.direct_data == (False, True)


@pytest.mark.parametrize("engine", ["scipy", "ducc0"])
def test_stateless_reruns_never_write_the_operand(monkeypatch, engine):
    """C2R may overwrite its input, and a real operand of fft is made complex: both transform
    a private copy, on every call of the hot path too."""
    monkeypatch.setenv("FFTFUSE_CPU_ENGINE", engine)
    for _ in range(4):
        spectrum = cplx((6, 9))
        spectrum[:, 0] = spectrum[:, 0].real
        kept = spectrum.copy()
        w = far_from_one((6, 16)).real
        y = nvmath.fft.irfft(spectrum, axes=[-1], epilog={"fn": mul, "data": w})
        close(y, np.fft.irfft(kept, n=16, axis=-1) * 16 * w, np.float64)
        np.testing.assert_array_equal(spectrum, kept)
        x = RNG.standard_normal((6, 16))
        kept = x.copy()
        close(nvmath.fft.fft(x, axes=[-1], epilog={"fn": mul, "data": w + 0j}), np.fft.fft(kept, axis=-1) * w,
              np.complex128)
        np.testing.assert_array_equal(x, kept)


def test_debug_mode_on_scipy_runs_on_the_engines_array():
    problem = plan_problem("fft", (6, 16), (16, 1), "complex128", axes=(1,))
    epilog = python_callback(mul, "epilog", "complex128", "complex128")
    executor = CpuExecutor(problem, None, epilog, workers=1, debug=True, engine="scipy")
    x, h = cplx((6, 16)), far_from_one((6, 16))
    close(executor.run(call(x, None, "forward", h.reshape(-1))), np.fft.fft(x, axis=-1) * h, np.complex128)


# -- the fast path inside run: arrays that are not the planned ones take the general path ------
def fast_executor():
    problem = plan_problem("fft", (2, 64), (64, 1), "complex64", axes=(1,))
    executor = CpuExecutor(problem, None, compile_cpu(mul, "epilog", "complex64", "complex64"), workers=1)
    assert executor._fast_run("forward") is not None
    return executor


def test_fast_path_refuses_another_layout_with_the_general_paths_message():
    executor = fast_executor()
    with pytest.raises(ValueError, match="does not match the planned input"):
        executor.run(call(cplx((64, 2), np.complex64).T, None, "forward", far_from_one(128, np.complex64)))


def test_fast_path_refuses_short_data():
    executor = fast_executor()
    with pytest.raises(ValueError, match="reads user data at positions up to 127"):
        executor.run(call(cplx((2, 64), np.complex64), None, "forward", far_from_one(100, np.complex64)))


def test_fast_path_reads_strided_data_right():
    executor = fast_executor()
    x, h = cplx((2, 64), np.complex64), far_from_one(256, np.complex64)
    y = executor.run(call(x, None, "forward", h[::2]))  # not contiguous: the general path copies it
    close(y, np.fft.fft(x.astype(np.complex128), axis=-1) * h[::2].reshape(2, 64), np.complex64)
    y = executor.run(call(x, None, "forward", np.ascontiguousarray(h[::2])))
    close(y, np.fft.fft(x.astype(np.complex128), axis=-1) * h[::2].reshape(2, 64), np.complex64)


def test_fast_path_checks_a_plans_data_once_and_again_when_it_changes(monkeypatch):
    """The same data array on every run is checked on the first (0.2 us a run instead of 1);
    once its size, type or strides change it is checked again. (Its memory cannot move: NumPy
    refuses to resize an array that a weak reference, as the check keeps, points to.)"""
    executor = fast_executor()
    checked = []
    read = _cpu._data_read
    monkeypatch.setattr(_cpu, "_data_read", lambda *a: checked.append(1) or read(*a))
    x, h = cplx((2, 64), np.complex64), far_from_one(256, np.complex64)
    want = np.fft.fft(x.astype(np.complex128), axis=-1)
    first = h[:128]
    for _ in range(3):
        close(executor.run(call(x, None, "forward", first)), want * first.reshape(2, 64), np.complex64)
    assert len(checked) == 1
    data = h[:128].copy()
    close(executor.run(call(x, None, "forward", data)), want * data.reshape(2, 64), np.complex64)
    data.shape = (2, 64)  # another shape, the same memory: checked again, read as before
    close(executor.run(call(x, None, "forward", data)), want * data, np.complex64)
    data.shape = (128,)
    data.dtype = np.float32  # the same memory as another type: refused as the first run would
    with pytest.raises(ValueError, match="compiled for user data of complex64"):
        executor.run(call(x, None, "forward", data))
    assert len(checked) == 4


def test_fast_path_keeps_no_data_alive():
    import gc
    import weakref

    executor = fast_executor()
    x, h = cplx((2, 64), np.complex64), far_from_one(128, np.complex64)
    executor.run(call(x, None, "forward", h))
    gone = weakref.ref(h)
    del h
    gc.collect()
    assert gone() is None
