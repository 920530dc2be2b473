"""Plan lifetime and concurrency on the CPU: the plan cache's holds, eviction and concurrent
builds, a plan shared by streams and threads (cuFFT and CUDA faked), and freed engines."""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import random
import sys
import threading
import time
import types

import numpy as np
import pytest

import nvmath
from nvmath.fft import _api, _gpu, _memory_space
from nvmath.fft._executor import GPU_NO_DATA, CallArgs, CallData
from nvmath.fft._tensor import Tensor


class FakePlan:
    """Stands for a GpuPlan: counts frees and fails loudly when used after one."""

    def __init__(self, name):
        self.name, self.frees = name, 0

    def use(self):
        assert self.frees == 0, f"plan {self.name} used after it was freed"

    def free(self):
        self.frees += 1


def test_a_held_plan_outlives_its_eviction():
    cache = _gpu.PlanCache(capacity=2)
    held = cache.acquire("a", lambda: FakePlan("a"))
    for name in "bcde":  # more problems than the cache holds
        cache.release(cache.acquire(name, lambda n=name: FakePlan(n)))
    assert len(cache) == 2 and cache.holders(held) == 1
    held.use()  # evicted from the cache, but its engine still runs it
    cache.release(held)
    assert held.frees == 1


def test_evicted_idle_plans_are_freed_once_and_cached_ones_not_at_all():
    cache = _gpu.PlanCache(capacity=3)
    plans = {}
    for name in "abcdefg":
        plans[name] = cache.acquire(name, lambda n=name: FakePlan(n))
        cache.release(plans[name])
    assert [plans[n].frees for n in "abcdefg"] == [1, 1, 1, 1, 0, 0, 0]
    again = cache.acquire("a", lambda: FakePlan("a2"))  # rebuilt after its eviction
    assert again is not plans["a"] and cache.created == 8
    cache.release(again)


def test_clear_leaves_held_plans_to_their_holders():
    cache = _gpu.PlanCache(capacity=4)
    held, idle = (cache.acquire(n, lambda n=n: FakePlan(n)) for n in "ab")
    cache.release(idle)
    cache.clear()
    assert idle.frees == 1 and held.frees == 0 and len(cache) == 0
    cache.release(held)
    assert held.frees == 1


