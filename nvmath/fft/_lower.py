"""From a trace to a plan: which elementwise steps become each FFT's prolog or epilog, which
forward/inverse pairs run as one ``nvmath.fft.filtered`` chain, which steps run as written, and
the Python code of the plan (a runner function plus generated callbacks)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._trace import Literal, Node, Trace

# User data a compiled callback can read (one number per element).
_DATA_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                "float32", "float64", "complex64", "complex128"}

_INFIX = {"+": "+", "-": "-", "*": "*", "/": "/", "**": "**",
          "add": "+", "subtract": "-", "multiply": "*", "divide": "/", "true_divide": "/", "power": "**"}
_MATH = {"exp", "sin", "cos", "tan", "sinh", "cosh", "tanh"}
_COMPLEX_ONLY = {"sqrt", "log"}


def callback_code(node: Node, operands: list[str]) -> str | None:
    """The numba-compilable expression of an elementwise step, or None where it is not fused."""
    info = node.info
    name, how = info["name"], info["how"]
    if how in ("operator", "ufunc") and name in _INFIX and len(operands) == 2:
        return f"({operands[0]} {_INFIX[name]} {operands[1]})"
    if len(operands) != 1:
        return None
    a = operands[0]
    arg = node.inputs[0]
    kind = "f" if arg.dtype is None and isinstance(arg.sample, float) else (arg.dtype.kind if arg.dtype else "")
    if name in ("-", "negative"):
        return f"(-{a})"
    if name in ("+", "positive"):
        return f"(+{a})"
    if name in ("abs", "absolute"):
        return f"abs({a})"
    if name == "square":
        return f"({a} * {a})"
    if name == "conjugate":
        return f"({a}).conjugate()" if kind == "c" else a
    if name in ("real", "imag") and how == "attr":
        return f"({a}).{name}"
    if name in _MATH | _COMPLEX_ONLY:
        if kind == "c":
            return f"cmath.{name}({a})"
        if kind == "f" and name in _MATH:
            return f"math.{name}({a})"
    return None


@dataclass
class Callback:
    """One generated prolog or epilog: its path of steps, main value, data and parameters."""

    kind: str                     # "prolog" or "epilog"
    steps: list[Node]             # the fused steps, innermost first
    main: Node                    # the element's value: the FFT operand (prolog) or result (epilog)
    data: Node | None
    params: list[Node]
    source: str = ""
    name: str = ""


@dataclass
class FusedFFT:
    fft: Node
    operand: Node                 # what the FFT call receives
    prolog: Callback | None
    epilog: Callback | None
    # An inverse FFT whose operand is the result of ``chain_from`` (the forward FFT over the same
    # axes): the pair runs as one ``nvmath.fft.filtered`` call with ``chain_norm``, the forward's
    # epilog as its pointwise step.
    chain_from: FusedFFT | None = None
    chain_norm: str | None = None

    @property
    def result(self) -> Node:
        """The node whose value the FFT call returns."""
        return self.epilog.steps[-1] if self.epilog else self.fft


@dataclass
class Plan:
    """What runs per call: ``fused`` FFTs and the nodes computed as written (``eager``)."""

    trace: Trace
    fused: list[FusedFFT]
    eager: list[tuple[Node, str]]   # (node, why it is not fused)
    outputs: Any
    notes: list[str] = field(default_factory=list)


def _consumers(trace: Trace) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {n.index: [] for n in trace.graph.nodes}
    for node in trace.graph.nodes:
        for i in dict.fromkeys(node.inputs):
            out[i.index].append(node)
    for node in _output_nodes(trace.outputs):
        out[node.index].append("output")
    return out


def _output_nodes(structure: Any) -> list[Node]:
    if isinstance(structure, Node):
        return [structure]
    if isinstance(structure, (tuple, list)):
        return [n for s in structure for n in _output_nodes(s)]
    return []


class _Side:
    """Operands of the fused steps that do not depend on the element: one data array at most,
    and scalar expressions, each a runtime parameter."""

    def __init__(self) -> None:
        self.data: Node | None = None
        self.params: list[Node] = []

    def admit(self, node: Node) -> bool:
        if node.is_scalar:
            if node not in self.params:
                self.params.append(node)
            return True
        if self.data is None or self.data is node:
            if node.dtype.name not in _DATA_DTYPES:
                return False
            self.data = node
            return True
        return False

    def copy(self) -> _Side:
        other = _Side()
        other.data, other.params = self.data, list(self.params)
        return other


def _fusable_step(node: Node, full: tuple[int, ...]) -> bool:
    return node.kind == "op" and node.shape == full and callback_code(node, ["v"] * len(node.inputs)) is not None


def _epilog(fft: Node, consumers: dict[int, list[Any]], claimed: set[int]) -> tuple[Callback | None, str]:
    steps: list[Node] = []
    side = _Side()
    best: tuple[int, _Side] | None = None
    current, why = fft, ""
    while True:
        users = consumers[current.index]
        if len(users) != 1 or users[0] == "output":
            why = "" if not users else ("its value is also used elsewhere" if len(users) > 1 else "")
            break
        step = users[0]
        if step.index in claimed or not _fusable_step(step, fft.shape):
            why = "" if step.kind != "op" else \
                "the next step is not an elementwise step of the same shape that callbacks compute"
            break
        trial = side.copy()
        if not all(op is current or trial.admit(op) for op in step.inputs):
            why = "the next step reads a second array (a callback reads one data array)"
            break
        steps.append(step)
        side = trial
        if step.dtype == fft.dtype:
            best = (len(steps), side.copy())
        current = step
    if best is None:
        return None, why
    n, side = best
    if n < len(steps):
        why = "the steps after it end in another dtype (NumPy's promotion), so they run as written"
    steps = steps[:n]
    return Callback("epilog", steps, fft, side.data, side.params), why


def _prolog(fft: Node, consumers: dict[int, list[Any]], claimed: set[int]) -> Callback | None:
    top = fft.inputs[0]
    transform = fft.info["lower"]["transform"]
    wanted_kind = "f" if transform == "rfft" else "c"
    steps: list[Node] = []
    side = _Side()
    best: Callback | None = None
    current = top
    while True:
        if current.index in claimed or len(consumers[current.index]) != 1 or not _fusable_step(current, top.shape):
            break
        candidates = [op for op in current.inputs if not op.is_scalar and op.shape == top.shape]
        if not candidates:
            break
        nxt = next((c for c in candidates if c.kind != "const"), candidates[0])
        trial = side.copy()
        if not all(op is nxt or trial.admit(op) for op in current.inputs):
            break
        steps.insert(0, current)
        side = trial
        if nxt.dtype == top.dtype and nxt.dtype.kind == wanted_kind:
            best = Callback("prolog", list(steps), nxt, side.data, list(side.params))
        current = nxt
    if top.dtype.kind != wanted_kind:
        return None
    return best


def lower(trace: Trace) -> Plan:
    """Choose, for every FFT, the steps fused into it; every other node runs as written."""
    consumers = _consumers(trace)
    claimed: set[int] = set()
    fused: list[FusedFFT] = []
    by_result: dict[int, FusedFFT] = {}
    notes: list[str] = []
    for node in trace.graph.nodes:
        if node.kind != "fft" or node.info["lower"] is None:
            continue
        prolog = _prolog(node, consumers, claimed)
        if prolog:
            claimed.update(s.index for s in prolog.steps)
        epilog, why = _epilog(node, consumers, claimed)
        if epilog:
            claimed.update(s.index for s in epilog.steps)
        if why:
            notes.append(f"{'epilog' if epilog else 'no epilog'} for {_fft_label(node)} stops here: {why}")
        operand = prolog.main if prolog else node.inputs[0]
        item = FusedFFT(node, operand, prolog, epilog)
        previous = by_result.get(operand.index)
        if previous is not None and _inverse_pair(previous.fft, node):
            norm, why = _chain_norm(previous, item, consumers)
            if why:
                notes.append(f"{_fft_label(previous.fft)} then {_fft_label(node)} (line {_line_number(node)}) run "
                             f"as two FFTs, not as one chain: {why}")
            else:
                item.chain_from, item.chain_norm = previous, norm
        fused.append(item)
        by_result[item.result.index] = item
    eager = []
    for node in trace.graph.nodes:
        if node.kind == "op" and node.index not in claimed:
            eager.append((node, _why_eager(node, consumers)))
        elif node.kind == "fft" and node.info["lower"] is None:
            eager.append((node, "an FFT call with arguments beyond the transform, axes and norm (n=, s=, out=, "
                                "callbacks or options): run as written"))
    pointwise = {id(item.chain_from.epilog) for item in fused if item.chain_from is not None}
    for i, item in enumerate(fused):
        for cb in (item.prolog, item.epilog):
            if cb is not None:
                cb.name = f"_{'pointwise' if id(cb) in pointwise else cb.kind}_{i}"
                cb.source = _callback_source(cb)
    return Plan(trace, fused, eager, trace.outputs, notes)


def _inverse_pair(first: Node, second: Node) -> bool:
    """A forward FFT then its inverse over the same axes: the shape of ``nvmath.fft.filtered``."""
    a, b = first.info["lower"], second.info["lower"]
    return a["axes"] == b["axes"] and (a["transform"], b["transform"]) in (("fft", "ifft"), ("rfft", "irfft"))


# (forward norm, inverse norm) of the traced pair -> filtered's norm applying the same two scales.
_CHAIN_NORMS = {(None, None): None, (None, "backward"): "backward", ("ortho", "ortho"): "ortho",
                ("forward", None): "forward"}


def _chain_norm(first: FusedFFT, second: FusedFFT, consumers: dict[int, list[Any]]) -> tuple[str | None, str]:
    """filtered's ``norm`` for the pair (first, second), or why the pair stays two calls."""
    forward, inverse = first.fft.info["lower"], second.fft.info["lower"]
    operand = first.operand
    if second.prolog is not None:
        return None, "steps between them read a second array, so the inverse keeps a prolog of its own"
    if consumers[first.result.index] != [second.fft]:
        return None, "the spectrum between them is used elsewhere too"
    if forward["transform"] == "fft" and operand.dtype.kind != "c":
        return None, "the forward FFT's operand is real (filtered runs R2C/C2R on a real operand, not C2C)"
    if second.fft.shape != operand.shape or second.fft.dtype != operand.dtype:
        return None, (f"the inverse gives {second.fft.dtype}{list(second.fft.shape)}, not the operand's "
                      f"{operand.dtype}{list(operand.shape)} (an odd length, or another precision)")
    pair = (forward["norm"], inverse["norm"])
    if pair not in _CHAIN_NORMS:
        return None, (f"norm={forward['norm']!r} forward with norm={inverse['norm']!r} inverse is not one of "
                      "filtered's norms")
    return _CHAIN_NORMS[pair], ""


