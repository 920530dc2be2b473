"""What an executor is: the interface the engine (``_api.FFT``) runs every planned FFT through.

Two implement it: the cuFFT executor (``_gpu.GpuPlan``, LTO callbacks linked into cuFFT's
kernels) and the CPU executor (``_cpu.CpuExecutor``, ducc0 and the compiled loops); the planner
names which one a ``Plan`` uses (``Plan.executor``). A device-side FFT executor is the next.

The arguments of ``run`` are the executor's own: device pointers, the stream handle and packed
parameter bytes on the GPU; NumPy arrays, no stream and parameter values on the CPU. The engine
prepares them (``_api``); the executor neither lays out data nor allocates outputs.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

from ._layout import FFTProblem


@runtime_checkable
class Executor(Protocol):
    """Runs one planned problem, as often as asked, until freed."""

    problem: FFTProblem

    def prepare(self, direction: str, prolog_reads: Any = None, epilog_reads: Any = None) -> Callable[..., None] | None:
        """A faster ``run(inp, out, prolog_data, epilog_data)`` for repeated runs in ``direction``
        with data read as ``*_reads`` say ((offset in bytes, elements) or None), decided once; None
        where there is none and ``run`` is the way."""

    def run(self, inp: Any, out: Any, direction: str, stream: Any, prolog_data: Any, epilog_data: Any,
            prolog_params: Any = ..., epilog_params: Any = ...) -> None:
        """Transform ``inp`` (layout ``problem.input``) into ``out`` (layout ``problem.output``)
        with the callbacks' data and runtime parameters of this run."""

    def release(self) -> None:
        """Give back what a run draws and the next run draws again (the GPU's work area)."""

    def free(self) -> None:
        """Give back everything; the executor cannot run again."""
