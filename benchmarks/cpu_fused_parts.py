"""Where a fused CPU call's time goes: the FFT engine, or the epilog's pass.

    python benchmarks/cpu_fused_parts.py [--batch 1024] [--n 1024] [--dtype complex64]

A full-size filter epilog ``v * h`` fused into a forward FFT along the last axis, planned with
``nvmath.fft.FFT`` on ``ExecutionCPU(num_threads=1)`` once per engine. One thread, and every
figure is the calling thread's CPU time (``time.thread_time``), so time spent waiting for a core
another job holds does not count. Two tables:

* per engine, one profiled run of many calls (cProfile on the thread clock): ms per call in the
  engine's FFT (``Engine.run``), in the epilog's loops (``_epilog_step``) and in all (the
  executor's Python around them is the rest);
* interleaved medians of: each fused call, ``scipy.fft.fft(x)``, SciPy unfused
  (``scipy.fft.fft(x) * h``), NumPy's multiply into a new array and in place, the epilog's
  compiled loops alone on the same arrays (reading a separate array, and in place), and SciPy's
  FFT into its own array with the loop then run in place on it.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from cpu_callbacks import Fused, filter_cb, timed  # noqa: E402

ENGINES = ("ducc0", "ducc0-chunks", "ducc0-padded", "scipy")


def planned(engine: str, x: np.ndarray, h: np.ndarray) -> Fused:
    before = os.environ.get("FFTFUSE_CPU_ENGINE")
    os.environ["FFTFUSE_CPU_ENGINE"] = engine
    try:
        return Fused("fft", x, (-1,), epilog=(filter_cb, h), workers=1)
    finally:
        if before is None:
            del os.environ["FFTFUSE_CPU_ENGINE"]
        else:
            os.environ["FFTFUSE_CPU_ENGINE"] = before


def split(fused: Fused, calls: int) -> dict[str, float]:
    """ms per call in the engine's FFT, in the epilog's loops, and in all (thread clock)."""
    for _ in range(3):
        fused()
    profile = cProfile.Profile(time.thread_time)
    t = time.thread_time()
    profile.enable()
    for _ in range(calls):
        fused()
    profile.disable()
    total = time.thread_time() - t
    parts = {"fft": 0.0, "epilog": 0.0}
    for (file, _, name), (_, _, _, cumulative, _) in pstats.Stats(profile).stats.items():
        if name == "run" and file.endswith("_cpu_engines.py"):
            parts["fft"] += cumulative
        elif name == "_epilog_step" and file.endswith("_cpu.py"):
            parts["epilog"] += cumulative
    return {k: 1e3 * v / calls for k, v in {**parts, "all (profiled)": total}.items()}


def loops(x: np.ndarray, h: np.ndarray, y: np.ndarray) -> dict:
    """The filter's compiled loops (apart, in place) as the executor builds them, on ``y``; and
    SciPy's FFT into its own new array followed by the loop in place on it (what the executor
    would do if the engine's array could become the result)."""
    import scipy.fft as sfft

    from fftfuse_compiler.cpu_backend import compile_cpu

    cb = compile_cpu(filter_cb, "epilog", element_dtype=str(y.dtype), user_dtype=str(h.dtype))
    rows, n = y.shape
    shape, strides = np.array([rows, n], np.uint64), np.array([n, 1], np.uint64)
    whole, unit = np.array([rows * n], np.uint64), np.array([1], np.uint64)
    out, data, flat_h, src = np.empty_like(y), y.copy(), h.reshape(-1), y.reshape(-1)
    native = cb.loops

    def adopted() -> np.ndarray:
        result = sfft.fft(x)
        native.in_place(result.reshape(-1), 0, unit, flat_h, 1, whole)
        return result

    want = np.fft.fft(x.astype(np.complex128), axis=-1) * h
    assert float(np.abs(adopted() - want).max() / np.abs(want).max()) < 1e-4
    return {
        "loop apart (y, h -> out)": lambda: native.apart(src, 0, strides, out.reshape(-1), 0, strides, flat_h, rows,
                                                         shape),
        "loop in place (out *= h)": lambda: native.in_place(data.reshape(-1), 0, strides, flat_h, rows, shape),
        "scipy.fft.fft(x), loop in place": adopted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--dtype", default="complex64", choices=("complex64", "complex128"))
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--calls", type=int, default=60, help="calls per profiled run")
    args = parser.parse_args()
    import scipy.fft as sfft

    rng = np.random.default_rng(0)
    shape = (args.batch, args.n)
    x = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(args.dtype)
    # unit modulus: repeated in-place multiplies neither overflow nor underflow
    h = np.exp(1j * rng.uniform(0, 2 * np.pi, shape)).astype(args.dtype)
    fused = {e: planned(e, x, h) for e in ENGINES}
    want = np.fft.fft(x.astype(np.complex128), axis=-1) * h
    for e, f in fused.items():
        err = float(np.abs(f() - want).max() / np.abs(want).max())
        assert err < (1e-5 if args.dtype == "complex64" else 1e-12), f"{e}: off by {err:.2e}"
    print(f"{args.batch} x {args.n} {args.dtype}, full-size filter epilog, one thread, CPU ms per call "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(f"{'engine':14s}{'FFT':>8s}{'epilog':>8s}{'all':>8s}   (cProfile, thread clock)")
    for e, f in fused.items():
        s = split(f, args.calls)
        print(f"{e:14s}{s['fft']:8.3f}{s['epilog']:8.3f}{s['all (profiled)']:8.3f}")
    y = sfft.fft(x)
    runs = {f"fused, {e}": f for e, f in fused.items()}
    runs.update({
        "scipy.fft.fft(x)": lambda: sfft.fft(x),
        "scipy unfused: fft(x) * h": lambda: sfft.fft(x) * h,
        "numpy y * h (new array)": lambda: y * h,
        "numpy y *= h (in place)": lambda: np.multiply(y, h, out=y),
    })
    runs.update(loops(x, h, y))
    result = timed(runs, args.rounds, clock=time.thread_time)
    print(f"\n{'run':32s}{'median ms':>10s}   (interleaved, thread clock)")
    for name, ms in result.items():
        print(f"{name:32s}{ms:10.3f}")


if __name__ == "__main__":
    main()
