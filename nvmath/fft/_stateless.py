"""The stateless functions ``fft``, ``ifft``, ``rfft``, ``irfft``, and their hot path."""

from __future__ import annotations

import operator
import threading
from types import FunctionType
from typing import Any

from compiler.fingerprint import UncacheableError, function_fingerprint

from ._api import FFT, Axes, Callback, release_arrays, rerun
from ._callbacks import FULL_PATH, array_framework, reuse_key
from ._docs import shared_doc
from ._options import DirectionLike, Execution, FFTOptions, Norm, debug_env


def _stateless(transform: str, operand: Any, axes: Any, options: Any, execution: Any, prolog: Any, epilog: Any,
               stream: Any, direction: Any = None, norm: Any = None) -> Any:
    if type(operand).__module__.startswith("dask."):  # a lazy graph of per-chunk FFTs
        from ._dask import dask_fft

        return dask_fft(transform, operand, axes, options, execution, prolog, epilog, stream, direction, norm)
    key = _reuse_key(transform, operand, axes, options, execution, prolog, epilog)
    if key is not None and (direction is not None or norm is not None):
        key = (*key, direction, norm)
    engines = _recent_engines()
    prints = _fingerprints(prolog, epilog) if key is not None else None
    if key is not None:
        hit = engines.get(key)
        if hit is not None and hit[1] == prints:
            return rerun(hit[0], operand, prolog, epilog, stream)
    f = FFT(operand, axes=axes, options=options, execution=execution, stream=stream, _transform=transform,
            _shared_plans=True)
    kept = False
    try:
        f.plan(prolog=prolog, epilog=epilog, stream=stream, direction=direction, norm=norm)
        result = f.execute(stream=stream)
        if key is not None:
            release_arrays(f)
            old = engines.pop(key, None)  # its callbacks' globals changed: its plan is stale
            if old is not None:
                old[0].free()
            if len(engines) >= 64:
                engines.pop(next(iter(engines)))[0].free()
            engines[key] = (f, prints)
            kept = True
        return result
    finally:
        if not kept:
            f.free()  # gives its plan back to the shared cache


# The hot path of a repeated stateless call: the planned engine of an earlier call with the same
# operand layout and the same callback code is reused once the callbacks' fingerprints (taken on
# every call, so a changed global or closure value is noticed) match; only the operand and the
# data pointers change. Per thread, as an engine is rebound to each call's arrays. Each engine
# holds its plan until it is dropped here (or its thread ends), so the plan cache never frees a
# plan under it.
_local = threading.local()


def _recent_engines() -> dict:
    engines = getattr(_local, "engines", None)
    if engines is None:
        engines = _local.engines = {}
    return engines


def _reuse_key(transform: str, operand: Any, axes: Any, options: Any, execution: Any, prolog: Any, epilog: Any) -> Any:
    """A key for reusing an engine, or None where this call takes the full path: exactly what an
    engine's plan and launch depend on, taken from CuPy's or NumPy's attributes (no Python layer)."""
    if options is not None or execution is not None or debug_env():
        return None
    framework = array_framework(operand)
    if framework is None:
        return None
    p, e = reuse_key(prolog, "prolog", framework), reuse_key(epilog, "epilog", framework)
    if p is FULL_PATH or e is FULL_PATH:
        return None
    if axes is not None:
        try:  # integers only: 1.0 == 1 would find the engine of axes=[1] (the full path explains)
            axes = (axes,) if type(axes) is int else tuple(map(operator.index, axes))
        except TypeError:
            return None
    device = operand.data.device_id if framework == "cupy" else None
    return (transform, operand.shape, operand.strides, operand.dtype, device, axes, p, e)


def _fingerprints(prolog: Any, epilog: Any) -> tuple:
    out = []
    for cb in (prolog, epilog):
        fn = cb.get("fn") if type(cb) is dict else cb
        try:
            out.append(None if fn is None else function_fingerprint(fn))
        except UncacheableError:
            return (object(),)  # never equal: such callbacks always take the full path
    return tuple(out)


