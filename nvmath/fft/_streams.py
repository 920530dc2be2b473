"""CUDA streams as the public calls take them (CuPy or PyTorch streams, a raw ``cudaStream_t``),
made CuPy's current stream for the work of one call."""

from __future__ import annotations

from typing import Any


class _Current:
    """The context of CuPy's current stream: nothing to switch."""

    def __init__(self, stream: Any):
        self.stream = stream

    def __enter__(self) -> Any:
        return self.stream

    def __exit__(self, *exc: Any) -> None:
        return None


class _StreamHandle:
    """A raw cudaStream_t offered through the CUDA stream protocol."""

    def __init__(self, pointer: int):
        self.pointer = pointer

    def __cuda_stream__(self) -> tuple[int, int]:
        return (0, self.pointer)


def _external_stream(cupy: Any, pointer: int) -> Any:
    from_external = getattr(cupy.cuda.Stream, "from_external", None)  # CuPy 14+
    if from_external is not None:
        return from_external(_StreamHandle(pointer))
    return cupy.cuda.ExternalStream(pointer)


def check_stream(stream: Any) -> Any:
    """``stream`` unchanged if it is one ``on_stream`` takes (checked where no GPU is used too)."""
    if stream is None or hasattr(stream, "ptr") or hasattr(stream, "cuda_stream"):
        return stream
    if isinstance(stream, int) and not isinstance(stream, bool):
        if stream < 0:
            raise ValueError(f"stream={stream} is not a cudaStream_t; pass a CuPy or PyTorch stream or a handle >= 0")
        return stream
    raise TypeError(f"stream of type {type(stream).__name__} is not understood; pass a CuPy or PyTorch stream "
                    "or a cudaStream_t as int")


def on_stream(stream: Any) -> Any:
    """A context in which ``stream`` (CuPy, PyTorch, a raw cudaStream_t int, or None for CuPy's
    current stream) is CuPy's current stream; it yields the CuPy stream object."""
    import cupy

    if stream is None:
        return _Current(cupy.cuda.get_current_stream())
    if isinstance(stream, cupy.cuda.Stream):
        return stream
    if isinstance(stream, int) and not isinstance(stream, bool):
        return _external_stream(cupy, check_stream(stream))
    pointer = getattr(stream, "cuda_stream", None)  # PyTorch
    if pointer is not None:
        return _external_stream(cupy, int(pointer))
    raise TypeError(f"stream of type {type(stream).__name__} is not understood; pass a CuPy or PyTorch stream "
                    "or a cudaStream_t as int")
