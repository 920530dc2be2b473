"""The CPU twin at full speed: size threshold, thread count, and native loops kept in the store.

The persisted-callback tests run fresh interpreters that share one cache directory: the first
compiles, the next loads the object code without importing numba, and one with a changed
global must compile again rather than load the old code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nvmath
from fftfuse_cache import ArtifactStore
from fftfuse_compiler import cpu_backend, cpu_native
from fftfuse_compiler.cpu_backend import compile_cpu
from nvmath.fft import _cpu
from nvmath.fft._cpu import CpuExecutor
from helpers import rand
from nvmath.fft._layout import plan_problem

ROOT = Path(__file__).resolve().parent.parent


def filtered(v, h):
    return v * h


# ---------------------------------------------------------------------------------------------
# Size threshold and threads
# ---------------------------------------------------------------------------------------------


THREAD_BYTES = 256 << 10  # the threshold these tests set, to keep their arrays small


@pytest.fixture(autouse=True)
def _small_threshold(monkeypatch):
    monkeypatch.setattr(_cpu, "THREAD_BYTES", THREAD_BYTES)


def _spy_pool(monkeypatch) -> list[int]:
    used: list[int] = []
    real = _cpu._pool

    def pool(workers):
        used.append(workers)
        return real(workers)

    monkeypatch.setattr(_cpu, "_pool", pool)
    return used


@pytest.mark.parametrize("batch", [1, 8, THREAD_BYTES // (1024 * 8) - 1])
def test_small_problems_run_on_the_calling_thread(monkeypatch, batch):
    monkeypatch.setattr(_cpu, "BLOCK_BYTES", 32 << 10)  # several blocks, done one after another
    used = _spy_pool(monkeypatch)
    rng = np.random.default_rng(batch)
    x, h = rand((batch, 1024), np.complex64, rng), rand((batch, 1024), np.complex64, rng)
    problem = plan_problem("fft", x.shape, (1024, 1), "complex64", (1,))
    executor = CpuExecutor(problem, None, compile_cpu(filtered, "epilog", "complex64", "complex64"), workers=4)
    assert executor.threads() == 1
    out = np.empty_like(x)
    executor.execute(x, out, "forward", None, h.reshape(-1))
    assert used == []
    want = np.fft.fft(x.astype(np.complex128)) * h
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-4 * np.abs(want).max())


def test_large_problems_use_the_requested_threads(monkeypatch):
    used = _spy_pool(monkeypatch)
    rng = np.random.default_rng(5)
    batch = THREAD_BYTES // (1024 * 8) * 2
    x, h = rand((batch, 1024), np.complex64, rng), rand((batch, 1024), np.complex64, rng)
    problem = plan_problem("fft", x.shape, (1024, 1), "complex64", (1,))
    executor = CpuExecutor(problem, None, compile_cpu(filtered, "epilog", "complex64", "complex64"), workers=3)
    assert executor.threads() == 3
    out = np.empty_like(x)
    executor.execute(x, out, "forward", None, h.reshape(-1))
    assert set(used) == {2}  # the calling thread and two of a pool
    want = np.fft.fft(x.astype(np.complex128)) * h
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize(
    "execution, options, threads",
    [
        (nvmath.fft.ExecutionCPU(num_threads=3), None, 3),
        ({"name": "cpu", "num_threads": 2}, None, 2),
        ("cpu", {"num_threads": 5}, 5),
        (nvmath.fft.ExecutionCPU(num_threads=1), {"num_threads": 4}, 1),  # the execution's wins
        ("cpu", None, os.cpu_count()),
    ],
)
def test_num_threads_from_execution_and_options(execution, options, threads):
    x = rand((4, 64), np.complex64, np.random.default_rng(0))
    with nvmath.fft.FFT(x, axes=[-1], execution=execution, options=options) as f:
        f.plan(epilog=lambda v: v * 2)
        assert f._executor.workers == threads
        np.testing.assert_allclose(f.execute(), 2 * np.fft.fft(x), rtol=0, atol=1e-3)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_num_threads_is_refused(bad):
    x = rand((4, 64), np.complex64, np.random.default_rng(0))
    with pytest.raises(ValueError, match="num_threads must be a positive integer"):
        nvmath.fft.fft(x, execution=nvmath.fft.ExecutionCPU(num_threads=bad))


# ---------------------------------------------------------------------------------------------
# Native loops in the store (in process)
# ---------------------------------------------------------------------------------------------


def test_loops_round_trip_through_the_store(tmp_path):
    store = ArtifactStore(tmp_path / "cache")
    cpu_backend.clear_cache()
    first = compile_cpu(filtered, "epilog", "complex64", "complex64", store=store)
    assert first.source == "compiled" and first.loops.native
    assert list(store.entries()) == []  # the loops compile, and are stored, on first use
    first.loops.ready()
    [(key, meta)] = list(store.entries())
    assert meta["kind"] == "epilog" and meta["cpu"] == cpu_native.cpu_identity()["cpu"]
    cpu_backend.clear_cache()
    loaded = compile_cpu(filtered, "epilog", "complex64", "complex64", store=store)
    assert loaded.source == "cache" and loaded.wrapper is None and loaded.loops.native
    rng = np.random.default_rng(3)
    x, h = rand((6, 48), np.complex64, rng), rand((6, 48), np.complex64, rng)
    problem = plan_problem("fft", x.shape, (48, 1), "complex64", (1,))
    outs = []
    for cb in (first, loaded):
        out = np.empty_like(x)
        CpuExecutor(problem, None, cb, workers=1).execute(x, out, "forward", None, h.reshape(-1))
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_allclose(outs[1], np.fft.fft(x.astype(np.complex128)) * h, rtol=0, atol=1e-3)


def test_damaged_stored_loops_are_dropped_and_recompiled(tmp_path):
    store = ArtifactStore(tmp_path / "cache")
    cpu_backend.clear_cache()
    compile_cpu(filtered, "epilog", "complex128", "complex128", store=store).loops.ready()
    [(key, meta)] = list(store.entries())
    store.put(key, b"not an object file", {k: v for k, v in meta.items() if k not in ("size", "sha256")})
    store.close()
    store = ArtifactStore(tmp_path / "cache")  # from disk, not the memory layer
    cpu_backend.clear_cache()
    again = compile_cpu(filtered, "epilog", "complex128", "complex128", store=store)
    assert again.source == "compiled"


def raises_on_negative(v):
    if v.real < -1e30:
        raise ValueError("too small")
    return v * 2


def test_a_callback_that_raises_is_not_persisted(tmp_path):
    store = ArtifactStore(tmp_path / "cache")
    cpu_backend.clear_cache()
    cb = compile_cpu(raises_on_negative, "epilog", "complex64", store=store)
    assert cb.loops.ready().native and list(store.entries()) == []


def test_loading_refuses_what_is_not_an_object_file():
    with pytest.raises(ValueError, match="not an object file"):
        cpu_native.load_object(b"\x00" * 64)


def test_code_needing_numba_runtime_is_not_emitted():
    ir = 'declare i8* @NRT_MemInfo_alloc_aligned(i64, i32)\ndefine void @f() {\n  ret void\n}\n'
    with pytest.raises(ValueError, match="NRT_MemInfo_alloc_aligned"):
        cpu_native.emit_object([ir])


LINUX_WITH_LINKER = sys.platform.startswith("linux") and any(shutil.which(c) for c in ("cc", "gcc", "clang"))


def _stored(store: ArtifactStore) -> tuple[str, dict, bytes]:
    [(key, meta)] = list(store.entries())
    code, _ = store.get(key)
    return key, meta, code


def _run_filter(cb, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    x, h = rand((5, 40), np.complex64, rng), rand((5, 40), np.complex64, rng)
    problem = plan_problem("fft", x.shape, (40, 1), "complex64", (1,))
    out = np.empty_like(x)
    CpuExecutor(problem, None, cb, workers=1).execute(x, out, "forward", None, h.reshape(-1))
    np.testing.assert_allclose(out, np.fft.fft(x.astype(np.complex128)) * h, rtol=0, atol=1e-3)


@pytest.mark.skipif(not LINUX_WITH_LINKER, reason="needs Linux and a C compiler driver")
def test_loops_are_stored_as_a_shared_library_where_one_links(tmp_path):
    store = ArtifactStore(tmp_path / "cache")
    cpu_backend.clear_cache()
    compile_cpu(filtered, "epilog", "complex64", "complex64", store=store).loops.ready()
    _, meta, code = _stored(store)
    assert meta["format"] == "shared" and code[:4] == b"\x7fELF" and code[16] == 3  # ET_DYN
    cpu_backend.clear_cache()
    loaded = compile_cpu(filtered, "epilog", "complex64", "complex64", store=store)
    assert loaded.source == "cache" and isinstance(loaded.loops._owner, cpu_native.SharedLibrary)
    assert "/memfd:fftfuse-loops" in Path("/proc/self/maps").read_text()  # from sealed memory, no file
    _run_filter(loaded)
    assert cpu_native.load_native(code, "shared") is cpu_native.load_native(code, "shared")  # loaded once


def test_without_a_linker_loops_are_stored_as_object_code(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc, gcc or clang to be found
    store = ArtifactStore(tmp_path / "cache")
    cpu_backend.clear_cache()
    compile_cpu(filtered, "epilog", "complex128", "complex64", store=store).loops.ready()
    _, meta, code = _stored(store)
    assert meta["format"] == "object" and code[16] != 3
    cpu_backend.clear_cache()
    loaded = compile_cpu(filtered, "epilog", "complex128", "complex64", store=store)
    assert loaded.source == "cache" and isinstance(loaded.loops._owner, cpu_native.NativeLibrary)
    rng = np.random.default_rng(4)
    x, h = rand((3, 32), np.complex64, rng).astype(np.complex128), rand((3, 32), np.complex64, rng)
    problem = plan_problem("fft", x.shape, (32, 1), "complex128", (1,))
    out = np.empty_like(x)
    CpuExecutor(problem, None, loaded, workers=1).execute(x, out, "forward", None, h.reshape(-1))
    np.testing.assert_allclose(out, np.fft.fft(x) * h, rtol=0, atol=1e-9 * np.abs(out).max())


@pytest.mark.skipif(not LINUX_WITH_LINKER, reason="needs Linux and a C compiler driver")
@pytest.mark.parametrize("label", ["object", "elf-object", "unknown"])
def test_stored_code_in_the_wrong_format_is_dropped_and_recompiled(tmp_path, label):
    """A shared library labelled as object code, object code labelled as a shared library, or a
    format this version does not know: refused before anything is loaded, then compiled afresh."""
    store = ArtifactStore(tmp_path / "cache")
    cpu_backend.clear_cache()
    compile_cpu(filtered, "epilog", "complex64", "complex64", store=store).loops.ready()
    key, meta, code = _stored(store)
    meta = {k: v for k, v in meta.items() if k not in ("size", "sha256")}
    if label == "elf-object":
        code, meta["format"] = code[:16] + bytes([1, 0]) + code[18:], "shared"  # ELF type: relocatable
    else:
        meta["format"] = label
    store.put(key, code, meta)
    store.close()
    store = ArtifactStore(tmp_path / "cache")
    cpu_backend.clear_cache()
    again = compile_cpu(filtered, "epilog", "complex64", "complex64", store=store)
    assert again.source == "compiled"
    assert list(store.entries()) == []  # the bad entry is gone
    _run_filter(again)


@pytest.mark.skipif(not LINUX_WITH_LINKER, reason="needs Linux and a C compiler driver")
def test_shared_library_loads_from_a_private_file_where_memory_files_fail(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path / "cache")
    cpu_backend.clear_cache()
    compile_cpu(filtered, "epilog", "complex64", "complex64", store=store).loops.ready()
    _, meta, code = _stored(store)

    def no_memfd(*args):
        raise OSError("memory files refused")

    import tempfile

    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(os, "memfd_create", no_memfd, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    library = cpu_native.SharedLibrary(code)
    assert library.address(meta["symbols"][0]) and list(private.iterdir()) == []  # file removed once loaded
    with pytest.raises(ValueError, match="not in the loaded shared library"):
        library.address("no_such_symbol")


def test_shared_library_refuses_what_is_not_one():
    with pytest.raises(ValueError, match="not a shared library"):
        cpu_native.SharedLibrary(b"\x7fELF" + b"\x00" * 60)


_CPUINFO = """processor\t: {n}
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
stepping\t: 8
cpu MHz\t\t: {mhz}
core id\t\t: {n}
apicid\t\t: {apic}
flags\t\t: fpu sse2 avx avx2 {extra}
bogomips\t: {bogo}
"""


def _cpuinfo(*processors: dict) -> str:
    defaults = {"mhz": "2000.000", "apic": 0, "extra": "avx512f", "bogo": "4000.00"}
    return "\n".join(_CPUINFO.format(n=n, **{**defaults, **p}) for n, p in enumerate(processors))


def test_cpu_identity_ignores_clocks_and_numbering_but_not_features():
    base = cpu_native.cpuinfo_identity(_cpuinfo({}, {}))
    assert base["cpu"] == "Intel(R) Xeon(R) Platinum 8480+"
    same = ({"mhz": "3801.2", "apic": 7, "bogo": "4001.1"}, {"apic": 9})
    assert cpu_native.cpuinfo_identity(_cpuinfo(*same)) == base
    assert cpu_native.cpuinfo_identity(_cpuinfo({})) == base  # how many cores does not change the code
    for other in (_cpuinfo({"extra": ""}, {}),  # one feature fewer
                  _cpuinfo({}, {"extra": "avx512f amx_tile"}),  # the second processor differs
                  _cpuinfo({}, {}).replace("stepping\t: 8", "stepping\t: 6")):
        assert cpu_native.cpuinfo_identity(other)["features"] != base["features"]
    with pytest.raises(ValueError, match="no processor"):
        cpu_native.cpuinfo_identity("")


def test_loops_stored_for_another_cpu_are_not_served(tmp_path, monkeypatch):
    """Same function, same toolchain, another machine's identity: a miss, never that machine's code."""
    store = ArtifactStore(tmp_path / "cache")
    cpu_backend.clear_cache()
    compile_cpu(filtered, "epilog", "complex64", "complex64", store=store).loops.ready()
    here = cpu_native.cpu_identity()
    for other in ({**here, "features": "0" * 16}, {**here, "platform": here["platform"] + "-other"}):
        monkeypatch.setattr(cpu_native, "cpu_identity", lambda other=other: other)
        cpu_backend.clear_cache()
        assert compile_cpu(filtered, "epilog", "complex64", "complex64", store=store).source == "compiled"
    monkeypatch.setattr(cpu_native, "cpu_identity", lambda: here)
    cpu_backend.clear_cache()
    assert compile_cpu(filtered, "epilog", "complex64", "complex64", store=store).source == "cache"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="identity from /proc/cpuinfo on Linux only")
def test_cpu_identity_does_not_import_llvmlite():
    code = ("import sys, nvmath; from fftfuse_compiler.cpu_native import cpu_identity; i = cpu_identity(); "
            "print(sorted(i), 'llvmlite' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("]")[1].strip() == "False"


# ---------------------------------------------------------------------------------------------
# Native loops across processes
# ---------------------------------------------------------------------------------------------

_USER_MODULE = """
import numpy as np
GAIN = {gain}
def epilog(v, h):
    return v * h * GAIN
