"""Operands from NumPy, CuPy and PyTorch behind one small interface.

Inside, host data is a NumPy array and device data a CuPy array (PyTorch tensors are viewed
through DLPack, without copies); results go back to the operand's framework.

Half-precision complex (complex32) exists in PyTorch only. Inside, and in NumPy and CuPy, its
arrays are float16 arrays whose last axis, of length 2 and unit stride, holds (real, imaginary):
a ``Tensor`` with ``pairs`` set reads such an array as complex32 elements (its ``shape`` and
``strides`` leave that axis out).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from typing import Any, Callable

import numpy as np


@functools.lru_cache(maxsize=64)
def dtype_name(dtype: np.dtype) -> str:
    """``dtype.name``, remembered: NumPy builds the name anew on every read (2-4 us, twice in every
    ``FFT.reset_operand``, a tenth of a 16 x 1024 inverse FFT's time).

    >>> dtype_name(np.dtype(np.complex64))
    'complex64'
    """
    return dtype.name


@dataclasses.dataclass
class Tensor:
    array: Any  # numpy.ndarray or cupy.ndarray
    framework: str  # "numpy", "cupy" or "torch"
    device_id: int | None  # None for host memory
    pairs: bool = False  # complex32: ``array`` is float16 with a last axis of (real, imaginary)

    @property
    def on_gpu(self) -> bool:
        return self.device_id is not None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape[:-1] if self.pairs else self.array.shape)

    @property
    def dtype(self) -> str:
        return "complex32" if self.pairs else dtype_name(self.array.dtype)

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides in elements (byte strides that are not whole elements are refused)."""
        item = self.array.dtype.itemsize * (2 if self.pairs else 1)
        strides = self.array.strides[:-1] if self.pairs else self.array.strides
        if any(s % item for s in strides):
            raise ValueError(f"array strides {tuple(strides)} are not multiples of its element size {item}")
        return tuple(s // item for s in strides)

    @property
    def ptr(self) -> int:
        if self.on_gpu:
            return int(self.array.data.ptr)
        return int(self.array.ctypes.data)

    @property
    def xp(self) -> Any:
        if self.on_gpu:
            import cupy

            return cupy
        return np

    def moved(self, array: Any, device_id: int | None) -> "Tensor":
        """This operand's copy ``array`` (on GPU ``device_id``, None: the host), read as this one is."""
        return dataclasses.replace(self, array=array, device_id=device_id)

    def wrap_result(self, array: Any, pairs: bool = False) -> Any:
        """``array`` (NumPy/CuPy) in this operand's framework; ``pairs``: it holds complex32 as
        float16 pairs, which PyTorch gets as a complex32 tensor (NumPy and CuPy as they are)."""
        if self.framework == "torch":
            import torch

            tensor = torch.from_dlpack(array) if self.on_gpu else torch.from_numpy(array)
            return torch.view_as_complex(tensor) if pairs else tensor
        return array


def as_tensor(obj: Any, what: str = "operand") -> Tensor:
    """Wrap a NumPy/CuPy array, a PyTorch tensor or any ``__cuda_array_interface__`` object."""
    if isinstance(obj, np.ndarray):
        if type(obj) is not np.ndarray and isinstance(obj, np.ma.MaskedArray):
            raise TypeError(
                f"{what} is a NumPy masked array: every element would be read and the mask dropped. Pass "
                "x.filled(0) to read masked elements as zeros, or np.ma.getdata(x) to ignore the mask"
            )
        if not obj.dtype.isnative:
            raise TypeError(
                f"{what} has the non-native byte order dtype {obj.dtype.str!r}; FFTs read native-endian data: "
                f"pass x.astype(x.dtype.newbyteorder('='))"
            )
        return Tensor(obj, "numpy", None)
    module = type(obj).__module__.split(".")[0]
    if module == "cupy":
        return Tensor(obj, "cupy", int(obj.device.id))
    if module == "torch":
        name = str(obj.dtype).rsplit(".", 1)[-1]
        if name == "bfloat16":  # neither NumPy, CuPy, numba nor cuFFT has this type
            raise TypeError(
                f"{what} is a PyTorch bfloat16 tensor, a type cuFFT does not transform and NumPy/CuPy cannot "
                "hold; convert it with .to(torch.float16) (half precision) or .to(torch.float32)"
            )
        pairs = name in ("complex32", "chalf")
        if pairs:  # NumPy and CuPy read it as float16 pairs (a view, no copy)
            import torch

            obj = torch.view_as_real(obj)
        if obj.device.type == "cuda":
            import cupy

            return Tensor(cupy.from_dlpack(obj.detach()), "torch", int(obj.device.index or 0), pairs)
        if obj.device.type == "cpu":
            return Tensor(obj.detach().numpy(), "torch", None, pairs)
        raise TypeError(f"{what} is a PyTorch tensor on {obj.device}; expected a CPU or CUDA tensor")
    if hasattr(obj, "__cuda_array_interface__"):
        import cupy

        array = cupy.asarray(obj)
        return Tensor(array, "cupy", int(array.device.id))
    raise TypeError(
        f"{what} of type {type(obj).__name__} is not supported; pass a NumPy or CuPy array, a PyTorch "
        "tensor, or an object exposing __cuda_array_interface__"
    )


def check_writeable(tensor: Tensor) -> None:
    """Refuse a read-only operand of an in-place FFT (a NumPy array with writeable=False), before
    any work: the result would have nowhere to go."""
    array = tensor.array
    if not tensor.on_gpu and not array.flags.writeable:
        raise ValueError(
            "inplace=True writes the result into the operand, but this operand is read-only (its NumPy "
            "flags.writeable is False: a read-only view, memory map or buffer). Pass "
            "a writeable copy (x.copy()), or use inplace=False to get the result in a new array"
        )


def empty_strided(xp: Any, shape: tuple[int, ...], strides: tuple[int, ...], dtype: str, span: int) -> Any:
    """An uninitialised array with the given element strides over a buffer of ``span`` elements
    (complex32: float16 pairs, see the module's docstring)."""
    if dtype == "complex32":
        shape, strides, dtype, span = shape + (2,), tuple(2 * s for s in strides) + (1,), "float16", 2 * span
    if strides == _c_strides(shape):  # the common case, and the cheapest to build
        return xp.empty(shape, dtype=dtype)
    base = xp.empty(max(span, 1), dtype=dtype)
    return _view(base, shape, strides)


def empty_factory(xp: Any, shape: tuple[int, ...], strides: tuple[int, ...], dtype: str,
                  span: int) -> Callable[[], Any]:
    """A function that returns a new ``empty_strided(xp, shape, strides, dtype, span)``, its
    layout decided once: for a dense layout, the array type's own constructor (no Python layer).

    >>> new = empty_factory(np, (2, 3), (3, 1), "complex64", 6)
    >>> a = new()
    >>> a.shape, a.dtype.name, a is new()
    ((2, 3), 'complex64', False)
    """
    if dtype == "complex32":  # float16 pairs
        shape, strides, dtype, span = shape + (2,), tuple(2 * s for s in strides) + (1,), "float16", 2 * span
    dtype_object = np.dtype(dtype)
    if strides == _c_strides(shape):
        return functools.partial(np.empty if xp is np else xp.ndarray, shape, dtype_object)
    return functools.partial(empty_strided, xp, shape, strides, dtype_object, span)


def fill(buffer: Any, array: Any) -> None:
    """Copy ``array`` into ``buffer``; a real array into a complex32 buffer (float16 pairs, one
    axis more) fills the real parts and zeroes the imaginary ones."""
    if buffer.ndim == array.ndim + 1:
        buffer[..., 0] = array
        buffer[..., 1] = 0
    else:
        buffer[...] = array


def flat_view(array: Any, span: int) -> Any:
    """A 1-D view of the ``span`` elements starting at ``array``'s first element."""
    if array.ndim == 1 and array.strides[0] == array.itemsize and array.size >= span:
        return array[:span]
    if array.size == span and array.flags.c_contiguous:  # a reshape is 5x cheaper than a strided view
        return array.reshape(-1)
    return _view(array, (span,), (1,))


def _view(array: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
    item = array.dtype.itemsize
    byte_strides = tuple(s * item for s in strides)
    if type(array).__module__.startswith("cupy"):
        cupy = sys.modules["cupy"]
        return cupy.ndarray(shape, array.dtype, memptr=array.data, strides=byte_strides)
    return np.lib.stride_tricks.as_strided(array, shape=shape, strides=byte_strides)


@functools.lru_cache(maxsize=1024)
def _c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))
