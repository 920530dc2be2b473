"""How a large CPU run uses its threads, and on which engine: tried on the executor's own first
runs, then kept.

A pipelined run (``_cpu``: the batch cut into blocks, each thread staging, transforming and
finishing one block at a time) on ``most`` threads may do better on fewer, or not pipelined at
all. Each block's Python holds the GIL and every block shares the memory bus, and neither shows
in a measurement of the FFT engines alone: on a 16-core Xeon, ducc0 pipelined at 256 x 4096
complex64 with a filter epilog took 1.92 ms a call on 16 threads and 1.14 on 8, where the
engines timed alone, 16 or 8 blocks at once, ranked the two equal; and at 1024 x 1024 the best
pipelined run (2.2 ms) lost to SciPy threading the whole FFT itself (1.4 ms, its product with
the filter included). So the runs themselves are timed, and :data:`WHOLE` is a candidate too:
the whole problem at once, the engine threading the FFT, the callback loops split among all
the threads (on an engine that allocates its result, the run given no output keeps that array).

:class:`ThreadCount` hands the executor a count per run: the first run warms up (untimed), the
next ones try each candidate (``most``, half, a quarter, never fewer than 2; then ``WHOLE``)
``ROUNDS`` times in turn on the wall clock, and then the fastest stays, the one listed first
unless a later one is faster by ``MARGIN``. Every candidate gives the same result (blocks are
independent rows), so the measuring runs are ordinary runs: the first
``1 + ROUNDS * len(candidates)`` runs of a new problem on a new machine (9 on 8 or more
threads, 5 on 2 or 3) alternate candidates. The choice is kept in the
artifact store under the engine choice's key of the whole problem (``_cpu_engines.engine_key``,
which holds this machine's identity) and the engines: later executors and processes read it and
measure nothing.

Before that, :class:`EngineTrial` tries the engine measured for the call (``_cpu_engines``, on a
sample in cache) against up to two runners-up, the fastest other timing and then the fastest of
an engine not yet tried, each within :data:`RIVAL` of the winner (:data:`FAR_RIVAL` where the
sample says less: a problem larger than its sample, or a threaded call; for a call in one piece
of any engine at any thread count measured, and a winner on another count also against its
engine on the call's own), the same way, on the runs themselves, which stream through memory
and have the executor's loops and Python: for every measured call, large or not (short ones on
more runs: :data:`TRIAL_ROUNDS`), once per whole problem (blocks of one size serve problems of
many). Both are :class:`RunTrial`: a choice among candidates that give the same result, tried
in turn on ordinary runs and kept per machine.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from . import _cpu_engines

__all__ = ["ENGINE_MARGIN", "FAR_RIVAL", "MARGIN", "RIVAL", "ROUNDS", "TRIAL_MIN_ROUNDS", "TRIAL_ROUNDS",
           "TRIAL_S", "WHOLE", "EngineTrial", "RunTrial", "ThreadCount", "artifact_key_of", "candidates", "describe",
           "engine_trial", "thread_count"]

log = logging.getLogger("fftfuse.fft")

#: Timed runs per candidate count.
ROUNDS = 2
#: A later candidate must be faster by this fraction to replace an earlier one (a tie keeps the
#: threads: another machine's load, not ours, decides near ties).
MARGIN = 0.05
#: The same for an engine trial, whose runs are better evidence than the sample that ranked its
#: first candidate: a margin keeps a first candidate that much slower (the inverse FFT of the
#: 4096 x 1024 complex64 convolution, one thread on the CI VM: SciPy 3-4% faster on the runs,
#: ducc0 in chunks kept under 5%). What is left settles exact ties.
ENGINE_MARGIN = 0.01
#: An engine whose measured time is within this fraction of the chosen one's is tried against it
#: on the executor's own runs (:class:`EngineTrial`)...
RIVAL = 0.25
#: ...or within this one where the measurement says less: a problem larger than the sample it
#: was measured on, whose runs stream through memory while the sample sat in cache (the 16-core
#: host, one thread: R2C at 4096 x 1024 complex64 stayed on ducc0, 1.11x SciPy unfused), or a
#: threaded call, whose few short runs on a shared machine rank engines loosely (the same host,
#: 16 threads: the inverse FFT of the 64 x 1024 convolution measured ducc0 at 154 us and SciPy at
#: 232, where SciPy ran it in about half of ducc0's time).
FAR_RIVAL = 1.0
#: An engine trial times each engine on at least this many runs (it is made once per machine
#: and problem, and keeps its answer: two runs of a 4096 x 1024 complex64 scale on the AMD VM
#: kept ducc0 in chunks, 13% slower than SciPy there), short calls on more, up to
#: :data:`TRIAL_ROUNDS`, about :data:`TRIAL_S` of runs each.
TRIAL_MIN_ROUNDS = 4
TRIAL_ROUNDS = 16
TRIAL_S = 0.002
#: The candidate that does not pipeline: the whole problem at once, each step threaded.
WHOLE = 0
# Bump when the candidates or what decides between them change: every stored choice is then
# measured again.
_VERSION = 9


def candidates(most: int) -> list[int]:
    """What is tried for ``most`` threads: pipelined on it, half of it and a quarter, each 2 or
    more, largest first; then the whole problem at once (:data:`WHOLE`). Nothing below 2 threads.

    >>> candidates(16), candidates(6), candidates(2), candidates(1)
    ([16, 8, 4, 0], [6, 3, 0], [2, 0], [1])
    """
    if most < 2:
        return [most]
    return sorted({c for c in (most, most // 2, most // 4) if c >= 2}, reverse=True) + [WHOLE]


class RunTrial:
    """One choice among ``candidates`` for each run of one executor, tried on its first runs: a
    warm-up (untimed), then each candidate ``rounds`` times in turn (the caller's clock); the
    fastest stays, the one listed first unless a later one is faster by ``margin``. Kept in
    ``store`` under ``key`` as ``{field: choice}`` (None: tried, not kept).

    >>> trial = RunTrial(["a", "b"])
    >>> runs = [trial.start() for _ in range(5)]
    >>> runs
    ['a', 'a', 'b', 'a', 'b']
    >>> for run, seconds in zip(runs, [9.0, 3.0, 2.0, 3.1, 2.1]):
    ...     trial.finish(run, seconds)
    >>> trial.chosen, trial.start()
    ('b', 'b')
    """

    #: The stored payload's field, and the store record's target and kind.
    field, target, kind = "choice", "cpu-run-trial", "run-trial"
    margin = MARGIN

    def __init__(self, candidates: list, key: str | None = None, store: Any = None, rounds: int = ROUNDS) -> None:
        self.candidates = list(candidates)
        self.rounds = rounds  # timed runs of each candidate
        self._key, self._store = key, store
        self._lock = threading.Lock()
        self._started = 0
        self._finished = 0  # the first run to finish warms up: first touches, plans, loops
        self._best: dict[Any, float] = {}
        self._timed: dict[Any, int] = {c: 0 for c in self.candidates}
        self.chosen: Any = self.candidates[0] if len(self.candidates) == 1 else self._stored()
        #: Each candidate's fastest timed run in seconds, once this process has tried them.
        self.timings: dict[Any, float] = {}

    def start(self) -> Any:
        """The candidate of the next run."""
        if self.chosen is not None:
            return self.chosen
        with self._lock:
            turn, self._started = self._started, self._started + 1
        return self.candidates[max(turn - 1, 0) % len(self.candidates)]

    def finish(self, candidate: Any, seconds: float) -> None:
        """Record a run of ``candidate`` that took ``seconds`` (wall time)."""
        if self.chosen is not None:
            return
        with self._lock:
            self._finished += 1
            if self._finished == 1 or self.chosen is not None:
                return
            self._timed[candidate] += 1
            self._best[candidate] = min(self._best.get(candidate, seconds), seconds)
            if min(self._timed.values()) < self.rounds:
                return
            chosen = self.candidates[0]
            for c in self.candidates[1:]:
                if self._best[c] < (1 - self.margin) * self._best[chosen]:
                    chosen = c
            self.chosen = chosen
            best = self.timings = dict(self._best)
        log.info("CPU %s, tried on the runs: %s (%s)", self.field, self.describe(chosen),
                 ", ".join(f"{self.describe(c)}: {t * 1e3:.2f} ms" for c, t in best.items()))
        self._keep(chosen, best)

    @staticmethod
    def describe(candidate: Any) -> str:
        return str(candidate)

    def _stored(self) -> Any:
        if self._key is None or self._store is None:
            return None
        from fftfuse_cache import stored_record

        def read(record: Any) -> Any:
            value = record[self.field]
            if value not in self.candidates or type(value) is not type(self.candidates[0]):
                raise ValueError(f"the {self.field} must be one of {self.candidates}, got {value!r}")
            return value

        return stored_record(self._store, self._key, {"target": self.target, "kind": self.kind}, read,
                             f"CPU {self.field} tried on the runs")

    def _keep(self, chosen: Any, best: dict[Any, float]) -> None:
        if self._key is None or self._store is None:
            return
        from fftfuse_cache import keep_artifact

        payload = json.dumps({self.field: chosen, "best_ms": {str(c): round(t * 1e3, 4) for c, t in best.items()}})
        keep_artifact(self._store, self._key, payload.encode(), _cpu_engines.machine_record(self.target, self.kind))


class ThreadCount(RunTrial):
    """How each large run of one executor uses its threads (see the module's description).

    ``key``: where the choice is kept in ``store`` (None: measured, not kept); ``measure=False``:
    always ``unmeasured`` (``most`` unless given).

    >>> counts = ThreadCount(8)
    >>> runs = [counts.start() for _ in range(9)]
    >>> runs
    [8, 8, 4, 2, 0, 8, 4, 2, 0]
    >>> for n, seconds in zip(runs, [9, 3.0, 2.0, 2.5, 2.2, 3.0, 2.0, 2.5, 2.2]):
    ...     counts.finish(n, seconds)
    >>> counts.chosen, counts.start()
    (4, 4)
    """

    field, target, kind = "threads", "cpu-threads", "thread-count"

    def __init__(self, most: int, key: str | None = None, store: Any = None, *, measure: bool = True,
                 unmeasured: int | None = None) -> None:
        super().__init__(candidates(most), key if measure else None, store)
        if not measure:
            self.chosen = most if unmeasured is None else unmeasured

    @staticmethod
    def describe(candidate: Any) -> str:
        return describe(candidate)


class EngineTrial(RunTrial):
    """Which of two or three FFT engines runs each call of one executor: the engine
    measurement's winner and its runners-up, tried on the executor's own first runs (see
    ``_cpu``). The measurement times a sample in cache, where a large run streams through
    memory (one thread, 1024 x 1024 complex64 on the AMD VM: ducc0 in chunks and SciPy within 4%
    of each other on the sample, SciPy 15-20% faster on the run); and it times the FFT with
    NumPy's multiply, a few runs each, where a run has the compiled loops and the executor's own
    Python (the 16-core Xeon's complex64 calls of 16 x 1024 to 64 x 1024 kept ducc0, in chunks
    or threaded, 5-70% slower than SciPy's FFT with the product). A candidate names an engine,
    and for a call in one piece the FFT's thread count where it is not the call's own
    (``scipy@16``): a threaded call's few short runs rank thread counts as unsteadily as
    engines."""

    field, target, kind = "engine", "cpu-engine-trial", "engine-trial"
    margin = ENGINE_MARGIN


def describe(count: int) -> str:
    """``count`` in words: ``"whole"`` for :data:`WHOLE`, else the number of blocks run at once."""
    return "whole" if count == WHOLE else f"{count} pipelined"


def artifact_key_of(call: _cpu_engines.FFTCall, engine: str, most: int, prolog: bool, whole_engine: str = "") -> str:
    """The store key of the thread count of large runs of the whole problem ``call`` with at
    most ``most`` threads, pipelined on ``engine`` or whole on ``whole_engine`` (the same where
    empty) (``prolog``: with a prolog; ``call`` says whether with an epilog), on this machine
    (``engine_key`` holds its identity)."""
    from fftfuse_cache import artifact_key

    return artifact_key(target="cpu-threads", call=_cpu_engines.engine_key(call), engine=engine, most=most,
                        prolog=prolog, whole_engine=whole_engine or engine, version=_VERSION)


def thread_count(call: _cpu_engines.FFTCall, engine: str, most: int, mode: str | None, prolog: bool,
                 allocates: bool = False, whole_engine: str = "") -> ThreadCount:
    """The :class:`ThreadCount` of large runs of ``call`` (see :func:`artifact_key_of`), kept in
    the default store. Under a ``mode`` other than ``"auto"`` (the rules, or an engine named)
    nothing is measured nor read: ``WHOLE`` where the whole run's engine ``allocates`` its
    result (a run given no output keeps it), else ``most`` pipelined."""
    if _cpu_engines.mode_of(mode) != "auto" or len(candidates(most)) == 1:
        return ThreadCount(most, measure=False, unmeasured=WHOLE if allocates else most)
    from fftfuse_cache import default_store

    return ThreadCount(most, artifact_key_of(call, engine, most, prolog, whole_engine), default_store())


def engine_trial(call: _cpu_engines.FFTCall, choice: _cpu_engines.Choice,
                 whole: _cpu_engines.FFTCall | None = None) -> EngineTrial | None:
    """The :class:`EngineTrial` of the engine ``choice`` made for ``call`` (a block, or the whole
    problem ``whole`` run block by block; ``call`` itself where None) against up to two
    runners-up, kept in the default store under the whole problem's key (its runs are what is
    timed: at 4096 x 1024 they stream through memory where 1024 x 1024 of the same blocks sat
    in cache); None where the choice was not measured (the rules, an engine named) or nothing is
    left to try.

    The runners-up are the fastest other timing and then the fastest of an engine not yet among
    the candidates, each within :data:`RIVAL` of the winner's (:data:`FAR_RIVAL` for a problem
    larger than the sample or a threaded call). A call in one piece measured its engines on
    several thread counts (``engine@n``): a runner-up may be another count, of any engine, and
    the candidates are the measurement's names (``_cpu_engines.timing_name``). A winner on
    another count than the call's own is also tried against its engine on the call's count,
    however far behind that was measured: a few milliseconds of measuring rank thread counts by
    the load of that moment (a second vCPU busy elsewhere made one thread look fastest at 256 x
    1024 on the 2-core VM, then lost 1.35x).

    >>> one_piece = _cpu_engines.FFTCall("C2C", "complex64", (64, 1024), (1024, 1), (1,), 1024, 8,
    ...                                  other_threads=(1, 16))
    >>> measured = _cpu_engines.Choice("ducc0", "measured", {"ducc0": 60.0, "scipy": 150.0, "scipy@16": 66.0,
    ...                                                      "ducc0-padded": 100.0, "ducc0@1": 200.0})
    >>> engine_trial(one_piece, measured).candidates
    ['ducc0', 'scipy@16', 'ducc0-padded']
    >>> on_one = _cpu_engines.Choice("scipy", "measured", {"scipy@1": 50.0, "scipy": 190.0, "ducc0": 195.0},
    ...                              threads=1)
    >>> engine_trial(one_piece, on_one).candidates
    ['scipy@1', 'scipy']
    """
    winner = _cpu_engines.timing_name(choice.engine, choice.threads)
    timings = {name: t for name, t in choice.timings.items() if name != winner}
    best = choice.timings.get(winner)
    if choice.how not in ("measured", "stored") or not timings or best is None:
        return None
    whole = whole or call

    def engine_of(name: str) -> str:
        return _cpu_engines.split_timing_name(name)[0]

    sampled = (call.sample().shape == whole.shape and call.threads == call.parallel == 1
               and not call.other_threads)
    limit = (1 + (RIVAL if sampled else FAR_RIVAL)) * best
    ranked = [name for name in sorted(timings, key=timings.__getitem__) if timings[name] <= limit]
    candidates = [winner] + ranked[:1]
    for name in ranked[1:]:
        if len(candidates) < 3 and engine_of(name) not in {engine_of(c) for c in candidates}:
            candidates.append(name)
    if choice.threads and choice.engine in timings and choice.engine not in candidates:
        candidates.append(choice.engine)  # the winner's engine on the call's own thread count
    if len(candidates) == 1:
        return None
    from fftfuse_cache import artifact_key, default_store

    key = artifact_key(target="cpu-engine-trial", call=_cpu_engines.engine_key(call),
                       problem=_cpu_engines.engine_key(whole), engines=candidates, version=_VERSION)
    rounds = max(TRIAL_MIN_ROUNDS, min(TRIAL_ROUNDS, int(TRIAL_S * 1e6 / max(best, 1.0))))
    return EngineTrial(candidates, key, default_store(), rounds)
