"""The CPU executor's FFT engines: every engine gives NumPy's float64 result with every callback
form, and the engine choice is measured once per machine, stored, reused, and never measured
under the rules."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from fftfuse_cache import ArtifactStore
from fftfuse_compiler import cpu_native
from fftfuse_compiler.cpu_backend import compile_cpu
from nvmath.fft import _cpu, _cpu_engines
from nvmath.fft._cpu import CpuExecutor
from nvmath.fft._cpu_engines import ENGINES, FFTCall, choose, forget_choices, rule_engine
from nvmath.fft._layout import plan_problem
from nvmath.fft._options import FFTOptions
from test_cpu_executor import (FORMS, TRANSFORMS, callback_case, check, laid_out, make_operand,
                               prepare, random_array, reference)

ROOT = Path(__file__).resolve().parent.parent

# A call large enough to be measured under "auto": 64 rows of 1024 complex64 (512 KiB).
BIG = FFTCall("C2C", "complex64", (64, 1024), (1024, 1), (1,), 1024, 1)


@pytest.fixture(autouse=True)
def _fresh_memo():
    forget_choices()
    yield
    forget_choices()


def run_engine(engine, problem, inp, out, prolog=None, epilog=None, prolog_data=None, epilog_data=None, workers=2):
    cb_in = compile_cpu(prolog, "prolog", problem.input_dtype,
                        None if prolog_data is None else prolog_data.dtype) if prolog else None
    cb_out = compile_cpu(epilog, "epilog", problem.output_dtype,
                         None if epilog_data is None else epilog_data.dtype) if epilog else None
    pdata = laid_out(prolog_data, problem.input) if prolog_data is not None else None
    edata = laid_out(epilog_data, problem.output) if epilog_data is not None else None
    executor = CpuExecutor(problem, cb_in, cb_out, workers=workers, engine=engine)
    runs_it = _cpu_engines.engine(engine).supports(problem.fft_type)  # else ducc0 does
    assert executor.engine_choice.engine == (engine if runs_it else "ducc0")
    executor.execute(inp, out, problem.direction, pdata, edata)
    return out


# ---------------------------------------------------------------------------------------------
# Every engine, every callback form, against float64 NumPy
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threaded", [False, True], ids=["one-piece", "threaded"])
@pytest.mark.parametrize("form", sorted(FORMS) + ["none"])
@pytest.mark.parametrize("kind, dtype, parity", TRANSFORMS, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("layout", ["1d", "batched-1d", "2d", "permuted-3d", "strided", "leading-axis"])
@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_matches_numpy(monkeypatch, engine, layout, kind, dtype, parity, form, threaded):
    if threaded:
        monkeypatch.setattr(_cpu, "THREAD_BYTES", 0)
    rng = np.random.default_rng(zlib.crc32(f"{engine}-{layout}-{kind}-{dtype}-{form}".encode()))
    x, axes = make_operand(rng, layout, dtype)
    problem, inp, out = prepare(kind, x, axes, parity)
    if form == "none":
        got = run_engine(engine, problem, inp, out)
        check(got, reference(kind, x, axes, problem), dtype)
        return
    prolog, epilog, window, filt, pre, post = callback_case(form, problem, x, rng)
    got = run_engine(engine, problem, inp, out, prolog, epilog, window, filt)
    check(got, reference(kind, x, axes, problem, pre, post), dtype)


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_in_place(engine, form):
    rng = np.random.default_rng(3)
    x, axes = make_operand(rng, "batched-1d", "complex64")
    operand = x.copy()  # transformed where it lies
    problem, inp, out = prepare("fft", operand, axes, inplace=True)
    assert inp is out
    prolog, epilog, window, filt, pre, post = callback_case(form, problem, x, rng)
    run_engine(engine, problem, inp, out, prolog, epilog, window, filt)
    check(operand, reference("fft", x, axes, problem, pre, post), "complex64")


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_over_many_blocks_of_power_of_two_rows(monkeypatch, engine, workers):
    """The case the chunked and padded engines exist for, pipelined over blocks on the pool's threads."""
    monkeypatch.setattr(_cpu, "BLOCK_BYTES", 1 << 16)  # 8 rows of 1024 complex64
    monkeypatch.setattr(_cpu, "THREAD_BYTES", 0)
    rng = np.random.default_rng(5)
    x = random_array(rng, (96, 1024), "complex64")
    for form in sorted(FORMS):
        problem, inp, out = prepare("fft", x, (-1,))
        prolog, epilog, window, filt, pre, post = callback_case(form, problem, x, rng)
        got = run_engine(engine, problem, inp, out, prolog, epilog, window, filt, workers=workers)
        check(got, reference("fft", x, (-1,), problem, pre, post), "complex64")


