"""Options of an FFT and where it executes."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal

from ._tensor import Tensor

_DEBUG_ENV = "FFTFUSE_DEBUG"


@dataclasses.dataclass
class FFTOptions:
    """Options of an FFT (names follow nvmath-python where it has them).

    fft_type: "C2C", "R2C" or "C2R"; inferred from the operand's dtype when None (C2R must be asked for).
    inplace: overwrite the operand with the result (C2C only).
    last_axis_parity: "even" or "odd", the parity of a C2R output's last axis.
    result_layout: "optimized" (FFT axes innermost) or "natural" (the operand's axis order).
    user_data_copy: allow copying callback data into the layout its offsets walk (else raise).
    debug: run callbacks as plain Python on bounds-checked views, on the CPU (also FFTFUSE_DEBUG=1).
    num_threads: CPU FFT threads (default: all cores).
    float_literals: "element" computes a single-precision callback's Python float literals and
        float globals in single precision (results stay within the element's rounding);
        "double" keeps Python's double precision.
    patient_jit: let cuFFT time its candidate kernels with the callbacks linked in when planning
        (slower planning; see benchmarks/NOTES.md for what it gains).
    device_id: the GPU for host operands executed on the GPU.
    blocking: True waits for the GPU before returning; "auto" waits only for host operands.
    """

    fft_type: str | None = None
    inplace: bool = False
    last_axis_parity: Literal["even", "odd"] = "even"
    result_layout: Literal["optimized", "natural"] = "optimized"
    user_data_copy: bool = True
    debug: bool | None = None
    num_threads: int | None = None
    float_literals: Literal["element", "double"] = "element"
    patient_jit: bool = False
    device_id: int | None = None
    blocking: bool | Literal["auto"] = "auto"

    @classmethod
    def of(cls, options: Any) -> "FFTOptions":
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        if isinstance(options, dict):
            unknown = set(options) - {f.name for f in dataclasses.fields(cls)}
            if unknown:
                raise TypeError(f"unknown FFT options {sorted(unknown)}; see FFTOptions")
            return cls(**options)
        raise TypeError(f"options must be an FFTOptions or a dict, got {type(options).__name__}")

    @property
    def debug_mode(self) -> bool:
        return bool(self.debug) if self.debug is not None else debug_env()


def debug_env() -> bool:
    return os.environ.get(_DEBUG_ENV, "").lower() not in ("", "0", "false", "no", "off")


@dataclasses.dataclass
class ExecutionCUDA:
    device_id: int = 0


@dataclasses.dataclass
class ExecutionCPU:
    num_threads: int | None = None


def execution_target(execution: Any, operand: Tensor, options: FFTOptions) -> str:
    if execution is None:
        target = "cuda" if operand.on_gpu else "cpu"
    elif isinstance(execution, ExecutionCUDA):
        target = "cuda"
    elif isinstance(execution, ExecutionCPU):
        target = "cpu"
    elif isinstance(execution, dict):
        target = str(execution.get("name", "")).lower()
    else:
        target = str(execution).lower()
    if target not in ("cuda", "cpu"):
        raise ValueError(f"execution={execution!r} is not understood; use 'cuda' or 'cpu'")
    if target == "cpu" and operand.on_gpu and not options.debug_mode:
        raise ValueError("execution='cpu' needs a host operand (NumPy); this one is on the GPU")
    return "cpu" if options.debug_mode else target
