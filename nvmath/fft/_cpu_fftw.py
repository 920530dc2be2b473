"""The ``fftw`` CPU engine's FFTW calls (``_cpu_engines.Fftw``): FFTW through pyFFTW, where pyFFTW
is installed (``pip install pyfftw``).

pyFFTW is optional and never a dependency of this package: its wheels carry FFTW, which is
licensed under the GPL (version 2 or later), so installing it is the user's choice. Where it is
installed, the ``auto`` mode measures this engine next to the others (``_cpu_engines``).

How it is fed: C2C and R2C (C2R is left to the other engines: FFTW's multi-dimensional C2R
overwrites its input), from the input as it lies into the output (or in place, for a C2C whose
input may be overwritten and which has no output yet). A call on one thread is cut along its
outermost batch axis into pieces of about :data:`PIECE_BYTES`, each transformed while it sits
in the core's cache. FFTW's planner takes the arrays' shape, strides and alignment; its plans
(``FFTW_MEASURE``, on scratch arrays of the same layout: it overwrites what it plans on) are
kept per thread for each such layout and executed on each call's arrays (``update_arrays``:
FFTW's new-array execute). What FFTW's planner learns (its *wisdom*) is kept in the artifact
store under this machine's identity, next to the compiled loops and the engine choices, so a
transform length is measured once per machine, not once per process.
Unnormalized both ways, as cuFFT.

Measured (CI VM, AMD EPYC, one thread, complex64 rows of 1024, CPU time, against SciPy's
compiled FFT): 16 rows 0.40x, 64 rows 0.51x, 256 rows 0.60x, 1024 rows 0.89-0.95x, 4096 rows
0.92-0.98x (the last two stream through memory).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import sys
import threading
from typing import Any, Callable

import numpy as np

from ._layout import outer_batch_axis

__all__ = ["PIECE_BYTES", "PLANNING_S", "SIMD_BYTES", "FftwRunner", "available", "version"]

#: Bytes of input per FFTW call on one thread: a piece in the core's L2 cache. A plan is made
#: (and measured) per shape, so pieces of one size serve every batch of a row length; they ran
#: as fast as one call (1024 x 1024 complex64 on the CI VM: 0.89-0.95x SciPy in pieces of 16 to
#: 64 rows, 0.90x in one call; FFTW_ESTIMATE's plan of the whole call ran 1.06x).
PIECE_BYTES = 256 << 10
#: FFTW's planner's time per plan (FFTW_MEASURE): a new transform length is measured once per
#: process (FFTW keeps what it learns, its "wisdom", for later plans). In place, FFTW_ESTIMATE's
#: plans ran 1024-point complex64 rows at half the speed of FFTW_MEASURE's (2.0 against 0.97
#: us a row on the CI VM); out of place 0.91 against 0.82.
PLANNING_S = 0.25
#: FFTW's SIMD code needs arrays on this boundary (pyFFTW plans others without it).
SIMD_BYTES = 16
_PLANS_MAX = 64  # per thread: more layouts than this and the oldest plans are dropped
_planner = threading.Lock()  # FFTW's planner is not thread-safe


def available() -> bool:
    """Whether pyFFTW is installed and its compiled module loads (checked once per process)."""
    global _loads
    if _loads is None:
        try:
            _loads = ("pyfftw" in sys.modules or importlib.util.find_spec("pyfftw") is not None) and bool(_pyfftw_core())
        except Exception as exc:  # a broken install: the engine is no candidate, and says why once
            import logging

            logging.getLogger("fftfuse.fft").warning("pyFFTW is installed but does not load (%s): the fftw CPU "
                                                     "engine is not used", exc)
            _loads = False
    return _loads


_loads: bool | None = None


_core: Any = None


def _pyfftw_core() -> Any:
    """pyFFTW's compiled module (``pyfftw.pyfftw``, which defines ``FFTW``). Importing the
    ``pyfftw`` package imports its SciPy, Dask and NumPy interfaces (0.7 s on the CI VM); the
    compiled module alone loads in a tenth of that, and is the same module a later ``import
    pyfftw`` finds."""
    global _core
    if _core is None:
        loaded = sys.modules.get("pyfftw.pyfftw")
        if loaded is None:
            folder = os.path.dirname(importlib.util.find_spec("pyfftw").origin)
            name = next(f for f in sorted(os.listdir(folder)) if f.startswith("pyfftw.") and f.endswith((".so", ".pyd")))
            spec = importlib.util.spec_from_file_location("pyfftw.pyfftw", os.path.join(folder, name))
            loaded = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(loaded)
        _core = loaded
    return _core


def version() -> str:
    """pyFFTW's version, from its metadata ("unknown" without)."""
    from importlib import metadata

    try:
        return metadata.version("pyfftw")
    except metadata.PackageNotFoundError:
        return "unknown"