@pytest.fixture(params=["compiled", "scipy.fft"])
def scipy_entry(request, monkeypatch):
    """The scipy engine through SciPy's compiled FFT module, then through scipy.fft (where the
    module is missing or answers differently)."""
    if request.param == "compiled":
        if _cpu_engines.scipy_fft_module() is None:
            pytest.skip("SciPy's compiled FFT module is not usable here")
    else:
        monkeypatch.setattr(_cpu_engines, "scipy_fft_module", lambda: None)
    return request.param


@pytest.mark.parametrize("forward", [True, False])
def test_scipy_transforms_an_input_it_may_not_overwrite_in_the_output(forward, scipy_entry):
    """C2C from the caller's input with an output given: into the output (through scipy.fft, a
    copy into it transformed there: a new array of SciPy's would cost a pass more), the input
    untouched."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((16, 64)) + 1j * rng.standard_normal((16, 64))).astype(np.complex64)
    kept, out = x.copy(), np.empty_like(x)
    got = _cpu_engines.engine("scipy").run("C2C", x, (1,), forward, out, 64, 1, False)
    assert got.ctypes.data == out.ctypes.data and got.strides == out.strides and np.array_equal(x, kept)
    want = np.fft.fft(x.astype(np.complex128)) if forward else np.fft.ifft(x.astype(np.complex128)) * 64
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


@pytest.mark.parametrize("prolog", [False, True])
def test_an_in_place_plan_on_scipy_takes_the_fast_path(scipy_entry, prolog):
    """An in-place C2C plan on SciPy's engine (whose array cannot become the result: the operand
    is): the fast path, SciPy writing the operand, epilog (and prolog) applied once."""
    rng = np.random.default_rng(9)
    x = random_array(rng, (16, 64), "complex64")
    h = random_array(rng, (16, 64), "complex64")
    problem = plan_problem("fft", x.shape, (64, 1), "complex64", (1,), inplace=True)
    epilog = compile_cpu(lambda v, d: v * d, "epilog", "complex64", "complex64")
    window = compile_cpu(lambda v: v * 0.5, "prolog", "complex64") if prolog else None
    executor = CpuExecutor(problem, window, epilog, workers=1, engine="scipy")
    want = np.fft.fft(x.astype(np.complex128) * (0.5 if prolog else 1.0), axis=1) * h
    got = executor.execute(x, x, "forward", None, h)
    assert got is x and executor._runs["forward"] is not _cpu._no_fast_path
    assert np.abs(x - want).max() <= 1e-4 * np.abs(want).max()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scipy_writes_real_transforms_into_a_given_output(dtype):
    """R2C and C2R over two axes through SciPy's compiled FFT module: into the output given, no
    array of SciPy's and no copy (scipy.fft makes a new array)."""
    if _cpu_engines.scipy_fft_module() is None:
        pytest.skip("SciPy's compiled FFT module is not usable here")
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 12, 16)).astype(dtype)
    complex_type = np.result_type(dtype, np.complex64)
    half = np.empty((4, 12, 9), complex_type)
    scipy_engine = _cpu_engines.engine("scipy")
    got = scipy_engine.run("R2C", x, (1, 2), True, half, 16, 1, False)
    assert got is half
    want = np.fft.rfftn(x.astype(np.float64), axes=(1, 2))
    assert np.abs(half - want).max() <= 1e-4 * np.abs(want).max()
    back = np.empty_like(x)
    kept = half.copy()
    assert scipy_engine.run("C2R", half, (1, 2), False, back, 16, 1, False) is back
    assert np.abs(back - x * 12 * 16).max() <= 1e-3 * 12 * 16  # unnormalized, as cuFFT
    np.testing.assert_array_equal(half, kept)  # an input it may not overwrite is left as it was


def _scipy_layout():
    """The (package, module name) of this SciPy's compiled FFT module, and the package."""
    import importlib

    for package, name in _cpu_engines.SCIPY_FFT_MODULES:
        try:
            return (package, name), importlib.import_module(package)
        except ImportError:
            continue
    pytest.skip("this SciPy has none of the compiled FFT modules known")


