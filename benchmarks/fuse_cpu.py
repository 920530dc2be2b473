"""Plain array code fused by nvmath.fft.fuse on the CPU executor, against the same code unfused
(NumPy) and against the hand-written stateless callback calls.

    PYTHONPATH=. python benchmarks/fuse_cpu.py [--repeats 50] [--every-case]

Prints the median (and minimum) time per call after warm-up calls.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import nvmath
from nvmath.fft import fuse


def propagate(x, w, H, s):
    X = np.fft.fft(x * w, axis=-1)
    return np.fft.ifft(X * H, axis=-1) * s


def filt(x, H):
    return np.fft.fft(x, axis=-1) * H


# The GPU benchmark's cases (benchmarks/fuse_gpu.py) written with NumPy.
def scale(x, s):
    return np.fft.fft(x, axis=-1) * s


def window(x, w):
    return np.fft.fft(x * w, axis=-1)


def convolution(x, H):
    return np.fft.ifft(np.fft.fft(x, axis=-1) * H, axis=-1)


def r2c_scale(x, s):
    return np.fft.rfft(x, axis=-1) * s


def mask_2d(x, M):
    return np.fft.fft2(x) * M


def case_arguments(rows: int, n: int) -> dict:
    rng = np.random.default_rng(1)

    def c(shape):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)

    x, H = c((rows, n)), c((n,))
    w = np.hanning(n).astype(np.float32)
    side = int(np.sqrt(rows * n // 4))
    return {"scale": (scale, (x, 0.5)), "filter": (filt, (x, H)), "window": (window, (x, w)),
            "convolution": (convolution, (x, H)),
            "r2c_scale": (r2c_scale, (rng.standard_normal((2 * rows, n)).astype(np.float32), 1.5)),
            "mask_2d": (mask_2d, (c((4, side, side)), (rng.random((side, side)) > 0.5).astype(np.float32))),
            "propagate": (propagate, (x, w, H, 1.0 / n))}


def every_case(repeats: int) -> None:
    """Each case fused and undecorated, in turn, at 256 x 1024 and 1024 x 1024 (2-D: 4 planes of
    the same size; R2C: twice the rows of float32): median ms, ratio, and the largest difference."""
    print("every case, complex64 (R2C float32), CPU: median ms, undecorated NumPy / fused (ratio), max rel. difference")
    for rows in (256, 1024):
        for name, (fn, args) in case_arguments(rows, 1024).items():
            fused = fuse(fn, execution="cpu", strict=True)
            got, want = fused(*args), fn(*args)
            diff = float(np.abs(got - want).max() / np.abs(want).max())
            t = interleaved({"plain": lambda: fn(*args), "fused": lambda: fused(*args)}, repeats)
            print(f"  {rows:5d} x 1024 {name:12s} {1e3 * t['plain'][0]:8.2f} {1e3 * t['fused'][0]:8.2f} "
                  f"({t['fused'][0] / t['plain'][0]:.2f}x)  {diff:.1e}")


def _mul(v, d):
    return v * d


def _scale(v, *, s):
    return v * s


def timed(call, repeats: int, warmup: int = 5) -> tuple[float, float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def interleaved(calls: dict, repeats: int, warmup: int = 5) -> dict:
    """Median and minimum per call, the calls taken in turn so a shared machine's load falls on
    each alike."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def operands(batch: int, n: int):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((batch, n)) + 1j * rng.standard_normal((batch, n))).astype(np.complex64)
    w = np.hanning(n).astype(np.float32)
    H = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    return x, w, H, 1.0 / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--every-case", action="store_true", help="also every case of the GPU benchmark")
    args = parser.parse_args()
    repeats = args.repeats
    if args.every_case:
        every_case(repeats)
    fused = fuse(propagate, execution="cpu")
    print("propagate, complex64, CPU: median / min ms")
    for batch, n in [(256, 1024), (1024, 1024)]:
        x, w, H, s = operands(batch, n)
        got = interleaved({
            "plain": lambda: propagate(x, w, H, s),
            "fast": lambda: fused(x, w, H, s),
            "hand": lambda: nvmath.fft.ifft(
                nvmath.fft.fft(x, axes=[-1], execution="cpu", prolog={"fn": _mul, "data": w},
                               epilog={"fn": _mul, "data": H}),
                axes=[-1], execution="cpu", norm="backward", epilog={"fn": _scale, "params": {"s": s}}),
        }, repeats)
        plain, fast, hand = got["plain"], got["fast"], got["hand"]
        print(f"  {batch} x {n}: undecorated NumPy {1e3 * plain[0]:.2f} / {1e3 * plain[1]:.2f}   "
              f"fused {1e3 * fast[0]:.2f} / {1e3 * fast[1]:.2f}   hand-written callbacks "
              f"{1e3 * hand[0]:.2f} / {1e3 * hand[1]:.2f}   (fused / NumPy: {fast[0] / plain[0]:.2f}x)")
    print("host time per call, 1 x 1024 complex64, CPU: median / min us")
    x, w, H, s = operands(1, 1024)
    cases = {
        "filter: traced fft(x) * H": (lambda: fuse_filt(x, H)),
        "filter: stateless fft(x, epilog={fn, data})": (
            lambda: nvmath.fft.fft(x, axes=[-1], execution="cpu", epilog={"fn": _mul, "data": H})),
        "propagate: traced": (lambda: fused(x, w, H, s)),
        "propagate: two stateless calls with callbacks": (lambda: nvmath.fft.ifft(
            nvmath.fft.fft(x, axes=[-1], execution="cpu", prolog={"fn": _mul, "data": w},
                           epilog={"fn": _mul, "data": H}),
            axes=[-1], execution="cpu", norm="backward", epilog={"fn": _scale, "params": {"s": s}})),
        "propagate: undecorated NumPy": (lambda: propagate(x, w, H, s)),
    }
    fuse_filt = fuse(filt, execution="cpu")
    for name, (med, best) in interleaved(cases, repeats * 20, warmup=20).items():
        print(f"  {name}: {1e6 * med:.1f} / {1e6 * best:.1f}")


if __name__ == "__main__":
    main()
