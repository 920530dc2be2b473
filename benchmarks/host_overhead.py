"""Where the host time of a small fused FFT call goes (run on a GPU machine).

Prints the per-call time of a stateless ``fft(x, epilog=...)`` and a stateful ``execute()`` on a
1 x 1024 complex64 operand, then the top entries of a cProfile of each.
"""

from __future__ import annotations

import cProfile
import pstats

import cupy as cp
import numpy as np

import nvmath
from fft_callbacks import host_us  # same folder: run as python benchmarks/host_overhead.py

SCALE = np.float32(1 / 1024)


def per_call_us(run, calls=5000):
    return host_us(run, calls=calls, warmup=200)["median_us"]


def main():
    x = cp.ones((1, 1024), cp.complex64)
    stateless = lambda: nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v * SCALE)  # noqa: E731
    plan = nvmath.fft.FFT(x, axes=[-1])
    plan.plan(epilog=lambda v: v * SCALE)
    print(f"stateless fft(x, epilog=...): {per_call_us(stateless):8.1f} us/call")
    print(f"stateful execute():           {per_call_us(plan.execute):8.1f} us/call")
    print(f"cupy.fft.fft(x):              {per_call_us(lambda: cp.fft.fft(x)):8.1f} us/call")
    for name, run in (("stateless", stateless), ("stateful", plan.execute)):
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(2000):
            run()
        profile.disable()
        print(f"\n--- {name}: top functions by own time (2000 calls)")
        pstats.Stats(profile).sort_stats("tottime").print_stats(14)


if __name__ == "__main__":
    main()
