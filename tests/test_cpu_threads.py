"""How large CPU runs use their threads (pipelined on how many, or the whole problem at once):
measured on the executor's first runs, kept in the store for this machine, read back by later
executors, never measured under the rules."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest

from fftfuse_cache import ArtifactStore
from fftfuse_compiler import cpu_native
from fftfuse_compiler.cpu_backend import compile_cpu
from nvmath.fft import _cpu, _cpu_engines, _cpu_threads
from nvmath.fft._cpu import CpuExecutor
from nvmath.fft._cpu_engines import FFTCall
from nvmath.fft._cpu_threads import MARGIN, ROUNDS, WHOLE, ThreadCount
from nvmath.fft._layout import plan_problem
from test_cpu_executor import random_array

BIG_CALL = FFTCall("C2C", "complex64", (2048, 1024), (1024, 1), (1,), 1024, 8, parallel=8, epilog=True)


def run_counts(counts: ThreadCount, seconds: dict[int, float]) -> list[int]:
    """Runs until a count is chosen, each count taking ``seconds[count]``; the counts run."""
    ran = []
    while counts.chosen is None:
        n = counts.start()
        ran.append(n)
        counts.finish(n, seconds[n])
    return ran


@pytest.mark.parametrize("seconds, expected", [
    ({8: 2.0, 4: 1.2, 2: 1.9, WHOLE: 1.5}, 4),
    ({8: 2.0, 4: 2.0 * (1 - MARGIN / 2), 2: 2.5, WHOLE: 2.2}, 8),  # within the margin: the threads stay
    ({8: 2.0, 4: 1.5, 2: 1.0, WHOLE: 1.2}, 2),
    ({8: 2.0, 4: 1.5, 2: 1.6, WHOLE: 1.0}, WHOLE),
    ({8: 2.0, 4: 1.5, 2: 1.6, WHOLE: 1.5 * (1 - MARGIN / 2)}, 4),  # the whole run must win by the margin too
], ids=["half", "within-margin", "quarter", "whole", "whole-within-margin"])
def test_the_fastest_candidate_is_kept_after_a_warm_up_and_rounds_of_each(seconds, expected):
    counts = ThreadCount(8)
    ran = run_counts(counts, seconds)
    assert ran[0] == 8 and sorted(ran[1:]) == sorted([8, 4, 2, WHOLE] * ROUNDS)  # a warm-up, then each in turn
    assert counts.chosen == expected and counts.start() == expected


def test_the_warm_up_is_not_timed():
    counts = ThreadCount(4)
    counts.finish(counts.start(), 0.001)  # the first run: its time would make 4 threads look fastest
    while counts.chosen is None:
        n = counts.start()
        counts.finish(n, {4: 2.0, 2: 1.0, WHOLE: 1.5}[n])
    assert counts.chosen == 2


@pytest.mark.parametrize("most", [2, 3])
def test_two_or_three_threads_choose_between_pipelining_and_the_whole_run(most):
    counts = ThreadCount(most)
    assert counts.candidates == [most, WHOLE] and counts.chosen is None
    run_counts(counts, {most: 2.0, WHOLE: 1.0})
    assert counts.chosen == WHOLE


def test_one_thread_measures_nothing():
    assert ThreadCount(1).chosen == 1


def test_a_count_is_stored_and_read_back_for_this_machine_only(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path / "cache")
    key = _cpu_threads.artifact_key_of(BIG_CALL, "ducc0", 8, False)
    first = ThreadCount(8, key, store)
    run_counts(first, {8: 2.0, 4: 1.0, 2: 1.5, WHOLE: 1.8})
    again = ThreadCount(8, key, ArtifactStore(tmp_path / "cache"))  # as a new process would
    assert again.chosen == 4 and again.start() == 4
    here = cpu_native.cpu_identity()
    monkeypatch.setattr(cpu_native, "cpu_identity", lambda: {**here, "cpu": here["cpu"] + " v2"})
    assert ThreadCount(8, _cpu_threads.artifact_key_of(BIG_CALL, "ducc0", 8, False), store).chosen is None


def test_the_key_holds_the_problem_the_engine_and_the_callbacks():
    keys = {_cpu_threads.artifact_key_of(*args) for args in (
        (BIG_CALL, "ducc0", 8, False), (BIG_CALL, "scipy", 8, False), (BIG_CALL, "ducc0", 16, False),
        (BIG_CALL, "ducc0", 8, True), (FFTCall("C2C", "complex64", (4096, 1024), (1024, 1), (1,), 1024, 8, 8, True),
                                    "ducc0", 8, False))}
    assert len(keys) == 5


@pytest.mark.parametrize("stored", [3, -1, "4", None, 2.0])
def test_a_stored_count_that_is_not_a_candidate_is_dropped(tmp_path, stored):
    store = ArtifactStore(tmp_path / "cache")
    key = _cpu_threads.artifact_key_of(BIG_CALL, "ducc0", 8, False)
    run_counts(ThreadCount(8, key, store), {8: 1.0, 4: 2.0, 2: 2.0, WHOLE: 2.0})
    [(_, record)] = list(store.entries())
    store.put(key, json.dumps({"threads": stored}).encode(), record)
    assert ThreadCount(8, key, store).chosen is None and not list(store.entries())


def _problem():
    problem = plan_problem("fft", (2048, 1024), (1024, 1), "complex64", (1,))
    epilog = compile_cpu(lambda v, d: v * d, "epilog", "complex64", "complex64")
    rng = np.random.default_rng(3)
    x, h = random_array(rng, (2048, 1024), "complex64"), random_array(rng, (2048, 1024), "complex64")
    return problem, epilog, x, h


@pytest.mark.parametrize("adopts", [False, True], ids=["output-given", "no-output"])
def test_the_executor_tries_each_candidate_then_keeps_one_with_a_correct_result(tmp_path, monkeypatch, adopts):
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(_cpu_engines.ENV, raising=False)
    problem, epilog, x, h = _problem()
    ran = []
    real_start = ThreadCount.start
    monkeypatch.setattr(ThreadCount, "start", lambda self: ran.append(real_start(self)) or ran[-1])
    if adopts:  # SciPy's engine allocates its result: a run given no output keeps it where it runs whole
        monkeypatch.setattr(_cpu_engines, "choose", lambda call, mode: _cpu_engines.Choice("scipy", "measured"))
    executor = CpuExecutor(problem, None, epilog, workers=8)
    assert executor.thread_count.candidates == [8, 4, 2, WHOLE]
    want = np.fft.fft(x.astype(np.complex128), axis=1) * h
    trial = executor.engine_trial  # may come first
    for _ in range(1 + 4 * ROUNDS + 2 + (0 if trial is None else 1 + len(trial.candidates) * trial.rounds)):
        out = executor.execute(x, None if adopts else np.empty_like(x), "forward", None, h)
        assert np.abs(out - want).max() < 1e-4 * np.abs(want).max()
    chosen = executor.thread_count.chosen
    assert chosen in (8, 4, 2, WHOLE) and set(ran) == {8, 4, 2, WHOLE}
    assert ran[-2:] == [chosen, chosen]
    # A later executor of the same problem reads the choice and measures nothing.
    assert CpuExecutor(problem, None, epilog, workers=8).thread_count.chosen == chosen


def test_the_whole_run_threads_the_engine_once_and_splits_the_loops(monkeypatch):
    problem, epilog, x, h = _problem()
    executor = CpuExecutor(problem, None, epilog, workers=8, engine="ducc0")
    executor.thread_count.chosen = WHOLE
    calls = []
    engine_type = type(_cpu_engines.engine("ducc0"))
    real_run = engine_type.run
    monkeypatch.setattr(engine_type, "run", lambda *a: calls.append((a[2].shape, a[7])) or real_run(*a))
    out = executor.execute(x, np.empty_like(x), "forward", None, h)
    assert calls == [((2048, 1024), 8)]  # one FFT call over the whole batch on all threads
    want = np.fft.fft(x.astype(np.complex128), axis=1) * h
    assert np.abs(out - want).max() < 1e-4 * np.abs(want).max()


@pytest.mark.parametrize("mode", ["rules", "ducc0"])
def test_the_rules_and_a_named_engine_always_use_every_thread(tmp_path, monkeypatch, mode):
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "cache"))
    problem, epilog, x, h = _problem()
    executor = CpuExecutor(problem, None, epilog, workers=8, engine=mode)
    assert executor.thread_count.chosen == 8
    executor.execute(x, np.empty_like(x), "forward", None, h)
    assert not list(ArtifactStore(tmp_path / "cache").entries())


def test_one_piece_runs_have_no_thread_count():
    problem = plan_problem("fft", (16, 1024), (1024, 1), "complex64", (1,))
    assert CpuExecutor(problem, None, None, workers=8).thread_count is None


def whole_run_walks(monkeypatch, workers: int) -> list[list[int]]:
    """The row walks (shapes) of each piece of the epilog's pass of a whole 512 x 1024 complex64
    run on ``workers`` threads, after checking its result."""
    problem = plan_problem("fft", (512, 1024), (1024, 1), "complex64", (1,))
    epilog = compile_cpu(lambda v, d: v * d, "epilog", "complex64", "complex64")
    rng = np.random.default_rng(4)
    x, h = random_array(rng, (512, 1024), "complex64"), random_array(rng, (512, 1024), "complex64")
    executor = CpuExecutor(problem, None, epilog, workers=workers, engine="ducc0")
    executor.thread_count.chosen = WHOLE
    walks = []
    real = epilog.loops.in_place
    monkeypatch.setattr(epilog.loops, "in_place", lambda *a: walks.append(list(a[5])) or real(*a))
    out = executor.execute(x, np.empty_like(x), "forward", None, h)
    want = np.fft.fft(x.astype(np.complex128), axis=1) * h
    assert np.abs(out - want).max() < 1e-4 * np.abs(want).max()
    return walks


def test_the_whole_runs_loops_split_by_whole_rows(monkeypatch):
    """Each thread's piece of the epilog's pass spans whole rows (cut along the batch axis): cut
    along the rows, a piece walks every row's half, and two threads ran slower than one."""
    walks = whole_run_walks(monkeypatch, 2)
    assert len(walks) == 2 and all(walk[-1] % 1024 == 0 for walk in walks), walks


