"""Two versions of the library side by side: ``cpu_callbacks.py``'s filter case (and its 1 x 1024
per-call figure) in alternating processes, one per version, medians of every process's medians.

    python benchmarks/cpu_parity.py --base da294f4            # the base commit against the worktree
    python benchmarks/cpu_parity.py --base da294f4 --repeats 3 --rounds 11 --sizes 1024x1024

The base commit's tree is exported (``git archive``) to a temporary folder and given this
worktree's ``benchmarks/cpu_callbacks.py``, so both versions run the same benchmark code. For
every repeat, threads count and dtype, one process of each version runs
``cpu_callbacks.py --cases filter --fresh 0`` on all sizes, the base first on odd repeats and
last on even ones, so drift on a shared machine hits both alike. Each version has its own cache
folder (its engine choices are measured once, by its first process, and read back after). The
load average is printed with every process: a figure taken while other jobs held the cores says
little. ``--fresh N`` also times N fresh processes per version to their first fused result.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = "256x64,16384x64,256x4096,1024x1024"


def export(commit: str, where: Path) -> Path:
    tree = where / "base"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    shutil.copy(ROOT / "benchmarks" / "cpu_callbacks.py", tree / "benchmarks" / "cpu_callbacks.py")
    return tree


def one(tree: Path, cache: Path, out: Path, sizes: str, dtype: str, workers: int, rounds: int, fresh: int,
        clock: str = "wall") -> dict:
    env = {**os.environ, "FFTFUSE_CACHE_DIR": str(cache), "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(tree / "benchmarks" / "cpu_callbacks.py"), "--cases", "filter", "--sizes", sizes,
           "--dtype", dtype, "--workers", str(workers), "--rounds", str(rounds), "--fresh", str(fresh),
           "--json", str(out), "--clock", clock]
    load = os.getloadavg()[0]
    subprocess.run(cmd, env=env, cwd=tree, check=True, capture_output=True, text=True)
    result = json.loads(out.read_text())
    result["load_before"] = load
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the commit to compare the worktree with")
    ap.add_argument("--sizes", default=SIZES)
    ap.add_argument("--dtypes", default="complex64,complex128")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    ap.add_argument("--repeats", type=int, default=3, help="processes per version and configuration")
    ap.add_argument("--rounds", type=int, default=11, help="samples per run inside each process")
    ap.add_argument("--fresh", type=int, default=0, help="fresh processes to a first result, per version")
    ap.add_argument("--clock", choices=("wall", "thread"), default="wall",
                    help="thread: the calling thread's CPU time (one thread only: --threads 1)")
    ap.add_argument("--out", default=None, help="text file for the table (default: print only)")
    args = ap.parse_args(argv)
    if args.clock == "thread" and args.threads != "1":
        ap.error("--clock thread measures the calling thread only: use it with --threads 1")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "nvmath"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        trees = {"base": export(args.base, where), "head": ROOT}
        caches = {k: where / f"cache-{k}" for k in trees}
        runs: dict[tuple, dict[str, list[dict]]] = {}
        loads = []
        for r in range(args.repeats):
            for workers in map(int, args.threads.split(",")):
                for dtype in args.dtypes.split(","):
                    order = ("base", "head") if r % 2 == 0 else ("head", "base")
                    for version in order:
                        res = one(trees[version], caches[version], where / "out.json", args.sizes, dtype, workers,
                                  args.rounds, 0, args.clock)
                        loads.append(res["load_before"])
                        runs.setdefault((workers, dtype), {}).setdefault(version, []).append(res)
                        print(f"repeat {r} threads {workers} {dtype} {version}: load {res['load_before']:.1f}",
                              file=sys.stderr, flush=True)
        fresh = {}
        if args.fresh:
            for version in ("base", "head"):
                res = one(trees[version], caches[version], where / "out.json", "1x1024", "complex64", 1, 3,
                          args.fresh)
                fresh[version] = res["fresh_process"]
    what = "CPU time of the calling thread" if args.clock == "thread" else "wall time"
    lines = [f"fused filter epilog (FFT.execute) against scipy.fft.fft(x, workers=W) * h, ms per call ({what}); base "
             f"{args.base}, head {head}{' + uncommitted changes' if dirty else ''}; medians over {args.repeats} "
             f"processes per version of each process's median of {args.rounds} samples",
             f"load average before each process: {min(loads):.1f} to {max(loads):.1f} "
             f"({os.cpu_count()} cores)", ""]
    head_row = f"{'threads':>7} {'dtype':<11}{'size':>10}{'base':>9}{'head':>9}{'scipy':>9}{'base/scipy':>12}" \
               f"{'head/scipy':>12}"
    lines += [head_row, "-" * len(head_row)]
    small = {"base": [], "head": []}
    for (workers, dtype), by in runs.items():
        for i, size in enumerate(args.sizes.split(",")):
            med = {v: statistics.median(res["rows"][i]["fused_ms"] for res in by[v]) for v in by}
            sc = statistics.median(res["rows"][i]["unfused_ms"] for v in by for res in by[v])
            lines.append(f"{workers:>7} {dtype:<11}{size:>10}{med['base']:>9.3f}{med['head']:>9.3f}{sc:>9.3f}"
                         f"{med['base'] / sc:>12.2f}{med['head'] / sc:>12.2f}")
        for v in by:
            small[v] += [res["stateless"] for res in by[v]]
    lines.append("")
    for v in ("base", "head"):
        s = small[v]
        lines.append(f"1 x 1024 complex64 per call ({v}): stateless fused "
                     f"{statistics.median(x['stateless_us'] for x in s):.2f} us, stateful execute "
                     f"{statistics.median(x['stateful_execute_us'] for x in s):.2f} us, scipy fft * H "
                     f"{statistics.median(x['scipy_fft_times_h_us'] for x in s):.2f} us, stateless / scipy "
                     f"{statistics.median(x['stateless_over_scipy'] for x in s):.2f} (median of {len(s)} processes)")
    for v, f in fresh.items():
        lines.append(f"fresh process to first fused result ({v}): warm cache median {f['warm_median_s']:.3f} s "
                     f"(min {f['warm_min_s']:.3f} s)")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
