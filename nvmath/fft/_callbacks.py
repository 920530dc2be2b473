"""What users pass as ``prolog=`` / ``epilog=``, normalised, and their data laid out for offsets.

Accepted: ``{"ltoir": bytes, "data": int pointer}`` (nvmath-python's form), a Python function,
``{"fn": f, "data": array, "params": {name: value}}`` (data and params optional), CUDA C++ source
``{"source": str, "data": array}`` (optionally ``"name"``: the function to use), or a
``DeviceCallable`` holding a function or LTO-IR.

User data of a callback that receives its element ``d`` (``f(x, d)``) may have any shape that
broadcasts to the array the callback sees; it is read where it lies, at the broadcast position
(``fftfuse_compiler.terms``), never copied to full size.
"""

from __future__ import annotations

import dataclasses
from types import FunctionType
from typing import Any, Callable, NamedTuple

import numpy as np

from fftfuse_compiler.dtypes import DATA_DTYPES
from fftfuse_compiler.fingerprint import UncacheableError, code_alone, function_fingerprint
from fftfuse_compiler.forms import Form, infer_form, python_function, reads_parameter, runtime_parameters
from fftfuse_compiler.terms import Terms, broadcast_strides, param_dtype

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
    params: dict[str, Any] | None = None

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


class CallbackArg(NamedTuple):
    """A ``prolog=``/``epilog=`` argument taken apart (the one parser: ``parse_callback``).

    Exactly one of ``fn``, ``ltoir``, ``source`` is set. ``data`` is as given (an array of any
    framework, or a raw pointer with ``ltoir``); ``origin`` says which accepted form it came in:
    "function", "dict", "callable_object" (a DeviceCallable) or "bytes". A tuple, so the
    stateless hot path can afford it on every call.
    """

    kind: str
    origin: str
    fn: Callable | None = None
    ltoir: bytes | None = None
    source: str | None = None
    source_name: str | None = None
    data: Any = None
    params: dict[str, Any] | None = None

    def with_fn(self, fn: Callable) -> Any:
        """The argument with ``fn`` in place of its function (data and parameters kept)."""
        if self.origin == "function":
            return fn
        return {"fn": fn, **({"data": self.data} if self.data is not None else {}),
                **({"params": self.params} if self.params is not None else {})}


_KEYS = frozenset({"ltoir", "data", "fn", "size", "source", "name", "params"})
_new_arg = tuple.__new__  # a CallbackArg without the Python-level __new__ (per call on the hot path)