def test_the_whole_runs_loops_give_each_thread_a_megabyte_at_least(monkeypatch):
    """16 threads, a 4 MiB result: four pieces of the epilog's pass, not sixteen (each piece
    costs a hand-over and the GIL: split 16 ways, R2C 1024 x 1024 ran 2.2x slower than SciPy's
    FFT then NumPy's multiply on one thread, on the 16-core host)."""
    walks = whole_run_walks(monkeypatch, 16)
    assert len(walks) == (512 * 1024 * 8) // _cpu.PIECE_BYTES == 4, walks


def test_the_whole_run_has_its_own_engine_measured_as_one_threaded_call(tmp_path, monkeypatch):
    """A block's engine is measured on one thread, blocks side by side; the whole run's FFT is one
    call on every thread, measured as such (here: SciPy for it, ducc0 for a block)."""
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "cache"))
    asked = []

    def choose(call, mode):
        asked.append(call)
        return _cpu_engines.Choice("ducc0" if call.parallel > 1 else "scipy", "measured")

    monkeypatch.setattr(_cpu_engines, "choose", choose)
    problem, epilog, x, h = _problem()
    executor = CpuExecutor(problem, None, epilog, workers=8)
    block, whole = asked
    assert (block.parallel, block.threads, whole.parallel, whole.threads) == (8, 1, 1, 8)
    assert whole.shape == x.shape and block.shape[0] < x.shape[0]
    assert (executor.engine_choice.engine, executor.whole_choice.engine) == ("ducc0", "scipy")
    ran = []
    for name in ("ducc0", "scipy"):
        engine_type = type(_cpu_engines.engine(name))
        monkeypatch.setattr(engine_type, "run", lambda *a, name=name, real=engine_type.run:
                            ran.append((name, a[2].shape[0])) or real(*a))
    want = np.fft.fft(x.astype(np.complex128), axis=1) * h
    for count in (8, WHOLE):
        executor.thread_count.chosen = count
        ran.clear()
        out = executor.execute(x, None, "forward", None, h)
        assert np.abs(out - want).max() < 1e-4 * np.abs(want).max()
        if count == WHOLE:
            assert ran == [("scipy", 2048)]
        else:
            assert {name for name, _ in ran} == {"ducc0"} and sum(rows for _, rows in ran) == 2048


