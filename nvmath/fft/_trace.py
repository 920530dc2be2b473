"""Tracing plain array code: stand-in arrays record the elementwise steps and FFT calls of a
function as a graph, from which ``_fuse`` builds a plan.

A stand-in (:class:`ArrayTracer`, :class:`ScalarTracer`) knows its shape and dtype only. NumPy
ufuncs and operators reach it through ``__array_ufunc__`` and the operator methods, NumPy's FFT
functions through ``__array_function__``, SciPy's through a ``scipy.fft`` backend set while
tracing, ``nvmath.fft``'s through ``traced_fft`` (called by the stateless functions), and the
array API's ``xp.fft`` through ``__array_namespace__``. Anything else (a reduction, a reshape,
indexing, a branch on a value) stops the trace with :class:`TraceError` naming the line.
"""

from __future__ import annotations

import inspect
import operator
import os
import sys
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

# The FFT functions the tracer understands, by name: (transform, default axes, halves/doubles).
# Default axes: an int tuple, or None for "every axis".
FFT_NAMES: dict[str, tuple[str, tuple[int, ...] | None]] = {
    "fft": ("fft", (-1,)), "ifft": ("ifft", (-1,)), "rfft": ("rfft", (-1,)), "irfft": ("irfft", (-1,)),
    "fft2": ("fft", (-2, -1)), "ifft2": ("ifft", (-2, -1)), "rfft2": ("rfft", (-2, -1)),
    "irfft2": ("irfft", (-2, -1)), "fftn": ("fft", None), "ifftn": ("ifft", None), "rfftn": ("rfft", None),
    "irfftn": ("irfft", None),
}

# Floating and complex dtypes the FFTs take as they are (anything else runs as written).
_FFT_DTYPES = {"float32", "float64", "complex64", "complex128"}
_COMPLEX_OF = {"float32": "complex64", "float64": "complex128", "complex64": "complex64",
               "complex128": "complex128"}
_REAL_OF = {"complex64": "float32", "complex128": "float64"}

_HERE = os.path.dirname(os.path.abspath(__file__))


class TraceError(Exception):
    """The function does something a trace cannot follow; ``line`` names where."""

    def __init__(self, what: str, line: str) -> None:
        super().__init__(f"{what} (at {line})" if line else what)
        self.what = what
        self.line = line


@dataclass(eq=False)
class Node:
    """One value of the traced function.

    ``kind``: "arg" (an array argument), "scalar" (a scalar argument), "const" (an array or
    scalar the function captured), "op" (an elementwise step), "fft".
    """

    kind: str
    shape: tuple[int, ...] | None      # None for scalars (Python or NumPy)
    dtype: np.dtype | None             # None for Python scalars
    inputs: tuple[Node, ...] = ()
    info: dict = field(default_factory=dict)
    line: str = ""
    index: int = 0                      # creation order (a topological order)
    sample: Any = None                  # scalars: the value seen while tracing

    @property
    def is_scalar(self) -> bool:
        return self.shape is None


