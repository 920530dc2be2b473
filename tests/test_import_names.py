"""The repository's compiler/ and cache/ folders import as fftfuse_compiler and fftfuse_cache: a
user's own folder or package called compiler or cache, in the working directory say, changes
nothing; each module is loaded once; the wheel's package list matches the folders."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Runs an epilog on the CPU (compiled by numba) and reports where the packages came from.
SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import nvmath.fft

    x = np.random.default_rng(3).standard_normal((4, 16)) + 1j * np.random.default_rng(4).standard_normal((4, 16))
    y = nvmath.fft.fft(x, axes=(1,), execution="cpu", epilog=lambda v: v * 2)
    np.testing.assert_allclose(y, 2 * np.fft.fft(x, axis=1), rtol=1e-12, atol=1e-12)
    import fftfuse_cache, fftfuse_compiler
    print("compiler", fftfuse_compiler.__file__)
    print("cache", fftfuse_cache.__file__)
    print("loaded", sorted(m for m in sys.modules if m.split(".")[0] in ("compiler", "cache")))
""")


def run_in(cwd: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    # The checkout after the working directory (which 'python -c' puts first on sys.path).
    path = os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": path, "FFTFUSE_CACHE_DIR": str(tmp_path / "fftfuse-cache")}
    return subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


def report(done: subprocess.CompletedProcess) -> dict[str, str]:
    assert done.returncode == 0, done.stderr
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())


@pytest.mark.parametrize("kind", ["packages", "modules", "bare folders"])
def test_a_users_compiler_and_cache_change_nothing(tmp_path: Path, kind: str):
    project = tmp_path / "project"
    for name in ("compiler", "cache"):
        if kind == "modules":
            project.mkdir(exist_ok=True)
            (project / f"{name}.py").write_text(f"raise ImportError('the user\\'s {name}.py was imported')\n")
        else:
            (project / name).mkdir(parents=True)
            if kind == "packages":
                (project / name / "__init__.py").write_text(f"raise ImportError('the user\\'s {name} was imported')\n")
    found = report(run_in(project, tmp_path))
    assert found["loaded"] == "[]"  # neither the user's packages nor a second copy of ours
    for name in ("compiler", "cache"):
        assert not found[name].startswith(str(project)), found


def test_a_checkout_maps_the_names_onto_its_folders(tmp_path: Path):
    import fftfuse_cache
    import fftfuse_compiler

    import nvmath

    found = report(run_in(tmp_path, tmp_path))
    if Path(nvmath.__file__).resolve().parent.parent == REPO_ROOT:  # a checkout or an editable install
        assert Path(found["compiler"]) == REPO_ROOT / "compiler" / "__init__.py"
        assert Path(found["cache"]) == REPO_ROOT / "cache" / "__init__.py"
        assert Path(fftfuse_compiler.__file__).parent == REPO_ROOT / "compiler"
        assert Path(fftfuse_cache.__file__).parent == REPO_ROOT / "cache"
    assert not [m for m in sys.modules if m.split(".")[0] in ("compiler", "cache")]


def test_the_finder_maps_only_a_checkout(tmp_path: Path):
    from nvmath._source_tree import FOLDERS, SourceTreeFinder, source_checkout

    assert source_checkout(str(REPO_ROOT))
    assert not source_checkout(str(tmp_path))  # an installed nvmath: site-packages holds no pyproject.toml
    finder = SourceTreeFinder(str(REPO_ROOT))
    assert finder.find_spec("compiler") is None and finder.find_spec("fftfuse_compiler.api") is None
    spec = finder.find_spec("fftfuse_cache")
    assert spec.origin == str(REPO_ROOT / FOLDERS["fftfuse_cache"] / "__init__.py")
    assert spec.submodule_search_locations == [str(REPO_ROOT / "cache")]


def test_the_wheel_lists_every_package_under_its_import_name():
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"fftfuse_compiler": "compiler", "fftfuse_cache": "cache"}
    assert config["package-dir"] == folders
    expected = set()
    for top in ("nvmath", *folders):
        base = REPO_ROOT / folders.get(top, top)
        expected |= {".".join([top, *p.parent.relative_to(base).parts]) for p in base.rglob("__init__.py")}
    assert sorted(config["packages"]) == sorted(expected)


def test_no_code_imports_the_folder_names():
    """An import of the folder names (compiler, cache) would load a second copy, or a user's package."""
    import ast

    found = []
    for folder in ("nvmath", "compiler", "cache", "tests", "benchmarks", "examples", "docs"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module or ""]
                else:
                    continue
                found += [(str(path.relative_to(REPO_ROOT)), node.lineno, n) for n in names
                          if n.split(".")[0] in ("compiler", "cache")]
    assert not found, f"imports by folder name (use fftfuse_compiler / fftfuse_cache): {found}"
