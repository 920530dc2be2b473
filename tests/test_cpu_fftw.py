"""The optional ``fftw`` CPU engine (pyFFTW): its plans, its pieces, its wisdom in the store, and
its absence. Every engine's results against NumPy, this one's included, are in
``test_cpu_engines.py``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from nvmath.fft import _cpu_engines, _cpu_fftw
from nvmath.fft._cpu_engines import FFTCall, candidates, choose

needs_pyfftw = pytest.mark.skipif(not _cpu_fftw.available(), reason="pyFFTW is not installed")


def random_complex(rng: np.random.Generator, shape: tuple[int, ...], dtype=np.complex64) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def assert_fft_of(got: np.ndarray, x: np.ndarray, axis: int = -1) -> None:
    want = np.fft.fft(x.astype(np.complex128), axis=axis)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


@needs_pyfftw
def test_plans_are_measured_on_scratch_arrays_not_the_callers():
    """FFTW_MEASURE overwrites the arrays it plans on: planning on the caller's would transform
    garbage (in place: the input itself) and overwrite an input that must be kept."""
    rng = np.random.default_rng(1)
    x = random_complex(rng, (8, 256))
    kept = x.copy()
    engine = _cpu_engines.engine("fftw")
    out = engine.run("C2C", x, (1,), True, None, 256, 1, False)
    np.testing.assert_array_equal(x, kept)
    assert_fft_of(out, kept)
    y = kept.copy()
    assert engine.run("C2C", y, (1,), True, None, 256, 1, True) is y  # in place, on a new plan
    assert_fft_of(y, kept)


@needs_pyfftw
def test_a_call_runs_in_pieces_with_a_shorter_last_one(monkeypatch):
    monkeypatch.setattr(_cpu_fftw, "PIECE_BYTES", 3 * 64 * 8)  # three rows of 64 complex64
    rng = np.random.default_rng(2)
    x = random_complex(rng, (10, 64))
    engine = _cpu_engines.engine("fftw")
    executed = []
    runner = engine._runner
    real_execute = runner._execute
    monkeypatch.setattr(runner, "_execute", lambda a, *rest: executed.append(a.shape[0]) or real_execute(a, *rest))
    assert_fft_of(engine.run("C2C", x, (1,), True, None, 64, 1, False), x)
    assert executed == [3, 3, 3, 1]


@needs_pyfftw
def test_arrays_of_another_alignment_get_their_own_plan():
    """A plan takes arrays aligned as those it was made for: an input 8 bytes off FFTW's SIMD
    alignment between aligned ones (pyFFTW refuses such arrays to a plan made for aligned ones),
    and the plan made for it (without SIMD code, 4x slower) never serves aligned arrays."""
    rng = np.random.default_rng(3)
    engine = _cpu_engines.engine("fftw")
    core = _cpu_fftw._pyfftw_core()
    raw = random_complex(rng, (4 * 128 + 8,))
    raw_at = raw.__array_interface__["data"][0]
    skip = (-raw_at % core.simd_alignment) // 8  # the first element aligned
    aligned = raw[skip:skip + 4 * 128].reshape(4, 128)
    off = raw[skip + 1:skip + 1 + 4 * 128].reshape(4, 128)  # 8 bytes further
    for x in (off, aligned, off, aligned):
        out = np.empty((4, 128), np.complex64)
        assert_fft_of(engine.run("C2C", x, (1,), True, out, 128, 1, False), x)
    plans = engine._runner._local.plans
    assert len(plans) == 2 and all(plan.simd_aligned == ("unaligned" not in key) for key, plan in plans.items())


@needs_pyfftw
def test_r2c_and_a_transform_of_two_axes_on_several_threads():
    rng = np.random.default_rng(4)
    real = rng.standard_normal((16, 64)).astype(np.float32)
    engine = _cpu_engines.engine("fftw")
    got = engine.run("R2C", real, (1,), True, None, 64, 1, False)
    np.testing.assert_allclose(got, np.fft.rfft(real.astype(np.float64)), rtol=0, atol=1e-4)
    x = random_complex(rng, (32, 64))
    got = engine.run("C2C", x, (0, 1), False, None, 64, 2, False)
    want = np.fft.ifft2(x.astype(np.complex128)) * x.size
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


@needs_pyfftw
def test_wisdom_is_kept_in_the_store_and_read_back_by_a_new_process(monkeypatch):
    core = _cpu_fftw._pyfftw_core()
    x = random_complex(np.random.default_rng(5), (4, 200))
    _cpu_engines.engine("fftw").run("C2C", x, (1,), True, None, 200, 1, False)
    from fftfuse_cache import default_store, stored_artifact

    found = stored_artifact(default_store(), _cpu_fftw._wisdom_key(), _cpu_fftw._WISDOM)
    assert found is not None and b"wisdom" in found.payload
    # A new process (here: the planner forgets, and the store is read again) imports it.
    core.forget_wisdom()
    empty = core.export_wisdom()
    monkeypatch.setattr(_cpu_fftw, "_wisdom_loaded", False)
    assert _cpu_fftw._wisdom(core) != empty


def test_without_pyfftw_the_engine_is_no_candidate_and_a_forced_one_falls_back(monkeypatch):
    monkeypatch.setattr(_cpu_fftw, "available", lambda: False)
    call = FFTCall("C2C", "complex64", (64, 1024), (1024, 1), (1,), 1024, 1)
    assert "fftw" not in candidates(call)
    assert choose(call, "fftw") == _cpu_engines.Choice("ducc0", "rules")


def test_a_pyfftw_that_does_not_load_is_no_candidate(monkeypatch, caplog):
    def broken():
        raise OSError("libfftw3f.so.3: cannot open shared object file")

    monkeypatch.setattr(_cpu_fftw, "_loads", None)
    monkeypatch.setattr(_cpu_fftw, "_pyfftw_core", broken)
    monkeypatch.setattr(_cpu_fftw.importlib.util, "find_spec", lambda name: object())  # "installed"
    call = FFTCall("C2C", "complex64", (64, 1024), (1024, 1), (1,), 1024, 1)
    with caplog.at_level("WARNING", logger="fftfuse.fft"):
        assert "fftw" not in candidates(call)
        assert choose(call, "fftw").engine == "ducc0"
    assert [r.message for r in caplog.records if "does not load" in r.message] != []


def test_c2r_is_left_to_the_other_engines():
    call = FFTCall("C2R", "complex64", (64, 513), (513, 1), (1,), 1024, 1)
    assert "fftw" not in candidates(call)
    assert choose(call, "fftw").engine == "ducc0"


@needs_pyfftw
def test_the_engine_does_not_import_pyfftws_package(tmp_path):
    """Importing ``pyfftw`` imports its SciPy and Dask interfaces (0.7 s): the engine loads its
    compiled module alone."""
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from nvmath.fft._cpu_engines import engine
        x = np.ones((4, 64), np.complex64)
        engine("fftw").run("C2C", x, (1,), True, None, 64, 1, False)
        print("pyfftw.interfaces" in sys.modules, "dask" in sys.modules)
    """)
    env = {**os.environ, "FFTFUSE_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
