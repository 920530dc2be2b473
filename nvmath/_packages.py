"""nvmath-python beside fftfuse: both distributions provide a package named ``nvmath``."""

from __future__ import annotations

import os

_HOME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# nvmath-python installs a package named ``nvmath`` too. Installed into one environment, the
# second install silently overwrites the first one's files.
_OTHER = "nvmath_python-"


def other_distribution() -> str | None:
    """Where a distribution named ``nvmath-python`` is installed on ``sys.path``, if anywhere.

    Reads directory listings only (``importlib.metadata`` would cost more than this package's
    own import).
    """
    import sys

    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith(_OTHER) and name.endswith((".dist-info", ".egg-info")):
                version = name[len(_OTHER):].rsplit(".", 1)[0]
                return f"nvmath-python {version} in {os.path.abspath(entry or '.')}"
    return None


def _overwritten_by_other() -> list[str]:
    """Files of this package whose bytes are nvmath-python's (its install wrote over ours)."""
    import base64
    import csv
    import hashlib
    import sys

    ours = os.path.join(_HOME, "nvmath") + os.sep
    hits = []
    for entry in sys.path:
        try:
            names = [n for n in os.listdir(entry or ".") if n.startswith(_OTHER) and n.endswith(".dist-info")]
        except OSError:
            continue
        for name in names:
            try:
                with open(os.path.join(entry, name, "RECORD"), newline="") as f:
                    rows = list(csv.reader(f))
            except OSError:
                continue
            for row in rows:
                if len(row) < 2 or not row[0].startswith("nvmath/") or not row[1].startswith("sha256="):
                    continue
                path = os.path.realpath(os.path.join(entry, row[0]))
                if not path.startswith(ours):
                    continue
                try:
                    with open(path, "rb") as f:
                        digest = base64.urlsafe_b64encode(hashlib.sha256(f.read()).digest()).rstrip(b"=").decode()
                except OSError:
                    continue
                if row[1] == f"sha256={digest}":
                    hits.append(row[0])
    return hits


def check_other_distribution() -> None:
    """Warn once if nvmath-python is installed beside us; raise ImportError if it overwrote our files."""
    where = other_distribution()
    if where is None:
        return
    fix = ("Install fftfuse and nvmath-python in separate environments: in this one, "
           "'pip uninstall -y nvmath-python fftfuse' then 'pip install fftfuse'.")
    overwritten = _overwritten_by_other()
    if overwritten:
        shown = ", ".join(overwritten[:3]) + (", ..." if len(overwritten) > 3 else "")
        raise ImportError(f"fftfuse's 'nvmath' package was overwritten by {where} ({shown}). {fix}")
    import warnings

    warnings.warn(f"{where} also provides the 'nvmath' package; this process imported fftfuse's "
                  f"({os.path.join(_HOME, 'nvmath')}). {fix}", RuntimeWarning, stacklevel=3)
