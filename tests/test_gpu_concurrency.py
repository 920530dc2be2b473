"""Plans shared by streams and threads, evicted while in use, and freed engines, on a real GPU:
every result is checked against a float64 reference (marked gpu: skipped without one)."""

from __future__ import annotations

import concurrent.futures
import os

import numpy as np
import pytest

import nvmath
from nvmath.fft import _gpu

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")

# Large enough that the host queues calls faster than the GPU runs them: FFTs of one plan on two
# streams would overlap (a 65536 x 1024 problem gave 20 wrong results of 40 without ordering).
# (The sanitizer run, whose tools slow kernels many times over, shrinks it.)
ROWS, N = int(os.environ.get("FFTFUSE_TEST_ROWS", 32768)), 1024
# Calls per thread in the threaded test: fewer under the sanitizer, where every replanning and
# every check's reduction is instrumented (still more problems than the plan cache holds).
CALLS_PER_THREAD = 6 if "FFTFUSE_TEST_ROWS" in os.environ else 24


def times(v, d):
    return v * d


def rand(shape, dtype, seed):
    """Random normal values of ``dtype`` (real or complex), drawn on the GPU."""
    rng = cp.random.RandomState(seed)
    real = np.float32 if np.dtype(dtype) in (np.float32, np.complex64) else np.float64
    x = rng.standard_normal(shape, dtype=real)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape, dtype=real)
    return x.astype(dtype)


def rel_error(got, want) -> float:
    return float(cp.abs(got.astype(cp.complex128) - want).max()) / max(float(cp.abs(want).max()), 1.0)


def fft64(x):
    """The float64 reference of a forward FFT over the last axis, on the GPU."""
    return cp.fft.fft(x.astype(cp.complex128), axis=-1)


def two_streams():
    return [cp.cuda.Stream(non_blocking=True) for _ in range(2)]


def test_stateless_calls_alternating_data_over_two_streams():
    x = rand((ROWS, N), "complex64", 1)
    data = [rand((ROWS, N), "complex64", seed) for seed in (2, 3)]
    plain = fft64(x)
    refs = [plain * d.astype(cp.complex128) for d in data]
    streams = two_streams()
    cp.cuda.Device().synchronize()
    outs = []
    for k in range(20):
        i = k % 2
        outs.append((i, nvmath.fft.fft(x, axes=[-1], epilog={"fn": times, "data": data[i]}, stream=streams[i])))
    cp.cuda.Device().synchronize()
    errors = [rel_error(out, refs[i]) for i, out in outs]
    wrong = [k for k, e in enumerate(errors) if e > 2e-3]
    assert not wrong, f"{len(wrong)} wrong results of {len(outs)} (calls {wrong}); errors {errors}"


def test_stateful_fft_with_an_input_copy_alternating_streams():
    # A real operand of a C2C FFT is read through a complex copy: the copy must not be shared by streams.
    reals = [rand((ROWS, N), "float32", seed) for seed in (4, 5)]
    d = rand((ROWS, N), "complex64", 6)
    refs = [fft64(r) * d.astype(cp.complex128) for r in reals]
    streams = two_streams()
    cp.cuda.Device().synchronize()
    outs = []
    with nvmath.fft.FFT(reals[0], axes=[-1], options={"fft_type": "C2C"}, stream=streams[0]) as f:
        f.plan(epilog={"fn": times, "data": d})
        for k in range(16):
            i = k % 2
            f.reset_operand(reals[i], stream=streams[i])
            outs.append((i, f.execute(stream=streams[i])))
    cp.cuda.Device().synchronize()
    errors = [rel_error(out, refs[i]) for i, out in outs]
    assert max(errors) < 2e-3, errors