def parse_callback(value: Any, kind: str) -> CallbackArg | None:
    """The one parser of a ``prolog=``/``epilog=`` argument (None stays None): its form checked,
    its parts named; its data is not touched (``callback_spec`` makes it a ``Tensor``).

    >>> parse_callback(lambda v: v, "epilog").origin
    'function'
    >>> parse_callback({"fn": abs, "extra": 1}, "prolog")
    Traceback (most recent call last):
    ...
    TypeError: prolog has unknown keys ['extra']; expected some of ['data', 'fn', 'ltoir', 'name', 'params', 'size', 'source']
    """
    if value is None:
        return None
    if type(value) is FunctionType:  # the common case first: the stateless hot path parses every call
        return _new_arg(CallbackArg, (kind, "function", value, None, None, None, None, None))
    if isinstance(value, dict):
        origin = "dict"
        if "ltoir" in value:
            value = dict(value)
            checked = DeviceCallable(ltoir=value["ltoir"], size=value.pop("size", None))  # type and size checks
            value["ltoir"] = checked.ltoir
    elif isinstance(value, DeviceCallable):
        origin = "callable_object"
        value = {"ltoir": value.ltoir, "data": value.data, "fn": value.fn, "params": value.params}
    elif callable(value):
        return CallbackArg(kind, "function", value)
    elif isinstance(value, (bytes, bytearray)):
        origin, value = "bytes", {"ltoir": bytes(value)}
    else:
        raise TypeError(
            f"{kind} must be a Python function, a dict {{'fn': f, 'data': array}}, "
            f"{{'source': cuda_cpp, 'data': array}} or {{'ltoir': bytes, 'data': pointer}}, or a DeviceCallable; "
            f"got {type(value).__name__}"
        )
    if not value.keys() <= _KEYS:
        raise TypeError(f"{kind} has unknown keys {sorted(set(value) - _KEYS)}; expected some of {sorted(_KEYS)}")
    fn, ltoir, data, params = value.get("fn"), value.get("ltoir"), value.get("data"), value.get("params")
    source, source_name = value.get("source"), value.get("name")
    if (fn is not None) + (ltoir is not None) + (source is not None) != 1:
        raise TypeError(
            f"{kind} needs exactly one of 'fn' (a Python function), 'source' (CUDA C++ text) or 'ltoir' (bytes)"
        )
    if source is not None and not isinstance(source, str):
        raise TypeError(f"{kind}['source'] must be CUDA C++ source text (str), got {type(source).__name__}")
    if source_name is not None and (source is None or not isinstance(source_name, str)):
        raise TypeError(f"{kind}['name'] names the function in {kind}['source'] (a str, with 'source' only)")
    if fn is not None and not callable(fn):
        raise TypeError(f"{kind}['fn'] must be callable, got {type(fn).__name__}")
    if params is not None and (fn is None or not isinstance(params, dict)):
        raise TypeError(f"{kind}['params'] must be a dict {{name: scalar}} of the keyword-only parameters of "
                        f"{kind}['fn']; got {type(params).__name__}" + (" with LTO-IR" if fn is None else ""))
    if isinstance(data, int) and not isinstance(data, bool) and ltoir is None:
        raise TypeError(
            f"{kind}: a raw pointer as data needs LTO-IR compiled for its type; with a Python "
            "function or CUDA C++ source pass the data as an array so its type and layout are known"
        )
    return _new_arg(CallbackArg, (kind, origin, fn, bytes(ltoir) if ltoir is not None else None, source, source_name,
                                  data, params))


@dataclasses.dataclass(frozen=True)
class CallbackSpec:
    """A parsed callback with its data as a ``Tensor``: what a plan is built from. Immutable: a
    call's own data travels as a ``dataclasses.replace`` copy (see ``with_data``)."""

    kind: str
    fn: Callable | None
    ltoir: bytes | None
    data: Tensor | None
    pointer: int | None  # a raw user_info pointer given with LTO-IR
    source: str | None = None  # CUDA C++ source of the callback
    source_name: str | None = None  # the function in ``source`` to use (None: the only candidate)
    params: dict[str, Any] | None = None  # runtime parameter values, by name
    has_data: bool = False  # user data given as an array (kept when a cached plan lets go of it)

    @property
    def name(self) -> str:
        if self.source is not None:
            return f"{self.kind} (CUDA C++{', ' + repr(self.source_name) if self.source_name else ''})"
        if self.fn is not None:
            return f"{self.kind} {getattr(self.fn, '__qualname__', repr(self.fn))!r}"
        return f"{self.kind} (LTO-IR, {len(self.ltoir or b'')} bytes)"

    def with_data(self, data: Tensor | None) -> "CallbackSpec":
        """This callback with other data of the same layout (None: none held)."""
        return dataclasses.replace(self, data=data)


def callback_spec(value: Any, kind: str) -> CallbackSpec | None:
    """Normalise a ``prolog=``/``epilog=`` argument (None stays None): parsed, its data a Tensor."""
    arg = parse_callback(value, kind)
    if arg is None:
        return None
    return spec_of(arg)


