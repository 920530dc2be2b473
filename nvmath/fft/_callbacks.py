"""What users pass as ``prolog=`` / ``epilog=``, normalised, and their data laid out for offsets.

Accepted: ``{"ltoir": bytes, "data": int pointer}`` (nvmath-python's form), a Python function,
``{"fn": f, "data": array}``, CUDA C++ source ``{"source": str, "data": array}`` (optionally
``"name"``: the function to use), or a ``DeviceCallable`` holding a function or LTO-IR.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from ._layout import Layout, data_layout_matches
from ._tensor import Tensor, as_tensor, empty_strided, flat_view


@dataclasses.dataclass
class DeviceCallable:
    """A prolog or epilog: LTO-IR (``ltoir``) or a Python function (``fn``), and its user data.

    ``data`` is an array (any framework), or, with ``ltoir``, a raw device pointer (int).
    ``size`` is the LTO-IR's length in bytes (taken from ``ltoir``; checked when given).

    >>> DeviceCallable(ltoir=b"\\x00" * 8).size
    8
    >>> DeviceCallable(ltoir="test")
    Traceback (most recent call last):
    ...
    ValueError: DeviceCallable.ltoir must be bytes (from compile_prolog or compile_epilog), got str
    """

    ltoir: bytes | None = None
    size: int | None = None  # nvmath-python's field order: (ltoir, size, data)
    data: Any = None
    fn: Callable | None = None

    def __post_init__(self) -> None:
        if self.ltoir is None:
            return
        if isinstance(self.ltoir, int) and not isinstance(self.ltoir, bool):
            raise ValueError("DeviceCallable.ltoir as a pointer is not supported: pass the LTO-IR as bytes")
        if not isinstance(self.ltoir, (bytes, bytearray)):
            raise ValueError(f"DeviceCallable.ltoir must be bytes (from compile_prolog or compile_epilog), "
                            f"got {type(self.ltoir).__name__}")
        if self.size is not None and self.size != len(self.ltoir):
            raise ValueError(f"DeviceCallable.size={self.size} but ltoir holds {len(self.ltoir)} bytes")
        self.size = len(self.ltoir)


@dataclasses.dataclass(frozen=True)
class CallbackSpec:
    kind: str
    fn: Callable | None
    ltoir: bytes | None
    data: Tensor | None
    pointer: int | None  # a raw user_info pointer given with LTO-IR
    source: str | None = None  # CUDA C++ source of the callback
    source_name: str | None = None  # the function in ``source`` to use (None: the only candidate)

    @property
    def name(self) -> str:
        if self.source is not None:
            return f"{self.kind} (CUDA C++{', ' + repr(self.source_name) if self.source_name else ''})"
        if self.fn is not None:
            return f"{self.kind} {getattr(self.fn, '__qualname__', repr(self.fn))!r}"
        return f"{self.kind} (LTO-IR, {len(self.ltoir or b'')} bytes)"


_KEYS = {"ltoir", "data", "fn", "size", "source", "name"}


def callback_spec(value: Any, kind: str) -> CallbackSpec | None:
    """Normalise a ``prolog=``/``epilog=`` argument (None stays None)."""
    if value is None:
        return None
    if isinstance(value, DeviceCallable):
        value = {"ltoir": value.ltoir, "data": value.data, "fn": value.fn}
    elif isinstance(value, dict) and "ltoir" in value:
        value = dict(value)
        checked = DeviceCallable(ltoir=value["ltoir"], size=value.pop("size", None))  # type and size checks
        value["ltoir"] = checked.ltoir
    elif callable(value):
        value = {"fn": value}
    elif isinstance(value, (bytes, bytearray)):
        value = {"ltoir": bytes(value)}
    if not isinstance(value, dict):
        raise TypeError(
            f"{kind} must be a Python function, a dict {{'fn': f, 'data': array}}, "
            f"{{'source': cuda_cpp, 'data': array}} or {{'ltoir': bytes, 'data': pointer}}, or a DeviceCallable; "
            f"got {type(value).__name__}"
        )
    unknown = set(value) - _KEYS
    if unknown:
        raise TypeError(f"{kind} has unknown keys {sorted(unknown)}; expected some of {sorted(_KEYS)}")
    fn, ltoir, data = value.get("fn"), value.get("ltoir"), value.get("data")
    source, source_name = value.get("source"), value.get("name")
    if sum(v is not None for v in (fn, ltoir, source)) != 1:
        raise TypeError(
            f"{kind} needs exactly one of 'fn' (a Python function), 'source' (CUDA C++ text) or 'ltoir' (bytes)"
        )
    if source is not None and not isinstance(source, str):
        raise TypeError(f"{kind}['source'] must be CUDA C++ source text (str), got {type(source).__name__}")
    if source_name is not None and (source is None or not isinstance(source_name, str)):
        raise TypeError(f"{kind}['name'] names the function in {kind}['source'] (a str, with 'source' only)")
    if fn is not None and not callable(fn):
        raise TypeError(f"{kind}['fn'] must be callable, got {type(fn).__name__}")
    pointer = None
    tensor = None
    if isinstance(data, int) and not isinstance(data, bool):
        if ltoir is None:
            raise TypeError(
                f"{kind}: a raw pointer as data needs LTO-IR compiled for its type; with a Python "
                "function or CUDA C++ source pass the data as an array so its type and layout are known"
            )
        pointer = data
    elif data is not None:
        tensor = as_tensor(data, what=f"{kind} data")
    return CallbackSpec(kind, fn, bytes(ltoir) if ltoir is not None else None, tensor, pointer, source, source_name)


def lay_out_user_data(spec: CallbackSpec, target: Layout, *, allow_copy: bool = True) -> Any:
    """A 1-D array in which element ``offset`` is the user's element for that offset.

    Data of the buffer's shape is used where it lies when its strides match the offsets, else
    copied into a buffer with the offsets' strides. Other data must hold at least ``target.span``
    elements, read flat.
    """
    data = spec.data
    assert data is not None
    span = target.span
    if data_layout_matches(data.shape, data.strides, target):
        return flat_view(data.array, span)
    if data.shape == target.shape:
        if not allow_copy:
            raise ValueError(
                f"{spec.name}: its data has the {'input' if spec.kind == 'prolog' else 'result'} shape "
                f"{data.shape} but strides {data.strides}, while the callback's offsets walk strides "
                f"{target.strides}; pass data with those strides, or allow the copy (user_data_copy=True)"
            )
        laid = empty_strided(data.xp, target.shape, target.strides, data.dtype, span)
        laid[...] = data.array
        return flat_view(laid, span)
    flat = data.array.reshape(-1) if _is_contiguous(data) else None
    if flat is None or flat.size < span:
        side = "input" if spec.kind == "prolog" else "result"
        raise ValueError(
            f"{spec.name}: data of shape {data.shape} does not fit the offsets, which reach {span - 1} "
            f"({side} shape {target.shape}, strides {target.strides}). Pass data of the {side} shape, or "
            f"a contiguous array of at least {span} elements indexed by offset"
        )
    return flat


def _is_contiguous(t: Tensor) -> bool:
    flags = t.array.flags
    return bool(flags["C_CONTIGUOUS"]) if hasattr(flags, "__getitem__") else bool(flags.c_contiguous)