def test_a_compiled_module_that_answers_differently_is_not_used(monkeypatch):
    """The module is SciPy's private one: checked against scipy.fft once, and passed over (the
    public functions serve, with the same results) where it answers differently."""
    import types

    (_, name), package = _scipy_layout()
    real = getattr(package, name)  # scipy.fft keeps its own reference: only the engine sees the change
    changed = types.SimpleNamespace(r2c=real.r2c, c2r=real.c2r, c2c=lambda a, axes, forward, inorm, out, nthreads:
                                    np.conj(real.c2c(a, axes, forward, inorm, out, nthreads)))
    monkeypatch.setattr(package, name, changed)
    _cpu_engines.scipy_fft_module.cache_clear()
    try:
        assert _cpu_engines.scipy_fft_module() is None
        x = (np.arange(32) + 1j).astype(np.complex64).reshape(2, 16)
        got = _cpu_engines.engine("scipy").run("C2C", x, (1,), True, None, 16, 1, False)
        assert np.abs(got - np.fft.fft(x)).max() <= 1e-4 * np.abs(got).max()
    finally:
        monkeypatch.undo()
        _cpu_engines.scipy_fft_module.cache_clear()
    assert _cpu_engines.scipy_fft_module() is not None


def test_scipy_1_18s_ducc_module_is_found_where_pocketfft_is_gone(monkeypatch):
    """SciPy 1.18 replaced ``scipy.fft._pocketfft.pypocketfft`` with
    ``scipy.fft._duccfft.pyduccfft`` (the same functions): the engine calls whichever this SciPy
    has. Here this SciPy's module stands in for ducc's, under the 1.18 names."""
    import sys
    import types

    (_, name), package = _scipy_layout()
    real = getattr(package, name)
    calls = []
    ducc = types.SimpleNamespace(**{f: (lambda *a, f=f: calls.append(f) or getattr(real, f)(*a))
                                    for f in ("c2c", "r2c", "c2r")})
    monkeypatch.setitem(sys.modules, "scipy.fft._pocketfft", None)  # import fails, as on 1.18
    monkeypatch.setitem(sys.modules, "scipy.fft._duccfft", types.SimpleNamespace(pyduccfft=ducc))
    _cpu_engines.scipy_fft_module.cache_clear()
    try:
        assert _cpu_engines.scipy_fft_module() is ducc
        x = (np.arange(32) + 1j).astype(np.complex64).reshape(2, 16)
        out = np.empty_like(x)
        calls.clear()
        assert _cpu_engines.engine("scipy").run("C2C", x, (1,), True, out, 16, 1, False) is out
        assert calls == ["c2c"] and np.abs(out - np.fft.fft(x)).max() <= 1e-4 * np.abs(out).max()
    finally:
        monkeypatch.undo()
        _cpu_engines.scipy_fft_module.cache_clear()


def test_an_engine_that_cannot_run_a_transform_gives_way_to_ducc0():
    r2c = FFTCall("R2C", "float32", (64, 1024), (1024, 1), (1,), 1024, 1)
    assert choose(r2c, "ducc0-padded").engine == choose(r2c, "ducc0-chunks").engine == "ducc0"
    assert choose(r2c, "scipy") == _cpu_engines.Choice("scipy", "given")


# ---------------------------------------------------------------------------------------------
# The choice: rules, measured, stored, reused, per machine
# ---------------------------------------------------------------------------------------------


class _NoStore:
    """A store that fails the test if touched."""

    def get(self, key):
        raise AssertionError("the store was read")

    def put(self, key, payload, meta):
        raise AssertionError("the store was written")


def _no_measuring(monkeypatch):
    def refuse(call):
        raise AssertionError(f"measured {call}")

    monkeypatch.setattr(_cpu_engines, "measure", refuse)


def test_rules_never_measure_nor_read_the_store(monkeypatch):
    _no_measuring(monkeypatch)
    assert choose(BIG, "rules", store=_NoStore()) == _cpu_engines.Choice(rule_engine(BIG), "rules")
    monkeypatch.setenv(_cpu_engines.ENV, "rules")
    assert choose(BIG, None, store=_NoStore()).how == "rules"
    problem = plan_problem("fft", (512, 1024), (1024, 1), "complex64", (1,))
    assert CpuExecutor(problem, None, None, workers=1, engine="rules").engine_choice.how == "rules"
    assert CpuExecutor(problem, None, None, workers=1).engine_choice.how == "rules"  # from the environment


