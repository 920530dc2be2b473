"""What the documentation build generates, and what the pages quote, agree with their sources."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plots_are_drawn_from_the_committed_runs_and_repeat_exactly():
    pytest.importorskip("matplotlib")
    plots = _load(ROOT / "benchmarks" / "plots.py", "docs_plots")
    first, second = plots.render(), plots.render()
    assert set(first) == set(plots.FIGURES)
    for name, svg in first.items():
        assert svg.startswith(b"<?xml") and b"<svg" in svg, name
        assert svg == second[name], f"{name} differs between two renders of the same data"


def test_every_figure_is_shown_and_every_shown_figure_is_drawn():
    pytest.importorskip("matplotlib")
    plots = _load(ROOT / "benchmarks" / "plots.py", "docs_plots")
    shown = set()
    for page in (ROOT / "docs").rglob("*.md"):
        shown |= set(re.findall(r"figures/([\w.]+\.svg)", page.read_text()))
    assert shown == set(plots.FIGURES)


def test_the_cli_reference_has_every_command():
    pytest.importorskip("mkdocs")
    hooks = _load(ROOT / "docs" / "hooks.py", "docs_hooks")
    text = hooks.cli_reference()
    for command in ("fftfuse", "fftfuse cache", "fftfuse cache info", "fftfuse cache list", "fftfuse cache clear",
                    "fftfuse cache export", "fftfuse cache import", "fftfuse cache verify", "fftfuse precompile",
                    "fftfuse doctor"):
        assert f"## `{command}`" in text
    assert "--drop" in text and "--user-dtype" in text


def test_readme_is_short_and_opens_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < 150
    first_block = "\n".join(lines[:9])
    assert "fftfuse-demo" in first_block and "python -m pytest -q" in first_block


def _table_rows(text: str, header_start: str) -> dict[str, list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def _ms(value: str) -> float:
    return float(value.split()[0])


@pytest.mark.parametrize("page", ["README.md", "docs/performance.md"])
def test_quoted_gpu_figures_are_those_of_the_cited_run(page):
    """The headline table quotes the run it names: fftfuse, C++, nvmath-python and CuPy columns."""
    run = json.loads((RESULTS / "fft_callbacks-h100-adb5e58.json").read_text())
    rows = {r["case"]: r for r in run["rows"]}
    inline = {r["case"]: r for r in run["inlining"]}
    text = (ROOT / page).read_text()
    assert "fft_callbacks-h100-adb5e58" in text
    table = _table_rows(text, "| case | fftfuse, Python callback ms")
    expect = {"filter epilog": "filter_epilog", "convolution fft -> *filter -> ifft": "convolution"}
    for label, case in expect.items():
        row = next(v for k, v in table.items() if k.startswith(label))
        ours, cpp = _ms(row[0]), _ms(row[1])
        nvmath, cupy = _ms(row[-2]), _ms(row[-1])
        assert ours in (round(rows[case]["ours_ms"], 3), round(inline[case]["python_ms"], 3)), (page, label)
        assert cpp == round(inline[case]["cpp_ms"], 3), (page, label)
        assert nvmath == round(rows[case]["nvmath_ms"], 3), (page, label)
        assert cupy == round(rows[case]["cupy_ms"], 3), (page, label)


def test_readme_links_into_the_docs_resolve():
    """The README is read on the repository's page, outside the site build that checks the docs' links."""
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert local, "the README should link into docs/"
    for target in local:
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def test_signatures_in_the_reference_spell_out_aliases_and_hide_private_parameters():
    griffe = pytest.importorskip("griffe")
    ext = _load(ROOT / "docs" / "griffe_signatures.py", "docs_griffe_signatures")
    from typing import Literal, Optional, Sequence, Union

    assert ext.spell(Union[int, Sequence[int], None]) == "int | Sequence[int] | None"
    assert ext.spell(Optional[Literal["backward", "ortho"]]) == "Literal['backward', 'ortho'] | None"
    loader = griffe.GriffeLoader(extensions=griffe.load_extensions(ext.ReadableSignatures()),
                                 search_paths=[str(ROOT)], force_inspection=True)
    module = loader.load("nvmath.fft._api")
    init = module["FFT"].members["__init__"]
    names = [p.name for p in init.parameters]
    assert "_transform" not in names and "axes" in names
    assert str(init.parameters["axes"].annotation) == "int | Sequence[int] | None"


@pytest.mark.parametrize("package", ["fft", "device"])
def test_the_reference_documents_every_public_name(package):
    import importlib

    module = importlib.import_module(f"nvmath.{package}")
    page = (ROOT / "docs" / "reference" / f"{package}.md").read_text()
    documented = set(re.findall(rf"^::: nvmath\.{package}\.(\w+)", page, re.M))
    assert documented == set(module.__all__)
