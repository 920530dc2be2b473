"""The import names of the repository's ``compiler/`` and ``cache/`` folders in a source checkout.

Installed, the two folders are the packages ``fftfuse_compiler`` and ``fftfuse_cache`` (a
package-directory mapping in pyproject.toml): names no user's own folder takes, where
``compiler`` and ``cache`` were shadowed by any such folder in the working directory. A source
checkout run without installing (``PYTHONPATH=$PWD``) has no folder of either name, so
importing ``nvmath`` from a checkout puts a finder first on ``sys.meta_path`` that maps the two
names onto the folders beside ``nvmath``. Only the top-level names are mapped: submodules are
found through the package's ``__path__``, so each module is loaded once, under one name.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from importlib.machinery import ModuleSpec
from typing import Any

#: Import name -> the repository folder that holds it.
FOLDERS = {"fftfuse_compiler": "compiler", "fftfuse_cache": "cache"}

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SourceTreeFinder:
    """Finds ``fftfuse_compiler`` and ``fftfuse_cache`` in the checkout at ``root``."""

    def __init__(self, root: str) -> None:
        self.root = root

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        folder = FOLDERS.get(fullname)
        if folder is None:
            return None
        directory = os.path.join(self.root, folder)
        return importlib.util.spec_from_file_location(fullname, os.path.join(directory, "__init__.py"),
                                                      submodule_search_locations=[directory])

    def invalidate_caches(self) -> None:
        """Nothing is cached (part of the finder protocol)."""


def source_checkout(root: str = _ROOT) -> bool:
    """Whether ``root`` (the folder holding ``nvmath``) is a source checkout of this project."""
    return os.path.isfile(os.path.join(root, "pyproject.toml")) and all(
        os.path.isfile(os.path.join(root, folder, "__init__.py")) for folder in FOLDERS.values())


def install_finder(root: str = _ROOT) -> bool:
    """Map the two import names onto the folders of the checkout at ``root``; True if mapped.

    In a checkout the folders beside this ``nvmath`` win over any installed copy, so the
    packages always match the ``nvmath`` that runs (an editable install points at the same
    files). Installed from a wheel, nothing is done.
    """
    if any(isinstance(f, SourceTreeFinder) for f in sys.meta_path):
        return True
    if not source_checkout(root):
        return False
    sys.meta_path.insert(0, SourceTreeFinder(root))
    return True