def _line_number(node: Node) -> str:
    parts = node.line.split(":")
    return parts[1] if len(parts) > 2 else "?"


def _why_eager(node: Node, consumers: dict[int, list[Any]]) -> str:
    if node.is_scalar:
        return "a scalar expression: computed once per call and passed as a runtime parameter"
    if callback_code(node, ["v"] * len(node.inputs)) is None:
        return f"'{node.info['name']}' is not compiled into callbacks"
    if not any(n.kind == "fft" or n.kind == "op" for n in node.inputs) and all(
            n.kind in ("const", "arg", "scalar") for n in node.inputs):
        return "no FFT next to it"
    return "not next to an FFT in a fusable way (another consumer, a second data array, a dtype change, " \
           "or a shape change)"


def _fft_label(node: Node) -> str:
    return f"{node.info['family']}.fft.{node.info['name']}"


def _callback_source(cb: Callback) -> str:
    names: dict[int, str] = {cb.main.index: "v"}
    if cb.data is not None:
        names[cb.data.index] = "d"
    for i, p in enumerate(cb.params):
        names[p.index] = f"p{i}"
    for step in cb.steps:
        names[step.index] = callback_code(step, [names[op.index] for op in step.inputs]) or "?"
    head = "v, d" if cb.data is not None else "v"
    if cb.params:
        head += ", *, " + ", ".join(f"p{i}" for i in range(len(cb.params)))
    return f"def {cb.name}({head}):\n    return {names[cb.steps[-1].index]}\n"


