"""Bad input to the ``fftfuse`` command line, as a table: each row is a command against a prepared
directory, the exit status it must give, and a fragment of the one-line message that says what is
wrong. Each row runs in a child process under a timeout, since some of them (FIFOs) used to hang.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Callable

import pytest

from fftfuse_cache import ArtifactStore

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 60

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/full are POSIX")


def cache_with_entries(tmp_path: Path) -> Path:
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with ArtifactStore(directory, enabled=True) as s:
        for n in range(3):
            s.put(f"key{n}", bytes(range(256)) * (n + 1), {"kind": "epilog", "function": f"f{n}"})
    return directory


def fifo_as(name: str) -> Callable[[Path], Path]:
    def setup(tmp_path: Path) -> Path:
        directory = cache_with_entries(tmp_path)
        (directory / name).unlink(missing_ok=True)
        os.mkfifo(directory / name)
        return directory
    return setup


def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "hostname"
    path.write_text("not a cache\n")
    return path


def deep_bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "deep.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", b"[" * 100_000 + b"]" * 100_000)
    return bundle


def unbound_bundle(tmp_path: Path) -> Path:
    source = tmp_path / "fresh.zip"
    with ArtifactStore(cache_with_entries(tmp_path / "src"), enabled=True) as s:
        s.export_bundle(source)
    bundle = tmp_path / "old.zip"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(bundle, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "manifest.json":
                manifest = json.loads(data)
                del manifest["layout"]
                data = json.dumps(manifest).encode()
            zout.writestr(info, data)
    return bundle


def pipe(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


# (name, setup returning the cache directory or the bundle, argv with {} for it, stdout, status, message)
ROWS = [
    *[(f"FIFO as cache.db, {verb}", fifo_as("cache.db"), ("cache", verb, "--cache-dir", "{}"), None, 1,
       "cache.db is a FIFO (named pipe), not a regular file")
      for verb in ("list", "info", "verify", "clear")],
    *[(f"FIFO as {name}, list", fifo_as(name), ("cache", "list", "--cache-dir", "{}"), None, 1,
       f"{name} is a FIFO (named pipe), not a regular file")
      for name in ("cache.db-journal", "cache.db-wal", "cache.db-shm")],
    ("FIFO as cache.db, export", fifo_as("cache.db"), ("cache", "export", "{}/../out.zip", "--cache-dir", "{}"),
     None, 1, "cache.db is a FIFO"),
    *[(f"a file as the cache directory, {verb}", a_file, ("cache", verb, "--cache-dir", "{}"), None, 1,
       "is not usable: it is a regular file, not a directory")
      for verb in ("list", "info", "verify", "clear")],
    ("a file as the cache directory, export", a_file, ("cache", "export", "{}.zip", "--cache-dir", "{}"), None, 1,
     "is not usable: it is a regular file, not a directory"),
    ("import a 100,000-deep manifest", deep_bundle, ("cache", "import", "{}", "--cache-dir", "{}.cache"), None, 1,
     "manifest.json is nested too deeply"),
    ("import a bundle of the unbound layout", unbound_bundle, ("cache", "import", "{}", "--cache-dir", "{}.cache"),
     None, 1, "made by an older fftfuse, whose entries are not bound to their keys; export it again"),
    ("import a directory", lambda t: t, ("cache", "import", "{}", "--cache-dir", "{}/cache"), None, 1,
     "is a directory, not a regular file; expected a bundle file"),
    ("import a FIFO", pipe, ("cache", "import", "{}", "--cache-dir", "{}.cache"), None, 1,
     "is a FIFO (named pipe), not a regular file; expected a bundle file"),
    ("import /dev/zero", lambda t: Path("/dev/zero"), ("cache", "import", "{}", "--cache-dir", "cache"),
     None, 1, "'/dev/zero' is a character device, not a regular file; expected a bundle file"),
    ("import a missing file", lambda t: t / "missing.zip", ("cache", "import", "{}", "--cache-dir", "{}.cache"),
     None, 1, "does not exist"),
    ("list with stdout closed", cache_with_entries, ("cache", "list", "--cache-dir", "{}"), "closed", 1,
     "standard output is closed"),
    ("list on a full disk", cache_with_entries, ("cache", "list", "--cache-dir", "{}"), "/dev/full", 1,
     "cannot write to standard output: [Errno 28]"),
    ("list --json on a full disk", cache_with_entries, ("cache", "list", "--json", "--cache-dir", "{}"), "/dev/full",
     1, "cannot write to standard output: [Errno 28]"),
    ("--version on a full disk", lambda t: t, ("--version",), "/dev/full", 1, "cannot write to standard output"),
]


def run_cli(argv: list[str], stdout: str | None, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FFTFUSE_CACHE", None)
    env.pop("FFTFUSE_CACHE_PATH", None)
    command = [sys.executable, "-m", "nvmath.cli", *argv]
    if stdout == "closed":  # started with descriptor 1 closed, as a shell's '>&-' does
        command = ["sh", "-c", 'exec "$@" >&-', "sh", *command]
    out = open(stdout, "w") if stdout == "/dev/full" else subprocess.PIPE
    try:
        return subprocess.run(command, stdout=out, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                              timeout=LIMIT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"'fftfuse {' '.join(argv)}' hung for {LIMIT} s")
    finally:
        if out is not subprocess.PIPE:
            out.close()


@pytest.mark.parametrize("name, setup, argv, stdout, status, fragment", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_gets_a_one_line_error(tmp_path: Path, name, setup, argv, stdout, status, fragment):
    target = setup(tmp_path)
    child = run_cli([a.replace("{}", str(target)) for a in argv], stdout, tmp_path)
    assert child.returncode == status, (child.returncode, child.stderr)
    assert "Traceback" not in child.stderr, child.stderr
    lines = child.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fftfuse: error: ") and fragment in lines[0], child.stderr


def test_the_catalogue_is_distinct():
    assert len({r[0] for r in ROWS}) == len(ROWS) >= 20


def test_version_json_is_json(tmp_path: Path):
    for argv in (["--version", "--json"], ["--json", "--version"]):
        child = run_cli(argv, None, tmp_path)
        assert child.returncode == 0, child.stderr
        assert json.loads(child.stdout)["name"] == "fftfuse" and json.loads(child.stdout)["version"]
    child = run_cli(["--version"], None, tmp_path)
    assert child.returncode == 0 and child.stdout.startswith("fftfuse ")


def test_a_missing_cache_directory_is_still_just_empty(tmp_path: Path):
    for verb in ("list", "verify", "clear"):
        child = run_cli(["cache", verb, "--cache-dir", str(tmp_path / "fresh")], None, tmp_path)
        assert child.returncode == 0, child.stderr
    assert not (tmp_path / "fresh").exists()