def spec_of(arg: CallbackArg) -> CallbackSpec:
    """The ``CallbackSpec`` of a parsed argument: its array data checked and made a Tensor."""
    data, pointer, tensor = arg.data, None, None
    if isinstance(data, int) and not isinstance(data, bool):
        pointer = data
    elif data is not None:
        if isinstance(data, np.generic):  # a NumPy scalar: 0-d data
            data = np.asarray(data)
        tensor = as_tensor(data, what=f"{arg.kind} data")
        if tensor.pairs:
            raise TypeError(f"{arg.kind} data is a complex32 (half-precision) tensor, which FFT callbacks cannot "
                            "read; convert it with .to(torch.complex64)")
        check_data_dtype(tensor.array.dtype, f"{arg.kind} data")
    return CallbackSpec(arg.kind, arg.fn, arg.ltoir, tensor, pointer, arg.source, arg.source_name, arg.params,
                        has_data=tensor is not None)


def plan_key(arg: CallbackArg | None) -> Any:
    """What of a parsed prolog/epilog decides its plan (``FFT.create_key``): code by fingerprint,
    data by address, runtime parameters by type."""
    if arg is None:
        return None
    spec = spec_of(arg)
    if spec.fn is not None:
        try:
            code = function_fingerprint(spec.fn)
        except UncacheableError:
            code = ("object", id(spec.fn))  # equal only to itself
    elif spec.source is not None:
        code = ("source", spec.source, spec.source_name)
    else:
        code = ("ltoir", hash(spec.ltoir))
    data = spec.pointer if spec.data is None else (spec.data.ptr, spec.data.shape, spec.data.strides, spec.data.dtype)
    if spec.params:  # runtime parameters: their types decide the code, their values do not
        return (spec.kind, code, data, tuple((k, type(v).__name__) for k, v in spec.params.items()))
    return (spec.kind, code, data)


# -- the stateless hot path's key: what of an argument decides its reused plan ------------------
FULL_PATH = object()  # callback_reuse_key's answer where the call must take the full path


def callback_reuse_key(value: Any, kind: str, framework: str) -> Any:
    """What identifies a prolog/epilog argument's plan for the stateless hot path (its code, its
    data's layout), or FULL_PATH where that path does not take it (forms it does not reuse, data
    of another framework, malformed arguments: the full path reports those in its order).

    Per call: the common forms (a plain function, ``{"fn": function, "data": array}``,
    ``{"ltoir": bytes}`` and ``{"ltoir": bytes, "data": pointer}``) are read directly; every
    other form goes through ``parse_callback``.

    LTO-IR is keyed by the bytes object itself: a key holds it (so its id is never reused while
    the key lives), its hash is computed once per object and kept by it, and a look-up compares by
    identity first and by content only for another object, so equal bytes find the plan and
    changed bytes never do.
    """
    if value is None:
        return None
    t = type(value)
    if t is FunctionType:
        # Its code, and whether it has defaults: with the code, all that code_alone asks of a
        # function, so a key holding both needs no fingerprint for one computing from its code
        # alone (``fingerprints_hold``), while defaults given to it later change the key.
        return value.__code__, value.__defaults__ is None and value.__kwdefaults__ is None
    if t is dict:
        # Two look-ups and the length tell the common dicts apart (a comparison of the keys with
        # a set costs ~70 ns).
        fn, size = value.get("fn"), len(value)
        if fn is not None:
            if size == 2 and type(fn) is FunctionType and "data" in value:  # {"fn": function, "data": array}
                return _function_key(fn, value["data"], None, framework)
        else:
            ltoir = value.get("ltoir")
            if type(ltoir) is bytes and (size == 1 or (size == 2 and "data" in value)):
                return _ltoir_key(ltoir, value.get("data"), framework)
    elif t is DeviceCallable and type(value.ltoir) is bytes and value.fn is None and value.params is None:
        return _ltoir_key(value.ltoir, value.data, framework)
    try:
        arg = parse_callback(value, kind)
    except (TypeError, ValueError):
        return FULL_PATH
    if arg.origin == "function":
        code = getattr(value, "__code__", None)
        return FULL_PATH if code is None else (code,)
    if arg.ltoir is not None:
        return _ltoir_key(arg.ltoir, arg.data, framework)
    if arg.fn is None:  # CUDA C++: the source text is its identity
        if framework != "cupy" or (arg.data is not None and array_framework(arg.data) != framework):
            return FULL_PATH
        return ("source", arg.source, arg.source_name, _data_layout(arg.data, framework))
    return _function_key(arg.fn, arg.data, arg.params, framework)