# -- the engine trial: the measurement's winner against its runner-up, on the executor's runs --
def _busy(seconds: float) -> None:
    """Work for ``seconds`` (a one-thread trial times CPU time, which a sleep does not take)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _watch_runner(monkeypatch, engine_type, record) -> None:
    """Have the fast path's bound calls of ``engine_type`` (its ``runner``) call ``record(threads)``
    first, as a patched ``run`` does for the general path's (a runner that calls ``run`` is
    then seen twice)."""
    real = engine_type.runner

    def runner(self, *args):
        bound = real(self, *args)
        return lambda x, out, owned: record(args[4]) or bound(x, out, owned)

    monkeypatch.setattr(engine_type, "runner", runner)



def test_an_engine_trial_pairs_a_measured_choice_with_close_runners_up(tmp_path, monkeypatch):
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "cache"))
    close = _cpu_engines.Choice("ducc0-chunks", "measured", {"ducc0-chunks": 100.0, "scipy": 104.0, "ducc0": 150.0,
                                                             "ducc0-padded": 160.0})
    # The fastest other, then the fastest of an engine not yet tried: three at most.
    assert _cpu_threads.engine_trial(BIG_CALL, close).candidates == ["ducc0-chunks", "scipy", "ducc0"]
    # Runs of 100 us: 16 each (about 2 ms); of 5 ms: 4 each, never fewer (the minimum of two was noise).
    assert _cpu_threads.engine_trial(BIG_CALL, close).rounds == _cpu_threads.TRIAL_ROUNDS
    slow = _cpu_engines.Choice("ducc0-chunks", "measured", {"ducc0-chunks": 5000.0, "scipy": 5100.0})
    assert _cpu_threads.engine_trial(BIG_CALL, slow).rounds == _cpu_threads.TRIAL_MIN_ROUNDS == 4
    far = _cpu_engines.Choice("ducc0", "measured", {"ducc0": 100.0, "scipy": 100.0 * (1 + _cpu_threads.RIVAL) + 1})
    block = dataclasses.replace(BIG_CALL, shape=(256, 1024), threads=1, parallel=1)  # its own sample, one thread
    assert _cpu_threads.engine_trial(block, far) is None
    assert _cpu_threads.engine_trial(dataclasses.replace(block, parallel=2), far).candidates == ["ducc0", "scipy"]
    for how in ("rules", "given"):
        assert _cpu_threads.engine_trial(BIG_CALL, dataclasses.replace(close, how=how)) is None


def test_a_call_larger_than_its_sample_tries_a_runner_up_further_behind(tmp_path, monkeypatch):
    """The sample of a 32 MiB call sat in cache where the call streams through memory: a runner-up
    60% behind on the sample is tried on the runs; for a call that is its own sample it is not."""
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "cache"))
    measured = _cpu_engines.Choice("ducc0", "measured", {"ducc0": 1000.0, "scipy": 1600.0})
    one_thread = FFTCall("R2C", "float32", (4096, 2048), (2048, 1), (1,), 2048, 1, epilog=True)
    assert one_thread.sample().shape != one_thread.shape
    assert _cpu_threads.engine_trial(one_thread, measured).candidates == ["ducc0", "scipy"]
    in_cache = dataclasses.replace(one_thread, shape=one_thread.sample().shape)
    assert _cpu_threads.engine_trial(in_cache, measured) is None
    too_far = _cpu_engines.Choice("ducc0", "measured", {"ducc0": 1000.0,
                                                        "scipy": 1000.0 * (1 + _cpu_threads.FAR_RIVAL) + 1})
    assert _cpu_threads.engine_trial(one_thread, too_far) is None


def test_an_engine_trial_is_kept_per_whole_problem(tmp_path, monkeypatch):
    """Blocks of one size serve problems of many: the trial of 1024 x 1024 (its runs in cache)
    does not decide 4096 x 1024 run in the same blocks (its runs stream through memory; on the
    16-core host ducc0 tied SciPy at the first size and lost 1.07-1.14x at the second)."""
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "cache"))
    measured = _cpu_engines.Choice("ducc0", "measured", {"ducc0": 1000.0, "scipy": 1100.0})
    block = FFTCall("R2C", "float32", (512, 2048), (2048, 1), (1,), 2048, 1, epilog=True)
    larger = dataclasses.replace(block, shape=(4096, 2048))
    small = _cpu_threads.engine_trial(block, measured)
    while small.chosen is None:
        engine = small.start()
        small.finish(engine, 1e-3 if engine == "scipy" else 2e-3)
    assert small.chosen == "scipy" and _cpu_threads.engine_trial(block, measured).chosen == "scipy"  # kept
    large = _cpu_threads.engine_trial(block, measured, larger)
    assert large.candidates == ["ducc0", "scipy"] and large.chosen is None  # its own trial


@pytest.mark.parametrize("runner_up, kept", [(0.97, "scipy"), (1 - _cpu_threads.ENGINE_MARGIN / 2, "ducc0-chunks")],
                         ids=["3-percent-faster", "tie"])
def test_an_engine_trial_keeps_a_runner_up_a_few_percent_faster_on_the_runs(tmp_path, monkeypatch, runner_up, kept):
    """An engine trial's runs outweigh the sample that ranked its candidates: a runner-up 3%
    faster on them is kept (the thread counts' 5% margin kept ducc0 in chunks for the inverse
    FFT of a 4096 x 1024 convolution on the CI VM, where SciPy ran 3-4% faster); a tie within
    ``ENGINE_MARGIN`` keeps the first."""
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "cache"))
    close = _cpu_engines.Choice("ducc0-chunks", "measured", {"ducc0-chunks": 5000.0, "scipy": 5100.0})
    trial = _cpu_threads.engine_trial(BIG_CALL, close)
    while trial.chosen is None:
        engine = trial.start()
        trial.finish(engine, 5e-3 * (runner_up if engine == "scipy" else 1.0))
    assert trial.chosen == kept


def test_a_call_in_one_piece_tries_its_engine_against_another_thread_count():
    """The measurement's names carry the FFT's thread count where it is not the call's own: the
    winner on 16 threads and a runner-up on the call's 8 are both candidates."""
    call = FFTCall("C2C", "complex64", (64, 1024), (1024, 1), (1,), 1024, 8, other_threads=(1, 16))
    on_16 = _cpu_engines.Choice("ducc0", "measured", {"ducc0@16": 60.0, "ducc0": 90.0, "scipy": 70.0,
                                                      "scipy@1": 300.0}, threads=16)
    # ...and against its own engine on the call's count, measured 50% behind: thread counts
    # measured in a few milliseconds follow the load of the moment.
    assert _cpu_threads.engine_trial(call, on_16).candidates == ["ducc0@16", "scipy", "ducc0"]
    far = _cpu_engines.Choice("ducc0", "measured", {"ducc0@16": 60.0, "ducc0": 200.0, "scipy": 200.0}, threads=16)
    assert _cpu_threads.engine_trial(call, far).candidates == ["ducc0@16", "ducc0"]
    on_8 = _cpu_engines.Choice("scipy", "measured", {"scipy": 60.0, "scipy@16": 62.0, "ducc0": 61.0})
    assert _cpu_threads.engine_trial(call, on_8).candidates == ["scipy", "ducc0"]
    alone = _cpu_engines.Choice("scipy", "measured", {"scipy": 60.0, "scipy@16": 130.0, "ducc0@16": 200.0})
    assert _cpu_threads.engine_trial(call, alone) is None


