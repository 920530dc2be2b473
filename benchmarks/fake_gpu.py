"""A CUDA-free stand-in for the GPU: the GPU code path of ``nvmath.fft`` runs on the CPU.

``FakeGpu.install(monkeypatch)`` puts a small ``cupy`` look-alike in ``sys.modules`` (arrays in
host memory whose "device pointer" is their host address, devices, streams, the runtime calls
the planner makes) and replaces cuFFT's calls with recorders. Compiling callbacks stays real
(NVVM needs no GPU). What reaches cuFFT is kept in ``launches``: one record per ``cufftXtExec``
with the pointers, the plan's stream, the current device and the callbacks' data slots, so a
test can check that a reused plan is handed the new operand, data, stream and device.

Used by the tests (the ``fake_gpu`` fixture and execution of ``tests/conftest.py``) and by
``benchmarks/host_overhead.py --fake-gpu`` (which measures the Python part of a call: these
stand-ins cost well under a microsecond each).
"""

from __future__ import annotations

import ctypes
import dataclasses
import itertools
import sys
import threading
import types
import weakref
from typing import Any

import numpy as np

_local = threading.local()


def _state() -> Any:
    if not hasattr(_local, "device"):
        _local.device, _local.streams, _local.previous = 0, {}, []
    return _local


class Memory:
    """One allocation: a fake device address, backed by host memory made on first access."""

    __slots__ = ("address", "size", "_host", "__weakref__")
    _next = itertools.count(1 << 40, 1 << 32)  # unique, and each allocation has 4 GiB to itself
    live: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # address -> Memory
    kept: list | None = None  # a list: every allocation is kept, to be read after it is dropped

    def __init__(self, size: int):
        self.size = size
        self.address = next(self._next)
        self._host: np.ndarray | None = None
        Memory.live[self.address] = self
        if Memory.kept is not None:
            Memory.kept.append(self)

    @property
    def host(self) -> np.ndarray:
        if self._host is None:
            self._host = np.zeros(max(self.size, 1), np.uint8)
        return self._host


class MemoryPointer:
    """What ``ndarray.data`` is in CuPy: an address in an allocation."""

    __slots__ = ("mem", "ptr", "device_id")

    def __init__(self, mem: Memory, ptr: int, device_id: int):
        self.mem, self.ptr, self.device_id = mem, ptr, device_id


class UnownedMemory:
    """``cupy.cuda.UnownedMemory``: memory at a device address the caller does not own."""

    def __init__(self, ptr: int, size: int, owner: Any, device_id: int | None = None):
        self.memory = Memory.live[ptr >> 32 << 32]  # every fake allocation starts 4 GiB-aligned
        self.ptr, self.size = ptr, size
        self.device_id = _state().device if device_id is None else device_id


def _memory_pointer(mem: Any, *args: Any) -> MemoryPointer:
    """``cupy.cuda.MemoryPointer(memory, offset)``; the fake's own ``(Memory, ptr, device_id)`` too."""
    if isinstance(mem, UnownedMemory):
        (offset,) = args
        return MemoryPointer(mem.memory, mem.ptr + offset, mem.device_id)
    return MemoryPointer(mem, *args)


class _Device:
    """``cupy.cuda.Device``: a context that makes its device current."""

    compute_capability = "90"

    def __init__(self, device: int | None = None):
        self.id = _state().device if device is None else int(device)

    def __enter__(self) -> "_Device":
        state = _state()
        state.previous.append(state.device)
        state.device = self.id
        return self

    def __exit__(self, *exc: Any) -> None:
        state = _state()
        state.device = state.previous.pop()

    def use(self) -> None:
        _state().device = self.id


_DEVICES = [_Device(d) for d in range(8)]


class _Flags:
    def __init__(self, array: np.ndarray):
        self.c_contiguous = array.flags.c_contiguous

    def __getitem__(self, name: str) -> bool:
        return {"C_CONTIGUOUS": self.c_contiguous}[name]