# -- The runner -------------------------------------------------------------------------------

def runner_source(plan: Plan, execution: Any) -> tuple[str, dict[str, Any]]:
    """Python source of ``_run(args, kwargs)`` and the names it reads, for ``exec``."""
    namespace: dict[str, Any] = {}
    lines = ["def _run(args, kwargs):"]
    claimed = {s.index for f in plan.fused for cb in (f.prolog, f.epilog) if cb for s in cb.steps}
    fft_at = {f.result.index: f for f in plan.fused}
    fused_ffts = {f.fft.index for f in plan.fused}
    needed = _needed(plan, claimed)
    counter = itertools.count()

    def bind(value: Any) -> str:
        name = f"_k{next(counter)}"
        namespace[name] = value
        return name

    for node in plan.trace.graph.nodes:
        if node.index not in needed:
            continue
        v = f"n{node.index}"
        if node.index in fft_at:
            lines.append(f"    {v} = {_fft_call(fft_at[node.index], execution, bind)}")
        elif node.kind in ("arg", "scalar"):
            key = node.info["key"]
            lines.append(f"    {v} = args[{key}]" if isinstance(key, int) else f"    {v} = kwargs[{key!r}]")
        elif node.kind == "const":
            lines.append(f"    {v} = {bind(node.info['value'])}")
        elif node.kind == "op":
            ops = [f"n{i.index}" for i in node.inputs]
            info = node.info
            if info["how"] == "operator" and info["name"] in _INFIX and len(ops) == 2:
                lines.append(f"    {v} = {ops[0]} {info['name']} {ops[1]}")
            else:
                lines.append(f"    {v} = {bind(info['fn'])}({', '.join(ops)})")
        elif node.kind == "fft" and node.index not in fused_ffts:
            lines.append(f"    {v} = {_replay_call(node, bind)}")
    lines.append(f"    return {_output_expr(plan.outputs, bind)}")
    return "\n".join(lines) + "\n", namespace


