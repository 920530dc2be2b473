"""The ``fftfuse`` command line, called in-process through ``nvmath.cli.main``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fftfuse_cache import ArtifactStore
from nvmath.cli import main
from fftfuse_compiler import compile_callback

CALLBACKS = """\
SCALE = 2.0
TABLE = [1, 2]


def double(x):
    return x * SCALE


def weighted(x, d):
    return x * d


def reads_a_list(x):
    if 0 > 1:
        return x * TABLE[0]
    return x * 3


def three_args(a, b, c):
    return a
"""


@pytest.fixture
def callbacks(tmp_path: Path, monkeypatch) -> Path:
    """A callbacks file, importable both as a path and as module ``cli_callbacks_<pid>``."""
    module = f"cli_callbacks_{os.getpid()}"
    path = tmp_path / "src" / f"{module}.py"
    path.parent.mkdir()
    path.write_text(CALLBACKS)
    monkeypatch.syspath_prepend(str(path.parent))
    yield path
    sys.modules.pop(module, None)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def precompile(capsys, cache_dir: Path, *specs: str, extra: tuple[str, ...] = ()) -> tuple[int, str, str]:
    return run(capsys, "precompile", *specs, "--kind", "epilog", "--dtype", "complex64", "--arch", "80",
               "--cache-dir", str(cache_dir), *extra)


def entry_keys(cache_dir: Path) -> list[str]:
    with ArtifactStore(cache_dir, enabled=True) as store:
        return [key for key, _ in store.entries()]


def damage(cache_dir: Path, key: str) -> None:
    import diskcache

    with diskcache.Cache(str(cache_dir)) as raw:
        blob = bytearray(raw.get(key))
        blob[-5] ^= 0xFF
        raw.set(key, bytes(blob))


# --- info ------------------------------------------------------------------------------------


def test_info_on_a_fresh_directory_creates_nothing(capsys, cache_dir: Path):
    code, out, _ = run(capsys, "cache", "info", "--cache-dir", str(cache_dir))
    assert code == 0
    assert str(cache_dir) in out and "entries:      0" in out and "toolchain:" in out
    assert "default arch: sm_" in out or "default arch: unknown" in out
    assert not cache_dir.exists()


def test_info_json_after_precompile(capsys, cache_dir: Path, callbacks: Path):
    assert precompile(capsys, cache_dir, f"{callbacks.stem}:double")[0] == 0
    code, out, _ = run(capsys, "--cache-dir", str(cache_dir), "cache", "info", "--json")  # option before the verb
    info = json.loads(out)
    assert code == 0
    assert info["directory"] == str(cache_dir) and info["enabled"] is True
    assert info["entries"] == 1 and info["volume"] > 0 and info["size_limit"] > 0
    assert len(info["toolchain"]) == 16


def test_info_reports_cache_turned_off(capsys, cache_dir: Path, monkeypatch):
    monkeypatch.setenv("FFTFUSE_CACHE", "0")
    code, out, _ = run(capsys, "cache", "info", "--cache-dir", str(cache_dir))
    assert code == 0 and "enabled:      no (FFTFUSE_CACHE=0)" in out


# --- precompile and list -------------------------------------------------------------------------


def test_precompile_then_list(capsys, cache_dir: Path, callbacks: Path):
    module = callbacks.stem
    code, out, err = precompile(capsys, cache_dir, f"{module}:double", f"{callbacks}:weighted",
                                extra=("--user-dtype", "float32", "--arch", "90"))
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 4  # two functions, two architectures
    assert all(" compiled " in line for line in lines)
    assert {"sm_80", "sm_90"} <= set(out.split())

    code, out, _ = precompile(capsys, cache_dir, f"{module}:double", extra=("--user-dtype", "float32"))
    assert code == 0 and " cache " in out and " ms " in out

    code, out, _ = run(capsys, "cache", "list", "--cache-dir", str(cache_dir))
    assert code == 0
    header, *rows, total = out.splitlines()
    assert header.split()[:6] == ["KEY", "KIND", "FORM", "ELEMENT", "USER", "ARCH"]
    assert len(rows) == 4 and total.startswith("4 entries")
    assert {tuple(r.split()[1:6]) for r in rows} == {
        ("epilog", "value", "complex64", "float32", "sm_80"),
        ("epilog", "value", "complex64", "float32", "sm_90"),
        ("epilog", "value_data", "complex64", "float32", "sm_80"),
        ("epilog", "value_data", "complex64", "float32", "sm_90"),
    }
    assert {r.split()[0] for r in rows} == {k[:12] for k in entry_keys(cache_dir)}


def test_list_json_and_empty(capsys, cache_dir: Path, callbacks: Path):
    code, out, _ = run(capsys, "cache", "list", "--cache-dir", str(cache_dir))
    assert code == 0 and out.startswith("no entries")
    precompile(capsys, cache_dir, f"{callbacks.stem}:double")
    code, out, _ = run(capsys, "cache", "list", "--json", "--cache-dir", str(cache_dir))
    (entry,) = [json.loads(line) for line in out.splitlines()]
    assert entry["kind"] == "epilog" and entry["arch"] == 80 and entry["key"] == entry_keys(cache_dir)[0]


def test_precompiled_entry_serves_compile_callback(capsys, cache_dir: Path, callbacks: Path):
    precompile(capsys, cache_dir, f"{callbacks}:double")
    module = __import__(callbacks.stem)
    with ArtifactStore(cache_dir) as store:
        result = compile_callback(module.double, "epilog", "complex64", compute_capability=80, store=store)
    assert result.source == "cache"


def test_precompile_with_link_check(capsys, cache_dir: Path, callbacks: Path):
    code, out, err = precompile(capsys, cache_dir, f"{callbacks.stem}:double", extra=("--check",))
    assert code == 0, err
    assert out.rstrip().endswith("link ok")


def test_precompile_uncacheable_function_warns(capsys, cache_dir: Path, callbacks: Path):
    code, out, err = precompile(capsys, cache_dir, f"{callbacks.stem}:reads_a_list")
    assert code == 0 and " compiled " in out
    assert "cannot be cached" in err and "'TABLE'" in err
    assert entry_keys(cache_dir) == []


def test_precompile_with_cache_off_warns(capsys, cache_dir: Path, callbacks: Path, monkeypatch):
    monkeypatch.setenv("FFTFUSE_CACHE", "0")
    code, out, err = precompile(capsys, cache_dir, f"{callbacks.stem}:double")
    assert code == 0 and " compiled " in out
    assert "disk cache is off" in err and "FFTFUSE_CACHE=0" in err
    assert not cache_dir.exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no-colon", "is not MODULE:FUNC"),
        (":double", "is not MODULE:FUNC"),
        ("no_such_module_fftfuse:f", "no module named 'no_such_module_fftfuse'"),
        ("{module}:missing", "has no attribute 'missing'"),
        ("{module}:SCALE", "is a float, not a function"),
        ("{module}:double.__bad-name", "is not a (dotted) Python name"),
        ("{dir}/missing.py:double", "does not exist"),
        ("not a module:double", "is not a module name"),
    ],
)
def test_bad_spec_fails_clearly(capsys, cache_dir: Path, callbacks: Path, spec: str, message: str):
    spec = spec.format(module=callbacks.stem, dir=callbacks.parent)
    code, out, err = precompile(capsys, cache_dir, spec)
    assert code == 1 and out == ""
    assert err.startswith("fftfuse: error: ") and message in err
    assert not cache_dir.exists()  # specs are checked before anything is compiled


def test_spec_whose_import_fails(capsys, cache_dir: Path, tmp_path: Path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom at import')\n")
    code, _, err = precompile(capsys, cache_dir, f"{broken}:f")
    assert code == 1 and "RuntimeError: boom at import" in err


def test_missing_function_lists_what_the_module_has(capsys, cache_dir: Path, callbacks: Path):
    _, _, err = precompile(capsys, cache_dir, f"{callbacks}:dubble")
    assert "double" in err and "weighted" in err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--dtype", "complex32"), "unknown dtype 'complex32' for --dtype"),
        (("--dtype", "complex64", "--user-dtype", "flaot32"), "unknown dtype 'flaot32' for --user-dtype"),
        (("--dtype", "complex64", "--arch", "9x"), "unknown architecture '9x'"),
    ],
)
def test_bad_options_fail_clearly(capsys, cache_dir: Path, callbacks: Path, options, message):
    code, _, err = run(capsys, "precompile", f"{callbacks.stem}:double", "--kind", "epilog", *options,
                       "--cache-dir", str(cache_dir))
    assert code == 1 and message in err


def test_function_that_is_no_callback_fails(capsys, cache_dir: Path, callbacks: Path):
    code, out, err = precompile(capsys, cache_dir, f"{callbacks.stem}:three_args", f"{callbacks.stem}:double")
    assert code == 1
    assert "three_args" in err and "takes 3 parameters" in err
    assert " compiled " in out  # the other function still compiled


def test_malformed_command_lines_exit_2(capsys):
    assert run(capsys, "precompile", "m:f", "--kind", "sideways", "--dtype", "complex64")[0] == 2
    assert run(capsys, "cache", "list", "--no-such-option")[0] == 2
    assert run(capsys)[0] == 2
    assert run(capsys, "cache")[0] == 2
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "precompile" in out


# --- clear, export, import ------------------------------------------------------------------------


def test_clear(capsys, cache_dir: Path, callbacks: Path):
    code, out, _ = run(capsys, "cache", "clear", "--cache-dir", str(cache_dir))
    assert code == 0 and "nothing to clear" in out
    precompile(capsys, cache_dir, f"{callbacks.stem}:double", f"{callbacks.stem}:reads_a_list")
    precompile(capsys, cache_dir, f"{callbacks.stem}:double", extra=("--arch", "90"))
    code, out, _ = run(capsys, "cache", "clear", "--cache-dir", str(cache_dir))
    assert code == 0 and out.startswith("removed 2 entries")
    assert entry_keys(cache_dir) == []


def test_export_import_round_trip(capsys, tmp_path: Path, cache_dir: Path, callbacks: Path):
    precompile(capsys, cache_dir, f"{callbacks.stem}:double", f"{callbacks.stem}:weighted",
               extra=("--user-dtype", "float64"))
    bundle, other = tmp_path / "warm.zip", tmp_path / "other-machine"
    code, out, _ = run(capsys, "cache", "export", str(bundle), "--cache-dir", str(cache_dir))
    assert code == 0 and out.startswith("exported 2 entries") and bundle.is_file()

    code, out, _ = run(capsys, "cache", "import", str(bundle), "--cache-dir", str(other))
    assert code == 0 and out.startswith("imported 2 entries")
    assert sorted(entry_keys(other)) == sorted(entry_keys(cache_dir))

    # The imported entries are what a compile on the other machine finds.
    module = __import__(callbacks.stem)
    with ArtifactStore(other) as store:
        hit = compile_callback(module.weighted, "epilog", "complex64", "float64", compute_capability=80,
                               indirect=True, store=store)
    assert hit.source == "cache"


def test_import_errors(capsys, tmp_path: Path, cache_dir: Path):
    code, _, err = run(capsys, "cache", "import", str(tmp_path / "nope.zip"), "--cache-dir", str(cache_dir))
    assert code == 1 and "does not exist" in err
    not_a_bundle = tmp_path / "x.zip"
    not_a_bundle.write_text("hello")
    code, _, err = run(capsys, "cache", "import", str(not_a_bundle), "--cache-dir", str(cache_dir))
    assert code == 1 and "is not an artifact bundle" in err


def test_export_to_unwritable_place_fails(capsys, tmp_path: Path, cache_dir: Path):
    code, _, err = run(capsys, "cache", "export", str(tmp_path / "no" / "such" / "dir.zip"),
                       "--cache-dir", str(cache_dir))
    assert code == 1 and "cannot write bundle" in err


# --- verify ----------------------------------------------------------------------------------


def test_verify_passes_flags_and_drops(capsys, cache_dir: Path, callbacks: Path):
    precompile(capsys, cache_dir, f"{callbacks.stem}:double", extra=("--arch", "75"))
    code, out, _ = run(capsys, "cache", "verify", "-v", "--cache-dir", str(cache_dir))
    assert code == 0 and out.count("ok ") == 2
    assert out.splitlines()[-1] == "2 entries checked (digest and link): 2 good, 0 bad"

    bad_key = entry_keys(cache_dir)[0]
    damage(cache_dir, bad_key)
    code, out, _ = run(capsys, "cache", "verify", "--cache-dir", str(cache_dir))
    assert code == 1
    (bad_line,) = [line for line in out.splitlines() if line.startswith("BAD")]
    assert bad_key[:12] in bad_line and "sha256 mismatch" in bad_line
    assert len(entry_keys(cache_dir)) == 2  # reported, not removed

    code, out, _ = run(capsys, "cache", "verify", "--drop", "--cache-dir", str(cache_dir))
    assert code == 0 and "(dropped)" in out and "1 dropped" in out
    assert len(entry_keys(cache_dir)) == 1
    assert run(capsys, "cache", "verify", "--cache-dir", str(cache_dir))[0] == 0


def test_verify_reports_entries_swapped_between_keys(capsys, cache_dir: Path, callbacks: Path):
    import sqlite3

    precompile(capsys, cache_dir, f"{callbacks.stem}:double", extra=("--arch", "75"))
    first, second = entry_keys(cache_dir)
    with sqlite3.connect(cache_dir / "cache.db") as con:  # each key now holds the other's entry
        cols = "mode, filename, value, size"
        rows = [con.execute(f"SELECT {cols} FROM Cache WHERE key = ?", (k,)).fetchone() for k in (first, second)]
        for key, row in ((first, rows[1]), (second, rows[0])):
            con.execute("UPDATE Cache SET mode = ?, filename = ?, value = ?, size = ? WHERE key = ?", (*row, key))
    code, out, _ = run(capsys, "cache", "verify", "--no-link", "--cache-dir", str(cache_dir))
    bad = [line for line in out.splitlines() if line.startswith("BAD")]
    assert code == 1 and len(bad) == 2 and all("not of this one" in line for line in bad), out
    code, out, _ = run(capsys, "cache", "verify", "--drop", "--no-link", "--cache-dir", str(cache_dir))
    assert code == 0 and "2 dropped" in out and entry_keys(cache_dir) == []


def test_verify_link_checks_against_the_recorded_kind(capsys, cache_dir: Path, callbacks: Path):
    # An intact entry whose metadata claims another kind: the digest passes, the link does not.
    precompile(capsys, cache_dir, f"{callbacks.stem}:double")
    (key,) = entry_keys(cache_dir)
    with ArtifactStore(cache_dir) as store:
        payload, meta = store.get(key)
        meta = {k: v for k, v in meta.items() if k not in ("size", "sha256")}
        store.put(key, payload, {**meta, "kind": "prolog"})
    code, out, _ = run(capsys, "cache", "verify", "--cache-dir", str(cache_dir))
    assert code == 1 and "link check failed" in out
    code, out, _ = run(capsys, "cache", "verify", "--no-link", "--cache-dir", str(cache_dir))
    assert code == 0 and "(digest)" in out


def test_verify_empty(capsys, cache_dir: Path):
    code, out, _ = run(capsys, "cache", "verify", "--cache-dir", str(cache_dir))
    assert code == 0 and out.startswith("no entries")


# --- version, JSON, pipes, unusable directories ----------------------------------------------------


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("fftfuse ") and len(out.split()) >= 2


def test_every_command_speaks_json(capsys, tmp_path: Path, cache_dir: Path, callbacks: Path):
    code, out, _ = precompile(capsys, cache_dir, f"{callbacks.stem}:double", extra=("--json",))
    (row,) = json.loads(out)["results"]
    assert code == 0 and row["source"] == "compiled" and row["arch"] == 80
    bundle = tmp_path / "b.zip"
    for argv, field, value in [
        (("cache", "info"), "entries", 1),
        (("cache", "verify", "--no-link"), "good", 1),
        (("cache", "export", str(bundle)), "exported", 1),
        (("cache", "import", str(bundle)), "imported", 1),
        (("cache", "clear"), "removed", 1),
    ]:
        code, out, _ = run(capsys, *argv, "--json", "--cache-dir", str(cache_dir))
        assert code == 0 and json.loads(out)[field] == value, (argv, out)


def test_closed_pipe_ends_quietly(tmp_path: Path):
    env = {**os.environ, "FFTFUSE_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(Path(__file__).parents[1])}
    child = subprocess.Popen([sys.executable, "-m", "nvmath.cli", "cache", "info", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    child.stdout.close()  # the reader is gone before the first line is written
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_list_on_a_refused_directory_fails(capsys, cache_dir: Path, callbacks: Path):
    precompile(capsys, cache_dir, f"{callbacks.stem}:double")
    cache_dir.chmod(0o777)
    for verb in ("list", "info", "clear", "verify"):
        code, _, err = run(capsys, "cache", verb, "--cache-dir", str(cache_dir))
        assert code == 1 and "not usable" in err and "lets group or others write" in err, (verb, err)
        assert err.count("lets group or others write") == 1  # said once, as the command's error


def test_list_on_an_unreadable_index_fails(capsys, cache_dir: Path, monkeypatch):
    import sqlite3

    import diskcache

    cache_dir.mkdir(mode=0o700)
    (cache_dir / "cache.db").write_bytes(b"")

    def full_disk(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(diskcache, "Cache", full_disk)
    code, out, err = run(capsys, "cache", "list", "--cache-dir", str(cache_dir))
    assert code == 1 and "disk is full" in err and "no entries" not in out


@pytest.mark.parametrize("verb", ["clear", "verify"])
def test_damaged_index_is_repaired_by_clear_and_verify(capsys, caplog, cache_dir: Path, callbacks: Path, verb: str):
    precompile(capsys, cache_dir, f"{callbacks.stem}:double")
    (cache_dir / "cache.db").write_bytes(b"not a database" * 100)
    for name in ("cache.db-wal", "cache.db-shm"):
        (cache_dir / name).unlink(missing_ok=True)
    code, _, err = run(capsys, "cache", verb, "--cache-dir", str(cache_dir), *(("--no-link",) if verb == "verify" else ()))
    assert code == 0, err
    assert any("rebuilt" in r.getMessage() for r in caplog.records) and (cache_dir / "cache.db.damaged").exists()
    assert precompile(capsys, cache_dir, f"{callbacks.stem}:double")[0] == 0
    assert len(entry_keys(cache_dir)) == 1


# --- precompile warms what the FFT calls look up ---------------------------------------------------


def test_precompile_warms_the_stateless_and_stateful_keys(capsys, cache_dir: Path, callbacks: Path):
    module = __import__(callbacks.stem)
    # The arguments a stateless call with data passes (nvmath/fft/_build.py, _attach):
    # the user data's dtype, indirect=True, the default float_literals.
    stateless = dict(compute_capability=80, indirect=True, literals="element")
    stateful = dict(compute_capability=80, indirect=False, literals="element")
    precompile(capsys, cache_dir, f"{callbacks.stem}:weighted", extra=("--user-dtype", "float32"))
    with ArtifactStore(cache_dir) as store:
        import numpy as np

        hit = compile_callback(module.weighted, "epilog", np.dtype(np.complex64), np.dtype(np.float32),
                               store=store, **stateless)
        assert hit.source == "cache"
        assert compile_callback(module.weighted, "epilog", "complex64", "float32", store=store,
                                **stateful).source == "compiled"
    code, out, _ = precompile(capsys, cache_dir, f"{callbacks.stem}:weighted",
                              extra=("--user-dtype", "float32", "--for", "all"))
    assert code == 0 and "stateless" in out and "stateful" in out
    code, out, _ = precompile(capsys, cache_dir, f"{callbacks.stem}:double", extra=("--for", "all"))
    assert code == 0 and len(out.splitlines()) == 1  # without data both calls share one entry


def test_progress_only_on_a_terminal(capsys, monkeypatch, cache_dir: Path, callbacks: Path):
    from nvmath import cli

    precompile(capsys, cache_dir, f"{callbacks.stem}:double", extra=("--arch", "90"))
    assert "\r" not in capsys.readouterr().err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    progress = cli._Progress(2)
    progress.step(1, "compiling f")
    progress.close()
    assert "[1/2] compiling f" in capsys.readouterr().err


# --- doctor --------------------------------------------------------------------------------------


def test_doctor_reports_everything_and_works_without_a_gpu(capsys, cache_dir: Path):
    code, out, _ = run(capsys, "doctor", "--json", "--cache-dir", str(cache_dir))
    report = json.loads(out)
    for field in ("fftfuse", "numba", "numba-cuda", "gpu", "cufft", "toolkit", "link_lto_callback", "nvmath", "cache"):
        assert field in report
    assert report["link_lto_callback"].get("ok") is True, report["link_lto_callback"]
    assert report["nvmath"]["imported_from"] == str(Path(__file__).parents[1] / "nvmath")
    assert report["nvmath"]["other_distribution"] is None
    assert report["cache"]["directory"] == str(cache_dir) and report["cache"]["ok"]
    assert report["toolkit"]["nvjitlink"] and report["toolkit"]["nvrtc"]
    assert report["cpu_engines"]["ducc0"] and set(report["cpu_engines"]) == {"ducc0", "scipy", "pyfftw"}
    assert code == 0
    code, text, _ = run(capsys, "doctor", "--no-link", "--cache-dir", str(cache_dir))
    assert code == 0 and "GPU:" in text and "nvJitLink / NVRTC:" in text and "cache:" in text
    assert "CPU FFT engines:" in text and ("fftw (pyFFTW" in text) == bool(report["cpu_engines"]["pyfftw"])
    if not report["gpu"].get("gpus"):
        assert "no GPU" in text
    assert not cache_dir.exists()  # looking creates nothing


def test_info_and_doctor_on_a_directory_that_cannot_be_created_fail(capsys, tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("nothing can be created below a regular file")
    code, out, err = run(capsys, "cache", "info", "--cache-dir", str(blocker / "cache"))
    assert code == 1 and "cannot be created" in err and "enabled:      no" in out
    code, out, _ = run(capsys, "doctor", "--no-link", "--json", "--cache-dir", str(blocker / "cache"))
    report = json.loads(out)
    assert code == 1 and "cannot be created" in report["cache"]["error"] and not report["cache"]["ok"]


# --- every artifact kind lists the same columns -------------------------------------------------


def _weighted(x, d):
    return x * d


def test_cpu_and_gpu_entries_list_element_user_and_arch(capsys, cache_dir: Path):
    """A CPU callback's native loops and a GPU callback's LTO-IR both record element type, user type
    and architecture (a GPU's sm_NN, the CPU's name and platform) for list, list --json and verify."""
    from fftfuse_compiler.cpu_backend import clear_cache, compile_cpu
    from fftfuse_compiler.cpu_native import cpu_identity, cpu_summary

    with ArtifactStore(cache_dir, enabled=True) as store:
        clear_cache()
        compile_cpu(_weighted, "epilog", "complex64", "float32", store=store).loops.ready()
        compile_callback(_weighted, "epilog", "complex64", "float32", compute_capability=90, store=store)
    cpu = cpu_summary(cpu_identity())

    code, out, _ = run(capsys, "cache", "list", "--json", "--cache-dir", str(cache_dir))
    entries = {e["target"]: e for e in map(json.loads, out.splitlines())}
    assert code == 0 and set(entries) == {"cpu", "ltoir"}
    for target, arch in (("cpu", cpu), ("ltoir", 90)):
        e = entries[target]
        assert (e["kind"], e["form"], e["element_dtype"], e["user_dtype"], e["arch"]) == \
            ("epilog", "value_data", "complex64", "float32", arch), e
        assert e["function"] == "_weighted" and len(e["fingerprint"]) > 0

    code, out, _ = run(capsys, "cache", "list", "--cache-dir", str(cache_dir))
    header, *rows, _ = out.splitlines()
    starts = [header.index(c) for c in ("ELEMENT", "USER", "ARCH", "INDIRECT")]
    cells = {tuple(r[a:b].strip() for a, b in zip(starts, starts[1:])) for r in rows}
    assert cells == {("complex64", "float32", "sm_90"), ("complex64", "float32", cpu)}

    code, out, _ = run(capsys, "cache", "verify", "--json", "--cache-dir", str(cache_dir))
    report = json.loads(out)
    assert code == 0 and report["bad"] == 0  # the CPU entry is not link-checked as LTO-IR
    assert {(r["element_dtype"], r["user_dtype"], r["arch"]) for r in report["entries"]} == \
        {("complex64", "float32", 90), ("complex64", "float32", cpu)}


def test_tune_chains_prints_what_it_kept_and_what_it_skipped(capsys, cache_dir: Path, monkeypatch):
    import nvmath.fft

    asked = []

    def fake_tune(lengths, precisions, device):
        asked.append((lengths, precisions, device, os.environ["FFTFUSE_CACHE_DIR"]))
        return [{"n": 64, "precision": "float32", "arch": 90, "chosen": [16, 8], "rule": [16, 8],
                 "timings_ms": {"16x8": 0.400, "32x8": 0.407}},
                {"n": 4096, "precision": "float64", "arch": 90, "skipped": "the FFT needs 65536 B of shared memory"}]

    monkeypatch.setattr(nvmath.fft, "tune_chains", fake_tune)
    monkeypatch.setenv("FFTFUSE_CACHE_DIR", "/elsewhere")  # the command points its process at --cache-dir
    code, out, err = run(capsys, "tune-chains", "--lengths", "64,4096", "--precision", "float32",
                         "--cache-dir", str(cache_dir))
    assert code == 0 and err == ""
    assert asked == [([64, 4096], ("float32",), 0, str(cache_dir))]
    assert "n=64    float32  sm_90  kept 16x8 (rule 16x8); GPU ms per chain: 16x8 0.400, 32x8 0.407" in out
    assert "n=4096  float64  sm_90  skipped: the FFT needs 65536 B of shared memory" in out
    code, out, _ = run(capsys, "tune-chains", "--json")
    assert code == 0 and json.loads(out)["results"][0]["chosen"] == [16, 8]
    assert asked[-1][:3] == (None, ("float32", "float64"), 0)


def test_tune_chains_without_a_gpu_or_with_bad_lengths_says_why(capsys, monkeypatch):
    from nvmath.fft import _chain_kernel

    monkeypatch.setattr(_chain_kernel, "unavailable", lambda: "numba-cuda finds no usable GPU")
    code, _, err = run(capsys, "tune-chains", "--lengths", "64")
    assert code == 1 and "tune_chains measures the one kernel on a GPU" in err and "no usable GPU" in err
    code, _, err = run(capsys, "tune-chains", "--lengths", "64,x")
    assert code == 1 and "--lengths '64,x': expected FFT lengths separated by commas" in err
