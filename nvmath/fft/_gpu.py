"""cuFFT plans with LTO callbacks, and a bounded per-device plan cache.

A callback compiled from Python is built *indirect*: cuFFT hands it a pointer to a small
device slot that holds the user-data pointer, instead of the data pointer itself. cuFFT fixes
``callerInfo`` when the callback is attached, so this is what lets a new data array reuse a
plan: only the slot is rewritten, in stream order, and only when the pointer changed. A callback
with runtime parameters has them in its slot after the pointer: [data pointer, parameters...].

One plan has one slot area and one work area, so its executions must not overlap. Executions on
one stream are ordered by the stream; when a plan moves to another stream, the new stream first
waits (a CUDA event) for the work the previous one has queued. Two streams sharing a plan thus
run its FFTs one after the other: a plan per stream would let them overlap, but each costs a
planning (milliseconds) and a work area, and an FFT large enough to be worth overlapping already
fills the GPU (benchmarks/NOTES.md, "Streams"). A program that wants FFTs of one problem to
overlap creates a stateful ``FFT`` per stream.
"""

from __future__ import annotations

import atexit
import collections
import threading
from typing import Any, Callable

import numpy as np

from fftfuse_compiler.dtypes import COMPLEX_OF, callback_type_code

from . import _cufft
from ._half import check_gpu, is_half
from ._executor import CallArgs
from ._layout import FFTProblem


class AttachedCallback:
    """What a plan needs of one callback: its LTO-IR, and how user data reaches it."""

    def __init__(self, kind: str, ltoir: bytes, element_dtype: str, *,
                 indirect: bool, pointer: int | None, name: str, toolkit: tuple[int, int] | None,
                 slot_bytes: int = 8):
        self.kind, self.ltoir, self.element_dtype = kind, ltoir, element_dtype
        self.indirect, self.pointer, self.name, self.toolkit = indirect, pointer, name, toolkit
        self.slot_bytes = slot_bytes  # the data pointer, then the runtime parameters

    def key(self) -> tuple:
        # An indirect callback's data pointer lives in a slot, so it is not part of the plan.
        return (self.kind, self.ltoir, self.element_dtype, self.indirect,
                None if self.indirect else self.pointer)