"""

_CHILD = """
import json, sys
import numpy as np
import nvmath
from fftfuse_compiler.cpu_backend import compile_cpu
import usercb
rng = np.random.default_rng(7)
x = (rng.standard_normal((3, 64)) + 1j * rng.standard_normal((3, 64))).astype(np.complex64)
h = (rng.standard_normal((3, 64)) + 1j * rng.standard_normal((3, 64))).astype(np.complex64)
y = nvmath.fft.fft(x, axes=[-1], epilog={"fn": usercb.epilog, "data": h})
want = np.fft.fft(x.astype(np.complex128)) * h * usercb.GAIN
source = compile_cpu(usercb.epilog, "epilog", "complex64", "complex64").source
print(json.dumps({"error": float(np.abs(y - want).max() / np.abs(want).max()), "source": source,
                  "numba": "numba" in sys.modules, "llvmlite": "llvmlite" in sys.modules}))
"""


def _child(tmp_path: Path, gain: float) -> dict:
    (tmp_path / "usercb.py").write_text(_USER_MODULE.format(gain=gain))
    env = {**os.environ, "FFTFUSE_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _CHILD], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_fresh_process_loads_stored_loops_without_numba_and_a_changed_global_recompiles(tmp_path):
    first = _child(tmp_path, 0.5)
    assert first["source"] == "cache" and first["numba"] and first["error"] < 1e-5  # compiled by its fft call
    warm = _child(tmp_path, 0.5)
    assert warm == {**warm, "source": "cache", "numba": False} and warm["error"] < 1e-5
    if LINUX_WITH_LINKER:  # a shared library and the identity from /proc: no LLVM either
        assert not warm["llvmlite"]
    stale = _child(tmp_path, 3.0)  # same code, new global: must not load the 0.5 loops
    assert stale["numba"] and stale["error"] < 1e-5
    warm_again = _child(tmp_path, 3.0)
    assert not warm_again["numba"] and warm_again["error"] < 1e-5


def test_stored_loops_drive_the_threaded_pipeline(tmp_path):
    """Stored loops drive the threaded pipeline too (blocks call them from worker threads)."""
    store = ArtifactStore(tmp_path / "cache")
    cpu_backend.clear_cache()
    compile_cpu(filtered, "epilog", "complex64", "complex64", store=store).loops.ready()
    cpu_backend.clear_cache()
    loaded = compile_cpu(filtered, "epilog", "complex64", "complex64", store=store)
    rng = np.random.default_rng(9)
    batch = THREAD_BYTES // (256 * 8) * 2
    x, h = rand((batch, 256), np.complex64, rng), rand((batch, 256), np.complex64, rng)
    problem = plan_problem("fft", x.shape, (256, 1), "complex64", (1,))
    out = np.empty_like(x)
    executor = CpuExecutor(problem, None, loaded, workers=2)
    assert executor.threads() == 2
    executor.execute(x, out, "forward", None, h.reshape(-1))
    want = np.fft.fft(x.astype(np.complex128)) * h
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-4 * np.abs(want).max())


def test_stored_loops_keep_their_broadcast_terms(tmp_path, monkeypatch):
    """Loops loaded from the store read broadcast data where it lies, as when compiled: the terms
    (offset -> data index) must come back with them, or an (N,) filter is taken for full-size data."""
    from fftfuse_cache import reset_default_store

    monkeypatch.setenv("FFTFUSE_CACHE_DIR", str(tmp_path / "cache"))
    reset_default_store()
    try:
        rng = np.random.default_rng(5)
        x, h = rand((12, 32), np.complex64, rng), rand((32,), np.complex64, rng)
        want = np.fft.fft(x.astype(np.complex128)) * h
        sources = []
        for _ in range(2):
            cpu_backend.clear_cache()  # as a fresh process: only the store remembers
            with nvmath.fft.FFT(x, axes=[-1], execution="cpu") as f:
                f.plan(epilog={"fn": filtered, "data": h})
                got = f.execute()
                sources.append(f._executor.epilog.source)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)
        assert sources == ["compiled", "cache"]
    finally:
        reset_default_store()


# ---------------------------------------------------------------------------------------------
# Errors in compiled callbacks: raised in the caller, never printed and skipped
# ---------------------------------------------------------------------------------------------

_X = rand((4, 32), np.complex64, np.random.default_rng(21))
_WANT = np.fft.fft(_X.astype(np.complex128), axis=-1)


def always_raises(v):
    if v.real > -1e30:
        raise ValueError("boom")
    return v


def test_a_raising_epilog_raises_in_the_caller(capfd):
    with pytest.raises(ValueError, match="boom") as err:
        nvmath.fft.fft(_X, axes=[-1], epilog=always_raises)
    note = "\n".join(getattr(err.value, "__notes__", []))
    assert "epilog 'always_raises'" in note and "offset 0 of the FFT output" in note
    assert "Exception ignored" not in capfd.readouterr().err


def test_a_raising_prolog_raises_on_every_path(monkeypatch):
    """The quick run (small, stateful), the general path and the threaded pipeline all report."""
    def prolog(x):
        if x.real > 1e30:
            raise ValueError("too large")
        return x

    big = np.ones((2 * THREAD_BYTES // (64 * 8), 64), np.complex64)
    big[-1, 5] = 1e31  # in the last block: the other threads' blocks finish first
    with pytest.raises(ValueError, match="too large") as err:
        nvmath.fft.fft(big, axes=[-1], prolog=prolog, options={"num_threads": 2})
    assert f"offset {big.size - 64 + 5} of the FFT input" in "\n".join(err.value.__notes__)
    small = np.ones((2, 16), np.complex64)
    small[1, 3] = 1e31
    with nvmath.fft.FFT(small, axes=[-1]) as f:
        f.plan(prolog=prolog)
        with pytest.raises(ValueError, match="too large") as err:
            f.execute()
    assert "offset 19 of the FFT input" in "\n".join(err.value.__notes__)


def test_complex_division_by_zero_raises():
    with pytest.raises(ZeroDivisionError, match="complex division by zero") as err:
        nvmath.fft.fft(_X, axes=[-1], epilog=lambda v: v / 0)
    assert "run again compiled" in "\n".join(err.value.__notes__)


def test_integer_division_by_zero_raises():
    with pytest.raises(ZeroDivisionError):
        nvmath.fft.fft(_X, axes=[-1], epilog=lambda v: v * (1 // 0))
    with pytest.raises(ZeroDivisionError):
        nvmath.fft.fft(_X, axes=[-1], epilog={"fn": lambda v, *, k: v * (3 % k), "params": {"k": 0}})


def test_float_division_by_zero_follows_numpy():
    x = np.random.default_rng(5).standard_normal((2, 16)).astype(np.float32) + 1
    got = nvmath.fft.rfft(x, axes=[-1], prolog=lambda v: v / 0)  # every element inf: the FFT gives nan
    assert np.isnan(got).all()
    got = nvmath.fft.fft(_X, axes=[-1], epilog=lambda v: v * (1 / 0.0 if v.real > 1e30 else 1.0))
    np.testing.assert_allclose(got, _WANT, rtol=1e-4, atol=1e-3)


def by_offset(data_out, offset, value, user_info, unused):
    data_out[offset] = value * user_info[offset]


def test_cufft_form_reading_user_info_without_data_is_refused_at_planning():
    f = nvmath.fft.FFT(_X, axes=[-1])
    with pytest.raises(ValueError, match="reads its user_info parameter, but no data was given"):
        f.plan(epilog=by_offset)
    with pytest.raises(ValueError, match=r"epilog=\{'fn': by_offset, 'data': array\}"):
        nvmath.fft.fft(_X, axes=[-1], epilog={"fn": by_offset})
    # A cuFFT-form callback that does not read user_info needs no data.
    def doubles(data_out, offset, value, user_info, unused):
        data_out[offset] = value * 2

    np.testing.assert_allclose(nvmath.fft.fft(_X, axes=[-1], epilog=doubles), 2 * _WANT, rtol=1e-4, atol=1e-3)


def _reader(buffer: str, shift: int):
    """A cuFFT-form callback reading or writing ``buffer`` at ``offset + shift``."""
    if buffer == "user_info":
        def cb(data_out, offset, value, user_info, unused):
            data_out[offset] = value * user_info[offset + shift]
    elif buffer == "data_out read":
        def cb(data_out, offset, value, user_info, unused):
            data_out[offset] = value * data_out[offset + shift]
    elif buffer == "data_out write":
        def cb(data_out, offset, value, user_info, unused):
            data_out[offset + shift] = value
    elif buffer == "user_info write":
        def cb(data_out, offset, value, user_info, unused):
            user_info[offset + shift] = value
            data_out[offset] = value
    else:  # data_in, through a prolog
        def cb(data_in, offset, user_info, unused):
            return data_in[offset + shift]
    return cb


_OUTSIDE = [32 * 4, 10**6, 10**9, -10**6, -1]


@pytest.mark.parametrize("shift", _OUTSIDE, ids=[f"{s:+}" for s in _OUTSIDE])
@pytest.mark.parametrize("buffer", ["user_info", "data_out read", "data_out write", "user_info write", "data_in"])
def test_offsets_outside_the_buffers_are_caught_with_checks_on(monkeypatch, buffer, shift):
    monkeypatch.setenv(cpu_backend.BOUNDS_CHECKS_ENV, "1")
    cb = _reader(buffer, shift)
    h = np.ones(_X.shape, np.complex64)
    kind = "prolog" if buffer == "data_in" else "epilog"
    verb = "wrote" if buffer.endswith("write") else "read"
    name = buffer.split()[0]
    # The first element visited has offset 0: that is where the loop stops.
    with pytest.raises(_cpu.CallbackIndexError) as err:
        nvmath.fft.fft(_X, axes=[-1], **{kind: {"fn": cb, "data": h}})
    assert str(err.value).startswith(f"{kind} '_reader.<locals>.cb' {verb} {name} at offset {shift}, outside its "
                                     f"{_X.size} elements")


def test_negative_offsets_do_not_wrap_around(monkeypatch):
    """A NumPy index of -1 is the last element; a pointer's is the element before the buffer."""
    monkeypatch.setenv(cpu_backend.BOUNDS_CHECKS_ENV, "1")

    def previous(data_out, offset, value, user_info, unused):
        data_out[offset] = value * user_info[offset - 1]

    with pytest.raises(_cpu.CallbackIndexError, match="read user_info at offset -1, outside its 128 elements"):
        nvmath.fft.fft(_X, axes=[-1], epilog={"fn": previous, "data": np.ones(_X.shape, np.complex64)})