class ndarray:
    """A device array of the fake GPU: shape, strides, dtype and an address; its elements live in
    host memory, made when first read or written."""

    __module__ = "cupy"  # where the stateless hot path looks for CuPy arrays

    def __init__(self, shape: Any, dtype: Any = float, memptr: MemoryPointer | None = None,
                 strides: Any = None, order: str = "C"):
        shape = (shape,) if type(shape) is int else tuple(shape)
        dtype = np.dtype(dtype)
        if strides is None:
            strides, step = [], dtype.itemsize
            for n in reversed(shape):
                strides.append(step)
                step *= n
            strides = tuple(reversed(strides))
        if memptr is None:
            size = dtype.itemsize
            for n in shape:
                size *= n
            mem = Memory(size)
            memptr = MemoryPointer(mem, mem.address, _state().device)
        self.data, self.shape, self.strides, self.dtype = memptr, shape, tuple(strides), dtype
        self.device = _DEVICES[memptr.device_id]

    @property
    def _a(self) -> np.ndarray:
        """The elements, as a NumPy view of the host memory."""
        mem = self.data.mem
        return np.ndarray(self.shape, self.dtype, buffer=mem.host, offset=self.data.ptr - mem.address,
                          strides=self.strides)

    def _view(self, host: np.ndarray) -> "ndarray":
        """An array over ``host``, a NumPy view of this one's memory."""
        mem = self.data.mem
        ptr = mem.address + (host.ctypes.data - mem.host.ctypes.data)
        return ndarray(host.shape, host.dtype, MemoryPointer(mem, ptr, self.data.device_id), host.strides)

    size = property(lambda self: int(np.prod(self.shape)))
    ndim = property(lambda self: len(self.shape))
    itemsize = property(lambda self: self.dtype.itemsize)
    nbytes = property(lambda self: self.size * self.dtype.itemsize)
    flags = property(lambda self: _Flags(self._a))

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": self.shape, "strides": self.strides, "typestr": self.dtype.str,
                "data": (self.data.ptr, False), "version": 3}

    def get(self) -> np.ndarray:
        return self._a.copy()

    def reshape(self, *shape: Any) -> "ndarray":
        return self._view(self._a.reshape(*shape))

    def __getitem__(self, index: Any) -> "ndarray":
        return self._view(self._a[index])

    def __setitem__(self, index: Any, value: Any) -> None:
        self._a[index] = value._a if isinstance(value, ndarray) else value


def read(address: int, dtype: Any, count: int) -> np.ndarray:
    """A copy of ``count`` elements at a device address of a live fake array."""
    base = address >> 32 << 32
    mem = Memory.live[base]
    dtype = np.dtype(dtype)
    return mem.host[address - base:address - base + count * dtype.itemsize].view(dtype).copy()


def asarray(obj: Any, dtype: Any = None) -> ndarray:
    if isinstance(obj, ndarray):
        return obj
    host = np.ascontiguousarray(obj, dtype=dtype)
    out = ndarray(host.shape, host.dtype)
    out._a[...] = host
    return out


