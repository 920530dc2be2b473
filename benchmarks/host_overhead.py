"""Host time of a small FFT call, every spelling of a callback, stateful and ``cupy.fft.fft``, one process.

On a GPU machine (``benchmarks/run_on_device.sh hostoverhead``)::

    python benchmarks/host_overhead.py --json $OUT/host_overhead.json

prints the per-call host time, on a 1 x 1024 complex64 operand, of:

| row | call |
| --- | --- |
| ``cupy_fft`` | ``cupy.fft.fft(x)`` (the reference: each ratio printed is to it) |
| ``plain`` | ``fft(x)``, no callback |
| ``new_lambda`` | ``fft(x, epilog=lambda v: v * 0.5)``, a new lambda each call, as user code writes it |
| ``fn_data`` | ``fft(x, epilog={"fn": mul, "data": h})`` |
| ``ltoir`` | ``fft(x, epilog={"ltoir": ltoir_bytes})`` (nvmath-python's form) |
| ``ltoir_data`` | ``fft(x, epilog={"ltoir": ltoir_bytes, "data": h.data.ptr})`` |
| ``stateful_execute`` | ``FFT(x).execute()`` planned with an epilog |
| ``stateful_stream`` | the same plan's ``execute(stream=s)`` on a CuPy stream of its own (GPU only): each |
| | launch there is marked with an event (moves and frees wait on it), the default stream's is not |

then a cProfile of every row (its top functions by own time). The LTO-IR rows use bytes from
``compile_epilog``, made once before timing, as nvmath-python's users do.

Without a GPU, ``--fake-gpu`` runs the same calls through the real planner and executor with
CuPy and cuFFT replaced by the recorders of ``benchmarks/fake_gpu.py``: the figures are then the Python
part of a call alone (no allocation, no launch), and ``fake_floor`` (what the fakes cost in one
call) stands in for CuPy's row.
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


def per_call_us(runs: dict, sync, calls: int, rounds: int = 7, clock=time.perf_counter) -> dict:
    """Per row of ``runs``: median and best over ``rounds`` of the mean time of ``calls``
    back-to-back calls, in microseconds. The rows take turns within each round (the order rotated
    each round), so a slow phase of a shared host or a warming GPU touches every row alike, and
    each timed block ends with a synchronization, so a row whose calls queue GPU work faster than
    the GPU runs it pays for the queue it leaves."""
    names = list(runs)
    for name in names:
        for _ in range(max(calls // 20, 20)):
            runs[name]()
    sync()
    samples: dict = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            run = runs[name]
            t = clock()
            for _ in range(calls):
                run()
            sync()
            samples[name].append((clock() - t) / calls * 1e6)
    return {name: {"median_us": statistics.median(v), "min_us": min(v)} for name, v in samples.items()}


def mul(v, d):
    return v * d


def half(v):
    return v * 0.5


# Row name, the target ratio to cupy.fft.fft in the same run (see the module's docstring).
TARGETS = {"plain": 1.0, "new_lambda": 1.0, "fn_data": 1.0, "ltoir": 1.0, "ltoir_data": 1.0,
           "stateful_execute": 0.8}


def cases(cp, nvmath, with_cupy: bool) -> dict:
    rng = np.random.default_rng(0)
    host = (rng.standard_normal((1, 1024)) + 1j * rng.standard_normal((1, 1024))).astype(np.complex64)
    x = cp.asarray(host)
    h = cp.asarray(rng.standard_normal((1, 1024)).astype(np.complex64))
    ltoir = nvmath.fft.compile_epilog(half, "complex64")
    ltoir_mul = nvmath.fft.compile_epilog(mul, "complex64", "complex64")
    pointer = h.data.ptr
    plan = nvmath.fft.FFT(x, axes=[-1])
    plan.plan(epilog=lambda v: v * SCALE)
    fft = nvmath.fft.fft
    out = {"cupy_fft": lambda: cp.fft.fft(x)} if with_cupy else {"fake_floor": fake_floor(cp, x)}
    out.update({
        "plain": lambda: fft(x, axes=[-1]),
        "new_lambda": lambda: fft(x, axes=[-1], epilog=lambda v: v * 0.5),
        "fn_data": lambda: fft(x, axes=[-1], epilog={"fn": mul, "data": h}),
        "ltoir": lambda: fft(x, axes=[-1], epilog={"ltoir": ltoir}),
        "ltoir_data": lambda: fft(x, axes=[-1], epilog={"ltoir": ltoir_mul, "data": pointer}),
        "stateful_execute": plan.execute,
    })
    if with_cupy:
        stream = cp.cuda.Stream(non_blocking=True)
        out["stateful_stream"] = lambda: plan.execute(stream=stream)
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

        from fake_gpu import FakeGpu  # next to this script

        os.environ.setdefault("FFTFUSE_CACHE_DIR", tempfile.mkdtemp(prefix="fftfuse-host-"))
        patch = pytest.MonkeyPatch()
        FakeGpu(record=False).install(patch)
        sync = lambda: None  # noqa: E731
    import cupy as cp

    import nvmath

    if not args.fake_gpu:
        sync = cp.cuda.Device().synchronize  # the whole device: the stream row's work too
    runs = cases(cp, nvmath, with_cupy=not args.fake_gpu)
    # Without a GPU the process's CPU time is the figure: on a shared machine, wall time also
    # counts the other processes. With one, wall time: it includes waits in the driver.
    clock = time.process_time if args.fake_gpu else time.perf_counter
    results = per_call_us(runs, sync, args.calls, args.rounds, clock)
    where = "fake GPU (Python part only, CPU time)" if args.fake_gpu else "GPU (wall time)"
    reference = "cupy_fft" if not args.fake_gpu else "fake_floor"
    print(f"host time per call, 1 x 1024 complex64, {where}; median (best) of {args.rounds} interleaved rounds "
          f"of {args.calls} calls; ratio to {reference} (target)")
    base = results[reference]["median_us"]
    for name, r in results.items():
        r[f"ratio_to_{reference}"] = r["median_us"] / base
        target = f" (<= {TARGETS[name]})" if name in TARGETS and not args.fake_gpu else ""
        print(f"  {name:18s} {r['median_us']:8.2f} us  ({r['min_us']:.2f})  {r['median_us'] / base:5.2f}{target}")
    report = {"fake_gpu": args.fake_gpu, "python": platform.python_version(), "machine": platform.node(),
              "commit": os.environ.get("GIT_COMMIT"), "calls": args.calls, "results_us": results,
              "targets": TARGETS}
    if args.profile:
        for name in runs:  # every row: cheap, and a row left out hides its cost
            text = profile(runs[name], args.calls, args.profile)
            report[f"profile_{name}"] = text
            print(f"\n--- {name}: top functions by own time ({args.calls} calls)\n{text}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