def _function_key(fn: Any, data: Any, params: dict | None, framework: str) -> Any:
    """A function's key: its code and whether it is a Python function without defaults (as a bare
    function's key), its data's layout (flat, read here: the common call pays for no nested tuple
    or further call) and, with runtime parameters, their types (their values change freely; their
    types decide the compiled code)."""
    if type(fn) is FunctionType:
        code, plain = fn.__code__, fn.__defaults__ is None and fn.__kwdefaults__ is None
    else:  # a numba dispatcher and the like: always fingerprinted
        code, plain = getattr(fn, "__code__", None), False
        if code is None:
            return FULL_PATH
    if params is not None:
        params = tuple((k, type(v)) for k, v in params.items())
    if data is None:
        return (code, plain, None, params)
    module = type(data).__module__
    if module != framework and array_framework(data) != framework:  # "cupy" and "numpy" are module names
        return FULL_PATH
    return (code, plain, data.shape, data.strides, data.dtype, data.data.device_id if framework == "cupy" else None,
            params)


def _ltoir_key(ltoir: bytes, data: Any, framework: str) -> Any:
    """LTO-IR runs on the GPU only, and reads ``user_info`` as given: the plan fixes the data's
    address, so it is part of the key (a raw pointer, or an array's address and layout)."""
    if framework != "cupy":
        return FULL_PATH
    if data is None or type(data) is int:
        return ("ltoir", ltoir, data)
    if array_framework(data) != "cupy":
        return FULL_PATH
    return ("ltoir", ltoir, data.data.ptr, _data_layout(data, framework))


def call_arguments(prolog: Any, epilog: Any) -> tuple[Any, Any]:
    """A prolog's and an epilog's arguments as a reused engine reads them on each call
    (``value["data"]``, ``value["params"]``): a ``DeviceCallable`` becomes a dict of its fields,
    anything else stays (one call for both: the hot path asks on every call)."""
    if type(prolog) is not DeviceCallable and type(epilog) is not DeviceCallable:
        return prolog, epilog
    return tuple({"fn": v.fn, "ltoir": v.ltoir, "data": v.data, "params": v.params} if type(v) is DeviceCallable
                 else v for v in (prolog, epilog))


NO_PRINTS = (None, None)  # callback_fingerprints where the key holds all there is


def callback_fingerprints(prolog: Any, epilog: Any) -> tuple:
    """The fingerprints of the functions of a prolog and an epilog that ``callback_reuse_key``
    took (a function, a dict or ``DeviceCallable`` with "fn"): a changed global, closure value or
    default changes them. None where the key holds all there is: code given as LTO-IR or CUDA C++,
    and a function that computes from its code object alone (``code_alone``: no global, closure or
    default), whose code the key holds and whether it has defaults. NO_PRINTS where both are None.
    Never equal to another call's where one cannot be taken."""
    p, e = _fingerprint(prolog), _fingerprint(epilog)
    return NO_PRINTS if p is None and e is None else (p, e)


def fingerprints_hold(prints: tuple, prolog: Any, epilog: Any) -> bool:
    """Whether a call's prolog and epilog, whose reuse key equals that of the call that planned a
    kept engine, still have that call's ``callback_fingerprints`` (``prints``): asked on every
    reuse. Where those were all None (no function, or functions computing from their code alone),
    the equal key says this call's are too, and none is taken (``code_alone`` alone cost ~0.2 us
    a call: its memo hashes the code object)."""
    return prints is NO_PRINTS or callback_fingerprints(prolog, epilog) == prints