def empty(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    return ndarray(shape, dtype)


class Stream:
    """``cupy.cuda.Stream``: ``with stream:`` makes it current on this thread."""

    null: "Stream"
    _handles = itertools.count(0x5000)

    def __init__(self, non_blocking: bool = False, ptr: int | None = None):
        self.ptr = next(self._handles) if ptr is None else ptr
        self._previous: list[Any] = []

    def __enter__(self) -> "Stream":
        state = _state()
        self._previous.append(state.streams.get(state.device))
        state.streams[state.device] = self
        return self

    def __exit__(self, *exc: Any) -> None:
        state = _state()
        state.streams[state.device] = self._previous.pop()

    def synchronize(self) -> None:
        pass

    @classmethod
    def from_external(cls, obj: Any) -> "Stream":
        return cls(ptr=obj.__cuda_stream__()[1])


Stream.null = Stream(ptr=0)


def ExternalStream(ptr: int) -> Stream:  # noqa: N802 - CuPy's name
    return Stream(ptr=ptr)


def get_current_stream(device_id: int = -1) -> Stream:
    state = _state()
    return state.streams.get(state.device) or Stream.null


class CUDARuntimeError(RuntimeError):
    pass


@dataclasses.dataclass
class Launch:
    """One ``cufftXtExec``: what cuFFT was handed, and in which context."""

    plan: int
    input: int
    output: int
    direction: int
    stream: int  # the plan's stream (cufftSetStream)
    device: int  # the current device when it was launched
    # per callback type code: (callerInfo, the word stored there when it is a data slot, else None)
    caller_info: dict
    # per callback type code whose callerInfo is a slot: its first 32 bytes (pointer, then parameters)
    slot_bytes: dict


class FakeGpu:
    """The fake CuPy module and cuFFT calls; see the module's docstring."""

    def __init__(self, devices: int = 2, record: bool = True):
        self.devices = devices
        self.record = record  # False: launches are only counted (a benchmark's fake costs less)
        self.launch_count = 0
        self.launches: list[Launch] = []
        self.plans_made = 0
        self.plans: list[dict] = []  # per cufftXtMakePlanMany: its arguments (types, geometry, batch)
        self._handles = itertools.count(1)
        self._events = itertools.count(0xE000)
        self._stream: dict[int, int] = {}
        self._caller_info: dict[int, dict[int, int]] = {}
        self.ltoir: dict[int, dict[int, bytes]] = {}  # plan handle -> callback type code -> LTO-IR (kept)
        self._slot_memory: list[Memory] = []  # uint64 buffers: the planner's data slots

    def install(self, monkeypatch: Any, keep_memory: bool = False) -> "FakeGpu":
        """Put the fake in place for the rest of the test (``monkeypatch`` undoes it); with
        ``keep_memory``, no allocation is ever freed (so ``read`` sees buffers the code dropped)."""
        from fftfuse_compiler import toolchain
        from nvmath.fft import _cufft, _planner

        monkeypatch.setattr(Memory, "kept", [] if keep_memory else None)
        cupy = types.ModuleType("cupy")
        cupy.ndarray, cupy.asarray, cupy.empty, cupy.zeros = ndarray, asarray, empty, self._zeros
        cupy.cuda = types.SimpleNamespace(
            Device=_Device, Stream=Stream, ExternalStream=ExternalStream, get_current_stream=get_current_stream,
            runtime=self._runtime(), MemoryPointer=_memory_pointer, UnownedMemory=UnownedMemory,
        )
        cupy.__version__ = "fake"
        monkeypatch.setitem(sys.modules, "cupy", cupy)
        _local.__dict__.clear()
        monkeypatch.setattr(_planner, "device_arch", lambda device: 90)
        fakes = {
            "create": lambda: next(self._handles),
            "destroy": self._destroy,
            "set_auto_allocation": lambda plan, auto: None,
            "set_plan_property_int64": lambda plan, prop, value: True,
            "xt_set_jit_callback": self._set_callback,
            "xt_make_plan_many": self._make_plan,
            "set_work_area": lambda plan, pointer: None,
            "set_stream": lambda plan, stream: self._stream.__setitem__(plan, stream),
            "xt_exec": self._exec,
            "require_lto_callbacks": lambda: None,
        }
        for name, fake in fakes.items():
            monkeypatch.setattr(_cufft, name, fake)
        monkeypatch.setattr(toolchain, "nvjitlink_version", lambda: (99, 0))
        return self

    def _runtime(self) -> types.SimpleNamespace:
        def memcpy_async(dst: int, src: int, size: int, kind: int, stream: int) -> None:
            host, offset = self._memory_at(dst)  # only the data slots are written from the host
            ctypes.memmove(host.ctypes.data + offset, src, size)

        return types.SimpleNamespace(
            getDevice=lambda: _state().device, setDevice=lambda d: setattr(_state(), "device", d),
            getDeviceCount=lambda: self.devices, memcpyAsync=memcpy_async, memcpyHostToDevice=1,
            eventCreateWithFlags=lambda flags: next(self._events), eventDisableTiming=2,
            eventRecord=lambda event, stream: None, streamWaitEvent=lambda stream, event, flags: None,
            eventSynchronize=lambda event: None, eventDestroy=lambda event: None,
            streamSynchronize=lambda stream: None, deviceSynchronize=lambda: None,
            CUDARuntimeError=CUDARuntimeError,
        )

    def _zeros(self, shape: Any, dtype: Any = float) -> ndarray:
        out = ndarray(shape, dtype)
        out._a[...] = 0
        if out.dtype == np.uint64:
            self._slot_memory.append(out.data.mem)
        return out

    def _memory_at(self, address: int) -> tuple[np.ndarray, int] | None:
        """(host bytes, offset) of a slot buffer's device address, or None."""
        for mem in self._slot_memory:
            if mem.address <= address < mem.address + mem.size:
                return mem.host, address - mem.address
        return None

    def _set_callback(self, plan: int, ltoir: bytes, code: int, *, symbol: Any = None, caller_info: Any = None) -> None:
        self._caller_info.setdefault(plan, {})[code] = caller_info or 0
        self.ltoir.setdefault(plan, {})[code] = bytes(ltoir)

    def _make_plan(self, plan: int, shape: Any, **kw: Any) -> int:
        self.plans_made += 1
        if self.record:
            self.plans.append({"handle": plan, "shape": tuple(shape), **kw})
        return 0

    def _destroy(self, plan: int) -> None:
        self._stream.pop(plan, None)
        self._caller_info.pop(plan, None)

    def _word(self, address: int) -> int | None:
        found = self._memory_at(address)
        return None if found is None else int(found[0][found[1]:found[1] + 8].view(np.uint64)[0])

    def _exec(self, plan: int, inp: int, out: int, direction: int) -> None:
        self.launch_count += 1
        if not self.record:
            return
        callers = self._caller_info.get(plan, {})
        info = {code: (ptr, self._word(ptr)) for code, ptr in callers.items()}
        slots = {}
        for code, ptr in callers.items():
            found = self._memory_at(ptr)
            if found is not None:
                slots[code] = bytes(found[0][found[1]:found[1] + 32])
        self.launches.append(Launch(plan, inp, out, direction, self._stream.get(plan, 0), _state().device, info,
                                    slots))