def test_threads_with_more_problems_than_the_plan_cache_holds(monkeypatch):
    monkeypatch.setattr(_gpu.plan_cache, "capacity", 2)
    shapes = [(64, 256), (32, 512), (16, 1024), (128, 128)]
    xs = {s: rand(s, "complex64", 10 + k) for k, s in enumerate(shapes)}
    data = {(t, s): rand(s, "complex64", 20 + 4 * t + k) for t in range(4) for k, s in enumerate(shapes)}
    refs = {key: fft64(xs[key[1]]) * d.astype(cp.complex128) for key, d in data.items()}
    cp.cuda.Device().synchronize()
    failures = []

    def work(t):
        stream = cp.cuda.Stream(non_blocking=True)
        for k in range(CALLS_PER_THREAD):
            shape = shapes[(k + t) % len(shapes)]
            out = nvmath.fft.fft(xs[shape], axes=[-1], epilog={"fn": times, "data": data[t, shape]}, stream=stream)
            stream.synchronize()
            err = rel_error(out, refs[t, shape])
            if err > 2e-3:
                failures.append((t, k, shape, err))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(work, t) for t in range(4)]:
            future.result()  # re-raises a thread's exception
    assert not failures, failures[:5]


def test_calls_that_bypass_the_hot_path_do_not_free_its_plan(monkeypatch):
    monkeypatch.setattr(_gpu.plan_cache, "capacity", 1)
    x = rand((64, 512), "complex64", 30)
    other = rand((32, 256), "complex64", 31)
    d = rand((64, 512), "complex64", 32)
    want = fft64(x) * d.astype(cp.complex128)
    for _ in range(3):
        out = nvmath.fft.fft(x, axes=[-1], epilog={"fn": times, "data": d})  # an engine reused by the next call
        assert rel_error(out, want) < 2e-3
        # options= takes the full path and its plan evicts the one the engine above holds
        evictor = nvmath.fft.fft(other, axes=[-1], epilog=lambda v: v * 2, options={"blocking": True})
        assert rel_error(evictor, fft64(other) * 2) < 2e-3


GAIN = 2.0


def gained(v):
    return v * GAIN


def test_a_changed_global_replans_while_the_old_plan_is_evicted(monkeypatch):
    monkeypatch.setattr(_gpu.plan_cache, "capacity", 1)
    x = rand((64, 512), "complex64", 40)
    plain = fft64(x)
    for gain in (2.0, 3.0, 2.0, 5.0, 5.0):
        monkeypatch.setitem(globals(), "GAIN", gain)
        assert rel_error(nvmath.fft.fft(x, axes=[-1], epilog=gained), plain * gain) < 2e-3
        nvmath.fft.fft(rand((8, 64), "complex64", 41), axes=[-1])  # another plan takes the only place


@pytest.mark.parametrize("how", ["free", "with"])
def test_execute_after_free_raises_instead_of_running_unfused(how):
    x = rand((16, 256), "complex64", 50)
    f = nvmath.fft.FFT(x, axes=[-1])
    if how == "free":
        f.plan(epilog=lambda v: v * 3)
        assert rel_error(f.execute(), fft64(x) * 3) < 2e-3
        f.free()
    else:
        with f:
            f.plan(epilog=lambda v: v * 3)
            assert rel_error(f.execute(), fft64(x) * 3) < 2e-3
    with pytest.raises(RuntimeError, match="freed"):
        f.execute()


def test_callback_slots_hold_one_record_per_callback_in_stream_order():
    slots = _gpu.CallbackSlots({"prolog": 8, "epilog": 24})  # a data pointer; a pointer and 2 parameters
    assert slots.address("epilog") - slots.address("prolog") == 8
    stream = cp.cuda.Stream(non_blocking=True)
    params = np.array([7, 8], np.uint64).tobytes()
    for values, want in [((5, b"", 6, params), [5, 6, 7, 8]), ((5, b"", 6, params), [5, 6, 7, 8]),
                         ((9, b"", 2**64 - 1, params[:8]), [9, 2**64 - 1, 7, 0])]:
        slots.write(values, stream.ptr)
        stream.synchronize()
        host = np.zeros(4, np.uint64)
        cp.cuda.runtime.memcpy(host.ctypes.data, slots.address("prolog"), 32, cp.cuda.runtime.memcpyDeviceToHost)
        assert host.tolist() == want
