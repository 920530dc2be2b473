"""What an executor is: the interface the engine (``_api.FFT``) runs every planned FFT through,
and the call-arguments object each run receives.

Two implement it: the cuFFT executor (``_gpu.GpuPlan``, LTO callbacks linked into cuFFT's
kernels) and the CPU executor (``_cpu.CpuExecutor``, ducc0 and the compiled loops); the planner
names which one a ``Plan`` uses (``Plan.executor``). A device-side FFT executor is the next.

A run's values travel in one ``CallArgs``: the buffers, the direction, the stream and the
callbacks' ``CallData``. They are the executor's own kind: device pointers, the stream handle and
packed parameter bytes on the GPU; NumPy arrays, no stream and parameter values on the CPU. The
``CallData`` of a planned FFT is made once, when its data is laid out (``_binding.Binding``), and
again only when ``set_params`` changes a value; a stateless rerun makes one of its call's arrays.
The executor never lays out data. It writes ``call.out``; on the CPU, given none, it returns a
new array of the output layout, its FFT engine's own where the engine makes one (the epilog
applied in place on it: no extra buffer, no copy).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

from ._layout import FFTProblem


class CallData(NamedTuple):
    """The callbacks' values of a run: data (a device pointer, or a 1-D host array; 0 or None
    where none) and runtime parameters (packed bytes on the GPU, a tuple of values on the CPU).
    The order is that of the GPU's slot records: each kind's pointer, then its parameters."""

    prolog_data: Any
    prolog_params: Any
    epilog_data: Any
    epilog_params: Any


GPU_NO_DATA = CallData(0, b"", 0, b"")
CPU_NO_DATA = CallData(None, (), None, ())


class CallArgs:
    """The per-call values one ``run`` receives: made for each run, never changed.

    ``inp`` and ``out`` are the buffers (device pointers on the GPU, NumPy arrays on the CPU),
    ``direction`` "forward" or "inverse", ``stream`` the stream handle (None on the CPU), ``data``
    the callbacks' ``CallData`` (on the GPU, which reads it by position, a stateless rerun passing
    its data pointers alone gives a plain tuple of its values). A slots class: one is made per
    call, in about 0.15 us."""

    __slots__ = ("inp", "out", "direction", "stream", "data")

    def __init__(self, inp: Any, out: Any, direction: str, stream: Any, data: CallData):
        self.inp = inp
        self.out = out
        self.direction = direction
        self.stream = stream
        self.data = data

    def on(self, inp: Any, out: Any) -> "CallArgs":
        """The same call on other buffers (an executor that runs another one on copies)."""
        return CallArgs(inp, out, self.direction, self.stream, self.data)

    def __repr__(self) -> str:
        return f"CallArgs({self.inp!r}, {self.out!r}, {self.direction!r}, {self.stream!r}, {self.data!r})"


@runtime_checkable
class Executor(Protocol):
    """Runs one planned problem, as often as asked, until freed."""

    problem: FFTProblem

    def run(self, call: CallArgs) -> Any:
        """Transform ``call.inp`` (layout ``problem.input``) into ``call.out`` (layout
        ``problem.output``) with the callbacks' data and runtime parameters of ``call.data``;
        returns the result (None on the GPU, where ``call.out`` is always given)."""

    def release(self) -> None:
        """Give back what a run draws and the next run draws again (the GPU's work area)."""

    def free(self) -> None:
        """Give back everything; the executor cannot run again."""
