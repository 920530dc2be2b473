"""Options of an FFT and where it executes."""

from __future__ import annotations

import dataclasses
import enum
import logging
import numbers
import os
from typing import Any, Callable, Literal, Union

import numpy as np

from fftfuse_compiler.dtypes import single_precision_literals
from nvmath.memory import BaseCUDAMemoryManager

from ._tensor import Tensor

_DEBUG_ENV = "FFTFUSE_DEBUG"

FFTType = Literal["C2C", "R2C", "C2R"]
Norm = Literal["backward", "ortho", "forward"]


class FFTDirection(enum.IntEnum):
    """The sign of the exponent: ``FORWARD`` (-1) or ``INVERSE`` (+1), as cuFFT numbers them.

    >>> FFTDirection.INVERSE == 1, direction_name("FORWARD"), direction_name(1)
    (True, 'forward', 'inverse')
    """

    FORWARD = -1
    INVERSE = 1


DirectionLike = Union[FFTDirection, Literal["forward", "inverse", "FORWARD", "INVERSE", -1, 1]]


def direction_name(direction: Any) -> str:
    """``"forward"`` or ``"inverse"`` for an ``FFTDirection``, its name (any case) or -1 / +1."""
    if isinstance(direction, str):
        name = direction.lower()
        if name in ("forward", "inverse"):  # the literals, not the new string: execute compares by identity
            return "forward" if name == "forward" else "inverse"
    elif isinstance(direction, int) and not isinstance(direction, bool) and direction in (-1, 1):
        return "forward" if direction == -1 else "inverse"
    raise ValueError(
        f"direction={direction!r} is not understood; pass FFTDirection.FORWARD / INVERSE, "
        "'forward' / 'inverse' (any case), or -1 / 1"
    )


@dataclasses.dataclass
class FFTOptions:
    """Options of an FFT (names follow nvmath-python where it has them).

    fft_type: "C2C", "R2C" or "C2R"; inferred from the operand's dtype when None (C2R must be asked for).
        With ``fft``/``ifft`` it picks the type and the function the direction (``ifft`` with "C2R"
        is a C2R transform; R2C runs forward only, C2R inverse only); ``rfft``/``irfft`` take their own.
    inplace: overwrite the operand with the result (C2C only).
    last_axis_parity: "even" or "odd", the parity of a C2R output's last axis.
    result_layout: "optimized" (FFT axes innermost) or "natural" (the operand's axis order).
    user_data_copy: allow copying callback data into the layout its offsets walk (else raise).
    debug: run callbacks as plain Python on bounds-checked views, on the CPU (also FFTFUSE_DEBUG=1).
    num_threads: CPU FFT threads (default: all cores).
    cpu_engine: which FFT engine runs each CPU FFT call: "auto" measures the candidates (ducc0,
        ducc0 in chunks of 8 rows, ducc0 into a padded buffer, scipy.fft, and FFTW where pyFFTW
        is installed: ``pip install pyfftw``, GPL-licensed, never a dependency) once per machine and
        problem at planning, a few ms, and keeps the winner in the cache next to the compiled
        loops; "rules" never measures (ducc0: in chunks for single-precision rows a power of two
        of 4-16 KiB apart, into a padded buffer for 2-D columns so apart); an engine's name
        forces it. None: ``$FFTFUSE_CPU_ENGINE``, else "auto". See nvmath.fft._cpu_engines.
    float_literals: "element" computes a single-precision callback's Python float literals and
        float globals in single precision (results stay within the element's rounding);
        "double" keeps Python's double precision.
    patient_jit: let cuFFT time its candidate kernels with the callbacks linked in when planning
        (slower planning; see benchmarks/NOTES.md for what it gains).
    device_id: the GPU for host operands executed on the GPU (prefer ``ExecutionCUDA(device_id=)``).
    blocking: True waits for the GPU before returning; "auto" waits only for host operands.
    logger: where this FFT's events go (plans built or reused, callbacks compiled or found in the
        cache) instead of ``fftfuse.fft``; the compiler's own stay on ``fftfuse.compiler``.
    allocator: draws the cuFFT workspace of GPU plans: an object with ``memalloc(size)``
        (``nvmath.memory.BaseCUDAMemoryManager``); None: CuPy's memory pool.
    """

    fft_type: FFTType | None = None
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
    logger: logging.Logger | None = None
    allocator: BaseCUDAMemoryManager | None = None
    cpu_engine: Literal["auto", "rules", "ducc0", "ducc0-chunks", "ducc0-padded", "scipy", "fftw"] | None = None

    def __post_init__(self) -> None:
        _one_of("fft_type", self.fft_type, (None, "C2C", "R2C", "C2R"))
        _one_of("last_axis_parity", self.last_axis_parity, ("even", "odd"))
        _one_of("result_layout", self.result_layout, ("optimized", "natural"))
        _one_of("float_literals", self.float_literals, ("element", "double"))
        _one_of("cpu_engine", self.cpu_engine, (None, "auto", "rules", "ducc0", "ducc0-chunks", "ducc0-padded",
                                                 "scipy", "fftw"))
        _one_of("blocking", self.blocking, (True, False, "auto"))
        for name in ("inplace", "user_data_copy", "patient_jit") + (("debug",) if self.debug is not None else ()):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"FFTOptions.{name} must be True or False, got {getattr(self, name)!r}")
        _count("num_threads", self.num_threads, 1)
        _count("device_id", self.device_id, 0)
        if self.logger is not None and not isinstance(self.logger, (logging.Logger, logging.LoggerAdapter)):
            raise TypeError(f"FFTOptions.logger must be a logging.Logger (e.g. logging.getLogger('myapp')) or None, "
                            f"got {type(self.logger).__name__} {self.logger!r}")

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

    def single_literals(self, element_dtype: str) -> bool:
        """Whether Python float literals and parameters of a callback on ``element_dtype`` are
        float32 (``float_literals="element"`` on single-precision elements).

        >>> FFTOptions().single_literals("complex64"), FFTOptions(float_literals="double").single_literals("float32")
        (True, False)
        """
        return single_precision_literals(self.float_literals, element_dtype)