def _fingerprint(value: Any) -> Any:
    if value is None:
        return None
    t = type(value)
    fn = value.get("fn") if t is dict else value.fn if t is DeviceCallable else \
        None if t is bytes or t is bytearray else value
    if fn is None or code_alone(fn):
        return None
    try:
        return function_fingerprint(fn)
    except UncacheableError:
        return object()  # equal to no other call's: such callbacks always take the full path


def _data_layout(data: Any, framework: str) -> tuple | None:
    if data is None:
        return None
    return (data.shape, data.strides, data.dtype, data.data.device_id if framework == "cupy" else None)


def array_framework(array: Any) -> str | None:
    """"cupy" or "numpy" for the arrays the stateless hot path takes, else None."""
    module = type(array).__module__
    if module == "cupy" or module.startswith("cupy."):
        return "cupy"
    return "numpy" if module == "numpy" else None


def check_data_dtype(dtype: np.dtype, what: str) -> None:
    """Refuse user data whose elements a compiled callback cannot read, naming what was passed."""
    name = dtype.name
    if name in DATA_DTYPES:
        return
    accepted = f"callback data holds one number per element, of one of the dtypes {', '.join(DATA_DTYPES)}"
    if name == "float16":
        raise TypeError(f"{what} has dtype float16 (half precision), which FFT callbacks cannot read yet; "
                        f"{accepted}. Convert it, e.g. data.astype('float32')")
    if dtype.names:
        raise TypeError(f"{what} has a structured dtype ({name}: fields {list(dtype.names)}); {accepted}. "
                        f"Pass one field as its own array, e.g. data[{dtype.names[0]!r}]")
    if name == "object":
        raise TypeError(f"{what} has dtype object (Python objects), which a compiled callback cannot read; "
                        f"{accepted}. Convert it, e.g. np.asarray(data, dtype='complex128')")
    raise TypeError(f"{what} has dtype {name}, which FFT callbacks cannot read; {accepted}. "
                    "Convert it, e.g. data.astype('float64')")


def callback_form(spec: CallbackSpec, target: Layout) -> Form:
    """The form of ``spec``'s function for an FFT whose callback walks ``target``.

    A cuFFT-form function that reads ``user_info`` while no data is given is refused here,
    before anything runs: on the GPU it would read through a null pointer.
    """
    assert spec.fn is not None
    form = infer_form(spec.fn, spec.kind, ndim=len(target.shape), data=spec.data is not None)
    if form is Form.CUFFT and spec.data is None and spec.pointer is None:
        # f(data_in, offset, user_info, unused) / f(data_out, offset, value, user_info, unused)
        position = 2 if spec.kind == "prolog" else 3
        if reads_parameter(spec.fn, position):
            name = getattr(python_function(spec.fn), "__qualname__", "f")
            raise ValueError(
                f"{spec.name} is in cuFFT's form and reads its user_info parameter, but no data was given "
                f"(user_info would point nowhere). Pass the data it indexes: {spec.kind}={{'fn': {name}, "
                f"'data': array}}, or stop reading user_info"
            )
    return form


