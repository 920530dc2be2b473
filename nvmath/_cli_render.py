"""The one place the ``fftfuse`` commands' results are printed, as text or as JSON.

A command returns a :class:`Report`: plain data (what ``--json`` prints), the name of the text
view that shows it to a person, the exit status and the lines for stderr. Nothing here gathers
or decides anything; nothing in the commands prints a result.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, NamedTuple

__all__ = ["Report", "render", "byte_size", "arch_text"]


class Report(NamedTuple):
    """What one command found.

    ``data`` is JSON-serialisable and is what ``--json`` prints (``list``: one line per entry);
    ``view`` names its text form (:data:`VIEWS`); ``notes`` are warnings and errors for stderr,
    printed in both forms, in order; ``text_notes`` only with the text form.
    """

    view: str
    data: Any
    status: int = 0
    notes: tuple[str, ...] = ()
    text_notes: tuple[str, ...] = ()


def render(report: Report, options: Any) -> int:
    """Print ``report`` (stdout: the result; stderr: its notes); return its exit status.

    ``options``: the parsed command line (``json``, and what a text view shows: ``verbose``, ...).
    """
    for note in report.notes:
        print(note, file=sys.stderr)
    if options.json:
        if report.view == "list":  # JSON Lines: a reader may stop after any line
            for entry in report.data["entries"]:
                print(json.dumps(entry, sort_keys=True))
        else:
            print(json.dumps(report.data, indent=1, sort_keys=True))
        return report.status
    for line in VIEWS[report.view](report.data, options):
        print(line)
    for note in report.text_notes:
        print(note, file=sys.stderr)
    return report.status


def byte_size(n: int) -> str:
    """Human-readable byte count: ``2844 B``, ``12.3 KiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def arch_text(arch: Any) -> str:
    """A GPU architecture as sm_NN; the CPU recorded for native code as it is; ``-`` for none."""
    if arch is None:
        return "-"
    return f"sm_{arch}" if isinstance(arch, int) else str(arch)


# --- text views: data in, lines out ----------------------------------------------------------------


def _version(data: dict[str, Any], options: Any) -> list[str]:
    return [f"fftfuse {data['version']}"]


def _doctor(data: dict[str, Any], options: Any) -> list[str]:
    from .doctor import format_report

    return [format_report(data)]


def _info(info: dict[str, Any], options: Any) -> list[str]:
    if info["enabled"]:
        state = "yes"
    elif not info["enabled_by_environment"]:
        state = "no (FFTFUSE_CACHE=0)"
    else:
        state = f"no ({info['disk_error']})"
    arch, note = info["default_arch"], info["default_arch_source"]
    rows = [
        ("directory", info["directory"] + ("" if info["exists"] else "  (nothing stored yet)")),
        ("enabled", state),
        ("entries", str(info["entries"])),
        ("volume", byte_size(info["volume"])),
        ("size limit", byte_size(info["size_limit"])),
        *(("read-only", layer) for layer in info["read_only_layers"]),
        ("toolchain", info["toolchain"]),
        ("default arch", f"sm_{arch} ({note})" if arch else f"unknown ({note})"),
        ("this CPU", info["cpu"]),
    ]
    return [f"{label + ':':<14}{value}" for label, value in rows]


LIST_COLUMNS = ("key", "kind", "form", "element", "user", "arch", "indirect", "size", "function")


def _entry_row(entry: dict[str, Any]) -> tuple[str, ...]:
    name = entry.get("function") or entry.get("name") or entry.get("qualname") or "-"
    return (
        entry["key"][:12],
        str(entry.get("kind", "-")),
        str(entry.get("form", "-")),
        str(entry.get("element_dtype", "-")),
        str(entry.get("user_dtype", "-")),
        arch_text(entry.get("arch")),
        "yes" if entry.get("indirect") else "no",
        byte_size(int(entry.get("size", 0))),
        str(name),
    )


