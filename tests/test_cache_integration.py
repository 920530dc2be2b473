"""compile_callback through the persistent cache: hits, and a miss for every change that matters.

Every test compiles real LTO-IR with numba-cuda (no GPU needed) into a store under tmp_path.
A "miss" is checked two ways: the second compile reports ``source == "compiled"`` and the store
then holds a second entry (a different key). Comparing bytes would prove nothing: numba numbers
the functions it compiles, so two compiles in one process never give identical LTO-IR.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import fftfuse_cache
from fftfuse_cache import ArtifactStore
from fftfuse_compiler import CompiledCallback, compile_callback

ROOT = Path(__file__).resolve().parents[1]


def compile_epilog(fn: Callable, store: Any, *, element: str = "complex64", user: str | None = None,
                   arch: int = 80, indirect: bool = False) -> CompiledCallback:
    return compile_callback(fn, "epilog", element, user, compute_capability=arch, indirect=indirect, store=store)


def define(source: str, **namespace: Any) -> tuple[Callable, dict[str, Any]]:
    """Run ``source`` in a fresh namespace holding ``namespace``; return its ``f`` and the namespace."""
    exec(textwrap.dedent(source), namespace)
    return namespace["f"], namespace


def keys(store: ArtifactStore) -> list[str]:
    return [key for key, _ in store.entries()]


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    with ArtifactStore(tmp_path / "cache") as s:
        yield s


# --- hits ------------------------------------------------------------------------------------


def test_second_call_hits_memory_and_a_fresh_store_hits_disk(tmp_path: Path, store: ArtifactStore):
    f, _ = define("def f(x):\n    return x * 2")
    first = compile_epilog(f, store)
    again = compile_epilog(f, store)
    assert (first.source, again.source) == ("compiled", "cache")
    assert again.ltoir == first.ltoir and again.from_cache
    assert store.stats()["memory_hits"] == 1

    with ArtifactStore(tmp_path / "cache") as fresh:
        from_disk = compile_epilog(f, fresh)
        assert from_disk.source == "cache"
        assert from_disk.ltoir == first.ltoir
        assert (from_disk.symbol, from_disk.arch, from_disk.element_dtype) == (first.symbol, 80, "complex64")
        assert fresh.stats()["disk_hits"] == 1


def test_same_code_defined_twice_shares_one_entry(store: ArtifactStore):
    f1, _ = define("def f(x):\n    return x * 2")
    f2, _ = define("def f(x):\n    return x * 2")
    assert compile_epilog(f1, store).source == "compiled"
    assert compile_epilog(f2, store).source == "cache"
    assert len(keys(store)) == 1


# --- a miss for each change --------------------------------------------------------------------
# Each case compiles a "before" and an "after" that must not share a cache entry.

Case = Callable[[ArtifactStore, Path, pytest.MonkeyPatch], tuple[CompiledCallback, CompiledCallback]]


def case_global_constant(store, tmp_path, monkeypatch):
    f, ns = define("def f(x):\n    return x * SCALE", SCALE=2.0)
    before = compile_epilog(f, store)
    ns["SCALE"] = 3.0
    after = compile_epilog(f, store)
    ns["SCALE"] = 2.0  # back to the first value: the first entry is served again
    assert compile_epilog(f, store).source == "cache"
    return before, after


def case_closure_value(store, tmp_path, monkeypatch):
    def make(scale: float) -> Callable:
        def f(x):
            return x * scale
        return f

    return compile_epilog(make(2.0), store), compile_epilog(make(3.0), store)


def case_default_argument(store, tmp_path, monkeypatch):
    # A callback takes only its element (and user datum), so the default lives on a callee.
    f, ns = define(
        """
        def helper(x, s=2.0):
            return x * s
        def f(x):
            return helper(x)
        """
    )
    before = compile_epilog(f, store)
    ns["helper"].__defaults__ = (3.0,)
    return before, compile_epilog(f, store)


def case_callee_in_another_module(store, tmp_path, monkeypatch):
    # f's own module never changes; only the body of the callee it imports does.
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no stale .pyc within one mtime tick
    tag = f"{os.getpid()}_{time.monotonic_ns()}"
    callee_name, user_name = f"cb_callee_{tag}", f"cb_user_{tag}"
    callee_file = tmp_path / f"{callee_name}.py"
    callee_file.write_text("def scale(x):\n    return x * 2.0\n")
    (tmp_path / f"{user_name}.py").write_text(f"from {callee_name} import scale\n\ndef f(x):\n    return scale(x)\n")
    importlib.invalidate_caches()
    try:
        callee = importlib.import_module(callee_name)
        user = importlib.import_module(user_name)
        before = compile_epilog(user.f, store)
        callee_file.write_text("def scale(x):\n    return x * 3.0 + 1.0\n")
        importlib.reload(callee)
        user = importlib.reload(user)
        return before, compile_epilog(user.f, store)
    finally:
        sys.modules.pop(callee_name, None)
        sys.modules.pop(user_name, None)


def case_global_array_contents(store, tmp_path, monkeypatch):
    f, ns = define("def f(x):\n    return x * W[0]", W=np.array([2.0, 0.5]))
    before = compile_epilog(f, store)
    ns["W"][0] = 3.0  # same array object, new contents
    return before, compile_epilog(f, store)


def case_element_dtype(store, tmp_path, monkeypatch):
    f, _ = define("def f(x):\n    return x * 2")
    return compile_epilog(f, store, element="complex64"), compile_epilog(f, store, element="complex128")


def case_user_dtype(store, tmp_path, monkeypatch):
    f, _ = define("def f(x, d):\n    return x * d")
    return (compile_epilog(f, store, user="float32"), compile_epilog(f, store, user="float64"))


def case_architecture(store, tmp_path, monkeypatch):
    f, _ = define("def f(x):\n    return x * 2")
    return compile_epilog(f, store, arch=75), compile_epilog(f, store, arch=80)


def case_indirect_flag(store, tmp_path, monkeypatch):
    f, _ = define("def f(x, d):\n    return x * d")
    return (compile_epilog(f, store, user="float32", indirect=False),
            compile_epilog(f, store, user="float32", indirect=True))


CASES: dict[str, Case] = {
    "global-constant": case_global_constant,
    "closure-value": case_closure_value,
    "default-argument": case_default_argument,
    "callee-in-another-module": case_callee_in_another_module,
    "global-array-contents": case_global_array_contents,
    "element-dtype": case_element_dtype,
    "user-dtype": case_user_dtype,
    "architecture": case_architecture,
    "indirect-flag": case_indirect_flag,
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_change_misses_the_cache(case: str, store: ArtifactStore, tmp_path: Path, monkeypatch):
    before, after = CASES[case](store, tmp_path, monkeypatch)
    assert (before.source, after.source) == ("compiled", "compiled")
    assert len(keys(store)) == 2, "the change must give a different key"


# --- functions that cannot be cached -----------------------------------------------------------


def test_uncacheable_function_compiles_every_time_and_says_why(store: ArtifactStore, caplog):
    # The list is read only in a branch numba prunes, so it compiles; but a list can change
    # without notice, so the fingerprint refuses it.
    f, _ = define(
        """
        def f(x):
            if 0 > 1:
                return x * TABLE[0]
            return x * 2
        """,
        TABLE=[1, 2],
    )
    with caplog.at_level(logging.INFO, logger="fftfuse.compiler"):
        first = compile_epilog(f, store)
        second = compile_epilog(f, store)
    assert (first.source, second.source) == ("compiled", "compiled")
    assert keys(store) == []
    reasons = [r.getMessage() for r in caplog.records if "not caching" in r.getMessage()]
    assert len(reasons) == 1 and "'TABLE'" in reasons[0] and "list" in reasons[0]  # logged once


# --- damage and concurrency --------------------------------------------------------------------


def test_corrupted_entry_is_dropped_and_recompiled(tmp_path: Path, caplog):
    import diskcache

    f, _ = define("def f(x):\n    return x * 2")
    with ArtifactStore(tmp_path / "cache") as store:
        good = compile_epilog(f, store)
        (key,) = keys(store)
    with diskcache.Cache(str(tmp_path / "cache")) as raw:
        blob = bytearray(raw.get(key))
        blob[-20] ^= 0xFF  # one flipped bit in the LTO-IR
        raw.set(key, bytes(blob))

    with ArtifactStore(tmp_path / "cache") as store, caplog.at_level(logging.WARNING, logger="fftfuse.cache"):
        again = compile_epilog(f, store)
    assert again.source == "compiled" and again.symbol == good.symbol
    assert any("damaged" in r.getMessage() for r in caplog.records)
    with ArtifactStore(tmp_path / "cache") as store:
        assert compile_epilog(f, store).source == "cache"  # the recompiled entry replaced it


_WORKER = """
import hashlib, os, sys, time
import nvmath
from fftfuse_compiler import compile_callback
import fftfuse_compiler.cuda_backend, numba.cuda  # pay the imports before the start line
from fftfuse_cache import ArtifactStore
import {module} as m

