"""The performance figures of the documentation, drawn from the committed runs in ``results/``.

    python benchmarks/plots.py [OUT_DIR]        # writes one SVG per figure (default: ./figures)

The documentation build calls ``render()`` (``docs/hooks.py``), so the figures on the site are
always the data's: nothing here is typed in by hand but the choice of runs and the labels.
Each figure names the run it was drawn from in its title.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

# The runs the figures show: the latest complete run of each benchmark (the docs' tables cite the same).
GPU_RUN = "fft_callbacks-h100-adb5e58.json"
HOST_RUN = "host_overhead-h100-f9bab41.json"
COLD_RUN = "cold_start-h100-94cd00a.json"
CPU_RUN = "cpu_callbacks-ci-vm-amd-epyc-2core-complex64-w2-da33e22.json"
MULTI_GPU_RUN = "multi_gpu-h100x2-f9bab41.json"
CHAIN_RUN = "chain_kernel-h100-38a8d5c.json"
DASK_RUNS = ("dask_fft-gpu-threads-h100x2-8dffcb3.json", "dask_fft-gpu-distributed-h100x2-8dffcb3.json")

# GPU cases in the order of the docs' table: (label, key in the run's rows, key in its inlining list).
GPU_CASES = (
    ("scale epilog", "scale_epilog", "scale_epilog", "plain"),
    ("filter epilog", "filter_epilog", "filter_epilog", "plain"),
    ("window prolog", "window_prolog", "window_prolog", "plain"),
    ("convolution\nfft, *filter, ifft", "convolution", "convolution", None),
    ("R2C + scale", "r2c_scale_epilog", "r2c_scale_epilog", "r2c_plain"),
    ("2-D + scale", "2d_scale_epilog", "2d_scale_epilog", "2d_plain"),
    ("complex128 + scale", None, "z128_scale_epilog", None),
    ("R2C window prolog", None, "r2c_window_prolog", "r2c_plain"),
    ("(N,) filter, broadcast", "filter_epilog_broadcast", None, "plain"),
    ("(N,) window, broadcast", "window_prolog_broadcast", None, "plain"),
    ("phase ramp, fastmath", "phase_ramp_index_fastmath", None, "plain"),
    ("phase ramp, accurate sin/cos", "phase_ramp_index", None, "plain"),
)

COLOURS = {"fftfuse": "#1f6fb4", "C++": "#7fb0dc", "nvmath-python": "#e08a2c", "CuPy": "#9a9a9a",
           "plain": "#222222", "fused": "#1f6fb4", "unfused": "#9a9a9a"}
CPU_CASES = ("scale", "filter", "window", "convolution", "r2c_scale", "2d_mask")


def load(name: str, results: Path = RESULTS) -> dict[str, Any]:
    """One committed run, as its JSON."""
    return json.loads((results / name).read_text())


def _title(fig: Figure, text: str, run: str) -> None:
    """A title and, under it, the run the figure was drawn from; the axes fill the rest."""
    height = fig.get_figheight()
    fig.text(0.01, 1 - 0.12 / height, text, fontsize=11, ha="left", va="top")
    fig.text(0.01, 1 - 0.36 / height, f"benchmarks/results/{run}", fontsize=8, color="#555555", ha="left", va="top")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.55 / height))


def gpu_cases(results: Path) -> Figure:
    """GPU time per case: fused Python callback, the same callback in C++, nvmath-python, CuPy unfused."""
    run = load(GPU_RUN, results)
    rows = {r["case"]: r for r in run["rows"]}
    inline = {r["case"]: r for r in run["inlining"]}
    plain_of = {k: run["runs"]["ours"][k]["median_ms"] for k in ("plain", "r2c_plain", "2d_plain")}
    series: dict[str, list[float | None]] = {"fftfuse": [], "C++": [], "nvmath-python": [], "CuPy": []}
    plains: list[float | None] = []
    for _label, row, inl, plain in GPU_CASES:
        r, i = rows.get(row or ""), inline.get(inl or "")
        series["fftfuse"].append(r["ours_ms"] if r else i["python_ms"])
        series["C++"].append(i["cpp_ms"] if i else None)
        series["nvmath-python"].append(r["nvmath_ms"] if r else None)
        series["CuPy"].append(r["cupy_ms"] if r else None)
        plains.append(plain_of[plain] if plain else (i["plain_ms"] if i else None))
    fig, ax = plt.subplots(figsize=(8, 7.5))
    height = 0.2
    for k, (name, values) in enumerate(series.items()):
        for c, v in enumerate(values):
            if v is not None:
                ax.barh(c + (k - 1.5) * height, v, height, color=COLOURS[name], label=name if c == 0 or
                        all(x is None for x in values[:c]) else None)
    for c, p in enumerate(plains):
        if p is not None:
            ax.plot([p, p], [c - 2 * height, c + 2 * height], color=COLOURS["plain"], lw=1.5,
                    label="plain FFT, no callback" if c == 0 else None)
    ax.set_yticks(range(len(GPU_CASES)), [c[0] for c in GPU_CASES], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("GPU time per call, ms (back-to-back calls, median; shorter is better)")
    ax.legend(loc="center right", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    _title(fig, "Batched complex64 1024 x 65536 unless named, one H100", GPU_RUN)
    return fig


def gpu_inlining(results: Path) -> Figure:
    """Why inlining matters: numba's C ABI alone, our thunk, and C++, against the plain FFT."""
    run = load(GPU_RUN, results)["runs"]["ours"]
    cases = (("scale epilog", "scale_epilog"), ("filter epilog", "filter_epilog"), ("window prolog", "window_prolog"))
    kinds = (("numba's C ABI alone (indirect call)", "numba_c_abi_{}_stateful", "#e08a2c"),
             ("through cuFFT's prototype (inlined)", "thunk_{}_stateful", COLOURS["fftfuse"]),
             ("the same in CUDA C++", "cpp_{}", COLOURS["C++"]))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    height = 0.25
    for k, (label, key, colour) in enumerate(kinds):
        values = [run[key.format(case)]["median_ms"] for _, case in cases]
        ax.barh([c + (k - 1) * height for c in range(len(cases))], values, height, color=colour, label=label)
    plain = run["plain"]["median_ms"]
    ax.axvline(plain, color=COLOURS["plain"], lw=1.2, ls="--", label=f"plain FFT ({plain:.3f} ms)")
    ax.set_yticks(range(len(cases)), [c[0] for c in cases])
    ax.invert_yaxis()
    ax.set_xlabel("GPU time per call, ms")
    ax.set_xlim(0, max(run[k.format(c)]["median_ms"] for _, k, _ in kinds for _, c in cases) * 1.6)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    _title(fig, "One Python callback, three ways into cuFFT's kernel (H100)", GPU_RUN)
    return fig


