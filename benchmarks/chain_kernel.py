"""The filtering chain ``ifft(fft(x) * h)`` on the GPU, route by route, per FFT length.

    python benchmarks/chain_kernel.py --json chain_kernel.json [--lengths 64,256,1024,4096] [--mib 512] [--sweep]

For each length, a batch of complex64 rows filling ``--mib`` MiB (65536 x 1024 at 512 MiB), and
each filter (``(n,)``, and at 1024 also a full-size one), GPU time per pipeline of:

* ``cupy``: CuPy unfused (``cupy.fft.fft``, multiply, ``cupy.fft.ifft``);
* ``two-plans``: ``FilteredFFT(route="two-plans")``, two cuFFT plans with the filter as the
  forward's epilog;
* ``one-kernel``: ``FilteredFFT(route="one-kernel")``, one numba-cuda kernel around cuFFTDx;
* ``floor``: one plain ``cupy.fft.fft`` of the same data (read once, written once).

At 1024 also float32 rows (a real operand, ``--mib`` MiB of them) with a filter of the half
spectrum (``(n//2 + 1,)``): ``cupy.fft.rfft``, multiply, ``cupy.fft.irfft``; the two routes as
R2C then C2R (two cuFFT plans, or R2C and C2R in one kernel); the floor one ``cupy.fft.rfft``.

GPU time: ``CALLS`` back-to-back calls between two CUDA events (host launch cost hidden), after
a warm-up, median (and min, max) of ``REPEATS`` such runs. ``plan_s`` is the time of ``plan()`` in
this process (the one kernel's includes compiling it; a warm cache makes it shorter).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

CALLS, REPEATS = 20, 15
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gpu_timing import gpu_ms as timed  # noqa: E402  (benchmarks/, beside this script)


def gpu_ms(run, calls=CALLS, repeats=REPEATS):
    return timed(run, calls, repeats, warmup=3)


def mul(v, d):
    return v * d


def operands(n, batch, dtype, full):
    """Random rows of ``dtype`` (complex, or real: R2C then C2R) and a filter of the spectrum they
    have (``n`` long, or ``n//2 + 1`` for real rows), one row or one per row."""
    import cupy as cp
    import numpy as np

    rng = np.random.default_rng(0)
    real = np.dtype(dtype).kind == "f"
    x = rng.standard_normal((batch, n))
    if not real:
        x = x + 1j * rng.standard_normal((batch, n))
    shape = (batch, filter_width(n, dtype)) if full else (filter_width(n, dtype),)
    h = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    if real:  # real DC and Nyquist bins, as a real row's spectrum has: every C2R inverts it alike
        h[..., 0], h[..., -1] = h[..., 0].real, h[..., -1].real
    return cp.asarray(x.astype(dtype)), cp.asarray(h.astype(np.result_type(dtype, np.complex64)))


def filter_width(n, dtype):
    """The spectrum's row length: ``n``, or ``n//2 + 1`` for real rows."""
    import numpy as np

    return n // 2 + 1 if np.dtype(dtype).kind == "f" else n


def filter_name(n, dtype, full):
    return "full" if full else ("(n,)" if filter_width(n, dtype) == n else "(n/2+1,)")


def bench_case(n, batch, dtype, full, log):
    import cupy as cp
    import numpy as np

    from nvmath.fft import FilteredFFT

    x, h = operands(n, batch, dtype, full)
    forward, inverse = (cp.fft.fft, cp.fft.ifft) if np.dtype(dtype).kind == "c" else (cp.fft.rfft, cp.fft.irfft)
    rows = []
    base = {"n": n, "batch": batch, "dtype": np.dtype(dtype).name, "filter": filter_name(n, dtype, full)}
    want = None
    for route in ("cupy", "two-plans", "one-kernel", "floor"):
        row = dict(base, route=route)
        try:
            if route == "cupy":
                def run():
                    return inverse(forward(x, axis=-1) * h, n=n, axis=-1)
            elif route == "floor":
                def run():
                    return forward(x, axis=-1)
            else:
                chain = FilteredFFT(x, axes=[-1])
                t = time.perf_counter()
                chain.plan(pointwise={"fn": mul, "data": h}, route=route)
                cp.cuda.Device().synchronize()
                row["plan_s"] = time.perf_counter() - t
                row["describe"] = chain.describe()
                run = chain.execute
            got = run()
            if route == "cupy":
                want = got
            elif route != "floor" and want is not None:
                row["max_rel_diff_vs_cupy"] = float(cp.abs(got - want).max() / cp.abs(want).max())
            del got
            row.update(gpu_ms(run))
            if route in ("two-plans", "one-kernel"):
                chain.free()
        except Exception as exc:  # one failing route must not hide the others
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
        log(row)
        cp.get_default_memory_pool().free_all_blocks()
    return rows


# Knobs (FFTs per block x elements per thread) tried by --sweep beside the rule's, per case.
SWEEP = {(64, False): ["8x2", "16x4", "32x8", "64x16", "16x8"],
         (1024, True): ["4x16", "2x16", "8x8", "4x8", "2x32"],
         (1024, False): ["4x16", "2x16", "8x8"]}


def sweep_case(n, batch, dtype, full, knobs, log):
    """The one kernel with each pair of ``knobs`` ($FFTFUSE_CHAIN_KNOBS), next to the floor."""
    import cupy as cp
    import numpy as np

    from nvmath.fft import FilteredFFT

    x, h = operands(n, batch, dtype, full)
    want = cp.fft.ifft(cp.fft.fft(x, axis=-1) * h, axis=-1)
    rows = []
    for pair in knobs:
        row = {"n": n, "batch": batch, "dtype": np.dtype(dtype).name, "filter": filter_name(n, dtype, full),
               "route": f"one-kernel {pair}"}
        os.environ["FFTFUSE_CHAIN_KNOBS"] = pair
        try:
            chain = FilteredFFT(x, axes=[-1])
            t = time.perf_counter()
            chain.plan(pointwise={"fn": mul, "data": h}, route="one-kernel")
            row["plan_s"] = time.perf_counter() - t
            row["describe"] = chain.describe()
            got = chain.execute()
            row["max_rel_diff_vs_cupy"] = float(cp.abs(got - want).max() / cp.abs(want).max())
            del got
            row.update(gpu_ms(chain.execute))
            chain.free()
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            del os.environ["FFTFUSE_CHAIN_KNOBS"]
        rows.append(row)
        log(row)
        cp.get_default_memory_pool().free_all_blocks()
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--lengths", default="64,256,1024,4096", help="comma-separated FFT lengths")
    parser.add_argument("--mib", type=int, default=512, help="size of the operand in MiB")
    parser.add_argument("--double", action="store_true", help="also complex128 at 1024")
    parser.add_argument("--sweep", action="store_true", help="also other knobs of the one kernel (SWEEP)")
    args = parser.parse_args(argv)

    import cupy as cp
    import numpy as np

    def log(row):
        timing = f"{row['median_ms']:.3f} ms" if "median_ms" in row else row.get("error", "?")
        print(f"{row['dtype']:>10} n={row['n']:<5} batch={row['batch']:<7} filter={row['filter']:<8} "
              f"{row['route']:<11} {timing}", flush=True)

    cases = []
    for n in (int(v) for v in args.lengths.split(",")):
        batch = args.mib * 2**20 // (8 * n)
        cases.append((n, batch, np.complex64, False))
        if n == 1024:
            cases.append((n, batch, np.complex64, True))
            cases.append((n, args.mib * 2**20 // (4 * n), np.float32, False))  # real rows: R2C, C2R
    if args.double:
        cases.append((1024, args.mib * 2**20 // (16 * 1024), np.complex128, False))
    results = []
    for case in cases:
        results += bench_case(*case, log)
    sweep = []
    if args.sweep:
        for (n, full), knobs in SWEEP.items():
            sweep += sweep_case(n, args.mib * 2**20 // (8 * n), np.complex64, full, knobs, log)

    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    report = {
        "benchmark": "chain_kernel",
        "device": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
        "commit": os.environ.get("GIT_COMMIT", "unknown"),
        "python": platform.python_version(),
        "cupy": cp.__version__,
        "calls": CALLS,
        "repeats": REPEATS,
        "results": results,
        "sweep": sweep,
    }
    print("\nGPU ms per pipeline (median); ratio to one plain FFT")
    table = {}
    for r in results:
        table.setdefault((r["dtype"], r["n"], r["filter"]), {})[r["route"]] = r.get("median_ms")
    print(f"{'case':<32} {'cupy':>8} {'two-plans':>10} {'one-kernel':>11} {'floor':>8} {'1k/floor':>9} {'1k/2p':>7}")
    for (dtype, n, filt), t in table.items():
        def fmt(v):
            return f"{v:.3f}" if v is not None else "-"
        one, two, floor = t.get("one-kernel"), t.get("two-plans"), t.get("floor")
        ratio = f"{one / floor:.2f}" if one and floor else "-"
        speed = f"{one / two:.2f}" if one and two else "-"
        print(f"{dtype + ' n=' + str(n) + ' ' + filt:<32} {fmt(t.get('cupy')):>8} {fmt(two):>10} {fmt(one):>11} "
              f"{fmt(floor):>8} {ratio:>9} {speed:>7}")
    if sweep:
        print("\nthe one kernel's knobs (FFTs per block x elements per thread), GPU ms; rule's choice in the table above")
        for r in sweep:
            if "median_ms" in r:
                print(f"  n={r['n']:<5} filter={r['filter']:<5} {r['route']:<20} {r['median_ms']:.3f}")
            else:
                print(f"  n={r['n']:<5} filter={r['filter']:<5} {r['route']:<20} {r.get('error')}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
