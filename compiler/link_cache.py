"""A persistent, content-addressed cache of numba-cuda kernel links (LTO-IR + linked files -> cubin).

numba-cuda caches nothing for a kernel that links external code (``cuda.jit(link=...)``), so
every process links it again; for a kernel calling cuFFTDx that is seconds of nvJitLink work.
This cache is keyed by exactly what goes into the link: the kernel's own LTO-IR (PTX when
LTO is off) as numba produced it in this process, the bytes of every linked file, the target
architecture, the register limit, and the versions of nvJitLink and the compiling toolchain.
An entry can only be served for the very bytes it was linked from, so it is never stale by
construction: a changed kernel, a changed global it reads (numba bakes globals into the
code) or a changed linked function all change the key.

What it does not save: numba still types and lowers the kernel in every process (that is
what produces the LTO-IR the key is made of), about half a second for a small kernel; the
link it skips costs seconds.

:func:`install` wraps ``CUDACodeLibrary.get_cubin`` once per process. Only libraries for which
``select(library)`` is true use the cache (nvmath.device selects kernels that call a device
FFT), so other kernels link exactly as before. ``FFTFUSE_CACHE=0`` turns the disk layer off.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable

__all__ = ["install", "link_key", "stats", "file_digest", "object_code"]

_installed: list[Callable[[Any], bool]] = []
_stats = {"hits": 0, "misses": 0}


def stats() -> dict[str, int]:
    """Hits and misses of the link cache in this process."""
    return dict(_stats)


def file_digest(item: Any) -> list[str]:
    """What identifies one linked file: its kind and the SHA-256 of its bytes."""
    data = getattr(item, "data", None)
    if data is not None:  # a LinkableCode object (LTOIR, PTX, Cubin, Fatbin, ...)
        if isinstance(data, str):
            data = data.encode()
        return [type(item).__name__, hashlib.sha256(bytes(data)).hexdigest()]
    path = os.fspath(item)
    with open(path, "rb") as f:
        return [os.path.splitext(path)[1], hashlib.sha256(f.read()).hexdigest()]


def link_key(library: Any, cc: tuple) -> str:
    """The store key of ``library``'s link for ``cc`` (compiles its LTO-IR/PTX if numba has not yet)."""
    from fftfuse_cache import artifact_key

    from .toolchain import nvjitlink_version, toolchain_stamp

    lto = bool(getattr(library, "_lto", False))
    if lto:
        own = hashlib.sha256(bytes(library.get_ltoir(cc=cc))).hexdigest()
    else:
        own = hashlib.sha256("\n".join(library.get_asm_strs(cc=cc)).encode()).hexdigest()
    files = sorted(file_digest(f) for f in library._linking_files)
    return artifact_key(
        target="numba-cubin", own=own, lto=lto, files=files, cc=[str(c) for c in cc],
        max_registers=library._max_registers, cudadevrt=bool(library.needs_cudadevrt),
        nvjitlink=list(nvjitlink_version()), toolchain=toolchain_stamp(), entry=library._entry_name or "",
    )


def object_code(cubin: bytes) -> Any:
    """A cubin in the form numba-cuda's linker returns it (a cuda.core ObjectCode)."""
    try:
        from cuda.core import ObjectCode
    except ImportError:  # older numba-cuda: bytes
        return cubin
    return ObjectCode.from_cubin(cubin)


def install(select: Callable[[Any], bool]) -> None:
    """Serve ``get_cubin`` from the store for the numba code libraries ``select`` accepts."""
    if select in _installed:
        return
    _installed.append(select)
    if len(_installed) > 1:
        return
    from numba.cuda.codegen import CUDACodeLibrary

    original = CUDACodeLibrary.get_cubin

    def get_cubin(self: Any, cc: Any = None) -> bytes:
        cc = self._ensure_cc(cc)
        if cc in self._cubin_cache or not any(s(self) for s in _installed):
            return original(self, cc)
        from fftfuse_cache import ArtifactMeta, compiled_through, default_store

        from .toolchain import toolchain_stamp

        store = default_store()
        try:
            key = link_key(self, cc)
        except OSError:  # a linked file that cannot be read: numba will say so
            return original(self, cc)
        linked: list[Any] = []

        def link() -> tuple[bytes, ArtifactMeta]:
            _stats["misses"] += 1
            cubin = original(self, cc)
            linked.append(cubin)
            info = self._linkerinfo_cache.get(cc, "")
            return bytes(getattr(cubin, "code", cubin)), ArtifactMeta(
                "numba-cubin", "kernel-cubin", arch=int(cc[0]) * 10 + int(cc[1]), function=self._entry_name or "",
                toolchain=toolchain_stamp(), extra={"info_log": str(info or "")[:4096]})

        found = compiled_through(store, key, {"target": "numba-cubin", "kind": "kernel-cubin"}, link)
        if linked:
            return linked[0]
        _stats["hits"] += 1
        cubin = object_code(found.payload)
        self._cubin_cache[cc] = cubin
        self._linkerinfo_cache[cc] = found.meta.extra.get("info_log", "")
        return cubin

    get_cubin.__wrapped__ = original  # type: ignore[attr-defined]
    CUDACodeLibrary.get_cubin = get_cubin
