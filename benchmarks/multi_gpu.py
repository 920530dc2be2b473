"""Two GPUs from two threads against one GPU: throughput of fused convolutions and host time per call.

Throughput: a batched fused convolution ``ifft(fft(x, epilog=x * h), epilog=x / n)`` of
rows x n complex64, ``--calls`` times on each GPU from its own thread, against the same
2 x ``--calls`` convolutions on GPU 0 from one thread (target: >= 1.9x).

Host time: per-call time of a small fused convolution (1 x 1024: two stateless calls), back to back, with one
thread driving GPU 0, then two threads each driving its own GPU at once. A host-side lock held
across cuFFT calls would make the two-thread figure grow; Python's GIL is shared by both.

    python benchmarks/multi_gpu.py [--rows 65536] [--n 1024] [--calls 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def mul(v, d):
    return v * d


class Convolution:
    """Operand, filter and scale on one device, and the fused convolution over them."""

    def __init__(self, device: int, rows: int, n: int, seed: int):
        import cupy as cp

        self.device = device
        with cp.cuda.Device(device):
            rng = cp.random.default_rng(seed)
            shape = (rows, n)
            self.x = (rng.standard_normal(shape, dtype=cp.float32)
                      + 1j * rng.standard_normal(shape, dtype=cp.float32)).astype(cp.complex64)
            self.h = (rng.standard_normal(shape, dtype=cp.float32)
                      + 1j * rng.standard_normal(shape, dtype=cp.float32)).astype(cp.complex64)
        self.scale = np.float32(1.0 / n)

    def __call__(self):
        import nvmath

        scale = self.scale
        y = nvmath.fft.fft(self.x, axes=[-1], epilog={"fn": mul, "data": self.h})
        return nvmath.fft.ifft(y, axes=[-1], epilog=lambda v: v * scale)

    def check(self) -> float:
        """Max relative error of a few rows against a float64 NumPy reference."""
        import cupy as cp

        with cp.cuda.Device(self.device):
            got = cp.asnumpy(self()[:8])
            x, h = cp.asnumpy(self.x[:8]).astype(np.complex128), cp.asnumpy(self.h[:8])
        want = np.fft.ifft(np.fft.fft(x, axis=-1) * h, axis=-1)
        return float(np.abs(got - want).max() / np.abs(want).max())

    def synchronize(self) -> None:
        import cupy as cp

        with cp.cuda.Device(self.device):
            cp.cuda.runtime.deviceSynchronize()


def run_threads(jobs: list[tuple[Convolution, int]]) -> tuple[float, list[list[float]]]:
    """Each job (convolution, calls) in its own thread, started together; wall time to the last
    GPU's end, and each thread's host time per call."""
    barrier = threading.Barrier(len(jobs) + 1)
    host = [[] for _ in jobs]

    def work(i: int, conv: Convolution, calls: int) -> None:
        barrier.wait()
        for _ in range(calls):
            t = time.perf_counter()
            conv()
            host[i].append(time.perf_counter() - t)
        conv.synchronize()

    threads = [threading.Thread(target=work, args=(i, c, k)) for i, (c, k) in enumerate(jobs)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - start, host


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=65536, help="batch of the large convolution")
    ap.add_argument("--n", type=int, default=1024, help="FFT length")
    ap.add_argument("--calls", type=int, default=40, help="large convolutions per GPU per round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of each measurement (median)")
    ap.add_argument("--small-calls", type=int, default=2000, help="small calls per thread for the host time")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)

    import cupy as cp

    if cp.cuda.runtime.getDeviceCount() < 2:
        print("multi_gpu: needs two GPUs; found", cp.cuda.runtime.getDeviceCount())
        return 1
    big = [Convolution(d, args.rows, args.n, seed=d) for d in (0, 1)]
    small = [Convolution(d, 1, 1024, seed=10 + d) for d in (0, 1)]
    errors = [c.check() for c in big + small]  # also the warm-up: compiles and plans on both GPUs

    one, two = [], []
    for _ in range(args.rounds):
        one.append(run_threads([(big[0], 2 * args.calls)])[0])
        two.append(run_threads([(big[0], args.calls), (big[1], args.calls)])[0])
    host_one, host_two = [], []
    for _ in range(args.rounds):
        host_one.append(statistics.median(run_threads([(small[0], args.small_calls)])[1][0]))
        _, per_thread = run_threads([(small[0], args.small_calls), (small[1], args.small_calls)])
        host_two.append(statistics.median(per_thread[0] + per_thread[1]))

    total_bytes = 2 * args.calls * args.rows * args.n * 8
    t1, t2 = statistics.median(one), statistics.median(two)
    h1, h2 = statistics.median(host_one) * 1e6, statistics.median(host_two) * 1e6
    result = {
        "benchmark": "multi_gpu", "gpus": [cp.cuda.runtime.getDeviceProperties(d)["name"].decode() for d in (0, 1)],
        "shape": [args.rows, args.n], "calls_per_gpu": args.calls, "one_gpu_s": one, "two_gpus_s": two,
        "one_gpu_GBps": total_bytes / t1 / 1e9, "two_gpus_GBps": total_bytes / t2 / 1e9, "speedup": t1 / t2,
        "ms_per_convolution_one_gpu": t1 / (2 * args.calls) * 1e3,
        "host_us_per_call_one_thread": h1, "host_us_per_call_two_threads": h2,
        "convolutions_per_s_one_thread": 1e6 / h1, "convolutions_per_s_two_threads": 2e6 / h2,
        "max_rel_error": max(errors), "commit": os.environ.get("GIT_COMMIT", "unknown"),
    }
    print(f"multi_gpu: fused convolution {args.rows} x {args.n} complex64, {2 * args.calls} in all, on "
          f"{', '.join(result['gpus'])}")
    print(f"  one GPU, one thread     {t1 * 1e3:9.1f} ms  {result['one_gpu_GBps']:8.1f} GB/s  "
          f"({result['ms_per_convolution_one_gpu']:.3f} ms per convolution)")
    print(f"  two GPUs, two threads   {t2 * 1e3:9.1f} ms  {result['two_gpus_GBps']:8.1f} GB/s  "
          f"speed-up {result['speedup']:.2f} x (target 1.9)")
    print(f"  host time per small fused convolution (1 x 1024): one thread {h1:.1f} us, two threads {h2:.1f} us each "
          f"({result['convolutions_per_s_one_thread']:.0f} vs {result['convolutions_per_s_two_threads']:.0f} per s in all)")
    print(f"  max rel. error {result['max_rel_error']:.2e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
