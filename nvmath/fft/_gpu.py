"""cuFFT plans with LTO callbacks, and a bounded per-device plan cache.

A callback compiled from Python is built *indirect*: cuFFT hands it a pointer to a small
device slot that holds the user-data pointer, instead of the data pointer itself. cuFFT fixes
``callerInfo`` when the callback is attached, so this is what lets a new data array reuse a
plan: only the slot is rewritten, in stream order, and only when the pointer changed. A callback
with runtime parameters has them in its slot after the pointer: [data pointer, parameters...].
"""

from __future__ import annotations

import atexit
import collections
import threading
from typing import Any

import numpy as np

from compiler.dtypes import COMPLEX_OF, callback_type_code

from . import _cufft
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


class GpuPlan:
    """One cuFFT plan (with callbacks attached) for one problem on one device."""

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
        self._slots = None
        self._slot_values: tuple = (0, b"", 0, b"")
        # Byte offset of each callback's slot: the prolog's first, then the epilog's.
        self._slot_at = {"prolog": 0, "epilog": prolog.slot_bytes if prolog is not None else 8}
        self._stream = None
        callbacks = [c for c in (prolog, epilog) if c is not None]
        with cupy.cuda.Device(device_id):
            if callbacks:
                _cufft.require_lto_callbacks()
                _check_toolkits(callbacks)
            if any(c.indirect for c in callbacks):
                size = self._slot_at["epilog"] + (epilog.slot_bytes if epilog is not None else 8)
                self._slots = cupy.zeros(size // 8, dtype=np.uint64)
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
            info = int(self._slots.data.ptr) + self._slot_at[cb.kind] if cb.indirect else cb.pointer
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

    def release_workspace(self) -> None:
        """Give the work area back (after the stream's kernels); the next execution draws it again."""
        if self._work is not None:
            self._wait_for_stream()
            self._work = None

    def execute(self, inp_ptr: int, out_ptr: int, direction: int, stream: int,
                prolog_data: int = 0, epilog_data: int = 0, prolog_params: bytes = b"",
                epilog_params: bytes = b"") -> None:
        if stream != self._stream:
            _cufft.set_stream(self.handle, stream)
            self._stream = stream
        if self._slots is not None:
            self._write_slots((prolog_data, prolog_params, epilog_data, epilog_params), stream)
        if self._work is None:
            self._draw_workspace()
        _cufft.xt_exec(self.handle, inp_ptr, out_ptr, direction)

    def _write_slots(self, values: tuple, stream: int) -> None:
        if values == self._slot_values:
            return
        import cupy

        prolog_data, prolog_params, epilog_data, epilog_params = values
        host = bytearray(self._slots.nbytes)
        for at, pointer, params in ((0, prolog_data, prolog_params), (self._slot_at["epilog"], epilog_data, epilog_params)):
            host[at : at + 8] = int(pointer).to_bytes(8, "little")
            host[at + 8 : at + 8 + len(params)] = params
        host = np.frombuffer(bytes(host), dtype=np.uint8)
        # Pageable source: the driver stages it before returning, so `host` may die at once;
        # the copy is ordered on the stream, after earlier executions that read the slot.
        cupy.cuda.runtime.memcpyAsync(int(self._slots.data.ptr), host.ctypes.data, host.nbytes,
                                      cupy.cuda.runtime.memcpyHostToDevice, stream)
        self._slot_values = values

    def _wait_for_stream(self) -> None:
        """Kernels in flight still read the work area and the data slots: let them finish."""
        if self._stream is None:
            return
        import cupy

        try:
            with cupy.cuda.Device(self.device_id):
                cupy.cuda.runtime.streamSynchronize(self._stream)
        except cupy.cuda.runtime.CUDARuntimeError:
            pass  # the stream is gone (destroyed by its owner), and its work with it

    def free(self) -> None:
        if self.handle is not None:
            try:
                self._wait_for_stream()
                _cufft.destroy(self.handle)
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
            from compiler.toolchain import nvjitlink_version

            linker = nvjitlink_version()
        if tuple(cb.toolkit) > linker:
            raise RuntimeError(
                f"{cb.name} was compiled by CUDA {cb.toolkit[0]}.{cb.toolkit[1]}'s NVVM, newer than the "
                f"nvJitLink {linker[0]}.{linker[1]} cuFFT links with; upgrade nvJitLink or compile with "
                "the matching toolkit"
            )


class PlanCache:
    """Bounded LRU of plans for stateless calls, per (device, stream, problem, callbacks)."""

    def __init__(self, capacity: int = 64):
        self.capacity = capacity
        self._plans: collections.OrderedDict[tuple, GpuPlan] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.created = 0

    def get(self, key: tuple, build) -> GpuPlan:
        with self._lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
                return plan
        plan = build()
        evicted = []
        with self._lock:
            self.created += 1
            self._plans[key] = plan
            while len(self._plans) > self.capacity:
                evicted.append(self._plans.popitem(last=False)[1])
        # Freed outside the lock: freeing waits for the plan's stream, and threads driving
        # other GPUs must not wait behind it.
        for old in evicted:
            old.free()
        return plan

    def clear(self) -> None:
        with self._lock:
            plans, self._plans = list(self._plans.values()), collections.OrderedDict()
        for plan in plans:
            plan.free()

    def __len__(self) -> int:
        return len(self._plans)


plan_cache = PlanCache()
atexit.register(plan_cache.clear)
