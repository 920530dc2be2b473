"""The chain's one-kernel route on a GPU: ``filtered`` / ``FilteredFFT`` run as one numba-cuda kernel
around cuFFTDx, checked against float64 NumPy references on random inputs and against the
two-plans route, for every length, precision and step form the route takes, complex operands
(C2C) and real ones (R2C, the pointwise step on the half spectrum, C2R)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import assert_close, chain_reference, rand, relative_error

pytestmark = pytest.mark.gpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = 37  # not a multiple of any FFTs-per-block: the last block holds rows past the end


@pytest.fixture(autouse=True)
def auto_takes_one_kernel(monkeypatch):
    """These tests run the one kernel through route="auto" too (its default, and in the processes
    they start)."""
    monkeypatch.delenv("FFTFUSE_ONE_KERNEL", raising=False)


def test_by_default_auto_runs_one_kernel_and_the_switch_keeps_two_plans(monkeypatch):
    import cupy

    from nvmath.fft import filtered, FilteredFFT

    x, h = random((ROWS, 256), np.complex64), random((256,), np.complex64, seed=1)
    want = np.fft.ifft(np.fft.fft(x.astype(np.complex128)) * h)
    for switch, route in ((None, "one-kernel"), ("0", "two-plans")):
        if switch is not None:
            monkeypatch.setenv("FFTFUSE_ONE_KERNEL", switch)
        with FilteredFFT(cupy.asarray(x), axes=[-1]) as f:
            f.plan(pointwise={"fn": lambda v, d: v * d, "data": cupy.asarray(h)})
            assert f.route == route, f.describe()
            assert (switch is None) != ("FFTFUSE_ONE_KERNEL=0" in f.describe())
            got = cupy.asnumpy(f.execute())
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    forced = filtered(cupy.asarray(x), axes=[-1], pointwise={"fn": lambda v, d: v * d, "data": cupy.asarray(h)},
                      route="one-kernel")
    np.testing.assert_allclose(cupy.asnumpy(forced), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def random(shape, dtype, seed=0):
    return rand(shape, dtype, seed)


def reference(x, prolog=None, pointwise=None, epilog=None, norm="backward"):
    """The chain over the last axis."""
    return chain_reference(np.asarray(x, np.complex128), [-1], prolog, pointwise, epilog, norm)


def tolerance(dtype):
    return 2e-5 if np.dtype(dtype) in (np.complex64, np.float32) else 1e-11


def check(got, want, dtype):
    assert got.dtype == np.dtype(dtype)
    assert_close(got, want, rtol=tolerance(dtype))


def mul(v, d):
    return v * d


def square(v):
    return v * v


def ramp(v, b, k):
    return v * (1 + k) / (1 + b)


def mul_ramp(v, d, b, k):
    return v * d * (1 + k) / (1 + b)


def ramp_3d(v, a, b, k):
    return v * (1 + k) / (1 + a + 2 * b)


def magnitude(v):
    return v * abs(v)  # not linear: tells where the forward's scale sits


def run_both(x, **steps):
    """The chain as one kernel (checked to be the route taken) and as two plans."""
    import cupy

    from nvmath.fft import FilteredFFT, filtered

    with FilteredFFT(x, axes=[-1]) as f:
        f.plan(**steps)
        assert f.route == "one-kernel", f.describe()
        one = f.execute()
        cupy.cuda.get_current_stream().synchronize()
    two = filtered(x, axes=[-1], route="two-plans", **steps)
    return one, two


# -- lengths and precisions -------------------------------------------------------------------------

@pytest.mark.parametrize("n,dtype", [(n, np.complex64) for n in (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)]
                         + [(n, np.complex128) for n in (16, 128, 1024, 4096)])
def test_lengths_and_precisions_with_an_n_filter(n, dtype):
    import cupy

    x, h = random((ROWS, n), dtype), random((n,), dtype, seed=1)
    one, two = run_both(cupy.asarray(x), pointwise={"fn": mul, "data": cupy.asarray(h)})
    want = reference(x, pointwise=lambda a, i: a * h)
    check(one, want, dtype)
    check(two, want, dtype)
    assert relative_error(cupy.asnumpy(one), cupy.asnumpy(two).astype(np.complex128)) < tolerance(dtype)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_a_full_size_filter_and_a_window(dtype):
    import cupy

    x = random((ROWS, 1024), dtype)
    w = np.hanning(1024).astype(np.float32 if dtype == np.complex64 else np.float64)
    h = random((ROWS, 1024), dtype, seed=2)
    steps = dict(prolog={"fn": mul, "data": cupy.asarray(w)}, pointwise={"fn": mul, "data": cupy.asarray(h)})
    one, two = run_both(cupy.asarray(x), **steps)
    want = reference(x, prolog=lambda a, i: a * w, pointwise=lambda a, i: a * h)
    check(one, want, dtype)
    check(two, want, dtype)


# -- every form the route takes, in each step -------------------------------------------------------

FORMS = ("plain", "row", "full", "index", "data_index")


def form(name, shape, dtype, draw=random):
    """(callback, its reference ``f(array, indices)``) for a step seeing ``shape`` of ``dtype``;
    ``draw(shape, dtype, seed)`` makes its data of ``dtype``."""
    import cupy

    if name == "plain":
        return square, lambda a, i: a * a
    if name == "row":
        d = draw(shape[-1:], dtype, seed=3)
        return {"fn": mul, "data": cupy.asarray(d)}, lambda a, i: a * d
    if name == "full":
        d = draw(shape, dtype, seed=4)
        return {"fn": mul, "data": cupy.asarray(d)}, lambda a, i: a * d
    if name == "index":
        return ramp, lambda a, i: a * (1 + i[-1]) / (1 + i[0])
    d = random(shape[-1:], np.finfo(dtype).dtype, seed=5)  # real data
    return {"fn": mul_ramp, "data": cupy.asarray(d)}, lambda a, i: a * d * (1 + i[-1]) / (1 + i[0])


@pytest.mark.parametrize("step", ["prolog", "pointwise", "epilog"])
@pytest.mark.parametrize("name", FORMS)
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_every_form_of_each_step(step, name, dtype):
    import cupy

    x = random((ROWS, 256), dtype)
    callback, ref = form(name, x.shape, dtype)
    one, two = run_both(cupy.asarray(x), **{step: callback})
    want = reference(x, **{step: ref})
    check(one, want, dtype)
    check(two, want, dtype)


def test_all_three_steps_on_a_3d_operand_with_indices():
    import cupy

    x = random((3, 5, 128), np.complex64)
    w = np.hanning(128).astype(np.float32)
    e = random((3, 5, 128), np.complex64, seed=6)
    steps = dict(prolog={"fn": mul, "data": cupy.asarray(w)}, pointwise=ramp_3d,
                 epilog={"fn": mul, "data": cupy.asarray(e)})
    one, two = run_both(cupy.asarray(x), **steps)
    want = reference(x, lambda a, i: a * w, lambda a, i: a * (1 + i[-1]) / (1 + i[0] + 2 * i[1]),
                     lambda a, i: a * e)
    check(one, want, np.complex64)
    check(two, want, np.complex64)


@pytest.mark.parametrize("shape", [(1024,), (3, 64), (1, 16)])
def test_fewer_rows_than_a_block_and_a_1d_operand(shape):
    import cupy

    x = random(shape, np.complex64)
    h = random(shape[-1:], np.complex64, seed=7)
    one, _ = run_both(cupy.asarray(x), pointwise={"fn": mul, "data": cupy.asarray(h)}, epilog=square)
    check(one, reference(x, pointwise=lambda a, i: a * h, epilog=lambda a, i: a * a), np.complex64)


# -- norm ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("norm", [None, "backward", "ortho", "forward"])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_norms(norm, dtype):
    import cupy

    x = random((ROWS, 64), dtype)
    one, two = run_both(cupy.asarray(x), pointwise=magnitude, epilog=ramp, norm=norm)
    want = reference(x, pointwise=lambda a, i: a * np.abs(a), epilog=lambda a, i: a * (1 + i[-1]) / (1 + i[0]),
                     norm=norm)
    check(one, want, dtype)
    check(two, want, dtype)


@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
def test_no_pointwise_step_gives_the_operand_back(norm):
    import cupy

    x = random((ROWS, 512), np.complex64)
    one, _ = run_both(cupy.asarray(x), norm=norm)
    check(one, x.astype(np.complex128), np.complex64)


# -- a real operand: R2C, the pointwise step on the half spectrum, C2R ----------------------------------

SPECTRUM = {np.float32: np.complex64, np.float64: np.complex128}


def half_spectrum(shape, dtype, seed=0):
    """Data for a half spectrum (``shape[-1] == n//2 + 1``) with real DC and Nyquist bins, as the
    spectrum of a real row has: NumPy's C2R reads only their real parts and cuFFT and cuFFTDx
    assume them real, so a spectrum times it is one all three invert alike."""
    n = 2 * (shape[-1] - 1)
    return np.fft.rfft(random(tuple(shape[:-1]) + (n,), np.float64, seed)).astype(dtype)


def real_reference(x, prolog=None, pointwise=None, epilog=None, norm="backward"):
    """The chain of a real operand over the last axis (rfft, the half spectrum, irfft), in float64."""
    return chain_reference(np.asarray(x, np.float64), [-1], prolog, pointwise, epilog, norm)


def ramp_4d(v, a, b, c, k):
    return v * (1 + k) / (1 + a + 2 * b + 3 * c)


@pytest.mark.parametrize("n,dtype", [(n, np.float32) for n in (16, 32, 128, 512, 1024, 2048, 4096)]
                         + [(n, np.float64) for n in (16, 256, 4096)])
def test_a_real_operand_of_each_length_and_precision_with_a_half_spectrum_filter(n, dtype):
    import cupy

    x, h = random((ROWS, n), dtype), half_spectrum((n // 2 + 1,), SPECTRUM[dtype], seed=1)
    one, two = run_both(cupy.asarray(x), pointwise={"fn": mul, "data": cupy.asarray(h)})
    want = real_reference(x, pointwise=lambda a, i: a * h)
    check(one, want, dtype)
    check(two, want, dtype)
    assert relative_error(cupy.asnumpy(one), cupy.asnumpy(two).astype(np.float64)) < tolerance(dtype)


@pytest.mark.parametrize("step", ["prolog", "pointwise", "epilog"])
@pytest.mark.parametrize("name", FORMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_form_of_each_step_on_a_real_operand(step, name, dtype):
    import cupy

    x = random((ROWS, 256), dtype)
    if step == "pointwise":  # the complex half spectrum, 129 elements a row
        callback, ref = form(name, (ROWS, 129), SPECTRUM[dtype], draw=half_spectrum)
    else:  # the real rows
        callback, ref = form(name, x.shape, dtype)
    one, two = run_both(cupy.asarray(x), **{step: callback})
    want = real_reference(x, **{step: ref})
    check(one, want, dtype)
    check(two, want, dtype)


def test_all_three_steps_on_a_real_operand_with_two_batch_axes():
    import cupy

    x = random((3, 5, 128), np.float32)
    w = np.hanning(128).astype(np.float32)
    e = random((3, 5, 128), np.float32, seed=6)
    steps = dict(prolog={"fn": mul, "data": cupy.asarray(w)}, pointwise=ramp_3d,
                 epilog={"fn": mul, "data": cupy.asarray(e)})
    one, two = run_both(cupy.asarray(x), **steps)
    want = real_reference(x, lambda a, i: a * w, lambda a, i: a * (1 + i[-1]) / (1 + i[0] + 2 * i[1]),
                          lambda a, i: a * e)
    check(one, want, np.float32)
    check(two, want, np.float32)


def test_a_full_size_half_spectrum_filter_on_a_4d_double_operand():
    import cupy

    x = random((2, 3, 4, 256), np.float64)
    h = half_spectrum((2, 3, 4, 129), np.complex128, seed=7)
    one, two = run_both(cupy.asarray(x), pointwise={"fn": mul, "data": cupy.asarray(h)}, epilog=ramp_4d)
    want = real_reference(x, pointwise=lambda a, i: a * h,
                          epilog=lambda a, i: a * (1 + i[-1]) / (1 + i[0] + 2 * i[1] + 3 * i[2]))
    check(one, want, np.float64)
    check(two, want, np.float64)


@pytest.mark.parametrize("shape", [(1024,), (3, 64), (1, 16)])
def test_a_real_operand_of_fewer_rows_than_a_block_and_a_1d_one(shape):
    import cupy

    x = random(shape, np.float32)
    h = half_spectrum((shape[-1] // 2 + 1,), np.complex64, seed=8)
    one, _ = run_both(cupy.asarray(x), pointwise={"fn": mul, "data": cupy.asarray(h)}, epilog=square)
    check(one, real_reference(x, pointwise=lambda a, i: a * h, epilog=lambda a, i: a * a), np.float32)


@pytest.mark.parametrize("norm", [None, "backward", "ortho", "forward"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_norms_on_a_real_operand(norm, dtype):
    import cupy

    x = random((ROWS, 64), dtype)
    one, two = run_both(cupy.asarray(x), pointwise=magnitude, epilog=ramp, norm=norm)
    want = real_reference(x, pointwise=lambda a, i: a * np.abs(a), epilog=lambda a, i: a * (1 + i[-1]) / (1 + i[0]),
                          norm=norm)
    check(one, want, dtype)
    check(two, want, dtype)


@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
def test_no_pointwise_step_gives_a_real_operand_back(norm):
    import cupy

    x = random((ROWS, 512), np.float32)
    one, _ = run_both(cupy.asarray(x), norm=norm)
    check(one, x.astype(np.float64), np.float32)


def test_describe_and_the_log_tell_one_kernel_for_a_real_operand(caplog):
    import logging

    import cupy

    from nvmath.fft import FilteredFFT

    x = random((8, 1024), np.float32)
    with caplog.at_level(logging.INFO, logger="fftfuse.fft"), FilteredFFT(cupy.asarray(x), axes=[-1]) as f:
        f.plan(pointwise=square)
        text = f.describe()
        got = f.execute()
    assert "chain R2C/C2R float32" in text and "route: one-kernel" in text, text
    assert "cuFFTDx Block r2c/c2r n=1024 float32" in text and "rfft in registers" in text
    logged = [r.getMessage() for r in caplog.records if "route" in r.getMessage()]
    assert any("rfft->irfft: route one-kernel on cufftdx" in m for m in logged), logged
    check(got, real_reference(x, pointwise=lambda a, i: a * a), np.float32)


def test_a_real_host_operand_runs_one_kernel_on_the_gpu_and_comes_back():
    from nvmath.fft import FilteredFFT

    x = random((ROWS, 512), np.float64)
    with FilteredFFT(x, axes=[-1], execution="cuda") as f:
        f.plan(pointwise=square)
        assert f.route == "one-kernel", f.describe()
        got = f.execute()
    assert isinstance(got, np.ndarray)
    check(got, real_reference(x, pointwise=lambda a, i: a * a), np.float64)


def test_stateless_calls_on_real_operands_rerun_one_kernel_apart_from_the_complex_one():
    import cupy

    from nvmath.fft import _chain_kernel, filtered

    results = []
    for seed in range(3):
        x, h = random((ROWS, 256), np.float32, seed), half_spectrum((129,), np.complex64, seed + 10)
        results.append((filtered(cupy.asarray(x), axes=[-1], pointwise={"fn": mul, "data": cupy.asarray(h)}), x, h))
        if seed == 0:
            compiled = dict(_chain_kernel._kernels)
    assert _chain_kernel._kernels == compiled
    assert any(config.fft_type == "r2c" and config.length == 256 for config, _ in compiled)
    for got, x, h in results:
        check(got, real_reference(x, pointwise=lambda a, i: a * h), np.float32)
    # A complex operand of the same length and precision: another kernel, and its own result.
    z, hz = random((ROWS, 256), np.complex64, 20), random((256,), np.complex64, 21)
    got = filtered(cupy.asarray(z), axes=[-1], pointwise={"fn": mul, "data": cupy.asarray(hz)})
    check(got, reference(z, pointwise=lambda a, i: a * hz), np.complex64)
    assert any(config.fft_type == "c2c" and config.length == 256 for config, _ in _chain_kernel._kernels)


# -- the route: chosen, described, forced, cached -------------------------------------------------------

def test_describe_tells_the_route_and_the_knobs():
    import cupy

    from nvmath.fft import FilteredFFT

    with FilteredFFT(cupy.asarray(random((8, 1024), np.complex64)), axes=[-1]) as f:
        f.plan(pointwise=square)
        text = f.describe()
    assert "route: one-kernel" in text and "2 FFTs per block, 16 elements per thread" in text
    assert "block (64, 2, 1)" in text


def test_a_length_the_kernel_does_not_take_runs_two_plans_and_cannot_be_forced():
    import cupy

    from nvmath.fft import FilteredFFT, filtered

    x = random((4, 40), np.complex64)
    with FilteredFFT(cupy.asarray(x), axes=[-1]) as f:
        f.plan(pointwise=square)
        assert f.route == "two-plans" and "length 40" in f.chain_plan.reason
        check(f.execute(), reference(x, pointwise=lambda a, i: a * a), np.complex64)
    with pytest.raises(ValueError, match="length 40"):
        filtered(cupy.asarray(x), axes=[-1], pointwise=square, route="one-kernel")


def test_a_warm_process_compiles_no_kernel_for_a_chain_of_the_same_kind():
    import cupy

    from nvmath.fft import FilteredFFT, _chain_kernel

    x = cupy.asarray(random((ROWS, 128), np.complex64))
    h = cupy.asarray(random((128,), np.complex64, seed=8))
    with FilteredFFT(x, axes=[-1]) as f:
        f.plan(pointwise={"fn": mul, "data": h})
        first = f.execute()
    compiled = dict(_chain_kernel._kernels)
    other = cupy.asarray(random((2 * ROWS, 128), np.complex64, seed=9))  # another batch: the same kernel
    with FilteredFFT(other, axes=[-1]) as f:
        f.plan(pointwise={"fn": mul, "data": h})
        second = f.execute()
    assert _chain_kernel._kernels == compiled
    check(first, reference(cupy.asnumpy(x), pointwise=lambda a, i: a * cupy.asnumpy(h)), np.complex64)
    check(second, reference(cupy.asnumpy(other), pointwise=lambda a, i: a * cupy.asnumpy(h)), np.complex64)


def test_stateless_calls_rerun_the_kernel_with_each_calls_arrays():
    import cupy

    from nvmath.fft import _chain_kernel, filtered

    results = []
    for seed in range(3):
        x, h = random((ROWS, 256), np.complex64, seed), random((256,), np.complex64, seed + 10)
        results.append((filtered(cupy.asarray(x), axes=[-1], pointwise={"fn": mul, "data": cupy.asarray(h)}), x, h))
        if seed == 0:
            compiled = dict(_chain_kernel._kernels)
    assert _chain_kernel._kernels == compiled
    for got, x, h in results:
        check(got, reference(x, pointwise=lambda a, i: a * h), np.complex64)


def test_a_host_operand_runs_on_the_gpu_and_comes_back():
    from nvmath.fft import filtered

    x = random((ROWS, 512), np.complex64)
    got = filtered(x, axes=[-1], execution="cuda", pointwise=square)
    assert isinstance(got, np.ndarray)
    check(got, reference(x, pointwise=lambda a, i: a * a), np.complex64)


def test_a_chain_on_a_stream_of_its_own():
    import cupy

    from nvmath.fft import FilteredFFT

    x = random((4096, 1024), np.complex64)
    h = random((1024,), np.complex64, seed=11)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        xd, hd = cupy.asarray(x), cupy.asarray(h)
    stream.synchronize()
    with FilteredFFT(xd, axes=[-1], stream=stream) as f:
        f.plan(pointwise={"fn": mul, "data": hd})
        assert f.route == "one-kernel"
        got = f.execute(stream=stream)
        stream.synchronize()
    check(got, reference(x, pointwise=lambda a, i: a * h), np.complex64)


def test_a_changed_global_gives_another_kernel():
    import cupy

    from nvmath.fft import filtered

    global GAIN
    x = random((ROWS, 64), np.complex64)
    for GAIN in (2.0, 3.0):
        got = filtered(cupy.asarray(x), axes=[-1], pointwise=gained)
        check(got, reference(x, pointwise=lambda a, i: a * GAIN), np.complex64)


GAIN = 2.0


def gained(v):
    return v * GAIN


_PROBE = r"""
import json, sys
import cupy, numpy as np
from nvmath.fft import FilteredFFT
from fftfuse_compiler import kernel_cache, link_cache
def mul(v, d):
    return v * d
x = cupy.asarray((np.arange(8 * 256) % 7 + 1j).astype(np.complex64).reshape(8, 256))
h = cupy.asarray(np.linspace(0, 1, 256).astype(np.complex64))
with FilteredFFT(x, axes=[-1]) as f:
    f.plan(pointwise={"fn": mul, "data": h})
    y = cupy.asnumpy(f.execute())
    route = f.route
want = np.fft.ifft(np.fft.fft(cupy.asnumpy(x).astype(np.complex128)) * cupy.asnumpy(h))
print(json.dumps({"route": route, "error": float(np.abs(y - want).max() / np.abs(want).max()), **link_cache.stats(),
                  "kernel": kernel_cache.stats()}))
"""


def test_a_second_process_links_nothing(tmp_path):
    env = dict(os.environ, FFTFUSE_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=os.pathsep.join(
        filter(None, [ROOT, os.environ.get("PYTHONPATH", "")])))

    def run():
        out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, cwd=ROOT,
                             timeout=300)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second = run(), run()
    assert first["route"] == second["route"] == "one-kernel"
    assert first["misses"] == 1 and first["error"] < 2e-5
    # The kernel cache serves the whole kernel: nothing is typed, lowered or linked.
    assert second["kernel"]["hits"] == 1 and second["kernel"]["misses"] == 0
    assert second == {**second, "hits": 0, "misses": 0} and second["error"] < 2e-5


def test_tuning_keeps_the_fastest_pair_and_later_plans_take_it():
    import cupy

    from nvmath.fft import FilteredFFT, tune_chains

    (row,) = tune_chains(lengths=[4096], precisions=["float32"], mib=16, repeats=2)
    assert row["n"] == 4096 and row["precision"] == "float32" and len(row["timings_ms"]) >= 2
    fpb, ept = row["chosen"]
    assert row["timings_ms"][f"{fpb}x{ept}"] == min(row["timings_ms"].values())
    x = random((ROWS, 4096), np.complex64)
    with FilteredFFT(cupy.asarray(x), axes=[-1]) as f:
        f.plan(pointwise=square)
        assert f.route == "one-kernel" and f"{fpb} FFTs per block, {ept} elements per thread" in f.describe()
        got = cupy.asnumpy(f.execute())
    want = np.fft.ifft(np.fft.fft(x.astype(np.complex128)) ** 2)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