def _needed(plan: Plan, claimed: set[int]) -> set[int]:
    by_result = {f.result.index: f for f in plan.fused}
    needed: set[int] = set()
    stack = list(_output_nodes(plan.outputs))
    while stack:
        node = stack.pop()
        if node.index in needed:
            continue
        needed.add(node.index)
        item = by_result.get(node.index)
        if item is not None:
            deps = [item.operand] if item.chain_from is None else [item.chain_from.operand]
            for cb in _callbacks_of(item):
                deps += ([cb.data] if cb.data is not None else []) + cb.params
        else:
            deps = list(node.inputs)
        stack.extend(d for d in deps if d.index not in claimed or d.index in by_result)
    return needed


def _callbacks_of(item: FusedFFT) -> list[Callback]:
    """The callbacks one call runs: a chain's are the forward's prolog and epilog (its pointwise
    step) and the inverse's epilog."""
    first = item.chain_from
    both = (first.prolog, first.epilog, item.epilog) if first is not None else (item.prolog, item.epilog)
    return [cb for cb in both if cb is not None]


def _callback_text(cb: Callback) -> str:
    entries = [f"'fn': {cb.name}"]
    if cb.data is not None:
        entries.append(f"'data': n{cb.data.index}")
    if cb.params:
        entries.append("'params': {" + ", ".join(f"'p{i}': n{p.index}" for i, p in enumerate(cb.params)) + "}")
    return f"{{{', '.join(entries)}}}"