def _list(data: dict[str, Any], options: Any) -> list[str]:
    entries = data["entries"]
    if not entries:
        return [f"no entries in {data['directory']}"]
    rows = [_entry_row(entry) for entry in entries]
    widths = [max(len(col), *(len(row[i]) for row in rows)) for i, col in enumerate(LIST_COLUMNS)]
    lines = ["  ".join(col.upper().ljust(w) for col, w in zip(LIST_COLUMNS, widths)).rstrip()]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.append(f"{len(rows)} entries, {byte_size(sum(int(e.get('size', 0)) for e in entries))}")
    return lines


def _clear(data: dict[str, Any], options: Any) -> list[str]:
    return [f"removed {data['removed']} entries from {data['directory']}"]


def _nothing_to_clear(data: dict[str, Any], options: Any) -> list[str]:
    return [f"nothing to clear in {data['directory']}"]


def _export(data: dict[str, Any], options: Any) -> list[str]:
    return [f"exported {data['exported']} entries from {data['directory']} to {data['bundle']} "
            f"({byte_size(data['bytes'])})"]


def _import(data: dict[str, Any], options: Any) -> list[str]:
    return [f"imported {data['imported']} entries from {data['bundle']} into {data['directory']}"]


def _verify_label(row: dict[str, Any]) -> str:
    if row.get("kind") is None:
        return f"{row['key'][:12]}  (metadata unreadable)"
    arch = row.get("arch")
    return f"{row['key'][:12]}  {row['kind']} {row.get('element_dtype') or '?'} " \
           f"{arch_text(arch) if arch is not None else 'sm_?'}"


def _verify(data: dict[str, Any], options: Any) -> list[str]:
    if "index_problem" not in data:
        return [f"no entries in {data['directory']}"]
    lines = []
    if data["index_problem"] is not None:
        index = os.path.join(data["directory"], "cache.db")
        lines.append(f"BAD   index {index}: {data['index_problem']} (rebuilt empty)")
    for row in data["entries"]:
        if row["problem"] is None:
            if options.verbose:
                lines.append(f"ok    {_verify_label(row)}")
            continue
        action = ""
        if "dropped" in row:
            action = "  (dropped)" if row["dropped"] else "  (could not drop)"
        lines.append(f"BAD   {_verify_label(row)}: {row['problem']}{action}")
    checks = "digest" if options.no_link else "digest and link"
    checked = data["good"] + data["bad"] - (data["index_problem"] is not None)
    lines.append(f"{checked} entries checked ({checks}): {data['good']} good, {data['bad']} bad"
                 + (f", {data['dropped']} dropped" if options.drop else ""))
    return lines


def _precompile(data: dict[str, Any], options: Any) -> list[str]:
    lines = []
    for row in data["results"]:
        if "error" in row:
            continue
        user = row["user_dtype"]
        dtypes = row["element_dtype"] if user is None else f"{row['element_dtype']}/{user}"
        calls = "" if user is None else ("  stateless" if row["indirect"] else "  stateful")
        link = "" if row["link"] is None else f"  {row['link']}"
        lines.append(f"{row['spec']}  {row['kind']} {dtypes}  sm_{row['arch']}{calls}  {row['source']:<8}  "
                     f"{row['ms']:8.1f} ms  {byte_size(row['bytes'])}{link}")
    return lines


def _tune_chains(data: dict[str, Any], options: Any) -> list[str]:
    lines = []
    for row in data["results"]:
        head = f"n={row['n']:<5} {row['precision']}  sm_{row['arch']}"
        if "skipped" in row:
            lines.append(f"{head}  skipped: {row['skipped']}")
            continue
        chosen, rule = "x".join(map(str, row["chosen"])), "x".join(map(str, row["rule"]))
        timings = ", ".join(f"{k} {v:.3f}" for k, v in sorted(row["timings_ms"].items(), key=lambda kv: kv[1]))
        lines.append(f"{head}  kept {chosen} (rule {rule}); GPU ms per chain: {timings}")
    return lines


#: The text form of each command's report.
VIEWS: dict[str, Callable[[Any, Any], list[str]]] = {
    "version": _version,
    "doctor": _doctor,
    "info": _info,
    "list": _list,
    "clear": _clear,
    "nothing-to-clear": _nothing_to_clear,
    "export": _export,
    "import": _import,
    "verify": _verify,
    "precompile": _precompile,
    "tune-chains": _tune_chains,
}
