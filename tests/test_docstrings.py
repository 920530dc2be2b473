"""The public docstrings parse as Google-style sections: what the API reference is built from."""

import inspect
import re

import pytest

import nvmath.fft as fft_api

_ITEM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*( \([^)]*\))?: ")


def _documented() -> list[tuple[str, object]]:
    found = []
    for name in fft_api.__all__:
        obj = getattr(fft_api, name)
        found.append((name, obj))
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and callable(member) and getattr(member, "__doc__", None):
                    found.append((f"{name}.{attr}", member))
    return found


def _section_lines(doc: str, header: str) -> list[str]:
    lines = inspect.cleandoc(doc).splitlines()
    if f"{header}:" not in [line.strip() for line in lines]:
        return []
    start = [line.strip() for line in lines].index(f"{header}:") + 1
    body = []
    for line in lines[start:]:
        if line.strip() and not line.startswith(" "):
            break
        body.append(line)
    return [line for line in body if line.strip()]


@pytest.mark.parametrize("name,obj", _documented(), ids=lambda v: v if isinstance(v, str) else "")
def test_parameter_descriptions_continue_deeper_than_their_names(name, obj):
    """A wrapped description must be indented under its parameter's name, in methods as in functions."""
    for header in ("Parameters", "Raises"):
        lines = _section_lines(obj.__doc__ or "", header)
        if not lines:
            continue
        item_indent = len(lines[0]) - len(lines[0].lstrip())
        for line in lines:
            indent = len(line) - len(line.lstrip())
            assert indent >= item_indent, f"{name}: {line!r} is left of its section"
            if indent == item_indent:
                assert _ITEM.match(line.strip()), f"{name} {header}: {line.strip()!r} should continue the item above"
