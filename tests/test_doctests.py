"""The docstring examples of fftfuse_compiler and fftfuse_cache, one test per example.

pytest's ``--doctest-modules`` would import ``compiler/*.py`` by file path, as modules named
``compiler.*``: a second copy of each beside the ``fftfuse_compiler.*`` the library uses (numba
extensions registered twice). So these examples run here, against the modules as imported.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil

import pytest

PACKAGES = ("fftfuse_compiler", "fftfuse_cache")


def _examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        names = [package] + [f"{package}.{m.name}" for m in pkgutil.iter_modules(root.__path__)]
        for name in sorted(names):
            module = importlib.import_module(name)
            found += [t for t in finder.find(module, name) if t.examples]
    return found


EXAMPLES = _examples()


def test_every_module_is_searched():
    names = {t.name.split(".")[1] for t in EXAMPLES if t.name.startswith("fftfuse_compiler.")}
    assert {"fingerprint", "forms", "toolchain", "wrappers"} <= names
    assert any(t.name.startswith("fftfuse_cache.store") for t in EXAMPLES)


@pytest.mark.parametrize("example", EXAMPLES, ids=[t.name for t in EXAMPLES])
def test_docstring_example(example: doctest.DocTest):
    # ELLIPSIS as pytest's doctest default; fresh globals each run, so no example leaks into another.
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    fresh = doctest.DocTest(example.examples, dict(example.globs), example.name, example.filename,
                            example.lineno, example.docstring)
    out = io.StringIO()
    result = runner.run(fresh, out=out.write, clear_globs=True)
    assert result.failed == 0, out.getvalue()
