"""What the compiler runs with: target architectures and a cheap identity of the toolchain.

None of this imports numba: a cache hit must not pay for it. The toolchain stamp is read off
the installed distributions' metadata folder names, which changes whenever numba, numba-cuda,
cuda-bindings or the NVVM wheels are upgraded, so artifacts of an old toolchain are never
served to a new one.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from typing import Any

from fftfuse_cache.hashing import sha256

# Distributions whose versions decide what the compiler produces.
_TOOLCHAIN_DISTS = (
    "numba",
    "numba_cuda",
    "llvmlite",
    "cuda_bindings",
    "nvidia_cuda_nvcc_cu12",
    "nvidia_cuda_nvcc",
    "nvidia_nvvm",
)
_TOOLCHAIN_ENV = ("CUDA_HOME", "CUDA_PATH", "NUMBA_CUDA_NVVM", "NUMBA_FORCE_CUDA_CC")

# Raised whenever this package compiles the same function to other code (artifacts stored
# before then are never served): 2 = jitted functions compiled afresh, literal narrowing
# limited to float32's normal range.
COMPILER_REVISION = 2


@functools.lru_cache(maxsize=None)
def toolchain_stamp() -> str:
    """A short digest that changes whenever the compiling toolchain may produce other code."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if not name.endswith(".dist-info"):
                continue
            dist, _, version = name[: -len(".dist-info")].partition("-")
            dist = dist.lower().replace("-", "_").replace(".", "_")
            if dist in _TOOLCHAIN_DISTS and dist not in found:
                found[dist] = version
    env = {k: os.environ.get(k, "") for k in _TOOLCHAIN_ENV}
    text = repr((COMPILER_REVISION, sorted(found.items()), sorted(env.items()), sys.version_info[:2]))
    return sha256(text.encode()).hexdigest()[:16]


def parse_compute_capability(cc: Any) -> int:
    """Normalise "90", 90, (9, 0), "9.0" or "sm_90" to 90.

    >>> [parse_compute_capability(c) for c in ("90", 90, (9, 0), "8.6", "sm_80")]
    [90, 90, 90, 86, 80]
    """
    if isinstance(cc, (tuple, list)) and len(cc) == 2 and all(isinstance(v, int) for v in cc):
        if 1 <= cc[0] <= 99 and 0 <= cc[1] <= 9:
            return cc[0] * 10 + cc[1]
    if isinstance(cc, int) and not isinstance(cc, bool) and 10 <= cc < 1000:
        return cc
    if isinstance(cc, str):
        m = re.fullmatch(r"(?:sm_|compute_)?(\d+)(?:\.(\d))?", cc.strip())
        if m:
            return int(m.group(1)) * 10 + int(m.group(2)) if m.group(2) else int(m.group(1))
    raise ValueError(
        f"compute_capability={cc!r} is not understood; pass it as '90', 90 or (9, 0) "
        "(major, minor: the minor version is one digit)."
    )


def current_device_arch() -> int | None:
    """The architecture of the current CUDA device, or None where there is no usable GPU."""
    cupy = sys.modules.get("cupy")
    if cupy is not None:  # cheap when the caller already works with CuPy
        try:
            return int(cupy.cuda.Device().compute_capability)
        except Exception:
            return None
    numba_cuda = sys.modules.get("numba.cuda")
    if numba_cuda is not None:
        # A numba-cuda program launches through numba's context anyway: asking numba avoids
        # starting the CUDA runtime's too (0.1-0.2 s in a fresh process).
        try:
            major, minor = numba_cuda.get_current_device().compute_capability
            return major * 10 + minor
        except Exception:
            return None
    try:
        from cuda.bindings import runtime as rt
    except ImportError:
        return None
    try:
        err, dev = rt.cudaGetDevice()
        if err != rt.cudaError_t.cudaSuccess:
            return None
        err, major = rt.cudaDeviceGetAttribute(rt.cudaDeviceAttr.cudaDevAttrComputeCapabilityMajor, dev)
        err2, minor = rt.cudaDeviceGetAttribute(rt.cudaDeviceAttr.cudaDevAttrComputeCapabilityMinor, dev)
        if err != rt.cudaError_t.cudaSuccess or err2 != rt.cudaError_t.cudaSuccess:
            return None
        return major * 10 + minor
    except Exception:  # no driver, no device: not our error to report here
        return None


@functools.lru_cache(maxsize=None)
def nvrtc_version() -> tuple[int, int]:
    """(major, minor) of NVRTC: the CUDA version of the NVRTC/NVVM that compiles callbacks."""
    from cuda.bindings import nvrtc

    err, major, minor = nvrtc.nvrtcVersion()
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise RuntimeError(f"nvrtcVersion failed: {err}")
    return int(major), int(minor)


@functools.lru_cache(maxsize=None)
def nvjitlink_version() -> tuple[int, int]:
    """(major, minor) of nvJitLink, which links callbacks into cuFFT's kernels (and for link checks)."""
    from cuda.bindings import nvjitlink

    major, minor = nvjitlink.version()
    return int(major), int(minor)


def lowest_supported_arch() -> int:
    """The oldest architecture the installed NVRTC/NVVM compiles for (LTO-IR links on newer)."""
    return supported_archs()[0]


@functools.lru_cache(maxsize=None)
def supported_archs() -> tuple[int, ...]:
    """The architectures the installed NVRTC/NVVM compile for."""
    from cuda.bindings import nvrtc

    err, archs = nvrtc.nvrtcGetSupportedArchs()
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS or not archs:
        raise RuntimeError(f"nvrtcGetSupportedArchs failed: {err}")
    return tuple(sorted(int(a) for a in archs))


def check_supported_arch(arch: int) -> None:
    """Refuse an architecture the toolkit cannot compile for, before anything is compiled or stored.

    >>> check_supported_arch(999)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: compute_capability 99.9 (sm_999) is not an architecture this CUDA toolkit compiles for; ...
    """
    archs = supported_archs()
    if arch not in archs:
        raise ValueError(
            f"compute_capability {arch // 10}.{arch % 10} (sm_{arch}) is not an architecture this CUDA toolkit "
            f"compiles for; it compiles for {', '.join(map(str, archs))} (LTO-IR for one links on newer GPUs)"
        )


def resolve_arch(compute_capability: Any = None) -> int:
    """The target architecture: as given, else the current GPU's, else the lowest supported."""
    if compute_capability is not None:
        return parse_compute_capability(compute_capability)
    return current_device_arch() or lowest_supported_arch()
