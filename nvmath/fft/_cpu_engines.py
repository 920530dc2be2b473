"""The CPU executor's FFT engines, and which one runs each FFT call on this machine.

Engines (:data:`ENGINES`), each unnormalized both ways like cuFFT:

``ducc0``
    ``ducc0.fft`` on the arrays as they are, writing into the output where it may.
``ducc0-chunks``
    ``ducc0.fft`` (C2C only) into the output, called on at most ``CHUNK_ROWS`` indices of the
    outermost batch axis at a time, so that it never transforms more rows at once than the
    cache ways a power-of-two row stride leaves (see ``ducc0-padded``): no copy, one Python call
    per chunk (512 x 1024 complex64, one thread: 1.34 ms, against 2.63 ms in one call).
``ducc0-padded``
    ``ducc0.fft`` (C2C only) from the input (or the prolog's staged result) into the engine's
    own buffer, whose innermost axis is one cache line longer, so its rows never lie a power of
    two apart; the epilog (or a copy) then takes the result from there into the output. ducc0's
    single-precision batched transforms lose half their speed or more on some CPUs when they
    write rows a power of two of 4-16 KiB apart (256 x 1024 complex64 on an AVX-512 Xeon, one
    thread: 1.36 ms into the output, 0.62 ms into a padded buffer).
``scipy``
    SciPy's FFT (pocketfft; ducc's from SciPy 1.18): into the output where one is given, else in
    place where the input may be overwritten (C2C staged by the prolog), else into a new array.
    Where the run has no output yet (the result of ``FFT.execute`` or a stateless call), that new
    array becomes the result and the epilog runs in place on it (the engine *allocates*). It calls
    SciPy's compiled module directly (:func:`scipy_fft_module`), which takes an output array and
    skips ``scipy.fft``'s dispatch, 3-4 us a call (16 x 1024 float32 R2C: 24.4 -> 21.1 us on the CI
    VM); where that module is missing or answers differently, ``scipy.fft`` (an output given then
    takes a copy of a C2C input, transformed there, or of an R2C or C2R result).
``fftw``
    FFTW through pyFFTW (C2C and R2C), where pyFFTW is installed: it is optional, as its wheels
    carry the GPL-licensed FFTW (``nvmath/fft/_cpu_fftw.py``). Into the output, a call on one
    thread in pieces that stay in the core's cache.

Which engine runs a call (:func:`choose`), by mode (``FFTOptions.cpu_engine``, else
``$FFTFUSE_CPU_ENGINE``, else ``"auto"``):

``"auto"``
    Calls of at least :data:`MEASURE_MIN_BYTES`, and threaded calls (of 128 KiB or more: the
    executor gives the FFT a thread per 64 KiB), are measured once per machine, a call in one
    piece on one thread, the executor's count and all of them too: each candidate
    transforms a sample of the call (its batch cut to about :data:`SAMPLE_BYTES`, at least
    :data:`SAMPLE_MIN_ROWS` rows), one warm-up run then interleaved timed runs for about
    :data:`BUDGET_S` in all (2 to 7 each), as many at once as the executor runs blocks at once,
    fastest run kept (a one-thread call on the process's CPU time, which other jobs do not
    inflate; a threaded one on wall time, which its idle threads do not inflate); each candidate
    is charged the pass its result leaves: with an epilog, a multiply in place (where its result
    is the output, or becomes it) or into the output (where it keeps its own buffer); without
    one, the copy into the output an engine's own buffer needs; any must beat ducc0 by
    :data:`MARGIN` (2.5 to 16 ms on a
    2-core Xeon for the calls of ``benchmarks/cpu_engines.py``, plus importing ``scipy.fft``
    once). The winner is stored in the artifact store next to the compiled CPU loops, under a
    key holding the call (transform, precision, shape, strides, axes, threads), the engines'
    versions and this machine's identity (the loops' own,
    ``fftfuse_compiler.cpu_native.cpu_identity``): another process on this machine reads it back and
    measures nothing, another machine never sees it. Smaller calls, and calls whose sample
    would exceed :data:`SAMPLE_MAX_BYTES`, follow the rules.
``"rules"``
    Never measures, never reads the store: :func:`rule_engine`.
an engine's name
    That engine wherever it can run the call (``ducc0`` elsewhere).

The executor makes its choice when it is built (at planning): the first call of a new problem
on a new machine pays the measurement (a few ms), later calls and processes do not. The sample
is timed in cache; a large run streams through memory, so the executor of one tries the
winner against close runners-up on its own first runs (``_cpu_threads.EngineTrial``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import threading
import time
from typing import Any, Callable

import numpy as np
from fftfuse_compiler.dtypes import COMPLEX_OF, REAL_OF

from ._layout import outer_batch_axis
from ._tensor import dtype_name

__all__ = ["BUDGET_S", "ENGINES", "ENV", "MEASURE_MIN_BYTES", "MODES", "SAMPLE_BYTES", "SAMPLE_MAX_BYTES",
           "SAMPLE_MIN_ROWS", "Choice", "Engine", "FFTCall", "candidates", "choices_made", "choose", "engine",
           "engine_key", "forget_choices", "machine_record", "measure", "mode_of", "rule_engine",
           "scipy_fft_module", "split_timing_name", "timing_name"]

log = logging.getLogger("fftfuse.fft")

ENGINES = ("ducc0", "ducc0-chunks", "ducc0-padded", "scipy", "fftw")
MODES = ("auto", "rules") + ENGINES
ENV = "FFTFUSE_CPU_ENGINE"

#: One-thread calls whose input is smaller than this follow the rules: the engines differ by
#: microseconds there, and a plan of a small problem never looks anything up (the 1 x 1024 call
#: stays as cheap). From 64 KiB they differ by more than the fused call saves: 16 x 1024
#: complex64 on the AMD VM, one thread, 2-D: SciPy 77 us, ducc0 108. Threaded calls are
#: measured whatever their size: the engines' threads differ more than their kernels (16 x 1024
#: complex64 on a 16-core Xeon: SciPy 0.047 ms, ducc0 0.091).
MEASURE_MIN_BYTES = 64 << 10
#: The sample a candidate transforms: the call's batch cut to about this many bytes (one of the
#: executor's blocks: larger than a core's L2 cache, so the sample meets the memory traffic of
#: the call; a 256 KiB sample, in cache, ranked ducc0-chunks ahead of SciPy at 1024 x 1024
#: complex64, which the whole call reversed)...
SAMPLE_BYTES = 4 << 20
#: ...but never fewer rows than this (the power-of-two stride costs show from 16 rows)...
SAMPLE_MIN_ROWS = 16
#: ...and calls whose sample would exceed this follow the rules (measuring would cost too much).
SAMPLE_MAX_BYTES = 8 << 20
#: Time spent on timed runs of all candidates together, after one warm-up each.
BUDGET_S = 0.004
#: Timed runs per candidate, at least and at most.
RUNS = (2, 7)
#: Another engine must beat ducc0 by this fraction to be chosen. A wrong pick in a near tie costs
#: about the tie, while a margin costs every win smaller than itself: at 10%, ducc0 stayed where
#: SciPy ran 5% and 9% faster on one thread of the 16-core Xeon (16384 x 64 complex64, R2C
#: 1024 x 1024 float32: 1.08x and 1.10x the faster unfused call). What is left guards against
#: timer noise alone.
MARGIN = 0.03
#: The chunked engine's rows per ducc0 call (8: within the ways of an 8-way L1 cache).
CHUNK_ROWS = 8
#: The padded engine keeps a staging buffer per thread up to this size (larger ones are per call).
KEEP_BYTES = 16 << 20
_PAD_BYTES = 64  # one cache line
# Bump when the engines or the measurement change: every stored choice is then measured again.
_VERSION = 10


@dataclasses.dataclass(frozen=True)
class FFTCall:
    """One FFT call of an executor: what it transforms, laid out how, on how many threads.

    ``shape`` and ``strides`` (in elements) are the input of one call (a block of the batch, or
    the whole problem); ``axes`` the transformed axes, the last one halved by R2C and C2R;
    ``lastsize`` that axis's length on the real side; ``threads`` the FFT's own threads;
    ``parallel`` how many such calls run at once (on the executor's threads, one block each);
    ``epilog`` whether an epilog reads the result; ``adopt`` whether an array the engine makes
    may become the result (the run has no output yet: ``CpuExecutor.run`` with ``out=None``);
    ``other_threads`` the FFT's other thread counts worth measuring (a call in one piece: the
    executor's rule of a thread per 64 KiB was measured on two cores, and on sixteen a small
    call's best count is an engine's own matter).
    """

    fft_type: str
    dtype: str
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    axes: tuple[int, ...]
    lastsize: int
    threads: int
    parallel: int = 1
    epilog: bool = False
    adopt: bool = False
    other_threads: tuple[int, ...] = ()

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize

    @property
    def rows(self) -> int:
        """How many transforms the call makes (the product of its batch extents)."""
        return math.prod(n for a, n in enumerate(self.shape) if a not in self.axes)

    def sample(self) -> FFTCall:
        """This call with its outermost batch axis cut to about ``SAMPLE_BYTES``, keeping at
        least ``SAMPLE_MIN_ROWS`` transforms.

        >>> FFTCall("C2C", "complex64", (1024, 1024), (1024, 1), (1,), 1024, 1).sample().shape
        (512, 1024)
        >>> FFTCall("C2C", "complex64", (16384, 64), (64, 1), (1,), 64, 1).sample().shape
        (8192, 64)
        """
        batch = [a for a in range(len(self.shape)) if a not in self.axes and self.shape[a] > 1]
        if not batch:
            return self
        axis = max(batch, key=lambda a: abs(self.strides[a]))
        n = self.shape[axis]
        per_index, rows_per_index = self.nbytes // n, self.rows // n
        keep = max(SAMPLE_BYTES // max(per_index, 1), -(-SAMPLE_MIN_ROWS // max(rows_per_index, 1)))
        return dataclasses.replace(self, shape=self.shape[:axis] + (max(1, min(n, keep)),) + self.shape[axis + 1:])


@dataclasses.dataclass(frozen=True)
class Choice:
    """The engine for a call and how it was found: ``"given"`` (named by the mode), ``"rules"``,
    ``"stored"`` (measured earlier on this machine), ``"tried"`` (a runner-up of a measurement,
    faster on the executor's own runs) or ``"measured"`` (now, ``timings`` in us,
    keyed ``engine`` at the call's threads and ``engine@n`` at another count); ``threads`` the
    FFT's thread count measured best (0: the call's own)."""

    engine: str
    how: str
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    threads: int = 0


class Engine:
    """Runs FFT calls; :meth:`run` returns where the result is (``out`` or the engine's own array)."""

    name = ""
    #: Given no output, :meth:`run` returns a new array of its own that the caller may keep.
    allocates = False

    def supports(self, fft_type: str) -> bool:
        return True

    def run(self, fft_type: str, x: np.ndarray, axes: tuple[int, ...], forward: bool, out: np.ndarray | None,
            lastsize: int, threads: int, owned: bool) -> np.ndarray:
        """The FFT of ``x``, in ``out`` where given and the engine can, else in an array it returns.

        ``owned``: ``x`` may be overwritten. ``out`` never overlaps ``x`` unless it is ``x``.
        """
        raise NotImplementedError

    def runner(self, fft_type: str, axes: tuple[int, ...], forward: bool, lastsize: int,
               threads: int) -> Callable[[np.ndarray, np.ndarray | None, bool], np.ndarray]:
        """``run`` with everything but ``(x, out, owned)`` fixed, for a call made on every run of a
        plan (its ``x`` and ``out``, where given, of the call's shape and type)."""

        def run(x: np.ndarray, out: np.ndarray | None, owned: bool) -> np.ndarray:
            return self.run(fft_type, x, axes, forward, out, lastsize, threads, owned)

        return run


class Ducc0(Engine):
    name = "ducc0"

    def run(self, fft_type: str, x: np.ndarray, axes: tuple[int, ...], forward: bool, out: np.ndarray | None,
            lastsize: int, threads: int, owned: bool) -> np.ndarray:
        import ducc0

        if fft_type != "C2R":  # the calls the runner binds
            return self.runner(fft_type, axes, forward, lastsize, threads)(x, out, owned)
        # inorm=0: unnormalized both ways, as cuFFT.
        return ducc0.fft.c2r(x, axes=axes, lastsize=lastsize, forward=False, inorm=0, out=out, nthreads=threads,
                             allow_overwriting_input=owned)

    def runner(self, fft_type: str, axes: tuple[int, ...], forward: bool, lastsize: int,
               threads: int) -> Callable[[np.ndarray, np.ndarray | None, bool], np.ndarray]:
        """ducc0's function itself, its arguments positional where it takes them so (a third
        cheaper than keywords at 16 x 1024; ``inorm=0``: unnormalized both ways, as cuFFT)."""
        import ducc0

        if fft_type == "C2C":
            c2c = ducc0.fft.c2c
            return lambda x, out, owned: c2c(x, axes, forward, 0, out, threads)
        if fft_type == "R2C":
            r2c = ducc0.fft.r2c
            return lambda x, out, owned: r2c(x, axes, True, 0, out, threads)
        return super().runner(fft_type, axes, forward, lastsize, threads)


class Ducc0Padded(Engine):
    """ducc0 from the input as it lies into a buffer of this engine whose innermost axis is one
    cache line longer (one per thread, reused): the finish step reads the result from there."""

    name = "ducc0-padded"

    def __init__(self) -> None:
        self._local = threading.local()

    def supports(self, fft_type: str) -> bool:
        return fft_type == "C2C"

    def buffer(self, like: np.ndarray) -> np.ndarray:
        """A padded array of ``like``'s shape and type, kept for this thread up to ``KEEP_BYTES``."""
        kept = getattr(self._local, "buffers", None)
        if kept is None:
            kept = self._local.buffers = {}
        key = (like.shape, like.dtype)
        view = kept.get(key)
        if view is None:
            pad = max(1, _PAD_BYTES // like.itemsize)
            view = np.empty(like.shape[:-1] + (like.shape[-1] + pad,), like.dtype)[..., :like.shape[-1]]
            if like.nbytes <= KEEP_BYTES:  # larger ones (whole phased problems) live for one call
                kept[key] = view
        return view

    def run(self, fft_type: str, x: np.ndarray, axes: tuple[int, ...], forward: bool, out: np.ndarray | None,
            lastsize: int, threads: int, owned: bool) -> np.ndarray:
        import ducc0

        # The slow part is writing rows a power of two apart; reading them costs nothing extra.
        return ducc0.fft.c2c(x, axes=axes, forward=forward, inorm=0, out=self.buffer(x), nthreads=threads)


class Ducc0Chunks(Engine):
    """ducc0 on at most ``CHUNK_ROWS`` indices of the outermost batch axis at a time, into the
    output: ducc0 then never has more rows in flight than the cache ways that a power-of-two
    row stride leaves it (no copy, the epilog stays in place; a Python call per chunk)."""

    name = "ducc0-chunks"

    def supports(self, fft_type: str) -> bool:
        return fft_type == "C2C"

    def run(self, fft_type: str, x: np.ndarray, axes: tuple[int, ...], forward: bool, out: np.ndarray | None,
            lastsize: int, threads: int, owned: bool) -> np.ndarray:
        import ducc0

        axis = outer_batch_axis(x.shape, x.strides, axes)
        if out is None:
            out = x if owned else np.empty_like(x)
        if axis is None:
            return ducc0.fft.c2c(x, axes=axes, forward=forward, inorm=0, out=out, nthreads=threads)
        c2c, whole = ducc0.fft.c2c, (slice(None),) * axis
        for lo in range(0, x.shape[axis], CHUNK_ROWS):
            part = whole + (slice(lo, lo + CHUNK_ROWS),)
            c2c(x[part], axes, forward, 0, out[part], threads)  # positional: a third cheaper per call
        return out


class Scipy(Engine):
    name = "scipy"
    allocates = True

    def run(self, fft_type: str, x: np.ndarray, axes: tuple[int, ...], forward: bool, out: np.ndarray | None,
            lastsize: int, threads: int, owned: bool) -> np.ndarray:
        compiled = scipy_fft_module()
        if compiled is None:
            return self._public(fft_type, x, axes, forward, out, lastsize, threads, owned)
        # An output of another shape or type is not written; the runner makes the call.
        name, result_shape = dtype_name(x.dtype), list(x.shape)
        if fft_type == "C2C":
            fits = _fits(out, x.shape, name)
        elif fft_type == "R2C":
            result_shape[axes[-1]] = x.shape[axes[-1]] // 2 + 1
            fits = _fits(out, result_shape, COMPLEX_OF[name])
        else:
            result_shape[axes[-1]] = lastsize
            fits = _fits(out, result_shape, REAL_OF[name])
        return self.runner(fft_type, axes, forward, lastsize, threads)(x, out if fits else None, owned)

    def runner(self, fft_type: str, axes: tuple[int, ...], forward: bool, lastsize: int,
               threads: int) -> Callable[[np.ndarray, np.ndarray | None, bool], np.ndarray]:
        """SciPy's compiled function itself where there is one, its arguments positional (a,
        axes, [lastsize,] forward, inorm, out, nthreads; ``inorm=0``: unnormalized both ways, as
        cuFFT): ``run`` finds it and checks the output's shape on every call, 0.6 us of a 16 x
        1024 call's 38 on the CI VM."""
        compiled = scipy_fft_module()
        if compiled is None:
            return super().runner(fft_type, axes, forward, lastsize, threads)
        if fft_type == "C2C":
            c2c = compiled.c2c

            def run_c2c(x: np.ndarray, out: np.ndarray | None, owned: bool) -> np.ndarray:
                return c2c(x, axes, forward, 0, x if out is None and owned else out, threads)

            return run_c2c
        if fft_type == "R2C":
            r2c = compiled.r2c
            return lambda x, out, owned: r2c(x, axes, True, 0, out, threads)
        c2r = compiled.c2r
        return lambda x, out, owned: c2r(x, axes, lastsize, False, 0, out, threads)

    @staticmethod
    def _public(fft_type: str, x: np.ndarray, axes: tuple[int, ...], forward: bool, out: np.ndarray | None,
                lastsize: int, threads: int, owned: bool) -> np.ndarray:
        import scipy.fft

        if fft_type == "C2C":
            # In place where x may be overwritten (staged by the prolog, often into the output),
            # else in the output after a copy of x into it (scipy.fft takes no output, and a new
            # array costs more than the copy: its first writes fetch every line), else a new
            # array. norm="forward": an unscaled inverse.
            if not owned and _fits(out, x.shape, dtype_name(x.dtype)):
                np.copyto(out, x)
                x, owned = out, True
            norm = "backward" if forward else "forward"
            if len(axes) == 1:  # the 1-D functions: 3% faster than the N-D ones at 256 x 1024
                fn = scipy.fft.fft if forward else scipy.fft.ifft
                return fn(x, axis=axes[0], norm=norm, overwrite_x=owned, workers=threads)
            fn = scipy.fft.fftn if forward else scipy.fft.ifftn
            return fn(x, axes=axes, norm=norm, overwrite_x=owned, workers=threads)
        if fft_type == "R2C":
            if len(axes) == 1:
                return scipy.fft.rfft(x, axis=axes[0], workers=threads)
            return scipy.fft.rfftn(x, axes=axes, workers=threads)
        if len(axes) == 1:
            return scipy.fft.irfft(x, n=lastsize, axis=axes[0], norm="forward", overwrite_x=owned, workers=threads)
        lengths = [x.shape[a] for a in axes[:-1]] + [lastsize]
        return scipy.fft.irfftn(x, s=lengths, axes=axes, norm="forward", overwrite_x=owned, workers=threads)


def _fits(out: np.ndarray | None, shape: Any, dtype: str) -> bool:
    """Whether ``out`` is given, of ``shape`` and of the type named ``dtype``."""
    return out is not None and out.shape == tuple(shape) and dtype_name(out.dtype) == dtype


#: Where SciPy keeps the compiled module its ``scipy.fft`` functions call, newest last: (package,
#: module). Up to SciPy 1.17 pocketfft's; SciPy 1.18 has ducc's, with the same functions.
SCIPY_FFT_MODULES = (("scipy.fft._pocketfft", "pypocketfft"), ("scipy.fft._duccfft", "pyduccfft"))


@functools.lru_cache(maxsize=None)
def scipy_fft_module() -> Any:
    """SciPy's compiled FFT module (the first of :data:`SCIPY_FFT_MODULES` that imports), which
    the ``scipy.fft`` functions call after their checks, or None where none is there or it does
    not answer as ``scipy.fft`` does. It is not SciPy's public interface: it is checked once per
    process on a C2C, an R2C and a C2R transform of two axes, one into a given output, against
    ``scipy.fft`` itself, and left alone (``scipy.fft`` serves) on any difference or error.

    >>> scipy_fft_module() is None or callable(scipy_fft_module().c2c)
    True
    """
    import importlib

    for package, name in SCIPY_FFT_MODULES:
        try:
            module = getattr(importlib.import_module(package), name)
        except Exception:  # not this SciPy's layout
            continue
        try:
            if _answers_as_scipy_fft(module):
                return module
            log.info("SciPy's module %s.%s answers differently from scipy.fft: the scipy engine calls scipy.fft",
                     package, name)
        except Exception as exc:  # renamed or changed: the public functions serve
            log.info("SciPy's module %s.%s is not usable (%s): the scipy engine calls scipy.fft", package, name, exc)
        return None
    log.info("SciPy's compiled FFT module was not found: the scipy engine calls scipy.fft")
    return None


def _answers_as_scipy_fft(module: Any) -> bool:
    """Whether ``module``'s c2c (into a given output), r2c and c2r match ``scipy.fft``'s."""
    import scipy.fft

    rng = np.random.default_rng(1)
    real = rng.standard_normal((3, 6, 8))
    cplx = real + 1j * rng.standard_normal(real.shape)
    half = scipy.fft.rfftn(real, axes=(1, 2))
    out = np.empty_like(cplx)
    checks = (
        (module.c2c(cplx, (1, 2), False, 0, out, 1), scipy.fft.ifftn(cplx, axes=(1, 2), norm="forward")),
        (out, scipy.fft.ifftn(cplx, axes=(1, 2), norm="forward")),
        (module.r2c(real, (1, 2), True, 0, None, 1), half),
        (module.c2r(half, (1, 2), 8, False, 0, None, 1), scipy.fft.irfftn(half, s=(6, 8), axes=(1, 2),
                                                                            norm="forward")),
    )
    return all(got.shape == want.shape and got.dtype == want.dtype and np.allclose(got, want, rtol=1e-12, atol=1e-12)
               for got, want in checks)


class Fftw(Engine):
    """FFTW through pyFFTW, where installed: ``nvmath/fft/_cpu_fftw.py`` runs its calls."""

    name = "fftw"

    def __init__(self) -> None:
        from ._cpu_fftw import FftwRunner

        self._runner = FftwRunner(machine_record)

    def supports(self, fft_type: str) -> bool:
        return fft_type in ("C2C", "R2C")  # FFTW's multi-dimensional C2R overwrites its input

    def run(self, fft_type: str, x: np.ndarray, axes: tuple[int, ...], forward: bool, out: np.ndarray | None,
            lastsize: int, threads: int, owned: bool) -> np.ndarray:
        return self._runner.run(fft_type, x, axes, forward, out, threads, owned)


_ENGINE_TYPES: dict[str, Callable[[], Engine]] = {"ducc0": Ducc0, "ducc0-chunks": Ducc0Chunks,
                                                   "ducc0-padded": Ducc0Padded, "scipy": Scipy, "fftw": Fftw}


def engine(name: str) -> Engine:
    """A new engine of that name (one per executor: a staging engine keeps buffers)."""
    try:
        return _ENGINE_TYPES[name]()
    except KeyError:
        raise ValueError(f"unknown CPU FFT engine {name!r}; expected one of {ENGINES}") from None


def mode_of(mode: str | None) -> str:
    """The mode in force: ``mode``, else ``$FFTFUSE_CPU_ENGINE``, else ``"auto"``.

    >>> mode_of("rules"), mode_of(None) in MODES
    ('rules', True)
    """
    where = "FFTOptions.cpu_engine"
    if mode is None:
        mode, where = os.environ.get(ENV, "").strip() or "auto", f"${ENV}"
    if mode not in MODES:
        raise ValueError(f"{where} must be one of {', '.join(map(repr, MODES))}; got {mode!r}")
    return mode


def _available(name: str) -> bool:
    if name == "fftw":
        from ._cpu_fftw import available

        return available()
    if name != "scipy":
        return True
    try:
        import scipy.fft  # noqa: F401
    except ImportError:
        return False
    return True


def candidates(call: FFTCall) -> list[str]:
    """The engines that can run ``call`` here, ducc0 first."""
    return [n for n in ENGINES if engine(n).supports(call.fft_type) and _available(n)]


def rule_engine(call: FFTCall) -> str:
    """The engine the rules give: ducc0, except for single-precision C2C on one thread where
    ducc0 would write elements a power of two of 4 to 16 KiB apart. Rows (at least
    ``SAMPLE_MIN_ROWS``) lying so far apart: ducc0 in chunks of ``CHUNK_ROWS`` rows (measured 2x
    faster on an AVX-512 Xeon at 512 x 1024, a Python call more per 8 rows where the stride does
    not hurt). An outer transformed axis so strided, at least ``SAMPLE_MIN_ROWS`` long (the
    columns of a 2-D FFT): ducc0 into its padded buffer (4096 x 1024, one thread, the 2-D mask:
    0.95x SciPy unfused against 1.11x on the 16-core Xeon, 0.75x against 0.85x on the AMD VM;
    too large to sample, it is never measured). A call on several threads stays whole: each
    chunk would start ducc0's threads for 8 rows (on 16 threads of a 16-core Xeon, 1024 x 1024:
    a fused call 5.3 ms in chunks, the whole FFT 0.67 ms).

    >>> row = lambda n, rows, threads=1: FFTCall("C2C", "complex64", (rows, n), (n, 1), (1,), n, threads)
    >>> rule_engine(row(1024, 64)), rule_engine(row(1024, 1)), rule_engine(row(1000, 64)), rule_engine(row(1024, 64, 4))
    ('ducc0-chunks', 'ducc0', 'ducc0', 'ducc0')
    >>> rule_engine(FFTCall("C2C", "complex64", (4096, 1024), (1024, 1), (0, 1), 1024, 1))
    'ducc0-padded'
    """
    if call.fft_type != "C2C" or call.dtype != "complex64" or call.threads > 1:
        return "ducc0"
    item = np.dtype(call.dtype).itemsize
    innermost = min(range(len(call.shape)), key=lambda a: abs(call.strides[a]))

    def strided(a: int) -> bool:
        step = abs(call.strides[a]) * item
        return call.shape[a] > 1 and 4096 <= step <= 16384 and step & (step - 1) == 0

    if call.rows >= SAMPLE_MIN_ROWS and any(strided(a) for a in range(len(call.shape)) if a not in call.axes):
        return "ducc0-chunks"
    if any(strided(a) and call.shape[a] >= SAMPLE_MIN_ROWS for a in call.axes if a != innermost):
        return "ducc0-padded"
    return "ducc0"


def engine_key(call: FFTCall) -> str:
    """The store key of the engine chosen for ``call`` on this machine."""
    from fftfuse_cache import artifact_key
    from fftfuse_compiler.cpu_native import cpu_identity

    return artifact_key(target="cpu-fft-engine", fft_type=call.fft_type, dtype=call.dtype, shape=list(call.shape),
                        strides=list(call.strides), axes=list(call.axes), lastsize=call.lastsize,
                        threads=call.threads, parallel=call.parallel, epilog=call.epilog, adopt=call.adopt,
                        other_threads=list(call.other_threads), engines=_engines_stamp(), **cpu_identity())


@functools.cache
def _engines_stamp() -> str:
    import ducc0

    versions = [f"ducc0={ducc0.__version__}", f"numpy={np.__version__}", f"v{_VERSION}"]
    try:
        import scipy  # its package only (cheaper than importlib.metadata), not scipy.fft

        versions.append(f"scipy={scipy.__version__}")
    except ImportError:  # not installed: the scipy engine is no candidate
        versions.append("scipy=none")
    if _available("fftw"):  # installed or removed: every choice is measured again
        from ._cpu_fftw import version

        versions.append(f"pyfftw={version()}")
    return ",".join(versions)


_memo: dict[str, Choice] = {}
_memo_lock = threading.Lock()
_made: dict[FFTCall, Choice] = {}  # what this process chose, for reports (fftfuse-demo)
_MADE_MAX = 256


def choices_made() -> list[tuple[FFTCall, Choice]]:
    """Every call this process chose an engine for (the latest ``_MADE_MAX``), oldest first."""
    with _memo_lock:
        return list(_made.items())


def _record(call: FFTCall, choice: Choice) -> Choice:
    with _memo_lock:
        _made.pop(call, None)
        _made[call] = choice
        while len(_made) > _MADE_MAX:
            del _made[next(iter(_made))]
    return choice


def choose(call: FFTCall, mode: str | None = None, *, store: Any = None) -> Choice:
    """The engine for ``call`` under ``mode`` (see the module's description).

    >>> call = FFTCall("C2C", "complex64", (4, 1024), (1024, 1), (1,), 1024, 1)
    >>> choose(call, "rules"), choose(call, "scipy").engine
    (Choice(engine='ducc0', how='rules', timings={}, threads=0), 'scipy')
    """
    mode = mode_of(mode)
    if mode in ENGINES:
        can = engine(mode).supports(call.fft_type) and _available(mode)
        return _record(call, Choice(mode if can else "ducc0", "given" if can else "rules"))
    sample = call.sample()
    if (mode == "rules" or (call.nbytes < MEASURE_MIN_BYTES and call.threads == 1)
            or sample.nbytes > SAMPLE_MAX_BYTES):
        return _record(call, Choice(rule_engine(call), "rules"))
    key = engine_key(call)
    with _memo_lock:
        known = _memo.get(key)
    if known is not None:
        return _record(call, known)
    if store is None:
        from fftfuse_cache import default_store

        store = default_store()
    choice = _stored(store, key)
    if choice is None:
        timings = measure(sample)
        name, threads = _fastest(timings)
        choice = Choice(name, "measured", timings, threads)
        log.info("CPU FFT engine for %s %s %s on %d thread(s): %s%s (%s)", call.fft_type, call.dtype, call.shape,
                 call.threads, choice.engine, f" on {threads} threads" if threads else "",
                 ", ".join(f"{k} {v:.0f} us" for k, v in timings.items()))
        from fftfuse_cache import keep_artifact

        payload = json.dumps({"engine": choice.engine, "threads": threads, "timings_us": timings,
                              "sample": list(sample.shape)}).encode()
        keep_artifact(store, key, payload, choice_record(call, choice.engine, threads))
    with _memo_lock:
        _memo[key] = choice
    return _record(call, choice)


def _fastest(timings: dict[str, float]) -> tuple[str, int]:
    """The fastest engine and its thread count (0: the call's), ducc0 on the call's threads
    unless another beats it by ``MARGIN``.

    >>> _fastest({"ducc0": 100.0, "scipy": 98.0, "ducc0@16": 60.0})
    ('ducc0', 16)
    >>> _fastest({"ducc0": 100.0, "scipy": 98.0})
    ('ducc0', 0)
    """
    best = min(timings, key=timings.__getitem__)
    if best != "ducc0" and timings[best] > (1 - MARGIN) * timings["ducc0"]:
        best = "ducc0"
    return split_timing_name(best)


def timing_name(engine: str, threads: int = 0) -> str:
    """A measurement's name for ``engine`` on ``threads`` FFT threads (0: the call's own).

    >>> timing_name("scipy", 16), timing_name("ducc0-chunks")
    ('scipy@16', 'ducc0-chunks')
    """
    return f"{engine}@{threads}" if threads else engine


def split_timing_name(name: str) -> tuple[str, int]:
    """The engine and FFT thread count (0: the call's own) that :func:`timing_name` named.

    >>> split_timing_name("scipy@16"), split_timing_name("ducc0-chunks")
    (('scipy', 16), ('ducc0-chunks', 0))
    """
    engine, _, threads = name.partition("@")
    return engine, int(threads or 0)


def forget_choices() -> None:
    """Drop this process's memo of choices (the store keeps them)."""
    with _memo_lock:
        _memo.clear()


def choice_record(call: FFTCall, engine: str, threads: int = 0) -> Any:
    """The store's record of the engine (and thread count, 0: the call's) chosen for ``call`` (a
    ``fftfuse_cache.ArtifactMeta``)."""
    return machine_record("cpu-fft-engine", "fft-engine", element_dtype=call.dtype,
                          extra={"engine": engine, "threads": threads, "fft_type": call.fft_type})


def machine_record(target: str, kind: str, element_dtype: str | None = None, extra: dict | None = None) -> Any:
    """The store's record of a choice measured on this machine: ``target`` and ``kind``, the
    machine's identity (with ``extra``) and its summary as the architecture."""
    from fftfuse_cache import ArtifactMeta
    from fftfuse_compiler.cpu_native import cpu_identity, cpu_summary

    identity = cpu_identity()
    return ArtifactMeta(target, kind, element_dtype=element_dtype, arch=cpu_summary(identity),
                        extra={**(extra or {}), **identity})


def _stored(store: Any, key: str) -> Choice | None:
    from fftfuse_cache import stored_record

    def read(record: Any) -> Choice:
        name, threads = record["engine"], record.get("threads", 0)
        if name not in ENGINES:
            raise ValueError(f"unknown engine {name!r}")
        if type(threads) is not int or threads < 0:
            raise ValueError(f"bad thread count {threads!r}")
        timings = record.get("timings_us", {})
        if not isinstance(timings, dict) or not all(type(t) in (int, float) for t in timings.values()):
            raise ValueError(f"bad timings {timings!r}")
        return Choice(name, "stored", {str(k): float(t) for k, t in timings.items()}, threads)

    return stored_record(store, key, {"target": "cpu-fft-engine", "kind": "fft-engine"}, read, "CPU FFT engine choice")


def measure(call: FFTCall) -> dict[str, float]:
    """Each candidate's best time (us) for ``call`` on random data, one warm-up run each then
    interleaved timed runs; ``call.parallel`` copies at once on as many threads where the
    executor runs that many blocks at once (so the GIL and the memory bus are shared as they will
    be). Each is charged the pass the executor's finish step makes on its result: with an epilog
    a multiply (NumPy's, as the compiled loop costs about the same), in place where the result
    is the output or becomes it (``call.adopt`` and an engine that allocates), else from the
    engine's array into the output; without an epilog, the copy into the output where the
    result is neither."""
    rng = np.random.default_rng(0)
    pairs = [_pair(call, rng) for _ in range(call.parallel)]
    engines = {n: (engine(n), call.threads) for n in candidates(call)}
    engines.update({timing_name(n, t): (e, t) for t in call.other_threads for n, (e, _) in list(engines.items())})
    pool = None
    if call.parallel > 1:
        import concurrent.futures

        pool = concurrent.futures.ThreadPoolExecutor(call.parallel, thread_name_prefix="fftfuse-measure")

    def one(e: Engine, threads: int, pair: tuple) -> None:
        x, out, source, h = pair
        if call.fft_type == "C2R":
            np.copyto(x, source)  # C2R may overwrite its input
        keeps = call.adopt and e.allocates  # its new array becomes the result
        if call.adopt and not keeps:
            out = np.empty_like(out)  # as the executor makes a new output for each such call
        result = e.run(call.fft_type, x, call.axes, True, None if keeps else out, call.lastsize, threads,
                       call.fft_type == "C2R")
        if call.epilog:
            np.multiply(result, h, out=result if keeps or result is out else out)
        elif result is not out and not keeps:
            np.copyto(out, result)

    # One thread: the process's CPU time, so that time lost to other jobs on a shared machine does
    # not count (wall time ranked engines by who waited for a core: two threads, load 3.4). More
    # threads: wall time, as CPU time charges an engine for its threads' idle spinning and not for
    # waiting on the GIL or on each other (a 16-core Xeon ranked ducc0 in 8-row chunks, each call
    # starting 16 threads, first at 1024 x 1024: 5.3 ms a call against 2.0 for SciPy).
    # Thread counts compared with each other: wall time too.
    single = call.threads == 1 and call.parallel == 1 and not call.other_threads
    clock = time.process_time if single else time.perf_counter

    def once(e: Engine, threads: int) -> float:
        t = clock()
        if pool is None:
            one(e, threads, pairs[0])
        else:
            list(pool.map(lambda pair: one(e, threads, pair), pairs))
        return clock() - t

    try:
        for e, threads in engines.values():
            once(e, threads)  # warm-up: plans, twiddles, buffers, threads
        best = {n: math.inf for n in engines}
        started, runs = time.perf_counter(), 0
        while runs < RUNS[1] and (runs < RUNS[0] or time.perf_counter() - started < BUDGET_S):
            for n, (e, threads) in engines.items():
                best[n] = min(best[n], once(e, threads))
            runs += 1
    finally:
        if pool is not None:
            pool.shutdown()
    return {n: round(t * 1e6, 1) for n, t in best.items()}


def _pair(call: FFTCall, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random input laid out like ``call``'s, an output for it, a copy of the input, and a
    filter of the output's shape (ones: the values do not change the time)."""
    x = _laid_out(call, rng)
    out_shape = list(call.shape)
    if call.fft_type == "R2C":
        out_shape[call.axes[-1]] = call.shape[call.axes[-1]] // 2 + 1
    elif call.fft_type == "C2R":
        out_shape[call.axes[-1]] = call.lastsize
    out_dtype = (REAL_OF if call.fft_type == "C2R" else COMPLEX_OF)[call.dtype]
    return x, np.empty(out_shape, out_dtype), x.copy(), np.ones(out_shape, out_dtype)


def _laid_out(call: FFTCall, rng: np.random.Generator) -> np.ndarray:
    """Random input of ``call``'s shape, dense in the order of its strides."""
    order = sorted(range(len(call.shape)), key=lambda a: -abs(call.strides[a]))
    dense = rng.standard_normal([call.shape[a] for a in order])
    if np.dtype(call.dtype).kind == "c":
        dense = dense + 1j * rng.standard_normal(dense.shape)
    dense = dense.astype(call.dtype)
    return dense.transpose(np.argsort(order))
