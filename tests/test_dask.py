"""FFTs with fused callbacks over Dask arrays of NumPy chunks, on the threaded scheduler and on a
``dask.distributed`` cluster of two worker processes, against NumPy float64 references."""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import nvmath
from helpers import assert_close, rand

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
from dask.array.core import PerformanceWarning  # noqa: E402

from nvmath.fft._dask import chunk_stats, dask_fft  # noqa: E402

B, N = 96, 32


close = functools.partial(assert_close, rtol=2e-5)  # this file's bound, tighter than single precision's


def mul(v, d):
    return v * d


def scale(v):
    return v * 0.5


REFERENCE = {
    "fft": lambda x: np.fft.fft(x, axis=-1),
    "ifft": lambda x: np.fft.ifft(x, axis=-1) * x.shape[-1],  # unnormalized, as cuFFT
    "rfft": lambda x: np.fft.rfft(x, axis=-1),
    "irfft": lambda x: np.fft.irfft(x, n=2 * (x.shape[-1] - 1), axis=-1) * 2 * (x.shape[-1] - 1),
}
INPUT = {"fft": "complex64", "ifft": "complex64", "rfft": "float32", "irfft": "complex64"}


def operand(kind, seed=0, rows=B, n=N):
    x = rand((rows, n // 2 + 1 if kind == "irfft" else n), INPUT[kind], seed)
    if kind == "irfft":  # a spectrum of a real signal: real at 0 and at the Nyquist bin
        x[:, 0] = x[:, 0].real
        x[:, -1] = x[:, -1].real
    return x


def result_shape(kind):
    return (B, N // 2 + 1) if kind == "rfft" else (B, N)


# -- the threaded scheduler: every kind, prolog and epilog, every data rule ------------------------
@pytest.mark.parametrize("kind", ["fft", "ifft", "rfft", "irfft"])
def test_every_kind_prolog_and_epilog_threads(kind):
    x = operand(kind, 1)
    in_dtype = np.dtype(INPUT[kind])
    out_dtype = np.complex64 if kind in ("fft", "ifft", "rfft") else np.float32
    # (n,): broadcast along the batch; real values, so an irfft input keeps its real bins 0 and n/2
    window = rand((x.shape[-1],), "float32", 2).astype(in_dtype)
    gains = rand((B, 1), out_dtype, 3)  # (B, 1): one factor per row
    full = rand(result_shape(kind), out_dtype, 4)  # result-sized, as a Dask array
    dx = da.from_array(x, chunks=(24, -1))
    fn = getattr(nvmath.fft, kind)

    y = fn(dx, axes=[-1], prolog={"fn": mul, "data": window}, epilog={"fn": mul, "data": gains})
    assert isinstance(y, da.Array) and y.chunks[0] == (24, 24, 24, 24)
    close(y.compute(scheduler="threads"), REFERENCE[kind](x.astype(np.complex128 if in_dtype.kind == "c" else np.float64) * window) * gains)

    z = fn(dx, axes=[-1], epilog={"fn": mul, "data": da.from_array(full, chunks=(48, -1))})
    close(z.compute(scheduler="threads"), REFERENCE[kind](x) * full)

    w = fn(dx, axes=[-1], epilog=scale)
    close(w.compute(scheduler="sync"), REFERENCE[kind](x) * 0.5)

    # A Dask array that broadcasts too, chunked otherwise than the operand: rechunked to match.
    v = fn(dx, axes=[-1], prolog={"fn": mul, "data": da.from_array(window[None, :], chunks=(1, -1))},
           epilog={"fn": mul, "data": da.from_array(gains, chunks=(B // 2, 1))})
    close(v.compute(scheduler="threads"), REFERENCE[kind](x * window) * gains)


@pytest.mark.parametrize("execution", ["cpu", {"name": "cpu"}, nvmath.fft.ExecutionCPU()])
def test_execution_on_the_cpu_is_accepted(execution):
    x = operand("fft", 3)
    y = nvmath.fft.fft(da.from_array(x, chunks=(48, N)), axes=[-1], execution=execution, epilog=scale)
    close(y.compute(scheduler="sync"), np.fft.fft(x) * 0.5)


def test_each_task_carries_only_its_own_data_block():
    x = operand("fft", 5)
    gains = rand((B, 1), "complex64", 6)
    y = nvmath.fft.fft(da.from_array(x, chunks=(24, N)), axes=[-1], epilog={"fn": mul, "data": gains})
    data_keys = [k for k in y.__dask_graph__() if isinstance(k, tuple) and k[0].startswith("array-")]
    assert len(data_keys) >= 4, "the gains are sliced into a block per chunk, not embedded in every task"
    close(y.compute(scheduler="threads"), np.fft.fft(x) * gains)


@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
def test_norm_and_direction_as_for_arrays(norm):
    x = operand("fft", 40)
    h = rand((N,), "complex64", 41)
    dx = da.from_array(x, chunks=(24, N))
    y = nvmath.fft.fft(dx, axes=[-1], norm=norm, epilog={"fn": mul, "data": h})
    close(y.compute(scheduler="threads"), np.fft.fft(x, norm=norm) * h)
    z = nvmath.fft.fft(dx, axes=[-1], norm=norm, direction="inverse")
    close(z.compute(scheduler="threads"), np.fft.ifft(x, norm=norm))
    r = nvmath.fft.rfft(da.from_array(x.real.copy(), chunks=(24, N)), axes=[-1], norm=norm, prolog=scale)
    close(r.compute(scheduler="threads"), np.fft.rfft(x.real * 0.5, norm=norm))


def test_full_size_numpy_data_is_sliced_per_chunk():
    x = operand("fft", 5)
    h = rand((B, N), "complex64", 6)
    y = nvmath.fft.fft(da.from_array(x, chunks=(32, N)), axes=[-1], epilog={"fn": mul, "data": h})
    close(y.compute(scheduler="threads"), np.fft.fft(x) * h)


def test_lazy_until_computed():
    before = chunk_stats()["chunks"]
    y = nvmath.fft.fft(da.from_array(operand("fft"), chunks=(24, N)), axes=[-1], epilog=scale)
    assert chunk_stats()["chunks"] == before
    y.compute(scheduler="sync")
    assert chunk_stats()["chunks"] == before + 4


def test_a_chunking_that_splits_an_fft_axis_is_rechunked_with_a_warning():
    x = operand("fft", 7)
    dx = da.from_array(x, chunks=(48, 8))
    with pytest.warns(PerformanceWarning, match=r"axes \[1\].*4 chunks.*moves the whole array.*x.rechunk\(\{1: -1\}\)"):
        y = nvmath.fft.fft(dx, axes=[-1], epilog={"fn": mul, "data": rand((N,), "complex64", 8)})
    assert y.chunks[1] == (N,)
    close(y.compute(scheduler="threads"), np.fft.fft(x) * rand((N,), "complex64", 8))


def test_the_warning_points_at_the_caller():
    with pytest.warns(PerformanceWarning) as record:
        nvmath.fft.fft(da.from_array(operand("fft"), chunks=(48, 8)), axes=[-1])
    assert record[0].filename == __file__


def test_unknown_chunk_sizes_are_refused():
    x = da.from_array(operand("fft"), chunks=(24, N))
    unknown = x[x[:, 0].real > 0]  # boolean indexing: row counts unknown until computed
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        nvmath.fft.fft(unknown, axes=[-1])


def test_no_warning_when_fft_axes_are_whole():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nvmath.fft.fft(da.from_array(operand("fft"), chunks=(24, N)), axes=[-1])


def test_two_dimensional_fft_over_a_chunked_batch():
    x = rand((6, 16, 8), "complex64", 9)
    mask = rand((16, 8), "float32", 10)
    y = nvmath.fft.fft(da.from_array(x, chunks=(2, 16, 8)), axes=[1, 2], epilog={"fn": mul, "data": mask})
    close(y.compute(scheduler="threads"), np.fft.fftn(x, axes=(1, 2)) * mask)


# -- errors before any graph runs ------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"epilog": {"ltoir": b"\x00", "data": 0}}, TypeError, "compiled\\s+once on the client"),
        ({"epilog": {"fn": mul, "data": np.ones((5,), np.complex64)}}, ValueError, "does not broadcast to the result shape"),
        ({"prolog": {"fn": mul, "data": da.ones((B, 4), chunks=(B, 4))}}, ValueError, "does not broadcast to the input shape"),
        ({"epilog": lambda a, b, c, d: a}, TypeError, "epilog"),
        # Index forms: a chunk would number its elements from its own corner.
        ({"epilog": lambda x, i, j: x * i}, ValueError, "index form f\\(x, i, ...\\) is not supported over a Dask"),
        ({"prolog": {"fn": lambda x, d, i, j: x * d, "data": np.ones(N, np.complex64)}}, ValueError,
         "index form f\\(x, d, i, ...\\)"),
        ({"stream": 1}, TypeError, "stream= has no meaning"),
        ({"direction": "sideways"}, ValueError, "direction='sideways' is not understood"),
        ({"norm": "half"}, ValueError, "norm='half' is not understood"),
        ({"options": {"inplace": True}}, ValueError, "inplace=True"),
        ({"execution": "cuda"}, ValueError, "CuPy chunks"),
        ({"execution": nvmath.fft.ExecutionCUDA()}, ValueError, "CuPy chunks"),
        ({"epilog": {"fn": mul, "data": [1, 2]}}, TypeError, "must be an array"),
    ],
)
def test_bad_input_is_refused_on_the_client(kwargs, error, match):
    with pytest.raises(error, match=match):
        nvmath.fft.fft(da.from_array(operand("fft"), chunks=(24, N)), axes=[-1], **kwargs)


# -- without Dask --------------------------------------------------------------------------------
def test_nothing_imports_dask_unless_given_a_dask_array():
    code = (
        "import sys, numpy as np, nvmath\n"
        "y = nvmath.fft.fft(np.ones((2, 8), np.complex64), axes=[-1], epilog=lambda v: v * 2)\n"
        "assert abs(y[0, 0] - 16) < 1e-6\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')], 'dask imported'\n"
        "sys.modules['dask'] = None  # as if not installed\n"
        "nvmath.fft.ifft(np.ones(8, np.complex64))\n"
    )
    env = dict(os.environ, FFTFUSE_DEBUG="1")  # plain Python callbacks: no compile wait
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))


# -- dask.distributed: two worker processes -------------------------------------------------------
@pytest.fixture(scope="module")
def client(tmp_path_factory):
    distributed = pytest.importorskip("distributed")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {
        "FFTFUSE_CACHE_DIR": str(tmp_path_factory.mktemp("worker-cache")),
        "PYTHONPATH": os.pathsep.join([root, os.path.dirname(os.path.abspath(__file__)), os.environ.get("PYTHONPATH", "")]),
    }
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None, env=env) as cluster:
        with distributed.Client(cluster) as c:
            c.run(_cpu_compiles)  # count from the first graph on
            yield c


class _CompileCounter(logging.Handler):
    """Counts the CPU compiles the compiler logs in this process."""

    count = 0

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("CPU ") and " compiled in " in message:
            _CompileCounter.count += 1


def _cpu_compiles():
    """Run on each worker: installs the counter on first call; the compiles so far."""
    log = logging.getLogger("fftfuse.compiler")
    if not any(isinstance(h, _CompileCounter) for h in log.handlers):
        log.addHandler(_CompileCounter())
        log.setLevel(logging.INFO)
    return _CompileCounter.count


def _worker_stats(client):
    compiles = client.run(_cpu_compiles)
    return {address: {**stats, "cpu_compiles": compiles[address]} for address, stats in client.run(chunk_stats).items()}


def test_distributed_fused_convolution_every_kind(client):
    x = rand((B, N), "float32", 11)
    window = rand((N,), "float32", 12)
    h = rand((B, N // 2 + 1), "float32", 13).astype(np.complex64)  # real: the C2R input stays Hermitian
    dx = da.from_array(x, chunks=(12, N))  # 8 chunks over 2 workers
    # rfft with a broadcast window prolog and a Dask-array filter epilog, then irfft with a scale
    spectrum = nvmath.fft.rfft(dx, axes=[-1], prolog={"fn": mul, "data": window},
                               epilog={"fn": mul, "data": da.from_array(h, chunks=(24, -1))})
    y = nvmath.fft.irfft(spectrum, axes=[-1], epilog=lambda v: v / N)
    c = rand((B, N), "complex64", 14)
    g = rand((B, 1), "complex64", 15)
    z = nvmath.fft.ifft(nvmath.fft.fft(da.from_array(c, chunks=(12, N)), axes=[-1], epilog={"fn": mul, "data": g}),
                        axes=[-1], prolog={"fn": mul, "data": window.astype(np.complex64)})
    got_y, got_z = dask.compute(y, z)
    close(got_y, np.fft.irfft(np.fft.rfft(x.astype(np.float64) * window) * h, n=N))
    close(got_z, np.fft.ifft(np.fft.fft(c) * g * window) * N)

    stats = _worker_stats(client)
    assert len(stats) == 2
    assert sum(s["chunks"] for s in stats.values()) == 4 * 8
    # 5 distinct callbacks (mul on a broadcast float32 and complex64 prolog, on a chunk-sized and a
    # (rows, 1) complex64 epilog; the scale): each compiled at most once per worker process, however
    # many chunks (16 a run) and threads.
    for s in stats.values():
        assert s["cpu_compiles"] <= 5, s
    assert sum(s["cpu_compiles"] for s in stats.values()) >= 4

    before = _worker_stats(client)
    dask.compute(y, z)
    after = _worker_stats(client)
    for s in after.values():  # a worker may meet a callback first in this run, but none twice
        assert s["cpu_compiles"] <= 5, s
    assert sum(s["chunks"] for s in after.values()) == sum(s["chunks"] for s in before.values()) + 4 * 8


def test_distributed_split_fft_axis(client):
    x = rand((B, N), "complex64", 16)
    with pytest.warns(PerformanceWarning):
        y = nvmath.fft.fft(da.from_array(x, chunks=(B // 2, N // 4)), axes=[-1], epilog=scale)
    close(y.compute(), np.fft.fft(x) * 0.5)


# -- what the graph carries for CuPy chunks (built here without a GPU) -----------------------------
def test_cupy_chunks_get_lto_ir_compiled_on_the_client_not_the_function():
    import dataclasses
    import pickle

    from fftfuse_compiler.linkcheck import link_check
    from nvmath.fft._dask import _side
    from nvmath.fft._layout import plan_problem
    from nvmath.fft._options import FFTOptions

    def shipped_only_as_lto_ir(v, d):
        return v * d

    h = rand((N,), "complex64", 20)
    chunk = plan_problem("fft", (24, N), (N, 1), "complex64", (1,)).output
    side, data = _side("epilog", {"fn": shipped_only_as_lto_ir, "data": h}, (B, N), ((24,) * 4, (N,)),
                       "complex64", True, FFTOptions(), da, [chunk])
    assert side.fn is None and side.data == data.name and data.chunks == ((N,),)
    # Nothing of the function travels besides its LTO-IR (which may spell its name).
    bare = dataclasses.replace(side, ltoir=b"", broadcast=())
    assert side.ltoir and b"shipped_only_as_lto_ir" not in pickle.dumps(bare)
    # The bytes are direct-pointer cuFFT epilogs for complex64 (reading the data at the offset, or
    # the (N,) block in place for this chunk layout): they link against cuFFT's prototype.
    (layout, in_place), = side.broadcast
    assert layout == ((24, N), (N, 1)) and in_place != side.ltoir
    for ltoir in (side.ltoir, in_place):
        link_check(ltoir, "epilog", "complex64", side.arch)


# -- the CuPy-chunk task body, run here against a stand-in for CuPy ---------------------------------
class _FakeDevice:
    compute_capability = "90"

    def __init__(self, id=0):
        self.id = id

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


@pytest.fixture
def fake_cupy(monkeypatch):
    """A NumPy-backed module named ``cupy`` (chunks of it look like CuPy's to the Dask path) and a
    stateless ``fft`` that records what each chunk was given, then computes with NumPy.

    Dask registers its CuPy functions once per process, on first sight of a ``cupy`` array: not
    where real CuPy arrays may follow (a GPU machine runs the real thing in test_gpu_dask.py)."""
    import types

    from conftest import gpu_available

    if gpu_available():
        pytest.skip("a stand-in for CuPy only where no GPU runs the real one")

    from nvmath.fft import _dask, _planner

    class ndarray(np.ndarray):
        __module__ = "cupy"

        @property
        def device(self):
            return _FakeDevice(0)

        @property
        def data(self):  # CuPy's memory pointer
            return types.SimpleNamespace(ptr=self.__array_interface__["data"][0])

    def asarray(a, dtype=None):
        return np.asarray(a, dtype=dtype).view(ndarray)

    cupy = types.ModuleType("cupy")
    cupy.ndarray, cupy.asarray = ndarray, asarray
    cupy.empty = lambda shape, dtype=float: np.empty(shape, dtype).view(ndarray)
    for name in ("concatenate", "take", "tensordot", "einsum"):  # what Dask registers for CuPy
        setattr(cupy, name, lambda *a, _f=getattr(np, name), **k: asarray(_f(*a, **k)))
    cupy.asnumpy = np.asarray
    cupy.cuda = types.SimpleNamespace(Device=_FakeDevice,
                                      get_current_stream=lambda: types.SimpleNamespace(ptr=0))
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    calls, plans = [], []

    class Engine:  # stands in for nvmath.fft.FFT, the engine a worker's chunks of one shape reuse
        def __init__(self, block, **options):
            self.prolog = self.epilog = self.operand = None
            plans.append(self)

        def plan(self, direction=None, prolog=None, epilog=None):
            self.prolog, self.epilog = prolog, epilog

        def reset_operand(self, operand=None):
            self.operand = operand

        def execute(self):
            calls.append((self.prolog, self.epilog))
            p, e = (None if c is None else read(c["data"]) for c in (self.prolog, self.epilog))
            out = np.fft.fft(np.asarray(self.operand) * (1 if p is None else p), axis=-1)
            return asarray(out * (1 if e is None else e))

        def free(self):
            pass

    def read(data):  # a pointer is the address of one of the worker's data buffers
        if not isinstance(data, int):
            return np.asarray(data)
        return next(np.asarray(b.array) for b in _dask._buffers.values() if _dask._address(b.array) == data)

    monkeypatch.setattr(_dask, "FFT", Engine)
    fills = []
    real_fill = _dask._Buffer.fill
    monkeypatch.setattr(_dask._Buffer, "fill", lambda self, values, token: (fills.append(token),
                                                                            real_fill(self, values, token)))
    yield types.SimpleNamespace(module=cupy, calls=calls, plans=plans, fills=fills)
    _dask._engines.local.__dict__.clear()
    _dask._buffers.clear()
    _planner.device_arch.cache_clear()


def test_cupy_chunks_reuse_one_data_buffer_and_copy_broadcast_data_once(fake_cupy):
    from nvmath.fft import _dask

    x = operand("fft", 30)
    window = rand((N,), "complex64", 31)  # the same block for every chunk: copied once
    full = rand((B, N), "complex64", 32)  # a block per chunk: copied per chunk
    dx = da.from_array(x, chunks=(24, N)).map_blocks(fake_cupy.module.asarray)
    # (nvmath.fft.fft is the stand-in here: build the graph with what it calls for a Dask operand)
    y = dask_fft("fft", dx, [-1], None, None, {"fn": mul, "data": window}, {"fn": mul, "data": full}, None)
    got = y.map_blocks(np.asarray, meta=np.empty((0, 0), np.complex64)).compute(scheduler="sync")
    close(got, np.fft.fft(x * window) * full)

    assert len(fake_cupy.calls) == 4 and len(fake_cupy.plans) == 1  # one planned engine for the four chunks
    for prolog, epilog in fake_cupy.calls:  # LTO-IR from the client, never the function
        assert set(prolog) == set(epilog) == {"ltoir", "data"} and prolog["ltoir"] and epilog["ltoir"]
        # The window is read in place, as its (N,) block, by LTO-IR compiled for broadcast reads
        # (its address fixed in the plan); the full-size data at the offset, from a chunk-sized buffer.
        assert isinstance(prolog["data"], int) and not isinstance(epilog["data"], int)
    # One buffer per side for all four chunks: the address the plan holds stays the same.
    assert len({_dask._address(p["data"]) for p, _ in fake_cupy.calls}) == 1
    assert len({_dask._address(e["data"]) for _, e in fake_cupy.calls}) == 1
    assert sorted(tuple(b.array.shape) for b in _dask._buffers.values()) == [(24, N), (N,)]
    prolog_fills = [t for t in fake_cupy.fills if t[1] == (0,)]
    assert len(prolog_fills) == 1 and len(fake_cupy.fills) == 1 + 4