def test_an_engine_trial_may_keep_another_thread_count_of_the_fft(tmp_path, monkeypatch):
    """16 x 1024 complex64 on 4 workers, in one piece (the loops on one thread, the FFT threaded):
    the measurement ranked ducc0 on the rule's 2 threads first and SciPy on 4 within 10%; the
    runs find SciPy on 4 faster, so it stays with its thread count, on the fast path, and a
    later executor reads both back."""
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "cache"))
    timings = {"ducc0": 100.0, "scipy@4": 110.0, "scipy": 130.0, "ducc0@1": 200.0}
    monkeypatch.setattr(_cpu_engines, "choose", lambda call, mode: _cpu_engines.Choice("ducc0", "measured",
                                                                                        timings))
    ran = []
    for name, busy in (("ducc0", 0.002), ("scipy", 0.0)):
        engine_type = type(_cpu_engines.engine(name))
        real = engine_type.run
        monkeypatch.setattr(engine_type, "run", lambda self, *a, name=name, real=real, busy=busy:
                            ran.append((name, a[6])) or _busy(busy) or real(self, *a))
        _watch_runner(monkeypatch, engine_type, lambda threads, name=name, busy=busy:
                      ran.append((name, threads)) or _busy(busy))
    problem = plan_problem("fft", (16, 1024), (1024, 1), "complex64", (1,))
    epilog = compile_cpu(lambda v, d: v * d, "epilog", "complex64", "complex64")
    rng = np.random.default_rng(5)
    x, h = random_array(rng, (16, 1024), "complex64"), random_array(rng, (16, 1024), "complex64")
    executor = CpuExecutor(problem, None, epilog, workers=4)
    assert executor.threads() == 1 and executor.fft_threads() == 2  # the rule: a thread per 64 KiB
    trial = executor.engine_trial
    assert trial.candidates == ["ducc0", "scipy@4"]
    want = np.fft.fft(x.astype(np.complex128), axis=1) * h
    for _ in range(1 + len(trial.candidates) * trial.rounds):
        out = executor.execute(x, None, "forward", None, h)
        assert np.abs(out - want).max() < 1e-4 * np.abs(want).max()
    assert {("ducc0", 2), ("scipy", 4)} <= set(ran)
    assert trial.chosen == "scipy@4" and executor.fft_threads() == 4
    assert executor.engine_choice == _cpu_engines.Choice("scipy", "tried", timings, threads=4)
    ran.clear()
    out = executor.execute(x, None, "forward", None, h)
    assert set(ran) == {("scipy", 4)} and np.abs(out - want).max() < 1e-4 * np.abs(want).max()  # the fast path
    later = CpuExecutor(problem, None, epilog, workers=4)
    assert later.engine_trial.chosen == "scipy@4" and later.fft_threads() == 4
    assert later.engine_choice.engine == "scipy"


