"""The executions a feature test runs on, behind one interface (the ``execution`` fixture).

- ``cpu``: NumPy operands, the CPU executor (compiled callbacks).
- ``debug``: NumPy operands, the debug mode (callbacks as plain Python on checked views).
- ``fake_gpu``: the GPU code path with CuPy and cuFFT faked (``benchmarks/fake_gpu.py``):
  planning, compiling to LTO-IR, the data slots and the launch are real, the FFT is not computed.
  ``check`` then verifies what the call handed cuFFT (one launch into the result's buffer, of the
  right shape and precision) instead of the numbers.
- ``gpu``: CuPy operands on the GPU (marked ``gpu``; skipped without one).

A test writes ``execution.put(host)`` for each operand or data array, passes
``options=execution.options`` and ends with ``execution.check(got, want, dtype)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from helpers import assert_close, precision_of


class Execution:
    def __init__(self, name: str, *, fake: Any = None, cupy: Any = None):
        self.name = name
        self.fake = fake  # the FakeGpu in place (fake_gpu only)
        self._cupy = cupy
        self._launches_seen = 0

    def __repr__(self) -> str:
        return f"Execution({self.name!r})"

    @property
    def on_gpu(self) -> bool:
        return self.name in ("fake_gpu", "gpu")

    @property
    def computes(self) -> bool:
        """Whether results are numbers to compare (not on the fake GPU, whose cuFFT records)."""
        return self.name != "fake_gpu"

    @property
    def options(self) -> dict | None:
        """The ``options=`` of a call on this execution."""
        return {"debug": True} if self.name == "debug" else None

    def put(self, host: Any) -> Any:
        """``host`` (a NumPy array) where this execution's operands live."""
        if self.name == "gpu":
            return self._cupy.asarray(host)
        if self.name == "fake_gpu":
            import sys

            return sys.modules["cupy"].asarray(np.asarray(host))
        return host

    def array_type(self) -> type:
        if self.name == "gpu":
            return self._cupy.ndarray
        if self.name == "fake_gpu":
            import sys

            return sys.modules["cupy"].ndarray
        return np.ndarray

    def check(self, got: Any, want: Any, dtype: Any = None, *, rtol: float | None = None) -> None:
        """``got`` (this execution's result) against the float64 reference ``want``.

        On the fake GPU: a device array of ``want``'s shape and of ``dtype``'s precision, written by
        a new cuFFT launch whose output is that array's buffer."""
        want = np.asarray(want)
        assert isinstance(got, self.array_type()), f"{type(got).__name__}, expected {self.array_type().__name__}"
        if self.computes:
            assert_close(got, want, dtype, rtol=rtol)
            return
        assert tuple(got.shape) == want.shape, f"shape {tuple(got.shape)}, expected {want.shape}"
        if dtype is not None:
            assert precision_of(got.dtype) == precision_of(dtype), f"{got.dtype} for a {np.dtype(dtype)} operand"
        launches = self.fake.launches[self._launches_seen:]
        self._launches_seen = len(self.fake.launches)
        assert launches, "no cuFFT launch for this call"
        assert launches[-1].output == got.data.ptr, "the last launch did not write the result"
