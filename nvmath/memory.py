"""The memory-manager interface ``FFTOptions(allocator=...)`` takes for GPU workspace.

An allocator is any object with ``memalloc(size) -> MemoryPointer`` (or anything with a
``device_ptr`` or CuPy-style ``ptr`` attribute): the FFT keeps the returned object alive as long
as it uses the memory and drops it to free it.

>>> class Counting:
...     def __init__(self): self.sizes = []
...     def memalloc(self, size):
...         self.sizes.append(size)
...         return MemoryPointer(0, size, finalizer=None)
>>> isinstance(Counting(), BaseCUDAMemoryManager)
True
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

__all__ = ["BaseCUDAMemoryManager", "MemoryPointer", "device_pointer"]


class MemoryPointer:
    """Device memory of ``size`` bytes at ``device_ptr``; ``finalizer()`` runs once when freed."""

    def __init__(self, device_ptr: int, size: int, finalizer: Callable[[], None] | None):
        self.device_ptr, self.size, self._finalizer = int(device_ptr), int(size), finalizer

    def free(self) -> None:
        """Release the memory now (also done when the object is collected)."""
        finalizer, self._finalizer = self._finalizer, None
        if finalizer is not None:
            finalizer()

    def __del__(self) -> None:
        self.free()


@runtime_checkable
class BaseCUDAMemoryManager(Protocol):
    """What an allocator provides: ``memalloc(size)`` returning a ``MemoryPointer``."""

    def memalloc(self, size: int) -> Any: ...


def device_pointer(memory: Any) -> int:
    """The device address of what an allocator returned (MemoryPointer, CuPy MemoryPointer or int)."""
    for attribute in ("device_ptr", "ptr"):
        value = getattr(memory, attribute, None)
        if value is not None:
            return int(value)
    if isinstance(memory, int) and not isinstance(memory, bool):
        return memory
    raise TypeError(
        f"the allocator's memalloc returned {type(memory).__name__}; expected a MemoryPointer "
        "(nvmath.memory) or an object with a device_ptr or ptr attribute"
    )