def test_a_thread_count_measured_under_load_is_tried_against_the_calls_own(tmp_path, monkeypatch):
    """The measurement ranked SciPy on one thread first by far (another job held the second
    core while it measured); on the runs SciPy on the call's own 2 threads is faster, and stays."""
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "cache"))
    timings = {"scipy@1": 50.0, "scipy": 90.0, "ducc0": 150.0}
    monkeypatch.setattr(_cpu_engines, "choose", lambda call, mode: _cpu_engines.Choice("scipy", "measured", timings,
                                                                                        threads=1))
    scipy_engine = type(_cpu_engines.engine("scipy"))
    real = scipy_engine.run
    monkeypatch.setattr(scipy_engine, "run", lambda self, *a: (a[6] == 1 and _busy(0.002)) or real(self, *a))
    _watch_runner(monkeypatch, scipy_engine, lambda threads: threads == 1 and _busy(0.002))
    problem = plan_problem("fft", (16, 1024), (1024, 1), "complex64", (1,))
    epilog = compile_cpu(lambda v, d: v * d, "epilog", "complex64", "complex64")
    rng = np.random.default_rng(6)
    x, h = random_array(rng, (16, 1024), "complex64"), random_array(rng, (16, 1024), "complex64")
    executor = CpuExecutor(problem, None, epilog, workers=4)
    assert executor.fft_threads() == 1 and executor.engine_trial.candidates == ["scipy@1", "scipy"]
    want = np.fft.fft(x.astype(np.complex128), axis=1) * h
    for _ in range(1 + len(executor.engine_trial.candidates) * executor.engine_trial.rounds):
        out = executor.execute(x, None, "forward", None, h)
        assert np.abs(out - want).max() < 1e-4 * np.abs(want).max()
    assert executor.engine_trial.chosen == "scipy" and executor.fft_threads() == 2  # the rule's count