def test_checked_callbacks_give_the_same_results(monkeypatch):
    h = rand(_X.shape, np.complex64, np.random.default_rng(2))
    for checks in ("1", "0"):
        monkeypatch.setenv(cpu_backend.BOUNDS_CHECKS_ENV, checks)
        got = nvmath.fft.fft(_X, axes=[-1], epilog={"fn": by_offset, "data": h})
        np.testing.assert_allclose(got, _WANT * h, rtol=1e-4, atol=1e-3)


def test_checked_buffers_take_integer_offsets_only(monkeypatch):
    def length(data_out, offset, value, user_info, unused):
        data_out[offset] = value * len(user_info)

    monkeypatch.setenv(cpu_backend.BOUNDS_CHECKS_ENV, "1")
    with pytest.raises(TypeError, match="take integer offsets only"):
        compile_cpu(length, "epilog", "complex64", "complex64")


def test_bounds_checks_switch_is_validated(monkeypatch):
    monkeypatch.setenv(cpu_backend.BOUNDS_CHECKS_ENV, "maybe")
    with pytest.raises(ValueError, match="FFTFUSE_BOUNDS_CHECKS='maybe' is not understood"):
        cpu_backend.bounds_checks()
    monkeypatch.delenv(cpu_backend.BOUNDS_CHECKS_ENV)
    assert cpu_backend.bounds_checks() is False  # off by default: benchmarks/NOTES.md, section 12


