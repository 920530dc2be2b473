"""Device-side solvers (cuSOLVERDx) are not part of this package.

nvmath-python 1.0 has them under this name, and code written for it (its examples' shared
helpers among them) imports the classes below for annotations and ``isinstance`` checks even
where it only runs FFTs. They exist here so that such code loads; making a solver raises
:class:`NotImplementedError`.
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["Solver"]


def _unavailable(name: str) -> NoReturn:
    raise NotImplementedError(
        f"nvmath.device.cusolverdx.{name}: device-side solvers (cuSOLVERDx) are not part of this package, "
        "which provides device-side FFTs (nvmath.device.FFT); use nvmath-python for cuSOLVERDx"
    )


class _SolverProperties:
    """What nvmath-python's solver descriptions share; here only a name to check against."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _unavailable(type(self).__name__)


class _OrthogonalFactorizerProperties(_SolverProperties):
    """The orthogonal factorizations' properties; here only a name to check against."""


class Solver(_SolverProperties):
    """A cuSOLVERDx solver: not provided (raises NotImplementedError)."""
