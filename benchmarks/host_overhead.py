"""Host time of a small fused FFT call: stateless, stateful and ``cupy.fft.fft``, one process.

On a GPU machine (``benchmarks/run_on_device.sh hostoverhead``)::

    python benchmarks/host_overhead.py --json $OUT/host_overhead.json

prints the per-call host time of, on a 1 x 1024 complex64 operand: a stateless ``fft`` with a
scale epilog (a new lambda each call, as user code writes it), a stateless ``fft`` with a filter
epilog reading a data array, a stateless ``fft`` without callbacks, a stateful ``execute()``, and
``cupy.fft.fft``; then the ratio of the stateless fused call to CuPy's and a cProfile of the
hot paths.

Without a GPU, ``--fake-gpu`` runs the same calls through the real planner and executor with
CuPy and cuFFT replaced by the recorders of ``tests/fake_gpu.py``: the figures are then the Python
part of a call alone (no allocation, no launch).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SCALE = np.float32(1 / 1024)


def per_call_us(run, sync, calls: int, rounds: int = 7, clock=time.perf_counter) -> dict:
    """Median and best over ``rounds`` of the mean time of back-to-back calls, in microseconds."""
    for _ in range(max(calls // 20, 20)):
        run()
    sync()
    samples = []
    for _ in range(rounds):
        t = clock()
        for _ in range(calls):
            run()
        samples.append((clock() - t) / calls * 1e6)
        sync()
    return {"median_us": statistics.median(samples), "min_us": min(samples)}


def cases(cp, nvmath, with_cupy: bool) -> dict:
    rng = np.random.default_rng(0)
    host = (rng.standard_normal((1, 1024)) + 1j * rng.standard_normal((1, 1024))).astype(np.complex64)
    x = cp.asarray(host)
    filt = cp.asarray(rng.standard_normal((1, 1024)).astype(np.complex64))
    plan = nvmath.fft.FFT(x, axes=[-1])
    plan.plan(epilog=lambda v: v * SCALE)
    out = {
        "stateless_scale": lambda: nvmath.fft.fft(x, axes=[-1], epilog=lambda v: v * SCALE),
        "stateless_filter": lambda: nvmath.fft.fft(x, axes=[-1], epilog={"fn": lambda v, d: v * d, "data": filt}),
        "stateless_plain": lambda: nvmath.fft.fft(x, axes=[-1]),
        "stateful_execute": plan.execute,
    }
    if with_cupy:
        out["cupy_fft"] = lambda: cp.fft.fft(x)
    else:
        out["fake_floor"] = fake_floor(cp, x)
    return out


def fake_floor(cp, x):
    """What the fakes themselves cost in one call: current stream, device switch, allocation, launch."""
    from nvmath.fft import _cufft

    def run():
        with cp.cuda.Device(0):
            s = cp.cuda.get_current_stream()
            out = cp.empty((1, 1024), np.complex64)
            _cufft.xt_exec(1, x.data.ptr, out.data.ptr, -1)
            del s
        return out

    return run


def profile(run, calls: int, top: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        run()
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fake-gpu", action="store_true", help="no GPU: CuPy and cuFFT faked (Python part only)")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--calls", type=int, default=2000, help="calls per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    parser.add_argument("--profile", type=int, default=14, metavar="N", help="cProfile's top N (0: none)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE.parent))
    if args.fake_gpu:
        import tempfile

        import pytest

        sys.path.insert(0, str(HERE.parent / "tests"))
        from fake_gpu import FakeGpu

        os.environ.setdefault("FFTFUSE_CACHE_DIR", tempfile.mkdtemp(prefix="fftfuse-host-"))
        patch = pytest.MonkeyPatch()
        FakeGpu(record=False).install(patch)
        sync = lambda: None  # noqa: E731
    import cupy as cp

    import nvmath

    if not args.fake_gpu:
        sync = cp.cuda.Device().synchronize
    runs = cases(cp, nvmath, with_cupy=not args.fake_gpu)
    # Without a GPU the process's CPU time is the figure: on a shared machine, wall time also
    # counts the other processes. With one, wall time: it includes waits in the driver.
    clock = time.process_time if args.fake_gpu else time.perf_counter
    results = {name: per_call_us(run, sync, args.calls, args.rounds, clock) for name, run in runs.items()}
    where = "fake GPU (Python part only, CPU time)" if args.fake_gpu else "GPU (wall time)"
    print(f"host time per call, 1 x 1024 complex64, {where}; median (best) of {args.rounds} rounds of "
          f"{args.calls} calls")
    for name, r in results.items():
        print(f"  {name:18s} {r['median_us']:8.2f} us  ({r['min_us']:.2f})")
    report = {"fake_gpu": args.fake_gpu, "python": platform.python_version(), "machine": platform.node(),
              "commit": os.environ.get("GIT_COMMIT"), "calls": args.calls, "results_us": results}
    if "cupy_fft" in results:
        ratio = results["stateless_scale"]["median_us"] / results["cupy_fft"]["median_us"]
        report["stateless_over_cupy"] = ratio
        print(f"  stateless fused / cupy.fft.fft: {ratio:.2f} (target <= 1.5)")
    if args.profile:
        for name in ("stateless_scale", "stateful_execute"):
            text = profile(runs[name], args.calls, args.profile)
            report[f"profile_{name}"] = text
            print(f"\n--- {name}: top functions by own time ({args.calls} calls)\n{text}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