def test_checked_and_unchecked_loops_are_stored_under_other_keys(tmp_path):
    store = ArtifactStore(tmp_path / "cache")
    cpu_backend.clear_cache()
    for checks in (True, False):
        compile_cpu(by_offset, "epilog", "complex64", "complex64", store=store, checks=checks).loops.ready()
    assert len(list(store.entries())) == 2
    # Value forms index nothing themselves: the switch does not change their loops.
    for checks in (True, False):
        compile_cpu(filtered, "epilog", "complex64", "complex64", store=store, checks=checks).loops.ready()
    assert len(list(store.entries())) == 3


def test_loops_of_an_older_revision_are_not_served(tmp_path, monkeypatch):
    """Loops compiled before they returned a status (or checked offsets) must never be loaded."""
    fingerprint = "f" * 16
    args = (fingerprint, "epilog", cpu_backend.Form.CUFFT, "complex64", "complex64", False)
    now = cpu_backend.native_key(*args, None, True)
    monkeypatch.setattr(cpu_backend, "_LOOPS_REVISION", 1)
    cpu_backend._loops_stamp.cache_clear()
    try:
        assert cpu_backend.native_key(*args, None, True) != now
    finally:
        monkeypatch.undo()
        cpu_backend._loops_stamp.cache_clear()
    assert cpu_backend.native_key(*args, None, True) == now