class Graph:
    """The nodes of one trace, in creation order."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.failure: TraceError | None = None   # kept even if user code catches the exception

    def add(self, node: Node) -> Node:
        node.index = len(self.nodes)
        node.line = node.line or user_line()
        self.nodes.append(node)
        return node


_state = threading.local()


def current_graph() -> Graph:
    graph = getattr(_state, "graph", None)
    if graph is None:
        raise RuntimeError("a traced array was used outside the trace that made it")
    return graph


def user_line() -> str:
    """'file:line: code' of the innermost frame outside this package, NumPy and SciPy."""
    for frame in reversed(traceback.extract_stack()):
        name = os.path.abspath(frame.filename)
        if name.startswith(_HERE) or "/numpy/" in name or "/scipy/" in name or "/uarray/" in name \
                or "/contextlib" in name or "/functools" in name:
            continue
        return f"{frame.filename}:{frame.lineno}: {(frame.line or '').strip()}"
    return ""


def fail(what: str) -> TraceError:
    """The error that stops a trace; recorded on the graph so a caught one still counts."""
    err = TraceError(what, user_line())
    graph = getattr(_state, "graph", None)
    if graph is not None and graph.failure is None:
        graph.failure = err
    return err


# -- Elementwise steps ------------------------------------------------------------------------

def _sample(node_or_value: Any) -> Any:
    """A stand-in value with the same promotion behaviour: a one-element array for arrays, the
    traced value itself for scalars (Python scalars stay weak, as NumPy 2 treats them)."""
    if isinstance(node_or_value, Node):
        if node_or_value.is_scalar:
            return node_or_value.sample
        return np.ones(1, node_or_value.dtype)
    return node_or_value


def _as_node(value: Any) -> Node:
    if isinstance(value, Tracer):
        return value.node
    graph = current_graph()
    if isinstance(value, np.ndarray):
        return graph.add(Node("const", value.shape, value.dtype, info={"value": value}))
    if isinstance(value, (bool, int, float, complex, np.generic)):
        dtype = value.dtype if isinstance(value, np.generic) else None
        return graph.add(Node("const", None, dtype, info={"value": value}, sample=value))
    raise fail(f"a value of type {type(value).__name__} cannot be traced as an operand")


def elementwise(fn: Callable, name: str, args: tuple, how: str) -> Any:
    """Record fn(*args) (an operator, a ufunc or an attribute) and return its stand-in.

    ``how``: "operator", "ufunc" or "attr"; the plan calls ``fn`` the same way at run time."""
    nodes = tuple(_as_node(a) for a in args)
    samples = [_sample(n) for n in nodes]
    with np.errstate(all="ignore"):
        try:
            result = fn(*samples)
        except Exception as exc:
            raise fail(f"{name} of {', '.join(_describe(n) for n in nodes)} fails: {exc}") from None
    graph = current_graph()
    arrays = [n for n in nodes if not n.is_scalar]
    info = {"fn": fn, "name": name, "how": how}
    if not arrays:
        dtype = result.dtype if isinstance(result, np.generic) else None
        if not isinstance(result, (bool, int, float, complex, np.generic)):
            raise fail(f"{name} gives a {type(result).__name__}, which a trace cannot follow")
        return ScalarTracer(graph.add(Node("op", None, dtype, nodes, info, sample=result)))
    try:
        shape = np.broadcast_shapes(*(n.shape for n in arrays))
    except ValueError:
        raise fail(f"{name}: shapes {' and '.join(str(n.shape) for n in arrays)} do not broadcast") from None
    return ArrayTracer(graph.add(Node("op", shape, np.asarray(result).dtype, nodes, info)))


def _describe(node: Node) -> str:
    if node.is_scalar:
        return type(node.sample).__name__
    return f"{node.dtype}{list(node.shape)}"


# -- FFT calls --------------------------------------------------------------------------------

def _normalized_axes(axes: Any, ndim: int, default: tuple[int, ...] | None) -> tuple[int, ...] | None:
    if axes is None:
        axes = default if default is not None else tuple(range(ndim))
    if isinstance(axes, (int, np.integer)):
        axes = (int(axes),)
    try:
        out = tuple(int(a) % ndim if -ndim <= int(a) < ndim else None for a in axes)
    except (TypeError, ValueError):
        return None
    if None in out or len(set(out)) != len(out) or not out:
        return None
    return out


def _fft_result(transform: str, shape: tuple[int, ...], dtype: np.dtype,
                axes: tuple[int, ...]) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and dtype of a lowered FFT (NumPy 2 keeps single precision), or None where the
    transform does not take this dtype as it is."""
    name = dtype.name
    if name not in _FFT_DTYPES:
        return None
    shape = list(shape)
    if transform in ("fft", "ifft"):
        return tuple(shape), np.dtype(_COMPLEX_OF[name])
    last = axes[-1]
    if transform == "rfft":
        if dtype.kind != "f":
            return None
        shape[last] = shape[last] // 2 + 1
        return tuple(shape), np.dtype(_COMPLEX_OF[name])
    if dtype.kind != "c" or shape[last] < 2:
        return None
    shape[last] = 2 * (shape[last] - 1)
    return tuple(shape), np.dtype(_REAL_OF[name])


