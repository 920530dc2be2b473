"""The stateless functions ``fft``, ``ifft``, ``rfft``, ``irfft``: a Dask operand becomes a lazy graph
(``_dask``), any other runs through the engines kept per thread (``_reuse``)."""

from __future__ import annotations

from typing import Any

from ._api import Axes, Callback
from ._docs import shared_doc
from ._options import DirectionLike, Execution, FFTOptions, Norm
from ._reuse import run_stateless
from ._trace import ArrayTracer, traced_fft


def _lazy(transform: str, operand: Any, axes: Any, options: Any, execution: Any, prolog: Any, epilog: Any,
          stream: Any, direction: Any = None, norm: Any = None) -> Any:
    """A Dask operand: a lazy graph of per-chunk FFTs (Dask is imported only then)."""
    from ._dask import dask_fft

    return dask_fft(transform, operand, axes, options, execution, prolog, epilog, stream, direction, norm)


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
    run = _lazy if type(operand).__module__.startswith("dask.") else \
        traced_fft if type(operand) is ArrayTracer else run_stateless
    return run("fft", operand, axes, options, execution, prolog, epilog, stream, direction, norm)


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
    run = _lazy if type(operand).__module__.startswith("dask.") else \
        traced_fft if type(operand) is ArrayTracer else run_stateless
    return run("ifft", operand, axes, options, execution, prolog, epilog, stream, direction, norm)


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
    run = _lazy if type(operand).__module__.startswith("dask.") else \
        traced_fft if type(operand) is ArrayTracer else run_stateless
    return run("rfft", operand, axes, options, execution, prolog, epilog, stream, direction, norm)


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
    run = _lazy if type(operand).__module__.startswith("dask.") else \
        traced_fft if type(operand) is ArrayTracer else run_stateless
    return run("irfft", operand, axes, options, execution, prolog, epilog, stream, direction, norm)
