"""fftfuse and nvmath-python both provide ``nvmath``: the other one is noticed, never silently mixed."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def fake_nvmath_python(site: Path, record_rows: list[str] = ()) -> None:
    info = site / "nvmath_python-1.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nvmath-python\nVersion: 1.0.0\n")
    (info / "RECORD").write_text("".join(f"{row}\n" for row in record_rows))


def import_nvmath(site: Path) -> subprocess.CompletedProcess:
    script = ("import sys, warnings; warnings.simplefilter('always');"
              f"sys.path[:0] = [{str(REPO_ROOT)!r}]; sys.path.append({str(site)!r});"
              "import nvmath; print('imported', nvmath.__file__);"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'numba')))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=site)


def test_import_is_quiet_and_light_without_the_other(tmp_path: Path):
    done = import_nvmath(tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.splitlines()[-1] == "[]"  # neither numpy nor numba at import


def test_other_distribution_beside_us_warns_once(tmp_path: Path):
    fake_nvmath_python(tmp_path, ["nvmath/__init__.py,sha256=AAAA,10"])
    done = import_nvmath(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("RuntimeWarning") == 1
    assert "nvmath-python 1.0.0" in done.stderr and "separate environments" in done.stderr


def test_our_files_overwritten_by_the_other_refuse_to_import(tmp_path: Path):
    # Their RECORD claims one of our files with its current bytes: their install wrote it.
    ours = REPO_ROOT / "nvmath" / "_packages.py"
    digest = base64.urlsafe_b64encode(hashlib.sha256(ours.read_bytes()).digest()).rstrip(b"=").decode()
    (tmp_path / "nvmath").symlink_to(REPO_ROOT / "nvmath")  # the same directory, as one site-packages
    fake_nvmath_python(tmp_path, [f"nvmath/_packages.py,sha256={digest},{ours.stat().st_size}"])
    done = import_nvmath(tmp_path)
    assert done.returncode == 1
    assert "ImportError: fftfuse's 'nvmath' package was overwritten by nvmath-python 1.0.0" in done.stderr
    assert "nvmath/_packages.py" in done.stderr and "pip uninstall" in done.stderr


def test_doctor_names_the_other_distribution(tmp_path: Path, monkeypatch):
    from nvmath import _packages

    fake_nvmath_python(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _packages.other_distribution() == f"nvmath-python 1.0.0 in {tmp_path}"