def record_fft(family: str, name: str, func: Callable, args: tuple, kwargs: dict) -> Any:
    """Record an FFT call of ``family`` ("numpy", "scipy", "cupy", "xp", "nvmath").

    Lowered (run as an nvmath FFT, callbacks fused) where its arguments say nothing beyond the
    transform, axes and norm; otherwise it is replayed as written (NumPy and SciPy only)."""
    transform, default_axes = FFT_NAMES[name]
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
    except (TypeError, ValueError):
        bound = None
    if bound is None:
        raise fail(f"{family}.fft.{name} called with arguments it does not take")
    params = dict(bound.arguments)
    if isinstance(params.get("kwargs"), dict):   # a function taking **kwargs
        params.update(params.pop("kwargs"))
    operand = params.pop("a", params.pop("x", params.pop("operand", None)))
    if not isinstance(operand, ArrayTracer):
        raise fail(f"{family}.fft.{name} of a {type(operand).__name__}: only traced arrays are followed")
    node = operand.node
    lower = _lowering(family, transform, default_axes, node, params)
    graph = current_graph()
    template = (tuple(a.node if isinstance(a, Tracer) else a for a in args),
                {k: (v.node if isinstance(v, Tracer) else v) for k, v in kwargs.items()})
    info = {"family": family, "name": name, "func": func, "call": template, "lower": lower}
    if lower is not None:
        shape, dtype = _fft_result(transform, node.shape, node.dtype, lower["axes"])
    elif family in ("numpy", "scipy"):
        shape, dtype = _replayed_result(func, node, template)
    else:
        raise fail(f"{family}.fft.{name} with these arguments ({', '.join(sorted(params))}) cannot be traced")
    inputs = (node,) + tuple(v for v in list(template[0]) + list(template[1].values())
                             if isinstance(v, Node) and v is not node)
    if any(n.kind != "const" and n is not node for n in inputs[1:]):
        raise fail(f"{family}.fft.{name}: only the operand may be a traced value")
    return ArrayTracer(graph.add(Node("fft", shape, dtype, inputs, info)))


def _lowering(family: str, transform: str, default_axes: Any, node: Node, params: dict) -> dict | None:
    """transform, axes, norm for an nvmath FFT, or None where the call must run as written."""
    if node.shape is None or not node.shape or node.dtype.name not in _FFT_DTYPES:
        return None
    if family == "nvmath":
        extra = {k: v for k, v in params.items() if v is not None and k not in ("axes", "norm")}
        if extra or params.get("direction") is not None:
            return None
        ndim = len(node.shape)   # nvmath.fft's default: the last up-to-3 axes
        axes = _normalized_axes(params.get("axes"), ndim, tuple(range(max(0, ndim - 3), ndim)))
        norm = params.get("norm")
    else:
        harmless = {"workers", "overwrite_x"}
        extra = {k: v for k, v in params.items()
                 if k not in {"axis", "axes", "norm"} | harmless and v is not None}
        if extra:  # n=, s=, out=, plan=: a shape change or an output buffer
            return None
        axes = params.get("axis", params.get("axes"))
        if "axis" not in params and "axes" not in params:
            axes = default_axes
        axes = _normalized_axes(axes, len(node.shape), default_axes)
        norm = params.get("norm") or "backward"   # NumPy's default scales the inverse
    if axes is None or len(axes) > 3 or norm not in (None, "backward", "ortho", "forward"):
        return None   # nvmath.fft transforms 1 to 3 axes
    if transform in ("rfft", "irfft") and len(axes) != len(set(axes)):
        return None
    if _fft_result(transform, node.shape, node.dtype, axes) is None:
        return None
    if (norm, transform in ("fft", "rfft")) in (("backward", True), ("forward", False)):
        norm = None   # no scale in this direction: the plain call, as a hand-written one would be
    return {"transform": transform, "axes": axes, "norm": norm}


