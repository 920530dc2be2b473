"""A griffe extension for the API reference, which is read from the imported package.

- Parameters named with a leading underscore are private: ``FFT.__init__`` takes two
  (``_transform``, ``_shared_plans``) for the stateless functions' use, never passed by a user.
- Annotations are written out in full: the package's aliases (``Axes``, ``Callback``, ``Norm``...)
  are not documented names, and inspected, a ``Union`` alias would show as a bare ``Union``.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import griffe


def spell(hint: Any) -> str:
    """A type hint as a reader would write it: ``int | Sequence[int] | None``, ``Literal['a', 'b']``."""
    if hint is type(None) or hint is None:
        return "None"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(spell(a) for a in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(spell(a) for a in args)}]" if args else name
    if hint is Any:
        return "Any"
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


class ReadableSignatures(griffe.Extension):
    def on_function_instance(self, *, node: Any, func: griffe.Function, **kwargs: Any) -> None:
        for name in [p.name for p in func.parameters if p.name.startswith("_")]:
            del func.parameters[name]
        runtime = getattr(node, "obj", None)  # set when the object was inspected
        if runtime is None:
            return
        try:
            hints = typing.get_type_hints(runtime)
        except Exception:  # an annotation that does not evaluate: keep what griffe read
            return
        for parameter in func.parameters:
            if parameter.name in hints:
                parameter.annotation = spell(hints[parameter.name])
        if "return" in hints:
            func.returns = spell(hints["return"])