class CallbackSlots:
    """The device memory indirect callbacks read through ``callerInfo``: one record per callback
    kind, ``[data pointer, parameters...]`` (8 bytes of pointer, then the parameters' bytes).

    cuFFT fixes each callback's ``callerInfo`` at planning, so the slots belong to a plan. New
    values are copied on the executing stream (after earlier executions that read the slots) and
    only when they changed.
    """

    def __init__(self, sizes: dict[str, int]):
        import cupy

        self._offset, total = {}, 0
        for kind, size in sizes.items():  # bytes of each record, a multiple of 8
            self._offset[kind] = total
            total += size
        self._buffer = cupy.zeros(max(total // 8, 1), dtype=np.uint64)
        self._base = int(self._buffer.data.ptr)
        self.values: tuple = tuple(v for _ in sizes for v in (0, b""))  # as last written

    def address(self, kind: str) -> int:
        """The ``callerInfo`` of the ``kind`` callback: where its record starts."""
        return self._base + self._offset[kind]

    def write(self, values: tuple, stream: int) -> None:
        """Set every record: ``values`` is (pointer, parameter bytes) for each kind, in order, flat.
        The caller skips values equal to ``self.values``."""
        import cupy

        host = bytearray(self._buffer.nbytes)
        for k, at in enumerate(self._offset.values()):
            pointer, params = values[2 * k], values[2 * k + 1]
            host[at : at + 8] = int(pointer).to_bytes(8, "little")
            host[at + 8 : at + 8 + len(params)] = params
        staged = np.frombuffer(bytes(host), dtype=np.uint8)
        # Pageable source: the driver stages it before returning, so `staged` may die at once.
        cupy.cuda.runtime.memcpyAsync(self._base, staged.ctypes.data, staged.nbytes,
                                      cupy.cuda.runtime.memcpyHostToDevice, stream)
        self.values = values


def _new_event() -> int:
    import cupy

    return cupy.cuda.runtime.eventCreateWithFlags(cupy.cuda.runtime.eventDisableTiming)


def _mark(event: int, stream: int) -> None:
    """Record ``event`` after the work queued on ``stream`` so far."""
    import cupy

    try:
        cupy.cuda.runtime.eventRecord(event, stream)
    except cupy.cuda.runtime.CUDARuntimeError:
        # The stream was destroyed by its owner; what it had queued still runs: wait for it all.
        cupy.cuda.runtime.deviceSynchronize()


def _wait(stream: int, event: int) -> None:
    """Make later work on ``stream`` wait for ``event``."""
    import cupy

    cupy.cuda.runtime.streamWaitEvent(stream, event, 0)


_DIRECTION = {"forward": _cufft.CUFFT_FORWARD, "inverse": _cufft.CUFFT_INVERSE}

# The legacy default stream (0, and its explicit handle cudaStreamLegacy) lives as long as the
# device's context. Not cudaStreamPerThread (2): it names the calling thread's stream, so an event
# recorded on it later, from another thread, would not follow the launch.
_LEGACY_STREAMS = (0, 1)


class GpuPlan:
    """One cuFFT plan (with callbacks attached) for one problem on one device: the cuFFT executor."""

    def __init__(self, problem: FFTProblem, prolog: AttachedCallback | None, epilog: AttachedCallback | None,
                 device_id: int, *, patient_jit: bool = False, allocator: Any = None):
        import cupy

        self.problem, self.device_id = problem, device_id
        self.allocator = allocator
        self._work: Any = None
        self._work_size = 0
        self.prolog, self.epilog = prolog, epilog
        self.patient_jit = patient_jit
        self.handle: int | None = None
        self._slots: CallbackSlots | None = None
        self._stream: int | None = None
        # An event recorded after every launch: moves and frees wait on it, never on a stream,
        # which its owner may have destroyed since (synchronizing a destroyed stream can crash).
        # On the legacy default stream, which no one destroys, it is recorded only when a move or
        # a free needs it (``_unmarked``: the stream of launches not yet marked), saving a CUDA
        # call per launch.
        self._done: int | None = None
        self._unmarked: int | None = None
        # Threads sharing a plan: setting its stream, its slots and launching it go together.
        self._lock = threading.Lock()
        callbacks = [c for c in (prolog, epilog) if c is not None]
        with cupy.cuda.Device(device_id):
            if is_half(problem):
                check_gpu(int(cupy.cuda.Device(device_id).compute_capability), problem)
            if callbacks:
                _cufft.require_lto_callbacks()
                _check_toolkits(callbacks)
            if any(c.indirect for c in callbacks):
                # Each record: the data pointer, then the runtime parameters (8 bytes without any).
                self._slots = CallbackSlots({c: cb.slot_bytes if cb is not None else 8
                                             for c, cb in (("prolog", prolog), ("epilog", epilog))})
            self.handle = _cufft.create()
            try:
                self._make(problem, callbacks)
            except BaseException:
                self.free()
                raise

    def _make(self, problem: FFTProblem, callbacks: list[AttachedCallback]) -> None:
        _cufft.set_auto_allocation(self.handle, False)
        if self.patient_jit and callbacks:
            # cuFFT then times candidate kernels with the callbacks linked in: slower planning.
            _cufft.set_plan_property_int64(self.handle, _cufft.PLAN_PROPERTY_PATIENT_JIT, 1)
        for cb in callbacks:
            info = self._slots.address(cb.kind) if cb.indirect else cb.pointer
            try:
                # No symbol name: cuFFT then finds its prototype's mangled name, which our LTO-IR
                # defines. Naming it explicitly made planning fail with a caller_info (cuFFT 12.0).
                _cufft.xt_set_jit_callback(
                    self.handle, cb.ltoir, callback_type_code(cb.kind, cb.element_dtype), caller_info=info,
                )
            except _cufft.CuFFTError as exc:
                raise exc.with_context(f"attaching {cb.name}") from None
        ig, og = problem.input_geometry, problem.output_geometry
        try:
            work = _cufft.xt_make_plan_many(
                self.handle, problem.fft_lengths,
                input_type=_cufft.CUDA_DATA_TYPE[problem.input_dtype],
                output_type=_cufft.CUDA_DATA_TYPE[problem.output_dtype],
                # Half precision executes in CUDA_C_16F: COMPLEX_OF maps float16 to complex32.
                execution_type=_cufft.CUDA_DATA_TYPE[COMPLEX_OF[problem.input_dtype]], batch=problem.batch,
                inembed=ig.embed, istride=ig.stride, idist=ig.dist,
                onembed=og.embed, ostride=og.stride, odist=og.dist,
            )  # fmt: skip
        except _cufft.CuFFTError as exc:
            names = ", ".join(cb.name for cb in callbacks) or "no callbacks"
            raise exc.with_context(
                f"planning {problem.fft_type} {problem.input_dtype} n={problem.fft_lengths} batch={problem.batch} "
                f"with {names}"
            ) from None
        self._work_size = max(work, 1)
        self._draw_workspace()

    def _draw_workspace(self) -> None:
        """Work area from the allocator, else CuPy's pool (freed memory is shared with the program)."""
        if self.allocator is not None:
            from nvmath.memory import device_pointer

            self._work = self.allocator.memalloc(self._work_size)
            pointer = device_pointer(self._work)
        else:
            import cupy

            self._work = cupy.empty(self._work_size, dtype=np.uint8)
            pointer = int(self._work.data.ptr)
        _cufft.set_work_area(self.handle, pointer)

    # -- the executor interface (nvmath.fft._executor.Executor) --------------------------------

    def release(self) -> None:
        """Give the work area back (after the stream's kernels); the next run draws it again."""
        with self._lock:
            if self._work is not None:
                self._wait_for_work()
                self._work = None

    release_workspace = release  # the name FFT.execute(release_workspace=True) speaks of

    def run(self, call: CallArgs) -> None:
        """Launch on ``call.stream`` (the plan's device is current), after the plan's earlier work.

        ``call.inp``, ``call.out``: device pointers; ``call.data``: the callbacks' data pointers
        and packed runtime parameters (written to the slots of indirect callbacks)."""
        stream = call.stream
        with self._lock:
            if stream != self._stream:
                self._move_to(stream)
            slots = self._slots
            if slots is not None and call.data != slots.values:  # written only when changed (a call less per run)
                slots.write(call.data, stream)
            if self._work is None:
                self._draw_workspace()
            _cufft.xt_exec(self.handle, call.inp, call.out, _DIRECTION[call.direction])
            if stream in _LEGACY_STREAMS:
                self._unmarked = stream
            else:
                self._mark_done(stream)

    def _mark_done(self, stream: int) -> None:
        if self._done is None:
            self._done = _new_event()
        _mark(self._done, stream)
        self._unmarked = None

    def _move_to(self, stream: int) -> None:
        """Order launches on ``stream`` after the plan's work on its previous stream."""
        if self._unmarked is not None:
            self._mark_done(self._unmarked)
        if self._done is not None:
            _wait(stream, self._done)
        _cufft.set_stream(self.handle, stream)
        self._stream = stream

    def _wait_for_work(self) -> None:
        """Kernels in flight still read the work area and the data slots: let them finish."""
        if self._done is None and self._unmarked is None:
            return
        import cupy

        runtime = cupy.cuda.runtime
        with cupy.cuda.Device(self.device_id):
            if self._unmarked is not None:
                self._mark_done(self._unmarked)
            runtime.eventSynchronize(self._done)

    def free(self) -> None:
        if self.handle is not None:
            try:
                self._wait_for_work()
                _cufft.destroy(self.handle)
                if self._done is not None:
                    import cupy

                    cupy.cuda.runtime.eventDestroy(self._done)
                    self._done = None
            finally:
                self.handle = None
                self._work = None
                self._slots = None


def _check_toolkits(callbacks: list[AttachedCallback]) -> None:
    """LTO-IR from a newer NVVM than nvJitLink fails deep inside cuFFT: refuse it here."""
    linker = None
    for cb in callbacks:
        if cb.toolkit is None:
            continue
        if linker is None:
            from fftfuse_compiler.toolchain import nvjitlink_version

            linker = nvjitlink_version()
        if tuple(cb.toolkit) > linker:
            raise RuntimeError(
                f"{cb.name} was compiled by CUDA {cb.toolkit[0]}.{cb.toolkit[1]}'s NVVM, newer than the "
                f"nvJitLink {linker[0]}.{linker[1]} cuFFT links with; upgrade nvJitLink or compile with "
                "the matching toolkit"
            )


class PlanCache:
    """Bounded LRU of plans for stateless calls, per (device, problem, callbacks), shared by threads.

    Engines ``acquire`` a plan and ``release`` it when done: a plan leaves the cache when it is
    the least recently used of more than ``capacity``, and is freed once no engine holds it.
    """

    def __init__(self, capacity: int = 64):
        self.capacity = capacity
        self._plans: collections.OrderedDict[tuple, GpuPlan] = collections.OrderedDict()
        self._cached: dict[int, tuple] = {}  # id(plan) -> key, for the plans in _plans
        self._users: dict[int, int] = {}  # id(plan) -> engines holding it
        self._lock = threading.Lock()
        self.created = 0

    def acquire(self, key: tuple, build: Callable[[], GpuPlan]) -> GpuPlan:
        """The plan for ``key`` (built by ``build`` when missing), held until ``release``."""
        with self._lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
                self._hold(plan)
                return plan
        # Planning takes milliseconds: other problems need not wait for it.
        built = build()
        with self._lock:
            self.created += 1
            plan = self._plans.get(key)
            if plan is None:
                plan, spare = built, None
                self._plans[key], self._cached[id(plan)] = plan, key
                self._plans.move_to_end(key)
            else:
                spare = built  # another thread built the same plan meanwhile: keep one
                self._plans.move_to_end(key)
            self._hold(plan)
            idle = self._evict()
        # Freed outside the lock: freeing waits for the plan's stream, and threads driving
        # other GPUs must not wait behind it.
        for old in ([spare] if spare is not None else []) + idle:
            old.free()
        return plan

    def release(self, plan: GpuPlan) -> None:
        """An engine is done with ``plan``: free it if it has left the cache and no one holds it."""
        with self._lock:
            users = self._users.get(id(plan), 0) - 1
            if users > 0:
                self._users[id(plan)] = users
                return
            self._users.pop(id(plan), None)
            idle = id(plan) not in self._cached
        if idle:
            plan.free()

    def _hold(self, plan: GpuPlan) -> None:
        self._users[id(plan)] = self._users.get(id(plan), 0) + 1

    def _evict(self) -> list[GpuPlan]:
        """Drop the least recently used plans beyond capacity; return those no one holds."""
        idle = []
        while len(self._plans) > self.capacity:
            _, old = self._plans.popitem(last=False)
            del self._cached[id(old)]
            if id(old) not in self._users:
                idle.append(old)
        return idle

    def clear(self) -> None:
        """Empty the cache; plans still held are freed when released."""
        with self._lock:
            plans, self._plans, self._cached = list(self._plans.values()), collections.OrderedDict(), {}
            idle = [p for p in plans if id(p) not in self._users]
        for plan in idle:
            plan.free()

    def holders(self, plan: GpuPlan) -> int:
        """How many engines hold ``plan``."""
        return self._users.get(id(plan), 0)

    def __len__(self) -> int:
        return len(self._plans)


plan_cache = PlanCache()
atexit.register(plan_cache.clear)
