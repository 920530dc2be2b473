"""``nvmath.fft.tune_chains``: the one-kernel chain's knobs measured on this GPU and kept in the cache."""

from __future__ import annotations

import dataclasses
import logging
import statistics
from typing import Any, Callable, Sequence

import numpy as np

from . import _chain_kernel, _chain_knobs
from ._options import FFTOptions
from ._planner import device_arch, plan_chain, problem_for

__all__ = ["tune_chains", "candidates"]

log = logging.getLogger("fftfuse.fft")

LENGTHS = tuple(2**k for k in range(4, 13))  # 16 .. 4096: every length the one kernel takes
ELEMENTS_PER_THREAD = (4, 8, 16, 32)
THREADS_PER_BLOCK = (64, 128, 256)


def candidates(n: int, precision: str, arch: int) -> list[tuple[int, int]]:
    """The ``(ffts_per_block, elements_per_thread)`` pairs tried for a length-``n`` chain: each
    number of elements per thread with blocks of 64, 128 and 256 threads, where cuFFTDx implements
    the pair with one layout for both directions and the default shared memory; the rule's first."""
    rule = _chain_kernel.rule_knobs(n, precision, arch)
    out = [rule]
    for ept in ELEMENTS_PER_THREAD:
        if ept > n or (precision == "float64" and ept > 16):  # double precision: registers
            continue
        per_fft = n // ept
        for threads in THREADS_PER_BLOCK:
            pair = (max(1, threads // per_fft), ept)
            if pair not in out and _chain_kernel.fits_one_kernel(n, precision, *pair, arch):
                out.append(pair)
    return out


def _mul(v: Any, d: Any) -> Any:
    return v * d


def tune_chains(lengths: Sequence[int] | None = None, precisions: Sequence[str] = ("float32", "float64"),
                device_id: int = 0, *, mib: int = 256, repeats: int = 7,
                timer: Callable[[Callable[[], Any]], float] | None = None) -> list[dict[str, Any]]:
    """Measure the one-kernel chain's knobs on GPU ``device_id`` and keep the fastest in the cache.

    For each length (default: every power of two the one kernel takes, 16 to 4096) and precision
    ("float32": complex64, "float64": complex128), each candidate pair (:func:`candidates`: FFTs
    per block x elements per thread) runs a chain with an ``(n,)`` filter on ``mib`` MiB of rows,
    is checked against the rule's result and timed (median of ``repeats`` rounds); the fastest is
    stored for this GPU's architecture, where every later plan of such a chain finds it (route
    "one-kernel", or "auto" where one kernel fits). Compiling costs seconds per candidate the first
    time on a machine (the kernel cache keeps them): tune once, not in a program's hot path.

    Raises RuntimeError saying why where this process cannot build the kernel (no GPU numba-cuda
    sees, or libmathdx does not load).

    Returns one dict per problem: ``n``, ``precision``, ``arch``, ``chosen`` and ``rule`` (pairs)
    and ``timings_ms`` (``"FPBxEPT"`` -> GPU ms per chain); or ``skipped`` (why) where one kernel
    does not take the problem on this GPU. A pair that does not compile or launch is left out.
    """
    why = _chain_kernel.unavailable()
    if why:
        raise RuntimeError(f"tune_chains measures the one kernel on a GPU, and this process cannot build it: {why}")
    import cupy

    timer = timer or (lambda run: _gpu_ms(run, repeats=repeats))
    report = []
    for precision in precisions:
        dtype = np.complex64 if precision == "float32" else np.complex128
        for n in lengths or LENGTHS:
            rows = max(1, mib * 2**20 // (np.dtype(dtype).itemsize * n))
            with cupy.cuda.Device(device_id):
                rng = cupy.random.default_rng(n)
                x = (rng.standard_normal((rows, n)) + 1j * rng.standard_normal((rows, n))).astype(dtype)
                h = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dtype)
                problem = problem_for("fft", x.shape, tuple(s // x.itemsize for s in x.strides), x.dtype.name, (1,))
                try:
                    base = plan_chain(problem, "cuda", FFTOptions(), None, None, {"fn": _mul, "data": h}, None,
                                      route="one-kernel", device_id=device_id).kernel
                except ValueError as exc:  # no one kernel for this length and precision here
                    report.append({"n": n, "precision": precision, "arch": device_arch(device_id),
                                   "skipped": str(exc)})
                    continue
                arch = base.arch  # the architecture of cuFFTDx's code, as choose_knobs is asked it
                pairs = candidates(n, precision, arch)
                timings, want = {}, None
                for pair in pairs:
                    config = dataclasses.replace(base, ffts_per_block=pair[0], elements_per_thread=pair[1])
                    try:
                        kernel = _chain_kernel.OneKernel(config, device_id)
                        got = kernel.run(x, (None, h, None))
                    except Exception as exc:  # a pair that does not compile or launch is no candidate
                        if want is None:
                            raise  # the rule's own: the chain cannot run here at all
                        log.warning("chain knobs %dx%d at n=%d do not run (%s): not a candidate", *pair, n, exc)
                        continue
                    if want is None:
                        want = got  # the rule's, first
                    elif float(cupy.abs(got - want).max()) > 1e-3 * float(cupy.abs(want).max()):
                        log.warning("chain knobs %dx%d give another result at n=%d: not a candidate", *pair, n)
                        continue
                    timings[f"{pair[0]}x{pair[1]}"] = timer(lambda: kernel.run(x, (None, h, None)))
                    del got
            best = min(timings, key=timings.__getitem__)
            chosen = tuple(int(v) for v in best.split("x"))
            _chain_knobs.keep_knobs(n, precision, arch, chosen, timings)
            log.info("chain knobs for n=%d %s on sm_%d: %s (%s)", n, precision, arch, best,
                     ", ".join(f"{k} {v:.3f} ms" for k, v in timings.items()))
            report.append({"n": n, "precision": precision, "arch": arch, "chosen": list(chosen),
                           "rule": list(pairs[0]), "timings_ms": timings})
    cupy.get_default_memory_pool().free_all_blocks()
    return report


def _gpu_ms(run: Callable[[], Any], calls: int = 10, repeats: int = 7) -> float:
    """Median GPU milliseconds per call of ``run`` over ``repeats`` rounds of ``calls`` calls."""
    import cupy

    for _ in range(3):
        run()
    times = []
    for _ in range(repeats):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        for _ in range(calls):
            run()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / calls)
    return statistics.median(times)