def test_a_concurrent_build_of_one_plan_keeps_one_and_frees_the_other():
    cache = _gpu.PlanCache(capacity=4)
    both_building = threading.Barrier(2)
    built, got = [], []

    def build():
        plan = FakePlan(f"build {len(built)}")
        built.append(plan)
        both_building.wait(timeout=10)  # both threads miss before either stores its plan
        return plan

    threads = [threading.Thread(target=lambda: got.append(cache.acquire("k", build))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 2 and got[0] is got[1]
    spare = next(p for p in built if p is not got[0])
    assert spare.frees == 1 and got[0].frees == 0 and cache.holders(got[0]) == 2


def in_threads(work, count: int) -> None:
    """Run ``work(k)`` for k < count in as many threads; re-raise the first failure."""
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        for future in [pool.submit(work, k) for k in range(count)]:
            future.result()


def test_threads_never_run_a_freed_plan():
    cache = _gpu.PlanCache(capacity=3)
    all_plans = []
    lock = threading.Lock()

    def build(name):
        plan = FakePlan(name)
        with lock:
            all_plans.append(plan)
        return plan

    def work(seed):
        rng = random.Random(seed)
        for _ in range(300):
            name = rng.randrange(8)  # more problems than the cache holds
            plan = cache.acquire(name, lambda n=name: build(n))
            plan.use()
            time.sleep(0)  # let the others evict meanwhile
            plan.use()
            cache.release(plan)

    in_threads(work, 4)
    cached = set(map(id, cache._plans.values()))
    assert all(p.frees == (0 if id(p) in cached else 1) for p in all_plans)
    assert all(cache.holders(p) == 0 for p in all_plans)


# -- one plan, several streams and threads: the cuFFT and CUDA calls faked ----------------------


class FakeCuda:
    """Records what a GpuPlan asks of cuFFT and CUDA; a launch notes the plan's stream."""

    def __init__(self, monkeypatch):
        self.calls, self.plan_stream, self.bad = [], {}, []
        monkeypatch.setattr(_gpu._cufft, "set_stream", self.set_stream)
        monkeypatch.setattr(_gpu._cufft, "xt_exec", self.xt_exec)
        monkeypatch.setattr(_gpu, "_new_event", lambda: "event")
        monkeypatch.setattr(_gpu, "_mark", lambda event, stream: self.calls.append(("mark", stream)))
        monkeypatch.setattr(_gpu, "_wait", lambda stream, event: self.calls.append(("wait", stream)))

    def set_stream(self, handle, stream):
        self.calls.append(("set_stream", stream))
        time.sleep(0.0005)  # widen the window in which another thread could interleave
        self.plan_stream[handle] = stream

    def xt_exec(self, handle, inp, out, direction):
        time.sleep(0.0005)
        self.calls.append(("exec", self.plan_stream[handle]))
        if self.plan_stream[handle] != inp:  # the tests pass the caller's stream as `inp`
            self.bad.append((inp, self.plan_stream[handle]))


class FakeSlots:
    values = ()  # as last written: the plan writes values unlike these (here: all)

    def __init__(self, log):
        self.log = log

    def write(self, values, stream):
        self.log.append(("slots", stream, values))


def bare_plan(handle=1):
    plan = object.__new__(_gpu.GpuPlan)
    plan.handle, plan.device_id, plan._stream, plan._slots, plan._done = handle, 0, None, None, None
    plan._unmarked = None
    plan._work = "work area"
    plan._lock = threading.Lock()
    return plan


def test_a_plan_moving_to_another_stream_waits_for_the_previous_one(monkeypatch):
    cuda = FakeCuda(monkeypatch)
    plan = bare_plan()
    plan._slots = FakeSlots(cuda.calls)
    for stream, data in [(7, 100), (7, 101), (9, 200), (7, 100)]:
        plan.run(CallArgs(stream, 0, "forward", stream, CallData(0, b"", data, b"")))
    slots = [("slots", stream, (0, b"", data, b"")) for stream, data in [(7, 100), (7, 101), (9, 200), (7, 100)]]
    assert cuda.calls == [
        # every launch marks its end, while its stream is surely alive; a move waits on that mark
        ("set_stream", 7), slots[0], ("exec", 7), ("mark", 7),
        slots[1], ("exec", 7), ("mark", 7),
        ("wait", 9), ("set_stream", 9), slots[2], ("exec", 9), ("mark", 9),
        ("wait", 7), ("set_stream", 7), slots[3], ("exec", 7), ("mark", 7),
    ]


def test_launches_on_the_default_stream_are_marked_only_when_a_move_or_a_free_needs_it(monkeypatch):
    """The legacy default stream outlives every plan: no event per launch there (a CUDA call saved
    per execute), but a move to another stream still waits for the launches made on it."""
    cuda = FakeCuda(monkeypatch)
    plan = bare_plan()
    for stream in (0, 0, 9, 0, 1):
        plan.run(CallArgs(stream, 0, "forward", stream, GPU_NO_DATA))
    assert cuda.calls == [
        ("set_stream", 0), ("exec", 0), ("exec", 0),
        ("mark", 0), ("wait", 9), ("set_stream", 9), ("exec", 9), ("mark", 9),
        ("wait", 0), ("set_stream", 0), ("exec", 0),
        ("mark", 0), ("wait", 1), ("set_stream", 1), ("exec", 1),
    ]
    runtime = types.SimpleNamespace(eventSynchronize=lambda event: cuda.calls.append(("eventSynchronize", event)))
    fake_cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime, Device=lambda d: contextlib.nullcontext()))
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    del cuda.calls[:]
    plan.release()  # as a free does, it waits for the last launch (on stream 1), marked first
    assert cuda.calls == [("mark", 1), ("eventSynchronize", "event")]


def test_freeing_a_plan_never_touches_the_stream_it_ran_on(monkeypatch):
    """Its owner may have destroyed that stream since: synchronizing it crashed the process on the
    H100 (a stateless engine evicted after the thread that made its stream had ended)."""
    cuda = FakeCuda(monkeypatch)
    touched = []
    runtime = types.SimpleNamespace(
        eventSynchronize=lambda event: touched.append(("eventSynchronize", event)),
        streamSynchronize=lambda stream: touched.append(("streamSynchronize", stream)),
        eventDestroy=lambda event: touched.append(("eventDestroy", event)),
    )
    fake_cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime, Device=lambda d: contextlib.nullcontext()))
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setattr(_gpu._cufft, "destroy", lambda handle: touched.append(("destroy", handle)))
    plan = bare_plan()
    plan.run(CallArgs(7, 0, "forward", 7, GPU_NO_DATA))
    plan.free()
    assert ("exec", 7) in cuda.calls
    assert touched == [("eventSynchronize", "event"), ("destroy", 1), ("eventDestroy", "event")]


def test_threads_sharing_a_plan_each_launch_on_their_own_stream(monkeypatch):
    cuda = FakeCuda(monkeypatch)
    plan = bare_plan()

    def work(k):
        for _ in range(40):
            plan.run(CallArgs(11 + k, 0, "forward", 11 + k, GPU_NO_DATA))

    in_threads(work, 3)
    assert sum(c[0] == "exec" for c in cuda.calls) == 120
    assert not cuda.bad, f"{len(cuda.bad)} launches ran on another thread's stream"


# -- engines and their plans ---------------------------------------------------------------------


