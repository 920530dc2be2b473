"""Fused CPU callbacks against the unfused SciPy sequence, over sizes from 1 x 64 to 4096 x 1024.

    python benchmarks/cpu_callbacks.py                       # table, and JSON under benchmarks/results/
    python benchmarks/cpu_callbacks.py --sizes 1x1024,256x1024 --rounds 9 --label quick

Every case runs two ways on the same operand, interleaved round by round so drift on a shared
machine hits both alike; the table shows medians:

* fused: ``nvmath.fft.FFT(x, ...)`` planned once with the callback, then ``execute()`` per call;
* unfused: ``scipy.fft``, then the elementwise step in NumPy (in place where NumPy can).

Cases, for a size ``B x N`` (complex64 unless said; ``--dtype complex128`` doubles every
type): scale (epilog ``v * s``), filter (epilog ``v * h``, ``h`` per element), window (prolog ``x * w``, ``w`` float32), convolution (``fft``
with the filter epilog, then an in-place ``ifft``), r2c_scale (float32 input), 2d_mask (one
2-D FFT of the ``B x N`` array, epilog ``v * m``, ``m`` a float32 0/1 mask).

Also measured: the per-call cost of the stateless ``nvmath.fft.fft(x, epilog=...)`` on 1 x 1024
against ``scipy.fft.fft(x) * H``; one thread against all (``--threads``, which sets
``THREAD_BYTES``); and the time a fresh process takes to its first fused result with a warm
cache (imports included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import scipy
import scipy.fft as sfft

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nvmath.fft import _cpu, _cpu_threads  # noqa: E402

SIZES = "1x64,1x1024,16x1024,64x1024,256x1024,1024x1024,4096x1024"
CASES = ("scale", "filter", "window", "convolution", "r2c_scale", "2d_mask")


class Fused:
    """The public stateful API on ``operand``: ``FFT(...)`` planned once with the callbacks (a
    function, or ``(function, data)``), then ``execute()`` per call (after ``reset_operand``
    when given another operand)."""

    def __init__(self, transform: str, operand: np.ndarray, axes, prolog=None, epilog=None, workers=None,
                 inplace=False, settle=True, engine=None):
        import nvmath

        self.operand, self.data, self.inplace = operand, {}, inplace
        self.direction = "inverse" if transform == "ifft" else "forward"
        options = {"inplace": inplace, "fft_type": "R2C" if transform == "rfft" else "C2C"}
        if engine is not None:
            options["cpu_engine"] = engine
        self.fft = nvmath.fft.FFT(operand, axes=list(axes), options=options,
                                  execution=nvmath.fft.ExecutionCPU(num_threads=workers))
        callbacks = {}
        for kind, spec in (("prolog", prolog), ("epilog", epilog)):
            if spec is not None:
                fn, data = spec if isinstance(spec, tuple) else (spec, None)
                callbacks[kind] = fn if data is None else {"fn": fn, "data": data}
                self.data[kind] = data
        self.fft.plan(direction=self.direction, **callbacks)
        if settle:
            self.settle()

    def settle(self) -> None:
        """Make the runs that settle a large plan's choices (``nvmath.fft._cpu_threads``: its first
        runs try the engine against a runner-up, then the thread counts, once per machine and
        problem), so that every timed run is a settled one."""
        executor = self.fft._executor

        def settled() -> bool:
            trials = (getattr(executor, "engine_trial", None), getattr(executor, "thread_count", None))
            return all(trial is None or trial.chosen is not None for trial in trials)

        scratch = self.operand.copy() if self.inplace else None  # the operand stays as given
        for _ in range(256):
            if settled():
                break
            self(scratch)
        if scratch is not None:
            self.fft.reset_operand(self.operand)

    def how(self) -> str:
        """How the executor runs this plan: its FFT engine, then the FFT's threads (a run in one
        piece) or how a large run uses its threads, e.g. ``ducc0 x4``, ``scipy, 8 pipelined``."""
        executor = self.fft._executor
        counts = getattr(executor, "thread_count", None)
        if executor.threads() > 1 and counts is not None:
            chosen = counts.candidates[0] if counts.chosen is None else counts.chosen
            choice = executor.whole_choice if chosen == _cpu_threads.WHOLE else executor.engine_choice
            return f"{choice.engine}, {_cpu_threads.describe(chosen)}"
        return f"{executor.engine_choice.engine} x{executor.fft_threads()}"

    def __call__(self, operand: np.ndarray | None = None) -> np.ndarray:
        if operand is not None:
            self.fft.reset_operand(operand)
        return self.fft.execute(direction=self.direction)


def timed(runs: dict[str, Callable[[], object]], rounds: int, stat: Callable = statistics.median,
          clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Milliseconds per call of each run (``stat`` of the samples: the median by default); each
    sample repeats a run for at least ~2 ms. ``clock``: wall time by default; ``time.thread_time``
    counts only the calling thread's CPU time (one-thread runs on a machine other jobs share)."""
    repeat = {}
    for name, run in runs.items():
        run()
        t = clock()
        run()
        repeat[name] = max(1, int(2e-3 / max(clock() - t, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            k = repeat[name]
            t = clock()
            for _ in range(k):
                run()
            samples[name].append((clock() - t) * 1e3 / k)
    return {name: stat(s) for name, s in samples.items()}


def paired_quartiles(fused: list[float], unfused: list[float]) -> list[float]:
    """Quartiles of the rounds' own ratios fused / unfused (the two ran side by side in each
    round, so drift hits both): a row whose lower quartile is above 1.0 was slower in three
    rounds of four, more than a tie measured on a noisy machine.

    >>> paired_quartiles([1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 1.0, 1.0, 1.0, 1.0])
    [2.0, 3.0, 4.0]
    """
    ratios = [f / u for f, u in zip(fused, unfused)]
    return statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3


def scale_cb(v):
    return v * np.float32(1.0 / 1024)


def filter_cb(v, h):
    return v * h


def window_cb(x, w):
    return x * w


def mask_cb(v, m):
    return v * m


def case_runs(case: str, b: int, n: int, workers: int, rng: np.random.Generator,
              dtype: str = "complex64", engine: str | None = None) -> tuple[Callable, Callable, Callable]:
    """``(fused, unfused, check)`` for one case and size; ``check`` raises if they disagree.
    ``dtype``: the complex type of the operand (the real cases take its real counterpart);
    ``engine``: the fused plans' ``cpu_engine`` option (default: the option's own)."""
    W = workers

    def plan(*args, **kwargs) -> Fused:
        return Fused(*args, engine=engine, **kwargs)

    real_dtype = np.empty(0, dtype).real.dtype

    def cplx(shape):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)

    x = cplx((b, n))
    s = np.float32(1.0 / 1024)
    if case == "scale":
        fused = plan("fft", x, (-1,), epilog=scale_cb, workers=W)

        def unfused():
            y = sfft.fft(x, workers=W)
            y *= s
            return y
    elif case == "filter":
        h = cplx((b, n))
        fused = plan("fft", x, (-1,), epilog=(filter_cb, h), workers=W)

        def unfused():
            y = sfft.fft(x, workers=W)
            y *= h
            return y
    elif case == "window":
        w = np.repeat(np.hanning(n).astype(real_dtype)[None, :], b, 0)
        fused = plan("fft", x, (-1,), prolog=(window_cb, w), workers=W)

        def unfused():
            return sfft.fft(x * w, workers=W, overwrite_x=True)
    elif case == "convolution":
        h = cplx((b, n))
        forward = plan("fft", x, (-1,), epilog=(filter_cb, h), workers=W)
        inverse = plan("ifft", x, (-1,), workers=W, inplace=True)

        def fused():
            return inverse(forward())

        fused.how = lambda: f"{forward.how()}; inverse {inverse.how()}"  # type: ignore[attr-defined]
        fused.plans = [forward, inverse]  # type: ignore[attr-defined]

        def unfused():
            y = sfft.fft(x, workers=W)
            y *= h
            return sfft.ifft(y, norm="forward", overwrite_x=True, workers=W)
    elif case == "r2c_scale":
        x = rng.standard_normal((b, n)).astype(real_dtype)
        fused = plan("rfft", x, (-1,), epilog=scale_cb, workers=W)

        def unfused():
            y = sfft.rfft(x, workers=W)
            y *= s
            return y
    elif case == "2d_mask":
        m = (rng.random((b, n)) < 0.5).astype(real_dtype)
        fused = plan("fft", x, (0, 1), epilog=(mask_cb, m), workers=W)

        def unfused():
            y = sfft.fft2(x, workers=W)
            y *= m
            return y
    else:
        raise ValueError(f"unknown case {case!r}; cases are {', '.join(CASES)}")

    def check() -> None:
        want, got = unfused(), fused()
        eps = 2e-5 if real_dtype == np.float32 else 1e-13
        np.testing.assert_allclose(got, want, rtol=0, atol=eps * float(np.abs(want).max()) * np.log2(b * n + 1))

    return fused, unfused, check


def stateless_overhead(rounds: int) -> dict[str, float]:
    """Microseconds per call on 1 x 1024 complex64: stateless fused fft against scipy's fft * H."""
    import nvmath

    rng = np.random.default_rng(1)
    x = (rng.standard_normal((1, 1024)) + 1j * rng.standard_normal((1, 1024))).astype(np.complex64)
    h = (rng.standard_normal((1, 1024)) + 1j * rng.standard_normal((1, 1024))).astype(np.complex64)
    spec = {"fn": filter_cb, "data": h}
    np.testing.assert_allclose(nvmath.fft.fft(x, epilog=spec), sfft.fft(x) * h, rtol=0, atol=1e-3)
    engine = nvmath.fft.FFT(x, axes=[-1])
    engine.plan(epilog=spec)
    t = timed({"stateless": lambda: nvmath.fft.fft(x, epilog=spec), "stateful": engine.execute,
               "scipy": lambda: sfft.fft(x) * h}, rounds)
    us = {k: v * 1e3 for k, v in t.items()}
    return {"stateless_us": us["stateless"], "stateful_execute_us": us["stateful"], "scipy_fft_times_h_us": us["scipy"],
            "stateless_over_scipy": us["stateless"] / us["scipy"]}


_FRESH = """
import time; t0 = time.perf_counter()
import sys, numpy as np, scipy
sys.path.insert(0, {root!r})
import nvmath
def filter_cb(v, h):  # the benchmark's filter: the same fingerprint, without importing the benchmark
    return v * h
x = np.ones((1, 1024), np.complex64); h = np.full((1, 1024), 2, np.complex64)
y = nvmath.fft.fft(x, epilog={{"fn": filter_cb, "data": h}})
assert abs(y[0, 0] - 2048) < 1e-3
print(time.time(), time.perf_counter() - t0, "numba" in sys.modules)
"""


def fresh_process(repeats: int) -> dict:
    """Seconds from starting a fresh process to its first fused result, in processes sharing a cache.

    The first process compiles (cold); the others load the stored loops (warm). Also reported:
    the time until the process has exited (Python's and NumPy's exit, after the result) and the
    time from the script's first line to the result (without the interpreter's start).
    """
    code = _FRESH.format(root=str(ROOT))
    times, numba_loaded = [], []
    with tempfile.TemporaryDirectory() as cache:
        # As installed: Python may write its bytecode caches (the first, cold, process writes them).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["FFTFUSE_CACHE_DIR"] = cache
        for _ in range(repeats + 1):
            t, started = time.perf_counter(), time.time()
            out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split()
            times.append((float(out[0]) - started, time.perf_counter() - t, float(out[1])))
            numba_loaded.append(out[2] == "True")
    warm = [result for result, _, _ in times[1:]]
    exits = [wall for _, wall, _ in times[1:]]
    return {"cold_s": times[0][0], "warm_median_s": statistics.median(warm), "warm_min_s": min(warm),
            "warm_exit_median_s": statistics.median(exits), "warm_imports_numba": any(numba_loaded[1:]),
            "in_process_s": [inner for _, _, inner in times]}


def threads_sweep(sizes: list[tuple[int, int]], workers: int, rounds: int) -> list[dict]:
    """One thread against ``workers`` threads for the filter case at each size (sets THREAD_BYTES).

    Fastest samples, not medians: on a busy machine each hand-over to another thread waits for a
    time slice, which says nothing about the machine when it is free.
    """
    rows, saved = [], _cpu.THREAD_BYTES
    rng = np.random.default_rng(2)
    try:
        for b, n in sizes:
            fused, _, _ = case_runs("filter", b, n, workers, rng)
            one = Fused("fft", fused.operand, (-1,), epilog=(filter_cb, fused.data["epilog"]), workers=1)
            _cpu.THREAD_BYTES = 0  # every size threaded
            t = timed({"one": one, "all": fused}, rounds, min)
            rows.append({"size": f"{b}x{n}", "bytes": b * n * 8, "one_thread_ms": t["one"],
                         f"{workers}_threads_ms": t["all"], "threads_win": t["all"] < t["one"]})
    finally:
        _cpu.THREAD_BYTES = saved
    return rows


def environment(workers: int) -> dict:
    import ducc0
    import numba

    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    commit = os.environ.get("GIT_COMMIT", "")  # run_on_device.sh names the commit its copy was made from
    if not commit:
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip()
        except OSError:
            pass
    return {
        "host": socket.gethostname(), "cpu": cpu, "cores": os.cpu_count(), "workers": workers,
        "load_average": os.getloadavg(), "python": platform.python_version(), "numpy": np.__version__,
        "scipy": scipy.__version__, "ducc0": ducc0.__version__, "numba": numba.__version__, "commit": commit,
        "block_bytes": _cpu.BLOCK_BYTES, "thread_bytes": _cpu.THREAD_BYTES,
    }


def table(result: dict) -> str:
    head = (f"{'case':<13}{'size':>11}{'fused ms':>11}{'unfused ms':>12}{'fused/unfused':>15}{'rounds q1-q3':>14}"
            "  engine")
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        spread = f"{r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}" if "ratio_q1" in r else ""
        lines.append(f"{r['case']:<13}{r['size']:>11}{r['fused_ms']:>11.4f}{r['unfused_ms']:>12.4f}"
                     f"{r['fused_over_unfused']:>15.2f}{spread:>14}  {r.get('engine', '')}")
    big = [r["fused_over_unfused"] for r in result["rows"] if r["batch"] >= 256]
    if big:
        lines.append(f"worst fused/unfused at >= 256 x N: {max(big):.2f}")
    o = result.get("stateless")
    if o:
        lines.append(f"1 x 1024 per call: stateless fused {o['stateless_us']:.1f} us, stateful execute "
                     f"{o['stateful_execute_us']:.1f} us, scipy fft * H {o['scipy_fft_times_h_us']:.1f} us "
                     f"(stateless / scipy {o['stateless_over_scipy']:.2f})")
    f = result.get("fresh_process")
    if f:
        lines.append(f"fresh process to first fused result: cold {f['cold_s']:.2f} s, warm cache median "
                     f"{f['warm_median_s']:.3f} s (min {f['warm_min_s']:.3f} s; to the process's exit "
                     f"{f['warm_exit_median_s']:.3f} s), numba imported when warm: {f['warm_imports_numba']}")
    for r in result.get("threads", []):
        w = next(k for k in r if k.endswith("_threads_ms"))
        lines.append(f"threads {r['size']:>10} ({r['bytes'] >> 10} KiB): one {r['one_thread_ms']:.4f} ms, "
                     f"{w.split('_')[0]} {r[w]:.4f} ms")
    return "\n".join(lines)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    try:
        return [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",") if item]  # type: ignore[misc]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are BxN items separated by commas, e.g. {SIZES}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes(SIZES),
                        help=f"batch x length of each operand, comma-separated (default {SIZES})")
    parser.add_argument("--cases", default=",".join(CASES), help=f"cases to run, comma-separated (default all: "
                        f"{','.join(CASES)})")
    parser.add_argument("--rounds", type=int, default=15, help="samples per run; the table shows their median")
    parser.add_argument("--dtype", default="complex64", choices=("complex64", "complex128"),
                        help="the operand's complex type (the real cases take its real counterpart)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="threads for both sides (default: all cores)")
    parser.add_argument("--clock", choices=("wall", "thread"), default="wall",
                        help="thread: the calling thread's CPU time (with --workers 1, on a machine other jobs share: "
                             "time spent waiting for a core does not count)")
    parser.add_argument("--threads", action="store_true",
                        help="also time one thread against --workers threads at every size (for THREAD_BYTES)")
    parser.add_argument("--fresh", type=int, default=5,
                        help="fresh processes timed to their first fused result with a warm cache (0: skip)")
    parser.add_argument("--label", default=None, help="result file suffix (default: host name)")
    parser.add_argument("--json", default=None,
                        help="JSON path (default: benchmarks/results/cpu_callbacks-<label>.json)")
    args = parser.parse_args(argv)
    if args.clock == "thread" and args.workers != 1:
        parser.error("--clock thread measures the calling thread only: use it with --workers 1")
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    rng = np.random.default_rng(0)
    rows = []
    for b, n in args.sizes:
        for case in args.cases.split(","):
            fused, unfused, check = case_runs(case, b, n, args.workers, rng, args.dtype)
            check()
            samples = timed({"fused": fused, "unfused": unfused}, args.rounds, stat=list, clock=clock)
            t = {name: statistics.median(s) for name, s in samples.items()}
            q1, _, q3 = paired_quartiles(samples["fused"], samples["unfused"])
            rows.append({"case": case, "size": f"{b}x{n}", "batch": b, "n": n, "fused_ms": t["fused"],
                         "unfused_ms": t["unfused"], "fused_over_unfused": t["fused"] / t["unfused"],
                         "ratio_q1": q1, "ratio_q3": q3, "engine": fused.how()})
            print(f"{case:<13}{b:>6}x{n:<5} fused {t['fused']:.4f} ms  unfused {t['unfused']:.4f} ms", flush=True)
    result: dict = {"rows": rows, "stateless": stateless_overhead(args.rounds)}
    if args.fresh:
        result["fresh_process"] = fresh_process(args.fresh)
    if args.threads:
        result["threads"] = threads_sweep(args.sizes, args.workers, args.rounds)
    result["config"] = {"sizes": [f"{b}x{n}" for b, n in args.sizes], "rounds": args.rounds, "dtype": args.dtype,
                        "clock": args.clock}
    result["notes"] = {
        "fused_ms": "nvmath.fft.FFT planned once with the callback, execute() per call (a new output each); median",
        "engine": "the fused plan's FFT engine; xN: its threads; N pipelined: blocks at once; whole: threaded steps",
        "unfused_ms": "scipy.fft, then the elementwise step in NumPy (in place where possible); median",
        "ratio_q1": "lower quartile of the rounds' own fused / unfused ratios (ratio_q3: the upper)",
        "stateless": "nvmath.fft.fft(x, epilog={'fn': f, 'data': H}) per call, against scipy.fft.fft(x) * H",
        "fresh_process": "python -c '<import numpy, scipy, nvmath; first fused fft>': seconds from starting the "
                         "process to the result (and to its exit); cold = first",
    }
    result["environment"] = environment(args.workers)
    print(table(result))
    label = args.label or socket.gethostname()
    path = Path(args.json) if args.json else ROOT / "benchmarks" / "results" / f"cpu_callbacks-{label}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    path.with_suffix(".txt").write_text(table(result) + "\n")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
