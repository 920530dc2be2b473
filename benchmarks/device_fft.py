"""Device-side FFT (cuFFTDx from numba kernels): cold and warm processes, and kernel GPU time (GPU machine).

Every sample is a fresh Python process, timed from its start to its checked result:

* ``seed``: ``examples/device_fft_convolution.py`` as written (``fft(...)``, ``cuda.jit(link=...)``);
  first process with an empty cache (cold), then processes with the cache warm;
* ``small``: the same convolution in nvmath-python 1.0's spelling (``FFT``, ``.execute``), ours
  cold (``--colds`` processes, each on an empty cache) and warm, and nvmath-python 1.0 (``--nvmath-python DIR``), which compiles in every process;
* ``large``: a 65536 x 1024 complex64 convolution kernel (4 FFTs per block, 16 elements per
  thread): its median GPU time when compiled fresh, when linked from the cache, and with
  nvmath-python 1.0.

    python benchmarks/device_fft.py [--runs 3] [--colds 3] [--nvmath-python DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "device_fft_worker.py")
SEED = os.path.join(ROOT, "examples", "device_fft_convolution.py")


def run(argv: list[str], env: dict, cwd: str) -> dict:
    """One fresh process: its wall time and, for the worker, its JSON line."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"{argv} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"stdout": out.stdout.strip()[-200:]}
    result["wall_s"] = wall
    return result


def environment(pythonpath: str, cache_dir: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = pythonpath
    env["FFTFUSE_CACHE_DIR"] = cache_dir
    # nvmath-python finds libmathdx through cuda-pathfinder, which does not look in a --target install's
    # nvidia/cu13/lib: name that folder to the system loader, where pathfinder's last search looks.
    folders = [os.path.join(entry, "nvidia", flavour, "lib") for entry in pythonpath.split(os.pathsep) if entry
               for flavour in ("cu13", "cu12")]
    found = [folder for folder in folders if os.path.isfile(os.path.join(folder, "libmathdx.so.0"))]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [*found, env.get("LD_LIBRARY_PATH", "")]))
    return env


def attempt(name: str, results: dict, make, path: str | None) -> None:
    """One case; a failure is recorded with its message and the other cases still run. The JSON
    is written after each case, so a run cut short keeps what it measured."""
    try:
        results[name] = make()
    except (RuntimeError, ValueError, KeyError, statistics.StatisticsError) as exc:
        results[name] = {"error": f"{type(exc).__name__}: {str(exc)[-3000:]}"}
        print(f"{name} failed: {str(exc)[-1500:]}", file=sys.stderr)
    print(f"{name}: done", file=sys.stderr, flush=True)
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=1)


def cold_and_warm(argv: list[str], env: dict, cwd: str, runs: int, colds: int = 1) -> dict:
    """The first process on the cache in ``env`` (cold), then ``runs`` on the cache it filled (warm).
    ``colds`` > 1 adds further cold processes, each on a cache of its own, for a median."""
    cold = run(argv, env, cwd)
    warm = [run(argv, env, cwd) for _ in range(runs)]
    median = statistics.median(w["wall_s"] for w in warm) if warm else None  # runs=0: the cold process only
    result = {"cold": cold, "warm": warm, "warm_wall_s_median": median}
    if colds > 1:
        walls = [cold["wall_s"]]
        for _ in range(colds - 1):
            with tempfile.TemporaryDirectory() as cache:
                walls.append(run(argv, {**env, "FFTFUSE_CACHE_DIR": cache}, cwd)["wall_s"])
        result["cold_walls_s"] = walls
        result["cold_wall_s_median"] = statistics.median(walls)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="warm processes per case (default 3)")
    parser.add_argument("--colds", type=int, default=3,
                        help="cold processes (each on an empty cache) for the 1.0 spelling's median (default 3)")
    parser.add_argument("--nvmath-python", metavar="DIR", help="folder where nvmath-python 1.0 is installed")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()

    ours_path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH", "")]))
    results: dict = {"python": sys.version.split()[0], "commit": os.environ.get("GIT_COMMIT", "unknown")}
    with tempfile.TemporaryDirectory() as cache:
        attempt("traits_ours", results, lambda: run([WORKER, "traits"], environment(ours_path, cache), ROOT), args.json)
    with tempfile.TemporaryDirectory() as cache:
        env = environment(ours_path, cache)
        attempt("seed", results, lambda: cold_and_warm([SEED], env, ROOT, args.runs), args.json)
    with tempfile.TemporaryDirectory() as cache:
        env = environment(ours_path, cache)
        attempt("small_ours", results, lambda: cold_and_warm([WORKER, "small"], env, ROOT, args.runs, args.colds),
                args.json)
    with tempfile.TemporaryDirectory() as cache:
        env = environment(ours_path, cache)
        attempt("large_ours", results, lambda: cold_and_warm([WORKER, "large"], env, ROOT, 1), args.json)
    if args.nvmath_python:
        ref_path = os.pathsep.join(filter(None, [args.nvmath_python, os.environ.get("PYTHONPATH", "").replace(ROOT, "")]))
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as cwd:
            env = environment(ref_path, cache)
            attempt("traits_nvmath_python", results, lambda: run([WORKER, "traits"], env, cwd), args.json)
            attempt("small_nvmath_python", results, lambda: cold_and_warm([WORKER, "small"], env, cwd, args.runs), args.json)
            attempt("large_nvmath_python", results, lambda: cold_and_warm([WORKER, "large"], env, cwd, 0), args.json)
    print(report(results))


def report(r: dict) -> str:
    lines = ["case                                   cold (s)   warm (s, median)"]
    for name, label in (("seed", "seed example, ours"), ("small_ours", "1.0 spelling, ours"),
                        ("small_nvmath_python", "1.0 spelling, nvmath-python 1.0"), ("large_ours", "65536x1024, ours")):
        if name in r and "error" in r[name]:
            lines.append(f"{label:<38} failed (see the JSON)")
        elif name in r:
            warm = r[name]["warm_wall_s_median"]
            lines.append(f"{label:<38} {r[name]['cold']['wall_s']:8.2f}   " + ("-" if warm is None else f"{warm:8.2f}"))
    if "cold_wall_s_median" in r.get("small_ours", {}) and "warm_wall_s_median" in r.get("small_nvmath_python", {}):
        ours, theirs = r["small_ours"]["cold_wall_s_median"], r["small_nvmath_python"]["warm_wall_s_median"]
        lines.append(f"first process, 1.0 spelling (median of {len(r['small_ours']['cold_walls_s'])} on empty caches): "
                     f"ours {ours:.2f} s, nvmath-python 1.0 {theirs:.2f} s (every process of its compiles): {ours / theirs:.2f}x")
    for name in ("traits_ours", "traits_nvmath_python"):
        if name in r:
            lines.append(f"{name}: {json.dumps({k: v for k, v in r[name].items() if k != 'wall_s'})}")
    if "large_ours" in r and "error" not in r["large_ours"]:
        cold, warm = r["large_ours"]["cold"], r["large_ours"]["warm"][0]
        lines.append(f"GPU time 65536x1024 convolution: compiled fresh {cold['gpu_ms_median']:.3f} ms, "
                     f"loaded from the cache in a warm process {warm['gpu_ms_median']:.3f} ms (kernel cache "
                     f"{warm.get('kernel_cache')}, link cache {warm.get('link_cache')})")
    if "large_nvmath_python" in r and "error" not in r["large_nvmath_python"]:
        lines.append(f"GPU time, nvmath-python 1.0: {r['large_nvmath_python']['cold']['gpu_ms_median']:.3f} ms")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
