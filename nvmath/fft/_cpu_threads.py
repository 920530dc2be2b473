"""How many threads a pipelined CPU run uses: measured on the executor's own first runs, then kept.

A pipelined run (``_cpu``: the batch cut into blocks, each thread staging, transforming and
finishing one block at a time) on ``most`` threads may do better on fewer. Each block's Python
holds the GIL and every block shares the memory bus, and neither shows in a measurement of the
FFT engines alone: on a 16-core Xeon, ducc0 pipelined at 256 x 4096 complex64 with a filter
epilog took 1.92 ms a call on 16 threads and 1.14 on 8, where the engines timed alone, 16 or 8
blocks at once, ranked the two equal. So the runs themselves are timed.

:class:`ThreadCount` hands the executor a count per run: the first run warms up (untimed), the
next ones try each candidate (``most``, half, a quarter; never fewer than 2) ``ROUNDS`` times in
turn on the wall clock, and then the fastest stays, the larger count unless a smaller one is
faster by ``MARGIN``. Every count gives the same result (blocks are independent rows), so the
measuring runs are ordinary runs: the first ``1 + ROUNDS * len(candidates)`` pipelined runs of a
new problem on a new machine (7 on 8 or more threads) alternate counts. The count is kept in the
artifact store under the engine choice's key of the whole problem (``_cpu_engines.engine_key``,
which holds this machine's identity) and the engine: later executors and processes read it and
measure nothing.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from . import _cpu_engines

__all__ = ["MARGIN", "ROUNDS", "ThreadCount", "artifact_key_of", "candidates", "thread_count"]

log = logging.getLogger("fftfuse.fft")

#: Timed runs per candidate count.
ROUNDS = 2
#: A smaller count must be faster by this fraction to replace a larger one (a tie keeps the
#: threads: another machine's load, not ours, decides near ties).
MARGIN = 0.05


def candidates(most: int) -> list[int]:
    """The counts tried for ``most`` threads, largest first: it, half of it and a quarter, each 2
    or more (nothing to choose below 4 threads).

    >>> candidates(16), candidates(6), candidates(3)
    ([16, 8, 4], [6, 3], [3])
    """
    return sorted({c for c in (most, most // 2, most // 4) if c >= 2} or {most}, reverse=True)


class ThreadCount:
    """The thread count of each pipelined run of one executor (see the module's description).

    ``key``: where the count is kept in ``store`` (None: measured, not kept); ``measure=False``:
    always ``most``.

    >>> counts = ThreadCount(8)
    >>> runs = [counts.start() for _ in range(7)]
    >>> runs
    [8, 8, 4, 2, 8, 4, 2]
    >>> for n, seconds in zip(runs, [9, 3.0, 2.0, 2.5, 3.0, 2.0, 2.5]):
    ...     counts.finish(n, seconds)
    >>> counts.chosen, counts.start()
    (4, 4)
    """

    def __init__(self, most: int, key: str | None = None, store: Any = None, *, measure: bool = True) -> None:
        self.candidates = candidates(most)
        self._key, self._store = key, store
        self._lock = threading.Lock()
        self._started = 0
        self._finished = 0  # the first run to finish warms up: first touches, plans, loops
        self._best: dict[int, float] = {}
        self._timed: dict[int, int] = {c: 0 for c in self.candidates}
        self.chosen: int | None = most if not measure or len(self.candidates) == 1 else self._stored()

    def start(self) -> int:
        """The count for the next run."""
        if self.chosen is not None:
            return self.chosen
        with self._lock:
            turn, self._started = self._started, self._started + 1
        return self.candidates[max(turn - 1, 0) % len(self.candidates)]

    def finish(self, count: int, seconds: float) -> None:
        """Record a run of ``count`` threads that took ``seconds`` (wall time)."""
        if self.chosen is not None:
            return
        with self._lock:
            self._finished += 1
            if self._finished == 1 or self.chosen is not None:
                return
            self._timed[count] += 1
            self._best[count] = min(self._best.get(count, seconds), seconds)
            if min(self._timed.values()) < ROUNDS:
                return
            chosen = self.candidates[0]
            for c in self.candidates[1:]:
                if self._best[c] < (1 - MARGIN) * self._best[chosen]:
                    chosen = c
            self.chosen = chosen
            best = dict(self._best)
        log.info("CPU threads for a pipelined run: %d of %d (%s)", chosen, self.candidates[0],
                 ", ".join(f"{c}: {t * 1e3:.2f} ms" for c, t in best.items()))
        self._keep(chosen, best)

    def _stored(self) -> int | None:
        if self._key is None or self._store is None:
            return None
        from fftfuse_cache import stored_record

        def read(record: Any) -> int:
            count = record["threads"]
            if type(count) is not int or count not in self.candidates:
                raise ValueError(f"the thread count must be one of {self.candidates}, got {count!r}")
            return count

        return stored_record(self._store, self._key, {"target": "cpu-threads", "kind": "thread-count"}, read,
                             "CPU thread count")

    def _keep(self, chosen: int, best: dict[int, float]) -> None:
        if self._key is None or self._store is None:
            return
        from fftfuse_cache import keep_artifact

        payload = json.dumps({"threads": chosen, "best_ms": {str(c): round(t * 1e3, 4) for c, t in best.items()}})
        keep_artifact(self._store, self._key, payload.encode(),
                      _cpu_engines.machine_record("cpu-threads", "thread-count"))


def artifact_key_of(call: _cpu_engines.FFTCall, engine: str, most: int, prolog: bool) -> str:
    """The store key of the thread count of pipelined runs of the whole problem ``call`` on
    ``engine`` with at most ``most`` threads (``prolog``: with a prolog; ``call`` says whether
    with an epilog), on this machine (``engine_key`` holds its identity)."""
    from fftfuse_cache import artifact_key

    return artifact_key(target="cpu-threads", call=_cpu_engines.engine_key(call), engine=engine, most=most,
                        prolog=prolog)


def thread_count(call: _cpu_engines.FFTCall, engine: str, most: int, mode: str | None, prolog: bool) -> ThreadCount:
    """The :class:`ThreadCount` of pipelined runs of ``call`` (see :func:`artifact_key_of`), kept
    in the default store. Under a ``mode`` other than ``"auto"`` (the rules, or an engine named)
    nothing is measured nor read: always ``most``."""
    if _cpu_engines.mode_of(mode) != "auto" or len(candidates(most)) == 1:
        return ThreadCount(most, measure=False)
    from fftfuse_cache import default_store

    return ThreadCount(most, artifact_key_of(call, engine, most, prolog), default_store())