def test_small_calls_follow_the_rules_without_a_lookup(monkeypatch):
    _no_measuring(monkeypatch)
    small = FFTCall("C2C", "complex64", (1, 1024), (1024, 1), (1,), 1024, 1)
    assert choose(small, "auto", store=_NoStore()) == _cpu_engines.Choice("ducc0", "rules")


def test_rules(monkeypatch):
    def c2c(n, rows, dtype="complex64"):
        return FFTCall("C2C", dtype, (rows, n), (n, 1), (1,), n, 1)

    assert rule_engine(c2c(1024, 64)) == rule_engine(c2c(512, 16)) == rule_engine(c2c(2048, 64)) == "ducc0-chunks"
    for call in (c2c(1024, 8), c2c(1000, 64), c2c(4096, 64), c2c(256, 64), c2c(1024, 64, "complex128")):
        assert rule_engine(call) == "ducc0", call

    def c2c_2d(n, m, dtype="complex64", threads=1):
        return FFTCall("C2C", dtype, (m, n), (n, 1), (0, 1), n, threads)

    # The columns of a 2-D FFT a power of two of 4-16 KiB apart: ducc0 writes into its padded buffer.
    assert rule_engine(c2c_2d(1024, 4096)) == rule_engine(c2c_2d(512, 64)) == "ducc0-padded"
    for call in (c2c_2d(1000, 4096), c2c_2d(256, 4096), c2c_2d(1024, 4096, "complex128"), c2c_2d(1024, 1),
                 c2c_2d(1024, 8), c2c_2d(1024, 4096, threads=4)):
        assert rule_engine(call) == "ducc0", call


def test_auto_measures_once_then_reads_the_store(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path / "cache")
    measured = []
    real = _cpu_engines.measure
    monkeypatch.setattr(_cpu_engines, "measure", lambda call: measured.append(call) or real(call))
    first = choose(BIG, "auto", store=store)
    assert first.how == "measured" and first.engine in ENGINES and len(measured) == 1
    assert set(first.timings) == set(_cpu_engines.candidates(BIG))
    assert choose(BIG, "auto", store=store) is first  # the process's memo
    forget_choices()
    again = choose(BIG, "auto", store=ArtifactStore(tmp_path / "cache"))  # as a new process would
    assert again == _cpu_engines.Choice(first.engine, "stored", first.timings, first.threads) and len(measured) == 1


def test_another_machines_choice_is_not_reused(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path / "cache")
    assert choose(BIG, "auto", store=store).how == "measured"
    here = cpu_native.cpu_identity()
    for other in ({**here, "features": "0" * 16}, {**here, "cpu": here["cpu"] + " v2"}):
        forget_choices()
        monkeypatch.setattr(cpu_native, "cpu_identity", lambda other=other: other)
        assert choose(BIG, "auto", store=store).how == "measured"
    forget_choices()
    monkeypatch.setattr(cpu_native, "cpu_identity", lambda: here)
    assert choose(BIG, "auto", store=store).how == "stored"


@pytest.mark.parametrize("meta", ["record", "before-the-record"])
def test_a_damaged_stored_choice_is_dropped_and_measured_again(tmp_path, meta):
    """An unknown engine under the record, or a choice stored before the record existed."""
    store = ArtifactStore(tmp_path / "cache")
    key = _cpu_engines.engine_key(BIG)
    if meta == "record":
        store.put(key, json.dumps({"engine": "mkl"}).encode(), _cpu_engines.choice_record(BIG, "mkl").stored())
    else:
        store.put(key, json.dumps({"engine": "ducc0"}).encode(), {"kind": "fft-engine"})
    assert choose(BIG, "auto", store=store).how == "measured"
    forget_choices()
    assert choose(BIG, "auto", store=store).how == "stored"
    [(_, stored)] = list(store.entries())
    assert (stored["target"], stored["element_dtype"], stored["arch"]) == \
        ("cpu-fft-engine", BIG.dtype, cpu_native.cpu_summary(cpu_native.cpu_identity()))