class FftwRunner:
    """Runs the ``fftw`` engine's calls (``_cpu_engines.Fftw``, whose ``run`` this is); ``record``
    makes the store's record of a measurement on this machine (``_cpu_engines.machine_record``)."""

    def __init__(self, record: Callable[[str, str], Any]) -> None:
        self._record = record
        self._local = threading.local()
        self._pieces: dict[tuple, list | None] = {}

    def run(self, fft_type: str, x: np.ndarray, axes: tuple[int, ...], forward: bool, out: np.ndarray | None,
            threads: int, owned: bool) -> np.ndarray:
        if out is None:
            if fft_type == "C2C" and owned:
                out = x
            else:
                shape = list(x.shape)
                if fft_type == "R2C":
                    shape[axes[-1]] = shape[axes[-1]] // 2 + 1
                out = np.empty(shape, np.result_type(x.dtype, np.complex64))
        # The same memory (the executor transforms a staged block in place through two views of
        # it), or none shared (Engine.run).
        inplace = out is x or out.__array_interface__["data"][0] == x.__array_interface__["data"][0]
        layout = (x.shape, x.strides, x.itemsize, axes, threads)
        pieces = self._pieces.get(layout, False)
        if pieces is False:
            pieces = self._pieces[layout] = _pieces(x, axes, threads)
        if pieces is None:
            self._execute(x, out, axes, forward, threads, inplace)
        else:
            for part in pieces:
                self._execute(x[part], out[part], axes, forward, 1, inplace)
        return out

    def _execute(self, x: np.ndarray, out: np.ndarray, axes: tuple[int, ...], forward: bool, threads: int,
                 inplace: bool) -> None:
        """The FFT of ``x`` into ``out`` on this thread's plan for their layout: a plan of FFTW's
        SIMD code where both lie on ``SIMD_BYTES`` (the plan checks it), else one without, 4x
        slower, kept apart for such arrays only."""
        plans = getattr(self._local, "plans", None)
        if plans is None:
            plans = self._local.plans = {}
        key = (x.shape, x.strides, x.dtype.char, out.strides, out.dtype.char, axes, forward, threads, inplace)
        plan = plans.get(key)
        if plan is not None:
            try:
                plan.update_arrays(x, out)
            except ValueError:  # not aligned as the plan's SIMD code needs
                plan = None
        if plan is None:
            at = x.__array_interface__["data"][0] | out.__array_interface__["data"][0]
            key = key if at % SIMD_BYTES == 0 else key + ("unaligned",)
            plan = plans.get(key) or self._plan(plans, key, x, out, axes, forward, threads, inplace)
            plan.update_arrays(x, out)
        plan.execute()  # releases the GIL

    def _plan(self, plans: dict, key: tuple, x: np.ndarray, out: np.ndarray, axes: tuple[int, ...], forward: bool,
              threads: int, inplace: bool) -> Any:
        """A plan for arrays laid out and aligned as ``x`` and ``out``, kept under ``key``."""
        core = _pyfftw_core()
        if len(plans) >= _PLANS_MAX:
            plans.pop(next(iter(plans)))
        direction = "FFTW_FORWARD" if forward or x.dtype.kind == "f" else "FFTW_BACKWARD"  # R2C: forward
        # FFTW_MEASURE times candidate algorithms on the arrays it plans for, overwriting them:
        # it plans on scratch arrays of the same layout and alignment.
        scratch_x = _scratch(x, core.simd_alignment)
        scratch_out = scratch_x if inplace else _scratch(out, core.simd_alignment)
        measured = scratch_x is not None and scratch_out is not None
        with _planner:
            known = _wisdom(core)
            plan = plans[key] = core.FFTW(
                scratch_x if measured else x, scratch_out if measured else out, axes=axes, direction=direction,
                flags=("FFTW_MEASURE" if measured else "FFTW_ESTIMATE",), threads=threads,
                planning_timelimit=PLANNING_S if measured else None)
            learnt = core.export_wisdom() if measured else known
            if learnt != known:
                _keep_wisdom(learnt, self._record)
        return plan


