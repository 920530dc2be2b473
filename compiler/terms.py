"""Array terms: what a value-form callback receives besides its element, found from cuFFT's offset.

cuFFT gives a callback only ``offset``, the element's position in the buffer it walks. The planner
knows that buffer's layout (shape and element strides, in the axis order of the array the user
sees), so the generated wrapper can turn the offset into

* the element's **index** in that array, for the index forms ``f(x, i, j)``;
* the position of the **user-data element** of data that broadcasts to the array (an ``(N,)``
  filter over a ``(B, N)`` batch is read at ``j``, with no full-size copy);

and read **runtime parameters** (keyword-only parameters) from the callback's slot.

The plan is specialised per layout anyway, so extents and strides are compile-time constants of
the wrapper and the compiler turns each division into a multiply and shift (a mask for powers of
two). Only the indices a callback reads, or its data needs, are computed; an offset that fits 32
bits is decoded in 32-bit arithmetic. ``Terms.key`` is the part of the cache key these choices
add: the generated arithmetic itself, so two layouts that decode alike share one artifact, and a
callback with no terms keeps the key it had without them.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

#: Bytes of the data pointer at the start of a callback's slot; parameters follow it.
POINTER_BYTES = 8


@dataclasses.dataclass(frozen=True)
class Terms:
    """How one callback's extra arguments are computed; see the module docstring.

    ``shape``/``strides``: the layout cuFFT walks (strides in elements), in the user's axis order.
    ``index``: per axis, whether the callback reads that index (empty: not an index form).
    ``data``: per axis, the user data's element stride (0 where it broadcasts); None when the data
    is read at ``offset`` itself (it is laid out like the buffer, or there is none).
    ``params``: (name, dtype name) of each runtime parameter, in slot order.

    >>> t = Terms((4, 8), (8, 1), index=(False, True), data=(0, 1))
    >>> print(t.key())
    o = _U(offset); u1 = o % _U(8); i1 = _I(u1) | d[u1] | 32
    """

    shape: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    index: tuple[bool, ...] = ()
    data: tuple[int, ...] | None = None
    params: tuple[tuple[str, str], ...] = ()

    # -- what is decoded ---------------------------------------------------------------------
    def _needed(self) -> list[int]:
        wanted = [k for k in range(len(self.shape)) if (self.index and self.index[k]) or (self.data and self.data[k])]
        return [k for k in wanted if self.shape[k] > 1]  # a length-1 axis has index 0

    @property
    def width(self) -> int:
        """Bits of the decoding arithmetic: 32 when every offset fits."""
        reach = max(_span(self.shape, self.strides), self.data_span or 0)
        return 32 if reach < 1 << 32 else 64

    @property
    def data_span(self) -> int | None:
        """Elements the user data must hold when read at broadcast positions (None: at offset)."""
        if self.data is None:
            return None
        return _span(self.shape, self.data)

    def decode(self) -> list[str]:
        """Lines computing ``u<k>`` (unsigned, ``_U``) and ``i<k>`` (``_I``, int64) for the axes
        needed. Constants are spelled ``_U(n)``: typed like the offset, and folded."""
        needed = self._needed()
        if not needed:
            return []
        live = sorted((k for k in range(len(self.shape)) if self.shape[k] > 1), key=lambda k: (-self.strides[k], k))

        def const(value: int) -> str:
            return f"_U({value})"

        lines = ["o = _U(offset)"]
        chained = all(self.strides[a] % self.strides[b] == 0 for a, b in zip(live, live[1:]))
        if chained:
            # Each stride divides the next outer one: an index is (o // stride) % ratio, alone.
            for k in needed:
                p = live.index(k)
                s = self.strides[k]
                expr = "o" if s == 1 else f"o // {const(s)}"
                if p:
                    ratio = self.strides[live[p - 1]] // s
                    expr = f"{expr} % {const(ratio)}" if s == 1 else f"({expr}) % {const(ratio)}"
                lines.append(f"u{k} = {expr}")
        else:  # peel axes from the outermost down to the deepest one needed
            rest = "o"
            for p, k in enumerate(live[: max(live.index(k) for k in needed) + 1]):
                s = self.strides[k]
                lines.append(f"u{k} = {rest} // {const(s)}")
                lines.append(f"r{p} = {rest} - u{k} * {const(s)}")
                rest = f"r{p}"
        for k in needed:
            if self.index and self.index[k]:
                lines.append(f"i{k} = _I(u{k})")
        return lines

    def index_args(self) -> list[str]:
        """The index arguments passed to the user's function, one per axis (0 where not read)."""
        needed = set(self._needed())
        return [f"i{k}" if self.index[k] and k in needed else "_ZERO" for k in range(len(self.shape))]

    def data_position(self) -> str:
        """Where the user-data element is read: ``offset`` or its broadcast position."""
        if self.data is None:
            return "offset"
        terms = [f"u{k}" if self.data[k] == 1 else f"u{k} * _U({self.data[k]})"
                 for k in self._needed() if self.data[k]]
        return " + ".join(terms) if terms else "0"

    def key(self) -> str:
        """What this adds to a compiled callback's identity (see the module docstring)."""
        return self._key

    @functools.cached_property  # asked on every FFT call that looks the callback up
    def _key(self) -> str:
        lines = self.decode()
        params = ", ".join(f"{n}: {t}" for n, t in self.params)
        parts = ["; ".join(lines + ([f"args {', '.join(self.index_args())}"] if self.index and not lines else [])),
                 f"d[{self.data_position()}]" if self.data is not None else "", params]
        if lines:
            parts.append(str(self.width))
        return " | ".join(p for p in parts if p)

    # -- runtime parameters ------------------------------------------------------------------
    @functools.cached_property
    def _cells(self) -> tuple[tuple[int, ...], int]:
        import numpy as np

        offsets, at = [], POINTER_BYTES
        for _, dtype in self.params:
            offsets.append(at)
            at += -(-np.dtype(dtype).itemsize // 8) * 8
        return tuple(offsets), at

    def param_offsets(self) -> tuple[int, ...]:
        """Byte offset of each parameter in the slot, after the data pointer (8-byte cells)."""
        return self._cells[0]

    @property
    def slot_bytes(self) -> int:
        """Bytes of the callback's slot: the data pointer and the parameters."""
        return self._cells[1]

    def param_values(self, values: dict[str, Any]) -> tuple:
        """``values`` as NumPy scalars of the compiled types, in slot order."""
        import numpy as np

        try:
            return tuple(np.dtype(t).type(values[n]) for n, t in self.params)
        except (OverflowError, ValueError, TypeError):
            for name, dtype in self.params:  # find the one that does not fit, and say so by name
                try:
                    np.dtype(dtype).type(values[name])
                except (OverflowError, ValueError, TypeError) as exc:
                    raise _out_of_range(name, values[name], dtype) from exc
            raise

    def pack_params(self, values: Sequence[Any]) -> bytes:
        """The slot's bytes after the data pointer, holding ``values`` (from ``param_values``)."""
        import numpy as np

        out = bytearray(self.slot_bytes - POINTER_BYTES)
        for (_, dtype), at, value in zip(self.params, self.param_offsets(), values):
            raw = np.asarray(value, dtype=dtype).tobytes()
            start = at - POINTER_BYTES
            out[start : start + len(raw)] = raw
        return bytes(out)

    def slot_readers(self) -> list[Any]:
        """numba intrinsics reading each parameter from the slot ``info`` points to (GPU)."""
        from .numba_types import numba_type

        return [_slot_reader(at, numba_type(t)) for (_, t), at in zip(self.params, self.param_offsets())]


NO_TERMS = Terms()


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _out_of_range(name: str, value: Any, dtype: str) -> Exception:
    """The error for a runtime parameter value that its compiled type cannot hold."""
    import numpy as np

    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        bounds = f"[{info.min}, {info.max}]"
        hint = ("; pass a float, or a NumPy scalar of a type that holds it (e.g. np.uint64 up to 2**64 - 1)"
                if dtype == "int64" else "; plan again with a value of a wider type")
        return OverflowError(f"runtime parameter {name!r} = {value!r} is out of range for {dtype}, its compiled "
                             f"type, which holds {bounds}{hint}")
    return TypeError(f"runtime parameter {name!r} = {value!r} does not convert to {dtype}, its compiled type; "
                     "pass a scalar of that kind")


def param_dtype(name: str, value: Any, single: bool) -> str:
    """The type a runtime parameter is compiled for, from its value: a NumPy scalar keeps its
    dtype; a Python float or complex takes the element's precision when ``single``.

    >>> param_dtype("s", 0.5, True), param_dtype("s", 0.5, False), param_dtype("n", 3, True)
    ('float32', 'float64', 'int64')
    """
    import numpy as np

    if isinstance(value, np.generic) and value.dtype.kind in "biufc":
        return value.dtype.name
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise _out_of_range(name, value, "int64")
        return "int64"
    if isinstance(value, float):
        return "float32" if single else "float64"
    if isinstance(value, complex):
        return "complex64" if single else "complex128"
    raise TypeError(
        f"runtime parameter {name!r} is {type(value).__name__}; parameters are scalars (bool, int, float, "
        "complex or a NumPy scalar): pass arrays as data"
    )


def broadcast_strides(data_shape: Sequence[int], data_strides: Sequence[int], shape: Sequence[int]) -> tuple[int, ...] | None:
    """Per axis of ``shape``, the element stride at which data of ``data_shape`` is read when
    broadcast to it by NumPy's rules (0 where it repeats), or None when it does not broadcast.

    >>> broadcast_strides((8,), (1,), (4, 8)), broadcast_strides((4, 1), (1, 1), (4, 8))
    ((0, 1), (1, 0))
    >>> broadcast_strides((3,), (1,), (4, 8)) is None
    True
    """
    if len(data_shape) > len(shape):
        return None
    lead = len(shape) - len(data_shape)
    out = [0] * lead
    for n, s, m in zip(data_shape, data_strides, shape[lead:]):
        if n == m and n != 1:
            out.append(s)
        elif n == 1:
            out.append(0)
        else:
            return None
    return tuple(out)


def _span(shape: Sequence[int], strides: Sequence[int]) -> int:
    return 1 + sum((n - 1) * s for n, s in zip(shape, strides))


def _slot_reader(byte_offset: int, ty: Any) -> Any:
    from llvmlite import ir
    from numba.core.extending import intrinsic

    @intrinsic
    def read_slot(typingctx: Any, info: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            model = context.data_model_manager[ty]
            base = builder.bitcast(args[0], ir.IntType(8).as_pointer())
            at = builder.gep(base, [ir.Constant(ir.IntType(64), byte_offset)])
            value = _invariant_load(builder, builder.bitcast(at, model.get_data_type().as_pointer()))
            return model.from_data(builder, value)

        return ty(info), codegen

    return read_slot


def slot_data_reader() -> Any:
    """numba intrinsic reading the data pointer at the start of the slot ``info`` points to (GPU)."""
    from numba.core.extending import intrinsic

    @intrinsic
    def read_data_pointer(typingctx: Any, info: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return _invariant_load(builder, args[0])

        return info.dtype(info), codegen

    return read_data_pointer


def _invariant_load(builder: Any, pointer: Any) -> Any:
    # The slot is written between executions, never during one: marked invariant, its loads are
    # made once per thread (and through the read-only cache) rather than once per element, even
    # where cuFFT's stores in between could alias it.
    value = builder.load(pointer)
    value.set_metadata("invariant.load", builder.module.add_metadata([]))
    return value