def _fft_call(item: FusedFFT, execution: Any, bind: Any) -> str:
    if item.chain_from is not None:
        return _chain_call(item, execution, bind)
    lower = item.fft.info["lower"]
    parts = [f"n{item.operand.index}", f"axes={list(lower['axes'])!r}"]
    if lower["norm"] is not None:
        parts.append(f"norm={lower['norm']!r}")
    if execution is not None:
        parts.append(f"execution={bind(execution)}")
    for cb in (item.prolog, item.epilog):
        if cb is not None:
            parts.append(f"{cb.kind}={_callback_text(cb)}")
    return f"_nvfft.{lower['transform']}({', '.join(parts)})"


def _chain_call(item: FusedFFT, execution: Any, bind: Any) -> str:
    """A forward FFT, its epilog, the inverse and its epilog as one ``nvmath.fft.filtered`` call,
    so the planner's chain routes (one kernel where it applies) run the pair."""
    first = item.chain_from
    parts = [f"n{first.operand.index}", f"axes={list(item.fft.info['lower']['axes'])!r}",
             f"norm={item.chain_norm!r}"]
    if execution is not None:
        parts.append(f"execution={bind(execution)}")
    for name, cb in (("prolog", first.prolog), ("pointwise", first.epilog), ("epilog", item.epilog)):
        if cb is not None:
            parts.append(f"{name}={_callback_text(cb)}")
    return f"_nvfft.filtered({', '.join(parts)})"


def _replay_call(node: Node, bind: Any) -> str:
    args, kwargs = node.info["call"]
    text = [f"n{a.index}" if isinstance(a, Node) else bind(a) for a in args]
    text += [f"{k}=" + (f"n{v.index}" if isinstance(v, Node) else bind(v)) for k, v in kwargs.items()]
    func = node.info["func"]
    if node.info["family"] not in ("numpy", "scipy", "nvmath"):
        raise AssertionError("only NumPy, SciPy and nvmath FFTs are replayed as written")
    return f"{bind(func)}({', '.join(text)})"


def _output_expr(structure: Any, bind: Any) -> str:
    if isinstance(structure, Node):
        return f"n{structure.index}"
    if isinstance(structure, Literal):
        return bind(structure.value)
    inner = ", ".join(_output_expr(s, bind) for s in structure)
    if isinstance(structure, list):
        return f"[{inner}]"
    return f"({inner},)" if len(structure) == 1 else f"({inner})"


# -- Chains: what the planner makes of them ---------------------------------------------------

def plan_chains(plan: Plan, callbacks: dict[str, Any], args: tuple, kwargs: dict, execution: Any) -> dict[int, str]:
    """Each chain's route in the words of its ``ChainPlan.describe()``, asked of the planner as
    ``nvmath.fft.filtered`` asks it (nothing compiled, no transform planned), by the index of the
    chain's inverse FFT in ``plan.fused``; ``callbacks``: the generated functions by name. A pair
    the planner refuses runs as two FFTs, with a note saying why."""
    from ._options import FFTOptions, execution_target
    from ._planner import plan_chain, problem_for
    from ._tensor import as_tensor

    xp = _array_library(args, kwargs)
    options = FFTOptions.of(None)
    out: dict[int, str] = {}
    for i, item in enumerate(plan.fused):
        first = item.chain_from
        if first is None:
            continue
        def value(cb: Callback | None) -> Any:
            if cb is None:
                return None
            entry: dict[str, Any] = {"fn": callbacks[cb.name]}
            if cb.data is not None:
                entry["data"] = _concrete(cb.data, args, kwargs, xp)
            if cb.params:
                entry["params"] = {f"p{k}": p.sample for k, p in enumerate(cb.params)}
            return entry
        try:
            tensor = as_tensor(_concrete(first.operand, args, kwargs, xp))
            target = execution_target(execution, tensor, options)
            forward = problem_for(first.fft.info["lower"]["transform"], tensor.shape, tensor.strides, tensor.dtype,
                                  item.fft.info["lower"]["axes"], False, "even", options.result_layout)
            chain = plan_chain(forward, target, options, item.chain_norm, value(first.prolog), value(first.epilog),
                               value(item.epilog))
        except (TypeError, ValueError, NotImplementedError) as exc:
            plan.notes.append(f"{_fft_label(first.fft)} then {_fft_label(item.fft)} (line {_line_number(item.fft)}) "
                              f"run as two FFTs: nvmath.fft.filtered refuses the pair ({exc})")
            item.chain_from, item.chain_norm = None, None
            continue
        out[i] = chain.describe()
    return out


