"""The CPU FFT engine choice: fused filter epilogs before (ducc0 always) and after (the chosen engine).

    python benchmarks/cpu_engines.py                 # table, and text + JSON under benchmarks/results/
    python benchmarks/cpu_engines.py --rounds 31 --workers 2

Each case is a filter epilog ``v * h`` (``h`` per element) fused into a forward FFT along the
last axis, planned once with ``nvmath.fft.FFT`` on ``ExecutionCPU(num_threads=workers)`` and run
with ``execute()``. Four runs per case, interleaved round by round on the same operand so drift
on a shared machine hits them alike, medians shown:

* ``before``: the fused call with ``$FFTFUSE_CPU_ENGINE=ducc0`` at planning (the executor as it
  was: ducc0 on every problem);
* ``after``: the fused call with the engine chosen by ``"auto"`` (measured at planning, or read
  back from the cache directory if this machine measured that problem before: the column
  ``how`` says which; the planning is outside the timed runs, and its time is listed);
* ``scipy``: ``scipy.fft.fft(x, workers=W) * h`` (R2C: ``rfft``), unfused;
* ``ducc0``: ``ducc0.fft.c2c(x, nthreads=W) * h`` (R2C: ``r2c``), unfused.

Every fused result is checked against a float64 NumPy reference before timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from cpu_callbacks import Fused, environment, filter_cb, timed  # noqa: E402

# (label, batch, length, dtype of the operand, transform)
CASES = [
    ("1024x1024 c64", 1024, 1024, "complex64", "fft"),
    ("16384x64 c64", 16384, 64, "complex64", "fft"),
    ("256x4096 c64", 256, 4096, "complex64", "fft"),
    ("1048x1000 c64", 1048, 1000, "complex64", "fft"),
    ("1024x1024 c128", 1024, 1024, "complex128", "fft"),
    ("1024x1024 R2C f32", 1024, 1024, "float32", "rfft"),
]


def planned(engine: str, transform: str, x: np.ndarray, h: np.ndarray, workers: int) -> tuple[Fused, float]:
    """The fused call planned with ``$FFTFUSE_CPU_ENGINE=engine``, and the planning time (ms)."""
    before = os.environ.get("FFTFUSE_CPU_ENGINE")
    os.environ["FFTFUSE_CPU_ENGINE"] = engine
    try:
        t = time.perf_counter()
        fused = Fused(transform, x, (-1,), epilog=(filter_cb, h), workers=workers, settle=False)
        plan_ms = (time.perf_counter() - t) * 1e3
        fused.settle()
        return fused, plan_ms
    finally:
        if before is None:
            del os.environ["FFTFUSE_CPU_ENGINE"]
        else:
            os.environ["FFTFUSE_CPU_ENGINE"] = before


def median_and_min(samples: list[float]) -> tuple[float, float]:
    """The median, and the minimum: the figure to read on a machine other jobs share (bursts of
    their work only ever add time)."""
    return statistics.median(samples), min(samples)


def run_case(label: str, b: int, n: int, dtype: str, transform: str, workers: int, rounds: int,
             clock: str = "wall") -> dict:
    import ducc0
    import scipy.fft as sfft

    rng = np.random.default_rng(0)
    x = rng.standard_normal((b, n))
    if dtype.startswith("complex"):
        x = x + 1j * rng.standard_normal((b, n))
    x = x.astype(dtype)
    out_n = n // 2 + 1 if transform == "rfft" else n
    out_dtype = np.result_type(dtype, np.complex64)
    h = (rng.standard_normal((b, out_n)) + 1j * rng.standard_normal((b, out_n))).astype(out_dtype)
    before, _ = planned("ducc0", transform, x, h, workers)
    after, plan_ms = planned("auto", transform, x, h, workers)
    choice = after.fft._executor.engine_choice
    wide = x.astype(np.complex128 if dtype.startswith("complex") else np.float64)
    want = (np.fft.rfft(wide, axis=-1) if transform == "rfft" else np.fft.fft(wide, axis=-1)) * h
    for fused in (before, after):
        got = fused()
        err = float(np.abs(got - want).max() / np.abs(want).max())
        if err > (1e-5 if out_dtype == np.complex64 else 1e-12):
            raise AssertionError(f"{label}: fused result off by {err:.2e}")
    if transform == "rfft":
        runs = {"before": before, "after": after,
                "scipy": lambda: sfft.rfft(x, workers=workers) * h,
                "ducc0": lambda: ducc0.fft.r2c(x, axes=(1,), nthreads=workers) * h}
    else:
        runs = {"before": before, "after": after,
                "scipy": lambda: sfft.fft(x, workers=workers) * h,
                "ducc0": lambda: ducc0.fft.c2c(x, axes=(1,), nthreads=workers) * h}
    ms = timed(runs, rounds, stat=median_and_min, clock=time.thread_time if clock == "thread" else time.perf_counter)
    counts = after.fft._executor.thread_count  # settled before the timed runs
    return {"case": label, "engine": choice.engine, "how": choice.how, "workers": workers,
            "threads": None if counts is None else counts.chosen,
            "timings_us": choice.timings,
            "plan_ms": round(plan_ms, 2), **{k: round(v[0], 3) for k, v in ms.items()},
            "min": {k: round(v[1], 3) for k, v in ms.items()}}


def _threads(row: dict) -> str:
    """", N of W threads" where pipelined runs were measured faster on fewer threads than given."""
    n = row.get("threads")
    return "" if n is None or n == row["workers"] else f", {n} of {row['workers']} threads"


def table(rows: list[dict], stat: str) -> str:
    head = (f"{'case':<20}{'before':>9}{'after':>9}{'scipy':>9}{'ducc0':>9}{'after/best unfused':>20}"
            f"  engine (how, planning ms)")
    lines = [head, "-" * len(head)]
    for r in rows:
        v = r if stat == "median" else r["min"]
        best = min(v["scipy"], v["ducc0"])
        lines.append(f"{r['case']:<20}{v['before']:>9.3f}{v['after']:>9.3f}{v['scipy']:>9.3f}{v['ducc0']:>9.3f}"
                     f"{v['after'] / best:>19.2f}x  {r['engine']}{_threads(r)} ({r['how']}, {r['plan_ms']:.1f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=21, help="samples per run; the table shows their median")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--clock", choices=("wall", "thread"), default="wall",
                        help="thread: the calling thread's CPU time, for --workers 1 on a machine other jobs "
                             "share (time spent waiting for a core does not count)")
    parser.add_argument("--label", default=None, help="result file name part (default: the CPU model)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    load = os.getloadavg()
    env = environment(args.workers)
    if args.clock == "thread" and args.workers != 1:
        parser.error("--clock thread measures the calling thread only: use it with --workers 1")
    rows = [run_case(*case, args.workers, args.rounds, args.clock) for case in CASES]
    what = "CPU time of the calling thread" if args.clock == "thread" else "wall time"
    text = (f"CPU FFT engines, fused filter epilog, ms per call ({what}; {args.rounds} samples, each >= 2 ms of "
            f"back-to-back calls, interleaved; warm-up first)\n"
            f"{env['cpu']}, {env['cores']} cores, workers {args.workers}; numpy {env['numpy']}, scipy {env['scipy']}, "
            f"ducc0 {env['ducc0']}; commit {env['commit']}\n"
            f"load average before {load[0]:.1f}, after {os.getloadavg()[0]:.1f}\n\n"
            f"median:\n{table(rows, 'median')}\n\nminimum:\n{table(rows, 'min')}\n")
    print(text)
    label = args.label or "".join(c if c.isalnum() else "-" for c in env["cpu"]).strip("-").lower()
    stem = Path(args.out) / f"cpu_engines-{label}-{env['commit']}"
    stem.with_suffix(".txt").write_text(text)
    stem.with_suffix(".json").write_text(json.dumps({"environment": env, "rows": rows}, indent=1) + "\n")
    print(f"written {stem}.txt and .json")


if __name__ == "__main__":
    main()