def test_the_choice_key_holds_the_problem():
    keys = {_cpu_engines.engine_key(call) for call in (
        BIG, FFTCall("C2C", "complex128", (64, 1024), (1024, 1), (1,), 1024, 1),
        FFTCall("C2C", "complex64", (64, 1024), (1, 64), (1,), 1024, 1),
        FFTCall("C2C", "complex64", (64, 1024), (1024, 1), (1,), 1024, 2),
        FFTCall("C2C", "complex64", (32, 1024), (1024, 1), (1,), 1024, 1),
        FFTCall("C2C", "complex64", (64, 1024), (1024, 1), (1,), 1024, 1, parallel=2),
        FFTCall("C2C", "complex64", (64, 1024), (1024, 1), (1,), 1024, 1, epilog=True))}
    assert len(keys) == 7


@pytest.mark.parametrize("call", [
    FFTCall("C2C", "complex64", (64, 1024), (1024, 1), (1,), 1024, 1, parallel=2, epilog=True),
    FFTCall("C2R", "complex128", (16, 513), (513, 1), (1,), 1024, 1, parallel=2),
    FFTCall("R2C", "float32", (1024, 16), (1, 1024), (0,), 1024, 2),
], ids=["c2c-parallel", "c2r-parallel", "r2c-leading-axis"])
def test_measure_times_every_candidate(call):
    timings = _cpu_engines.measure(call)
    assert set(timings) == set(_cpu_engines.candidates(call)) and all(t > 0 for t in timings.values())


@pytest.mark.parametrize("threads, parallel, cpu_clock", [(1, 1, True), (2, 1, False), (1, 2, False)])
def test_measure_times_threaded_calls_on_the_wall_clock(monkeypatch, threads, parallel, cpu_clock):
    """A threaded candidate on CPU time would be charged its idle threads' spinning, and not its
    waits: it is timed on the wall clock; a one-thread call on CPU time (other jobs' time does not count)."""
    read = []
    process_time = time.process_time
    monkeypatch.setattr(_cpu_engines.time, "process_time", lambda: read.append(1) or process_time())
    call = FFTCall("C2C", "complex64", (64, 256), (256, 1), (1,), 256, threads, parallel=parallel, epilog=True)
    _cpu_engines.measure(call)
    assert bool(read) == cpu_clock


def test_the_executor_describes_its_blocks():
    problem = plan_problem("fft", (1024, 1024), (1024, 1), "complex64", (1,))
    epilog = compile_cpu(lambda v: v * 2.0, "epilog", "complex64")
    call = _cpu.CpuExecutor(problem, None, epilog, workers=2, engine="rules")._fft_call()
    assert (call.shape, call.threads, call.parallel, call.epilog) == ((512, 1024), 1, 2, True)
    call = _cpu.CpuExecutor(problem, None, None, workers=1, engine="rules")._fft_call()
    assert (call.shape, call.threads, call.parallel, call.epilog) == ((512, 1024), 1, 1, False)


_CHILD = """
import json
from nvmath.fft._cpu import CpuExecutor
from nvmath.fft._layout import plan_problem
problem = plan_problem("fft", (128, 1024), (1024, 1), "complex64", (1,))
choice = CpuExecutor(problem, None, None, workers=1).engine_choice
print(json.dumps({"engine": choice.engine, "how": choice.how}))
"""


def test_a_second_process_reuses_the_choice(tmp_path):
    env = {**os.environ, "FFTFUSE_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop(_cpu_engines.ENV, None)
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", _CHILD], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0]["how"] == "measured" and runs[1] == {**runs[0], "how": "stored"}


# ---------------------------------------------------------------------------------------------
# The option
# ---------------------------------------------------------------------------------------------


def test_bad_modes_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="cpu_engine must be one of .*'rules'.*got 'mkl'"):
        FFTOptions(cpu_engine="mkl")
    monkeypatch.setenv(_cpu_engines.ENV, "mkl")
    with pytest.raises(ValueError, match=r"\$FFTFUSE_CPU_ENGINE must be one of .*got 'mkl'"):
        choose(BIG)


def test_the_option_reaches_the_executor():
    import nvmath

    x = random_array(np.random.default_rng(1), (64, 1024), "complex64")
    with nvmath.fft.FFT(x, axes=[-1], options=FFTOptions(cpu_engine="scipy"), execution="cpu") as f:
        f.plan()
        assert [c for _, c in _cpu_engines.choices_made()][-1] == _cpu_engines.Choice("scipy", "given")
        check(f.execute(), np.fft.fft(x.astype(np.complex128)), "complex64")


