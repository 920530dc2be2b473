"""MkDocs hooks: the parts of the site generated at build time, so they cannot drift from their source.

- ``figures/*.svg``: drawn by ``benchmarks/plots.py`` from the committed runs in ``benchmarks/results/``.
- The command-line reference: ``<!-- fftfuse-cli -->`` in a page is replaced by every command's
  ``--help``, taken from the parser ``fftfuse`` itself runs.

Neither needs a GPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Iterator

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
CLI_MARKER = "<!-- fftfuse-cli -->"
HELP_COLUMNS = "100"  # argparse wraps to $COLUMNS: a fixed width gives the same page everywhere


def _plots() -> Any:
    spec = importlib.util.spec_from_file_location("fftfuse_docs_plots", ROOT / "benchmarks" / "plots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_config(config: Any) -> Any:
    # Document the checkout being built, even where another copy of the package is installed
    # (MkDocs restores sys.path after loading this module, so this is done here).
    if sys.path[:1] != [str(ROOT)]:
        sys.path.insert(0, str(ROOT))
    return config


def on_files(files: Files, config: Any) -> Files:
    for name, svg in _plots().render().items():
        files.append(File.generated(config, f"figures/{name}", content=svg))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    return markdown


def cli_reference() -> str:
    """Markdown for every ``fftfuse`` command: a heading, its description and its ``--help``."""
    from nvmath import cli

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        parts = []
        # cli.py builds its parser in a function of its own; the reference shows exactly that parser.
        for words, parser, summary in _commands(cli._parser(), ["fftfuse"], None):
            parts.append(f"## `{' '.join(words)}`\n")
            if summary:  # the description, where there is one, is part of the --help below
                parts.append(f"{summary[0].upper()}{summary[1:]}.\n")
            parts.append(f"```text\n{parser.format_help().rstrip()}\n```\n")
        return "\n".join(parts)
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def _commands(parser: argparse.ArgumentParser, words: list[str],
              summary: str | None) -> Iterator[tuple[list[str], argparse.ArgumentParser, str | None]]:
    yield words, parser, summary
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield from _commands(sub, words + [name], helps.get(name))