def _pieces(x: np.ndarray, axes: tuple[int, ...], threads: int) -> list | None:
    """The indexes of the pieces a call of ``x``'s layout runs in: about ``PIECE_BYTES`` of the
    outermost batch axis each, on one thread; None (the whole call) on several, or without a
    batch axis."""
    axis = outer_batch_axis(x.shape, x.strides, axes)
    if threads > 1 or axis is None:
        return None
    rows = max(1, PIECE_BYTES // max(1, x.nbytes // x.shape[axis]))
    if rows >= x.shape[axis]:
        return None
    whole = (slice(None),) * axis
    return [whole + (slice(lo, lo + rows),) for lo in range(0, x.shape[axis], rows)]


_WISDOM = {"target": "cpu-fftw-wisdom", "kind": "fftw-wisdom"}
_wisdom_loaded = False


def _wisdom_key() -> str:
    from fftfuse_cache import artifact_key
    from fftfuse_compiler.cpu_native import cpu_identity

    return artifact_key(**_WISDOM, pyfftw=version(), **cpu_identity())


def _wisdom(core: Any) -> tuple:
    """FFTW's wisdom as the planner holds it, read from the store once per process first: what
    FFTW_MEASURE learnt on this machine (keyed by its identity, like the compiled loops), so
    that a new process plans in milliseconds what an earlier one measured."""
    global _wisdom_loaded
    if not _wisdom_loaded:
        _wisdom_loaded = True
        from fftfuse_cache import default_store, stored_record

        stored = stored_record(default_store(), _wisdom_key(), _WISDOM,
                               lambda record: tuple(base64.b64decode(w) for w in record["wisdom"]), "FFTW wisdom")
        if stored is not None:
            core.import_wisdom(stored)
    return core.export_wisdom()


def _keep_wisdom(wisdom: tuple, record: Callable[[str, str], Any]) -> None:
    from fftfuse_cache import default_store, keep_artifact

    payload = json.dumps({"wisdom": [base64.b64encode(w).decode() for w in wisdom]}).encode()
    keep_artifact(default_store(), _wisdom_key(), payload, record(_WISDOM["target"], _WISDOM["kind"]))


def _scratch(a: np.ndarray, alignment: int) -> np.ndarray | None:
    """An array of ``a``'s shape, type, strides and address modulo ``alignment`` (None where a
    stride is negative)."""
    if min(a.strides, default=0) < 0:
        return None
    extent = a.itemsize + sum((n - 1) * s for n, s in zip(a.shape, a.strides))
    raw = np.empty(extent + alignment, np.uint8)
    start = (a.__array_interface__["data"][0] - raw.__array_interface__["data"][0]) % alignment
    return np.ndarray(a.shape, a.dtype, buffer=raw, offset=start, strides=a.strides)
