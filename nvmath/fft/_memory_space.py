"""Where an operand lives (its memory space: host memory or a GPU) against where its FFT runs
(the execution space), and the copies between them.

The rule is nvmath-python's. An operand in the other space is copied to where the FFT runs when
the FFT is created, or given a new operand by ``reset_operand``, in the order of that call's
stream; the result comes back to the operand's space, framework and device: a host operand run
on a GPU (``TO_GPU``) gets a host result, a GPU operand run on the CPU (``TO_HOST``) a result on
its GPU, copied there in the order of the executing call's stream. With ``inplace=True`` the
result is written back into the operand. The memory space is fixed when the FFT is created
(``check_reset``). Callback data on a GPU is copied to the host for a CPU execution
(``host_copy``, asked by ``_planner.place_data``).

``Crossing`` is decided once per engine (``crossing``); the engine (``_api.FFT``) and the chain
(``_chain.FilteredFFT``) call its methods and hold no rule of their own. Where a result goes
(``ResultPlace``) follows from the route and ``inplace``, and is decided once per plan.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from ._gpu_presence import gpu_failure, missing_cupy
from ._streams import on_stream
from ._tensor import Tensor

SAME, TO_GPU, TO_HOST = "same", "to-gpu", "to-host"


@dataclasses.dataclass(frozen=True)
class Crossing:
    """How an operand reaches its execution space and how the result comes back.

    ``route`` is ``SAME``, ``TO_GPU`` or ``TO_HOST``; ``operand_device`` the operand's GPU (None:
    host memory); ``gpu`` the GPU this FFT touches (where it runs, or, run on the CPU, where its
    operand lives; None: none); ``what`` how the execution was asked for, for messages.
    """

    route: str
    operand_device: int | None
    gpu: int | None
    what: str = "a GPU execution"

    @property
    def crosses(self) -> bool:
        return self.route != SAME

    def inbound(self, tensor: Tensor, stream: Any = None) -> Tensor:
        """``tensor`` (in the operand's space) where the FFT runs: itself, or a copy made there in
        the order of ``stream`` (None: CuPy's current stream) on the GPU of the crossing."""
        if self.route == TO_GPU:
            return to_device(tensor, self.gpu, self.what, stream)
        if self.route == TO_HOST:
            return host_copy(tensor, stream)
        return tensor

    def outbound(self, result: Any, operand: Tensor, stream: Any = None, wait: bool = False,
                 pairs: bool = False) -> Any:
        """``result`` (a NumPy or CuPy array where the FFT ran) in the space and framework of the
        caller's ``operand`` (``pairs``: it holds complex32 as float16 pairs). To a GPU: queued on ``stream`` of the operand's device (the caller's
        next work on that stream sees it), waited for where ``wait``. From a GPU: complete."""
        if self.route == SAME:
            return operand.wrap_result(result, pairs)
        import cupy

        with cupy.cuda.Device(self.gpu), on_stream(stream) as s:
            moved = result.get() if self.route == TO_GPU else cupy.asarray(result)
            if wait and self.route == TO_HOST:
                s.synchronize()
        return operand.wrap_result(moved, pairs)

    def write_back(self, result: Any, operand: Tensor, stream: Any = None, wait: bool = False) -> None:
        """An in-place FFT's ``result`` (where it ran) written into the caller's ``operand``."""
        if self.route == SAME:
            return
        import cupy

        with cupy.cuda.Device(self.gpu), on_stream(stream) as s:
            if self.route == TO_GPU:
                operand.array[...] = result.get()
            else:
                operand.array[...] = cupy.asarray(result)
                if wait:
                    s.synchronize()

    def settle(self, stream: Any = None) -> None:
        """For a GPU operand run on the CPU: wait for the work queued on ``stream`` of its device
        (None: CuPy's current stream), so that copies of GPU data made later on another stream
        see it. Nothing for the other routes."""
        if self.route != TO_HOST:
            return
        import cupy

        with cupy.cuda.Device(self.gpu), on_stream(stream) as s:
            s.synchronize()

    def check_reset(self, tensor: Tensor) -> None:
        """``reset_operand``'s operand must be in the planned operand's memory space and device:
        as in nvmath-python, an FFT keeps them (its copies and result are planned for them)."""
        if tensor.device_id == self.operand_device:
            return
        raise ValueError(
            f"reset_operand needs an operand in {space_name(self.operand_device)}, where this FFT's operand was; "
            f"got one in {space_name(tensor.device_id)}. An FFT keeps its operand's memory space and device "
            "(the copies to where it runs and its result's way back are planned for them): create a new FFT "
            "for this operand (execution= still chooses where it runs)"
        )


class ResultPlace(enum.Enum):
    """Where ``execute``'s result goes (``result_place``), decided once by the planner."""

    OPERAND = "in place where the operand lies: the caller's operand itself, overwritten"
    WRITE_BACK = "in place across memory spaces: written back into the caller's operand"
    WRAP = "a new array where the operand lies, in the operand's framework"
    MOVE = "a new array, moved to the operand's memory space and framework"


def result_place(route: str, inplace: bool) -> ResultPlace:
    """The ``ResultPlace`` of an FFT whose operand takes ``route`` to where it runs.

    >>> result_place(SAME, False).name, result_place(TO_GPU, True).name
    ('WRAP', 'WRITE_BACK')
    """
    if inplace:
        return ResultPlace.OPERAND if route == SAME else ResultPlace.WRITE_BACK
    return ResultPlace.WRAP if route == SAME else ResultPlace.MOVE


def crossing(tensor: Tensor, target: str, execution_gpu: int, what: str = "a GPU execution") -> Crossing:
    """The ``Crossing`` of ``tensor`` run on ``target`` ("cuda" or "cpu"); ``execution_gpu`` is the
    GPU a host operand runs on (``_planner.execution_device``)."""
    if target == "cuda":
        if tensor.on_gpu:
            return Crossing(SAME, tensor.device_id, tensor.device_id, what)
        return Crossing(TO_GPU, None, execution_gpu, what)
    if tensor.on_gpu:
        return Crossing(TO_HOST, tensor.device_id, tensor.device_id, what)
    return Crossing(SAME, None, None, what)


def space_name(device_id: int | None) -> str:
    """A memory space in words.

    >>> space_name(None), space_name(1)
    ('host memory (a NumPy array or CPU tensor)', 'GPU 1 (a CuPy array or CUDA tensor there)')
    """
    if device_id is None:
        return "host memory (a NumPy array or CPU tensor)"
    return f"GPU {device_id} (a CuPy array or CUDA tensor there)"


def host_copy(tensor: Tensor, stream: Any = None) -> Tensor:
    """A host copy of GPU ``tensor``, read in the order of ``stream`` on its device (None: CuPy's
    current stream there): it sees the work queued before it and is complete on return."""
    import cupy

    with cupy.cuda.Device(tensor.device_id), on_stream(stream):
        return tensor.moved(tensor.array.get(), None)


def to_device(tensor: Tensor, device_id: int, what: str = "a GPU execution", stream: Any = None) -> Tensor:
    """A copy of host ``tensor`` on GPU ``device_id``, queued on ``stream`` there (None: CuPy's
    current stream), where the FFT that reads it is launched; a missing CuPy or GPU raises the
    error that says what to do instead."""
    try:
        import cupy

        with cupy.cuda.Device(device_id), on_stream(stream):
            return tensor.moved(cupy.asarray(tensor.array), device_id)
    except ImportError as exc:
        raise missing_cupy(what, exc) from exc
    except Exception as exc:
        failure = gpu_failure(exc, device_id, what)
        if failure is None:
            raise
        raise failure from exc
