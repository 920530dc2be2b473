"""Reuse of planned engines across calls, per thread: the stateless functions' hot path, and the
engines a Dask worker keeps for the chunks of one shape (``_dask``).

A stateless call whose request key (``reuse_key``: the operand's layout, the transform, the
callbacks' code and their data's layout) matches an engine planned by an earlier call runs that
engine again with this call's arrays, once the callbacks' fingerprints match (taken on every call
where a callback reads globals, closure values or defaults, so a change is noticed; a function
computing from its code alone needs none: its key holds its code and that it has no defaults);
only the operand and the data pointers change.
"""

from __future__ import annotations

import collections
import dataclasses
import operator
import threading
from typing import Any, Callable

from ._api import ReusableFFT
from ._callbacks import FULL_PATH, NO_PRINTS, array_framework, callback_fingerprints, callback_reuse_key, \
    fingerprints_hold
from ._options import ExecutionCPU, ExecutionCUDA, FFTOptions, debug_env


class ThreadEngines:
    """Planned engines by key, per thread (an engine is rebound to each call's arrays, so one
    thread uses it at a time), at most ``limit`` per thread: the oldest is freed (``free(value)``)
    when another comes. Each engine holds its plan until it is dropped here
    (or its thread ends), so the plan cache never frees a plan under it. ``get`` leaves the order
    alone (the stateless hot path: first kept, first freed); ``get_or_build`` keeps the most
    recently used (a Dask worker's chunk shapes)."""

    def __init__(self, limit: int, free: Callable[[Any], None]):
        self.limit, self._free = limit, free
        self.local = threading.local()

    def mine(self) -> collections.OrderedDict:
        """This thread's engines, oldest first."""
        engines = getattr(self.local, "engines", None)
        if engines is None:
            engines = self.local.engines = collections.OrderedDict()
        return engines

    def get(self, key: Any) -> Any:
        try:
            return self.local.engines.get(key)
        except AttributeError:  # none kept by this thread yet
            return None

    def touch(self, key: Any) -> None:
        """Mark ``key`` used now (the last to go)."""
        self.mine().move_to_end(key)

    def put(self, key: Any, value: Any) -> None:
        """Keep ``value`` under ``key``, freeing the one it replaces and the least recently used."""
        engines = self.mine()
        old = engines.pop(key, None)
        if old is not None:
            self._free(old)
        engines[key] = value
        while len(engines) > self.limit:
            self._free(engines.popitem(last=False)[1])

    def get_or_build(self, key: Any, build: Callable[[], Any]) -> Any:
        """The engine under ``key``, built and kept where there is none; marked used now."""
        found = self.get(key)
        if found is None:
            found = build()
            self.put(key, found)
        else:
            self.touch(key)
        return found


# The stateless hot path: (engine, its callbacks' fingerprints) by request key.
stateless_engines = ThreadEngines(64, lambda kept: kept[0].free())


def run_stateless(transform: str, operand: Any, axes: Any, options: Any, execution: Any, prolog: Any, epilog: Any,
               stream: Any, direction: Any = None, norm: Any = None) -> Any:
    key = reuse_key((transform,), operand, axes, options, execution, prolog, epilog)
    if key is not None and (direction is not None or norm is not None):
        key = (*key, direction, norm)
    if key is not None:
        hit = stateless_engines.get(key)
        # NO_PRINTS: the key holds all there is (callback_fingerprints): no call to ask.
        if hit is not None and (hit[1] is NO_PRINTS or fingerprints_hold(hit[1], prolog, epilog)):
            return hit[0].rerun(operand, prolog, epilog, stream)
        prints = callback_fingerprints(prolog, epilog)  # taken before planning: what the plan compiles
    f = ReusableFFT(operand, axes=axes, options=options, execution=execution, stream=stream, _transform=transform,
                    _shared_plans=True)
    kept = False
    try:
        f.plan(prolog=prolog, epilog=epilog, stream=stream, direction=direction, norm=norm)
        result = f.execute(stream=stream)
        if key is not None and f.reusable():
            f.release_arrays()
            stateless_engines.put(key, (f, prints))  # replaces (frees) one whose callbacks' globals changed
            kept = True
        return result
    finally:
        if not kept:
            f.free()  # gives its plan back to the shared cache


