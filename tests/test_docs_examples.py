"""The code in the documentation runs: each page's examples, in order, on the CPU (GPU ones with a GPU).

In a page, fenced ``python`` blocks run as one script, in order, so a block may use what an
earlier one defined; ``pycon`` blocks run as doctests in the same namespace. A comment on the line
before a block changes that:

- ``<!-- docs-test: gpu -->``: needs a CUDA GPU (skipped without one);
- ``<!-- docs-test: skip -->``: not a program (a signature, a fragment);
- ``<!-- docs-test: script -->``: run on its own as ``python file.py`` (it starts processes).
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import gpu_available

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
_FENCE = re.compile(r"(?:<!-- docs-test: (?P<mark>\w+) -->\n)?^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```",
                    re.M | re.S)
_MARKS = {None, "gpu", "skip", "script"}


@dataclass
class Block:
    page: str
    line: int
    lang: str
    mark: str | None
    code: str


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for m in _FENCE.finditer(text):
        if m["lang"] not in ("python", "pycon"):
            continue
        if m["mark"] not in _MARKS:
            raise ValueError(f"{path}: unknown docs-test mark {m['mark']!r}; use one of gpu, skip, script")
        found.append(Block(path.name, text.count("\n", 0, m.start("body")) + 1, m["lang"], m["mark"], m["body"]))
    return found


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md")) + [README]


def _page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _run(block: Block, namespace: dict, tmp_path: Path) -> None:
    where = f"{block.page}:{block.line}"
    if block.mark == "script":
        script = tmp_path / f"example_{block.line}.py"
        script.write_text(block.code)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        done = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"{where} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    elif block.lang == "pycon":
        test = doctest.DocTestParser().get_doctest(block.code, namespace, where, block.page, block.line)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        runner.run(test, clear_globs=False)
        assert runner.failures == 0, f"{where}: {runner.failures} doctest example(s) failed (see above)"
    else:
        exec(compile(block.code, where, "exec"), namespace)


@pytest.mark.parametrize("path", pages(), ids=_page_id)
def test_page_examples_run(path: Path, tmp_path: Path) -> None:
    """Every runnable block of one page, in order, in one namespace."""
    runnable = [b for b in blocks(path) if b.mark != "skip"]
    if not runnable:
        pytest.skip("no code to run")
    needs_gpu = [b for b in runnable if b.mark == "gpu"]
    if needs_gpu and not gpu_available():
        runnable = [b for b in runnable if b.mark != "gpu"]
        if not runnable:
            pytest.skip(f"{len(needs_gpu)} block(s) need a CUDA GPU")
    namespace = {"__name__": f"docs_{path.stem}"}
    for block in runnable:
        _run(block, namespace, tmp_path)


def test_blocks_are_found() -> None:
    """The extraction sees the pages' code: a guide without runnable blocks means the parser broke."""
    counts = {_page_id(p): len(blocks(p)) for p in pages()}
    assert counts["docs/guide/array-terms.md"] >= 2
    assert counts["docs/getting-started.md"] >= 2