open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.002)
result = compile_callback(m.f, "epilog", "complex64", compute_capability=80, store=ArtifactStore(sys.argv[1]))
print(result.source, hashlib.sha256(result.ltoir).hexdigest())
"""


def test_concurrent_processes_share_one_entry(tmp_path: Path):
    module = f"cb_concurrent_{os.getpid()}"
    (tmp_path / f"{module}.py").write_text("def f(x):\n    return x * 2.5 + 1\n")
    worker = tmp_path / "worker.py"
    worker.write_text(_WORKER.format(module=module))
    directory, go = tmp_path / "cache", tmp_path / "go"
    # Keep the caller's PYTHONPATH after ours: it may carry the packages this run depends on.
    path = [str(ROOT), str(tmp_path), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    procs, ready = [], []
    for i in range(4):
        ready.append(tmp_path / f"ready{i}")
        procs.append(subprocess.Popen(
            [sys.executable, str(worker), str(directory), str(ready[i]), str(go)],
            env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    try:
        deadline = time.monotonic() + 120
        while not all(p.exists() for p in ready) and time.monotonic() < deadline:
            if any(proc.poll() not in (None, 0) for proc in procs):
                break
            time.sleep(0.01)
        go.touch()  # all four compile at once
        outputs = [proc.communicate(timeout=180) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    results = [out.split() for out, _ in outputs]
    assert len({digest for _, digest in results}) == 1, results
    assert all(source in ("compiled", "cache") for source, _ in results)

    with ArtifactStore(directory) as store:
        (key,) = keys(store)
        payload, _ = store.get(key)
    assert hashlib.sha256(payload).hexdigest() == results[0][1]


# --- the default store's environment -----------------------------------------------------------


@pytest.fixture
def default_store_env(monkeypatch):
    """Tests that configure the process-wide store through the environment start and end fresh."""
    fftfuse_cache.reset_default_store()
    yield monkeypatch
    fftfuse_cache.reset_default_store()


def test_unwritable_cache_directory_warns_once_and_compiles(tmp_path: Path, default_store_env):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    default_store_env.setenv("FFTFUSE_CACHE_DIR", str(blocker / "cache"))  # cannot be created, even as root
    f, _ = define("def f(x):\n    return x * 2")
    g, _ = define("def f(x):\n    return x * 3")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = compile_callback(f, "epilog", "complex64", compute_capability=80)
        other = compile_callback(g, "epilog", "complex64", compute_capability=80)
        again = compile_callback(f, "epilog", "complex64", compute_capability=80)
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1, [str(w.message) for w in caught]
    assert str(blocker / "cache") in str(runtime[0].message)
    assert (first.source, other.source, again.source) == ("compiled", "compiled", "cache")  # memory layer
    assert first.ltoir and first.ltoir == again.ltoir


def test_cache_env_zero_disables_the_disk_layer(tmp_path: Path, default_store_env):
    directory = tmp_path / "cache"
    default_store_env.setenv("FFTFUSE_CACHE_DIR", str(directory))
    default_store_env.setenv("FFTFUSE_CACHE", "0")
    f, _ = define("def f(x):\n    return x * 2")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # turning it off is not a failure
        assert compile_callback(f, "epilog", "complex64", compute_capability=80).source == "compiled"
        assert compile_callback(f, "epilog", "complex64", compute_capability=80).source == "cache"
        fftfuse_cache.reset_default_store()  # as a new process would start
        assert compile_callback(f, "epilog", "complex64", compute_capability=80).source == "compiled"
    assert not directory.exists()


# --- an entry is served only under its own key ----------------------------------------------------


SWAP_CHILD = """
import sys
import numpy as np
import nvmath