def reuse_key(head: tuple, operand: Any, axes: Any, options: Any, execution: Any, prolog: Any, epilog: Any,
                *more: tuple[Any, str]) -> tuple | None:
    """``head`` (as one item) followed by what an engine's plan and launch depend on, taken from
    CuPy's or NumPy's attributes (no Python layer): the operand's layout and device, the axes, the
    settings and the reuse keys of the prolog, the epilog and ``more`` ``(callback, kind)`` pairs. None
    where the call takes the full path. Every stateless call keys its engines so (``fft`` and its
    kin here, ``filtered`` chains with their pointwise step as ``more``)."""
    if debug_env():
        return None
    framework = array_framework(operand)
    if framework is None:
        return None
    p, e = callback_reuse_key(prolog, "prolog", framework), callback_reuse_key(epilog, "epilog", framework)
    if p is FULL_PATH or e is FULL_PATH:
        return None
    others: tuple = ()
    if more:
        others = tuple(callback_reuse_key(value, kind, framework) for value, kind in more)
        if any(k is FULL_PATH for k in others):
            return None
    axes = axes_key(axes)
    if axes is FULL_PATH:
        return None
    settings = settings_key(options, execution, framework)
    if settings is FULL_PATH:
        return None
    device = operand.data.device_id if framework == "cupy" else None
    # head nested and others added (nothing, but for chains): no list built as ``*`` would.
    return (head, operand.shape, operand.strides, operand.dtype, device, axes, settings, p, e) + others


# Options a kept engine honours on every rerun as its first call did: they shape the plan, the
# engine or the launch alone. Any other option away from its default (in place, the natural
# layout, the debug mode, a GPU for host operands) takes the full path.
_RERUN_OPTIONS = frozenset({"fft_type", "last_axis_parity", "user_data_copy", "num_threads", "float_literals",
                            "patient_jit", "blocking", "logger", "allocator", "cpu_engine"})
_OPTION_NAMES = tuple(f.name for f in dataclasses.fields(FFTOptions))
_OPTION_DEFAULTS = {f.name: f.default for f in dataclasses.fields(FFTOptions)}


def settings_key(options: Any, execution: Any, framework: str) -> Any:
    """``options`` and ``execution`` as they go into a reuse key, by value (a new dict or
    ``FFTOptions`` per call is common; None where neither is given); FULL_PATH where the call
    takes the full path: an execution in another memory space than the operand's, an option a
    rerun would not honour, a value that cannot be hashed, or anything the full path must check
    and explain.

    >>> settings_key(None, None, "numpy") is None
    True
    >>> settings_key({"num_threads": 2}, "cpu", "numpy")
    ((('num_threads', 2),), ('cpu', None))
    >>> settings_key({"inplace": True}, None, "numpy") is FULL_PATH
    True
    """
    if options is None and execution is None:  # the common call: nothing to look at
        return None
    execution_part = None if execution is None else _execution_key(execution, framework)
    if execution_part is FULL_PATH:
        return FULL_PATH
    if options is None:
        return None, execution_part
    if type(options) is dict:
        items = options.items()
    elif type(options) is FFTOptions:
        items = ((name, getattr(options, name)) for name in _OPTION_NAMES)
    else:
        return FULL_PATH
    kept = []
    try:
        for name, value in items:
            if name in _RERUN_OPTIONS:
                kept.append((name, value))
            elif name not in _OPTION_DEFAULTS or not (value is _OPTION_DEFAULTS[name] or value == _OPTION_DEFAULTS[name]
                                                      or (name == "debug" and value is False)):
                return FULL_PATH
        kept.sort(key=operator.itemgetter(0))
        hash(tuple(kept))
    except (TypeError, ValueError):  # unhashable, or a value whose comparison is not a bool (an array)
        return FULL_PATH
    return tuple(kept), execution_part


def _execution_key(execution: Any, framework: str) -> Any:
    """``execution`` by value where it names the operand's own memory space; else FULL_PATH."""
    if type(execution) is str:
        name, extra = execution.lower(), None
    elif type(execution) is ExecutionCPU:
        name, extra = "cpu", execution.num_threads
    elif type(execution) is ExecutionCUDA:
        name, extra = "cuda", execution.device_id
    else:  # dicts and anything else: the full path checks and explains them
        return FULL_PATH
    if name != ("cuda" if framework == "cupy" else "cpu") or (name == "cuda" and extra is not None):
        return FULL_PATH
    return name, extra


def axes_key(axes: Any) -> Any:
    """``axes`` as it goes into a reuse key: None, or a tuple of ints; FULL_PATH for anything else
    (integers only: 1.0 == 1 would find the engine of axes=[1], and the full path explains)."""
    if axes is None:
        return None
    if type(axes) is int:
        return (axes,)
    try:
        key = tuple(axes)  # Python ints, the common call, as they are: half the cost of operator.index
        for axis in key:
            if type(axis) is not int:
                if any(isinstance(a, bool) for a in key):
                    return FULL_PATH  # an index to operator.index, not an axis: the full path refuses it
                return tuple(map(operator.index, key))  # NumPy integers and the like
        return key
    except TypeError:
        return FULL_PATH