_FAILING_CHILD = """
import json, sys
import numpy as np
import nvmath
from nvmath.fft._cpu import CallbackIndexError
import usercb
x = np.ones((4, 32), np.complex64)
out = {}
for name in ("past_the_end", "int_zero"):
    try:
        nvmath.fft.fft(x, axes=[-1], epilog={"fn": getattr(usercb, name), "data": np.ones((4, 32), np.complex64)})
        out[name] = "returned"
    except Exception as exc:
        out[name] = type(exc).__name__ + ": " + str(exc)
out["numba"] = "numba" in sys.modules
print(json.dumps(out))
"""

_FAILING_MODULE = """
def past_the_end(data_out, offset, value, user_info, unused):
    data_out[offset] = value * user_info[offset + 1000]
def int_zero(v, d):
    return v * d * (1 // int(v.real * 0))
"""


def test_stored_loops_report_errors_without_numba(tmp_path):
    """Loops loaded from the store (no numba in the process) stop and report as compiled ones do."""
    (tmp_path / "usercb.py").write_text(_FAILING_MODULE)
    env = {**os.environ, "FFTFUSE_CACHE_DIR": str(tmp_path / "cache"), cpu_backend.BOUNDS_CHECKS_ENV: "1",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", _FAILING_CHILD], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "Exception ignored" not in done.stderr
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    for run in runs:
        assert run["past_the_end"].startswith("CallbackIndexError: epilog 'past_the_end' read user_info at offset "
                                              "1000, outside its 128 elements")
        assert run["int_zero"].startswith("ZeroDivisionError")
    assert runs[0]["numba"] and not runs[1]["numba"]  # the second process loaded both loops


def big_data_raises(v, d):
    if d.real > 1e30:
        raise ValueError("big d")
    return v * d


def test_the_stateless_rerun_reports_with_the_calls_data():
    """The stateless hot path reruns an engine from data addresses: its report reads the same data."""
    h = np.ones(_X.shape, np.complex64)
    np.testing.assert_allclose(nvmath.fft.fft(_X, axes=[-1], epilog={"fn": big_data_raises, "data": h}), _WANT,
                               rtol=1e-4, atol=1e-3)
    h[1, 3] = 1e31
    for _ in range(2):  # the second call reruns the engine the first one kept
        with pytest.raises(ValueError, match="big d") as err:
            nvmath.fft.fft(_X, axes=[-1], epilog={"fn": big_data_raises, "data": h})
        assert "offset 35 of the FFT output" in err.value.__notes__[0]


@pytest.mark.skipif(not LINUX_WITH_LINKER, reason="needs Linux and a C compiler driver")
def test_loops_stored_before_the_metadata_record_are_dropped_and_recompiled(tmp_path):
    """An entry under today's key whose metadata uses the old names ("element", "user", no record)
    is never read under the new names: it is dropped, compiled afresh and stored as a record."""
    store = ArtifactStore(tmp_path / "cache")
    cpu_backend.clear_cache()
    compile_cpu(filtered, "epilog", "complex64", "complex64", store=store).loops.ready()
    key, meta, code = _stored(store)
    assert meta["record"] == 1 and meta["target"] == "cpu" and meta["element_dtype"] == "complex64"
    old = {"target": "cpu", "kind": meta["kind"], "form": meta["form"], "element": "complex64", "user": "complex64",
           "function": meta["function"], "symbols": meta["symbols"], "format": meta["format"],
           **cpu_native.cpu_identity()}
    store.put(key, code, old)
    cpu_backend.clear_cache()
    again = compile_cpu(filtered, "epilog", "complex64", "complex64", store=store)
    assert again.source == "compiled"
    again.loops.ready()
    assert _stored(store)[1]["record"] == 1  # stored again, as a record
    _run_filter(again)


@pytest.mark.parametrize("linker", [pytest.param(True, marks=pytest.mark.skipif(
    not LINUX_WITH_LINKER, reason="needs Linux and a C compiler driver")), False])
def test_shared_libraries_are_compiled_for_the_small_code_model(tmp_path, monkeypatch, linker):
    """A shared library's code reaches its constants relative to itself (the small code model):
    under LLVM's JIT model, which addresses each constant through a 64-bit immediate, the stored
    complex64 filter loop reloaded its shuffle masks on every iteration, 10-18% slower than
    numba's own. An object for MCJIT, whose sections may lie anywhere, keeps the JIT model."""
    if not linker:
        monkeypatch.setenv("PATH", str(tmp_path))  # no cc, gcc or clang to be found
    models = []
    emit = cpu_native.emit_object
    monkeypatch.setattr(cpu_native, "emit_object",
                        lambda modules, code_model="jitdefault": models.append(code_model) or emit(modules, code_model))
    store = ArtifactStore(tmp_path / "cache")
    cpu_backend.clear_cache()
    compile_cpu(filtered, "epilog", "complex64", "complex64", store=store).loops.ready()
    _, meta, _ = _stored(store)
    assert (meta["format"], models) == (("shared", ["small"]) if linker else ("object", ["jitdefault"]))
    cpu_backend.clear_cache()
    _run_filter(compile_cpu(filtered, "epilog", "complex64", "complex64", store=store))
