"""Does the epilog's compiled pass cost what NumPy's multiply does? numba's loop against NumPy's.

    python benchmarks/cpu_loop_codegen.py

A complex64 in-place filter, ``data[off] = v * info[off]``, in the shape of the CPU loops
(``fftfuse_compiler.cpu_loops``: rows of a strided walk, the callback inlined), compiled by
numba and timed against ``np.multiply(y, h, out=y)`` at 64 x 1024 and 1024 x 1024 (one thread,
CPU time, medians of 30 interleaved samples), in a fresh process per code generation variant:
numba's default for this CPU, 512-bit vectors allowed (``-prefer-256-bit``), FMA contraction,
and the same product written on float32 pairs. Prints each variant's times and how many of its
instructions use 512-bit (zmm) and 256-bit (ymm) registers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

VARIANT_ENV = "CPU_LOOP_CODEGEN_VARIANT"
VARIANTS = ("default", "no-prefer-256", "contract", "floatview")


def main() -> None:
    """Run each variant in a process of its own (numba's target features are per process)."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    host = llvm.get_host_cpu_features().flatten()
    print("cpu", llvm.get_host_cpu_name(), "prefer-256 in host features:", "prefer-256-bit" in host)
    extra = {"no-prefer-256": {"NUMBA_CPU_FEATURES": host + ",-prefer-256-bit"}}
    for name in VARIANTS:
        env = dict(os.environ, **extra.get(name, {}), **{VARIANT_ENV: name})
        run = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True)
        print(name, run.stdout.strip(), run.stderr.strip()[-300:])


def measure(variant: str) -> dict:
    """The loop of ``variant`` and NumPy's multiply, side by side, and the loop's registers."""
    import numba

    fastmath = {"contract"} if variant == "contract" else False

    @numba.njit(fastmath=fastmath)
    def callback(data, offset, value, info, shared):  # noqa: ANN001, ANN202
        data[offset] = value * info[offset]

    @numba.njit(fastmath=fastmath)
    def loop(data, base, strides, info, rows, shape):  # noqa: ANN001, ANN202
        n, step, row_stride = shape[1], strides[1], strides[0]
        for r in range(rows):
            a = base + r * row_stride
            for j in range(n):
                callback(data, a + j * step, data[a + j * step], info, None)
        return 0

    @numba.njit
    def pairs(d, h, n):  # noqa: ANN001, ANN202
        for j in range(n):
            re, im = d[2 * j], d[2 * j + 1]
            h_re, h_im = h[2 * j], h[2 * j + 1]
            d[2 * j] = re * h_re - im * h_im
            d[2 * j + 1] = re * h_im + im * h_re
        return 0

    u = np.uint64
    result = {}
    for batch in (64, 1024):
        n = 1024
        rng = np.random.default_rng(0)
        y = (rng.standard_normal(batch * n) + 1j * rng.standard_normal(batch * n)).astype(np.complex64)
        h = np.exp(1j * rng.standard_normal(batch * n)).astype(np.complex64)  # |h| = 1: y stays finite
        strides, shape = np.array([n, 1], np.uint64), np.array([batch, n], np.uint64)
        if variant == "floatview":
            y_pairs, h_pairs = y.view(np.float32), h.view(np.float32)
            runs = {"loop": lambda: pairs(y_pairs, h_pairs, batch * n)}
        else:
            runs = {"loop": lambda: loop(y, u(0), strides, h, u(batch), shape)}
        runs["numpy"] = lambda: np.multiply(y, h, out=y)
        for run in runs.values():
            run()
        samples: dict[str, list[float]] = {name: [] for name in runs}
        repeat = 50 if batch == 64 else 5
        for _ in range(30):
            for name, run in runs.items():
                start = time.thread_time_ns()
                for _ in range(repeat):
                    run()
                samples[name].append((time.thread_time_ns() - start) / repeat / 1e3)
        us = {name: float(np.median(s)) for name, s in samples.items()}
        result[f"{batch}x{n}"] = (f"loop {us['loop']:.1f} us, numpy {us['numpy']:.1f} us, "
                                  f"ratio {us['loop'] / us['numpy']:.2f}")
    asm = "".join((pairs if variant == "floatview" else loop).inspect_asm().values())
    result["zmm"], result["ymm"] = asm.count("zmm"), asm.count("ymm")
    return result


if __name__ == "__main__":
    variant = os.environ.get(VARIANT_ENV)
    if variant is None:
        main()
    else:
        print(json.dumps(measure(variant)))