def test_the_executor_keeps_the_engine_its_own_runs_find_faster(tmp_path, monkeypatch):
    """The measurement ranked ducc0 in chunks first by 4%; on the runs SciPy is faster: the
    executor's first runs alternate the two, then SciPy stays, and a later executor reads that."""
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "cache"))
    timings = {"ducc0-chunks": 100.0, "scipy": 104.0, "ducc0": 250.0}
    monkeypatch.setattr(_cpu_engines, "choose", lambda call, mode: _cpu_engines.Choice("ducc0-chunks", "measured",
                                                                                        timings))
    chunks = type(_cpu_engines.engine("ducc0-chunks"))
    slow = chunks.run
    monkeypatch.setattr(chunks, "run", lambda *a: _busy(0.005) or slow(*a))
    problem, epilog, x, h = _problem()
    executor = CpuExecutor(problem, None, epilog, workers=1)
    assert executor.engine_trial.candidates == ["ducc0-chunks", "scipy"] and executor.engine_trial.chosen is None
    want = np.fft.fft(x.astype(np.complex128), axis=1) * h
    for _ in range(1 + len(executor.engine_trial.candidates) * executor.engine_trial.rounds + 1):
        out = executor.execute(x, None, "forward", None, h)
        assert np.abs(out - want).max() < 1e-4 * np.abs(want).max()
    assert executor.engine_trial.chosen == "scipy" and executor.engine_choice.engine == "scipy"
    later = CpuExecutor(problem, None, epilog, workers=1)
    assert later.engine_trial.chosen == "scipy" and later.engine_choice == _cpu_engines.Choice("scipy", "tried",
                                                                                              timings)