def _array_library(args: tuple, kwargs: dict) -> Any:
    """CuPy where an argument is a CuPy array, else NumPy (Dask chunks are NumPy's)."""
    for v in list(args) + list(kwargs.values()):
        if type(v).__module__.split(".")[0] == "cupy":
            import cupy

            return cupy
    return np


def _concrete(node: Node, args: tuple, kwargs: dict, xp: Any) -> Any:
    """The array behind ``node`` where the call holds it (an argument or a captured array of
    NumPy or CuPy), else an uninitialized one of its shape and dtype: what planning looks at."""
    value = None
    if node.kind == "arg":
        key = node.info["key"]
        value = args[key] if isinstance(key, int) else kwargs[key]
    elif node.kind == "const":
        value = node.info["value"]
    if type(value).__module__.split(".")[0] in ("numpy", "cupy"):
        return value
    return xp.empty(node.shape, node.dtype)


def describe(plan: Plan, route: str, chains: dict[int, str] | None = None) -> list[str]:
    """The plan in words, one line per FFT, fused step and step run as written; ``chains``: the
    route of each chain (``plan_chains``)."""
    out = []
    number = {id(item): i for i, item in enumerate(plan.fused)}
    for i, item in enumerate(plan.fused):
        lower = item.fft.info["lower"]
        chain = f"  [chain with FFT {number[id(item.chain_from)]}]" if item.chain_from else ""
        out.append(f"FFT {i}: {_fft_label(item.fft)} -> nvmath.fft.{lower['transform']}(axes={list(lower['axes'])}, "
                   f"norm={lower['norm']!r}) on {item.fft.inputs[0].dtype}{list(item.fft.inputs[0].shape)}"
                   f"{chain}   (line {item.fft.line})")
        for kind, cb in (("prolog", item.prolog), ("epilog", item.epilog)):
            if cb is None:
                out.append("    no fused steps before" if kind == "prolog" else "    no fused steps after")
                continue
            data = "" if cb.data is None else f"; data {cb.data.dtype}{list(cb.data.shape)}"
            params = "" if not cb.params else f"; runtime parameters {', '.join(f'p{i}' for i in range(len(cb.params)))}"
            body = cb.source.splitlines()[1].strip().removeprefix("return ")
            out.append(f"    {cb.kind}: {body}{data}{params}")
            for step in cb.steps:
                out.append(f"        fused: {step.info['name']}  (line {step.line})")
        if item.chain_from is not None:
            j = number[id(item.chain_from)]
            steps = [f"{name}=FFT {k}'s {kind}" for name, k, kind, cb in (
                ("prolog", j, "prolog", item.chain_from.prolog), ("pointwise", j, "epilog", item.chain_from.epilog),
                ("epilog", i, "epilog", item.epilog)) if cb is not None]
            out.append(f"chain: FFT {j} and FFT {i} run as one call, nvmath.fft.filtered(axes={list(lower['axes'])}, "
                       f"norm={item.chain_norm!r}{''.join(', ' + s for s in steps)})")
            out += [f"    {line}" for line in (chains or {}).get(i, "").splitlines()]
    for node, why in plan.eager:
        what = node.info["name"]
        out.append(f"runs as written: {what}  (line {node.line}): {why}")
    out += plan.notes
    out.append(f"route: {route}")
    return out
