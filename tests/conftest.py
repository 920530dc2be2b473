"""Shared test setup: GPU tests are skipped where no CUDA GPU (and CuPy) is available; the fake
GPU (``benchmarks/fake_gpu.py``) and the ``execution`` fixture that runs a feature's test on every
execution there is (CPU, its debug mode, the fake GPU and, where present, the GPU)."""

import functools
import gc
import logging
import sys
import threading
from pathlib import Path

import pytest

# The fake GPU lives with the benchmarks (host_overhead.py measures the Python part of a call with
# it); the tests import it from there.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

# Run from a source checkout (no install), importing nvmath is what makes fftfuse_compiler and
# fftfuse_cache importable (nvmath/_source_tree.py); test modules import those directly.
import nvmath  # noqa: F401


@functools.lru_cache(maxsize=None)
def gpu_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@functools.lru_cache(maxsize=None)
def gpu_count() -> int:
    if not gpu_available():
        return 0
    import cupy

    return int(cupy.cuda.runtime.getDeviceCount())


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU with CuPy")
    skip_two = pytest.mark.skip(reason="needs two CUDA GPUs")
    for item in items:
        if "gpu" in item.keywords and not gpu_available():
            item.add_marker(skip_gpu)
        elif "multi_gpu" in item.keywords and gpu_count() < 2:
            item.add_marker(skip_two)


@pytest.fixture(autouse=True)
def _chains_on_two_plans(request, monkeypatch):
    """Chains of other features' tests run as two cuFFT plans: each one-kernel configuration
    compiles for seconds on a fresh cache. The one kernel's own tests (``test_*chain_kernel.py``)
    keep route="auto" at its default, one kernel where it fits."""
    if "chain_kernel" not in request.node.path.name:
        monkeypatch.setenv("FFTFUSE_ONE_KERNEL", "0")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test session compiles into its own cache directory, never the user's."""
    from fftfuse_cache import reset_default_store

    directory = tmp_path_factory.getbasetemp() / "fftfuse-cache"
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(directory))
    reset_default_store()
    yield


@pytest.fixture
def fake_gpu(monkeypatch):
    """The GPU code path on the CPU: CuPy and cuFFT replaced by the fake (launches are recorded,
    nothing is computed), with this test's own plan cache, stateless engines and chains."""
    from fake_gpu import FakeGpu
    from nvmath.fft import _chain, _gpu, _reuse

    fake = FakeGpu().install(monkeypatch, keep_memory=True)
    monkeypatch.setattr(_gpu, "plan_cache", _gpu.PlanCache())
    monkeypatch.setattr(_reuse.stateless_engines, "local", threading.local())
    monkeypatch.setattr(_chain.stateless_chains, "local", threading.local())
    monkeypatch.delenv("FFTFUSE_DEBUG", raising=False)
    yield fake
    # Engines and plans of the fake go while it is in place (freeing them calls the fake cuFFT).
    _reuse.stateless_engines.mine().clear()
    _chain.stateless_chains.mine().clear()
    gc.collect()
    _gpu.plan_cache.clear()


@pytest.fixture(params=["cpu", "debug", "fake_gpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def execution(request, monkeypatch):
    """One feature test, run on each execution (see ``executions.Execution``)."""
    from executions import Execution

    name = request.param
    if name == "fake_gpu":
        yield Execution(name, fake=request.getfixturevalue("fake_gpu"))
        return
    monkeypatch.delenv("FFTFUSE_DEBUG", raising=False)
    if name == "gpu":
        import cupy

        yield Execution(name, cupy=cupy)
        return
    yield Execution(name)


class Events(logging.Handler):
    """What the library logs on its ``fftfuse`` loggers, counted: callbacks compiled (numba for
    the CPU, NVVM for the GPU; not those found in the cache) and plans built (not reused)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def compiles(self) -> int:
        return sum(r.name == "fftfuse.compiler" and " compiled in " in r.getMessage() for r in self.records)

    @property
    def plans(self) -> int:
        return sum(r.getMessage().startswith("planned ") for r in self.records)


@pytest.fixture
def events():
    """Counts compiles and plans through the library's logging (its public account of both)."""
    logger = logging.getLogger("fftfuse")
    handler, level = Events(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)
