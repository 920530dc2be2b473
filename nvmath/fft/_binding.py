"""The callbacks' data and runtime parameters bound to a ``Plan``: laid out once, when the FFT is
planned, and turned into the ``CallData`` its executor reads on every run.

``bind`` lays out each callback's data for the offsets it is called with
(``_callbacks.lay_out_user_data``) and derives its terms (indices, broadcast positions, runtime
parameters: ``_callbacks.callback_terms``). The resulting ``Binding`` is immutable: ``set_params``
makes a new one (``with_params``), a cached stateless engine drops the caller's arrays
(``without_data``), and a stateless call that brings arrays of its own gets their ``CallData``
from ``call_data_of``, laid out the way the planned data was.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ._callbacks import CallbackSpec, DeviceCallable, call_arguments, callback_form, callback_terms, \
    lay_out_user_data, parameter_values
from ._executor import CPU_NO_DATA, GPU_NO_DATA, CallData
from ._layout import Layout
from ._planner import Plan
from ._streams import on_stream
from ._tensor import as_tensor


@dataclasses.dataclass(frozen=True)
class BoundSide:
    """One callback's data and terms as its executor reads them."""

    spec: CallbackSpec
    target: Layout  # the buffer whose offsets the callback is called with
    laid: Any  # the 1-D array the callback reads (None: no data, or released)
    broadcast: bool  # the data is read at broadcast positions (the callback takes the data element)
    in_place: bool  # the laid-out data is the user's memory itself (no copy was made)
    terms: Any  # fftfuse_compiler.terms.Terms, None where the wrapper computes nothing beyond the element
    params: tuple  # the runtime parameters' values (NumPy scalars), () where none
    has_params: bool  # the callback takes runtime parameters (terms.params)

    def given_params(self, given: dict[str, Any]) -> tuple:
        """A call's parameter values (by name), typed as planned."""
        return self.terms.param_values(parameter_values(self.spec, given))


@dataclasses.dataclass(frozen=True)
class Binding:
    """The bound callbacks of one plan (``bind``), and what each run passes its executor."""

    prolog: BoundSide | None
    epilog: BoundSide | None
    on_gpu: bool  # CallData holds device pointers and packed parameters (else arrays and values)
    allow_copy: bool  # options.user_data_copy
    varies: bool  # a stateless call brings values of its own (data or runtime parameters)
    # On the GPU, where no callback takes runtime parameters and all data is read where it lies:
    # per side, whether a call's data pointer is passed (the common stateless call). Else None.
    pointers: tuple[bool, bool] | None = None

    def side(self, kind: str) -> BoundSide | None:
        return self.prolog if kind == "prolog" else self.epilog

    def terms(self, kind: str) -> Any:
        side = self.side(kind)
        return side.terms if side is not None else None

    @property
    def laid(self) -> tuple[Any, Any]:
        """The laid-out data of (prolog, epilog), None where none."""
        return tuple(s.laid if s is not None else None for s in (self.prolog, self.epilog))

    @property
    def in_place(self) -> tuple[bool, bool]:
        """Per side: data used where it lies (no copy), so a later call's data of that layout is too."""
        return tuple(s is None or s.laid is None or s.in_place for s in (self.prolog, self.epilog))

    def call_data(self) -> CallData:
        """The ``CallData`` of the planned data and parameter values."""
        p, e = self.prolog, self.epilog
        if self.on_gpu:
            return CallData(_pointer(p), _packed(p, p.params) if p is not None else b"",
                            _pointer(e), _packed(e, e.params) if e is not None else b"")
        if p is None and e is None:
            return CPU_NO_DATA
        return CallData(p.laid if p is not None else None, p.params if p is not None else (),
                        e.laid if e is not None else None, e.params if e is not None else ())

    def with_params(self, prolog: dict[str, Any] | None = None, epilog: dict[str, Any] | None = None) -> "Binding":
        """This binding with new runtime parameter values (by name; the others keep theirs),
        checked to convert to the types the plan was compiled for."""
        sides = {"prolog": self.prolog, "epilog": self.epilog}
        for kind, given in (("prolog", prolog), ("epilog", epilog)):
            if given is None:
                continue
            side = sides[kind]
            if side is None or not side.has_params:
                raise ValueError(f"the planned {side.spec.name if side else 'FFT'} has no runtime parameters "
                                 f"(keyword-only parameters) to set")
            names = (n for n, _ in side.terms.params)
            values = parameter_values(side.spec, {**dict(zip(names, side.params)), **given})
            for (name, dtype), value in zip(side.terms.params, values.values()):
                if not np.can_cast(np.min_scalar_type(value) if not isinstance(value, np.generic) else value.dtype,
                                   dtype, "same_kind"):
                    raise TypeError(f"{side.spec.name}: parameter {name!r} was planned as {dtype}; {value!r} does "
                                    f"not convert to it. Plan again for another type")
            sides[kind] = dataclasses.replace(side, params=side.terms.param_values(values))
        return dataclasses.replace(self, prolog=sides["prolog"], epilog=sides["epilog"])

    def call_data_of(self, prolog: Any, epilog: Any) -> tuple[CallData, list]:
        """The ``CallData`` of a stateless call's own arrays and values (its ``prolog``/``epilog``
        arguments, of the layouts this binding was made for), and the copies made to lay data
        out, which the caller holds until the run is queued. On the GPU the device and stream of
        the run are current. Where only the data pointers vary, a plain tuple of the CallData's
        four values (the GPU executor reads them by position; a CallData costs ~0.1 us more)."""
        if not self.varies:
            return (GPU_NO_DATA if self.on_gpu else CPU_NO_DATA), ()
        pointers = self.pointers
        if pointers is not None:  # read where they lie: the pointers alone (~0.3 us less per call)
            # Each a dict or a DeviceCallable, read as it is (call_arguments would cost a call).
            p = (prolog.data if type(prolog) is DeviceCallable else prolog["data"]).data.ptr if pointers[0] else 0
            e = (epilog.data if type(epilog) is DeviceCallable else epilog["data"]).data.ptr if pointers[1] else 0
            return (p, b"", e, b""), ()
        prolog, epilog = call_arguments(prolog, epilog)
        out, held = [None, (), None, ()] if not self.on_gpu else [0, b"", 0, b""], []
        for i, (side, given) in enumerate(((self.prolog, prolog), (self.epilog, epilog))):
            if side is None:
                continue
            spec = side.spec
            if spec.has_data:
                array = given["data"]
                if self.on_gpu and side.in_place:
                    out[2 * i] = array.data.ptr  # the key guarantees the planned layout: read where it lies
                else:
                    laid = self._lay_out(side, array)
                    if self.on_gpu:
                        held.append(laid)
                        out[2 * i] = laid.data.ptr
                    else:
                        out[2 * i] = laid
            if side.has_params:
                # A plan without given values keeps its function's defaults, fixed at planning.
                values = side.params if spec.params is None else side.given_params(given["params"])
                out[2 * i + 1] = side.terms.pack_params(values) if self.on_gpu else values
        return CallData._make(out), held

    def _lay_out(self, side: BoundSide, array: Any) -> Any:
        spec = side.spec.with_data(as_tensor(array, what=f"{side.spec.kind} data"))
        return lay_out_user_data(spec, side.target, allow_copy=self.allow_copy, broadcast=side.broadcast)[0]

    def without_data(self) -> "Binding":
        """This binding holding none of the caller's arrays (a cached engine between calls)."""
        return dataclasses.replace(self, prolog=_released(self.prolog), epilog=_released(self.epilog))