def two(v):
    return v * 2

def three(v):
    return v * 3

x = (np.random.default_rng(5).standard_normal(64) + 1j * np.random.default_rng(6).standard_normal(64)).astype(np.complex64)
reference = np.fft.fft(x.astype(np.complex128))
for fn, factor in ((two, 2), (three, 3)):
    y = nvmath.fft.fft(x, epilog=fn, execution="cpu")
    print(fn.__name__, np.allclose(y, factor * reference, rtol=1e-4, atol=1e-4))
"""


def test_cpu_entries_swapped_between_functions_are_recompiled_not_served(tmp_path: Path):
    import sqlite3

    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    env = {**os.environ, "FFTFUSE_CACHE_DIR": str(directory), "PYTHONPATH": str(ROOT)}
    env.pop("FFTFUSE_CACHE", None)

    def child() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", SWAP_CHILD], capture_output=True, text=True, env=env,
                              timeout=300)

    first = child()
    assert first.stdout.split() == ["two", "True", "three", "True"], first.stderr
    with ArtifactStore(directory) as s:
        by_name = {meta.get("function"): key for key, meta in s.entries()}
    assert {"two", "three"} <= set(by_name), by_name
    with sqlite3.connect(directory / "cache.db") as con:  # swap the two functions' stored code
        cols = "mode, filename, value, size"
        rows = [con.execute(f"SELECT {cols} FROM Cache WHERE key = ?", (by_name[n],)).fetchone() for n in ("two", "three")]
        for name, row in zip(("three", "two"), rows):
            con.execute("UPDATE Cache SET mode = ?, filename = ?, value = ?, size = ? WHERE key = ?", (*row, by_name[name]))
    second = child()
    assert second.stdout.split() == ["two", "True", "three", "True"], second.stderr
    assert "not of this one" in second.stderr and "compiled again" in second.stderr
