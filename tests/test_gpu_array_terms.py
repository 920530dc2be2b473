"""Callbacks in array terms, what only the GPU has (marked gpu): CuPy views as data, stream order
of runtime parameters, and the GPU against the CPU executor and the debug mode on one callback.
The features themselves run on every execution in tests/test_array_terms.py."""

from __future__ import annotations

import cmath

import numpy as np
import pytest

import nvmath
from helpers import assert_close, rand, wide

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")


def mul(x, d):
    return x * d


def test_broadcast_view_and_refusal():
    x = cp.asarray(rand((16, 512), "complex64", 2))
    w = cp.asarray(rand((512,), "float32", 3))
    got = nvmath.fft.fft(x, axes=[-1], prolog={"fn": mul, "data": cp.broadcast_to(w, (16, 512))})
    assert_close(got, np.fft.fft(wide(x) * wide(w), axis=-1), "complex64")
    with pytest.raises(ValueError, match=r"data of shape \(16, 2\) does not broadcast to the result shape \(16, 512\)"):
        nvmath.fft.fft(x, axes=[-1], epilog={"fn": mul, "data": cp.ones((16, 2), cp.complex64)})


def ramp(x, b, k):
    return x * (1.0 + 0.01 * k) + 0.5 * b


@pytest.mark.parametrize("layout", ["transposed", "strided"])
def test_index_and_broadcast_on_permuted_and_strided_operands(layout):
    base = rand((96, 64), "complex64", 5)
    x_host = base.T if layout == "transposed" else base[:, ::2]
    x = cp.asarray(base).T if layout == "transposed" else cp.asarray(base)[:, ::2]
    h = rand((x_host.shape[-1],), "complex64", 6)
    got = nvmath.fft.fft(x, axes=[-1], prolog=ramp, epilog={"fn": lambda v, d, b, k: v * d - 0.125 * k,
                                                            "data": cp.asarray(h)})
    b, k = np.indices(x_host.shape)
    want = np.fft.fft(wide(x_host) * (1.0 + 0.01 * k) + 0.5 * b, axis=-1) * h - 0.125 * k
    assert_close(got, want, "complex64")


def phase_ramp(v, b, k, *, shift, gain):
    return v * gain * cmath.exp(2j * cmath.pi * k * shift / 256)


def test_parameters_change_on_a_stateful_plan_in_stream_order(events):
    """Executions queued back to back on one stream, each with its own values, see their own."""
    x = cp.asarray(rand((16, 256), "complex128", 9))
    w = cp.asarray(rand((256,), "float64", 10))
    s = cp.cuda.Stream(non_blocking=True)
    values = [(0.0, 1.0, 1.0), (1.5, 2.0, 2.0), (-4.25, 0.5, 0.0), (9.0, 3.0, 3.0)]
    with nvmath.fft.FFT(x, axes=[-1], stream=s) as f:
        f.plan(prolog={"fn": lambda v, d, *, p: v * d**p, "data": w, "params": {"p": 1.0}},
               epilog={"fn": phase_ramp, "params": {"shift": 0.0, "gain": 1.0}})
        before = (events.compiles, events.plans)
        results = []
        for shift, gain, p in values:
            f.set_params(prolog={"p": p}, epilog={"shift": shift, "gain": gain})
            results.append(f.execute(stream=s))
        s.synchronize()
        assert (events.compiles, events.plans) == before
    b, k = np.indices((16, 256))
    for (shift, gain, p), got in zip(values, results):
        want = np.fft.fft(wide(x) * wide(w) ** p, axis=-1) * gain * np.exp(2j * np.pi * k * shift / 256)
        assert_close(got, want, "complex128")


def test_gpu_cpu_and_debug_mode_agree():
    xh = rand((6, 10, 16), "float64", 11)
    mask = np.random.default_rng(12).uniform(0.0, 1.0, (10, 9))
    spec = lambda data: {"fn": lambda v, d, b, i, j, *, s: v * d * (1 + s * j) + b, "data": data,  # noqa: E731
                         "params": {"s": 0.125}}
    gpu = nvmath.fft.rfft(cp.asarray(xh), axes=[1, 2], epilog=spec(cp.asarray(mask)))
    cpu = nvmath.fft.rfft(xh, axes=[1, 2], epilog=spec(mask))
    debug = nvmath.fft.rfft(cp.asarray(xh), axes=[1, 2], epilog=spec(cp.asarray(mask)), options={"debug": True})
    np.testing.assert_allclose(cp.asnumpy(gpu), cpu, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(cp.asnumpy(debug), cpu, rtol=1e-9, atol=1e-9)
    b, i, j = np.indices(cpu.shape)
    assert_close(gpu, np.fft.rfftn(xh, axes=(1, 2)) * mask * (1 + 0.125 * j) + b, "float64")
