"""Fused FFTs over Dask arrays of CuPy chunks (marked gpu): every kind, prolog and epilog, broadcast
and Dask-array data against NumPy float64 references; plans reused across chunks; workers that run
the shipped LTO-IR without importing numba, one worker per GPU when there are two."""

from __future__ import annotations

import functools
import importlib.util
import os
import sys

import numpy as np
import pytest

import nvmath
from nvmath.fft import _gpu

pytestmark = pytest.mark.gpu

cp = pytest.importorskip("cupy")
da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

from nvmath.fft._dask import chunk_stats  # noqa: E402
from helpers import assert_close, rand  # noqa: E402
from test_dask import INPUT, REFERENCE, mul  # noqa: E402  (the same cases as on the CPU)
from test_dask import operand as cpu_operand  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B, N = 256, 64


close = functools.partial(assert_close, rtol=1e-4)


def half(v):
    return v * 0.5


def operand(kind, seed):
    return cpu_operand(kind, seed, rows=B, n=N)


def on_gpu(host, chunks):
    """A Dask array of CuPy chunks made from ``host`` where each chunk is computed."""
    return da.from_array(host, chunks=chunks).map_blocks(cp.asarray)


@pytest.mark.parametrize("kind", ["fft", "ifft", "rfft", "irfft"])
def test_every_kind_over_cupy_chunks(kind):
    x = operand(kind, 1)
    out_dtype = np.float32 if kind == "irfft" else np.complex64
    out_n = N // 2 + 1 if kind == "rfft" else N
    # Real values (in the input type): an irfft input keeps real bins 0 and n/2, which C2R needs.
    window = rand((x.shape[-1],), "float32", 2).astype(INPUT[kind])
    gains = rand((B, 1), out_dtype, 3)
    full = rand((B, out_n), out_dtype, 4)
    fn = getattr(nvmath.fft, kind)
    dx = on_gpu(x, (32, -1))

    y = fn(dx, axes=[-1], prolog={"fn": mul, "data": window}, epilog={"fn": mul, "data": cp.asarray(gains)})
    assert isinstance(y._meta, cp.ndarray)
    close(y.compute(scheduler="threads"), REFERENCE[kind](x.astype(np.complex128 if x.dtype.kind == "c" else np.float64) * window) * gains)

    z = fn(dx, axes=[-1], epilog={"fn": mul, "data": on_gpu(full, (64, -1))})
    close(z.compute(scheduler="threads"), REFERENCE[kind](x) * full)

    w = fn(dx, axes=[-1], epilog=half)
    close(w.compute(scheduler="sync"), REFERENCE[kind](x) * 0.5)


def test_plans_are_reused_across_chunks_of_one_shape():
    x = operand("fft", 5)
    h = rand((N,), "complex64", 6)
    g = rand((B, N), "complex64", 7)
    y = nvmath.fft.fft(on_gpu(x, (16, -1)), axes=[-1], prolog={"fn": mul, "data": h},
                       epilog={"fn": mul, "data": on_gpu(g, (16, -1))})
    y.compute(scheduler="sync")  # plans for this shape exist now
    before, chunks = _gpu.plan_cache.created, chunk_stats()["gpu_chunks"]
    close(y.compute(scheduler="sync"), np.fft.fft(x * h) * g)
    assert chunk_stats()["gpu_chunks"] == chunks + B // 16
    assert _gpu.plan_cache.created == before, "16 chunks of one shape planned again"


def test_broadcast_data_of_every_shape():
    x = rand((8, 16, 32), "complex64", 8)
    for shape in [(32,), (1, 32), (16, 1), (8, 1, 1), (16, 32), ()]:
        d = rand(shape, "complex64", 9)
        y = nvmath.fft.fft(on_gpu(x, (2, 16, 32)), axes=[-1], epilog={"fn": mul, "data": d})
        close(y.compute(scheduler="threads"), np.fft.fft(x, axis=-1) * d)


def _benchmark_module():
    spec = importlib.util.spec_from_file_location("dask_fft_bench", os.path.join(ROOT, "benchmarks", "dask_fft.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _worker_state():
    import cupy

    return {"compiler": sorted(m for m in ("fftfuse_compiler.cuda_backend", "fftfuse_compiler.cpu_backend") if m in sys.modules),
            # Without RMM, dask.distributed's own CuPy serializer imports numba when a CuPy chunk
            # moves between workers: numba is ours to avoid only where that did not happen.
            "numba": "numba" in sys.modules and "distributed.protocol.numba" not in sys.modules,
            "stats": chunk_stats(), "plans": _gpu.plan_cache.created, "devices": cupy.cuda.runtime.getDeviceCount()}


def test_distributed_one_worker_per_gpu_runs_shipped_ltoir(tmp_path):
    distributed = pytest.importorskip("distributed")
    n_gpus = min(cp.cuda.runtime.getDeviceCount(), 2)
    env = {"FFTFUSE_CACHE_DIR": str(tmp_path / "worker-cache"),
           "PYTHONPATH": os.pathsep.join([ROOT, os.path.dirname(os.path.abspath(__file__)),
                                          os.environ.get("PYTHONPATH", "")])}
    x = rand((B, N), "float32", 10)
    h = rand((N // 2 + 1,), "float32", 11).astype(np.complex64)  # real: the C2R input stays Hermitian
    g = rand((B, N), "float32", 12)
    with _benchmark_module().one_worker_per_gpu(n_gpus, env) as cluster, distributed.Client(cluster) as client:
        spectrum = nvmath.fft.rfft(on_gpu(x, (32, -1)), axes=[-1], epilog={"fn": mul, "data": h})
        # g in NumPy chunks: each worker uploads its own blocks (no CuPy chunk crosses workers)
        y = nvmath.fft.irfft(spectrum, axes=[-1], epilog={"fn": mul, "data": da.from_array(g, chunks=(32, -1))})
        got = y.map_blocks(cp.asnumpy).compute()
        close(got, np.fft.irfft(np.fft.rfft(x.astype(np.float64)) * h, n=N) * N * g)
        first = client.run(_worker_state)
        y.map_blocks(cp.asnumpy).compute()
        second = client.run(_worker_state)
    assert len(first) == n_gpus
    for address, state in first.items():
        assert state["devices"] == 1, "each worker sees its own GPU only"
        assert state["compiler"] == [], "a GPU worker compiled a callback"
        assert not state["numba"], "a GPU worker imported numba"
        # One plan per FFT kind on each worker, however many chunks it ran, over both runs.
        assert second[address]["plans"] <= 2, second[address]
    assert sum(s["stats"]["gpu_chunks"] for s in first.values()) == 2 * (B // 32)
