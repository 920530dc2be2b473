"""Fused CPU callbacks against unfused SciPy: the CPU executor's cost per case.

    python benchmarks/cpu_callbacks.py                  # table, and JSON under benchmarks/results/
    python benchmarks/cpu_callbacks.py --label ci-cpu --batch 4096 --rounds 25

Each case runs three ways, interleaved round by round so drift in a shared machine hits all
alike; the table shows medians:

* fused: ``CpuExecutor.execute`` with the callback, the output allocated per call as the API does;
* unfused: ``scipy.fft`` then the elementwise step in NumPy, in place where NumPy can;
* plain: the executor without a callback (the same FFT path, so fused - plain is the
  callback's own cost) and ``scipy.fft`` alone.

"convolution" runs ``ifft(fft(x, epilog=filter))`` with an out-of-place inverse, as the GPU
benchmark does; "convolution_inplace" lets the inverse overwrite the forward result (the
API's ``inplace`` option), as the unfused twin's ``overwrite_x=True`` does.

Complex64 batches of N=1024 (plus R2C and one 2-D case), all threads (``workers`` = cores).
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
import time
from pathlib import Path
from typing import Callable

import numpy as np
import scipy
import scipy.fft as sfft

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compiler.cpu_backend import compile_cpu  # noqa: E402
from nvmath.fft import _cpu  # noqa: E402
from nvmath.fft._cpu import CpuExecutor  # noqa: E402
from nvmath.fft._layout import plan_problem  # noqa: E402


def element_strides(a: np.ndarray) -> tuple[int, ...]:
    return tuple(s // a.itemsize for s in a.strides)


class Fused:
    """An executor for ``transform`` on ``operand`` with optional callbacks, called like the API."""

    def __init__(self, transform: str, operand: np.ndarray, axes, prolog=None, epilog=None, workers=None, inplace=False):
        self.problem = p = plan_problem(transform, operand.shape, element_strides(operand), operand.dtype.name, axes,
                                        inplace=inplace)
        assert not p.copy_input or transform == "irfft"
        self.operand = operand
        self.inplace = inplace
        self.data = {}
        callbacks = []
        for kind_, spec, dtype in (("prolog", prolog, p.input_dtype), ("epilog", epilog, p.output_dtype)):
            if spec is None:
                callbacks.append(None)
                continue
            fn, data = spec if isinstance(spec, tuple) else (spec, None)
            callbacks.append(compile_cpu(fn, kind_, dtype, None if data is None else data.dtype))
            self.data[kind_] = None if data is None else data.reshape(-1)
        self.executor = CpuExecutor(p, *callbacks, workers=workers)

    def __call__(self, operand: np.ndarray | None = None) -> np.ndarray:
        p = self.problem
        inp = self.operand if operand is None else operand
        out = inp if self.inplace else np.empty(p.output.shape, p.output_dtype)
        self.executor.execute(inp, out, p.direction, self.data.get("prolog"), self.data.get("epilog"))
        return out


def timed(cases: dict[str, Callable[[], object]], rounds: int, warmup: int = 3) -> dict[str, dict]:
    for run in cases.values():
        for _ in range(warmup):
            run()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            t = time.perf_counter()
            run()
            samples[name].append((time.perf_counter() - t) * 1e3)
    return {
        name: {"median_ms": statistics.median(s), "min_ms": min(s), "max_ms": max(s)} for name, s in samples.items()
    }


def first_call_seconds(workers: int) -> dict[str, float]:
    """Compile + first execution of a new epilog and a new prolog (fresh functions, so no cache)."""
    x = np.ones((8, 1024), np.complex64)
    data = np.ones((8, 1024), np.complex64)
    out = {}
    for label, kwargs in (
        ("epilog_value", {"epilog": eval("lambda v: v * 0.125")}),
        ("epilog_value_data", {"epilog": (eval("lambda v, f: v * f + 0.5"), data)}),
        ("prolog_and_epilog", {"prolog": (eval("lambda v, w: v * w - 0.5"), data), "epilog": eval("lambda v: v * 0.25")}),
    ):
        t = time.perf_counter()
        Fused("fft", x, (-1,), workers=workers, **kwargs)()
        out[label] = time.perf_counter() - t
    return out


def run(batch: int, n: int, rounds: int, workers: int) -> dict:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((batch, n), np.float32) + 1j * rng.standard_normal((batch, n), np.float32)).astype(np.complex64)
    filt = (rng.standard_normal((batch, n), np.float32) + 1j * rng.standard_normal((batch, n), np.float32)).astype(np.complex64)
    window = np.repeat(np.hanning(n).astype(np.float32)[None, :], batch, 0)
    xr = rng.standard_normal((batch, n), np.float32)
    x2 = (rng.standard_normal((16, 512, 512), np.float32) + 0j).astype(np.complex64)
    scale = np.float32(1.0 / n)

    def scale_cb(v):
        return v * scale

    def filter_cb(v, f):
        return v * f

    def window_cb(v, w):
        return v * w

    W = workers
    plain = Fused("fft", x, (-1,), workers=W)
    fused = {
        "scale_epilog": Fused("fft", x, (-1,), epilog=scale_cb, workers=W),
        "filter_epilog": Fused("fft", x, (-1,), epilog=(filter_cb, filt), workers=W),
        "window_prolog": Fused("fft", x, (-1,), prolog=(window_cb, window), workers=W),
        "r2c_scale_epilog": Fused("rfft", xr, (-1,), epilog=scale_cb, workers=W),
        "2d_scale_epilog": Fused("fft", x2, (1, 2), epilog=scale_cb, workers=W),
    }
    inverse = Fused("ifft", x, (-1,), workers=W)
    inverse_in_place = Fused("ifft", x, (-1,), workers=W, inplace=True)
    conv_forward = fused["filter_epilog"]
    r2c_plain = Fused("rfft", xr, (-1,), workers=W)
    plain_2d = Fused("fft", x2, (1, 2), workers=W)

    def unfused_scale():
        y = sfft.fft(x, workers=W)
        y *= scale
        return y

    def unfused_filter():
        y = sfft.fft(x, workers=W)
        y *= filt
        return y

    def unfused_convolution():
        y = sfft.fft(x, workers=W)
        y *= filt
        return sfft.ifft(y, norm="forward", overwrite_x=True, workers=W)

    def unfused_r2c():
        y = sfft.rfft(xr, workers=W)
        y *= scale
        return y

    def unfused_2d():
        y = sfft.fftn(x2, axes=(1, 2), workers=W)
        y *= scale
        return y

    # case: (fused, unfused, our plain, SciPy plain)
    cases = {
        "scale_epilog": (fused["scale_epilog"], unfused_scale, plain, lambda: sfft.fft(x, workers=W)),
        "filter_epilog": (fused["filter_epilog"], unfused_filter, plain, lambda: sfft.fft(x, workers=W)),
        "window_prolog": (fused["window_prolog"], lambda: sfft.fft(x * window, workers=W), plain,
                          lambda: sfft.fft(x, workers=W)),
        "convolution": (lambda: inverse(conv_forward()), unfused_convolution, lambda: inverse(plain()),
                        lambda: sfft.ifft(sfft.fft(x, workers=W), norm="forward", overwrite_x=True, workers=W)),
        # The inverse overwrites the forward result, as SciPy's overwrite_x does in the unfused twin.
        "convolution_inplace": (lambda: inverse_in_place(conv_forward()), unfused_convolution,
                                lambda: inverse_in_place(plain()),
                                lambda: sfft.ifft(sfft.fft(x, workers=W), norm="forward", overwrite_x=True, workers=W)),
        "r2c_scale_epilog": (fused["r2c_scale_epilog"], unfused_r2c, r2c_plain, lambda: sfft.rfft(xr, workers=W)),
        "2d_scale_epilog": (fused["2d_scale_epilog"], unfused_2d, plain_2d,
                            lambda: sfft.fftn(x2, axes=(1, 2), workers=W)),
    }
    check(fused, filt, window, x, xr, x2, scale, inverse, conv_forward)
    np.testing.assert_allclose(inverse_in_place(conv_forward()), inverse(conv_forward()), rtol=0, atol=1e-3)
    rows = []
    for name, (f, u, p, s) in cases.items():
        t = timed({"fused": f, "unfused": u, "plain": p, "scipy_plain": s}, rounds)
        fused_ms, unfused_ms = t["fused"]["median_ms"], t["unfused"]["median_ms"]
        plain_ms, scipy_ms = t["plain"]["median_ms"], t["scipy_plain"]["median_ms"]
        rows.append({
            "case": name,
            "fused_ms": fused_ms,
            "unfused_ms": unfused_ms,
            "plain_ms": plain_ms,
            "scipy_plain_ms": scipy_ms,
            "fused_over_unfused": fused_ms / unfused_ms,
            "callback_overhead": fused_ms / plain_ms - 1,
            "overhead_vs_scipy_plain": fused_ms / scipy_ms - 1,
            "samples": t,
        })
    return {"rows": rows}


def check(fused, filt, window, x, xr, x2, scale, inverse, conv_forward) -> None:
    """Each fused case computes what its unfused twin does (complex64 accuracy)."""
    def close(a, b):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * float(np.abs(b).max()))

    close(fused["scale_epilog"](), sfft.fft(x) * scale)
    close(fused["filter_epilog"](), sfft.fft(x) * filt)
    close(fused["window_prolog"](), sfft.fft(x * window))
    close(fused["r2c_scale_epilog"](), sfft.rfft(xr) * scale)
    close(fused["2d_scale_epilog"](), sfft.fftn(x2, axes=(1, 2)) * scale)
    close(inverse(conv_forward()), sfft.ifft(sfft.fft(x) * filt, norm="forward"))


def environment(workers: int) -> dict:
    import numba

    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {
        "host": socket.gethostname(), "cpu": cpu, "cores": os.cpu_count(), "workers": workers,
        "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
        "numba": numba.__version__, "commit": commit, "block_bytes": _cpu.BLOCK_BYTES,
    }


def table(result: dict) -> str:
    head = f"{'case':<21}{'fused ms':>10}{'unfused ms':>12}{'fused/unfused':>15}{'plain ms':>10}{'scipy ms':>10}" \
           f"{'cb overhead':>13}{'vs scipy':>10}"
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(
            f"{r['case']:<21}{r['fused_ms']:>10.2f}{r['unfused_ms']:>12.2f}{r['fused_over_unfused']:>15.2f}"
            f"{r['plain_ms']:>10.2f}{r['scipy_plain_ms']:>10.2f}{r['callback_overhead']:>12.0%}"
            f"{r['overhead_vs_scipy_plain']:>10.0%}"
        )
    first = result.get("first_call_s", {})
    if first:
        lines.append("first call (compile + run): " + ", ".join(f"{k} {v:.2f} s" for k, v in first.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--block-bytes", type=int, default=None, help="override the executor's block size")
    parser.add_argument("--label", default=None, help="result file suffix (default: host name)")
    parser.add_argument("--json", default=None, help="JSON path (default: benchmarks/results/cpu_callbacks-<label>.json)")
    args = parser.parse_args(argv)
    if args.block_bytes:
        _cpu.BLOCK_BYTES = args.block_bytes
    result = {"first_call_s": first_call_seconds(args.workers)}
    result.update(run(args.batch, args.n, args.rounds, args.workers))
    result["config"] = {"batch": args.batch, "n": args.n, "rounds": args.rounds, "dtype": "complex64"}
    result["notes"] = {
        "fused_ms": "CpuExecutor.execute with the callback, output allocated per call (as the API does); median",
        "unfused_ms": "scipy.fft, then the elementwise step in NumPy (in place where possible); median",
        "plain_ms": "CpuExecutor.execute without a callback: same path, includes the copy into the caller's output",
        "scipy_plain_ms": "the scipy.fft call(s) alone, into an array SciPy allocates",
        "callback_overhead": "fused_ms / plain_ms - 1",
        "overhead_vs_scipy_plain": "fused_ms / scipy_plain_ms - 1",
        "first_call_s": "compile_cpu + first execute of new callbacks; the first includes importing numba",
    }
    result["environment"] = environment(args.workers)
    print(table(result))
    label = args.label or socket.gethostname()
    path = Path(args.json) if args.json else ROOT / "benchmarks" / "results" / f"cpu_callbacks-{label}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
