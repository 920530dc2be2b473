"""Import the project's sibling top-level packages, refusing impostors.

``compiler`` and ``cache`` are generic names: a user's own ``cache.py`` earlier on
``sys.path`` would otherwise be imported instead and fail much later, three frames deep.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

_HOME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sibling(name: str) -> ModuleType:
    """Import the project's top-level package ``name`` and check it is ours."""
    module = importlib.import_module(name)
    if getattr(module, "__fftfuse_package__", False):
        return module
    where = getattr(module, "__file__", None) or "a namespace or built-in module"
    raise ImportError(
        f"'import {name}' found {where}, not fftfuse's '{name}' package (expected under {_HOME}). "
        f"A module of the same name earlier on sys.path shadows it: rename that module or "
        f"remove its folder from sys.path (often the current directory)."
    )