def _replayed_result(func: Callable, node: Node, template: tuple) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an FFT replayed as written: run on zeros once, at trace time."""
    zeros = np.zeros(node.shape, node.dtype)
    args = tuple(zeros if a is node else (a.info["value"] if isinstance(a, Node) else a) for a in template[0])
    kwargs = {k: (zeros if v is node else (v.info["value"] if isinstance(v, Node) else v))
              for k, v in template[1].items()}
    previous, _state.graph = _state.graph, None
    try:
        out = func(*args, **kwargs)
    except Exception as exc:
        _state.graph = previous
        raise fail(f"{getattr(func, '__name__', func)} fails on an array of this shape: {exc}") from None
    _state.graph = previous
    return out.shape, out.dtype


def traced_fft(transform: str, operand: ArrayTracer, axes: Any, options: Any, execution: Any, prolog: Any,
               epilog: Any, stream: Any, direction: Any, norm: Any) -> Any:
    """``nvmath.fft.fft``/``ifft``/``rfft``/``irfft`` called on a stand-in while tracing."""
    import nvmath.fft as nvfft

    kwargs = {"axes": axes, "options": options, "execution": execution, "prolog": prolog, "epilog": epilog,
              "stream": stream, "direction": direction, "norm": norm}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return record_fft("nvmath", transform, getattr(nvfft, transform), (operand,), kwargs)


# -- Stand-ins --------------------------------------------------------------------------------

_UFUNC_METHOD_ONLY = "__call__"


def _untraceable_attr(self: Tracer, name: str) -> Any:
    if name.startswith("__"):   # protocol probes (hasattr) expect AttributeError
        raise AttributeError(name)
    raise fail(f"'.{name}' of a traced array is not followed (reductions, reshapes, copies and "
               f"conversions run as the function is written)")


class Tracer:
    """Common behaviour of the stand-ins: operators, ufuncs and NumPy functions."""

    __array_priority__ = 1000
    __slots__ = ("node",)

    def __init__(self, node: Node) -> None:
        self.node = node

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if method != _UFUNC_METHOD_ONLY:
            raise fail(f"np.{ufunc.__name__}.{method} (a reduction or accumulation) is not followed")
        if kwargs:
            raise fail(f"np.{ufunc.__name__} with {', '.join(kwargs)}= is not followed")
        if ufunc.nout != 1:
            raise fail(f"np.{ufunc.__name__} has {ufunc.nout} outputs; only one-output ufuncs are followed")
        return elementwise(ufunc, ufunc.__name__, inputs, "ufunc")

    def __array_function__(self, func: Callable, types: Any, args: tuple, kwargs: dict) -> Any:
        module = getattr(func, "__module__", "") or ""
        name = getattr(func, "__name__", "")
        if module.startswith("numpy.fft") and name in FFT_NAMES:
            return record_fft("numpy", name, func, args, kwargs)
        if func is np.real and not kwargs and len(args) == 1:
            return elementwise(_real, "real", args, "attr")
        if func is np.imag and not kwargs and len(args) == 1:
            return elementwise(_imag, "imag", args, "attr")
        raise fail(f"np.{name} is not followed (only elementwise steps and FFTs are)")

    def __array_namespace__(self, api_version: Any = None) -> Any:
        return ArrayNamespace

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise fail("a traced array was converted to a concrete array")

    def __bool__(self) -> bool:
        raise fail("a branch on a value (data-dependent control flow)")

    def __float__(self) -> float:
        raise fail("a traced value was converted to a Python float")

    def __int__(self) -> int:
        raise fail("a traced value was converted to a Python int")

    def __complex__(self) -> complex:
        raise fail("a traced value was converted to a Python complex")

    def __index__(self) -> int:
        raise fail("a traced value was used as an index")

    def __iter__(self) -> Any:
        raise fail("iterating over a traced array")

    def __getitem__(self, key: Any) -> Any:
        raise fail("indexing or slicing a traced array")

    def __setitem__(self, key: Any, value: Any) -> None:
        raise fail("assigning into a traced array")

    def __hash__(self) -> int:
        raise fail("a traced value was hashed")

    __getattr__ = _untraceable_attr

    # Operators: recorded with the operator itself so the plan replays them as written.
    def __add__(self, o: Any) -> Any: return elementwise(operator.add, "+", (self, o), "operator")
    def __radd__(self, o: Any) -> Any: return elementwise(operator.add, "+", (o, self), "operator")
    def __sub__(self, o: Any) -> Any: return elementwise(operator.sub, "-", (self, o), "operator")
    def __rsub__(self, o: Any) -> Any: return elementwise(operator.sub, "-", (o, self), "operator")
    def __mul__(self, o: Any) -> Any: return elementwise(operator.mul, "*", (self, o), "operator")
    def __rmul__(self, o: Any) -> Any: return elementwise(operator.mul, "*", (o, self), "operator")
    def __truediv__(self, o: Any) -> Any: return elementwise(operator.truediv, "/", (self, o), "operator")
    def __rtruediv__(self, o: Any) -> Any: return elementwise(operator.truediv, "/", (o, self), "operator")
    def __pow__(self, o: Any) -> Any: return elementwise(operator.pow, "**", (self, o), "operator")
    def __rpow__(self, o: Any) -> Any: return elementwise(operator.pow, "**", (o, self), "operator")
    def __floordiv__(self, o: Any) -> Any: return elementwise(operator.floordiv, "//", (self, o), "operator")
    def __mod__(self, o: Any) -> Any: return elementwise(operator.mod, "%", (self, o), "operator")
    def _in_place(self, o: Any) -> Any:
        raise fail("an in-place operator on a traced array (it would change the caller's array)")

    __iadd__ = __isub__ = __imul__ = __itruediv__ = __ipow__ = __ifloordiv__ = __imod__ = _in_place

    def __neg__(self) -> Any: return elementwise(operator.neg, "-", (self,), "operator")
    def __pos__(self) -> Any: return elementwise(operator.pos, "+", (self,), "operator")
    def __abs__(self) -> Any: return elementwise(operator.abs, "abs", (self,), "operator")
    def __lt__(self, o: Any) -> Any: return elementwise(operator.lt, "<", (self, o), "operator")
    def __le__(self, o: Any) -> Any: return elementwise(operator.le, "<=", (self, o), "operator")
    def __gt__(self, o: Any) -> Any: return elementwise(operator.gt, ">", (self, o), "operator")
    def __ge__(self, o: Any) -> Any: return elementwise(operator.ge, ">=", (self, o), "operator")
    def __eq__(self, o: Any) -> Any: return elementwise(operator.eq, "==", (self, o), "operator")  # type: ignore[override]
    def __ne__(self, o: Any) -> Any: return elementwise(operator.ne, "!=", (self, o), "operator")  # type: ignore[override]


def _real(v: Any) -> Any:
    return v.real


def _imag(v: Any) -> Any:
    return v.imag


def _conj(v: Any) -> Any:
    return v.conjugate()


class ArrayTracer(Tracer):
    """A stand-in for an array: shape and dtype, no values."""

    __slots__ = ()

    @property
    def shape(self) -> tuple[int, ...]:
        return self.node.shape

    @property
    def dtype(self) -> np.dtype:
        return self.node.dtype

    @property
    def ndim(self) -> int:
        return len(self.node.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.node.shape, dtype=np.int64))

    def __len__(self) -> int:
        if not self.node.shape:
            raise fail("len() of a 0-d traced array")
        return self.node.shape[0]

    @property
    def real(self) -> Any:
        return elementwise(_real, "real", (self,), "attr")

    @property
    def imag(self) -> Any:
        return elementwise(_imag, "imag", (self,), "attr")

    def conj(self) -> Any:
        return elementwise(np.conjugate, "conjugate", (self,), "ufunc")

    conjugate = conj

    def __repr__(self) -> str:
        return f"<traced array {self.node.dtype}{list(self.node.shape)}>"


class ScalarTracer(Tracer):
    """A stand-in for a Python or NumPy scalar argument: a runtime parameter of the plan."""

    __slots__ = ()

    @property
    def real(self) -> Any:
        return elementwise(_real, "real", (self,), "attr")

    @property
    def imag(self) -> Any:
        return elementwise(_imag, "imag", (self,), "attr")

    def conjugate(self) -> Any:
        return elementwise(_conj, "conjugate", (self,), "attr")

    def __repr__(self) -> str:
        return f"<traced scalar {type(self.node.sample).__name__}>"


class _FFTNamespace:
    """``xp.fft`` of the array API (and the stand-in for ``cupy.fft``) while tracing."""

    def __init__(self, family: str) -> None:
        self.family = family

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in FFT_NAMES:
            raise fail(f"{self.family}.fft.{name} is not followed")
        reference = getattr(np.fft, name)

        def standin(*args: Any, **kwargs: Any) -> Any:
            return record_fft(self.family, name, reference, args, kwargs)

        standin.__name__ = name
        return standin


class _Namespace:
    """The array API namespace of a stand-in: its elementwise functions are NumPy's ufuncs (which
    the stand-ins record) and ``fft`` records FFTs; anything else stops the trace."""

    def __init__(self, family: str) -> None:
        self.fft = _FFTNamespace(family)
        self.family = family

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        alias = {"conj": "conjugate", "abs": "absolute", "pow": "power", "divide": "true_divide"}.get(name, name)
        candidate = getattr(np, alias, None)
        if isinstance(candidate, np.ufunc):
            return candidate
        if name in ("real", "imag"):
            return getattr(np, name)
        if isinstance(candidate, (type, np.dtype)) or name in ("pi", "e", "inf", "nan"):
            return candidate
        raise fail(f"{self.family}.{name} is not followed (only elementwise steps and FFTs are)")


ArrayNamespace = _Namespace("xp")
CupyNamespace = _Namespace("cupy")


class _ScipyBackend:
    """A ``scipy.fft`` backend, set while tracing: FFTs of stand-ins are recorded, the rest
    goes on to SciPy's own backend."""

    __ua_domain__ = "numpy.scipy.fft"

    @staticmethod
    def __ua_function__(method: Any, args: tuple, kwargs: dict) -> Any:
        name = getattr(method, "__name__", "")
        if name in FFT_NAMES and any(isinstance(a, Tracer) for a in list(args) + list(kwargs.values())):
            return record_fft("scipy", name, method, args, kwargs)
        if any(isinstance(a, Tracer) for a in list(args) + list(kwargs.values())):
            raise fail(f"scipy.fft.{name} is not followed")
        return NotImplemented