@shared_doc
def fft(operand: Any, axes: Axes = None, options: FFTOptions | dict | None = None,
        execution: Execution | None = None, prolog: Callback = None, epilog: Callback = None,
        stream: Any = None, *, direction: DirectionLike | None = None, norm: Norm | None = None) -> Any:
    """Complex-to-complex FFT over ``axes``, forward unless ``direction`` says otherwise.

    A real operand is promoted to complex. Unnormalized, as cuFFT, unless ``norm`` is given.

    Parameters:
        {parameters}

    Returns:
        The transform, of the operand's shape and complex dtype (the operand itself with
        ``options={{"inplace": True}}``).

    {raises}

    >>> import numpy as np
    >>> x = np.arange(8, dtype=np.complex128)
    >>> y = fft(x, epilog=lambda v: v / 8)
    >>> bool(np.allclose(y, np.fft.fft(x) / 8))
    True
    >>> bool(np.allclose(fft(x, direction="inverse", norm="backward"), np.fft.ifft(x)))
    True
    """
    return _stateless("fft", operand, axes, options, execution, prolog, epilog, stream, direction, norm)


@shared_doc
def ifft(operand: Any, axes: Axes = None, options: FFTOptions | dict | None = None,
         execution: Execution | None = None, prolog: Callback = None, epilog: Callback = None,
         stream: Any = None, *, direction: DirectionLike | None = None, norm: Norm | None = None) -> Any:
    """Inverse complex-to-complex FFT; unnormalized, as cuFFT, unless ``norm`` is given.

    Parameters:
        {parameters}

    Returns:
        The inverse transform, of the operand's shape and complex dtype.

    {raises}

    >>> import numpy as np
    >>> x = np.random.default_rng(1).standard_normal(16) + 0j
    >>> bool(np.allclose(ifft(x, norm="backward"), np.fft.ifft(x)))
    True
    """
    return _stateless("ifft", operand, axes, options, execution, prolog, epilog, stream, direction, norm)


@shared_doc
def rfft(operand: Any, axes: Axes = None, options: FFTOptions | dict | None = None,
         execution: Execution | None = None, prolog: Callback = None, epilog: Callback = None,
         stream: Any = None, *, direction: DirectionLike | None = None, norm: Norm | None = None) -> Any:
    """Real-to-complex FFT; the last of ``axes`` becomes n//2 + 1 long.

    Parameters:
        {parameters}

    Returns:
        The complex half-spectrum.

    {raises}

    >>> import numpy as np
    >>> x = np.random.default_rng(2).standard_normal((3, 10))
    >>> bool(np.allclose(rfft(x, axes=-1, norm="ortho"), np.fft.rfft(x, norm="ortho")))
    True
    """
    return _stateless("rfft", operand, axes, options, execution, prolog, epilog, stream, direction, norm)


@shared_doc
def irfft(operand: Any, axes: Axes = None, options: FFTOptions | dict | None = None,
          execution: Execution | None = None, prolog: Callback = None, epilog: Callback = None,
          stream: Any = None, *, direction: DirectionLike | None = None, norm: Norm | None = None) -> Any:
    """Complex-to-real inverse FFT; the last of ``axes`` becomes 2*(m-1) long (2*m - 1 with
    ``options={{"last_axis_parity": "odd"}}``). Unnormalized unless ``norm`` is given.

    Parameters:
        {parameters}

    Returns:
        The real signal.

    {raises}

    >>> import numpy as np
    >>> x = np.random.default_rng(3).standard_normal(10)
    >>> bool(np.allclose(irfft(np.fft.rfft(x), norm="backward"), x))
    True
    """
    return _stateless("irfft", operand, axes, options, execution, prolog, epilog, stream, direction, norm)