def bind(plan: Plan, allow_copy: bool, device_id: int | None = None, stream: Any = None) -> Binding:
    """Lay out the data of ``plan``'s callbacks and derive their terms; on the GPU the copies go on
    ``stream`` of GPU ``device_id``."""
    on_gpu = plan.target == "cuda"
    sides = []
    for spec, single in zip((plan.prolog, plan.epilog), plan.single):
        if spec is None:
            sides.append(None)
            continue
        target = plan.problem.input if spec.kind == "prolog" else plan.problem.output
        form = callback_form(spec, target) if spec.fn is not None else None
        broadcast = form is not None and form.takes_data_element
        laid, strides = None, None
        if spec.data is not None:
            if on_gpu:
                import cupy

                with cupy.cuda.Device(device_id), on_stream(stream):
                    laid, strides = lay_out_user_data(spec, target, allow_copy=allow_copy, broadcast=broadcast)
                in_place = laid.data.ptr == spec.data.array.data.ptr
            else:
                laid, strides = lay_out_user_data(spec, target, allow_copy=allow_copy, broadcast=broadcast)
                in_place = np.may_share_memory(laid, spec.data.array)  # a copy never does
        else:
            in_place = True
        terms = callback_terms(spec, form, target, strides, single) if form is not None else None
        params = terms.param_values(parameter_values(spec)) if terms is not None and terms.params else ()
        has_params = terms is not None and bool(terms.params)
        sides.append(BoundSide(spec, target, laid, broadcast, in_place, terms, params, has_params))
    varies = any(s is not None and (s.spec.has_data or s.has_params) for s in sides)
    simple = on_gpu and all(s is None or (s.in_place and not s.has_params) for s in sides)
    pointers = tuple(s is not None and s.spec.has_data for s in sides) if simple else None
    return Binding(sides[0], sides[1], on_gpu, allow_copy, varies, pointers)


def _pointer(side: BoundSide | None) -> int:
    return side.laid.data.ptr if side is not None and side.laid is not None else 0


def _packed(side: BoundSide, values: tuple) -> bytes:
    return side.terms.pack_params(values) if values else b""


def _released(side: BoundSide | None) -> BoundSide | None:
    return side and dataclasses.replace(side, spec=side.spec.with_data(None), laid=None)