@pytest.fixture
def fake_plans(monkeypatch):
    """Engines that plan for 'GPU 0' with host arrays, fake plans and a small private plan cache."""
    cache = _gpu.PlanCache(capacity=1)
    monkeypatch.setattr(_gpu, "plan_cache", cache)
    monkeypatch.setattr(_gpu, "GpuPlan", lambda problem, *a, **k: FakePlan(problem.operand.shape))
    monkeypatch.setattr(_memory_space, "to_device", lambda t, *a, **k: Tensor(t.array, t.framework, 0))
    monkeypatch.setattr(_api.FFT, "_execute_gpu", lambda self, *args: self._executor.use())
    monkeypatch.setattr(_api.FFT, "_result", lambda self, out, stream: out)
    return cache


def test_an_engine_holds_its_shared_plan_until_freed(fake_plans):
    first = _api.FFT(np.ones((4, 8), np.complex64), execution="cuda", _shared_plans=True)
    first.plan()
    plan = first._executor
    second = _api.FFT(np.ones((2, 8), np.complex64), execution="cuda", _shared_plans=True)
    second.plan()  # capacity 1: the first plan leaves the cache...
    assert len(fake_plans) == 1 and fake_plans.holders(plan) == 1
    first.execute()  # ...but not its engine
    first.free()
    assert plan.frees == 1
    cached = second._executor
    second.free()
    assert fake_plans.holders(cached) == 0 and cached.frees == 0  # idle in the cache, for the next call


def test_a_forgotten_engine_gives_its_plan_back_when_collected(fake_plans):
    engine = _api.FFT(np.ones((4, 8), np.complex64), execution="cuda", _shared_plans=True)
    engine.plan()
    plan = engine._executor
    del engine
    gc.collect()
    assert fake_plans.holders(plan) == 0


def test_stateless_calls_on_the_full_path_give_their_plans_back(fake_plans):
    x = np.ones((4, 8), np.complex64)
    for _ in range(3):  # a host operand and execution= always take the full path
        nvmath.fft.fft(x, execution="cuda")
    plan = next(iter(fake_plans._plans.values()))
    assert fake_plans.created == 1 and fake_plans.holders(plan) == 0


def test_a_replanned_stateful_fft_frees_its_own_plan(fake_plans):
    engine = _api.FFT(np.ones((4, 8), np.complex64), execution="cuda")
    engine.plan()
    old = engine._executor
    engine.plan()
    assert old.frees == 1 and engine._executor.frees == 0
    engine.free()


@pytest.mark.parametrize("how", ["free", "with"])
@pytest.mark.parametrize("call", ["execute", "plan", "reset_operand"])
def test_a_freed_fft_refuses_to_run(how, call):
    x = np.random.default_rng(0).standard_normal((4, 16)).astype(np.complex64)
    f = _api.FFT(x, axes=[-1])
    if how == "free":
        f.plan(epilog=lambda v: v * 2)
        f.free()
    else:
        with f:
            f.plan(epilog=lambda v: v * 2)
            np.testing.assert_allclose(f.execute(), 2 * np.fft.fft(x), rtol=1e-4, atol=1e-4)
    args = {"reset_operand": (x,)}.get(call, ())
    with pytest.raises(RuntimeError, match=rf"{call}\(\) on an FFT that was freed.*Create a new FFT"):
        getattr(f, call)(*args)


class DeviceArray:
    """Looks like a CuPy array to the stateless hot path (host memory underneath)."""

    __module__ = "cupy._fake"

    class device:
        id = 0

    class data:
        device_id = 0

    def __init__(self, shape):
        self._array = np.ones(shape, np.complex64)
        self.shape, self.strides, self.dtype = self._array.shape, self._array.strides, self._array.dtype


def test_stateless_engines_hold_their_plans_until_dropped(fake_plans, monkeypatch):
    built = []
    monkeypatch.setattr(_gpu, "GpuPlan", lambda problem, *a, **k: built.append(FakePlan(problem.operand.shape))
                        or built[-1])

    def calls(_):
        a, b = DeviceArray((4, 8)), DeviceArray((2, 8))
        nvmath.fft.fft(a, axes=[-1])
        nvmath.fft.fft(a, axes=[-1])  # an engine of this thread now reuses plan A
        nvmath.fft.fft(b, axes=[-1])  # capacity 1: plan A leaves the cache, its engine keeps it
        assert built[0].frees == 0 and fake_plans.holders(built[0]) == 1
        nvmath.fft.fft(a, axes=[-1])  # the engine runs plan A (FakePlan.use checks it is not freed)
        for n in range(3, 70):  # more engines than a thread keeps: the oldest (A's) is dropped
            nvmath.fft.fft(DeviceArray((1, n)), axes=[-1])
        assert built[0].frees == 1 and len(built) == 69

    in_threads(calls, 1)
    gc.collect()  # the thread's engines went with it: every plan is released, and freed unless cached
    cached = set(map(id, fake_plans._plans.values()))
    assert len(cached) == 1
    assert all(fake_plans.holders(p) == 0 and p.frees == (id(p) not in cached) for p in built)
