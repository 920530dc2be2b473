"""Host-side checks for several GPUs that run without one: no lock of the shared plan cache is
held while a plan is freed (freeing waits for the plan's stream, which would stall every thread
driving another GPU)."""

from __future__ import annotations

import threading

from nvmath.fft import _gpu


class SlowPlan:
    """A plan whose free() meanwhile lets another thread use the cache (as a thread driving the
    other GPU would) and records whether that thread had to wait."""

    def __init__(self, cache: _gpu.PlanCache, device: int):
        self.cache, self.device, self.other_waited = cache, device, None

    def free(self) -> None:
        other = threading.Thread(target=self.cache.acquire, args=((1, "problem"), lambda: SlowPlan(self.cache, 1)),
                                 daemon=True)  # it finishes once the lock is free
        other.start()
        other.join(timeout=2.0)
        self.other_waited = other.is_alive()


def test_evicting_a_plan_does_not_block_other_threads():
    cache = _gpu.PlanCache(capacity=1)
    first = cache.acquire((0, "problem"), lambda: SlowPlan(cache, 0))
    cache.release(first)  # no engine holds it: eviction frees it
    cache.acquire((0, "other"), lambda: SlowPlan(cache, 0))  # evicts and frees `first`
    assert first.other_waited is False, "the plan cache's lock was held while a plan was freed"
