"""What the CPU twin's bounds checks cost: a cuFFT-form filter epilog, checked against unchecked.

    python benchmarks/bounds_checks.py                 # 1024 x 1024 complex64, one thread
    python benchmarks/bounds_checks.py --threads 2 --rounds 101

A cuFFT-form callback indexes ``data_out`` and ``user_info`` itself; with the checks on
(``FFTFUSE_BOUNDS_CHECKS=1``, the default) every offset is compared with its buffer's length.
Both variants are planned in one process (the switch is read at planning) and timed
interleaved, round by round, after a warm-up: the whole ``execute()`` (FFT and epilog) and the
epilog's loop alone. The value form ``v * h`` indexes nothing itself (its offsets are the
planner's) and is timed as the reference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def cufft_filter(data_out, offset, value, user_info, unused):
    data_out[offset] = value * user_info[offset]


def value_filter(v, h):
    return v * h


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1024x1024", help="B x N, complex64 (default 1024x1024)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=61, help="samples per variant (median reported)")
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    import nvmath

    from fftfuse_compiler.cpu_backend import BOUNDS_CHECKS_ENV

    b, n = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((b, n), np.float32) + 1j * rng.standard_normal((b, n), np.float32)).astype(np.complex64)
    h = (rng.standard_normal((b, n), np.float32) + 1j * rng.standard_normal((b, n), np.float32)).astype(np.complex64)
    execution = nvmath.fft.ExecutionCPU(num_threads=args.threads)
    plans = {}
    for name, fn, checks in (("checked", cufft_filter, "1"), ("unchecked", cufft_filter, "0"),
                             ("value form", value_filter, "1")):
        os.environ[BOUNDS_CHECKS_ENV] = checks
        f = nvmath.fft.FFT(x, axes=[-1], execution=execution)
        f.plan(epilog={"fn": fn, "data": h})
        plans[name] = f
    os.environ.pop(BOUNDS_CHECKS_ENV)
    want = np.fft.fft(x.astype(np.complex128), axis=-1) * h
    for name, f in plans.items():
        got = f.execute()
        err = np.abs(got - want).max() / np.abs(want).max()
        assert err < 1e-5, (name, err)

    # The epilog's loop alone, from an FFT-sized array into another (as the executor calls it
    # when the FFT result is apart; in place, repeated calls would grow the values to inf).
    loops = {name: f._executor.epilog.loops for name, f in plans.items()}  # benchmark only: one level down
    from nvmath.fft._cpu import _walk  # noqa: PLC2701 - the walk the executor gives the loop

    rows, shape, _, strides = _walk((b, n), (n, 1), (n, 1))
    src, dst, info = x.reshape(-1), np.empty(b * n, np.complex64), h.reshape(-1)

    def loop(name):
        return lambda: loops[name].apart(src, 0, strides, dst, 0, strides, info, rows, shape)

    runs = {f"execute {k}": plans[k].execute for k in plans} | {f"loop {k}": loop(k) for k in plans}
    for run in runs.values():
        for _ in range(args.warmup):
            run()
    samples: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.rounds):
        for k, run in runs.items():
            t = time.perf_counter()
            run()
            samples[k].append((time.perf_counter() - t) * 1e3)
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"{b} x {n} complex64, {args.threads} thread(s), median of {args.rounds} interleaved rounds "
          f"after {args.warmup} warm-up calls (ms):")
    for what in ("execute", "loop"):
        c, u, v = med[f"{what} checked"], med[f"{what} unchecked"], med[f"{what} value form"]
        print(f"  {what:8s} checked {c:8.3f}  unchecked {u:8.3f}  value form {v:8.3f}  checked/unchecked "
              f"{c / u:.3f}  (+{(c - u):.3f} ms)")


if __name__ == "__main__":
    main()