def host_overhead(results: Path) -> Figure:
    """Host time per call on a 1 x 1024 operand, log scale."""
    runs = load(GPU_RUN, results)["runs"]
    bars = (("fftfuse, stateful execute()", runs["ours"]["host_stateful_execute_1x1024"], COLOURS["fftfuse"]),
            ("fftfuse, stateless fft(x, epilog=f)", runs["ours"]["host_stateless_epilog_1x1024"], COLOURS["fftfuse"]),
            ("cupy.fft.fft, no callback", runs["cupy"]["host_plain_1x1024"], COLOURS["CuPy"]),
            ("nvmath-python, stateful execute()", runs["nvmath"]["host_stateful_execute_1x1024"],
             COLOURS["nvmath-python"]),
            ("nvmath-python, stateless fft(x, epilog=...)", runs["nvmath"]["host_stateless_epilog_1x1024"],
             COLOURS["nvmath-python"]))
    fig, ax = plt.subplots(figsize=(8, 3.2))
    values = [b[1]["median_us"] for b in bars]
    ax.barh(range(len(bars)), values, color=[b[2] for b in bars])
    for c, v in enumerate(values):
        ax.text(v * 1.08, c, f"{v:,.1f} us", va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(1, max(values) * 8)
    ax.set_yticks(range(len(bars)), [b[0] for b in bars], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("host time per call, us (log scale; median of 2000 calls)")
    ax.grid(axis="x", alpha=0.3)
    _title(fig, "Host time per call, 1 x 1024 complex64 on the GPU", GPU_RUN)
    return fig


def cold_start(results: Path) -> Figure:
    """A fresh process to its first fused result, by phase, warm caches."""
    run = load(COLD_RUN, results)
    # The benchmark's first_result runs from the import to the result, the CUDA context included.
    phases = (("import cupy", lambda r: r["import_cupy"], "#bbbbbb"),
              ("import the library", lambda r: r["import_lib"], "#e08a2c"),
              ("CUDA context", lambda r: r["context"], "#888888"),
              ("plan, compile or load, run", lambda r: r["first_result"] - r["context"], COLOURS["fftfuse"]))
    fig, ax = plt.subplots(figsize=(8, 2.6))
    names = ("ours", "nvmath-python")
    for row, name in enumerate(names):
        left = 0.0
        for label, part, colour in phases:
            ax.barh(row, part(run[name]), left=left, color=colour, label=label if row == 0 else None)
            left += part(run[name])
        ax.text(left + 0.03, row, f"{run[name]['total']:.2f} s", va="center", fontsize=9)
    ax.set_yticks(range(len(names)), ["fftfuse", "nvmath-python 1.0"])
    ax.invert_yaxis()
    ax.set_xlim(0, max(run[n]["total"] for n in names) * 1.15)
    ax.set_xlabel("seconds from a fresh process (compile cache and driver JIT cache warm)")
    ax.legend(loc="upper right", fontsize=8, ncol=2)
    _title(fig, "Fresh process to the first fused FFT result (H100)", COLD_RUN)
    return fig


def _cpu_rows(results: Path) -> list[dict[str, Any]]:
    return load(CPU_RUN, results)["rows"]


def cpu_ratio(results: Path) -> Figure:
    """Fused over unfused CPU time against the batch size, one line per case."""
    rows = _cpu_rows(results)
    fig, ax = plt.subplots(figsize=(8, 4))
    for case in CPU_CASES:
        mine = sorted((r for r in rows if r["case"] == case), key=lambda r: r["batch"] * r["n"])
        ax.plot([r["batch"] * r["n"] for r in mine], [r["fused_over_unfused"] for r in mine], marker="o", ms=4,
                label=case)
    ax.axhline(1.0, color=COLOURS["plain"], lw=1, ls="--")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("elements per call (1 x 64, then 1 to 4096 rows of 1024)")
    ax.set_yticks([0.25, 0.5, 1, 2], ["0.25", "0.5", "1", "2"])
    ax.set_ylabel("fused / unfused time (< 1: fused faster)")
    ax.legend(fontsize=8, ncol=3)
    ax.grid(alpha=0.3)
    _title(fig, "CPU: fused callbacks against scipy.fft then NumPy (2-core VM)", CPU_RUN)
    return fig


def cpu_time(results: Path) -> Figure:
    """CPU time against the problem size, fused and unfused, one panel per case."""
    rows = _cpu_rows(results)
    fig, axes = plt.subplots(2, 3, figsize=(9, 5.5), sharex=True, sharey=True)
    for ax, case in zip(axes.flat, CPU_CASES):
        mine = sorted((r for r in rows if r["case"] == case), key=lambda r: r["batch"] * r["n"])
        elements = [r["batch"] * r["n"] for r in mine]
        ax.plot(elements, [r["fused_ms"] for r in mine], marker="o", ms=3, color=COLOURS["fused"], label="fused")
        ax.plot(elements, [r["unfused_ms"] for r in mine], marker="s", ms=3, color=COLOURS["unfused"],
                label="unfused")
        ax.set_title(case, fontsize=9)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("elements (64 to 4096 x 1024)")
    for ax in axes[:, 0]:
        ax.set_ylabel("ms per call")
    _title(fig, "CPU time against problem size (2-core VM, complex64)", CPU_RUN)
    return fig


def scaling(results: Path) -> Figure:
    """Throughput on one and two GPUs: threads (multi_gpu) and Dask graphs."""
    multi = load(MULTI_GPU_RUN, results)
    dask = [load(name, results) for name in DASK_RUNS]
    labels, fused, unfused = [], [], []
    labels.append("fused convolutions, threads\n1 GPU vs 2 GPUs")
    for d in dask:
        where = "1 GPU, threaded scheduler" if d["gpus"] == 1 else f"{d['gpus']} GPUs, dask.distributed"
        labels.append(f"Dask graph, {where}")
        fused.append(d["fused_GBps"])
        unfused.append(d["unfused_GBps"])
    fig, ax = plt.subplots(figsize=(8, 3.4))
    height = 0.35
    ax.barh(0 - height / 2, multi["one_gpu_GBps"], height, color=COLOURS["CuPy"], label="one GPU")
    ax.barh(0 + height / 2, multi["two_gpus_GBps"], height, color=COLOURS["fftfuse"], label="two GPUs")
    for c, (f, u) in enumerate(zip(fused, unfused), start=1):
        ax.barh(c - height / 2, u, height, color="#dddddd", edgecolor="#888888", label="unfused" if c == 1 else None)
        ax.barh(c + height / 2, f, height, color="#7fb0dc", label="fused" if c == 1 else None)
        ax.text(f + 10, c + height / 2, f"{f / u:.2f}x", va="center", fontsize=8)
    ax.text(multi["two_gpus_GBps"] + 10, height / 2, f"{multi['speedup']:.2f}x", va="center", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("GB/s of operand transformed (read once, written once)")
    ax.set_xlim(0, max(multi["two_gpus_GBps"], *fused) * 1.15)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    _title(fig, "One and two H100s", f"{MULTI_GPU_RUN}, {DASK_RUNS[0]}")
    return fig


def chain_routes(results: Path) -> Figure:
    """The filtering chain ifft(fft(x) * h) per FFT length: CuPy unfused, two cuFFT plans with the
    filter as a callback, one kernel around cuFFTDx, and one plain FFT of the same data (the floor)."""
    run = load(CHAIN_RUN, results)
    rows = [r for r in run["results"] if r["dtype"] == "complex64" and r["filter"] == "(n,)"]
    lengths = sorted({r["n"] for r in rows})
    routes = (("cupy", "CuPy unfused", COLOURS["CuPy"], "o"), ("two-plans", "two cuFFT plans, filter fused", "#7fb0dc", "s"),
              ("one-kernel", "one kernel (cuFFTDx)", COLOURS["fftfuse"], "D"),
              ("floor", "one plain FFT (floor)", COLOURS["plain"], ""))
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for route, label, colour, marker in routes:
        ms = [next(r["median_ms"] for r in rows if r["n"] == n and r["route"] == route) for n in lengths]
        ax.plot(lengths, ms, marker=marker or None, color=colour, label=label, ls="--" if route == "floor" else "-")
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.set_ylim(0, None)
    ax.set_xlabel("FFT length n (batch: 512 MiB of complex64 rows)")
    ax.set_ylabel("GPU ms per filtered batch")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 0.9), ncol=2)  # between CuPy and the rest
    ax.grid(alpha=0.3)
    _title(fig, f"ifft(fft(x) * h), h of shape (n,), one {run['device'].replace('NVIDIA ', '')}", CHAIN_RUN)
    return fig


FIGURES: dict[str, Callable[[Path], Figure]] = {
    "gpu_cases.svg": gpu_cases,
    "gpu_inlining.svg": gpu_inlining,
    "host_overhead.svg": host_overhead,
    "cold_start.svg": cold_start,
    "cpu_ratio.svg": cpu_ratio,
    "cpu_time.svg": cpu_time,
    "scaling.svg": scaling,
    "chain_routes.svg": chain_routes,
}


def render(results: Path = RESULTS) -> dict[str, bytes]:
    """Every figure as SVG bytes, by file name. The same data gives the same bytes."""
    out = {}
    with plt.rc_context({"svg.hashsalt": "fftfuse", "svg.fonttype": "none", "font.size": 9}):
        for name, draw in FIGURES.items():
            fig = draw(results)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="svg", metadata={"Date": None})
            plt.close(fig)
            out[name] = buffer.getvalue()
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0] if args else "figures")
    target.mkdir(parents=True, exist_ok=True)
    for name, data in render().items():
        (target / name).write_bytes(data)
        print(target / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