@dataclass(frozen=True)
class Literal:
    """A value the traced function returns as is (not an array it computed)."""

    value: Any


@dataclass
class Trace:
    """A finished trace: the graph, the argument nodes by position/name, and the outputs."""

    graph: Graph
    arg_nodes: list[tuple[str | int, Node]]
    outputs: Any            # the returned structure, with Nodes where stand-ins were


def _output_structure(value: Any) -> Any:
    if isinstance(value, Tracer):
        return value.node
    if isinstance(value, (tuple, list)):
        return type(value)(_output_structure(v) for v in value)
    if value is None or isinstance(value, (bool, int, float, complex, str, np.generic)):
        return Literal(value)
    if isinstance(value, np.ndarray):
        return _as_node(value)
    raise fail(f"the function returns a {type(value).__name__}; traced functions return arrays, "
               f"scalars, or tuples/lists of them")


def trace(fn: Callable, args: tuple, kwargs: dict, standin_globals: dict[str, Any]) -> Trace:
    """Run ``fn`` on stand-ins for its array and scalar arguments.

    ``args``/``kwargs`` hold the call's values; arrays (``kind`` from ``argument_kind``) become
    ArrayTracers, float/complex and NumPy scalars ScalarTracers, anything else is passed as is.
    ``standin_globals``: names of ``fn``'s globals or closure variables to replace while tracing
    (CuPy's modules).
    Raises TraceError where the trace cannot follow the function."""
    graph = Graph()
    previous = getattr(_state, "graph", None)
    _state.graph = graph
    arg_nodes: list[tuple[str | int, Node]] = []
    try:
        def standin(key: str | int, value: Any) -> Any:
            kind = argument_kind(value)
            if kind == "array":
                node = graph.add(Node("arg", tuple(value.shape), np.dtype(value.dtype), info={"key": key},
                                      line="argument"))
                arg_nodes.append((key, node))
                return ArrayTracer(node)
            if kind == "scalar":
                dtype = value.dtype if isinstance(value, np.generic) else None
                node = graph.add(Node("scalar", None, dtype, info={"key": key}, line="argument", sample=value))
                arg_nodes.append((key, node))
                return ScalarTracer(node)
            return value

        t_args = tuple(standin(i, v) for i, v in enumerate(args))
        t_kwargs = {k: standin(k, v) for k, v in kwargs.items()}
        target = _with_globals(fn, standin_globals) if standin_globals else fn
        result = _call_with_scipy_backend(target, t_args, t_kwargs)
        outputs = _output_structure(result)
    except TraceError:
        raise
    except Exception as exc:
        # An error of the function itself on stand-ins (e.g. a method a stand-in lacks).
        if graph.failure is not None:
            raise graph.failure from None
        tb = traceback.extract_tb(sys.exc_info()[2])
        line = next((f"{f.filename}:{f.lineno}: {(f.line or '').strip()}" for f in reversed(tb)
                     if not os.path.abspath(f.filename).startswith(_HERE)), "")
        raise TraceError(f"{type(exc).__name__}: {exc}", line) from None
    finally:
        _state.graph = previous
    if graph.failure is not None:   # raised inside the function and caught there
        raise graph.failure
    return Trace(graph, arg_nodes, outputs)