_SMALL_CHILD = """
import json, sys
import numpy as np
import nvmath
from nvmath.fft import _cpu_engines
x = np.ones((1, 1024), np.complex64)
y = nvmath.fft.fft(x, epilog=lambda v: v * 2.0)
print(json.dumps({"scipy.fft": "scipy.fft" in sys.modules, "made": [c.how for _, c in _cpu_engines.choices_made()],
                  "ok": bool(abs(y[0, 0] - 2048) < 1e-3)}))
"""


def test_a_small_call_in_a_fresh_process_looks_nothing_up(tmp_path):
    """The 1 x 1024 call's first result: the rules, no measuring, no store lookup, no scipy.fft."""
    env = {**os.environ, "FFTFUSE_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop(_cpu_engines.ENV, None)
    done = subprocess.run([sys.executable, "-c", _SMALL_CHILD], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"scipy.fft": False, "made": ["rules"], "ok": True}


# ---------------------------------------------------------------------------------------------
# SciPy's engine on the fast path: its new array becomes the result, the epilog applied in place
# ---------------------------------------------------------------------------------------------

def _scale(v):
    return v * 0.5


def _times(v, d):
    return v * d


@pytest.mark.parametrize("transform, dtype, shape, with_prolog", [
    ("fft", "complex64", (8, 64), False), ("fft", "complex128", (8, 64), True), ("ifft", "complex64", (4, 32), True),
    ("rfft", "float32", (8, 64), False), ("rfft", "float64", (8, 64), True), ("irfft", "complex128", (8, 33), True),
], ids=["c2c", "c2c-prolog", "inverse", "r2c", "r2c-prolog", "c2r-prolog"])
def test_scipys_engine_runs_on_the_fast_path(monkeypatch, transform, dtype, shape, with_prolog):
    rng = np.random.default_rng(5)
    problem = plan_problem(transform, shape, (shape[1], 1), dtype, (1,))
    prolog = compile_cpu(_scale, "prolog", problem.input_dtype) if with_prolog else None
    epilog = compile_cpu(_times, "epilog", problem.output_dtype, problem.output_dtype)
    executor = CpuExecutor(problem, prolog, epilog, workers=1, engine="scipy")
    assert executor.engine_choice.engine == "scipy" and executor._fast_run(problem.direction) is not None
    general = executor._general
    monkeypatch.setattr(executor, "_general", lambda *a, **k: pytest.fail("the general path ran"))
    x = random_array(rng, shape, dtype)
    h = random_array(rng, problem.output.shape, problem.output_dtype)
    before = x.copy()
    wide = x.astype(np.complex128 if np.dtype(dtype).kind == "c" else np.float64) * (0.5 if with_prolog else 1)
    n = problem.fft_lengths[-1]
    want = {"fft": lambda: np.fft.fft(wide, axis=1), "ifft": lambda: np.fft.ifft(wide, axis=1) * n,
            "rfft": lambda: np.fft.rfft(wide, axis=1), "irfft": lambda: np.fft.irfft(wide, n, axis=1) * n}[transform]() * h
    for _ in range(2):
        got = executor.execute(x, None, problem.direction, None, h)
        assert got.shape == want.shape and got.dtype == np.dtype(problem.output_dtype)
        tol = 1e-4 if np.dtype(dtype).itemsize <= 8 and dtype != "float64" else 1e-10
        assert np.abs(got - want).max() < tol * np.abs(want).max()
        np.testing.assert_array_equal(x, before)  # an input it may not overwrite stays as given
    # Given an output, the general path writes it.
    monkeypatch.setattr(executor, "_general", general)
    out = np.empty_like(want, dtype=problem.output_dtype)
    assert executor.execute(x, out, problem.direction, None, h) is out
    assert np.abs(out - want).max() < tol * np.abs(want).max()


@pytest.mark.parametrize("engine", ["ducc0-chunks", "ducc0-padded"])
@pytest.mark.parametrize("transform, with_prolog, with_epilog, inplace", [
    ("fft", False, True, False), ("ifft", True, True, False), ("fft", True, True, True), ("fft", True, False, False),
], ids=["c2c", "inverse-prolog", "in-place-prolog", "prolog-only"])
def test_ducc0s_other_engines_run_on_the_fast_path(monkeypatch, engine, transform, with_prolog, with_epilog,
                                                    inplace):
    """ducc0 in 8-row chunks writes into the output as ducc0 does, the padded engine into its own
    buffer, which the epilog (or a copy) reads into the output: neither pays the general path's
    Python (15 us a call; 16 x 1024 on a 2-core Xeon: 61.6 us fused where the FFT takes 39.4)."""
    rng = np.random.default_rng(6)
    shape = (20, 64)  # three chunks, the last one short
    problem = plan_problem(transform, shape, (64, 1), "complex64", (1,), inplace=inplace)
    prolog = compile_cpu(_scale, "prolog", "complex64") if with_prolog else None
    epilog = compile_cpu(_times, "epilog", "complex64", "complex64") if with_epilog else None
    executor = CpuExecutor(problem, prolog, epilog, workers=1, engine=engine)
    assert executor.engine_choice.engine == engine and executor._fast_run(problem.direction) is not None
    monkeypatch.setattr(executor, "_general", lambda *a, **k: pytest.fail("the general path ran"))
    x, h = random_array(rng, shape, "complex64"), random_array(rng, shape, "complex64")
    wide = x.astype(np.complex128) * (0.5 if with_prolog else 1)
    want = (np.fft.fft(wide, axis=1) if transform == "fft" else np.fft.ifft(wide, axis=1) * 64) * \
        (h if with_epilog else 1)
    for _ in range(2):  # the padded engine's kept buffer is reused
        got = executor.execute(x.copy() if inplace else x, None, problem.direction, None, h if with_epilog else None)
        assert np.abs(got - want).max() < 1e-4 * np.abs(want).max()
    if inplace:
        y = x.copy()
        assert executor.execute(y, y, problem.direction, None, h) is y


def _raises_on_large(v, d):
    if d.real > 100:
        raise ValueError("too large")
    return v * d


def test_a_raising_epilog_on_the_padded_engines_fast_path_names_the_element():
    problem = plan_problem("fft", (20, 64), (64, 1), "complex64", (1,))
    epilog = compile_cpu(_raises_on_large, "epilog", "complex64", "complex64")
    executor = CpuExecutor(problem, None, epilog, workers=1, engine="ducc0-padded")
    assert executor._fast_run("forward") is not None
    h = np.ones((20, 64), np.complex64)
    h[7, 9] = 1000
    with pytest.raises(ValueError, match="too large") as err:
        executor.execute(np.ones((20, 64), np.complex64), None, "forward", None, h)
    assert f"offset {7 * 64 + 9} of the FFT output" in "\n".join(err.value.__notes__)


def test_threaded_calls_below_the_measuring_size_are_measured(tmp_path, monkeypatch):
    """One thread under MEASURE_MIN_BYTES takes the rules; a threaded call of that size is measured
    (on a 16-core Xeon SciPy's threads ran 16 x 1024 complex64 in half ducc0's time)."""
    measured = []
    monkeypatch.setattr(_cpu_engines, "measure", lambda call: measured.append(call) or {"ducc0": 2.0, "scipy": 1.0})
    store = ArtifactStore(tmp_path / "cache")
    small = FFTCall("C2C", "complex64", (4, 1024), (1024, 1), (1,), 1024, 1)
    assert choose(small, "auto", store=store).how == "rules" and not measured
    threaded = FFTCall("C2C", "complex64", (4, 1024), (1024, 1), (1,), 1024, 2)
    assert choose(threaded, "auto", store=store) == _cpu_engines.Choice("scipy", "measured", {"ducc0": 2.0, "scipy": 1.0})
    assert len(measured) == 1
    # From 64 KiB one thread is measured too (a 2-D 16 x 1024 complex64 FFT: SciPy 77 us, ducc0 108).
    one_thread = FFTCall("C2C", "complex64", (16, 1024), (1024, 1), (0, 1), 1024, 1)
    assert choose(one_thread, "auto", store=store).how == "measured" and len(measured) == 2


def test_a_call_in_one_piece_measures_its_thread_counts_with_the_engines():
    call = FFTCall("C2C", "complex64", (16, 1024), (1024, 1), (1,), 1024, 2, other_threads=(1, 4))
    timings = _cpu_engines.measure(call)
    engines = _cpu_engines.candidates(call)
    assert set(timings) == set(engines) | {f"{e}@{t}" for e in engines for t in (1, 4)}
    assert all(t > 0 for t in timings.values())


def test_the_measured_thread_count_is_kept_stored_and_run(tmp_path, monkeypatch):
    """SciPy on all threads measured fastest: the choice says so, a new process reads it back, and
    the executor's FFT runs on that many threads (the rule would give 2), with a correct result."""
    timings = {"ducc0": 50.0, "scipy": 45.0, "ducc0@1": 60.0, "scipy@1": 40.0, "ducc0@4": 48.0, "scipy@4": 20.0}
    measured = []
    monkeypatch.setattr(_cpu_engines, "measure", lambda call: measured.append(call) or dict(timings))
    store = ArtifactStore(tmp_path / "cache")
    call = FFTCall("C2C", "complex64", (16, 1024), (1024, 1), (1,), 1024, 2, other_threads=(1, 4))
    assert choose(call, "auto", store=store) == _cpu_engines.Choice("scipy", "measured", timings, 4)
    forget_choices()
    assert choose(call, "auto", store=ArtifactStore(tmp_path / "cache")) == _cpu_engines.Choice("scipy", "stored",
                                                                                                timings, 4)
    assert _cpu_engines.engine_key(call) != _cpu_engines.engine_key(dataclasses.replace(call, other_threads=(1, 8)))

    forget_choices()
    monkeypatch.setattr(_cpu_engines, "choose", lambda c, mode=None, store=None: measured.append(c) or
                        _cpu_engines.Choice("scipy", "stored", threads=4))
    problem = plan_problem("fft", (16, 1024), (1024, 1), "complex64", axes=(1,))
    executor = CpuExecutor(problem, None, None, workers=4)
    assert measured[-1].threads == 2 and measured[-1].other_threads == (1, 4)  # the rule's count, and the others
    assert executor.fft_threads() == 4
    ran = []
    real = _cpu_engines.Scipy.runner  # the fast path binds the engine's call once
    monkeypatch.setattr(_cpu_engines.Scipy, "runner", lambda self, *a: ran.append(a[4]) or real(self, *a))
    x = (np.random.default_rng(1).standard_normal((16, 1024)) + 1j).astype(np.complex64)
    got = executor.execute(x, None, "forward", None, None)
    assert ran == [4] and np.abs(got - np.fft.fft(x)).max() < 1e-3 * np.abs(np.fft.fft(x)).max()


def test_a_stored_choice_with_a_bad_thread_count_is_measured_again(tmp_path):
    store = ArtifactStore(tmp_path / "cache")
    call = FFTCall("C2C", "complex64", (64, 1024), (1024, 1), (1,), 1024, 2, other_threads=(1, 4))
    store.put(_cpu_engines.engine_key(call), json.dumps({"engine": "ducc0", "threads": -3}).encode(),
              _cpu_engines.choice_record(call, "ducc0", -3).stored())
    assert choose(call, "auto", store=store).how == "measured"


@pytest.mark.parametrize("name", _cpu_engines.ENGINES)
@pytest.mark.parametrize("fft_type", ["C2C", "R2C", "C2R"])
def test_an_engines_runner_transforms_as_its_run_does(fft_type, name, scipy_entry):
    """An engine's runner, bound once per plan (SciPy's and ducc0's call their compiled function
    directly): into the output given (the padded engine: its buffer), in place where the input
    may be overwritten (SciPy's C2C), else into a new array, the input untouched where it may
    not be overwritten."""
    engine = _cpu_engines.engine(name)
    if not engine.supports(fft_type) or (scipy_entry != "compiled" and name != "scipy"):
        pytest.skip("not this engine's transform" if not engine.supports(fft_type) else "SciPy's entry only")
    rng = np.random.default_rng(11)
    kind = {"C2C": "complex64", "R2C": "float32", "C2R": "complex64"}[fft_type]
    x = random_array(rng, (8, 33 if fft_type == "C2R" else 64), kind)
    want = engine.run(fft_type, x.copy(), (1,), False, None, 64, 1, False).copy()
    run = engine.runner(fft_type, (1,), False, 64, 1)
    # The padded engine writes its own buffer always; scipy.fft takes no output.
    writes_out = name in ("ducc0", "ducc0-chunks", "fftw") or (name == "scipy" and scipy_entry == "compiled")
    for owned in (False, True):
        for given in (False, True):
            source = x.copy()
            out = np.empty_like(want) if given else None
            got = run(source, out, owned)
            assert got is out if given and writes_out else got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
            if name == "scipy" and fft_type == "C2C" and owned and not given and writes_out:
                assert np.shares_memory(got, source)
            elif not owned:
                np.testing.assert_array_equal(source, x)
