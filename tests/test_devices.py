"""Device identity without several GPUs: per-device plan caches, data-device checks, per-arch
artifacts, and thread safety of the shared caches (the two-GPU run itself needs two GPUs)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fftfuse_cache import ArtifactStore
from fftfuse_compiler import compile_callback
from nvmath.fft import _gpu
from nvmath.fft._callbacks import callback_spec
from nvmath.fft._planner import place_data
from nvmath.fft._tensor import Tensor


class FakePlan:
    def __init__(self, device):
        self.device, self.freed = device, False

    def free(self):
        self.freed = True


def test_plan_cache_keeps_devices_apart_and_evicts_oldest():
    cache = _gpu.PlanCache(capacity=3)
    built = []

    def build(device):
        def make():
            built.append(device)
            return FakePlan(device)
        return make

    p0 = cache.acquire((0, "problem", "epilog"), build(0))
    p1 = cache.acquire((1, "problem", "epilog"), build(1))
    assert p0 is not p1 and (p0.device, p1.device) == (0, 1)
    assert cache.acquire((0, "problem", "epilog"), build(0)) is p0  # reused, not rebuilt
    assert built == [0, 1] and cache.created == 2
    for plan in (p0, p1, p0):
        cache.release(plan)
    cache.release(cache.acquire((0, "other", None), build(0)))
    cache.release(cache.acquire((1, "other", None), build(1)))  # capacity 3: the least recently used goes
    assert p1.freed and not p0.freed and len(cache) == 3
    cache.clear()
    assert p0.freed and len(cache) == 0


def _spec_on(device: int | None):
    spec = callback_spec({"fn": lambda v, d: v * d, "data": np.ones((4, 8), np.complex64)}, "epilog")
    spec = spec.with_data(Tensor(spec.data.array, "cupy" if device is not None else "numpy", device))
    return spec


def test_user_data_on_another_device_is_refused():
    # The planner's check of callback data for an FFT run on GPU 0 or 1 (no GPU needed).
    with pytest.raises(ValueError, match="on GPU 1 but the operand is on GPU 0"):
        place_data(_spec_on(1), "cuda", 0)
    with pytest.raises(ValueError, match="host memory"):
        place_data(_spec_on(None), "cuda", 0)
    spec = _spec_on(1)
    assert place_data(spec, "cuda", 1) is spec  # same device: accepted as it is


def test_one_artifact_per_architecture_shared_by_devices(tmp_path):
    store = ArtifactStore(tmp_path)
    fn = lambda v: v * 3  # noqa: E731
    first = {arch: compile_callback(fn, "epilog", "complex64", compute_capability=arch, store=store)
             for arch in (80, 90)}
    assert all(c.source == "compiled" for c in first.values())
    assert first[80].ltoir != first[90].ltoir
    # A second device of an architecture already seen gets the same artifact from the cache.
    again = compile_callback(fn, "epilog", "complex64", compute_capability=90, store=ArtifactStore(tmp_path))
    assert again.source == "cache" and again.ltoir == first[90].ltoir
    assert sum(1 for _ in store.entries()) == 2


def test_threads_share_the_caches_safely():
    import nvmath

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((8, 64)) + 1j * rng.standard_normal((8, 64))).astype(np.complex128)
    errors, results = [], {}

    def scaled(gain):
        return lambda v: v * gain

    def work(k):
        try:
            for _ in range(5):
                results[k] = nvmath.fft.fft(x, axes=[-1], epilog=scaled(k + 1.0))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    plain = np.fft.fft(x, axis=-1)
    for k in range(4):
        np.testing.assert_allclose(results[k], plain * (k + 1), rtol=1e-10, atol=1e-10)