def test_the_executor_tries_a_third_engine_the_measurement_put_far_behind(tmp_path, monkeypatch):
    """A one-thread problem larger than its sample: ducc0, measured 50% behind the winner, is the
    third candidate (the fastest of an engine not yet tried, within FAR_RIVAL); on the runs it is
    the fastest, so it stays (on the 16-core host SciPy's inverse FFT, measured 1.5x behind
    ducc0, ran in half its time)."""
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "cache"))
    timings = {"ducc0-chunks": 100.0, "scipy": 104.0, "ducc0": 150.0}
    monkeypatch.setattr(_cpu_engines, "choose", lambda call, mode: _cpu_engines.Choice("ducc0-chunks", "measured",
                                                                                        timings))
    for name in ("ducc0-chunks", "scipy"):
        engine_type = type(_cpu_engines.engine(name))
        # 30 ms more a run: slower than ducc0 at its worst (twice as slow as chunks on an AVX-512 Xeon)
        monkeypatch.setattr(engine_type, "run", lambda *a, real=engine_type.run: _busy(0.03) or real(*a))
    problem, epilog, x, h = _problem()
    executor = CpuExecutor(problem, None, epilog, workers=1)
    trial = executor.engine_trial
    assert trial.candidates == ["ducc0-chunks", "scipy", "ducc0"]
    want = np.fft.fft(x.astype(np.complex128), axis=1) * h
    for _ in range(1 + len(trial.candidates) * trial.rounds):
        out = executor.execute(x, None, "forward", None, h)
        assert np.abs(out - want).max() < 1e-4 * np.abs(want).max()
    assert trial.chosen == "ducc0" and executor.engine_choice.engine == "ducc0"


