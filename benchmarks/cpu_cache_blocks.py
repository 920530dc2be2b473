"""One-thread fused plans in cache-sized blocks, per block size, next to SciPy unfused.

    python benchmarks/cpu_cache_blocks.py --rows scale:1024x1024,filter:4096x1024 --engine scipy

A plan on one thread (``workers=1``) runs in blocks of about ``CACHE_BLOCK_BYTES``
(``nvmath/fft/_cpu.py``), so its epilog reads each block's FFT result from the core's cache.
For each row (a ``cpu_callbacks`` case and size) the same fused plan is made once per block
size, and once in one piece ("whole"), on one fixed engine; every plan and SciPy unfused run
interleaved, round by round, on the thread's CPU clock. "raw" is the library-free sequence:
SciPy's compiled FFT of each block into a new array, then NumPy's multiply by a scalar (the
scale case's epilog), blocks of 64 rows; "raw whole" the same in one call. Reported: the
median ms and the median of the rounds' own ratios to SciPy unfused.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from cpu_callbacks import case_runs, parse_sizes  # noqa: E402
from nvmath.fft import _cpu, _cpu_engines  # noqa: E402

BLOCK_KIB = (128, 256, 512, 1024, 2048)


def raw_runs(x: np.ndarray, rows: int) -> dict:
    """SciPy's compiled FFT then NumPy's scalar multiply: in blocks of ``rows``, and whole."""
    compiled = _cpu_engines.scipy_fft_module()
    scale = np.float32(1.0 / 1024)
    if compiled is None:
        return {}

    def blocks() -> np.ndarray:
        out = np.empty_like(x)
        for lo in range(0, x.shape[0], rows):
            part = out[lo:lo + rows]
            compiled.c2c(x[lo:lo + rows], (1,), True, 0, part, 1)
            np.multiply(part, scale, out=part)
        return out

    def whole() -> np.ndarray:
        out = compiled.c2c(x, (1,), True, 0, None, 1)
        np.multiply(out, scale, out=out)
        return out

    return {f"raw {rows} rows": blocks, "raw whole": whole}


def row(case: str, b: int, n: int, engine: str, rounds: int, rng: np.random.Generator) -> dict:
    runs, saved = {}, _cpu.CACHE_BLOCK_BYTES
    try:
        for kib in BLOCK_KIB + (None,):
            _cpu.CACHE_BLOCK_BYTES = kib << 10 if kib else 1 << 40
            fused, unfused, check = case_runs(case, b, n, 1, rng, engine=engine)
            check()  # also builds the fast path, with this block size
            runs[f"{kib} KiB" if kib else "whole"] = fused
    finally:
        _cpu.CACHE_BLOCK_BYTES = saved
    runs["unfused"] = unfused
    if case == "scale":
        runs.update(raw_runs(fused.operand, 64))
    times = {k: [] for k in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.thread_time()
            run()
            times[name].append(time.thread_time() - started)
    base = times["unfused"]
    return {name: {"ms": statistics.median(t) * 1e3,
                   "ratio": statistics.median(a / u for a, u in zip(t, base))} for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="scale:256x1024,scale:1024x1024,filter:1024x1024,window:1024x1024,"
                                          "r2c_scale:1024x1024,convolution:1024x1024,scale:4096x1024,filter:4096x1024")
    parser.add_argument("--engine", default="scipy")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    results = {}
    for spec in args.rows.split(","):
        case, size = spec.split(":")
        (b, n), = parse_sizes(size)
        got = results[spec] = row(case, b, n, args.engine, args.rounds, rng)
        print(f"{spec} ({args.engine}): " + "  ".join(f"{k} {v['ms']:.2f} ({v['ratio']:.2f}x)" for k, v in got.items()),
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"engine": args.engine, "rows": results}, indent=1))


if __name__ == "__main__":
    main()