def _one_of(name: str, value: Any, allowed: tuple) -> None:
    # `is` for True/False: 1 == True would pass as blocking=True
    if not any(value is a or (isinstance(a, str) and value == a) for a in allowed):
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def _count(name: str, value: Any, least: int) -> None:
    """``value`` is None or an integer >= ``least`` (1 or 0)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        kind = "a positive integer" if least == 1 else "a non-negative integer"
        raise ValueError(f"{name} must be {kind} (or None), got {value!r}")


def _debug_env_reader() -> Callable[[], bool]:
    """``debug_env``: a look-up of FFTFUSE_DEBUG in ``os.environ`` that costs tens of nanoseconds
    (one call where it is unset): the stateless hot path asks on every call, and
    ``os.environ.get`` of an unset name raises and catches a KeyError inside (over a
    microsecond). CPython's ``os.environ`` keeps its values in the dict ``_data`` under
    ``encodekey(name)``; where that is not so, ``os.environ.get`` answers."""
    try:
        data, key = os.environ._data, os.environ.encodekey(_DEBUG_ENV)
        decode = os.environ.decodevalue
    except AttributeError:
        data = None
    if type(data) is not dict:
        return lambda: _asks_debug(os.environ.get(_DEBUG_ENV))

    def debug_env() -> bool:
        """Whether FFTFUSE_DEBUG asks for the debug mode (read on every call: it may change)."""
        value = data.get(key)
        return value is not None and _asks_debug(decode(value))

    return debug_env


def _asks_debug(value: str | None) -> bool:
    return value is not None and value.lower() not in ("", "0", "false", "no", "off")


debug_env = _debug_env_reader()


@dataclasses.dataclass
class ExecutionCUDA:
    """Execute on a GPU; ``device_id`` is the GPU for host operands (default 0)."""

    name: Literal["cuda"] = dataclasses.field(default="cuda", init=False)
    device_id: int | None = None

    def __post_init__(self) -> None:
        _count("ExecutionCUDA.device_id", self.device_id, 0)


@dataclasses.dataclass
class ExecutionCPU:
    """Execute on the CPU (ducc0 + numba) with ``num_threads`` FFT threads (default: all cores); a GPU
    operand is copied to the host, and its result back to its GPU."""

    name: Literal["cpu"] = dataclasses.field(default="cpu", init=False)
    num_threads: int | None = None

    def __post_init__(self) -> None:
        _count("ExecutionCPU.num_threads", self.num_threads, 1)


Execution = Union[ExecutionCUDA, ExecutionCPU, Literal["cuda", "cpu"], dict]


def cpu_threads(execution: Any, options: FFTOptions) -> int | None:
    """The CPU FFT's thread count: ``ExecutionCPU(num_threads=)`` first, then the options'."""
    if isinstance(execution, ExecutionCPU) and execution.num_threads is not None:
        return execution.num_threads
    if isinstance(execution, dict) and execution.get("num_threads") is not None:
        return int(execution["num_threads"])
    return options.num_threads


def execution_target(execution: Any, operand: Tensor, options: FFTOptions) -> str:
    """Where the FFT runs, "cuda" or "cpu": the execution asked for, else the operand's memory
    space; the debug mode runs on the host. Either space takes an operand of either memory space
    (``_memory_space`` copies it across)."""
    if execution is None:
        target = "cuda" if operand.on_gpu else "cpu"
    elif isinstance(execution, ExecutionCUDA):
        target = "cuda"
    elif isinstance(execution, ExecutionCPU):
        target = "cpu"
    elif isinstance(execution, dict):
        unknown = set(execution) - {"name", "device_id", "num_threads"}
        if unknown:
            raise TypeError(f"execution has unknown keys {sorted(unknown)}; expected 'name' and 'device_id' "
                            "(cuda) or 'num_threads' (cpu)")
        target = str(execution.get("name", "")).lower()
        _count("execution['device_id']", execution.get("device_id"), 0)
        _count("execution['num_threads']", execution.get("num_threads"), 1)
    elif isinstance(execution, str):
        target = execution.lower()
    else:
        target = ""
    if target not in ("cuda", "cpu"):
        raise ValueError(f"execution={execution!r} is not understood; use 'cuda' or 'cpu'")
    return "cpu" if options.debug_mode else target
