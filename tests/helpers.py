"""What the tests share: seeded random operands, float64 NumPy references and one closeness check.

The check compares the largest error with the largest magnitude of the reference, so a tolerance
reads as "this many units of the result's scale". Its defaults follow the precision of the
computation (``precision_of``); a test that needs a stricter bound passes ``rtol``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

# The default bound per precision: well above the error of a float32/float64 FFT of the sizes the
# tests use (about 1e-6 and 1e-15 of the scale), well below what a wrong element would give.
TOLERANCE = {"half": 1e-2, "single": 1e-4, "double": 1e-10}

SINGLE = {np.dtype(t) for t in (np.float32, np.complex64)}
HALF = {np.dtype(np.float16)}


def rand(shape: int | Sequence[int], dtype: Any = np.complex128, seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Standard normal values of ``dtype`` (complex: independent real and imaginary parts); ``seed``
    may be a Generator, whose stream of draws goes on."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def to_host(x: Any) -> np.ndarray:
    """A NumPy array of ``x``: NumPy, CuPy (or the fake GPU's arrays), anything ``np.asarray`` takes."""
    if hasattr(x, "get") and not isinstance(x, np.ndarray):
        return np.asarray(x.get())
    return np.asarray(x)


def wide(x: Any) -> np.ndarray:
    """``x`` on the host in double precision (complex128 or float64)."""
    x = to_host(x)
    return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)


def reference(kind: str, x: Any, axes: Sequence[int], n_last: int | None = None, norm: str | None = None) -> np.ndarray:
    """``kind`` ("fft", "ifft", "rfft", "irfft") of ``x`` in float64 NumPy.

    Without ``norm`` both directions are unnormalized, as cuFFT's are; ``n_last`` is irfft's output
    length along the last axis (default ``2 * (m - 1)``)."""
    x = wide(x)
    axes = tuple(axes)
    forward, inverse = (norm, norm) if norm else ("backward", "forward")
    if kind == "fft":
        return np.fft.fftn(x, axes=axes, norm=forward)
    if kind == "ifft":
        return np.fft.ifftn(x, axes=axes, norm=inverse)
    if kind == "rfft":
        return np.fft.rfftn(x, axes=axes, norm=forward)
    if kind == "irfft":
        last = 2 * (x.shape[axes[-1]] - 1) if n_last is None else n_last
        s = [x.shape[a] for a in axes[:-1]] + [last]
        return np.fft.irfftn(x, s=s, axes=axes, norm=inverse)
    raise ValueError(f"kind is one of 'fft', 'ifft', 'rfft', 'irfft', not {kind!r}")


def result_shape(kind: str, shape: Sequence[int], axes: Sequence[int]) -> tuple[int, ...]:
    """The shape of ``kind``'s result for an operand of ``shape`` (irfft: even last length)."""
    out = list(shape)
    if kind == "rfft":
        out[axes[-1]] = shape[axes[-1]] // 2 + 1
    elif kind == "irfft":
        out[axes[-1]] = 2 * (shape[axes[-1]] - 1)
    return tuple(out)


def precision_of(dtype: Any) -> str:
    """'half', 'single' or 'double' for a real or complex dtype."""
    dtype = np.dtype(dtype)
    if dtype in HALF:
        return "half"
    return "single" if dtype in SINGLE else "double"


def relative_error(got: Any, want: Any) -> float:
    """The largest error relative to the largest magnitude of ``want``."""
    got, want = wide(got), np.asarray(want)
    scale = float(np.abs(want).max()) if want.size else 0.0
    return float(np.abs(got - want).max()) / (scale or 1.0) if want.size else 0.0


def assert_close(got: Any, want: Any, dtype: Any = None, *, rtol: float | None = None) -> None:
    """``got`` equals the reference ``want`` within ``rtol`` of its scale.

    ``rtol`` defaults to the tolerance of ``dtype``'s precision (default: ``got``'s dtype)."""
    host = to_host(got)
    want = np.asarray(want)
    assert host.shape == want.shape, f"shape {host.shape}, expected {want.shape}"
    if rtol is None:
        rtol = TOLERANCE[precision_of(host.dtype if dtype is None else dtype)]
    err = relative_error(host, want)
    assert err <= rtol, f"max relative error {err:.3g} (allowed {rtol:.3g})"


def chain_reference(x: Any, axes: Sequence[int], prolog: Any = None, pointwise: Any = None, epilog: Any = None,
                    norm: str | None = "backward") -> np.ndarray:
    """A filtering chain (prolog, forward FFT, pointwise step, inverse FFT, epilog) in float64
    NumPy; each step is ``f(array, indices)`` or None. Real operands take rfftn/irfftn; with
    ``norm=None`` neither direction is normalized."""
    real = np.asarray(x).dtype.kind == "f"
    x = wide(x)
    axes = tuple(a % x.ndim for a in axes)
    a = prolog(x, np.indices(x.shape)) if prolog else x
    scaled = norm or "backward"
    spectrum = np.fft.rfftn(a, axes=axes, norm=scaled) if real else np.fft.fftn(a, axes=axes, norm=scaled)
    if pointwise:
        spectrum = pointwise(spectrum, np.indices(spectrum.shape))
    if real:
        y = np.fft.irfftn(spectrum, s=[x.shape[a] for a in axes], axes=axes, norm=scaled)
    else:
        y = np.fft.ifftn(spectrum, axes=axes, norm=scaled)
    if norm is None:
        y = y * np.prod([x.shape[a] for a in axes])
    return epilog(y, np.indices(y.shape)) if epilog else y