def parameter_values(spec: CallbackSpec, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """The runtime parameters' values: ``given`` (default: the spec's), else the function's
    keyword defaults; a missing or unknown name raises a TypeError that lists the names."""
    names = runtime_parameters(spec.fn)
    given = spec.params if given is None else given
    given = given or {}
    defaults = getattr(getattr(spec.fn, "py_func", spec.fn), "__kwdefaults__", None) or {}
    unknown = sorted(set(given) - set(names))
    missing = [n for n in names if n not in given and n not in defaults]
    if unknown or missing:
        problem = f"unknown {unknown}" if unknown else f"no value for {missing}"
        raise TypeError(
            f"{spec.name}: runtime parameters {problem}; its keyword-only parameters are {list(names)}: pass "
            f"{{'fn': f, 'params': {{{', '.join(repr(n) + ': value' for n in names)}}}}}"
        )
    return {n: given[n] if n in given else defaults[n] for n in names}


def callback_terms(spec: CallbackSpec, form: Form, target: Layout, data_strides: tuple[int, ...] | None,
                   single: bool) -> Terms | None:
    """What the generated wrapper computes for ``spec`` (None: nothing beyond the element).

    ``data_strides``: per axis of ``target``, where broadcast data is read (None: at the offset);
    ``single``: Python float parameters become float32 (single-precision literals).
    """
    fn = spec.fn
    values = parameter_values(spec)
    params = tuple((n, param_dtype(n, v, single)) for n, v in values.items())
    ndim = len(target.shape)
    index = tuple(reads_parameter(fn, 1 + form.takes_data_element + k) for k in range(ndim)) if form.takes_index else ()
    data = data_strides if form.takes_data_element else None
    if not index and data is None and not params:
        return None
    return Terms(target.shape, target.strides, index, data, params)


def lay_out_user_data(spec: CallbackSpec, target: Layout, *, allow_copy: bool = True,
                      broadcast: bool = False) -> tuple[Any, tuple[int, ...] | None]:
    """A 1-D view of the user data from its first element, and where it is read: None when at
    ``offset``, else per axis of ``target`` the element stride (0 where it broadcasts).

    Data laid out like the buffer is read at the offset. With ``broadcast`` (the callback receives
    the data element) any shape that broadcasts to the buffer's is read in place at the broadcast
    position. Otherwise (cuFFT's form indexes ``user_info`` itself) data of the buffer's shape is
    copied into a buffer with the offsets' strides, and other data must hold at least
    ``target.span`` elements, read flat.
    """
    data = spec.data
    assert data is not None
    span = target.span
    side = "input" if spec.kind == "prolog" else "result"
    if data_layout_matches(data.shape, data.strides, target):
        return flat_view(data.array, span), None
    if broadcast:
        strides = broadcast_strides(data.shape, data.strides, target.shape)
        if strides is None:
            fits = [target.shape, target.shape[-1:], target.shape[:-1] + (1,), ()]
            raise ValueError(
                f"{spec.name}: data of shape {data.shape} does not broadcast to the {side} shape {target.shape}. "
                f"Pass data of a shape that broadcasts to it by NumPy's rules, e.g. "
                f"{', '.join(str(f) for f in fits)}"
            )
        array = data.array
        if any(s < 0 for s in strides):  # read from the first element up: make it so (data-sized copy)
            array = data.xp.ascontiguousarray(array)
            strides = broadcast_strides(array.shape, tuple(s // array.itemsize for s in array.strides), target.shape)
        reach = 1 + sum((n - 1) * s for n, s in zip(target.shape, strides))
        return flat_view(array, reach), strides
    if data.shape == target.shape:
        if not allow_copy:
            raise ValueError(
                f"{spec.name}: its data has the {'input' if spec.kind == 'prolog' else 'result'} shape "
                f"{data.shape} but strides {data.strides}, while the callback's offsets walk strides "
                f"{target.strides}; pass data with those strides, or allow the copy (user_data_copy=True)"
            )
        laid = empty_strided(data.xp, target.shape, target.strides, data.dtype, span)
        laid[...] = data.array
        return flat_view(laid, span), None
    flat = data.array.reshape(-1) if _is_contiguous(data) else None
    if flat is None or flat.size < span:
        raise ValueError(
            f"{spec.name}: data of shape {data.shape} does not fit the offsets, which reach {span - 1} "
            f"({side} shape {target.shape}, strides {target.strides}). Pass data of the {side} shape, or "
            f"a contiguous array of at least {span} elements indexed by offset"
        )
    return flat, None


def _is_contiguous(t: Tensor) -> bool:
    flags = t.array.flags
    return bool(flags["C_CONTIGUOUS"]) if hasattr(flags, "__getitem__") else bool(flags.c_contiguous)
