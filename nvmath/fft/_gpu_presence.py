"""What a failure to reach the GPU means, asked only once CuPy has failed (nothing on the way
of a working GPU): CuPy's ``cudaErrorInsufficientDriver`` on a machine without an NVIDIA driver
becomes "no CUDA GPU found", with what to do instead."""

from __future__ import annotations

from typing import Any


class NoGPUError(RuntimeError):
    """A GPU execution on a machine where CUDA finds no usable GPU (no NVIDIA GPU or driver).

    Catch it to fall back to the CPU: ``execution="cpu"`` runs the same FFT and callbacks there.
    """


def missing_cupy(what: str, exc: ImportError) -> ImportError:
    """The error for a GPU execution without CuPy installed."""
    return ImportError(f"{what} runs on the GPU through CuPy, which is not installed ({exc}). Install the CuPy of "
                       "your CUDA (e.g. pip install cupy-cuda12x), or run on the CPU with execution='cpu'")


def gpu_failure(exc: BaseException, device_id: int, what: str) -> Exception | None:
    """The error to raise in place of CuPy's ``exc`` when the GPU asked for is not there (no GPU
    at all, or not that many), else None: the GPU exists and ``exc`` stands as it is."""
    if not type(exc).__module__.startswith(("cupy", "cupy_backends")) or "CUDA" not in type(exc).__name__:
        return None
    import cupy

    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
        reason = "CUDA reports 0 devices"
    except Exception as probe:  # noqa: BLE001 - any failure here means the same: no usable GPU
        count, reason = 0, f"CUDA says {probe}"
    if count == 0:
        return NoGPUError(f"{what} needs a CUDA GPU, but no CUDA GPU was found ({reason}). Run on the CPU: pass "
                          "execution='cpu' (NumPy operands run there by default), or run on a machine with an "
                          "NVIDIA GPU and its driver")
    if device_id >= count:
        return ValueError(f"{what} asks for GPU {device_id}, but this machine has {count} "
                          f"(device ids 0 to {count - 1}); pick one with ExecutionCUDA(device_id=...)")
    return None


def describe_execution(execution: Any) -> str:
    """How the user asked for the GPU, for messages: ``execution='cuda'`` and the like."""
    return f"execution={execution!r}" if execution is not None else "a GPU execution"
