"""Shared test setup: GPU tests are skipped where no CUDA GPU (and CuPy) is available."""

import functools

import pytest

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
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test session compiles into its own cache directory, never the user's."""
    from cache import reset_default_store

    directory = tmp_path_factory.getbasetemp() / "fftfuse-cache"
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(directory))
    reset_default_store()
    yield
