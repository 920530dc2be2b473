"""A kernel's device FFTs generate their code side by side: ``nvmath.device._descriptor.prefetch``,
the generation a prefetch and the kernel share, and the kernel cache asking the FFTs of a kernel
about to compile to start (``__fftfuse_prepare__``). No GPU, and no libmathdx needed for the
first tests: the generation itself is replaced by a slow stand-in."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from nvmath.device import _descriptor


def _spec(size: int) -> _descriptor.Spec:
    return _descriptor.make_spec(size=size, precision=np.float32, fft_type="c2c", execution="Block", sm=90,
                                 direction="forward", ffts_per_block=1, elements_per_thread=2)


@pytest.fixture
def slow_generation(monkeypatch):
    """``ltoir`` replaced by a 0.3 s stand-in that counts its calls per description and runs each
    on whatever thread calls it; fresh generations for the test."""
    calls: dict[int, int] = {}
    lock = threading.Lock()

    def ltoir(spec, api=_descriptor.API_REGISTER, store=None):
        with lock:
            calls[spec.size] = calls.get(spec.size, 0) + 1
        time.sleep(0.3)
        return _descriptor.Artifact(b"code", f"fft_{spec.size}", 90, f"key{spec.size}", "compiled")

    monkeypatch.setattr(_descriptor, "ltoir", ltoir)
    monkeypatch.setattr(_descriptor, "_generations", {})
    return calls


def test_two_prefetched_ffts_generate_side_by_side_and_once_each(slow_generation):
    a, b = _spec(64), _spec(128)
    started = time.perf_counter()
    for spec in (a, b, a):
        _descriptor.prefetch(spec)
    assert _descriptor.artifact(a).symbol == "fft_64" and _descriptor.artifact(b).symbol == "fft_128"
    assert time.perf_counter() - started < 0.55  # one after the other: 0.6 s
    assert _descriptor.artifact(a) is _descriptor.artifact(a)
    assert slow_generation == {64: 1, 128: 1}


def test_without_a_prefetch_the_caller_generates_on_its_own_thread(slow_generation, monkeypatch):
    monkeypatch.setattr(threading.Thread, "start", lambda self: pytest.fail("a thread was started"))
    assert _descriptor.artifact(_spec(256)).symbol == "fft_256"
    assert slow_generation == {256: 1}


def test_a_failed_generation_is_raised_where_it_is_waited_for_then_tried_again(monkeypatch):
    monkeypatch.setattr(_descriptor, "_generations", {})
    outcomes = [RuntimeError("libmathdx refused"), _descriptor.Artifact(b"x", "fft_ok", 90, "k", "compiled")]

    def ltoir(spec, api=_descriptor.API_REGISTER, store=None):
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(_descriptor, "ltoir", ltoir)
    _descriptor.prefetch(_spec(512))
    with pytest.raises(RuntimeError, match="libmathdx refused"):
        _descriptor.artifact(_spec(512))
    assert _descriptor.artifact(_spec(512)).symbol == "fft_ok"


def test_the_earlier_spelling_starts_generating_for_the_current_gpu_only(monkeypatch):
    import fftfuse_compiler.toolchain as toolchain

    from nvmath.device import fft

    started = []
    monkeypatch.setattr(_descriptor, "prefetch", lambda spec, api=None: started.append(spec.arch))
    monkeypatch.setattr(toolchain, "current_device_arch", lambda: 90)
    fft(fft_type="c2c", size=64, precision=np.float32, direction="forward")
    assert started == [90]  # the seed example's form: code for this GPU will be linked
    fft(fft_type="c2c", size=64, precision=np.float32, direction="forward", sm=80)
    assert started == [90]  # an explicit target (descriptors without a GPU, traits): nothing started


def test_a_kernel_about_to_compile_has_its_ffts_start_first(monkeypatch):
    from nvmath.device import _mathdx

    try:
        _mathdx.version()
    except RuntimeError as exc:
        pytest.skip(f"libmathdx is not installed: {exc}")
    from numba import cuda
    from numba.cuda import types

    from fftfuse_cache import ArtifactStore
    from fftfuse_compiler import kernel_cache
    from nvmath.device import FFT, _numba

    kernel_cache.install(_numba.is_device_fft)
    knobs = dict(sm=90, ffts_per_block=1, elements_per_thread=2)
    fwd = FFT(64, np.float32, "c2c", "Block", direction="forward", **knobs)
    inv = FFT(64, np.float32, "c2c", "Block", direction="inverse", **knobs)
    prepared: list[str] = []
    monkeypatch.setattr(FFT, "__fftfuse_prepare__", lambda self: prepared.append(self.direction))

    def kernel(x):
        t = cuda.local.array(2, np.complex64)
        s = cuda.shared.array(0, np.complex64)
        fwd(t, s)
        inv(t, s)

    class Compiling(Exception):
        pass

    def compile_now():
        raise Compiling(list(prepared))  # what numba would start from: the FFTs already asked

    with pytest.raises(Compiling) as raised:
        kernel_cache.compile_through_cache(cuda.jit(kernel), (types.Array(types.complex64, 1, "C"),), compile_now,
                                           cc=(9, 0, "a"), store=ArtifactStore(enabled=False), bind=False)
    assert sorted(raised.value.args[0]) == ["forward", "inverse"]
