"""Plain CuPy code fused by nvmath.fft.fuse on the GPU, next to the same code unfused (CuPy) and
the hand-written callback calls (stateless ``nvmath.fft.fft``/``filtered``).

    PYTHONPATH=. python benchmarks/fuse_gpu.py [--rows 65536] [--json fuse_gpu.json]

GPU time: ``--calls`` back-to-back calls between two CUDA events (the host's launch cost hidden
where the GPU is the bottleneck), after warm-up calls, median (and min, max) over ``--repeats``.
Host time per call: back-to-back calls of a 1 x 1024 problem, synchronized per round. Each case
first checks the fused result against the unfused one (max error relative to the largest value).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import time

import cupy as cp
import numpy as np

import nvmath
from nvmath.fft import fuse

from gpu_timing import gpu_ms  # benchmarks/, beside this script


# -- the plain code (module level: ``cp`` is a global, as in user code) --------------------------

def scale(x, s):
    return cp.fft.fft(x, axis=-1) * s


def filt(x, H):
    return cp.fft.fft(x, axis=-1) * H


def window(x, w):
    return cp.fft.fft(x * w, axis=-1)


def convolution(x, H):
    return cp.fft.ifft(cp.fft.fft(x, axis=-1) * H, axis=-1)


def r2c_scale(x, s):
    return cp.fft.rfft(x, axis=-1) * s


def mask_2d(x, M):
    return cp.fft.fft2(x) * M


def propagate(x, w, H, s):
    X = cp.fft.fft(x * w, axis=-1)
    return cp.fft.ifft(X * H, axis=-1) * s


# -- the same, hand-written as callbacks ----------------------------------------------------------

def _mul(v, d):
    return v * d


def _scale(v, *, s):
    return v * s


def hand_calls():
    fft = nvmath.fft
    return {
        "scale": lambda x, s: fft.fft(x, axes=[-1], epilog={"fn": _scale, "params": {"s": s}}),
        "filter": lambda x, H: fft.fft(x, axes=[-1], epilog={"fn": _mul, "data": H}),
        "window": lambda x, w: fft.fft(x, axes=[-1], prolog={"fn": _mul, "data": w}),
        "convolution": lambda x, H: fft.filtered(x, axes=[-1], pointwise={"fn": _mul, "data": H}),
        "r2c_scale": lambda x, s: fft.rfft(x, axes=[-1], epilog={"fn": _scale, "params": {"s": s}}),
        "mask_2d": lambda x, M: fft.fft(x, axes=[-2, -1], epilog={"fn": _mul, "data": M}),
        "propagate": lambda x, w, H, s: fft.filtered(x, axes=[-1], prolog={"fn": _mul, "data": w},
                                                     pointwise={"fn": _mul, "data": H},
                                                     epilog={"fn": _scale, "params": {"s": s}}),
    }


PLAIN = {"scale": scale, "filter": filt, "window": window, "convolution": convolution, "r2c_scale": r2c_scale,
         "mask_2d": mask_2d, "propagate": propagate}


def cases(rows: int, n: int) -> dict:
    """Arguments per case: complex64 rows x n (1-D cases), float32 2*rows x n (R2C), and
    rows/256 x 512 x 512 (2-D); (n,) window and filter, a (512, 512) real mask."""
    rng = cp.random.default_rng(0)

    def complex_(shape):
        return (rng.standard_normal(shape, dtype=cp.float32)
                + 1j * rng.standard_normal(shape, dtype=cp.float32)).astype(cp.complex64)

    x = complex_((rows, n))
    H = complex_((n,))
    w = cp.asarray(np.hanning(n).astype(np.float32))
    xr = rng.standard_normal((2 * rows, n), dtype=cp.float32)
    x2 = complex_((max(1, rows // 256), 512, 512))
    M = (rng.random((512, 512)) > 0.5).astype(cp.float32)
    return {"scale": (x, 0.5), "filter": (x, H), "window": (x, w), "convolution": (x, H),
            "r2c_scale": (xr, 1.5), "mask_2d": (x2, M), "propagate": (x, w, H, 1.0 / n)}


def host_us(run, calls: int = 2000, warmup: int = 50) -> dict:
    for _ in range(warmup):
        run()
    cp.cuda.Device().synchronize()
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(calls // 5):
            run()
        samples.append((time.perf_counter() - t) / (calls // 5) * 1e6)
        cp.cuda.Device().synchronize()
    return {"median_us": statistics.median(samples), "min_us": min(samples)}


def max_error(got, want) -> float:
    scale_ = max(1.0, float(cp.abs(want).max()))
    return float(cp.abs(got.astype(cp.complex128) - want).max()) / scale_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=65536, help="batch of the 1-D cases (n = 1024)")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", help="write the results here")
    opts = parser.parse_args()
    n = 1024
    hand = hand_calls()
    args = cases(opts.rows, n)
    out: dict = {"device": cp.cuda.runtime.getDeviceProperties(0)["name"].decode(), "rows": opts.rows, "n": n,
                 "calls": opts.calls, "repeats": opts.repeats, "cupy": cp.__version__,
                 "commit": os.environ.get("GIT_COMMIT", "unknown"), "python": platform.python_version(),
                 "cases": {}, "host": {}}
    print(f"{out['device']}: plain CuPy code, GPU ms per call (median of {opts.repeats} x {opts.calls} "
          "back-to-back calls)")
    print(f"{'case':12s} {'CuPy unfused':>13s} {'plain, fused':>13s} {'hand-written':>13s} "
          f"{'fused/hand':>11s} {'fused/CuPy':>11s}  max error")
    for name, plain in PLAIN.items():
        a = args[name]
        fused = fuse(plain, strict=True)   # strict: a case that does not fuse fails loudly
        with contextlib.redirect_stdout(io.StringIO()):
            plan = fused.explain(*a)
        err = max_error(fused(*a), plain(*(x.astype(cp.complex128) if isinstance(x, cp.ndarray) and x.dtype.kind == "c"
                                           else x.astype(cp.float64) if isinstance(x, cp.ndarray) else x for x in a)))
        row = {"cupy_unfused": gpu_ms(lambda: plain(*a), opts.calls, opts.repeats, opts.warmup),
               "plain_fused": gpu_ms(lambda: fused(*a), opts.calls, opts.repeats, opts.warmup),
               "hand_written": gpu_ms(lambda: hand[name](*a), opts.calls, opts.repeats, opts.warmup),
               "max_error": err, "plan": plan}
        out["cases"][name] = row
        c_, f_, h_ = (row[k]["median_ms"] for k in ("cupy_unfused", "plain_fused", "hand_written"))
        print(f"{name:12s} {c_:13.3f} {f_:13.3f} {h_:13.3f} {f_ / h_:10.2f}x {f_ / c_:10.2f}x  {err:.2g}")
        del fused
        cp.get_default_memory_pool().free_all_blocks()
    route = [line.strip() for line in out["cases"]["propagate"]["plan"].splitlines()
             if line.strip().startswith(("route:", "why:"))]
    print("propagate's chain: " + "; ".join(route))

    small = cases(1, n)
    print("host us per call, 1 x 1024 complex64 (median / min of 5 rounds)")
    for name in ("filter", "propagate"):
        a = small[name]
        fused = fuse(PLAIN[name], strict=True)
        for label, run in (("plain, fused", lambda: fused(*a)), ("hand-written", lambda: hand[name](*a)),
                           ("CuPy unfused", lambda: PLAIN[name](*a))):
            got = host_us(run)
            out["host"][f"{name}: {label}"] = got
            print(f"  {name:10s} {label:13s} {got['median_us']:8.1f} / {got['min_us']:.1f}")
    if opts.json:
        with open(opts.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