def test_an_engine_that_wins_its_trial_keeps_its_measured_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "cache"))
    measured = _cpu_engines.Choice("ducc0-chunks", "measured", {"ducc0-chunks": 100.0, "scipy": 104.0})
    monkeypatch.setattr(_cpu_engines, "choose", lambda call, mode: measured)
    scipy_engine = type(_cpu_engines.engine("scipy"))
    slow = scipy_engine.run
    monkeypatch.setattr(scipy_engine, "run", lambda *a: _busy(0.005) or slow(*a))
    problem, epilog, x, h = _problem()
    executor = CpuExecutor(problem, None, epilog, workers=1)
    for _ in range(1 + len(executor.engine_trial.candidates) * executor.engine_trial.rounds):
        executor.execute(x, None, "forward", None, h)
    assert executor.engine_trial.chosen == "ducc0-chunks" and executor.engine_choice == measured


@pytest.mark.parametrize("workers", [1, 4])
def test_a_small_call_tries_its_engine_too_then_runs_the_faster_on_the_fast_path(tmp_path, monkeypatch, workers):
    """16 x 1024 complex64 (one block, the fast path's size): the measurement ranked ducc0 in
    chunks first, SciPy within 4%; on the runs SciPy is faster, so after the trial's runs the
    fast path runs SciPy. The trial's runs take the fast path too, alternating the two: the
    general path's Python differs by engine by a few us, which decided such trials (the R2C
    scale at 16 x 1024 on the 16-core Xeon kept ducc0, 1.09x SciPy unfused, where SciPy's
    engine ran 0.99x)."""
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "cache"))
    timings = {"ducc0-chunks": 50.0, "scipy": 52.0, "ducc0": 120.0}
    monkeypatch.setattr(_cpu_engines, "choose", lambda call, mode: _cpu_engines.Choice("ducc0-chunks", "measured",
                                                                                        timings))
    ran = []
    for name in ("ducc0-chunks", "scipy"):
        engine_type = type(_cpu_engines.engine(name))
        real = engine_type.run
        busy = 0.002 if name == "ducc0-chunks" else 0.0
        monkeypatch.setattr(engine_type, "run", lambda *a, name=name, real=real, busy=busy:
                            ran.append(name) or _busy(busy) or real(*a))
        _watch_runner(monkeypatch, engine_type, lambda threads, name=name, busy=busy: ran.append(name) or _busy(busy))
    problem = plan_problem("fft", (16, 1024), (1024, 1), "complex64", (1,))
    epilog = compile_cpu(lambda v, d: v * d, "epilog", "complex64", "complex64")
    rng = np.random.default_rng(4)
    x, h = random_array(rng, (16, 1024), "complex64"), random_array(rng, (16, 1024), "complex64")
    executor = CpuExecutor(problem, None, epilog, workers=workers)
    assert executor.threads() == 1
    trial = executor.engine_trial
    assert trial is not None and trial.candidates == ["ducc0-chunks", "scipy"] and trial.rounds > 2
    monkeypatch.setattr(executor, "_run_general", lambda *a: pytest.fail("a trial run took the general path"))
    want = np.fft.fft(x.astype(np.complex128), axis=1) * h
    for _ in range(1 + len(trial.candidates) * trial.rounds):
        out = executor.execute(x, None, "forward", None, h)
        assert np.abs(out - want).max() < 1e-4 * np.abs(want).max()
    assert trial.chosen == "scipy" and executor.engine_choice.engine == "scipy"
    assert {"ducc0-chunks", "scipy"} <= set(ran)
    ran.clear()
    fast = executor._runs.get("forward")
    out = executor.execute(x, None, "forward", None, h)
    assert set(ran) == {"scipy"} and executor._runs["forward"] is not fast  # the fast path, rebuilt for SciPy
    assert np.abs(out - want).max() < 1e-4 * np.abs(want).max()