def argument_kind(value: Any) -> str:
    """"array" (NumPy, CuPy or Dask array), "scalar" (float, complex, NumPy scalar) or "static"."""
    if isinstance(value, np.generic):  # first: NumPy 2's scalars have __array_namespace__ too
        return "scalar" if isinstance(value, np.number) else "static"
    if isinstance(value, np.ndarray) or (hasattr(value, "__array_namespace__") and hasattr(value, "shape")
                                         and hasattr(value, "dtype") and not isinstance(value, Tracer)):
        return "array"
    library = type(value).__module__.split(".")[0]
    if library in ("cupy", "dask") and hasattr(value, "dtype") \
            and all(isinstance(n, int) for n in getattr(value, "shape", (None,))):
        # CuPy 14's and Dask's arrays have no __array_namespace__; unknown Dask chunk sizes (nan)
        # make the call run as written
        return "array"
    if isinstance(value, (float, complex, np.generic)) and not isinstance(value, bool):
        return "scalar"
    return "static"


def _with_globals(fn: Callable, replace: dict[str, Any]) -> Callable:
    """``fn`` reading ``replace``'s values for those of its globals and closure variables."""
    import types

    new_globals = dict(fn.__globals__)
    new_globals.update(replace)
    closure = fn.__closure__
    if closure:
        closure = tuple(types.CellType(replace[name]) if name in replace else cell
                        for name, cell in zip(fn.__code__.co_freevars, closure))
    out = types.FunctionType(fn.__code__, new_globals, fn.__name__, fn.__defaults__, closure)
    out.__kwdefaults__ = fn.__kwdefaults__
    return out


def _call_with_scipy_backend(fn: Callable, args: tuple, kwargs: dict) -> Any:
    scipy_fft = sys.modules.get("scipy.fft")
    if scipy_fft is None:
        return fn(*args, **kwargs)
    with scipy_fft.set_backend(_ScipyBackend):
        return fn(*args, **kwargs)
