"""A fresh process's cache hit stays light: ``compile_epilog`` served from disk loads none of the
modules that cost milliseconds at start-up (numba and NumPy; dataclasses and inspect; OpenSSL
through hashlib or hmac; the sqlite3 package and datetime; tokenize), so import plus look-up
takes about ten milliseconds. A first compile (a miss) of one expression of arithmetic loads
neither numba nor NumPy (``direct_ir``); any other loads what numba-cuda needs, and not
scipy.linalg, which numba-cuda's NumPy support would import for a host BLAS no GPU code calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

CALLBACKS = """\
import math

SCALE = 0.5


def filter_epilog(x, d):
    return x * d * SCALE


def phase_epilog(x, d):
    return x * d * math.cos(SCALE)
"""

WORKER = """\
import json, sys
import hit_callbacks as cb
before = set(sys.modules)
from nvmath.fft import compile_epilog
ltoir = compile_epilog(cb.{function}, "complex64", "complex64", compute_capability=90)
print(json.dumps({{"loaded": sorted(set(sys.modules) - before), "size": len(ltoir), "head": ltoir[:16].hex()}}))
"""

HEAVY = ("numba", "numpy", "dataclasses", "inspect", "hashlib", "_hashlib", "hmac", "sqlite3", "datetime", "tokenize",
         "logging", "diskcache", "cuda")


def run_worker(tmp_path: Path, function: str = "filter_epilog") -> dict:
    env = dict(os.environ, FFTFUSE_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    env.pop("FFTFUSE_CACHE", None)
    done = subprocess.run([sys.executable, "-c", WORKER.format(function=function)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_disk_hit_in_a_fresh_process_loads_nothing_heavy(tmp_path):
    (tmp_path / "hit_callbacks.py").write_text(CALLBACKS)
    first = run_worker(tmp_path)  # compiles and stores
    hit = run_worker(tmp_path)
    assert (hit["size"], hit["head"]) == (first["size"], first["head"])
    heavy = sorted(m for m in hit["loaded"] if m.split(".")[0] in HEAVY)
    assert not heavy, f"a cache hit loaded {heavy}"


def test_a_first_compile_of_one_expression_loads_neither_numba_nor_numpy(tmp_path):
    (tmp_path / "hit_callbacks.py").write_text(CALLBACKS)
    miss = run_worker(tmp_path)
    assert miss["size"] > 0
    loaded = [m for m in miss["loaded"] if m.split(".")[0] in ("numba", "numpy", "numba_cuda", "llvmlite")]
    assert not loaded, f"a one-expression callback's compile loaded {loaded[:5]}"


def test_a_first_compile_does_not_load_scipy_linalg(tmp_path):
    (tmp_path / "hit_callbacks.py").write_text(CALLBACKS)
    miss = run_worker(tmp_path, "phase_epilog")  # math.cos: numba's route
    assert "numba" in miss["loaded"]  # it did compile
    assert not [m for m in miss["loaded"] if m.startswith("scipy.linalg")]
